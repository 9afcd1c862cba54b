"""Acceptance benchmark of adversarial training (issue 4): the grid of notebook 05, cpu profile.

Trains (or loads from ``runs/``) every run of ``adversarial_training.grid`` and the NAT models,
evaluates clean and PGD-20 test metrics, and writes ``benchmarks/defenses_at_cpu.csv`` and ``.md``.

    SURVEY_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/defenses_at_cpu.py
    # in parallel, one thread each, then collect (everything cached in runs/):
    ... defenses_at_cpu.py --datasets pneumoniamnist --no-write &
    ... defenses_at_cpu.py --datasets breastmnist ph2 adrenalmnist3d --no-write; wait
    ... defenses_at_cpu.py
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import pandas as pd
import torch

from survey_lib.defenses.adversarial_training import AdversarialTraining, grid, nat_reference

OUT = Path(__file__).resolve().parent / "defenses_at_cpu"


def row(dataset: str, method: str, options: dict, record: dict) -> dict:
    c, test, adv = record["config"], record["test"], record["test_adv"]
    out = {"dataset": dataset, "method": method, "eps": options.get("eps", c.get("eps")),
           "balanced": c.get("balanced"), "warmup": bool(c.get("eps_schedule")),
           "epochs": c["epochs"], "inner_steps": c.get("steps"), "best_epoch": record.get("best_epoch")}
    for prefix, m in (("clean", test), ("pgd20", adv)):
        for k in ("acc", "bacc", "auc", "dice"):
            if k in m:
                out[f"{prefix}_{k}"] = round(m[k], 4)
        if "shares" in m:
            out[f"{prefix}_shares"] = "/".join(f"{s:.2f}" for s in m["shares"])
            out[f"{prefix}_collapsed"] = m["collapsed"]
    log = record.get("val_log", [])
    out["train_s"] = record.get("train_seconds", record.get("wall_seconds"))
    out["s_per_epoch"] = round(out["train_s"] / c["epochs"], 1) if out["train_s"] else None
    out["overfit_epochs"] = " ".join(map(str, record.get("overfitting_epochs", []))) if log else ""
    out["collapsed_epochs"] = " ".join(map(str, record.get("collapsed_epochs", []))) if log else ""
    out["val_adv_bacc_by_epoch"] = " ".join(f"{e.get('adv_bacc', e.get('adv_dice')):.2f}" for e in log)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--datasets", nargs="*", default=None)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--threads", type=int, default=1)  # 1 thread: far faster on a loaded 2-core box
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runs = [r for r in grid(args.profile) if args.datasets is None or r[0] in args.datasets]
    rows, start = [], time.perf_counter()
    for dataset in dict.fromkeys(r[0] for r in runs):
        for eps in sorted({o["eps"] for d, _, o in runs if d == dataset}):
            t = time.perf_counter()
            _, rec = nat_reference(dataset, args.profile, eps, progress=False)
            rows.append(row(dataset, "nat", {"eps": eps}, rec))
            print(f"{dataset} nat eps={eps} {time.perf_counter() - t:.0f}s", flush=True)
        for d, method, options in runs:
            if d != dataset:
                continue
            t = time.perf_counter()
            _, rec = AdversarialTraining(method, **options).train(dataset, args.profile,
                                                                 progress=False)
            rows.append(row(dataset, method, options, rec))
            print(f"{dataset} {method} {options} {time.perf_counter() - t:.0f}s", rows[-1],
                  flush=True)
    if args.no_write:
        return
    df = pd.DataFrame(rows)
    df.to_csv(OUT.with_suffix(".csv"), index=False)
    OUT.with_suffix(".md").write_text(
        f"# Adversarial training, {args.profile} profile (issue 4)\n\n"
        f"Generated {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC by "
        f"`SURVEY_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/defenses_at_cpu.py` "
        f"({time.perf_counter() - start:.0f} s for this collection pass; trained models cached in "
        "runs/). Machine: 2-core CPU, shared with other agents at the time, torch threads = "
        f"{args.threads}; wall times are indicative only.\n\n"
        + df.drop(columns=["val_adv_bacc_by_epoch"]).to_markdown(index=False) + "\n")


if __name__ == "__main__":
    main()

"""Acceptance benchmark of adversarial training (issue 4): the grid of notebook 05, cpu profile.

Trains (or loads from ``runs/``) every run of ``adversarial_training.grid`` and the NAT models,
evaluates clean and PGD-20 test metrics, and writes ``benchmarks/defenses_at_cpu.csv`` and ``.md``.

    SURVEY_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/defenses_at_cpu.py
    # in parallel, one thread each, then collect (everything cached in runs/):
    ... defenses_at_cpu.py --datasets pneumoniamnist --no-write &
    ... defenses_at_cpu.py --datasets breastmnist ph2 adrenalmnist3d --no-write; wait
    ... defenses_at_cpu.py
    (--runs pneumoniamnist:hat ... picks dataset:method pairs; start parallel jobs after the NAT
    model of their dataset is cached, so two jobs never train the same configuration)
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import pandas as pd
import torch

from survey_lib.defenses.adversarial_training import (
    AdversarialTraining,
    grid,
    nat_reference,
    summary,
)
from survey_lib.train import config_hash, runs_root

OUT = Path(__file__).resolve().parent / "defenses_at_cpu"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--datasets", nargs="*", default=None)
    ap.add_argument("--runs", nargs="*", default=None, help="only these dataset:method pairs")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--cached-only", action="store_true", help="skip runs not trained yet")
    ap.add_argument("--threads", type=int, default=1)  # 1 thread: far faster on a loaded 2-core box
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runs = [r for r in grid(args.profile) if (args.datasets is None or r[0] in args.datasets)
            and (args.runs is None or f"{r[0]}:{r[1]}" in args.runs)]
    rows, start = [], time.perf_counter()
    for dataset in dict.fromkeys(r[0] for r in runs):
        for eps in sorted({o["eps"] for d, _, o in runs if d == dataset}):
            t = time.perf_counter()
            _, rec = nat_reference(dataset, args.profile, eps, progress=False)
            rows.append(summary(rec))
            print(f"{dataset} nat eps={eps} {time.perf_counter() - t:.0f}s", flush=True)
        for d, method, options in runs:
            if d != dataset:
                continue
            t = time.perf_counter()
            defense = AdversarialTraining(method, **options)
            config = defense.resolve(dataset, args.profile)
            folder = runs_root() / dataset / f"{config['name']}-{config_hash(config)}"
            if args.cached_only and not (folder / "record.json").exists():
                print(f"{dataset} {method} {options}: not trained yet, skipped", flush=True)
                continue
            _, rec = defense.train(dataset, args.profile, progress=False)
            rows.append(summary(rec))
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
        + df.drop(columns=["val_robust_by_epoch", "eval_attack"]).to_markdown(index=False) + "\n")


if __name__ == "__main__":
    main()

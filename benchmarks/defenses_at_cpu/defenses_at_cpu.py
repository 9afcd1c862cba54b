"""Acceptance benchmark of adversarial training (issue 4): the grid of notebook 05, cpu profile.

Trains (or loads from ``runs/``) every run of ``adversarial_training.grid`` and the NAT models,
evaluates clean and PGD-20 test metrics, and writes ``benchmarks/defenses_at_cpu.csv`` and ``.md``.

    SURVEY_DATA_DIR=<data dir> .venv/bin/python benchmarks/defenses_at_cpu/defenses_at_cpu.py
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
from survey_lib.train import baseline_config, config_hash, runs_root

OUT = Path(__file__).resolve().parent / "defenses_at_cpu"


def cached(config: dict) -> bool:
    """Is this configuration trained (``cached_run``'s record written)?"""
    folder = runs_root() / config["dataset"] / f"{config['name']}-{config_hash(config)}"
    return (folder / "record.json").exists()


def acceptance(df: pd.DataFrame) -> list[str]:
    """The issue's bars, checked on the measured rows (a missing row is reported, not passed)."""
    out = []

    def pick(dataset, method, eps, **kw):
        rows = df[(df.dataset == dataset) & (df.method == method) & (df.eps == eps)]
        for k, v in kw.items():
            rows = rows[rows[k] == v]
        return rows.iloc[0] if len(rows) else None

    nat = pick("pneumoniamnist", "nat", 8)
    pgd_at = pick("pneumoniamnist", "pgd_at", 8)
    for method in ("pgd_at", "trades", "mart", "hat", "fast_at"):
        r = pick("pneumoniamnist", method, 8)
        if r is None:
            out.append(f"- PneumoniaMNIST {method}: not measured")
            continue
        ok = r.pgd_acc >= 0.65 and r.pgd_bacc >= 0.60 and r.clean_auc >= 0.90
        bar = " (bar for PGD-AT/TRADES)" if method in ("pgd_at", "trades") else ""
        out.append(f"- PneumoniaMNIST {method} 8/255: PGD-20 acc {r.pgd_acc:.3f}, bACC "
                   f"{r.pgd_bacc:.3f}, clean AUC {r.clean_auc:.3f} → "
                   f"{'meets' if ok else 'misses'} acc ≥ 0.65, bACC ≥ 0.60, AUC ≥ 0.90{bar}; "
                   f"collapsed: {r.pgd_collapsed}")
        if method == "fast_at" and pgd_at is not None:
            out.append(f"  - fast AT cost: {r.s_per_epoch} s/epoch vs PGD-AT {pgd_at.s_per_epoch} "
                       f"s/epoch = {r.s_per_epoch / pgd_at.s_per_epoch:.2f}×; catastrophic-"
                       f"overfitting epochs (robust val bACC drop ≥ 0.2): "
                       f"{r.overfit_epochs or 'none'}; robust val bACC per epoch: "
                       f"{r.val_robust_by_epoch}")
    if nat is not None:
        out.append(f"- PneumoniaMNIST NAT under PGD-20 at 8/255: acc {nat.pgd_acc:.3f} "
                   f"(bar: < 0.05 → {'yes' if nat.pgd_acc < 0.05 else 'no'})")
    best = df[(df.dataset == "breastmnist") & (df.eps == 2) & (df.method != "nat")
              & ~df.pgd_collapsed.astype(bool)].sort_values("pgd_bacc", ascending=False)
    if len(best):
        b = best.iloc[0]
        out.append(f"- BreastMNIST 2/255: best robust bACC {b.pgd_bacc:.3f} by {b.method} "
                   f"(balanced={b.balanced}, not collapsed) → "
                   f"{'meets' if b.pgd_bacc >= 0.60 else 'misses'} ≥ 0.60")
    for _, r in df[(df.dataset == "breastmnist") & (df.eps == 8) & (df.method != "nat")].iterrows():
        out.append(f"- BreastMNIST 8/255 {r.method} balanced={r.balanced} warm-up={r.warmup}: "
                   f"clean acc {r.clean_acc:.3f} bACC {r.clean_bacc:.3f} shares {r.clean_shares}; "
                   f"PGD-20 acc {r.pgd_acc:.3f} bACC {r.pgd_bacc:.3f}; collapsed (test): "
                   f"{r.clean_collapsed}/{r.pgd_collapsed}; collapsed val epochs: "
                   f"{r.collapsed_epochs or 'none'}")
    nat_seg, at_seg = pick("ph2", "nat", 8), pick("ph2", "pgd_at", 8)
    if nat_seg is not None and at_seg is not None:
        out.append(f"- PH2 U-Net 8/255 Dice clean/PGD-20: NAT {nat_seg.clean_dice:.3f}/"
                   f"{nat_seg.pgd_dice:.3f}, PGD-AT {at_seg.clean_dice:.3f}/{at_seg.pgd_dice:.3f}")
    nat3d, at3d = pick("adrenalmnist3d", "nat", 8), pick("adrenalmnist3d", "pgd_at", 8)
    if nat3d is not None and at3d is not None:
        out.append(f"- AdrenalMNIST3D 8/255 PGD-20 acc/bACC: NAT {nat3d.pgd_acc:.3f}/"
                   f"{nat3d.pgd_bacc:.3f}, PGD-AT {at3d.pgd_acc:.3f}/{at3d.pgd_bacc:.3f} "
                   f"(clean {at3d.clean_acc:.3f}/{at3d.clean_bacc:.3f})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--datasets", nargs="*", default=None)
    ap.add_argument("--runs", nargs="*", default=None, help="only these dataset:method pairs")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--cached-only", action="store_true", help="skip runs not trained yet")
    ap.add_argument("--threads", type=int, default=1)  # 1 thread: far faster on a loaded 2-core box
    ap.add_argument("--notes", default=None, help="a Markdown file to insert (how the run went)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runs = [r for r in grid(args.profile) if (args.datasets is None or r[0] in args.datasets)
            and (args.runs is None or f"{r[0]}:{r[1]}" in args.runs)]
    rows, start = [], time.perf_counter()
    for dataset in dict.fromkeys(r[0] for r in runs):
        base = baseline_config(dataset, args.profile)
        if args.cached_only and not cached(base):
            print(f"{dataset}: NAT model not trained yet, dataset skipped", flush=True)
            continue
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
            if args.cached_only and not cached(defense.resolve(dataset, args.profile)):
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
        f"`SURVEY_DATA_DIR=<data dir> .venv/bin/python benchmarks/defenses_at_cpu/defenses_at_cpu.py` "
        f"({time.perf_counter() - start:.0f} s for this collection pass; trained models cached in "
        "runs/). Machine: 2-core CPU, torch threads = "
        f"{args.threads}; what else ran on it, and so how far to trust the wall times, is in the "
        "notes below.\n\n## Acceptance checks (issue 4)\n\n"
        + "\n".join(acceptance(df)) + "\n\n"
        + (Path(args.notes).read_text() + "\n" if args.notes else "")
        + "## All runs (test split; `pgd_*`: white-box PGD-20 at "
        "the training ε)\n\n"
        + df.drop(columns=["val_robust_by_epoch", "eval_attack"]).to_markdown(index=False) + "\n")


if __name__ == "__main__":
    main()

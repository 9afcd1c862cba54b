"""How long must adversarial training run on the CPU before its verdict is stable? (issue 12.4)

Trains (or loads from ``runs/``) adversarially trained models of the cpu profile for every
combination of ``--epochs``, ``--balanced`` (class-balanced sampling power: 0.5 square-root, 1 every
class equally often) and ``--seeds``, and reads only their **validation** records: the robust
balanced accuracy (PGD on the validation split) of the checkpoint the recipe keeps, and whether the
model collapsed (≥ 95% of its validation predictions in one class) at that checkpoint and how
often during training. The test split is never loaded (training locks it). Writes
``at_budget.csv``, ``at_budget.md`` and ``at_budget.png`` beside this script.

    SURVEY_DATA_DIR=<data dir> python benchmarks/at_budget/at_budget.py --dataset breastmnist \\
        --method pgd_at --eps 8 --epochs 12 30 --balanced 0.5 1 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pandas as pd
import torch

from survey_lib.defenses import make_defense
from survey_lib.report import provenance

OUT = Path(__file__).resolve().parent


def run(dataset, method, eps, epochs, balanced, seed) -> dict:
    _, record = make_defense(method, eps=eps, epochs=epochs, balanced=balanced, seed=seed).train(
        dataset, "cpu", progress=False)
    log = record["val_log"]
    best = log[record["best_epoch"] - 1]
    return {"dataset": dataset, "method": method, "eps": eps, "epochs": epochs, "balanced": balanced,
            "seed": seed, "best_epoch": record["best_epoch"],
            "val_robust_bacc": round(best["adv_bacc"], 4), "val_robust_acc": round(best["adv_acc"], 4),
            "val_clean_bacc": round(best["clean_bacc"], 4),
            "val_collapsed_at_best": bool(best["clean_collapsed"] or best["adv_collapsed"]),
            "collapsed_epochs": sum(bool(e["clean_collapsed"] or e["adv_collapsed"]) for e in log),
            "train_seconds": record["train_seconds"],
            "val_robust_bacc_by_epoch": " ".join(f"{e['adv_bacc']:.2f}" for e in log)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="breastmnist")
    p.add_argument("--method", nargs="+", default=["pgd_at"])
    p.add_argument("--eps", type=float, default=8)
    p.add_argument("--epochs", nargs="+", type=int, default=[12, 30])
    p.add_argument("--balanced", nargs="+", type=float, default=[0.5, 1.0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--name", default="at_budget", help="stem of the output files")
    args = p.parse_args(argv)
    rows = [run(args.dataset, m, args.eps, e, b, s) for m, e, b, s in
            itertools.product(args.method, args.epochs, args.balanced, args.seeds)]
    df = pd.DataFrame(rows)
    df.to_csv(OUT / f"{args.name}.csv", index=False)
    agg = df.groupby(["method", "epochs", "balanced"]).agg(
        seeds=("seed", "count"), val_robust_bacc_mean=("val_robust_bacc", "mean"),
        val_robust_bacc_std=("val_robust_bacc", "std"), val_clean_bacc_mean=("val_clean_bacc", "mean"),
        collapsed_at_best=("val_collapsed_at_best", "sum"),
        collapsed_epochs_mean=("collapsed_epochs", "mean"), train_seconds=("train_seconds", "mean"),
    ).round(3).reset_index()
    command = "python benchmarks/at_budget/at_budget.py " + " ".join(argv or __import__("sys").argv[1:])
    (OUT / f"{args.name}.md").write_text(
        provenance(command) + f" Validation split only ({args.dataset}); PGD-10 on the validation "
        "images picks the checkpoint (robust bACC) and gives these numbers.\n\n"
        + agg.to_markdown(index=False) + "\n\nPer run:\n\n" + df.to_markdown(index=False) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for _, r in df.iterrows():
        curve = [float(v) for v in r["val_robust_bacc_by_epoch"].split()]
        ax.plot(range(1, len(curve) + 1), curve, alpha=0.7,
                label=f"{r['method']} {r['epochs']} ep, bal {r['balanced']:g}, seed {r['seed']}")
    ax.axhline(0.5, ls=":", c="grey")
    ax.set(xlabel="epoch", ylabel="validation robust bACC (PGD-10)", ylim=(0.3, 1),
           title=f"{args.dataset} ε={args.eps:g}/255: validation robust bACC per epoch")
    ax.legend(fontsize=5, ncol=2)
    fig.tight_layout()
    fig.savefig(OUT / f"{args.name}.png", dpi=120)
    print(agg.to_string(index=False), f"threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()

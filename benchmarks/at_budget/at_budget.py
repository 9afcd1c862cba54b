"""How long must adversarial training run on the CPU before its verdict is stable? (issue 12.4)

Trains (or loads from ``runs/``) adversarially trained models of the cpu profile for every
combination of ``--epochs``, ``--balanced`` (class-balanced sampling power: 0.5 square-root, 1 every
class equally often; ``profile``: the profile's) and ``--seeds``, and reads only their
**validation** records: the robust balanced accuracy (robust Dice for segmentation; PGD on the
validation split) of the checkpoint the recipe keeps, and for classification whether the model
collapsed (≥ 95% of its validation predictions in one class) at that checkpoint and how often
during training. The test split is never loaded (training locks it). Writes
``at_budget.csv``, ``at_budget.md`` and ``at_budget.png`` beside this script.

    SURVEY_DATA_DIR=<data dir> python benchmarks/at_budget/at_budget.py --dataset breastmnist \\
        --method pgd_at --eps 8 --epochs 12 30 --balanced 0.5 1 --seeds 0 1 2
    SURVEY_DATA_DIR=<data dir> python benchmarks/at_budget/at_budget.py --dataset ph2 \\
        --method pgd_at --eps 8 --epochs 10 20 30 --balanced profile --seeds 0 --name at_budget_ph2
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pandas as pd
import torch

from survey_lib.data import task_info
from survey_lib.defenses import make_defense
from survey_lib.report import provenance

OUT = Path(__file__).resolve().parent


def run(dataset, method, eps, epochs, balanced, seed) -> dict:
    _, record = make_defense(method, eps=eps, epochs=epochs, balanced=balanced, seed=seed).train(
        dataset, "cpu", progress=False)
    log = record["val_log"]
    best = log[record["best_epoch"] - 1]
    m = metric(dataset)
    row = {"dataset": dataset, "method": method, "eps": eps, "epochs": epochs, "balanced": balanced,
           "seed": seed, "best_epoch": record["best_epoch"],
           f"val_robust_{m}": round(best[f"adv_{m}"], 4), f"val_clean_{m}": round(best[f"clean_{m}"], 4)}
    if m == "bacc":  # classification: accuracy and collapse beside the balanced accuracy
        row.update({"val_robust_acc": round(best["adv_acc"], 4),
                    "val_collapsed_at_best": bool(best["clean_collapsed"] or best["adv_collapsed"]),
                    "collapsed_epochs": sum(bool(e["clean_collapsed"] or e["adv_collapsed"])
                                            for e in log)})
    return {**row, "train_seconds": record["train_seconds"],
            f"val_robust_{m}_by_epoch": " ".join(f"{e[f'adv_{m}']:.2f}" for e in log)}


def _text(balanced) -> str:
    return "profile" if balanced is None or pd.isna(balanced) else f"{balanced:g}"


def _balanced(value: str) -> float | None:
    return None if value == "profile" else float(value)


def metric(dataset: str) -> str:
    """What picks the checkpoint: robust Dice for segmentation, robust balanced accuracy else."""
    return "dice" if dataset == "ph2" else "bacc"  # PH2, the only segmentation dataset


def plot(df: pd.DataFrame, dataset: str, eps: float, out: Path) -> None:
    """Validation robust bACC (Dice for segmentation) per epoch, one line per run; chance (1/K)
    dotted for classification."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = metric(dataset)
    label = {"bacc": "bACC", "dice": "Dice"}[m]
    fig, ax = plt.subplots(figsize=(7, 4))
    for _, r in df.iterrows():
        curve = [float(v) for v in r[f"val_robust_{m}_by_epoch"].split()]
        ax.plot(range(1, len(curve) + 1), curve, alpha=0.7, marker=".",
                label=f"{r['method']} {r['epochs']} ep, bal {_text(r['balanced'])}, seed {r['seed']}")
    if m == "bacc":
        chance = 1 / task_info(dataset).num_classes
        ax.axhline(chance, ls=":", c="grey", label=f"chance (1/{round(1 / chance)})")
    ax.set(xlabel="epoch", ylabel=f"validation robust {label} (PGD-10)", ylim=(0, 1),
           title=f"{dataset} ε={eps:g}/255: validation robust {label} per epoch")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="breastmnist")
    p.add_argument("--method", nargs="+", default=["pgd_at"])
    p.add_argument("--eps", type=float, default=8)
    p.add_argument("--epochs", nargs="+", type=int, default=[12, 30])
    p.add_argument("--balanced", nargs="+", type=_balanced, default=[0.5, 1.0],
                   help="sampling power per run; 'profile': the cpu profile's (segmentation)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--name", default="at_budget", help="stem of the output files")
    p.add_argument("--plot-only", action="store_true", help="redraw <name>.png from <name>.csv")
    args = p.parse_args(argv)
    if args.plot_only:
        return plot(pd.read_csv(OUT / f"{args.name}.csv"), args.dataset, args.eps, OUT / f"{args.name}.png")
    rows = [run(args.dataset, m, args.eps, e, b, s) for m, e, b, s in
            itertools.product(args.method, args.epochs, args.balanced, args.seeds)]
    df = pd.DataFrame(rows)
    df.to_csv(OUT / f"{args.name}.csv", index=False)
    m = metric(args.dataset)
    stats = {"seeds": ("seed", "count"), f"val_robust_{m}_mean": (f"val_robust_{m}", "mean"),
             f"val_robust_{m}_std": (f"val_robust_{m}", "std"),
             f"val_clean_{m}_mean": (f"val_clean_{m}", "mean")}
    if m == "bacc":
        stats.update(collapsed_at_best=("val_collapsed_at_best", "sum"),
                     collapsed_epochs_mean=("collapsed_epochs", "mean"))
    agg = df.assign(balanced=df.balanced.map(_text)).groupby(["method", "epochs", "balanced"]).agg(
        **stats, train_seconds=("train_seconds", "mean")).round(3).reset_index()
    command = "python benchmarks/at_budget/at_budget.py " + " ".join(argv or __import__("sys").argv[1:])
    (OUT / f"{args.name}.md").write_text(
        provenance(command) + f" Validation split only ({args.dataset}); PGD-10 on the validation "
        f"images picks the checkpoint (robust {'Dice' if m == 'dice' else 'bACC'}) and gives these "
        "numbers.\n\n"
        + agg.to_markdown(index=False) + "\n\nPer run:\n\n" + df.to_markdown(index=False) + "\n")
    plot(df, args.dataset, args.eps, OUT / f"{args.name}.png")
    print(agg.to_string(index=False), f"threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()

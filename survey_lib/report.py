"""Tables and figures from result records (JSON-able dicts); this module never trains or attacks.

Baselines: :func:`baseline_table` puts our test metrics beside the MedMNIST v2 paper's
(Yang et al., Scientific Data 2023, Table 3: ResNet-18 (28) for 2D, ResNet-18 + 3D for 3D);
:func:`plot_baselines` draws the comparison and the validation curves.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# MedMNIST v2, Table 3: test AUC / ACC (ResNet-18 (28) for 2D, ResNet-18 + 3D (28) for 3D).
MEDMNIST_V2_REFERENCE = {
    "pneumoniamnist": (0.944, 0.854),
    "breastmnist": (0.901, 0.863),
    "retinamnist": (0.717, 0.524),
    "adrenalmnist3d": (0.827, 0.721),
    "vesselmnist3d": (0.874, 0.877),
}


def baseline_table(records: list[dict]) -> pd.DataFrame:
    """One row per trained baseline: our test metrics, the paper's, the cost and the command."""
    rows = []
    for r in records:
        c, t = r["config"], r["test"]
        ref_auc, ref_acc = MEDMNIST_V2_REFERENCE.get(c["dataset"], (None, None))
        row = {"dataset": c["dataset"], "size": c["size"], "model": c["model"],
               "profile": c["profile"], "epochs": c["epochs"], "best_epoch": r["best_epoch"]}
        if "dice" in t:
            row.update(test_dice=t["dice"], test_iou=t["iou"])
        else:
            row.update(test_auc=t["auc"], test_acc=t["acc"], test_bacc=t["bacc"],
                       pred_shares=t["shares"], collapsed="yes" if t["collapsed"] else "no",
                       paper_auc=ref_auc, paper_acc=ref_acc)
        row.update(wall_seconds=r["wall_seconds"], device=r["device"],
                   command=(f"python -m survey_lib train --dataset {c['dataset']} "
                            f"--size {c['size']} --profile {c['profile']}"))
        rows.append(row)
    return pd.DataFrame(rows)


def save_table(df: pd.DataFrame, stem: str | Path, note: str = "") -> list[Path]:
    """Write ``stem.csv`` and ``stem.md`` (``note``, e.g. the command and machine, heads the
    Markdown) and return their paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    df.to_csv(csv, index=False, float_format="%.4f")
    md.write_text((note + "\n\n" if note else "") + df.to_markdown(index=False, floatfmt=".3f") + "\n")
    return [csv, md]


def provenance(command: str) -> str:
    """One Markdown paragraph: the command, the date, the machine and the software versions."""
    import datetime
    import os
    import platform

    import torch

    from .train import select_device

    device = select_device()
    where = (torch.cuda.get_device_name(0) if device.type == "cuda" else
             f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, "
             f"{torch.get_num_threads()} torch threads")
    return (f"Produced by `{command}` on {datetime.date.today().isoformat()}: device {device} "
            f"({where}), torch {torch.__version__}, Python {platform.python_version()}.")


def plot_baselines(records: list[dict]):
    """Left: our test AUC/ACC/bACC beside the paper's; right: validation score per epoch."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    table = baseline_table([r for r in records if "auc" in r["test"]])
    long = []
    for _, row in table.iterrows():
        for metric in ("auc", "acc", "bacc"):
            long.append({"dataset": row["dataset"], "metric": f"ours {metric.upper()}",
                         "value": row[f"test_{metric}"]})
        for metric in ("auc", "acc"):
            if pd.notna(row[f"paper_{metric}"]):
                long.append({"dataset": row["dataset"], "metric": f"paper {metric.upper()}",
                             "value": row[f"paper_{metric}"]})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    sns.barplot(pd.DataFrame(long), x="dataset", y="value", hue="metric", ax=axes[0])
    axes[0].set(title="Test metrics: ours vs MedMNIST v2 ResNet-18", ylabel="score", ylim=(0, 1))
    axes[0].legend(fontsize=7, ncol=2)
    curves = [{"dataset": r["config"]["dataset"], **h} for r in records for h in r["history"]]
    sns.lineplot(pd.DataFrame(curves), x="epoch", y="val_score", hue="dataset", marker="o", ax=axes[1])
    axes[1].set(title="Validation score per epoch (AUC; Dice for PH2)", ylabel="val score")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the benchmark grid
DEFENSE_ORDER = ["nat", "pgd_at", "trades", "mart", "hat", "fast_at"]
ATTACK_ORDER = ["clean", "fgsm", "pgd", "cw_pgd", "autoattack", "square"]


def benchmark_table(rows: list[dict], dataset: str, metric: str = "robust_acc") -> pd.DataFrame:
    """The survey-style table of one dataset: rows defense, columns (attack, ε), values ``metric``;
    a collapsed model's values carry a dagger (†) in :func:`save_benchmark_tables`."""
    df = pd.DataFrame([r for r in rows if r["dataset"] == dataset])
    table = df.pivot_table(index="defense", columns=["attack", "eps"], values=metric)
    defenses = [d for d in DEFENSE_ORDER if d in table.index]
    columns = sorted(table.columns, key=lambda c: (ATTACK_ORDER.index(c[0]) if c[0] in ATTACK_ORDER
                                                   else 99, c[1]))
    return table.loc[defenses, columns]


def save_benchmark_tables(rows: list[dict], out: str | Path, note: str = "") -> list[Path]:
    """For each dataset: robust accuracy and robust balanced accuracy tables as CSV, Markdown and
    LaTeX (``<dataset>_<metric>.{csv,md,tex}``), plus every row as ``rows.csv``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "rows.csv"]
    pd.DataFrame(rows).to_csv(paths[0], index=False, float_format="%.4f")
    collapsed = {(r["dataset"], r["defense"], r["eps"]) for r in rows if r["collapsed"]}
    for dataset in sorted({r["dataset"] for r in rows}):
        for metric in ("robust_acc", "robust_bacc"):
            table = benchmark_table(rows, dataset, metric)
            marked = table.copy().astype(object)
            for defense in table.index:
                for attack, eps in table.columns:
                    value = table.loc[defense, (attack, eps)]
                    dagger = "†" if (dataset, defense, eps) in collapsed else ""
                    marked.loc[defense, (attack, eps)] = "" if pd.isna(value) else f"{value:.3f}{dagger}"
            marked.columns = [f"{a} ε={e:g}" for a, e in table.columns]
            stem = out / f"{dataset}_{metric}"
            table.to_csv(stem.with_suffix(".csv"), float_format="%.4f")
            caption = (f"{dataset}: {metric.replace('_', ' ')} (ε in /255; † = collapsed model, "
                       "≥ 95% of its clean predictions in one class)")
            stem.with_suffix(".md").write_text(
                (note + "\n\n" if note else "") + f"**{caption}**\n\n" + marked.to_markdown() + "\n")
            stem.with_suffix(".tex").write_text(marked.to_latex(caption=caption,
                                                                label=f"tab:{dataset}-{metric}"))
            paths += [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    return paths


def plot_benchmark(rows: list[dict]):
    """Three figures: robust accuracy vs ε (one panel per dataset and attack), the clean-vs-robust
    (PGD) trade-off, and training / attack cost. Returns ``{name: figure}``."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    df = pd.DataFrame(rows)
    figs = {}
    attacked = df[df["attack"] != "clean"]
    grid = sns.relplot(attacked, x="eps", y="robust_acc", hue="defense", style="defense",
                       col="attack", row="dataset", kind="line", marker="o", height=2.4,
                       hue_order=[d for d in DEFENSE_ORDER if d in set(df["defense"])],
                       facet_kws={"ylim": (0, 1)})
    grid.set_axis_labels("ε (/255)", "robust accuracy")
    grid.set_titles("{row_name} · {col_name}", size=9)
    grid.figure.suptitle("Robust accuracy vs ε (per dataset and attack)", y=1.02)
    figs["robust_vs_eps"] = grid.figure
    pgd = df[df["attack"] == "pgd"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    sns.scatterplot(pgd, x="clean_acc", y="robust_acc", hue="defense", style="dataset",
                    size="eps", ax=ax)
    ax.set(title="Trade-off: clean vs PGD robust accuracy", xlabel="clean accuracy",
           ylabel="robust accuracy (PGD, same ε)")
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    figs["tradeoff"] = fig
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    models = df.drop_duplicates(["dataset", "defense", "eps"])
    sns.barplot(models, x="defense", y="train_seconds", hue="dataset", ax=axes[0])
    axes[0].set(title="Training cost per model", ylabel="seconds", xlabel="")
    sns.barplot(attacked, x="attack", y="attack_seconds", hue="dataset", ax=axes[1])
    axes[1].set(title="Attack cost per cell", ylabel="seconds", xlabel="")
    fig.tight_layout()
    figs["cost"] = fig
    return figs


def plot_gallery(examples: list[dict]):
    """The adversarial example gallery (examples from :func:`survey_lib.benchmark.gallery`): one
    row per dataset and model, each image clean then attacked, titled true / predicted class."""
    import matplotlib.pyplot as plt

    from .figures import _show

    n = max(len(e["x"]) for e in examples)
    # constrained layout leaves room for each image's two-line title (tight_layout let the titles
    # of a row overlap the images above them)
    fig, axes = plt.subplots(len(examples), 2 * n, figsize=(1.5 * 2 * n, 2.0 * len(examples) + 0.4),
                             squeeze=False, layout="constrained")
    for row, e in zip(axes, examples):
        names = [c[:10] for c in e["classes"]]
        for j in range(n):
            for k, (img, pred) in enumerate(((e["x"], e["pred"]), (e["x_adv"], e["pred_adv"]))):
                ok = int(pred[j]) == int(e["y"][j])
                _show(row[2 * j + k], img[j], ("clean" if k == 0 else f"PGD {e['eps']:g}/255")
                      + f"\n→ {names[int(pred[j])]}")
                row[2 * j + k].title.set_color("black" if ok else "red")
        row[0].text(-0.15, 0.5, f"{e['dataset'][:-5]}\n{e['defense']}", transform=row[0].transAxes,
                    ha="right", va="center", fontsize=8)
    fig.suptitle("Adversarial examples: prediction on the clean and the attacked image (red: wrong)",
                 fontsize=10)
    return fig


def save_figures(figs: dict, out: str | Path) -> list[Path]:
    """Save each figure as PNG and PDF under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figs.items():
        for ext in ("png", "pdf"):
            paths.append(out / f"{name}.{ext}")
            fig.savefig(paths[-1], dpi=120, bbox_inches="tight")
    return paths


def survey_findings(rows: list[dict], attack: str = "pgd") -> pd.DataFrame:
    """The survey's qualitative findings checked against our rows, one line per dataset and
    finding: (1) undefended models fall to ~0 robust accuracy at the largest ε; (2) adversarial
    training keeps robust accuracy well above NAT's; (3) it costs clean accuracy. A collapsed model
    never counts as robust (its robust accuracy is the majority rate, its balanced accuracy 0.5)."""
    df = pd.DataFrame(rows)
    out = []
    for dataset, d in df.groupby("dataset"):
        eps = d["eps"].max()
        at_eps = d[(d["eps"] == eps) & (d["attack"] == attack)].set_index("defense")
        if "nat" not in at_eps.index:
            continue
        nat = at_eps.loc["nat"]
        defended = at_eps.drop(index="nat")
        healthy = defended[~defended["collapsed"]]
        out.append({"dataset": dataset, "finding": f"NAT robust accuracy near 0 at ε={eps:g}/255",
                    "ours": f"NAT {attack} acc {nat['robust_acc']:.3f}, bACC {nat['robust_bacc']:.3f}",
                    "reproduced": bool(nat["robust_acc"] < 0.1)})
        if len(defended):
            best = healthy["robust_bacc"].idxmax() if len(healthy) else None
            text = ("every defended model collapsed" if best is None else
                    f"best {best}: acc {healthy.loc[best, 'robust_acc']:.3f}, bACC "
                    f"{healthy.loc[best, 'robust_bacc']:.3f} (NAT {nat['robust_acc']:.3f})")
            out.append({"dataset": dataset, "finding": "adversarial training well above NAT",
                        "ours": text, "reproduced": best is not None and bool(
                            healthy.loc[best, "robust_bacc"] > nat["robust_bacc"] + 0.2)})
            drop = (nat["clean_acc"] - defended["clean_acc"]).mean()
            out.append({"dataset": dataset, "finding": "clean accuracy lower for AT",
                        "ours": f"mean clean-acc drop {drop:+.3f} (NAT {nat['clean_acc']:.3f})",
                        "reproduced": bool(drop > 0)})
    return pd.DataFrame(out)

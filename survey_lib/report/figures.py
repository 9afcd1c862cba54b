"""Benchmark figures from rows (this module never trains; the gallery gets its examples from
:func:`survey_lib.benchmark.gallery`).

- robust accuracy vs ε: one panel per dataset and attack, one line per model (a defense at its
  training ε, averaged over seeds) from its clean accuracy at ε = 0, with the 95% interval over
  test images as a band; a line never joins two models;
- the clean-vs-robust trade-off at the largest ε, with error bars (± std over seeds);
- training and attack cost;
- the gallery: clean image, attacked image and the amplified perturbation, full class names.
"""

from __future__ import annotations

import pandas as pd

from .tables import ATTACK_LABEL, ATTACK_ORDER, DEFENSE_ORDER, model_label, summarise


def _metric(d: pd.DataFrame) -> str:
    """What a dataset's curves show: Dice for segmentation, accuracy otherwise."""
    return "dice" if "dice" in d and d["dice"].notna().any() else "acc"


def plot_robust_vs_eps(summary: pd.DataFrame):
    import matplotlib.pyplot as plt

    attacked = summary[(summary["attack"] != "clean") & summary["eval_eps"].notna()]
    datasets = sorted(attacked["dataset"].unique())
    # each dataset's row holds its own attacks, from the left (segmentation and classification
    # grids have different columns)
    per = {d: [a for a in ATTACK_ORDER if a in set(attacked.loc[attacked["dataset"] == d, "attack"])]
           for d in datasets}
    ncols = max((len(v) for v in per.values()), default=0)
    if not datasets or not ncols:
        return None
    fig, axes = plt.subplots(len(datasets), ncols, figsize=(2.6 * ncols, 2.4 * len(datasets)),
                             squeeze=False, sharey=True)
    colours = dict(zip(DEFENSE_ORDER, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for i, dataset in enumerate(datasets):
        d = summary[summary["dataset"] == dataset]
        metric = _metric(d)
        clean = d[d["attack"] == "clean"]
        below = len(per[datasets[i + 1]]) if i + 1 < len(datasets) else 0
        for j in range(ncols):
            ax = axes[i][j]
            if j >= len(per[dataset]):
                ax.axis("off")
                continue
            attack = per[dataset][j]
            for (defense, train_eps), m in d[d["attack"] == attack].groupby(
                    ["defense", d["train_eps"].fillna(-1)], sort=False):
                train_eps = None if train_eps == -1 else train_eps
                c = clean[(clean["defense"] == defense) & (clean["train_eps"].fillna(-1)
                                                           == (train_eps if train_eps is not None else -1))]
                m = m.sort_values("eval_eps")
                xs, ys = [0.0, *m["eval_eps"]], [*c[metric].head(1), *m[metric]]
                lo = [*c[f"{metric}_lo"].head(1), *m[f"{metric}_lo"]]
                hi = [*c[f"{metric}_hi"].head(1), *m[f"{metric}_hi"]]
                xs = xs[-len(ys):]
                ax.plot(xs, ys, marker="o", ms=3, color=colours.get(defense),
                        label=model_label(defense, train_eps))
                ax.fill_between(xs, lo, hi, color=colours.get(defense), alpha=0.15, lw=0)
            ax.set(ylim=(0, 1), title=f"{dataset.replace('mnist', '')} · {ATTACK_LABEL[attack]}",
                   xlabel="ε (/255)" if j >= below else "")
            ax.title.set_fontsize(8)
            if j == 0:
                ax.set_ylabel("Dice" if metric == "dice" else "accuracy")
        if axes[i][0].get_legend_handles_labels()[0]:
            axes[i][-1].legend(*axes[i][0].get_legend_handles_labels(), fontsize=6,
                               bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.suptitle("Robust accuracy (Dice for segmentation) vs ε: one line per model\n(mean over "
                 "seeds, 95% interval band over test images; ε = 0 is the clean score)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_tradeoff(summary: pd.DataFrame, attack: str = "pgd"):
    import matplotlib.pyplot as plt

    rows = []
    for (dataset, defense, train_eps), d in summary.groupby(
            ["dataset", "defense", summary["train_eps"].fillna(-1)], sort=False):
        top = d[d["attack"] == attack]
        clean = d[d["attack"] == "clean"]
        if top.empty or clean.empty or "acc" not in top or top["acc"].isna().all():
            continue
        r = top.loc[top["eval_eps"].idxmax()]
        rows.append({"dataset": dataset, "model": model_label(defense, None if train_eps == -1
                                                              else train_eps),
                     "clean": clean["acc"].iloc[0], "clean_std": clean["acc_std"].iloc[0],
                     "robust": r["acc"], "robust_std": r["acc_std"], "eps": r["eval_eps"]})
    if not rows:
        return None
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    markers = dict(zip(sorted(df["dataset"].unique()), "osD^v"))
    for _, r in df.iterrows():
        ax.errorbar(r["clean"], r["robust"], xerr=r["clean_std"] if pd.notna(r["clean_std"]) else None,
                    yerr=r["robust_std"] if pd.notna(r["robust_std"]) else None,
                    marker=markers[r["dataset"]], ls="none", capsize=2,
                    label=f"{r['dataset']} · {r['model']}")
    ax.set(title=f"Clean vs {ATTACK_LABEL[attack]} accuracy at each dataset's largest ε "
                 "(error bars: ± std over seeds)", xlabel="clean accuracy", ylabel="robust accuracy")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=6, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def plot_cost(rows: list[dict]):
    import matplotlib.pyplot as plt
    import seaborn as sns

    df = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    models = df.drop_duplicates(["dataset", "defense", "train_eps", "seed"])
    sns.barplot(models, x="defense", y="train_seconds", hue="dataset", ax=axes[0],
                order=[d for d in DEFENSE_ORDER if d in set(df["defense"])])
    axes[0].set(title="Training cost per model (mean over seeds)", ylabel="seconds", xlabel="")
    attacked = df[~df["attack"].isin(["clean", "sanity"])]
    if not attacked.empty:
        sns.barplot(attacked, x="attack", y="attack_seconds", hue="dataset", ax=axes[1],
                    order=[a for a in ATTACK_ORDER if a in set(attacked["attack"])])
    axes[1].set(title="Attack cost per cell (mean)", ylabel="seconds", xlabel="")
    fig.tight_layout()
    return fig


def plot_benchmark(rows: list[dict]) -> dict:
    """``{name: figure}``: robust_vs_eps, tradeoff, cost (a figure without data is left out)."""
    summary = summarise(rows)
    figs = {"robust_vs_eps": plot_robust_vs_eps(summary), "tradeoff": plot_tradeoff(summary),
            "cost": plot_cost(rows)}
    return {k: v for k, v in figs.items() if v is not None}


def plot_gallery(examples: list[dict]):
    """The adversarial-example gallery: for each dataset and model, three rows — the clean images
    (titled with the full true class and the prediction), their PGD versions, and the perturbation
    amplified to the full grey range (−ε black, +ε white); a wrong prediction is red."""
    import matplotlib.pyplot as plt

    from ..figures import _show

    n = max(len(e["x"]) for e in examples)
    fig, axes = plt.subplots(3 * len(examples), n, figsize=(2.4 * n, 2.3 * 3 * len(examples)),
                             squeeze=False, layout="constrained")
    for k, e in enumerate(examples):
        names = e["classes"]
        delta = ((e["x_adv"] - e["x"]) / (2 * e["eps"] / 255) + 0.5).clamp(0, 1)
        for j in range(n):
            panels = ((e["x"], e["pred"], "clean"), (e["x_adv"], e["pred_adv"], f"PGD ε={e['eps']:g}/255"),
                      (delta, None, "δ amplified"))
            for r, (img, pred, what) in enumerate(panels):
                ax = axes[3 * k + r][j]
                if j >= len(e["x"]):
                    ax.axis("off")
                    continue
                truth = f"true: {names[int(e['y'][j])]}\n" if r == 0 else ""
                _show(ax, img[j], what if pred is None else f"{truth}{what} → {names[int(pred[j])]}")
                if pred is not None and int(pred[j]) != int(e["y"][j]):
                    ax.title.set_color("red")
        axes[3 * k][0].text(-0.08, 0.5, f"{e['dataset']}\n{e['defense']}, seed {e.get('seed', 0)}",
                            transform=axes[3 * k][0].transAxes, ha="right", va="center", fontsize=8)
    fig.suptitle("Adversarial examples against NAT and PGD-AT (red: wrong prediction)", fontsize=10)
    return fig

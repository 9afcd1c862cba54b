"""What the rows support: the per-model sanity checks against gradient masking (Carlini et al. 2019,
"On Evaluating Adversarial Robustness"), and the survey's findings, each claimed only when the 95%
intervals over test images separate ("not established" otherwise)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .tables import _boot_index, decode, interval, model_label, summarise

TOL = 0.01  # one point: ties of a few images are not violations
WHITE_BOX, BLACK_BOX = ("pgd", "cw"), ("square", "simba", "transfer")


def _paired_accuracy(a: dict, b: dict) -> tuple[float, float, int]:
    """Accuracy of rows ``a`` and ``b`` on the test images both were evaluated on, and how many."""
    def by_index(row):
        correct = decode(row["pred"]) == decode(row["y"])
        return dict(zip(row["index"] or range(len(correct)), correct))

    ca, cb = by_index(a), by_index(b)
    common = sorted(set(ca) & set(cb))
    if not common:
        return float("nan"), float("nan"), 0
    return (float(np.mean([ca[i] for i in common])), float(np.mean([cb[i] for i in common])),
            len(common))


def sanity_table(rows: list[dict]) -> pd.DataFrame:
    """One line per model: each check ``passed`` (True/False, None when not measured) with its
    numbers, and ``flags`` (the failed checks' names).

    - ``monotone_eps``: PGD and CW accuracy never rise with ε (by more than a point);
    - ``converged``: the stronger PGD (default 100 steps × 5 restarts) within a point of the
      grid's PGD ("attack not converged");
    - ``large_eps``: ≤ 5% correct at ε = 64/255 ("possible masking");
    - ``black_box``: Square, SimBA and transfer accuracy ≥ PGD's on the same images, at every ε
      (a black-box attack beating the white-box one is a sign of masked gradients).
    """
    models: dict[tuple, list[dict]] = {}
    for r in rows:
        if "pred" in r or r["attack"] == "sanity":
            models.setdefault((r["dataset"], r["defense"], r["train_eps"], r["seed"]), []).append(r)
    lines = []
    for key, group in models.items():
        by = {(r["attack"], r["eval_eps"]): r for r in group}
        line = dict(zip(("dataset", "defense", "train_eps", "seed"), key))
        eps = sorted({e for (_, e) in by if e is not None})
        curves = {a: [by[(a, e)]["acc"] for e in eps if (a, e) in by] for a in WHITE_BOX}
        curves = {a: c for a, c in curves.items() if len(c) > 1}
        line["monotone_eps"] = all(b <= a + TOL for c in curves.values() for a, b in zip(c, c[1:])) \
            if curves else None
        line["monotone_eps_detail"] = "; ".join(f"{a}: " + " ".join(f"{v:.3f}" for v in c)
                                                for a, c in curves.items())
        s = by.get(("sanity", None), {}).get("sanity")
        line["converged"] = None if s is None else s["strong_pgd_acc"] >= s["pgd_acc"] - TOL
        line["large_eps"] = None if s is None else s["eps64_acc"] <= 0.05
        line["sanity_detail"] = "" if s is None else (
            f"ε={s['eps']:g}: PGD {s['pgd_acc']:.3f}, stronger PGD {s['strong_pgd_acc']:.3f}; "
            f"ε=64: {s['eps64_acc']:.3f}")
        worse = []
        for (a, e), r in by.items():
            if a in BLACK_BOX and ("pgd", e) in by:
                black, white, n = _paired_accuracy(r, by[("pgd", e)])
                if black < white - TOL:
                    worse.append(f"{a} ε={e:g}: {black:.3f} < PGD {white:.3f} (n={n})")
        compared = any(a in BLACK_BOX for a, _ in by)
        line["black_box"] = (not worse) if compared else None
        line["black_box_detail"] = "; ".join(worse)
        names = {"monotone_eps": "accuracy rises with ε", "converged": "attack not converged",
                 "large_eps": "possible masking (ε=64 leaves > 5%)",
                 "black_box": "black-box beats white-box"}
        line["flags"] = "; ".join(v for k, v in names.items() if line[k] is False)
        lines.append(line)
    return pd.DataFrame(lines)


def _per_image(rows: list[dict], dataset, defense, attack, eps, metric: str = "acc"):
    """Per-seed × per-image scores of one model × column (seeds in order), or None: correctness for
    ``metric="acc"``, Dice for ``metric="dice"`` (segmentation rows)."""
    field = "dice_per_image" if metric == "dice" else "pred"
    group = sorted([r for r in rows if r["dataset"] == dataset and r["defense"] == defense
                    and r["attack"] == attack and r["eval_eps"] == eps and field in r],
                   key=lambda r: r["seed"])
    if not group:
        return None
    if metric == "dice":
        return np.array([r["dice_per_image"] for r in group])
    y = decode(group[0]["y"])
    return np.stack([decode(r["pred"]) == y for r in group])


def difference(rows, dataset, a: tuple, b: tuple, metric: str = "acc") -> dict:
    """Mean accuracy (``metric="dice"``: Dice) of a − b (each a (defense, attack, ε) averaged over
    its seeds) with its paired 95% bootstrap interval over the test images both were evaluated on."""
    sa, sb = _per_image(rows, dataset, *a, metric), _per_image(rows, dataset, *b, metric)
    if sa is None or sb is None or sa.shape[1] != sb.shape[1]:
        return {}
    idx = _boot_index(sa.shape[1])
    lo, hi = interval(sa[:, idx].mean(2).mean(0) - sb[:, idx].mean(2).mean(0))
    return {"diff": float(sa.mean() - sb.mean()), "lo": lo, "hi": hi}


def survey_findings(rows: list[dict], attack: str = "pgd") -> pd.DataFrame:
    """The survey's qualitative findings checked on our rows at each dataset's largest ε, one line
    each: (1) NAT falls to about 0 (< 0.1); (2) each AT method above NAT; (3) AT costs clean
    accuracy; (4) the AT methods against each other. An effect is "established" only when the 95%
    intervals over test images separate, else "not established"; a collapsed model never counts
    as robust."""
    summary = summarise(rows)
    out = []
    for dataset, d in summary.groupby("dataset"):
        if "acc" not in d or d["acc"].isna().all():
            continue  # segmentation: Dice, in the tables
        d = d[d["acc"].notna()]
        eps = d["eval_eps"].max()
        at = d[(d["eval_eps"] == eps) & (d["attack"] == attack)].set_index("defense")
        clean = d[d["attack"] == "clean"].set_index("defense")
        if "nat" not in at.index:
            continue
        nat = at.loc["nat"]
        near0 = nat["acc_hi"] < 0.1
        out.append({"dataset": dataset, "finding": f"NAT {attack} accuracy near 0 at ε={eps:g}",
                    "ours": f"{nat['acc']:.3f} [{nat['acc_lo']:.3f}, {nat['acc_hi']:.3f}]",
                    "verdict": "established" if near0 else "not established"})
        for defense, r in at.drop(index="nat").iterrows():
            above = r["bacc_lo"] > nat["bacc_hi"] and not r["collapsed"]
            out.append({"dataset": dataset, "finding": f"{model_label(defense, r['train_eps'])} "
                        f"robust bACC above NAT ({attack}, ε={eps:g})",
                        "ours": f"{r['bacc']:.3f} [{r['bacc_lo']:.3f}, {r['bacc_hi']:.3f}] vs NAT "
                                f"{nat['bacc']:.3f} [{nat['bacc_lo']:.3f}, {nat['bacc_hi']:.3f}]"
                                + (" (collapsed)" if r["collapsed"] else ""),
                        "verdict": "established" if above else "not established"})
            if defense in clean.index and "nat" in clean.index:
                c, cn = clean.loc[defense], clean.loc["nat"]
                costs = c["acc_hi"] < cn["acc_lo"]
                out.append({"dataset": dataset, "finding": f"{defense} costs clean accuracy",
                            "ours": f"{c['acc']:.3f} [{c['acc_lo']:.3f}, {c['acc_hi']:.3f}] vs NAT "
                                    f"{cn['acc']:.3f} [{cn['acc_lo']:.3f}, {cn['acc_hi']:.3f}]",
                            "verdict": "established" if costs else "not established"})
        defended = at.drop(index=["nat", *[d for d in at.index if d.startswith("ext_")]])
        pairs = [(a, b) for a in defended.index for b in defended.index
                 if defended.loc[a, "acc_lo"] > defended.loc[b, "acc_hi"]]
        out.append({"dataset": dataset, "finding": f"one AT method above another ({attack} acc, "
                    f"ε={eps:g})", "ours": "; ".join(f"{a} > {b}" for a, b in pairs) or
                    "every pair of intervals overlaps",
                    "verdict": "established" if pairs else "not established"})
    return pd.DataFrame(out)


def explanation_findings(summary: pd.DataFrame, metric: str = "cam_pearson") -> str:
    """Markdown lines from the explanation study's ``summary.csv`` (``benchmarks/explanations``):
    per dataset, the clean-vs-adversarial correlation of the maps (``metric``) of NAT and PGD-AT,
    mean ± std over seeds, and the verdict "PGD-AT keeps its explanation better than NAT", claimed
    only when the paired 95% interval over images of PGD-AT − NAT lies above 0 in every seed."""
    name = {"cam_pearson": "Grad-CAM", "saliency_pearson": "saliency"}.get(metric, metric)
    lines = []
    for dataset, d in summary.groupby("dataset", sort=False):
        over = d[d["seed"].astype(str).str.startswith("mean±std")].set_index("model")
        paired = d[d["seed"].astype(str).str.endswith("(paired)")]
        if not {"NAT", "PGD-AT", "PGD-AT − NAT"} <= set(over.index) or paired.empty:
            continue
        seeds = over.loc["NAT", "seed"].removeprefix("mean±std over ").split()

        def pm(model, over=over):
            r = over.loc[model]
            return f"{r[f'{metric}_mean']:.2f} ± {r[f'{metric}_seed_std']:.2f}"

        kept = bool((paired[f"{metric}_lo"] > 0).all())
        per_seed = ", ".join(f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in
                             zip(paired[f"{metric}_lo"], paired[f"{metric}_hi"]))
        lines.append(
            f"- **{dataset}** (n = {int(over.loc['NAT', 'n'])} test images, {len(seeds)} seeds): "
            f"{name} correlation between a clean image's map and its PGD version's, NAT "
            f"{pm('NAT')}, PGD-AT {pm('PGD-AT')} (mean ± std over seeds); PGD-AT − NAT "
            f"{pm('PGD-AT − NAT')}, per seed {per_seed}: PGD-AT keeps its explanation better than "
            f"NAT — {'established' if kept else 'not established'}.")
    return "\n".join(lines)

"""What a committed benchmark run shows, as text generated from its rows (never typed by hand):
notebook 09, the run's README and the project README print :func:`results_markdown`.

Every number comes with its uncertainty: mean ± std over seeds and, for comparisons, the 95%
bootstrap interval over test images; "not established" where intervals overlap.
"""

from __future__ import annotations

import re

import pandas as pd

from .findings import difference, sanity_table, survey_findings
from .tables import ATTACK_LABEL, model_label, summarise

AT = ("pgd_at", "trades", "mart", "hat", "fast_at")


def _pm(r, metric="acc") -> str:
    std = r.get(f"{metric}_std")
    core = f"{r[metric]:.3f}" if pd.isna(std) else f"{r[metric]:.3f} ± {std:.3f}"
    return f"{core} [{r[f'{metric}_lo']:.3f}, {r[f'{metric}_hi']:.3f}]"


def _per_seed(rows, dataset, defense, attack, eps, metric="acc") -> str:
    values = sorted((r["seed"], r[metric]) for r in rows if r["dataset"] == dataset
                    and r["defense"] == defense and r["attack"] == attack and r["eval_eps"] == eps)
    return ", ".join(f"{v:.3f}" for _, v in values)


def dataset_lines(rows: list[dict], summary: pd.DataFrame, dataset: str) -> list[str]:
    """Bullets for one classification dataset at its largest ε under PGD."""
    d = summary[(summary["dataset"] == dataset)]
    eps = d["eval_eps"].max()
    pgd = d[(d["attack"] == "pgd") & (d["eval_eps"] == eps)].set_index("defense")
    clean = d[d["attack"] == "clean"].set_index("defense")
    seeds = int(d["seeds"].max())
    steps = re.search(r"steps=(\d+)", pgd["attack_config"].iloc[0]).group(1) if len(pgd) else "?"
    out = [f"**{dataset}** ({seeds} seed{'s' if seeds > 1 else ''}; PGD-{steps} at ε = {eps:g}/255, "
           f"n = {int(pgd['n'].iloc[0]) if len(pgd) else 0}; mean ± std over seeds [95% interval "
           "over test images]):"]
    if "nat" in pgd.index:
        nat = pgd.loc["nat"]
        out.append(f"- NAT: clean accuracy {_pm(clean.loc['nat'])}; under PGD {_pm(nat)} "
                   f"(per seed: {_per_seed(rows, dataset, 'nat', 'pgd', eps)}), balanced accuracy "
                   f"{_pm(nat, 'bacc')}.")
    for defense in [x for x in AT if x in pgd.index]:
        r = pgd.loc[defense]
        flags = [f for f, on in (("collapsed in some seed", r["collapsed"]),
                                 ("under the majority-class rate", r["below_majority"])) if on]
        out.append(f"- {model_label(defense, r['train_eps'])}: under PGD {_pm(r)}, balanced "
                   f"accuracy {_pm(r, 'bacc')} (per seed: "
                   f"{_per_seed(rows, dataset, defense, 'pgd', eps, 'bacc')}); clean "
                   f"{_pm(clean.loc[defense])}" + (f" — {', '.join(flags)}" if flags else "") + ".")
    if "pgd_at" in pgd.index and "fast_at" in pgd.index:
        diff = difference(rows, dataset, ("pgd_at", "pgd", eps), ("fast_at", "pgd", eps))
        out.append(f"- PGD-AT − fast AT under PGD: {diff['diff']:+.3f} (paired 95% interval "
                   f"[{diff['lo']:+.3f}, {diff['hi']:+.3f}]).")
    return out


def segmentation_lines(rows: list[dict], summary: pd.DataFrame, dataset: str) -> list[str]:
    """Bullets for one segmentation dataset at its largest ε: each model's Dice, clean and under
    each PGD loss; PGD-AT − NAT under the attack that leaves PGD-AT the lowest Dice."""
    d = summary[(summary["dataset"] == dataset)]
    eps = d["eval_eps"].max()
    at = d[d["eval_eps"] == eps]
    attacks = [a for a in ("pgd_ce", "pgd_dice") if a in set(at["attack"])]
    clean = d[d["attack"] == "clean"].set_index("defense")
    seeds = int(d["seeds"].max())
    steps = re.search(r"steps=(\d+)", at["attack_config"].iloc[0]).group(1) if len(at) else "?"
    out = [f"**{dataset}** ({seeds} seed{'s' if seeds > 1 else ''}; Dice under PGD-{steps} at "
           f"ε = {eps:g}/255 on the per-pixel cross-entropy (PGD-CE) and on the Dice loss "
           f"(PGD-Dice), n = {int(at['n'].iloc[0]) if len(at) else 0}; mean ± std over seeds [95% "
           "interval over test images]):"]
    for defense in clean.index:
        label = "NAT" if defense == "nat" else model_label(defense, clean.loc[defense, "train_eps"])
        parts = [f"under {ATTACK_LABEL[a]} {_pm(r, 'dice')} (per seed: "
                 f"{_per_seed(rows, dataset, defense, a, eps, 'dice')})"
                 for a in attacks for _, r in at[(at["attack"] == a)
                                                 & (at["defense"] == defense)].iterrows()]
        out.append(f"- {label}: clean Dice {_pm(clean.loc[defense], 'dice')}; " + "; ".join(parts)
                   + ".")
    robust = at[(at["defense"] == "pgd_at") & at["attack"].isin(attacks)]
    if len(robust) and "nat" in clean.index:
        worst = robust.loc[robust["dice"].idxmin(), "attack"]
        diff = difference(rows, dataset, ("pgd_at", worst, eps), ("nat", worst, eps), "dice")
        if diff:
            out.append(f"- PGD-AT − NAT under {ATTACK_LABEL[worst]} (PGD-AT's stronger attack): Dice "
                       f"{diff['diff']:+.3f} (paired 95% interval [{diff['lo']:+.3f}, "
                       f"{diff['hi']:+.3f}]).")
    return out


def results_markdown(rows: list[dict]) -> str:
    """The run's results: per dataset, NAT and every AT model under PGD at the largest ε with
    their intervals; the survey's findings with their verdicts; the sanity checks that failed."""
    if not rows:
        return "_No result rows: nothing to report yet._\n"
    summary = summarise(rows)
    lines = []
    classification = [d for d in sorted(summary["dataset"].unique())
                      if "acc" in summary and summary[summary["dataset"] == d]["acc"].notna().any()]
    for dataset in classification:
        lines += dataset_lines(rows, summary, dataset) + [""]
    if "dice" in summary:
        for dataset in sorted(summary.loc[summary["dice"].notna(), "dataset"].unique()):
            lines += segmentation_lines(rows, summary, dataset) + [""]
    findings = survey_findings(rows)
    if not findings.empty:
        lines += ["**The survey's findings, checked** (claimed only when the 95% intervals separate):",
                  ""] + [f"- {f.dataset}: {f.finding} — **{f.verdict}** ({f.ours})"
                         for f in findings.itertuples()] + [""]
    sanity = sanity_table(rows)
    checks = ["monotone_eps", "converged", "large_eps", "black_box"]
    failed = sanity[sanity["flags"] != ""] if not sanity.empty else sanity
    passed = int((sanity[checks] == True).all(axis=1).sum()) if not sanity.empty else 0  # noqa: E712
    unmeasured = int(sanity[checks].isna().any(axis=1).sum()) if not sanity.empty else 0
    lines.append("**Sanity checks** (per model: monotone in ε, PGD converged, ε = 64/255 leaves ≤ 5%, "
                 f"black-box ≥ white-box): {passed} of {len(sanity)} models pass every check"
                 + (f", {unmeasured} not fully checked (a check's attacks not in the grid)"
                    if unmeasured else "") + ("." if failed.empty else "; flagged:"))
    lines += [f"- {r.dataset} {model_label(r.defense, r.train_eps)} seed {r.seed}: {r.flags}"
              for r in failed.itertuples()]
    return "\n".join(lines) + "\n"

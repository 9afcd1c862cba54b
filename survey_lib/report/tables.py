"""Benchmark rows → tables (this module never trains nor attacks).

- :func:`summarise`: one line per (dataset, model, column, ε): mean ± std over seeds of accuracy,
  balanced accuracy, macro precision/recall/F1 and AUC (Dice/IoU for segmentation), a 95% interval
  over test images (percentile bootstrap of the seed-mean; the same resampled images for every
  seed), the number of images and seeds, and the flags: *collapsed* (≥ 95% of the predictions in
  one class, in any seed) and *below majority* (mean accuracy under the majority-class rate);
- :func:`survey_table`: the survey's layout, one table per dataset: rows = defenses, column groups
  = attack × ε, accuracy and balanced accuracy side by side (mean ± std), flags marked;
- :func:`save_benchmark_tables`: every row (``rows.csv``), the summary (``summary.csv``), the
  sanity checks and the per-dataset tables as CSV, Markdown and LaTeX.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DEFENSE_ORDER = ["nat", "pgd_at", "trades", "mart", "hat", "fast_at"]
ATTACK_ORDER = ["clean", "fgsm", "pgd", "cw", "autoattack", "aa_lite", "square", "simba",
                "transfer", "pgd_ce", "pgd_dice"]
ATTACK_LABEL = {"clean": "clean", "fgsm": "FGSM", "pgd": "PGD", "cw": "CW", "autoattack": "AutoAttack",
                "aa_lite": "AA-lite", "square": "Square", "simba": "SimBA", "transfer": "transfer",
                "pgd_ce": "PGD-CE", "pgd_dice": "PGD-Dice"}
PER_IMAGE = ("pred", "y", "index", "dice_per_image")
METRICS = ("acc", "bacc", "macro_precision", "macro_recall", "macro_f1", "auc", "clean_acc",
           "clean_bacc", "dice", "iou", "clean_dice")
COLLAPSED, BELOW_MAJORITY = "†", "‡"
REPS = 1000


def decode(text: str) -> np.ndarray:
    """Per-image labels as written in a row (one digit each, or comma-separated)."""
    return np.array(list(map(int, text.split(","))) if "," in text else [int(c) for c in text])


def model_label(defense: str, train_eps) -> str:
    """"nat", "pgd_at (ε=8)": a defense and its training ε (None or NaN for NAT)."""
    return defense if train_eps is None or pd.isna(train_eps) else f"{defense} (ε={train_eps:g})"


def _boot_index(n: int, reps: int = REPS, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, (reps, n))


def _per_class_recall(correct: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Balanced accuracy of each seed (rows of ``correct``) on each resample (rows of ``idx``):
    (seeds, reps). Classes absent from a resample are left out, as in balanced_accuracy."""
    out = []
    yb = y[idx]  # (reps, n)
    for c in np.unique(y):
        in_c = yb == c
        count = in_c.sum(1)
        hits = (correct[:, idx] & in_c[None]).sum(2)  # (seeds, reps)
        out.append(np.where(count > 0, hits / np.maximum(count, 1), np.nan))
    return np.nanmean(np.stack(out), axis=0)


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.nanpercentile(values, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def _group_stats(group: list[dict]) -> dict:
    """Mean, std over seeds and bootstrap intervals of one (model, column, ε) group."""
    out = {"seeds": len(group), "n": group[0]["n"]}
    for m in METRICS:
        values = [r.get(m) for r in group]
        if any(v is None for v in values):
            continue
        out[m] = float(np.mean(values))
        out[f"{m}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    if "dice_per_image" in group[0]:
        dice = np.array([r["dice_per_image"] for r in group])
        boot = dice[:, _boot_index(dice.shape[1])].mean(2).mean(0)
        out["dice_lo"], out["dice_hi"] = interval(boot)
        return out
    y = decode(group[0]["y"])
    correct = np.stack([decode(r["pred"]) == y for r in group])
    idx = _boot_index(len(y))
    out["acc_lo"], out["acc_hi"] = interval(correct[:, idx].mean(2).mean(0))
    out["bacc_lo"], out["bacc_hi"] = interval(_per_class_recall(correct, y, idx).mean(0))
    out["collapsed"] = any(r["collapsed"] for r in group)
    out["majority_rate"] = group[0]["majority_rate"]
    out["below_majority"] = bool(out["acc"] < out["majority_rate"])
    out["shares"] = "/".join(f"{s:.2f}" for s in np.mean([r["shares"] for r in group], axis=0))
    return out


def _subset_text(subset: dict | None) -> str:
    if subset is None:
        return "all"
    kind = "class-stratified" if subset["stratified"] else "random"
    return f"{kind} {subset['n']} of {subset['of']}"


def group_key(row: dict) -> tuple:
    return (row["dataset"], row["defense"], row["train_eps"], row["attack"], row["eval_eps"])


def summarise(rows: list[dict]) -> pd.DataFrame:
    """One line per (dataset, defense, training ε, column, evaluation ε), over seeds (see module)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["attack"] != "sanity":
            groups.setdefault(group_key(r), []).append(r)
    lines = []
    for key, group in groups.items():
        group = sorted(group, key=lambda r: r["seed"])
        configs = {r["attack_config"] for r in group}
        lines.append({**dict(zip(("dataset", "defense", "train_eps", "attack", "eval_eps"), key)),
                      **_group_stats(group), "attack_config": " | ".join(sorted(configs)),
                      "subset": _subset_text(group[0].get("subset"))})
    df = pd.DataFrame(lines)
    if df.empty:
        return df
    order = {d: i for i, d in enumerate(DEFENSE_ORDER)}
    df["_d"] = df["defense"].map(order)
    df["_a"] = df["attack"].map({a: i for i, a in enumerate(ATTACK_ORDER)})
    df["_e"] = df["eval_eps"].fillna(0)
    return df.sort_values(["dataset", "_d", "train_eps", "_a", "_e"]).drop(
        columns=["_d", "_a", "_e"]).reset_index(drop=True)


def fmt(mean: float, std: float, digits: int = 3) -> str:
    """'0.683 ± 0.012' (just the mean when there is one seed)."""
    if mean is None or pd.isna(mean):
        return ""
    return f"{mean:.{digits}f}" if pd.isna(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def survey_table(summary: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The survey's layout for one dataset: rows = models (defense and training ε), columns =
    (attack, ε, metric), values 'mean ± std' over seeds; ``†`` marks a collapsed cell and ``‡`` one
    under the majority-class rate. Classification: acc and bACC side by side; segmentation: Dice
    and IoU."""
    d = summary[summary["dataset"] == dataset]
    seg = "dice" in d.columns and d["dice"].notna().any()
    metrics = ("dice", "iou") if seg else ("acc", "bacc")
    cells: dict[str, dict] = {}
    columns = []
    for _, r in d.iterrows():
        model = model_label(r["defense"], r["train_eps"])
        eps = "" if pd.isna(r["eval_eps"]) else f" ε={r['eval_eps']:g}"
        for m in metrics:
            col = f"{ATTACK_LABEL.get(r['attack'], r['attack'])}{eps} {m if m != 'bacc' else 'bACC'}"
            if col not in columns:
                columns.append(col)
            mark = ""
            if not seg:
                mark = (COLLAPSED if r.get("collapsed") else "") + (
                    BELOW_MAJORITY if r.get("below_majority") else "")
            cells.setdefault(model, {})[col] = fmt(r[m], r.get(f"{m}_std")) + mark
    return pd.DataFrame.from_dict(cells, orient="index")[columns]


def legend(summary: pd.DataFrame, dataset: str) -> str:
    """What each column ran (its exact configuration) and on how many images."""
    d = summary[summary["dataset"] == dataset].drop_duplicates(["attack", "eval_eps"])
    lines = [f"- {ATTACK_LABEL.get(r['attack'], r['attack'])}"
             f"{'' if pd.isna(r['eval_eps']) else f' ε={r.eval_eps:g}'}: `{r['attack_config']}`, "
             f"n = {r['n']} ({r['subset']})" for _, r in d.iterrows()]
    return "\n".join(lines)


def flat_rows(rows: list[dict], sanity: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every row without its per-image fields, with its model's sanity-check results joined."""
    df = pd.DataFrame([{k: v for k, v in r.items() if k not in PER_IMAGE} for r in rows])
    if sanity is not None and not sanity.empty and not df.empty:
        keys = ["dataset", "defense", "train_eps", "seed"]
        checks = sanity.drop(columns=[c for c in sanity.columns if c.endswith("_detail")])
        df = df.merge(checks, on=keys, how="left")
    return df


def save_benchmark_tables(rows: list[dict], out: str | Path, note: str = "") -> list[Path]:
    """Write ``rows.csv`` (every row, sanity results joined), ``summary.csv`` (:func:`summarise`),
    ``sanity.csv``/``.md`` and, per dataset, ``<dataset>.csv``, ``.md`` and ``.tex`` in the
    survey's layout. Returns the paths."""
    from .findings import sanity_table

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary, sanity = summarise(rows), sanity_table(rows)
    paths = [out / "rows.csv", out / "summary.csv", out / "sanity.csv", out / "sanity.md"]
    flat_rows(rows, sanity).to_csv(paths[0], index=False, float_format="%.4f")
    summary.to_csv(paths[1], index=False, float_format="%.4f")
    sanity.to_csv(paths[2], index=False)
    paths[3].write_text((note + "\n\n" if note else "") + "**Sanity checks against gradient masking, "
                        "per model** (Carlini et al. 2019)\n\n"
                        + (sanity.to_markdown(index=False) if not sanity.empty else "_none_") + "\n")
    for dataset in sorted(summary["dataset"].unique()) if not summary.empty else []:
        table = survey_table(summary, dataset)
        stem = out / dataset
        marks = (f" {COLLAPSED} collapsed (≥ 95% of the predictions in one class, in some seed); "
                 f"{BELOW_MAJORITY} accuracy under the majority-class rate." if not any(
                     "dice" in c for c in table.columns) else " Dice and IoU of the lesion map.")
        caption = (f"{dataset}: mean ± std over seeds (ε in /255).{marks} 95% intervals over test "
                   "images: summary.csv.")
        table.to_csv(stem.with_suffix(".csv"))
        stem.with_suffix(".md").write_text((note + "\n\n" if note else "") + f"**{caption}**\n\n"
                                           + table.to_markdown() + "\n\nColumns:\n\n"
                                           + legend(summary, dataset) + "\n")
        stem.with_suffix(".tex").write_text(table.to_latex(caption=caption, label=f"tab:{dataset}"))
        paths += [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    return paths

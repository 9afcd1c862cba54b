"""Benchmark tables and findings checked by value on constructed rows: mean ± std over seeds, 95%
intervals over test images, the collapse (†) and below-majority (‡) marks, the sanity checks, and
findings claimed only when intervals separate."""

import numpy as np
import pytest

from survey_lib.metrics import label_metrics
from survey_lib.report import difference, sanity_table, summarise, survey_findings, survey_table

Y = np.array([0] * 40 + [1] * 60)  # majority rate 0.6


def row(defense="nat", attack="pgd", eps=8, seed=0, correct=None, pred=None, dataset="breastmnist",
        index=None, y=Y, **extra):
    """A grid row whose predictions are right on the first ``correct`` images (else wrong)."""
    if pred is None:
        pred = np.where(np.arange(len(y)) < correct, y, 1 - y)
    m = label_metrics(y, pred, 2)
    return {"dataset": dataset, "defense": defense, "train_eps": None if defense == "nat" else 8,
            "seed": seed, "attack": attack, "eval_eps": None if attack == "clean" else eps,
            "attack_config": f"{attack}(steps=20)", "n": len(y), "subset": None, "index": index,
            "pred": "".join(map(str, pred)), "y": "".join(map(str, y)), "clean_acc": m["acc"],
            "clean_bacc": m["bacc"], "auc": None, **{k: m[k] for k in (
                "acc", "bacc", "macro_precision", "macro_recall", "macro_f1", "shares", "collapsed",
                "below_majority", "majority_rate")}, **extra}


def test_mean_std_and_interval_over_seeds():
    rows = [row(seed=0, correct=50), row(seed=1, correct=70)]
    s = summarise(rows).iloc[0]
    assert s["acc"] == pytest.approx(0.6) and s["acc_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert s["seeds"] == 2 and s["n"] == 100
    # the interval is over test images (n = 100), around the seed-mean, about ±1.96·sqrt(.24/100)/…
    assert s["acc_lo"] < 0.6 < s["acc_hi"] and 0.05 < s["acc_hi"] - s["acc_lo"] < 0.25
    assert s["bacc_lo"] < s["bacc"] < s["bacc_hi"]
    one = summarise([row(seed=0, correct=50)]).iloc[0]
    assert np.isnan(one["acc_std"]) and one["acc"] == pytest.approx(0.5)


def test_below_majority_and_collapse_marks():
    always_one = np.ones(100, dtype=int)  # 60% accuracy, collapsed, not below the majority rate
    rows = [row("nat", "pgd", correct=50), row("pgd_at", "pgd", pred=always_one),
            row("trades", "pgd", correct=80), row("nat", "clean", correct=90),
            row("pgd_at", "clean", correct=90), row("trades", "clean", correct=90)]
    table = survey_table(summarise(rows), "breastmnist")
    assert table.loc["nat", "PGD ε=8 acc"] == "0.500‡"  # 0.50 < 0.60 majority rate
    assert table.loc["pgd_at (ε=8)", "PGD ε=8 acc"] == "0.600†"  # collapsed, at the majority rate
    assert table.loc["trades (ε=8)", "PGD ε=8 acc"] == "0.800"
    assert table.loc["nat", "clean acc"] == "0.900" and "PGD ε=8 bACC" in table.columns


def test_sanity_checks_by_value():
    y = Y
    base = dict(dataset="breastmnist", defense="pgd_at")
    ok = [row(attack="pgd", eps=e, correct=c, **base) for e, c in ((2, 80), (4, 70), (8, 60))]
    ok += [row(attack="square", eps=8, correct=70, **base),
           row(attack="sanity", eps=None, correct=60, **base,
               sanity={"eps": 8, "pgd_acc": 0.6, "strong_pgd_acc": 0.595, "eps64_acc": 0.0})]
    line = sanity_table(ok).iloc[0]
    assert line["monotone_eps"] and line["converged"] and line["large_eps"] and line["black_box"]
    assert line["flags"] == ""
    bad = [row(attack="pgd", eps=e, correct=c, seed=1, **base) for e, c in ((2, 60), (4, 75), (8, 50))]
    bad += [row(attack="transfer", eps=8, correct=30, seed=1, **base),
            row(attack="sanity", eps=None, correct=50, seed=1, **base,
                sanity={"eps": 8, "pgd_acc": 0.5, "strong_pgd_acc": 0.45, "eps64_acc": 0.2})]
    line = sanity_table(bad).iloc[0]
    assert not line["monotone_eps"] and not line["converged"] and not line["large_eps"]
    assert not line["black_box"] and "transfer ε=8: 0.300 < PGD 0.500 (n=100)" in line["black_box_detail"]
    assert line["flags"] == ("accuracy rises with ε; attack not converged; possible masking (ε=64 "
                             "leaves > 5%); black-box beats white-box")
    # black-box rows on a subset are compared with PGD on the same images only
    sub = [row(attack="pgd", eps=8, correct=50, **base),
           row(attack="square", eps=8, index=list(range(50, 100)), y=y[50:], correct=0, **base,
               pred=y[50:])]
    assert sanity_table(sub).iloc[0]["black_box"]  # PGD gets 0/50 of those images right, Square 50/50


def test_findings_only_when_intervals_separate():
    far = [row("nat", "pgd", correct=2), row("pgd_at", "pgd", correct=90),
           row("nat", "clean", correct=99), row("pgd_at", "clean", correct=60)]
    f = survey_findings(far).set_index("finding")["verdict"]
    assert f["NAT pgd accuracy near 0 at ε=8"] == "established"
    assert f["pgd_at (ε=8) robust bACC above NAT (pgd, ε=8)"] == "established"
    assert f["pgd_at costs clean accuracy"] == "established"
    close = [row("nat", "pgd", correct=40), row("pgd_at", "pgd", correct=44),
             row("nat", "clean", correct=80), row("pgd_at", "clean", correct=78)]
    f = survey_findings(close).set_index("finding")["verdict"]
    assert set(f) == {"not established"}


def test_paired_difference_interval():
    rows = [row("pgd_at", "pgd", correct=70), row("fast_at", "pgd", correct=65)]
    d = difference(rows, "breastmnist", ("pgd_at", "pgd", 8), ("fast_at", "pgd", 8))
    assert d["diff"] == pytest.approx(0.05)
    # paired over images: the 5 images only pgd_at gets right drive the interval, which excludes 0
    assert 0 < d["lo"] <= 0.05 <= d["hi"] < 0.12


def test_results_text_is_generated_from_the_rows():
    from survey_lib.report import results_markdown

    rows = [row("nat", "pgd", seed=s, correct=0) for s in (0, 1)]
    rows += [row("pgd_at", "pgd", seed=s, correct=c) for s, c in ((0, 70), (1, 72))]
    rows += [row("fast_at", "pgd", seed=s, correct=c) for s, c in ((0, 66), (1, 64))]
    rows += [row(d, "clean", seed=s, correct=90) for d in ("nat", "pgd_at", "fast_at") for s in (0, 1)]
    text = results_markdown(rows)
    assert "under PGD 0.000 ± 0.000" in text and "(per seed: 0.000, 0.000)" in text
    assert "pgd_at (ε=8): under PGD 0.710 ± 0.014" in text
    assert "PGD-AT − fast AT under PGD: +0.060" in text
    assert "NAT pgd accuracy near 0 at ε=8 — **established**" in text
    assert "0 of 6 models pass every check, 6 not fully checked" in text
    assert "No result rows" in results_markdown([])


def seg_row(defense, attack, seed, dice, eps=8):
    """A PH2 row with the given per-image Dice."""
    return {"dataset": "ph2", "defense": defense, "train_eps": None if defense == "nat" else 8,
            "seed": seed, "attack": attack, "eval_eps": None if attack == "clean" else eps,
            "attack_config": f"{attack}(steps=20)", "n": len(dice), "subset": None,
            "dice_per_image": list(dice), "dice": float(np.mean(dice)), "iou": float(np.mean(dice))}


def test_segmentation_results_text():
    """PH2 lines: Dice per model and column with its per-seed values, and PGD-AT − NAT under the
    attack that hurts PGD-AT most, paired over images."""
    from survey_lib.report import results_markdown

    n = 40
    rows = [seg_row(d, "clean", s, [0.9] * n) for d in ("nat", "pgd_at") for s in (0, 1)]
    rows += [seg_row("nat", a, s, [0.5 + 0.1 * s] * n) for a in ("pgd_ce", "pgd_dice") for s in (0, 1)]
    rows += [seg_row("pgd_at", "pgd_ce", s, [0.85] * n) for s in (0, 1)]
    rows += [seg_row("pgd_at", "pgd_dice", s, [0.8] * (n // 2) + [1.0] * (n // 2)) for s in (0, 1)]
    text = results_markdown(rows)
    assert "**ph2** (2 seeds; Dice under PGD-20 at ε = 8/255" in text and "n = 40" in text
    assert "- NAT: clean Dice 0.900 ± 0.000" in text
    assert "under PGD-CE 0.550 ± 0.071" in text and "(per seed: 0.500, 0.600)" in text
    # PGD-CE leaves PGD-AT 0.85, PGD-Dice 0.90: the difference is taken under PGD-CE
    assert "PGD-AT − NAT under PGD-CE (PGD-AT's stronger attack): Dice +0.300" in text
    rows = [r for r in rows if r["attack"] != "pgd_dice"]
    half = n // 2
    rows += [seg_row("nat", "pgd_dice", s, [0.4] * half + [0.6] * half) for s in (0, 1)]
    rows += [seg_row("pgd_at", "pgd_dice", s, [0.7] * half + [0.9] * half) for s in (0, 1)]
    text = results_markdown(rows)  # now PGD-Dice leaves PGD-AT 0.80 < 0.85
    line = next(x for x in text.splitlines() if x.startswith("- PGD-AT − NAT"))
    assert line.startswith("- PGD-AT − NAT under PGD-Dice (PGD-AT's stronger attack): Dice +0.300")
    lo, hi = (float(v) for v in line.split("[")[1].rstrip("]).").split(", "))
    assert lo == hi == 0.3  # paired over the images: every image gains exactly 0.3


@pytest.mark.parametrize("folder, grid, readmes", [
    ("benchmark_cpu", "cpu", ("README.md", "benchmarks/benchmark_cpu/README.md")),
    ("benchmark_cpu_seg3d", "cpu-seg3d", ("benchmarks/benchmark_cpu_seg3d/README.md",))])
def test_committed_results_text_matches_the_committed_rows(folder, grid, readmes):
    """A committed run's results.md is results_markdown of its rows, and the READMEs quote it
    verbatim (numbers are never typed by hand)."""
    from survey_lib.benchmark import GRIDS, load_rows
    from survey_lib.benchmark.spec import configure
    from survey_lib.config import get_profile
    from survey_lib.paths import ROOT, committed
    from survey_lib.report import results_markdown

    run = committed(folder)
    rows, problems = load_rows(run, configure(GRIDS[grid], seeds=(0, 1, 2)), get_profile("cpu"))
    assert rows and not problems
    text = (run / "results.md").read_text()
    assert text == results_markdown(rows), "rerun `python -m survey_lib benchmark --report-only " \
        f"--grid {grid} --seeds 0 1 2 --results benchmarks/{folder}`"
    for readme in readmes:
        block = (ROOT / readme).read_text().split("<!-- results:begin -->\n")[1].split(
            "<!-- results:end -->")[0]
        assert block == text, f"copy benchmarks/{folder}/results.md into {readme}'s results block"


def test_robust_vs_eps_rows_hold_each_datasets_own_attacks():
    """One line per model over the clean score and every ε; a segmentation row shows its own
    attacks from the left (not under the classification columns) with its Dice axis labelled."""
    import matplotlib

    matplotlib.use("Agg")
    from survey_lib.report.figures import plot_robust_vs_eps

    rows = [row(d, "clean", correct=90) for d in ("nat", "pgd_at")]
    rows += [row(d, a, eps=e, correct=c) for d, base in (("nat", 60), ("pgd_at", 80))
             for a in ("fgsm", "pgd", "cw") for e, c in ((2, base), (8, base - 20))]
    n = 40
    rows += [seg_row(d, "clean", 0, [0.9] * n) for d in ("nat", "pgd_at")]
    rows += [seg_row(d, a, 0, [v] * n, eps=e) for d, v in (("nat", 0.4), ("pgd_at", 0.8))
             for a in ("pgd_ce", "pgd_dice") for e in (2, 8)]
    fig = plot_robust_vs_eps(summarise(rows))
    axes = [ax for ax in fig.axes if ax.axison]
    titles = [ax.get_title() for ax in axes]
    assert titles == ["breast · FGSM", "breast · PGD", "breast · CW", "ph2 · PGD-CE", "ph2 · PGD-Dice"]
    seg = axes[3]
    assert seg.get_ylabel() == "Dice" and axes[0].get_ylabel() == "accuracy"
    assert seg.get_subplotspec().colspan.start == 0  # from the left
    lines = {ln.get_label(): ln for ln in seg.get_lines()}
    assert list(lines["nat"].get_xdata()) == [0.0, 2.0, 8.0]
    assert list(lines["pgd_at (ε=8)"].get_ydata()) == pytest.approx([0.9, 0.8, 0.8])
    assert len(axes[1].get_lines()) == 2  # one per model, never a line joining models


def test_committed_ph2_rows_meet_the_segmentation_bar():
    """Issue 13's bar on the committed rows: under PGD-20 at 8/255 (either loss), the PGD-AT U-Net's
    Dice is ≥ 0.80 and at least 0.25 above the NAT U-Net's (means over the three seeds)."""
    from survey_lib.benchmark import GRIDS, load_rows
    from survey_lib.config import get_profile
    from survey_lib.paths import committed

    rows, _ = load_rows(committed("benchmark_cpu_seg3d"), GRIDS["cpu-seg3d"], get_profile("cpu"))
    s = summarise([r for r in rows if r["dataset"] == "ph2"]).set_index(["defense", "attack",
                                                                          "eval_eps"])
    for attack in ("pgd_ce", "pgd_dice"):
        at, nat = s.loc[("pgd_at", attack, 8)], s.loc[("nat", attack, 8)]
        assert at["seeds"] == nat["seeds"] == 3
        assert at["dice"] >= 0.80 and at["dice"] >= nat["dice"] + 0.25, (attack, at["dice"], nat["dice"])


def test_gallery_titles_do_not_overlap_the_row_above():
    """Each image's two-line title stays clear of the row above (tight_layout let them overlap)."""
    import matplotlib
    import torch

    from survey_lib.report import plot_gallery

    matplotlib.use("Agg")
    examples = [{"dataset": "breastmnist", "defense": d, "eps": 8, "x": torch.rand(4, 1, 28, 28),
                 "x_adv": torch.rand(4, 1, 28, 28), "y": torch.tensor([0, 1, 0, 1]),
                 "pred": torch.tensor([0, 0, 1, 1]), "pred_adv": torch.tensor([1, 1, 0, 0]),
                 "classes": ["malignant", "normal, benign"]} for d in ("nat", "pgd_at")]
    fig = plot_gallery(examples)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    rows = [fig.axes[i * 4:(i + 1) * 4] for i in range(6)]
    for above, below in zip(rows, rows[1:]):
        bottom_above = min(ax.get_window_extent(renderer).y0 for ax in above)
        top_titles = max(ax.title.get_window_extent(renderer).y1 for ax in below)
        assert top_titles < bottom_above, (top_titles, bottom_above)
    assert [ax.title.get_color() for ax in rows[0]] == ["black", "red", "red", "black"]

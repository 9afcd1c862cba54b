"""benchmarks/explanations: the summary's per-model means over seeds and the paired PGD-AT − NAT
difference, on made-up per-image correlations whose answers are known."""

import runpy

import numpy as np
import pandas as pd
import pytest

from survey_lib.paths import BENCHMARKS

STUDY = runpy.run_path(str(BENCHMARKS / "explanations" / "explanations.py"))

# per (model, seed): Grad-CAM correlation of the 4 images (saliency: half of it)
CAM = {("NAT", 0): [0.1, 0.2, 0.3, 0.4], ("NAT", 1): [0.5, 0.5, 0.6, 0.6],
       ("PGD-AT", 0): [0.9, 0.9, 0.9, 0.9], ("PGD-AT", 1): [0.8, 0.9, 0.9, 1.0]}


def per_image() -> pd.DataFrame:
    frames = []
    for (model, seed), cam in CAM.items():
        cam = np.array(cam)
        frame = pd.DataFrame({"index": [3, 7, 11, 20], "label": [0, 1, 0, 1],
                              "pred_clean": [0, 1, 0, 1], "pred_adv": [1, 1, 0, 0],
                              "flipped": [True, False, False, True], "noise_flipped": False,
                              "cam_pearson": cam, "saliency_pearson": cam / 2,
                              "cam_spearman": cam, "saliency_spearman": cam / 2})
        for name in ("cam", "saliency"):
            frame[f"{name}_pearson_noise"] = 0.99
            frame[f"{name}_pearson_other"] = 0.1
        frames.append(frame.assign(dataset="d", model=model, seed=seed))
    return pd.concat(frames, ignore_index=True)


def test_summary_means_over_seeds_and_paired_differences():
    summary = STUDY["summarize"](per_image()).set_index(["model", "seed"])
    nat = summary.loc["NAT", "mean±std over 0 1"]
    assert nat.cam_pearson_mean == pytest.approx((0.25 + 0.55) / 2)
    assert nat.cam_pearson_seed_std == pytest.approx(np.std([0.25, 0.55], ddof=1))
    assert nat.clean_acc == 1.0 and nat.robust_acc == 0.5
    # paired per seed: seed 0 → 0.9 − 0.25, seed 1 → 0.9 − 0.55
    assert summary.loc["PGD-AT − NAT", "0 (paired)"].cam_pearson_mean == pytest.approx(0.65)
    assert summary.loc["PGD-AT − NAT", "1 (paired)"].saliency_pearson_mean == pytest.approx(0.175)
    over = summary.loc["PGD-AT − NAT", "mean±std over 0 1"]
    assert over.cam_pearson_mean == pytest.approx(0.5)
    assert over.cam_pearson_seed_std == pytest.approx(np.std([0.65, 0.35], ddof=1))


def test_paired_difference_refuses_different_images():
    data = per_image()
    a = data[(data.model == "PGD-AT") & (data.seed == 0)]
    b = data[(data.model == "NAT") & (data.seed == 1)].assign(index=[3, 7, 11, 21])
    with pytest.raises(AssertionError):
        STUDY["_paired"](a, b, "cam_pearson")


def test_findings_claim_kept_explanations_only_when_every_seed_separates():
    from survey_lib.report import explanation_findings

    text = explanation_findings(STUDY["summarize"](per_image()))
    assert "NAT 0.40 ± 0.21, PGD-AT 0.90 ± 0.00" in text
    assert "PGD-AT − NAT 0.50 ± 0.21" in text and "— established" in text
    mixed = per_image()  # seed 1: PGD-AT's map no more stable than NAT's (differences ±0.2)
    mixed.loc[(mixed.model == "PGD-AT") & (mixed.seed == 1), "cam_pearson"] = [0.3, 0.7, 0.4, 0.8]
    text = explanation_findings(STUDY["summarize"](mixed))
    assert "— not established" in text


def test_committed_readme_findings_are_generated_from_the_committed_summary():
    from survey_lib.report import explanation_findings

    folder = BENCHMARKS / "explanations"
    summary = pd.read_csv(folder / "summary.csv")
    text = (folder / "README.md").read_text()
    block = text.split("<!-- findings:begin -->\n")[1].split("<!-- findings:end -->")[0]
    assert block == explanation_findings(summary) + "\n" + \
        explanation_findings(summary, "saliency_pearson") + "\n"
    assert block.count("— established") == 6  # both maps, three datasets, three seeds each

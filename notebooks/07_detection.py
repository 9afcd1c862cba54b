# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Adversarial example detection
#
# | | |
# |:--|:--|
# | **Objectives** | score adversarial images with a Mahalanobis and a learned detector (AUROC, detection rate at 5% false positives); defeat both with an attacker that knows the detector |
# | **Prerequisites** | notebook 01 (PGD, CW); notebook 06 (adaptive attacks) helps |
# | **In class** | `cpu` if the BreastMNIST baseline is cached (notebook 00), else `smoke` |
# | **Run time** | `smoke` 0.5 min · `cpu` 0.6 min (one run each, 2026-11-28, on a shared 2-core CPU under load; see the start page) |
#
# Companion to *Adversarial Attack and Defense for Medical Image Analysis* (Dong et al., ACM
# Computing Surveys 2024). This notebook reproduces the survey's **defenses → detection** branch:
# instead of classifying adversarial images correctly, flag them and refuse to answer. Detection is
# popular in medical imaging, where medical features make adversarial ones stand out (Ma et al.,
# Pattern Recognition 2021).
#
# | detector | score (higher = adversarial) | paper |
# |---|---|---|
# | Mahalanobis | distance of the penultimate features to the closest class Gaussian | Lee et al. 2018 |
# | learned | small CNN on a feature map, trained on clean vs PGD images | Metzen et al. 2017 |
#
# Both read the **undefended (NAT) model**'s features. They are scored by the **AUROC** of clean test
# images against their adversarial versions (white-box attacks on the classifier; the detector is
# not attacked), then against an **adaptive** attacker that knows the detector and minimises its
# score while fooling the classifier (Carlini & Wagner, AISec 2017).

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from survey_lib.attacks import make_attack
from survey_lib.config import get_profile
from survey_lib.defenses.detection import (
    DetectorAwarePGD,
    MahalanobisDetector,
    evaluate_detectors,
    train_learned_detector,
)
from survey_lib.paths import committed
from survey_lib.train import load_dataset, select_device, train_baseline

# %% tags=["parameters"]
PROFILE = None  # "smoke" | "cpu" | "paper"; None: $SURVEY_PROFILE, else cpu

# %%
profile = get_profile(PROFILE)
print(f"profile: {profile.name} · device: {select_device()}")
DATASET = "breastmnist"
STEPS = {"smoke": 5}.get(profile.name, 20)
DETECTOR_EPOCHS = {"smoke": 2}.get(profile.name, 10)

# %% [markdown]
# ## 1 · Fit the detectors
# The Mahalanobis detector needs only the clean training features (class means and a shared
# covariance). The learned detector is trained on the training images and their PGD-10 versions
# (ε = 8/255), selecting the epoch with the best *validation* AUROC; it is cached in `runs/`.

# %%
model, record = train_baseline(DATASET, profile, progress=False)
splits = load_dataset(DATASET)
train = splits["train"].subset(profile.train_subset, profile.seed)
val, test = (splits[s].subset(profile.eval_subset, profile.seed) for s in ("val", "test"))
detectors = {"mahalanobis": MahalanobisDetector(model).fit(train)}
detectors["learned"], det_record = train_learned_detector(
    model, record["config"], train, val, make_attack("pgd", eps=8, steps=10), epochs=DETECTOR_EPOCHS)
print(f"NAT test acc {record['test']['acc']:.3f}, bACC {record['test']['bacc']:.3f}; "
      f"learned detector: best validation AUROC {det_record['best_score']:.3f} "
      f"(epoch {det_record['best_epoch']})")

# %% [markdown]
# ## 2 · Detection AUROC on held-out attacks
# FGSM, PGD (L∞, ε = 8/255), PGD-L2 (ε = 0.5) and CW-PGD (the CW margin loss) are white-box attacks
# on the classifier only; `adaptive` is `DetectorAwarePGD`: PGD on min(CW margin, κ) − λ·(standardised
# detector score), built for each detector. Columns: AUROC, the detection rate at a threshold that
# flags 5% of clean test images (`tpr@0.05fpr`), the share of images that fool the classifier *and*
# pass the detector (`undetected_success`), and the classifier's accuracy, bACC and prediction shares
# (malignant/benign) on the adversarial images.

# %%
attacks = {"fgsm": make_attack("fgsm", eps=8),
           "pgd": make_attack("pgd", eps=8, steps=STEPS),
           "pgd_l2": make_attack("pgd_l2", eps=0.5, steps=STEPS),
           "cw_pgd": make_attack("cw_pgd", eps=8, steps=STEPS),
           "adaptive": lambda det: DetectorAwarePGD(det, eps=8, steps=STEPS, weight=1.0)}
rows, curves = evaluate_detectors(model, detectors, test, attacks)
table = pd.DataFrame(rows)
display(table)

# %% [markdown]
# ROC curves: one panel per detector, one line per attack. The diagonal is a detector that guesses.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
for ax, det in zip(axes, detectors):
    for (name, attack_name), (fpr, tpr) in curves.items():
        if name == det:
            auc = table[(table.detector == det) & (table.attack == attack_name)].auroc.item()
            ax.plot(fpr, tpr, label=f"{attack_name} (AUROC {auc:.2f})",
                    ls="--" if attack_name == "adaptive" else "-")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.set(title=f"{det} detector on {DATASET} (ε = 8/255)", xlabel="false-positive rate (clean flagged)",
           ylabel="true-positive rate (adversarial flagged)")
    ax.legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# *What to see:* against attacks that ignore them, both detectors separate clean from adversarial
# images well above chance (the learned one best on the attack it was trained on). The adaptive
# attacker still fools the classifier but pushes the detector score *below* that of clean images,
# so the AUROC falls far under 0.5 and the detection rate at 5% false positives to about zero:
# detection adds little security against an attacker who knows the detector.

# %%
pivot = table.pivot(index="attack", columns="detector", values="auroc")
display(Markdown("AUROC by attack and detector:\n\n" + pivot.round(3).to_markdown()))

# %% [markdown]
# ## 3 · The committed cpu-profile numbers
# From `benchmarks/defenses_other_cpu/defenses_other_cpu.py` (command, wall times and machine in
# `benchmarks/defenses_other_cpu/defenses_other_cpu.md`).

# %%
bench = pd.read_csv(committed("defenses_other_cpu/defenses_other_cpu.csv"))
bench[bench.section == "detection"]

# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Distillation, feature denoising and certified robustness
#
# | | |
# |:--|:--|
# | **Objectives** | see defensive distillation's robustness vanish under a margin (CW) attack (gradient masking); compare feature denoising with plain PGD-AT; certify an L2 radius with randomized smoothing and read the certified-accuracy curve |
# | **Prerequisites** | notebooks 01 and 05 |
# | **In class** | `smoke` in class (the cpu profile trains five models); the committed cpu numbers are shown in every profile |
# | **Run time** | `smoke` 0.7 min · `cpu` 8 min (one run each, 2026-11-28, on a shared 2-core CPU under load; see the start page) |
#
# Companion to *Adversarial Attack and Defense for Medical Image Analysis* (Dong et al., ACM
# Computing Surveys 2024). Three more branches of the survey's defense taxonomy:
#
# | branch | defense | paper |
# |---|---|---|
# | distillation | defensive distillation at temperature T | Papernot et al., S&P 2016 |
# | feature-level | feature denoising blocks + PGD adversarial training | Xie et al., CVPR 2019 |
# | certified | randomized smoothing, certified L2 radius | Cohen et al., ICML 2019 |
#
# What to look at: (1) distillation's robustness to FGSM and PGD on cross-entropy is **gradient
# masking**: it vanishes under an attack on the logit margin (CW); (2) feature denoising is an
# architectural add-on to adversarial training, compared with plain PGD-AT under the same recipe;
# (3) randomized smoothing gives a *guarantee*: the certified accuracy at radius r is a lower bound
# (with probability 1 − α per image) on the accuracy against **any** L2 attack of size ≤ r.
# All attacks here are **white-box** (on the deployed model itself).

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import display

from survey_lib.attacks import make_attack
from survey_lib.config import get_profile
from survey_lib.defenses import make_defense, train_adversarial
from survey_lib.defenses.smoothing import SmoothedClassifier, certified_accuracy, smoothed_metrics
from survey_lib.evaluate import robust_metrics
from survey_lib.paths import committed
from survey_lib.train import load_dataset, predict, select_device, train_baseline

# %% tags=["parameters"]
PROFILE = None  # "smoke" | "cpu" | "paper"; None: $SURVEY_PROFILE, else cpu

# %%
profile = get_profile(PROFILE)
print(f"profile: {profile.name} · device: {select_device()}")
DATASET = "breastmnist"
STEPS = {"smoke": 5}.get(profile.name, 20)
SIGMAS = {"smoke": (0.25,)}.get(profile.name, (0.25, 0.5))
N0, N = {"smoke": (10, 100)}.get(profile.name, (100, 500))
ALPHA = 0.001
test = load_dataset(DATASET)["test"].subset(profile.eval_subset, profile.seed)
KEYS = ["acc", "bacc", "auc", "shares", "collapsed"]


def white_box(model, attacks):
    """Clean and white-box metrics of a model: one row per attack."""
    return [{"attack": name, **{k: m[k] for k in KEYS}}
            for name, m in ((name, robust_metrics(model, test, a)) for name, a in attacks.items())]


# %% [markdown]
# ## 1 · Defensive distillation and its failure under CW
# A teacher is trained at temperature T = 50 (softmax(z/T)), a student on the teacher's soft labels
# at the same T; the student is deployed at T = 1. Both use the undefended baseline's recipe
# (`train.train_recipe`) except, in the cpu profile, 60 epochs at learning rate 0.01 instead of 30 at
# 0.001: the defense only acts once the logits have grown about T-fold, which the shorter recipe
# does not reach on BreastMNIST's 546 training images. We attack the NAT model and the student
# with FGSM and PGD on cross-entropy (CE) and with CW-PGD, PGD on the logit margin
# max_{i≠y} z_i − z_y, all at ε = 8/255.

# %%
nat, nat_record = train_baseline(DATASET, profile, progress=False)
DISTILL = {"temperature": 50, **{"cpu": {"epochs": 60, "lr": 0.01}}.get(profile.name, {})}
student, distill_records = make_defense("defensive_distillation", **DISTILL).train(DATASET, profile)
attacks = {"clean": None, "fgsm (CE)": make_attack("fgsm", eps=8),
           "pgd (CE)": make_attack("pgd", eps=8, steps=STEPS),
           "cw_pgd (margin)": make_attack("cw_pgd", eps=8, steps=STEPS)}
distillation = pd.DataFrame([{"model": name, **row} for name, model in
                             {"NAT": nat, "distilled": student}.items()
                             for row in white_box(model, attacks)])
display(distillation)
margin = {name: (z.topk(2, 1).values[:, 0] - z.topk(2, 1).values[:, 1]).median().item()
          for name, z in (("NAT", predict(nat, test.x)), ("distilled", predict(student, test.x)))}
print("median top-1 − top-2 logit gap on clean test images:", margin)

# %% [markdown]
# *What to see:* a student deployed at T = 1 has logits about T times larger than it was trained
# with, so its softmax saturates and the CE gradient underflows — FGSM and PGD-CE lose their
# direction, while the margin attack, which never goes through the softmax, is unaffected. Whether
# the masking shows depends on how far training has pushed the logits (the logit-gap line above);
# the committed cpu numbers (section 4) show what it does with the cpu recipe.

# %% [markdown]
# ## 2 · Feature denoising (feature-level defense)
# Non-local means denoising blocks after each pooling stage of the smallcnn, trained with the
# package's PGD adversarial-training recipe (notebook 05), next to the plain PGD-AT model trained the
# same way. The records hold clean and white-box PGD test metrics (PGD steps of the profile).

# %%
denoised, fd_record = make_defense("feature_denoising", eps=8).train(DATASET, profile)
_, at_record = train_adversarial(DATASET, "pgd_at", profile, progress=False, eps=8)
feature = pd.DataFrame([{"model": name, "evaluation": ev, **{k: r[key][k] for k in KEYS}}
                        for name, r in (("PGD-AT", at_record), ("PGD-AT + feature denoising", fd_record))
                        for ev, key in (("clean", "test"), (r["test_adv"]["attack"], "test_adv"))])
display(feature)

# %% [markdown]
# ## 3 · Randomized smoothing: certified accuracy vs L2 radius
# The base classifier is trained on Gaussian-noise-augmented images (σ); the smoothed classifier
# g(x) = argmax_c P(f(x + δ) = c) is certified by Cohen et al.'s CERTIFY: the top class from n0
# noisy copies, a one-sided Clopper–Pearson lower bound p_A on its probability from n fresh ones at
# level α, radius σ·Φ⁻¹(p_A), abstention when p_A ≤ 1/2.

# %%
curves, summaries = [], []
radii_grid = np.round(np.arange(0, 1.55, 0.05), 2)
for sigma in SIGMAS:
    base, _ = make_defense("gaussian_augmentation", sigma=sigma).train(DATASET, profile)
    smoothed = SmoothedClassifier(base, sigma, test.info.num_classes)
    preds, radii = smoothed.certify(test.x, n0=N0, n=N, alpha=ALPHA)
    summaries.append({"sigma": sigma, **smoothed_metrics(preds, test.y, test.info.num_classes),
                      "median_radius": float(radii[preds == test.y.view(-1)].median())
                      if (preds == test.y.view(-1)).any() else 0.0})
    curves += [{"sigma": sigma, **row} for row in
               certified_accuracy(preds, radii, test.y, radii_grid, test.info.num_classes)]
curve = pd.DataFrame(curves)
display(pd.DataFrame(summaries))

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, metric in zip(axes, ["certified_acc", "certified_bacc"]):
    sns.lineplot(curve, x="radius", y=metric, hue="sigma", drawstyle="steps-post", ax=ax,
                 palette="viridis")
    ax.axhline(nat_record["test"]["acc" if metric == "certified_acc" else "bacc"], color="grey",
               ls=":", label="NAT clean (no certificate)")
    label = "certified balanced accuracy" if metric == "certified_bacc" else "certified accuracy"
    ax.set(title=label, xlabel="L2 radius (pixel units, images in [0, 1])", ylabel=label,
           ylim=(0, 1))
    ax.legend(title="σ", fontsize=7)
fig.suptitle(f"Randomized smoothing on {DATASET} test images (n0 = {N0}, n = {N}, α = {ALPHA})")
fig.tight_layout()

# %% [markdown]
# *What to see:* at radius 0 the curve starts at the smoothed classifier's clean accuracy (correct
# and not abstained); it can only go down with the radius. A larger σ certifies larger radii but
# costs clean accuracy. For scale: an L∞ perturbation of 8/255 on a 28×28 image can have an L2 norm
# up to 8/255·28 ≈ 0.88, so L2 certificates at 28 px are far from covering the L∞ threat model of
# the other notebooks.

# %% [markdown]
# ## 4 · The committed cpu-profile numbers
# From `benchmarks/defenses_other_cpu/defenses_other_cpu.py` (command, wall times and machine in
# `benchmarks/defenses_other_cpu/defenses_other_cpu.md`).

# %%
bench = pd.read_csv(committed("defenses_other_cpu/defenses_other_cpu.csv"))
bench[bench.section != "purification"]

# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Pre-processing defenses (input purification)
#
# | | |
# |:--|:--|
# | **Objectives** | wrap a classifier in JPEG, bit-depth, median, autoencoder and random-resize purifiers; evaluate them naively (transfer) and adaptively (BPDA, EOT) and see the robustness vanish |
# | **Prerequisites** | notebook 01 (PGD); notebook 02 (transfer attacks) helps |
# | **In class** | `cpu` if the BreastMNIST baseline is cached (notebook 00), else `smoke` |
# | **Run time** | `smoke` 0.6 min · `cpu` 1 min (one run each, 2026-11-28, on a shared 2-core CPU under load; see the start page) |
#
# Companion to *Adversarial Attack and Defense for Medical Image Analysis* (Dong et al., ACM
# Computing Surveys 2024). This notebook reproduces the survey's **defenses → pre-processing**
# branch: before the classifier sees an image, a *purifier* tries to wash the adversarial noise out.
#
# | purifier | what it does | paper |
# |---|---|---|
# | JPEG | JPEG encode/decode (quality 50) | Dziugaite et al. 2016; Guo et al., ICLR 2018 |
# | bit depth | round each pixel to 4 bits (16 levels) | Xu et al., NDSS 2018 |
# | median | 3×3 median filter | Xu et al., NDSS 2018 |
# | DAE | a small denoising autoencoder trained on the dataset | Gu & Rigazio 2015; MagNet, Meng & Chen 2017 |
# | random resize | shrink to 26–28 px, zero-pad at a random offset, new draw per call | Xie et al. 2018 |
#
# Each purifier is a **model wrapper** around the undefended (NAT) model: `purifier(x) =
# model(purify(x))`. The lesson is about *evaluation* (Athalye, Carlini & Wagner, ICML 2018):
#
# - **naive (transfer)**: the attacker ignores the purifier: PGD on the undefended model, images then
#   fed to the purified model — this is how many purification papers were evaluated;
# - **white-box + BPDA**: PGD on the purified model itself. JPEG and bit-depth reduction have no
#   useful gradient, so their backward pass is the identity (Backward Pass Differentiable
#   Approximation); the median filter and the DAE are differentiable and attacked end to end; the
#   random resize is random, so each PGD step averages the gradient over 10 draws (Expectation over
#   Transformation, EOT; Athalye et al., ICML 2018) — a "one draw (no EOT)" row shows why;
# - **adaptive**: per image, the worse of the two for the defense — an attacker who knows the defense
#   tries every attack it has. Its accuracy can never exceed the naive one.

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from survey_lib import exercises
from survey_lib.attacks import make_attack
from survey_lib.config import get_profile
from survey_lib.defenses import make_defense
from survey_lib.defenses.purification import evaluate_purifiers, train_denoiser
from survey_lib.evaluate import pick_examples
from survey_lib.paths import committed
from survey_lib.train import load_dataset, select_device, train_baseline

# %% tags=["parameters"]
PROFILE = None  # "smoke" | "cpu" | "paper"; None: $SURVEY_PROFILE, else cpu

# %%
profile = get_profile(PROFILE)
print(f"profile: {profile.name} · device: {select_device()}")
DATASET = "breastmnist"
STEPS = {"smoke": 5}.get(profile.name, 20)

# %% [markdown]
# ## 1 · The undefended model and the purifiers
# The NAT model is `train_baseline`'s (cached in `runs/`); the denoising autoencoder is trained on
# the training images to remove Gaussian noise (σ = 0.1) and cached the same way.

# %%
model, record = train_baseline(DATASET, profile, progress=False)
denoiser, dae_record = train_denoiser(DATASET, profile)
test = load_dataset(DATASET)["test"].subset(profile.eval_subset, profile.seed)
purifiers = {"jpeg": make_defense("jpeg", model=model, quality=50),
             "bit_depth": make_defense("bit_depth", model=model, bits=4),
             "median": make_defense("median", model=model, kernel=3),
             "dae": make_defense("dae", model=model, denoiser=denoiser),
             "random_resize": make_defense("random_resize", model=model, ratio=0.9)}
print(f"NAT test: acc {record['test']['acc']:.3f}, bACC {record['test']['bacc']:.3f}, "
      f"shares {record['test']['shares']}; DAE validation MSE {-dae_record['best_score']:.4f}")

# %% [markdown]
# What each purifier does to a test image (top: the image; bottom: the purified image minus the
# image, amplified). JPEG and the median filter remove fine texture, bit-depth reduction adds
# banding, the autoencoder blurs slightly. The test image is drawn (seed 0) by `pick_examples`
# among those the NAT model classifies correctly with high confidence (the top half by p(true
# class)); each title gives the prediction on the purified image.

# %%
pick = pick_examples(model, test)
print(f"test image {pick.indices[0]}: {pick.rule}")
x = test.x[pick.indices]
fig, axes = plt.subplots(2, len(purifiers) + 1, figsize=(2 * len(purifiers) + 2, 4.4))
views = {"original": x, **{name: p.purify(x).detach() for name, p in purifiers.items()}}
for i, (name, image) in enumerate(views.items()):
    axes[0, i].imshow(image[0, 0], cmap="gray", vmin=0, vmax=1)
    axes[1, i].imshow((image - x)[0, 0], cmap="RdBu", vmin=-0.2, vmax=0.2)
    with torch.no_grad():
        pred = test.info.class_names[int(model(image).argmax(1))]
    axes[0, i].set_title(f"{name}\n→ {pred}", fontsize=9)
for ax in axes.flat:
    ax.set_xticks([]), ax.set_yticks([])
axes[1, 0].set_ylabel("purified − original\n(−0.2 … 0.2)")
fig.suptitle(f"Purifiers on BreastMNIST test image {pick.indices[0]} (28 px)")
fig.tight_layout()

# %% [markdown]
# ## 2 · Naive vs adaptive evaluation (PGD L∞, ε = 8/255)
# Every row has accuracy, balanced accuracy (bACC), AUC, per-class prediction shares
# (malignant/benign) and the collapse flag. `none` is the undefended model (its naive attack is
# already white-box).

# %%
attack = make_attack("pgd", eps=8, steps=STEPS)
rows = evaluate_purifiers(model, test, purifiers, attack)
table = pd.DataFrame(rows)
table[["defense", "evaluation", "acc", "bacc", "auc", "shares", "collapsed", "attack_seconds"]]

# %% [markdown]
# The same numbers as a figure: for every purifier, the naive bar (what a purification paper
# evaluated with a transfer attack reports) next to the adaptive one (what the defense is worth).

# %%
plot = table[table.evaluation != "clean"]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for ax, metric in zip(axes, ["acc", "bacc"]):
    sns.barplot(plot, x="defense", y=metric, hue="evaluation", ax=ax)
    clean = table[table.evaluation == "clean"].set_index("defense")[metric]
    ax.scatter(range(len(clean)), clean.values, marker="_", s=400, color="k", label="clean", zorder=3)
    ax.set(title=f"{DATASET}: {'accuracy' if metric == 'acc' else 'balanced accuracy'} under "
                 f"PGD-{STEPS}, ε = 8/255", xlabel="purifier", ylim=(0, 1),
           ylabel=f"{'accuracy' if metric == 'acc' else 'balanced accuracy'} (test)")
    ax.legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# *What to see:* the naive (transfer) evaluation credits every purifier with some robustness; the
# adaptive attack takes most or all of it away. JPEG and bit-depth reduction only looked robust
# because the attacker did not see them (and, attacked directly without BPDA, because their
# gradient is zero: gradient masking). The differentiable purifiers (median, DAE) are simply part of
# the network for a white-box attacker. A gradient from a single random draw of the random resize
# is a noisier guide than the EOT average (compare its one-draw and EOT rows). The purifiers also
# cost clean accuracy on 28-px medical
# images (compare the black clean marks), since the fine texture they remove is the signal.

# %%
adaptive = table[table.evaluation == "adaptive (worst of both)"].set_index("defense")
naive = table[table.evaluation == "naive (transfer)"].set_index("defense")
assert (adaptive.acc <= naive.acc).all(), "the adaptive attack can never do worse than the naive one"
display(Markdown(f"Largest overstatement by the naive evaluation: "
                 f"{(naive.acc - adaptive.acc).idxmax()} "
                 f"({(naive.acc - adaptive.acc).max():+.3f} accuracy)."))

# %% [markdown]
# ## 3 · The committed cpu-profile numbers
# `benchmarks/defenses_other_cpu/defenses_other_cpu.py` runs this evaluation (and notebooks 07–08's)
# with the cpu
# profile; its results are committed in `benchmarks/defenses_other_cpu/defenses_other_cpu.md`.

# %%
bench = pd.read_csv(committed("defenses_other_cpu/defenses_other_cpu.csv"))
bench[bench.section == "purification"]

# %% [markdown]
# ## 4 · Exercise: BPDA
# The adaptive evaluation above needs a gradient through JPEG and bit-depth reduction, which have
# none worth using. **06.bpda**: write the Backward Pass Differentiable Approximation the package
# uses — forward through the purifier, backward as if it were the identity. The check compares the
# logits and the input gradient with `survey_lib`'s purifier wrappers (✓ or ✗);
# `python -m survey_lib exercises grade <notebook>` grades it.


# %% tags=["solution"]
def bpda(model, purify, x):
    """Task 06.bpda: BPDA with the identity (Athalye, Carlini & Wagner, ICML 2018).

    Return model(purify(x)) such that the gradient with respect to x passes through purify as if
    it were the identity. purify may return a tensor without gradient history (JPEG, rounding).
    """
    x_pure = purify(x.detach())
    return model(x + (x_pure - x).detach())  # value x_pure, gradient of x


# %%
exercises.check("06.bpda", bpda)

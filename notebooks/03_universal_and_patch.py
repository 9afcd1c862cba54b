# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Universal perturbations and adversarial patches
#
# | | |
# |:--|:--|
# | **Objectives** | fit one perturbation (UAP) and one patch that fool a model on unseen images; read prediction shares to see a universal perturbation push everyone into one class |
# | **Prerequisites** | notebook 01 (PGD, ε units) |
# | **In class** | `cpu` (the model is the shipped pretrained one) |
# | **Run time** | `smoke` 0.4 min · `cpu` 1 min (one run each, 2026-11-28, on a shared 2-core CPU under load; see the start page) |
#
# Reproduces the survey's taxonomy branch **attacks → universal / physical-style perturbations**
# (Dong et al., ACM CSUR 2024, Sec. 3): one perturbation that fools a model on *many* images at
# once. A universal adversarial perturbation (UAP; Moosavi-Dezfooli et al. 2017, fitted by stochastic
# sign-gradient ascent as in Shafahi et al. 2020) is a single δ with ‖δ‖∞ ≤ ε added to every image;
# an adversarial patch (Brown et al. 2017) replaces a small square of each image with learnt pixels.
# Both are fitted **white-box** on training images and measured on unseen test images (a
# data-agnostic attack at test time: no per-image optimisation).

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

from survey_lib import pretrained
from survey_lib.attacks import make_attack
from survey_lib.config import get_profile
from survey_lib.evaluate import pick_examples, robust_metrics
from survey_lib.train import load_dataset, select_device

# %% tags=["parameters"]
PROFILE = None  # "smoke" | "cpu" | "paper"; None: $SURVEY_PROFILE, else cpu

# %%
profile = get_profile(PROFILE)
FLAG = "pneumoniamnist"
EPOCHS = {"smoke": 1, "cpu": 5, "paper": 10}[profile.name]  # passes over the fitting images
N_FIT = profile.train_subset or 2000
print(f"profile: {profile.name} · device: {select_device()}")
model, source = pretrained.baseline_model(FLAG, profile)  # the shipped one in cpu
print(source)
splits = load_dataset(FLAG)
fit_set = splits["train"].subset(N_FIT, 0)
test = splits["test"].subset(profile.eval_subset, 0)

# %% [markdown]
# ## 1 · Fit a universal perturbation and a patch (white-box, on training images)

# %%
uaps = {eps: make_attack("uap", eps=eps, steps=EPOCHS).fit(model, fit_set.x, fit_set.y)
        for eps in (4, 8, 16)}
patches = {area: make_attack("patch", eps=area, steps=EPOCHS).fit(model, fit_set.x, fit_set.y)
           for area in (0.02, 0.05, 0.1)}

# %% [markdown]
# ## 2 · What they look like
# Left: the UAP at ε = 8/255 (rescaled to the full grey range; red brighter, blue darker) and a test
# image with it added. Right: the 5% patch, and a test image with the patch pasted at a random place.
# The test image is drawn (seed 0) by `pick_examples` among those the model classifies correctly
# with high confidence (the top half by p(true class)); the titles give the model's prediction.

# %%
pick = pick_examples(model, test)
print(f"test image {pick.indices[0]}: {pick.rule}")
x, y = test.x[pick.indices], test.y[pick.indices]
names = test.info.class_names
delta = uaps[8].delta[0, 0].cpu()
fig, axes = plt.subplots(1, 4, figsize=(10, 3.2), layout="constrained")  # room for 2-line titles
axes[0].imshow(delta, cmap="seismic", vmin=-delta.abs().max(), vmax=delta.abs().max())
axes[0].set_title("UAP δ (ε = 8/255)", fontsize=9)
x_uap, x_patch = uaps[8](model, x, y), patches[0.05](model, x, y)
with torch.no_grad():
    pred = {k: names[int(model(v).argmax(1))] for k, v in (("clean", x), ("uap", x_uap), ("patch", x_patch))}
axes[1].imshow(x_uap[0, 0], cmap="gray", vmin=0, vmax=1)
axes[1].set_title(f"test image {pick.indices[0]} + δ\n→ {pred['uap']} (clean: {pred['clean']})", fontsize=9)
axes[2].imshow(patches[0.05].patch[0].cpu(), cmap="gray", vmin=0, vmax=1)
axes[2].set_title("patch (5% of the area)", fontsize=9)
axes[3].imshow(x_patch[0, 0], cmap="gray", vmin=0, vmax=1)
axes[3].set_title(f"test image + patch\n→ {pred['patch']}", fontsize=9)
for ax in axes:
    ax.axis("off")
fig.suptitle("A universal perturbation and an adversarial patch, fitted on PneumoniaMNIST training images")

# %% [markdown]
# ## 3 · How much they hurt unseen test images
# Robust accuracy, balanced accuracy, prediction shares and AUC on the test split. A universal
# perturbation usually pushes most images into one class: read the shares, not only the accuracy.
# The per-image PGD row is the white-box upper bound on the damage at the same ε.

# %%
rows = [{**robust_metrics(model, test), "attack": "clean", "budget": "—"}]
rows += [{**robust_metrics(model, test, a), "attack": "UAP", "budget": f"ε = {e}/255"}
         for e, a in uaps.items()]
rows += [{**robust_metrics(model, test, a), "attack": "patch", "budget": f"{area:.0%} of area"}
         for area, a in patches.items()]
rows.append({**robust_metrics(model, test, make_attack("pgd", eps=8, steps=10)), "attack": "PGD-10 per image",
             "budget": "ε = 8/255"})
table = pd.DataFrame(rows)[["attack", "budget", "acc", "bacc", "auc", "shares"]]
fig, ax = plt.subplots(figsize=(7, 3.2))
sns.barplot(table, x="budget", y="bacc", hue="attack", ax=ax)
ax.set(title="Universal attacks on unseen test images", xlabel="budget (ε in /255 or patch area)",
       ylabel="robust balanced accuracy")
ax.tick_params(axis="x", rotation=30)
fig.tight_layout()
table.round(3)

# %% [markdown]
# The UAP's prediction shares under attack, per ε: a universal perturbation tends to make the model
# answer one class for everyone.

# %%
with torch.no_grad():
    shares = {f"{e}/255": (model(a(model, test.x, test.y)).argmax(1) == 1).float().mean().item()
              for e, a in uaps.items()}
pd.Series(shares, name=f"share of '{test.info.class_names[1]}' predictions").to_frame()

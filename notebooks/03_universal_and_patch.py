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

from survey_lib.attacks import make_attack
from survey_lib.config import get_profile
from survey_lib.evaluate import robust_metrics
from survey_lib.train import load_dataset, select_device, train_baseline

# %% tags=["parameters"]
PROFILE = None  # "smoke" | "cpu" | "paper"; None: $SURVEY_PROFILE, else cpu

# %%
profile = get_profile(PROFILE)
FLAG = "pneumoniamnist"
EPOCHS = {"smoke": 1, "cpu": 5, "paper": 10}[profile.name]  # passes over the fitting images
N_FIT = profile.train_subset or 2000
print(f"profile: {profile.name} · device: {select_device()}")
model, _ = train_baseline(FLAG, profile, progress=False)
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

# %%
x = test.x[:1]
delta = uaps[8].delta[0, 0].cpu()
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
axes[0].imshow(delta, cmap="seismic", vmin=-delta.abs().max(), vmax=delta.abs().max())
axes[0].set_title("UAP δ (ε = 8/255)")
axes[1].imshow(uaps[8](model, x, test.y[:1])[0, 0], cmap="gray", vmin=0, vmax=1)
axes[1].set_title("test image + δ")
axes[2].imshow(patches[0.05].patch[0].cpu(), cmap="gray", vmin=0, vmax=1)
axes[2].set_title("patch (5% of the area)")
axes[3].imshow(patches[0.05](model, x, test.y[:1])[0, 0], cmap="gray", vmin=0, vmax=1)
axes[3].set_title("test image + patch")
for ax in axes:
    ax.axis("off")
fig.suptitle("A universal perturbation and an adversarial patch, fitted on PneumoniaMNIST training images")
fig.tight_layout()

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

# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Attacks on segmentation and on 3D volumes
#
# Reproduces the survey's taxonomy branch **attacks → by task and modality** (Dong et al., ACM CSUR
# 2024, Sec. 3–4): beyond 2D classification, medical models segment lesions and classify volumes.
#
# 1. **Segmentation** (PH2 dermoscopy, U-Net): white-box PGD L∞ ascending the per-pixel
#    cross-entropy or the soft Dice loss of the lesion map (`seg_pgd_ce`, `seg_pgd_dice`), measured by
#    Dice and IoU against the ground-truth masks.
# 2. **3D** (AdrenalMNIST3D, VesselMNIST3D, 28³ CT volumes): the same white-box gradient attacks
#    (FGSM, PGD, and APGD-CE outside `smoke`) run unchanged on (N, 1, D, H, W) inputs.
#
# Every evaluation here is **white-box**.

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

from survey_lib import exercises
from survey_lib.attacks import make_attack
from survey_lib.config import get_profile
from survey_lib.evaluate import robust_metrics, sweep
from survey_lib.train import load_dataset, select_device, train_baseline
from survey_lib.widgets import Explorer

# %% tags=["parameters"]
PROFILE = None  # "smoke" | "cpu" | "paper"; None: $SURVEY_PROFILE, else cpu

# %%
profile = get_profile(PROFILE)
STEPS = {"smoke": 3, "cpu": 10, "paper": 20}[profile.name]
N_3D = 16 if profile.name == "smoke" else profile.eval_subset  # volumes attacked per 3D dataset
ATTACKS_3D = {"fgsm": {}, "pgd": {"steps": STEPS}}
if profile.name != "smoke":
    ATTACKS_3D["apgd_ce"] = {"steps": 2 * STEPS}
print(f"profile: {profile.name} · device: {select_device()} · {STEPS} PGD steps")
unet, record = train_baseline("ph2", profile, progress=False)
ph2 = load_dataset("ph2")["test"].subset(profile.eval_subset, 0)
print(f"PH2 U-Net, clean test Dice {record['test']['dice']:.3f} (IoU {record['test']['iou']:.3f})")

# %% [markdown]
# ## 1 · Dice versus ε: cross-entropy loss or Dice loss? (white-box)
# Both attacks lower the overlap with the true mask; ascending the Dice loss targets the metric
# itself.

# %%
eps_grid = [8] if profile.name == "smoke" else [1, 2, 4, 8, 16]
seg = pd.concat([sweep(unet, ph2, name, "eps", eps_grid, steps=STEPS, batch_size=16)
                 for name in ("seg_pgd_ce", "seg_pgd_dice")])
clean = robust_metrics(unet, ph2, batch_size=16)
fig, ax = plt.subplots(figsize=(6, 3.5))
sns.lineplot(seg, x="eps", y="dice", hue="attack", marker="o", ax=ax)
ax.axhline(clean["dice"], color="gray", ls="--", label="clean")
ax.set(title="PH2 U-Net under white-box PGD", xlabel="ε (/255)", ylabel="test Dice")
ax.legend()
fig.tight_layout()
seg[["attack", "eps", "dice", "iou", "seconds"]].round(3)

# %% [markdown]
# ## 2 · Masks before and after (white-box PGD on the Dice loss, ε = 8/255)
# Columns: image, ground truth, prediction on the clean image, attacked image, prediction on it.

# %%
x, masks = ph2.x[:3], ph2.y[:3]
x_adv = make_attack("seg_pgd_dice", eps=8, steps=STEPS)(unet, x, masks)
with torch.no_grad():
    pred, pred_adv = unet(x).argmax(1), unet(x_adv).argmax(1)
fig, axes = plt.subplots(len(x), 5, figsize=(11, 2.3 * len(x)), squeeze=False)
for i in range(len(x)):
    panels = (x[i].permute(1, 2, 0), masks[i], pred[i], x_adv[i].permute(1, 2, 0), pred_adv[i])
    for ax, img, title in zip(axes[i], panels, ("image", "true mask", "clean prediction",
                                                "attacked (8/255)", "attacked prediction")):
        ax.imshow(img, cmap=None if img.ndim == 3 else "gray")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
fig.suptitle("Lesion masks before and after a Dice-loss PGD attack")
fig.tight_layout()

# %% [markdown]
# **Explore it yourself:** pick a test image, the loss the attack ascends (cross-entropy or Dice), ε
# and steps; the explorer shows the image, the attacked image, the amplified difference, and the
# true, clean and attacked masks (a static figure without a widget front end).

# %%
Explorer(["ph2"], attack="seg_pgd_dice", eps=8, steps=STEPS)

# %% [markdown]
# ## 3 · 3D volumes: the same gradient attacks, unchanged (white-box)
# Robust accuracy, balanced accuracy, prediction shares and AUC of the 3D CNN baselines.

# %%
rows, volumes = [], {}
for flag in ("adrenalmnist3d", "vesselmnist3d"):
    model3d, _ = train_baseline(flag, profile, progress=False)
    test3d = load_dataset(flag)["test"].subset(N_3D, 0)
    volumes[flag] = (model3d, test3d)
    rows.append({**robust_metrics(model3d, test3d, batch_size=32), "dataset": flag, "attack": "clean"})
    for name, kw in ATTACKS_3D.items():
        m = robust_metrics(model3d, test3d, make_attack(name, eps=8, **kw), batch_size=32)
        rows.append({**m, "dataset": flag, "attack": name})
pd.DataFrame(rows)[["dataset", "attack", "acc", "bacc", "auc", "shares", "seconds"]].round(3)

# %% [markdown]
# ## 4 · Slice views of an attacked volume (white-box PGD, ε = 8/255)
# Three axial slices of one AdrenalMNIST3D test volume: clean, attacked, and the perturbation
# (rescaled; red brighter, blue darker). The perturbation is spread through the whole volume.

# %%
model3d, test3d = volumes["adrenalmnist3d"]
v, yv = test3d.x[:1], test3d.y[:1]
v_adv = make_attack("pgd", eps=8, steps=STEPS)(model3d, v, yv)
depth = v.shape[2]
fig, axes = plt.subplots(3, 3, figsize=(7, 7))
for j, z in enumerate((depth // 4, depth // 2, 3 * depth // 4)):
    d = (v_adv - v)[0, 0, z]
    axes[0, j].imshow(v[0, 0, z], cmap="gray", vmin=0, vmax=1)
    axes[1, j].imshow(v_adv[0, 0, z], cmap="gray", vmin=0, vmax=1)
    axes[2, j].imshow(d, cmap="seismic", vmin=-8 / 255, vmax=8 / 255)
    axes[0, j].set_title(f"slice z = {z}")
for ax, label in zip(axes[:, 0], ("clean", "PGD 8/255", "δ")):
    ax.set_ylabel(label)
for ax in axes.flat:
    ax.set_xticks([]), ax.set_yticks([])
fig.suptitle("AdrenalMNIST3D: one volume before and after PGD (axial slices)")
fig.tight_layout()

# %% [markdown]
# ## 5 · Exercises: the soft Dice loss and a Dice-loss attack
# **04.dice_loss**: the differentiable Dice loss the segmentation attack of section 2 ascends.
# **04.dice_pgd**: that attack itself — PGD L∞ as in notebook 01, with the Dice loss in place of the
# cross-entropy (the random start is passed in as `noise`, so your result can be compared exactly
# with `seg_pgd_dice`). Each check cell prints ✓ or ✗; `python -m survey_lib exercises grade
# <notebook>` grades both.


# %% tags=["solution"]
def soft_dice_loss(logits, masks):
    """Task 04.dice_loss: soft Dice loss of the lesion map (Milletari et al. 2016).

    p = softmax(logits)[:, 1] (logits (N, 2, H, W)), masks (N, H, W) in {0, 1}; per image
    Dice = (2·Σ p·m + 1) / (Σ p + Σ m + 1); return 1 − the mean Dice over the batch.
    """
    p, m = logits.softmax(1)[:, 1], masks.float()
    dice = (2 * (p * m).sum((1, 2)) + 1) / (p.sum((1, 2)) + m.sum((1, 2)) + 1)
    return 1 - dice.mean()


# %%
exercises.check("04.dice_loss", soft_dice_loss)


# %% tags=["solution"]
def dice_pgd(model, x, masks, eps, steps, step_size, noise):
    """Task 04.dice_pgd: PGD L∞ ascending the soft Dice loss of a segmentation model.

    As task 01.pgd: start at x + ε·noise projected onto the ε-ball and [0, 1], then `steps` signed
    steps of size step_size on the soft Dice loss (your soft_dice_loss), each followed by the
    projection. ε and step_size in /255 units. Return the images, detached.
    """
    eps, step_size = eps / 255, step_size / 255

    def project(x_adv):
        return (x + (x_adv - x).clamp(-eps, eps)).clamp(0, 1)

    x_adv = project(x + eps * noise)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(soft_dice_loss(model(x_adv), masks), x_adv)
        x_adv = project(x_adv.detach() + step_size * grad.sign())
    return x_adv.detach()


# %%
exercises.check("04.dice_pgd", dice_pgd)

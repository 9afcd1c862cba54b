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
# | | |
# |:--|:--|
# | **Objectives** | attack a lesion-segmentation U-Net through the cross-entropy or the Dice loss and measure Dice and IoU; run the same gradient attacks on 3D CT volumes |
# | **Prerequisites** | notebook 01 (PGD); what a segmentation mask and the Dice score are |
# | **In class** | `cpu` for the PH2 part (shipped U-Net in the explorer); the 3D models train for several minutes, so run the notebook once before class or use `smoke` |
# | **Run time** | `smoke` 1.2 min · `cpu` 8.5 min (one run each, 2026-11-28, on a shared 2-core CPU under load; see the start page) |
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

from survey_lib import exercises, pretrained
from survey_lib.attacks import make_attack
from survey_lib.config import get_profile
from survey_lib.evaluate import pick_examples, robust_metrics, sweep
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
unet, source = pretrained.baseline_model("ph2", profile)  # the shipped U-Net in cpu
ph2 = load_dataset("ph2")["test"].subset(profile.eval_subset, 0)
clean = robust_metrics(unet, ph2, batch_size=16)
print(f"{source}; clean test Dice {clean['dice']:.3f} (IoU {clean['iou']:.3f}, n = {clean['n']})")

# %% [markdown]
# ## 1 · Dice versus ε: cross-entropy loss or Dice loss? (white-box)
# Both attacks lower the overlap with the true mask; ascending the Dice loss targets the metric
# itself.

# %%
eps_grid = [8] if profile.name == "smoke" else [1, 2, 4, 8, 16]
seg = pd.concat([sweep(unet, ph2, name, "eps", eps_grid, steps=STEPS, batch_size=16)
                 for name in ("seg_pgd_ce", "seg_pgd_dice")])
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
# The three test images are drawn (seed 0) by `pick_examples` among those the U-Net segments best
# (the top half by per-image Dice), so there is a good mask for the attack to destroy.

# %%
pick = pick_examples(unet, ph2, n=3)
print(f"test images {pick.indices} (clean Dice {pick.scores}): {pick.rule}")
x, masks = ph2.x[pick.indices], ph2.y[pick.indices]
x_adv = make_attack("seg_pgd_dice", eps=8, steps=STEPS)(unet, x, masks)
with torch.no_grad():
    pred, pred_adv = unet(x).argmax(1), unet(x_adv).argmax(1)
fig, axes = plt.subplots(len(x), 5, figsize=(11, 2.3 * len(x)), squeeze=False)
for i in range(len(x)):
    panels = (x[i].permute(1, 2, 0), masks[i], pred[i], x_adv[i].permute(1, 2, 0), pred_adv[i])
    for ax, img, title in zip(axes[i], panels, (f"test image {pick.indices[i]}", "true mask",
                                                "clean prediction", "attacked (8/255)",
                                                "attacked prediction")):
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
Explorer(["ph2"], attack="seg_pgd_dice", eps=8, steps=STEPS, profile=profile)

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
# (rescaled; red brighter, blue darker). The perturbation is spread through the whole volume. The
# volume is drawn (seed 0) by `pick_examples` among those the 3D CNN classifies correctly with high
# confidence (the top half by p(true class)); the title gives p(true class) before and after.

# %%
model3d, test3d = volumes["adrenalmnist3d"]
pick = pick_examples(model3d, test3d)
print(f"test volume {pick.indices[0]}: {pick.rule}")
v, yv = test3d.x[pick.indices], test3d.y[pick.indices]
v_adv = make_attack("pgd", eps=8, steps=STEPS)(model3d, v, yv)
with torch.no_grad():
    p_true = [torch.softmax(model3d(t), 1)[0, yv[0]].item() for t in (v, v_adv)]
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
fig.suptitle(f"AdrenalMNIST3D test volume {pick.indices[0]} before and after PGD (axial slices): "
             f"p(true class) {p_true[0]:.2f} → {p_true[1]:.2f}")
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

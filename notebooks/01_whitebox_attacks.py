# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · White-box attacks: FGSM → PGD → CW → DeepFool
#
# | | |
# |:--|:--|
# | **Objectives** | attack a medical image classifier with FGSM, PGD, CW and DeepFool and watch its prediction flip; compare L∞ and L2 threat models (ε in /255 or pixels); read robust accuracy beside balanced accuracy and prediction shares; check an evaluation for gradient masking (accuracy must fall with ε) |
# | **Prerequisites** | notebook 00 (datasets, metrics); PyTorch autograd (gradients with respect to the input) |
# | **In class** | `cpu` profile: the pretrained models shipped with the package, no training |
# | **Run time** | `smoke` 0.8 min · `cpu` 18.8 min (one run each, 2026-11-28, on a shared 2-core CPU under load; see the start page) |
#
# Reproduces the survey's taxonomy branch **attacks → white-box → gradient-based and
# optimisation-based** (Dong et al., ACM CSUR 2024, Sec. 3). Every evaluation in this notebook is
# **white-box**: the attacker knows the model and differentiates through it.
#
# Attacks (`survey_lib.attacks`, each citing its paper): FGSM (one signed step), PGD L∞ (iterated
# projected steps, random start), CW (the margin loss inside PGD, and the L2 optimisation form),
# DeepFool (the nearest linearised boundary, L2). ε for L∞ is in /255 units; L2 ε in pixels.
# Beside every robust accuracy: balanced accuracy, per-class prediction shares and AUC on the attacked
# images — medical test sets are imbalanced (PneumoniaMNIST 62.5%, BreastMNIST 73.1% one class).

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

from survey_lib import exercises, pretrained
from survey_lib.attacks import make_attack
from survey_lib.config import get_profile
from survey_lib.evaluate import pick_examples, robust_metrics, sweep
from survey_lib.train import load_dataset, select_device
from survey_lib.widgets import Explorer

# %% tags=["parameters"]
PROFILE = None  # "smoke" | "cpu" | "paper"; None: $SURVEY_PROFILE, else cpu

# %%
profile = get_profile(PROFILE)
DATASETS = ["breastmnist", "pneumoniamnist", "retinamnist"]
STEPS = {"smoke": 5, "cpu": 20, "paper": 50}[profile.name]  # PGD / CW iterations
N_EVAL = profile.eval_subset or 512  # test images attacked per dataset
print(f"profile: {profile.name} · device: {select_device()} · {N_EVAL} test images · {STEPS} steps")
models, tests = {}, {}
for flag in DATASETS:
    models[flag], source = pretrained.baseline_model(flag, profile)
    print(source)
    tests[flag] = load_dataset(flag)["test"].subset(N_EVAL, 0)

# %% [markdown]
# ## 1 · Try it: attack one image (white-box)
# Pick a dataset, a test image, a model, an attack, ε and steps: the explorer re-runs the attack and
# shows the original, the adversarial image, the difference amplified to the full grey range, and
# the class probabilities before and after; its title names the image, the attack and the model.
# It starts at ε = 8/255, where PGD flips most predictions of an undefended model: slide ε down to
# find the smallest budget that still flips this one, then pick the PGD-AT model. In the `cpu`
# profile the list starts with the models shipped with the package (undefended NAT and
# adversarially trained PGD-AT, table below); every model in the `runs/` cache follows (notebook 05
# adds defended ones). The explorer starts on a test image drawn (seed 0) by `pick_examples` among
# those the first model classifies correctly with high confidence (the top half by p(true class)),
# so the attack has something to change. Without a widget front end (CI, the rendered site) it
# draws that first view as a static figure.

# %%
Explorer(DATASETS, eps=8, steps=10, profile=profile)

# %% [markdown]
# The shipped models, read from their manifest (`survey_lib/pretrained/manifest.json`, written by
# `python -m survey_lib pretrained build`): clean and white-box PGD-20 test metrics on the whole
# test split at ε = 2, 4 and 8/255; `flipped` is the share of the
# correctly classified test images the attack makes wrong. (Empty in profiles other than the one
# they were trained with.)

# %%
shipped = pretrained.entries(profile)
if "pneumoniamnist/nat" in shipped and "pneumoniamnist/pgd_at" in shipped:
    nat, at = (shipped[f"pneumoniamnist/{d}"]["test"] for d in ("nat", "pgd_at"))
    display(Markdown(
        f"For instance, the PneumoniaMNIST NAT model classifies {nat['clean']['acc']:.1%} of the "
        f"{nat['n']} test images correctly; white-box PGD-20 makes {nat['pgd2']['flipped']:.0%} of "
        f"those wrong at ε = 2/255, {nat['pgd4']['flipped']:.0%} at 4/255 and "
        f"{nat['pgd8']['flipped']:.0%} at 8/255. The PGD-AT model (trained at 8/255) is right on "
        f"{at['clean']['acc']:.1%} of them and PGD-20 at 8/255 flips only {at['pgd8']['flipped']:.0%}."))
pretrained.table(profile).round(3)

# %% [markdown]
# ## 2 · The five attacks on three datasets (white-box)
# (In the `smoke` profile the models are trained for seconds and usually answer one class only:
# the numbers mean something in `cpu` and `paper`.)
# L∞ attacks at ε = 8/255; the L2 attacks (CW-L2, DeepFool) at ε = 1.0 (pixels; a 28×28 image has
# L2 diameter 28). `shares` is the fraction of predictions per class: watch attacks push every image
# into one class.

# %%
ATTACKS = {"FGSM": ("fgsm", {"eps": 8}), "PGD": ("pgd", {"eps": 8, "steps": STEPS}),
           "CW-margin PGD": ("cw_pgd", {"eps": 8, "steps": STEPS}),
           "CW-L2": ("cw_l2", {"eps": 1.0, "steps": STEPS, "search_steps": 3}),
           "DeepFool": ("deepfool", {"eps": 1.0, "steps": STEPS})}
rows = []
for flag in DATASETS:
    rows.append({**robust_metrics(models[flag], tests[flag]), "dataset": flag, "attack": "clean"})
    for label, (name, kw) in ATTACKS.items():
        m = robust_metrics(models[flag], tests[flag], make_attack(name, **kw))
        rows.append({**m, "dataset": flag, "attack": label})
table = pd.DataFrame(rows)[["dataset", "attack", "acc", "bacc", "auc", "shares", "collapsed", "seconds"]]
table.round(3)

# %% [markdown]
# ## 3 · Perturbation gallery (white-box, PneumoniaMNIST)
# One test image, drawn (seed 0) by `pick_examples` among those the model classifies correctly
# with high confidence (the top half by p(true class); its index and p(true) are in the title).
# Top: the image attacked by each of the five attacks, titled with the model's probability of the
# true class; bottom: the perturbation δ, each rescaled to its own largest value (red brighter,
# blue darker), with its L∞ and L2 size. The three L∞ attacks spend the whole budget, ±8/255, on
# nearly every pixel; the L2 attacks (CW-L2, DeepFool) look for the smallest perturbation in L2 that
# changes the prediction: a smaller L2 norm than the L∞ attacks' (compare the L2 values), which may
# exceed 8/255 on single pixels. DeepFool steps just across the nearest linearised decision
# boundary, so the true class keeps a probability near 0.5. (In `smoke` the model is nearly
# constant: no attack moves it, and CW-L2, finding no adversarial example within its budget,
# returns the clean image, δ = 0.)

# %%
flag = "pneumoniamnist"
model, test = models[flag], tests[flag]
pick = pick_examples(model, test)
print(f"test image {pick.indices[0]}: {pick.rule}")
x, y = test.x[pick.indices], test.y[pick.indices]
adv = {label: make_attack(name, **kw)(model, x, y) for label, (name, kw) in ATTACKS.items()}
with torch.no_grad():
    p_clean = torch.softmax(model(x), 1)[0, y[0]].item()
fig, axes = plt.subplots(2, len(adv) + 1, figsize=(2.2 * (len(adv) + 1), 4.6))
axes[0, 0].imshow(x[0, 0], cmap="gray", vmin=0, vmax=1)
axes[0, 0].set_title(f"clean\np(true)={p_clean:.2f}", fontsize=9)
axes[1, 0].axis("off")
for i, (label, xa) in enumerate(adv.items(), start=1):
    with torch.no_grad():
        p = torch.softmax(model(xa), 1)[0, y[0]].item()
    d = (xa - x)[0, 0]
    axes[0, i].imshow(xa[0, 0], cmap="gray", vmin=0, vmax=1)
    axes[0, i].set_title(f"{label}\np(true)={p:.2f}", fontsize=9)
    axes[1, i].imshow(d, cmap="seismic", vmin=-d.abs().max() - 1e-9, vmax=d.abs().max() + 1e-9)
    axes[1, i].set_title(f"δ: L∞={d.abs().max() * 255:.1f}/255\nL2={d.norm():.2f}", fontsize=8)
for ax in axes.flat:
    ax.set_xticks([]), ax.set_yticks([])
fig.suptitle(f"White-box attacks on PneumoniaMNIST test image {pick.indices[0]} (top) and their "
             "perturbations (bottom)")
fig.tight_layout()

# %% [markdown]
# ## 4 · Confidence shift (white-box PGD at 8/255)
# The model's probability of the true class on clean versus attacked images: PGD moves almost all
# the mass from the right (confident and correct) to the left.

# %%
xa = make_attack("pgd", eps=8, steps=STEPS)(model, test.x, test.y)
with torch.no_grad():
    conf = pd.DataFrame({
        "clean": torch.softmax(model(test.x), 1).gather(1, test.y.view(-1, 1))[:, 0].numpy(),
        "PGD 8/255": torch.softmax(model(xa), 1).gather(1, test.y.view(-1, 1))[:, 0].numpy()})
fig, ax = plt.subplots(figsize=(6, 3))
sns.histplot(conf.melt(var_name="input", value_name="p"), x="p", hue="input", bins=20, ax=ax)
ax.set(title="Confidence in the true class, PneumoniaMNIST", xlabel="p(true class)", ylabel="images")
fig.tight_layout()

# %% [markdown]
# ## 5 · Accuracy versus ε (white-box FGSM and PGD)
# Robust accuracy (solid) and robust balanced accuracy (dashed) against ε. Accuracy must fall
# monotonically with ε and PGD must lie below FGSM; otherwise suspect gradient masking.

# %%
EPS = [2, 8] if profile.name == "smoke" else [0.5, 1, 2, 4, 8]
curves = pd.concat([sweep(models[f], tests[f], a, "eps", EPS, label=f, **kw)
                    for f in DATASETS for a, kw in (("fgsm", {}), ("pgd", {"steps": STEPS}))])
long = curves.melt(id_vars=["model", "attack", "eps"], value_vars=["acc", "bacc"], var_name="metric")
g = sns.relplot(long, x="eps", y="value", hue="attack", style="metric", col="model", kind="line",
                marker="o", height=3, aspect=1.1)
g.set_axis_labels("ε (/255)", "robust accuracy / bACC")
g.figure.suptitle("White-box accuracy vs ε", y=1.04)
curves[["model", "attack", "eps", "acc", "bacc", "auc", "shares"]].round(3)

# %% [markdown]
# ## 6 · Exercises: write FGSM, PGD and the L2 projection yourself
# The package's attacks are short; re-deriving them is the best way to read them. Each cell below
# is one exercise (in the student copy, `notebooks/exercises/`, its body is a stub); the cell after
# it compares your function with `survey_lib`'s on fixed inputs and prints ✓ or ✗. Grade all of
# them with `python -m survey_lib exercises grade <notebook>`.
#
# **01.fgsm** — the Fast Gradient Sign Method: one step of size ε along the sign of the input
# gradient of the loss.


# %% tags=["solution"]
def fgsm(model, x, y, eps):
    """Task 01.fgsm: FGSM (Goodfellow et al., ICLR 2015).

    Return x + ε·sign(∇x CE(model(x), y)) clipped to [0, 1], without gradient history.
    ε is in /255 units (eps=8 means 8/255); the model is already in eval mode.
    """
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return (x + eps / 255 * grad.sign()).clamp(0, 1).detach()


# %%
exercises.check("01.fgsm", fgsm)

# %% [markdown]
# **01.pgd** — PGD with a random start: iterate small signed steps, projecting back onto the
# ε-ball (and [0, 1]) after each. The random start is passed in as `noise` so that your result can
# be compared exactly with the package's (same noise, same path).


# %% tags=["solution"]
def pgd(model, x, y, eps, steps, step_size, noise):
    """Task 01.pgd: PGD L∞ with random start (Madry et al., ICLR 2018).

    Start at x + ε·noise (noise uniform in [-1, 1], shaped like x) projected onto the ε-ball and
    [0, 1]; then `steps` times: step of size step_size along sign(∇x CE), project (clip δ to
    [-ε, ε], the image to [0, 1]). ε and step_size in /255 units. Return the images, detached.
    """
    eps, step_size = eps / 255, step_size / 255

    def project(x_adv):
        return (x + (x_adv - x).clamp(-eps, eps)).clamp(0, 1)

    x_adv = project(x + eps * noise)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        x_adv = project(x_adv.detach() + step_size * grad.sign())
    return x_adv.detach()


# %%
exercises.check("01.pgd", pgd)

# %% [markdown]
# **01.l2_projection** — the L2 threat model (PGD-L2, CW-L2, DeepFool) bounds the Euclidean norm
# of each image's perturbation: a perturbation that is too long is shortened, not clipped pixel by
# pixel.


# %% tags=["solution"]
def project_l2(x_adv, x, eps):
    """Task 01.l2_projection: projection onto the L2 ball of radius eps (pixels) around each image.

    Scale each δ = x_adv − x by min(1, eps / ‖δ‖₂) (norm over all pixels of the image; guard a zero
    norm with 1e-12), then clip x + δ to [0, 1].
    """
    delta = x_adv - x
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    scale = (eps / norms).clamp(max=1.0).view(-1, *[1] * (x.ndim - 1))
    return (x + delta * scale).clamp(0, 1)


# %%
exercises.check("01.l2_projection", project_l2)

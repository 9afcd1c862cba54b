# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Adversarial training
#
# | | |
# |:--|:--|
# | **Objectives** | train PGD-AT, TRADES, MART, HAT and fast AT from one recipe; read the robustness–accuracy trade-off and the training cost; recognise a collapsed 'robust' model on imbalanced data and the remedies; check for catastrophic overfitting |
# | **Prerequisites** | notebook 01 (PGD, robust accuracy); a training loop |
# | **In class** | `smoke` in class (the cpu grid trains about twenty models: run it beforehand); the explorer lists the shipped PGD-AT models in `cpu`, and section 7 shows the committed cpu results in every profile |
# | **Run time** | `smoke` 0.9 min · `cpu` 41.9 min (one run each, 2026-11-28, on a shared 2-core CPU under load; see the start page) |
#
# Companion to *Adversarial Attack and Defense for Medical Image Analysis* (Dong et al., ACM
# Computing Surveys 2024). This notebook reproduces the survey's **defenses → adversarial training**
# branch, the family its benchmark finds most reliable: the model is trained on adversarial
# examples produced on the fly by an *inner attack*.
#
# | method | outer loss | paper |
# |---|---|---|
# | PGD-AT | CE on PGD examples (Dice + CE for the U-Net) | Madry et al., ICLR 2018 |
# | TRADES | CE(clean) + β·KL(p(x) ‖ p(x′)) | Zhang et al., ICML 2019 |
# | MART | boosted CE on x′ + β·KL weighted by 1 − p_y(x) | Wang et al., ICLR 2020 |
# | HAT | TRADES + γ·CE on helpers x + h·(x′ − x) labelled by a NAT model | Rade & Moosavi-Dezfooli 2022 |
# | fast AT | PGD-AT with one FGSM step from a random start | Wong et al., ICLR 2020 |
#
# All five share one recipe (`survey_lib.defenses.adversarial_training`): the inner attack is the
# package's white-box `PGD` (KL loss for TRADES/HAT), run in **eval mode** as every attack here
# (BatchNorm statistics do not move during the inner maximisation; train mode is restored for the
# update). The checkpoint kept is the one with the best **robust balanced accuracy** under PGD on
# the *validation* split. Every evaluation below is **white-box** (PGD on the defended model itself).
#
# What to look at: (1) robustness is bought with clean accuracy and compute; (2) on a small,
# imbalanced dataset "robust accuracy" can be a lie: BreastMNIST at 8/255 collapses to the majority
# class, and balanced accuracy, prediction shares and the collapse flag are what reveal it.

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

from survey_lib import exercises
from survey_lib.attacks import PGD
from survey_lib.config import get_profile
from survey_lib.data import class_separation
from survey_lib.defenses import make_defense
from survey_lib.defenses.adversarial_training import grid, nat_reference, summary
from survey_lib.evaluate import pick_examples
from survey_lib.paths import committed
from survey_lib.train import load_dataset, predict, select_device
from survey_lib.widgets import Explorer

# %% tags=["parameters"]
PROFILE = None  # "smoke" | "cpu" | "paper"; None: $SURVEY_PROFILE, else cpu

# %%
profile = get_profile(PROFILE)
print(f"profile: {profile.name} · device: {select_device()}")

# %% [markdown]
# ## 1 · One recipe, five methods
# A defense is built by name; `resolve` shows the full training configuration it will be cached
# under (`runs/<dataset>/<method>-<hash>/`). The `paper` profile uses the survey's settings
# (PGD-10 inner attack, step 2/255 at ε = 8/255, β = 6, HAT h = 3.5, γ = 1); `cpu` fits a shared
# 2-core CPU: PGD-5 inner attack (step 2.5ε/5) and few epochs (4 on PneumoniaMNIST, RetinaMNIST and
# AdrenalMNIST3D; 30 on BreastMNIST, with every class drawn equally often, and 30 on PH2 — both chosen
# on the validation split, `benchmarks/at_budget/`); `smoke` is for CI only (1 epoch, PGD-2). The
# `epochs` column of the tables says what each model got.

# %%
pd.Series(make_defense("hat", eps=8).resolve("breastmnist", profile)).to_frame("hat config")

# %% [markdown]
# ## 2 · Train (or load) the grid
# `grid(profile)` lists the runs of this notebook and of
# `benchmarks/defenses_at_cpu/defenses_at_cpu.py`; each is
# trained once and cached (point `SURVEY_RUNS_DIR` at the benchmark's runs folder to reuse its
# models). The undefended (NAT) model of each dataset is evaluated the same way.
# In `smoke` only the BreastMNIST part runs (CI time); section 7 shows the committed cpu numbers.

# %%
runs = grid(profile)
records = {}
for dataset, method, options in runs:
    for eps in sorted({o["eps"] for d, _, o in runs if d == dataset}):
        if (dataset, "nat", eps, None, False) not in records:
            records[dataset, "nat", eps, None, False] = nat_reference(dataset, profile, eps, False)[1]
    model, record = make_defense(method, **options).train(dataset, profile, progress=False)
    key = (dataset, method, options["eps"], record["config"]["balanced"], "eps_schedule" in options)
    records[key] = record
table = pd.DataFrame([summary(r) for r in records.values()])
COLUMNS = ["dataset", "method", "eps", "balanced", "warmup", "clean_acc", "clean_bacc", "clean_auc",
           "clean_shares", "clean_collapsed", "pgd_acc", "pgd_bacc", "pgd_shares", "pgd_collapsed",
           "train_s", "overfit_epochs", "collapsed_epochs"]


def show(dataset, eps=None):
    rows = table[(table.dataset == dataset) & ((table.eps == eps) if eps else True)]
    return rows[[c for c in COLUMNS if c in rows]].reset_index(drop=True) if len(rows) else \
        f"{dataset} is not in the {profile.name} grid (see section 7)"


# %% [markdown]
# ## 3 · PneumoniaMNIST at ε = 8/255
# Clean and white-box PGD-20 test metrics (`pgd_*`: PGD with 20 steps at the training ε). Beside
# every accuracy: balanced accuracy, the share of predictions per class (normal/pneumonia) and the
# collapse flag (≥ 95% of predictions in one class).

# %%
show("pneumoniamnist")

# %% [markdown]
# The robustness–accuracy trade-off: each point is one model; up is more robust, right is more
# accurate on clean images. NAT sits at the bottom right (accurate, not robust at all).

# %%
trade = table[table.dataset.isin(["pneumoniamnist", "breastmnist"])].copy()
trade["setting"] = (trade.dataset + " " + trade.eps.astype(str) + "/255"
                    + trade.balanced.map({True: " bal.", False: " unbal."})
                    + trade.warmup.map({True: " warm-up", False: ""}))
fig, ax = plt.subplots(figsize=(7, 4))
sns.scatterplot(trade, x="clean_bacc", y="pgd_bacc", hue="method", style="setting", s=80, ax=ax)
ax.set(title="Robustness–accuracy trade-off (white-box PGD-20 at the training ε)",
       xlabel="clean balanced accuracy", ylabel="robust balanced accuracy (PGD-20)")
ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
fig.tight_layout()

# %% [markdown]
# *Training cost.* Wall-clock seconds per epoch (validation excluded) and the ratio to PGD-AT on the
# same data: fast AT needs one attack step instead of the inner PGD's, TRADES/MART/HAT add forward
# passes on clean (and helper) examples. Wall times come from a shared CPU: read ratios, not
# absolute values.

# %%
cost = table[(table.method != "nat") & table.balanced.ne(False) & ~table.warmup].copy()
cost["setting"] = cost.dataset + " " + cost.eps.astype(str) + "/255"
cost = cost[cost.groupby("setting").method.transform("nunique") > 1]
pgd_at = cost[cost.method == "pgd_at"].set_index("setting").s_per_epoch
cost["ratio_to_pgd_at"] = cost.s_per_epoch / cost.setting.map(pgd_at)
fig, ax = plt.subplots(figsize=(6, 3))
sns.barplot(cost, x="method", y="s_per_epoch", hue="setting", ax=ax)
ax.set(title="Training cost of adversarial training", xlabel="", ylabel="seconds per epoch (CPU)")
ax.legend(title="setting", fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")  # beside the bars
fig.tight_layout()
cost[["setting", "method", "s_per_epoch", "ratio_to_pgd_at"]].round(2)

# %% [markdown]
# *Loss curves and robust validation score.* Left: the outer training loss per epoch (methods have
# different losses, so compare shapes, not levels). Right: robust balanced accuracy (PGD on the
# validation split) per epoch; the kept checkpoint is the best epoch.
#
# **Catastrophic overfitting check (fast AT).** FGSM training can suddenly stop being robust to
# PGD within one epoch (Wong et al. 2020). The per-epoch PGD validation score is tracked and
# `overfit_epochs` in the tables lists the epochs where it fell ≥ 0.2 below its best so far;
# selecting the checkpoint by robust validation bACC is the early stopping that guards against it.

# %%
curves = pd.DataFrame([{"setting": f"{k[0]} {k[1]} {k[2]}/255" + (" bal." if k[3] else ""),
                        "epoch": h["epoch"], "loss": h["loss"], "robust val bACC": h["val_score"]}
                       for k, r in records.items() if k[1] != "nat" and not k[4]
                       for h in r["history"]])
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for ax, y in zip(axes, ["loss", "robust val bACC"]):
    sns.lineplot(curves, x="epoch", y=y, hue="setting", marker="o", ax=ax, legend=ax is axes[1])
    ax.set(title=f"{y} per epoch", xlabel="epoch", ylabel=y)
axes[1].legend(fontsize=6, bbox_to_anchor=(1.01, 1), loc="upper left")
fig.tight_layout()
table[table.method == "fast_at"][["dataset", "eps", "val_robust_by_epoch", "overfit_epochs"]]

# %% [markdown]
# ## 4 · BreastMNIST: the 8/255 collapse and its remedy
# Without class balancing, adversarial training at 8/255 on BreastMNIST (546 training images, 27%
# malignant) finds the cheapest "robust" model: **a constant answer**. When the constant is the
# majority class ("benign") its accuracy equals the majority rate (0.73) on clean *and* attacked
# images — a "robust accuracy" of 0.73 that looks like a success — yet its balanced accuracy is 0.50
# and the prediction shares are 0/1 (the constant can also be the minority class at some epochs).
# Is the collapse forced by the data, i.e. do the 8/255 balls of the two classes overlap? Two balls
# can only overlap if a benign and a malignant image are at most 2ε = 16/255 apart in L∞. The next
# cell measures it on the training images: the closest pair of different classes is farther apart
# than that, so a classifier that is robust at 8/255 on every training image exists. The collapse
# is an optimisation failure of a short, imbalanced training, not a property of the data. The
# collapse flag (test) and `collapsed_epochs` (validation, per epoch) catch it. Remedies:
# class-balanced sampling (`balanced=True`, the seed code's WeightedRandomSampler), more epochs, an
# ε warm-up (`eps_schedule=warmup(...)`), and a smaller ε: at 2/255 with balancing the models keep
# both classes (second table). The budget study below (validation split only) shows how long the
# cpu recipe must train before the verdict is stable across seeds.

# %%
gap = class_separation(load_dataset("breastmnist", splits=("train",))["train"])
print(f"BreastMNIST training images (n = {gap['n']}): closest benign–malignant pair "
      f"{gap['closest_pair']:.0f}/255 apart in L∞ (2ε = 16/255 at ε = 8/255); median distance to "
      f"the nearest image of the other class {gap['median_nearest']:.0f}/255")
display(Markdown(committed("at_budget/at_budget_breastmnist.md").read_text()))

# %%
show("breastmnist", 8)

# %%
show("breastmnist", 2)

# %%
breast = table[table.dataset == "breastmnist"].copy()
breast["run"] = (breast.method + " " + breast.eps.astype(str) + "/255"
                 + breast.balanced.map({True: " bal.", False: " unbal."})
                 + breast.warmup.map({True: " warm-up", False: ""}))
long = breast.melt(id_vars="run", value_vars=["pgd_acc", "pgd_bacc"], var_name="metric")
fig, ax = plt.subplots(figsize=(8, 3.4))
sns.barplot(long, x="run", y="value", hue="metric", ax=ax)
ax.axhline(0.5, color="grey", ls="--", lw=1)
ax.set(title="BreastMNIST under PGD-20: accuracy vs balanced accuracy", xlabel="",
       ylabel="score on attacked test images", ylim=(0, 1))
ax.legend(title="metric", fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")  # beside the bars
ax.tick_params(axis="x", rotation=60, labelsize=7)
fig.tight_layout()

# %% [markdown]
# Where `pgd_acc` is high but `pgd_bacc` sits on the dashed 0.5 line the model has collapsed: the
# collapse flag in the tables says so, and `collapsed_epochs` shows in which epochs the validation
# predictions were ≥ 95% one class.
#
# ## 5 · AdrenalMNIST3D: PGD-AT on volumes
# The same recipe on 3D volumes (the profile's 3D CNN), ε = 8/255, white-box PGD-20.

# %%
show("adrenalmnist3d")

# %% [markdown]
# ## 6 · PH2 lesion segmentation: PGD-AT for a U-Net
# The outer loss is the segmentation loss (Dice + per-pixel CE), the inner PGD ascends the
# per-pixel CE. We report the mean Dice of the lesion on clean and attacked (white-box PGD-20,
# 8/255) test images, and draw one test image with both models' predictions under attack: drawn
# (seed 0) by `pick_examples` among those the NAT U-Net segments best (the top half by per-image
# Dice), so there is a good mask for the attack to destroy.

# %%
show("ph2")

# %%
if any(k[0] == "ph2" for k in records):
    test = load_dataset("ph2")["test"]
    attack = PGD(eps=8, steps=20)
    nat_model = nat_reference("ph2", profile, 8, progress=False)[0]
    pick = pick_examples(nat_model, test)
    print(f"test image {pick.indices[0]}: {pick.rule}")
    x, y = test.x[pick.indices], test.y[pick.indices]
    at_model = make_defense("pgd_at", eps=8).train("ph2", profile, progress=False)[0]
    fig, axes = plt.subplots(1, 4, figsize=(11, 3))
    axes[0].imshow(x[0].permute(1, 2, 0))
    axes[0].contour(y[0], levels=[0.5], colors="yellow")
    axes[0].set_title(f"test image {pick.indices[0]}, expert outline")
    for ax, (name, model) in zip(axes[1:], [("NAT", nat_model), ("PGD-AT", at_model)]):
        ax.imshow(predict(model, attack(model, x, y)).argmax(1)[0], cmap="gray")
        ax.set_title(f"{name} under PGD-20 (8/255)")
    axes[3].imshow(predict(at_model, x).argmax(1)[0], cmap="gray")
    axes[3].set_title("PGD-AT, clean image")
    for ax in axes:
        ax.set(xticks=[], yticks=[], xlabel="x (pixels)", ylabel="y (pixels)")
    fig.suptitle("PH2: predicted lesion masks (white = lesion)")
    fig.tight_layout()
else:
    print(f"ph2 is not in the {profile.name} grid (see section 7)")

# %% [markdown]
# An undefended U-Net's mask dissolves under an imperceptible 8/255 perturbation; the adversarially
# trained one keeps most of the lesion, at some cost in clean Dice.
#
# **Explore the defended models:** every model trained above is in the `runs/` cache and, in the
# `cpu` profile, the NAT and PGD-AT models shipped with the package come first; pick NAT or a
# defended one, an image, an attack, ε and steps, and compare how far the class probabilities move
# (a static figure without a widget front end). The explorer starts on a test image drawn (seed 0)
# by `pick_examples` among those the first model classifies correctly with high confidence.

# %%
Explorer(["breastmnist", "pneumoniamnist"], eps=8, steps=10, profile=profile)

# %% [markdown]
# ## 7 · The committed cpu-profile results
# What `benchmarks/defenses_at_cpu/defenses_at_cpu.py` measured with the `cpu` profile, so a `smoke`
# run of this notebook still shows real numbers: per model, clean and white-box PGD-20 test metrics
# at the training ε (`pgd_*`), the collapse flags and the epochs trained. How the run was made
# (command, machine, wall times) is in `benchmarks/defenses_at_cpu/defenses_at_cpu.md`.

# %%
committed_at = pd.read_csv(committed("defenses_at_cpu/defenses_at_cpu.csv"))
committed_at[["dataset", "method", "eps", "balanced", "warmup", "epochs", "clean_acc", "clean_bacc",
              "clean_auc", "clean_dice", "pgd_acc", "pgd_bacc", "pgd_dice", "clean_collapsed",
              "pgd_collapsed"]].round(3)

# %% [markdown]
# ## 8 · Exercises: a PGD-AT step, the TRADES and MART outer losses
# **05.pgd_at_step**: one step of the training loop of PGD-AT — attack the batch, then update the
# model on the attacked images. The check runs two steps and compares the weights and BatchNorm
# statistics with those `survey_lib`'s PGD-AT loss and the same optimizer produce.


# %% tags=["solution"]
def pgd_at_step(model, optimizer, x, y, attack):
    """Task 05.pgd_at_step: one step of PGD adversarial training (Madry et al., ICLR 2018).

    Craft x′ = attack(model, x, y) (the attack runs the model in eval mode and restores its mode);
    then, in train mode, clear the old gradients, back-propagate CE(model(x′), y) and take one
    optimizer step. Return the loss as a float.
    """
    x_adv = attack(model, x, y)
    model.train()
    loss = F.cross_entropy(model(x_adv), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


# %%
exercises.check("05.pgd_at_step", pgd_at_step)

# %% [markdown]
# The inner attack is the same for all methods; what distinguishes them is the outer loss. Write
# the two regularised ones from the logits on clean images x and on the adversarial images x′ —
# **05.trades_loss** and **05.mart_loss**. Each check compares yours with `survey_lib`'s
# `AdversarialLoss` on fixed logits (✓ or ✗); `python -m survey_lib exercises grade <notebook>`
# grades all three exercises.


# %% tags=["solution"]
def trades_loss(logits, logits_adv, y, beta):
    """Task 05.trades_loss: the TRADES outer loss (Zhang et al., ICML 2019).

    CE(logits, y) + β · batch-mean KL(p ‖ p′), with p = softmax(logits) on clean images and
    p′ = softmax(logits_adv) on adversarial ones. Return a scalar tensor.
    """
    p = logits.softmax(1)
    kl = (p * (logits.log_softmax(1) - logits_adv.log_softmax(1))).sum(1).mean()
    return F.cross_entropy(logits, y) + beta * kl


# %%
exercises.check("05.trades_loss", trades_loss)


# %% tags=["solution"]
def mart_loss(logits, logits_adv, y, beta):
    """Task 05.mart_loss: the MART outer loss (Wang et al., ICLR 2020).

    Boosted CE on x′: CE(logits_adv, y) − mean log(1.0001 − p′_k + 1e-12), k the most probable
    wrong class under p′ = softmax(logits_adv); plus β · mean over the batch of
    KL(p ‖ p′) (with log(p′ + 1e-12)) · (1.0000001 − p_y), p = softmax(logits). Return a scalar.
    """
    p, p_adv = logits.softmax(1), logits_adv.softmax(1)
    wrong = p_adv.scatter(1, y[:, None], -1.0).argmax(1)  # the most probable wrong class
    p_wrong = p_adv.gather(1, wrong[:, None]).squeeze(1)
    boosted = F.cross_entropy(logits_adv, y) - torch.log(1.0001 - p_wrong + 1e-12).mean()
    kl = (p * (torch.log(p + 1e-12) - torch.log(p_adv + 1e-12))).sum(1)
    weight = 1.0000001 - p.gather(1, y[:, None]).squeeze(1)
    return boosted + beta * (kl * weight).mean()


# %%
exercises.check("05.mart_loss", mart_loss)

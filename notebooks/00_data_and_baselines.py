# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Data and undefended baselines
#
# | | |
# |:--|:--|
# | **Objectives** | load MedMNIST 2D/3D and PH2 and read each dataset's class balance; see why plain accuracy misleads on imbalanced medical data (balanced accuracy, prediction shares, the collapse flag); train and cache an undefended (NAT) baseline and compare it with the MedMNIST v2 paper |
# | **Prerequisites** | Python and PyTorch basics (tensors, a training loop); accuracy and AUC |
# | **In class** | `smoke` for the tour of the data (its models are untrained; the committed cpu results are shown at the end); `cpu` as homework or before class, to train the baselines the later notebooks reuse |
# | **Run time** | `smoke` 1.1 min · `cpu` 38.3 min (one run each, 2026-11-28, on a shared 2-core CPU under load; see the start page) |
#
# Companion to *Adversarial Attack and Defense for Medical Image Analysis* (Dong et al., ACM
# Computing Surveys 2024). Before any attack or defense, this notebook sets the stage the survey's
# benchmark stands on: the **medical image datasets** (MedMNIST 2D/3D classification, PH2 lesion
# segmentation) and **undefended (NAT) models** trained on them. Every later notebook attacks or
# defends these models.
#
# What to look at:
# 1. each dataset's images and its **class balance** — medical test sets are imbalanced, so a model
#    that always answers the majority class already scores a high accuracy;
# 2. our baselines' test ACC/AUC beside the MedMNIST v2 paper's ResNet-18 numbers, with balanced
#    accuracy and per-class prediction shares next to every accuracy.
#
# Data: `SURVEY_DATA_DIR` (else `./data`, downloaded on first use). Profile: the parameters cell
# below (`smoke` for CI in seconds, `cpu` for real numbers in minutes, `paper` for a GPU).

# %%
import pandas as pd
from IPython.display import Markdown, display

from survey_lib.config import get_profile
from survey_lib.data import load_ph2, load_splits, local_datasets
from survey_lib.figures import class_balance, image_grid
from survey_lib.report import baseline_table, plot_baselines
from survey_lib.train import select_device, train_baseline

# %% tags=["parameters"]
PROFILE = None  # "smoke" | "cpu" | "paper"; None: $SURVEY_PROFILE, else cpu

# %%
profile = get_profile(PROFILE)
print(f"profile: {profile.name} · device: {select_device()}")

# %% [markdown]
# ## 1 · Which datasets are here?
# `local_datasets()` lists every MedMNIST file (and PH2) with whether it is present under the data
# root. Missing MedMNIST files download on first use when the machine is online.

# %%
available = pd.DataFrame(local_datasets())
available[available["local"]]

# %% [markdown]
# ## 2 · A tour of each dataset
# Every MedMNIST dataset present locally (at 28 px; larger sizes load the same way with `size=64`):
# one row of examples per class (the middle slice for 3D volumes), then the class shares per split.
# The **majority share of the test split** is the accuracy of a model that has learnt nothing.

# %%
local = set(zip(available.loc[available["local"], "dataset"], available.loc[available["local"], "size"]))
TOUR = sorted(flag for flag, size in local if size == 28 and flag != "ph2")  # each local dataset once
majority = {}
for flag in TOUR:
    splits = load_splits(flag, 28)
    image_grid(splits["train"], per_class=6)
    class_balance(splits)
    test = splits["test"]
    majority[flag] = float(test.y.bincount().max() / len(test))
pd.Series(majority, name="majority share of the test split").round(3)

# %%
if ("ph2", 128) in local:
    image_grid(load_ph2("train"), per_class=6)

# %% [markdown]
# ## 3 · Undefended baselines
# `train_baseline` trains the profile's model once and caches it under `runs/` (keyed by a hash of
# its configuration), so re-running this cell, another notebook or the CLI reuses it:
# `python -m survey_lib train --dataset breastmnist pneumoniamnist retinamnist adrenalmnist3d ph2
# --profile cpu`. Checkpoints are chosen by validation AUC (Dice for PH2), never on the test split.

# %%
BASELINES = ["breastmnist", "pneumoniamnist", "retinamnist", "adrenalmnist3d", "ph2"]
records = [train_baseline(name, profile)[1] for name in BASELINES]
table = baseline_table(records)
table.drop(columns=["command", "device"]).round(3)

# %% [markdown]
# **Reading the table.** `test_acc`/`test_auc` are computed exactly as MedMNIST's `Evaluator`;
# `paper_*` are the MedMNIST v2 ResNet-18 (28) / ResNet-18+3D numbers. `test_bacc` (mean recall
# per class) and `pred_shares` (fraction of predictions per class) expose a model that leans on the
# majority class; `collapsed` flags one that puts ≥ 95% of its predictions in one class. PH2 rows
# report Dice and IoU instead.

# %%
fig = plot_baselines(records)

# %% [markdown]
# *Left:* our test AUC, ACC and balanced ACC beside the paper's AUC and ACC. *Right:* the
# validation score after each epoch; the kept checkpoint is the best one.
#
# ## 4 · The committed cpu-profile results
# The numbers measured with the `cpu` profile (command, wall time and machine in the file), so a
# `smoke` run of this notebook still shows the real ones.

# %%
from survey_lib.paths import committed  # noqa: E402

display(Markdown(committed("baselines_cpu/baselines_cpu.md").read_text()))

# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · The survey's benchmark, regenerated
#
# | | |
# |:--|:--|
# | **Objectives** | run (or resume) the survey's benchmark grid; read robust accuracy beside robust balanced accuracy; check which of the survey's findings reproduce on our data |
# | **Prerequisites** | notebooks 01 and 05 |
# | **In class** | `smoke` in class (seconds); the committed cpu grid is shown in every profile, `make main` regenerates it (about 20 min on a quiet 2-core CPU) |
# | **Run time** | `smoke` 0.5 min · `cpu` not measured (one run each, 2026-11-28, on a shared 2-core CPU under load; see the start page) |
#
# The survey (Dong et al. 2024, Sec. 6) compares undefended training (NAT) with PGD-AT, TRADES,
# MART and HAT under FGSM, PGD, CW, AutoAttack and Square at ε ∈ {1, 2, 4, 8}/255. This notebook
# runs that grid (or loads it: finished cells are never recomputed) for the chosen profile and
# regenerates every table and figure. All evaluations here are **white-box** except Square
# (**query-based** black-box); AutoAttack is the cascade APGD (+ targeted APGD / DLR where the
# class count allows) + Square.
#
# The same grid runs from the command line, resumable and on a Slurm cluster:
# `python -m survey_lib benchmark --profile cpu [--executor slurm]`.

# %%
import pandas as pd
from IPython.display import Markdown, display

from survey_lib.benchmark import GRIDS, gallery, load_rows, plan, run_grid
from survey_lib.config import get_profile
from survey_lib.paths import committed, results_dir
from survey_lib.report import (
    benchmark_table,
    plot_benchmark,
    plot_gallery,
    save_benchmark_tables,
    save_figures,
    survey_findings,
)

# %% tags=["parameters"]
PROFILE = None  # "smoke" | "cpu" | "paper"; None: $SURVEY_PROFILE, else cpu

# %%
profile = get_profile(PROFILE)
spec = GRIDS[profile.name]
results = results_dir() / f"benchmark_{profile.name}"
print(f"profile {profile.name}: {len(plan(spec))} cells → {results.resolve()}")

# %% [markdown]
# ## Run (or resume) the grid
# Each cell writes one JSON row; interrupt this cell at any time and run it again to resume.

# %%
rows = run_grid(spec, results, profile)
rows_on_disk, problems = load_rows(results)
print(f"{len(rows)} rows", *problems, sep="\n")

# %% [markdown]
# ## Tables: robust accuracy and robust balanced accuracy
# Rows are defenses, columns attack × ε (/255). Read the balanced-accuracy table beside the
# accuracy one: a model that predicts the majority class everywhere has a high "robust accuracy"
# and a balanced accuracy of 0.5 († marks such collapsed models in the saved tables).

# %%
for dataset in spec.datasets:
    display(Markdown(f"### {dataset}"))
    display(benchmark_table(rows, dataset, "robust_acc").round(3))
    display(benchmark_table(rows, dataset, "robust_bacc").round(3))

# %%
paths = save_benchmark_tables(rows, results / "tables")
figs = plot_benchmark(rows)
figs["gallery"] = plot_gallery(gallery(spec, profile))
paths += save_figures(figs, results / "figures")
print(f"saved {len(paths)} files under {results}")

# %% [markdown]
# *Figures:* robust accuracy falls with ε for every model, far faster for NAT; the trade-off plot
# puts each model at (clean accuracy, PGD robust accuracy); the cost bars show what adversarial
# training and the slow attacks (AutoAttack, Square) cost; the gallery shows test images with the
# predictions of NAT and PGD-AT before and after white-box PGD (red: wrong).
#
# ## What reproduces
# The survey's qualitative findings, each checked against our rows at the largest ε of the grid.
# In the `smoke` profile the models are trained for one epoch on a few hundred images, so these
# lines mean little there; run the `cpu` profile for real numbers.

# %%
survey_findings(rows)

# %% [markdown]
# ## Summary: what reproduces on our data (the committed cpu-profile run)
# The rows of `make main` (the `cpu` grid, 20 min on a 2-core CPU) are committed under
# `benchmarks/benchmark_cpu/`, so this section shows real numbers in every profile. The survey's
# qualitative findings, checked on them (white-box PGD-20 at the grid's ε; AutoAttack below):

# %%
cpu_rows = load_rows(committed("benchmark_cpu/rows"))[0]
if cpu_rows:
    display(survey_findings(cpu_rows))
    display(survey_findings(cpu_rows, "autoattack"))
    display(pd.DataFrame(cpu_rows).query("attack == 'autoattack'")[
        ["dataset", "defense", "eps", "clean_acc", "clean_bacc", "robust_acc", "robust_bacc",
         "collapsed"]].round(3))

# %% [markdown]
# **What reproduces, in numbers (cpu profile, SmallCNN, 28 px).**
#
# - *Undefended models break at 8/255.* PneumoniaMNIST NAT: PGD-20 and AutoAttack accuracy 0.000
#   (clean 0.880). RetinaMNIST NAT: PGD-20 0.105 with balanced accuracy 0.048 — the few survivors
#   are almost all one class. BreastMNIST was run at 2/255 only (its adversarial training collapses
#   at 8/255), where NAT keeps 0.526 (bACC 0.412): 2/255 is too small a budget to reach 0.
# - *Adversarial training is far more robust.* PneumoniaMNIST at 8/255: all five methods keep PGD-20
#   accuracy 0.65–0.69 (bACC 0.61–0.66) and AutoAttack 0.57–0.63, against 0.000 for NAT. BreastMNIST
#   at 2/255: HAT 0.795 (bACC 0.732) and TRADES 0.801 (0.684) against NAT 0.526 (0.412), none
#   collapsed. RetinaMNIST PGD-AT (4 epochs): 0.395 vs 0.105, but its balanced accuracy (0.235) shows
#   a weak model — the finding holds only partly there.
# - *It costs clean accuracy:* PneumoniaMNIST 0.825–0.864 vs 0.880; RetinaMNIST 0.435–0.44 vs 0.50;
#   BreastMNIST on average (−0.038), although HAT matches NAT there.
# - *Which method is best* depends on the dataset and the attack (MART on PneumoniaMNIST, HAT and
#   TRADES on BreastMNIST), and the differences between the five methods (a few points) are within
#   what one seed and 100-image AutoAttack subsets can resolve; the survey's ranking (HAT strongest)
#   is not established by this small-CNN run. The `paper` profile (ResNet-18, 100 epochs, GPU) is
#   where that comparison belongs.

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
from pathlib import Path

from IPython.display import Markdown, display

from survey_lib.benchmark import GRIDS, load_rows, plan, run_grid
from survey_lib.config import get_profile
from survey_lib.report import (
    benchmark_table,
    plot_benchmark,
    save_benchmark_tables,
    save_figures,
    survey_findings,
)

# %% tags=["parameters"]
PROFILE = None  # "smoke" | "cpu" | "paper"; None: $SURVEY_PROFILE, else cpu

# %%
profile = get_profile(PROFILE)
spec = GRIDS[profile.name]
results = Path("../results") / f"benchmark_{profile.name}"
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
paths += save_figures(figs, results / "figures")
print(f"saved {len(paths)} files under {results}")

# %% [markdown]
# *Figures:* robust accuracy falls with ε for every model, far faster for NAT; the trade-off plot
# puts each model at (clean accuracy, PGD robust accuracy); the cost bars show what adversarial
# training and the slow attacks (AutoAttack, Square) cost.
#
# ## What reproduces
# The survey's qualitative findings, each checked against our rows at the largest ε of the grid.
# In the `smoke` profile the models are trained for one epoch on a few hundred images, so these
# lines mean little there; run the `cpu` profile for real numbers.

# %%
survey_findings(rows)

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
# | **In class** | `smoke` in class (seconds); the committed cpu grid is shown in every profile, `make main` regenerates it (it prints its cost estimate before it starts) |
# | **Run time** | `smoke` 0.5 min · `cpu` not measured (one run each, 2026-11-28, on a shared 2-core CPU under load; see the start page) |
#
# The survey (Dong et al. 2024, Sec. 6) compares undefended training (NAT) with PGD-AT, TRADES,
# MART, HAT and fast AT under FGSM, PGD, CW, AutoAttack and Square at ε ∈ {1, 2, 4, 8}/255. This
# notebook runs that grid for the chosen profile (or loads it: finished cells are never recomputed)
# and regenerates its tables, figures, sanity checks and findings.
#
# - **White-box**: FGSM, PGD-20, CW (margin loss, 30 steps) and AutoAttack. The `paper` grid runs
#   the *standard* AutoAttack (APGD-CE, APGD-T, FAB-T, Square-5000); the `cpu` and `smoke` grids run
#   a reduced cascade named **AA-lite** with its budgets (e.g. "AA-lite(APGD-CE-20, Square-300)")
#   on a class-stratified subset — never called AutoAttack.
# - **Black-box**: Square and SimBA (query-based), and transfer from a NAT surrogate of another seed.
# - **Every number** is a mean ± std over seeds with a 95% interval over test images; every accuracy
#   comes with balanced accuracy, and the tables mark collapsed models (†) and models under the
#   majority-class rate (‡).
#
# The same grid runs from the command line, resumable, on several processes or on a Slurm cluster:
# `python -m survey_lib benchmark --profile cpu [--seeds 0 1 2] [--workers 2] [--executor slurm]`.

# %%
import pandas as pd
from IPython.display import Markdown, display

from survey_lib.attacks import make_attack
from survey_lib.benchmark import GRIDS, gallery, load_rows, plan, run_grid, train_model
from survey_lib.benchmark.spec import configure, describe
from survey_lib.config import get_profile
from survey_lib.explain import explanation_figure
from survey_lib.paths import committed, results_dir
from survey_lib.report import (
    explanation_findings,
    plot_benchmark,
    plot_gallery,
    results_markdown,
    sanity_table,
    save_benchmark_tables,
    save_figures,
    summarise,
    survey_findings,
    survey_table,
)
from survey_lib.train import load_dataset

# %% tags=["parameters"]
PROFILE = None  # "smoke" | "cpu" | "paper"; None: $SURVEY_PROFILE, else cpu

# %%
profile = get_profile(PROFILE)
spec = GRIDS[profile.name]
results = results_dir() / f"benchmark_{profile.name}"
print(f"profile {profile.name}: {len(plan(spec))} cells → {results.resolve()}")
print(describe(spec))

# %% [markdown]
# ## Run (or resume) the grid
# Each cell writes one JSON row; interrupt this cell at any time and run it again to resume. Rows
# that do not match their path or the grid (another profile, an edited file) are reported and
# never used.

# %%
run_grid(spec, results, profile)
rows, problems = load_rows(results, spec, profile)
print(f"{len(rows)} rows", *problems, sep="\n")

# %% [markdown]
# ## Tables in the survey's layout
# One table per dataset: rows are models (defense and training ε), column groups are attack × ε
# (/255), accuracy and balanced accuracy side by side. Read them together: a model that predicts
# the majority class everywhere keeps a high accuracy and a balanced accuracy near 1/K.

# %%
summary = summarise(rows)
for dataset in spec.datasets:
    display(Markdown(f"### {dataset}"))
    display(survey_table(summary, dataset))

# %%
paths = save_benchmark_tables(rows, results / "tables", describe(spec))
figs = plot_benchmark(rows)
if examples := gallery(spec, profile):
    figs["gallery"] = plot_gallery(examples)
paths += save_figures(figs, results / "figures")
print(f"saved {len(paths)} files under {results}")

# %% [markdown]
# *Figures:* robust accuracy against ε with its interval band; the trade-off between clean and
# PGD robust accuracy; what each column costs; a gallery of test images the NAT model classifies
# correctly and confidently, with the predictions of NAT and PGD-AT before and after white-box PGD
# at the largest ε (red: wrong).
#
# ## Sanity checks against gradient masking
# Carlini et al. (2019) list what a defended model's numbers must satisfy. For every model: robust
# accuracy non-increasing in ε; PGD-100 with 5 restarts within 1 point of PGD-20 (else "attack not
# converged"); ε = 64/255 leaves ≤ 5% (else "possible masking"); black-box and transfer accuracy ≥
# white-box accuracy. A failing check is listed here, never hidden.

# %%
sanity_table(rows)

# %% [markdown]
# ## What reproduces
# The survey's qualitative findings, checked against these rows: an effect is claimed only when the
# 95% intervals separate, otherwise the verdict is "not established". In the `smoke` profile the
# models are trained for one epoch on a few hundred images, so the verdicts mean little there.

# %%
survey_findings(rows)

# %% [markdown]
# ## Do robust models keep their explanation under attack?
# Grad-CAM (Selvaraju et al. 2017) and input-gradient saliency (Simonyan et al. 2014) of the NAT
# and PGD-AT models of this grid, on clean images and their PGD versions at the largest ε; the
# titles give the predictions and the clean-vs-adversarial correlation of each map.

# %%
dataset = next(d for d in spec.datasets if "pgd_at" in spec.defenses_for(d))
eps = max(spec.eval_eps_for(dataset))
models = {"NAT": train_model(dataset, "nat", None, spec.seeds[0], profile)[0],
          "PGD-AT": train_model(dataset, "pgd_at", spec.train_eps_for(dataset), spec.seeds[0],
                                profile)[0]}
test = load_dataset(dataset, splits=("test",))["test"]
explanation_figure(models, test, make_attack("pgd", eps=eps, steps=20), k=2,
                   title=f"{dataset}, PGD-20 at ε = {eps:g}/255")

# %% [markdown]
# The committed study (`benchmarks/explanations/`, its README states the models, n and machine)
# measures the same on the NAT and PGD-AT models of the cpu grid, three seeds each: per image, the
# Pearson correlation between the Grad-CAM of a clean image and of its PGD-20 version at 8/255. The
# lines below are generated from its `summary.csv`: a robust model "keeps its explanation" when this
# correlation stays near 1; the claim is made only where the paired interval separates in every seed.

# %%
explained = pd.read_csv(committed("explanations/summary.csv"))
display(Markdown(explanation_findings(explained)))
explained[["dataset", "model", "seed", "n", "clean_acc", "robust_acc", "cam_pearson_mean",
           "cam_pearson_lo", "cam_pearson_hi"]].round(3)

# %% [markdown]
# ## The committed cpu-profile run
# The rows of `make main` (the `cpu` grid) are committed under `benchmarks/benchmark_cpu/`, so this
# section shows real numbers in every profile. The text below is generated from those rows (as is
# the README's results section), never typed by hand; its README gives the command, machine and
# wall time.

# %%
cpu_spec = configure(GRIDS["cpu"], seeds=(0, 1, 2))
cpu_rows, cpu_problems = load_rows(committed("benchmark_cpu"), cpu_spec, get_profile("cpu"))
print(f"{len(cpu_rows)} of {len(plan(cpu_spec))} cells of the three-seed cpu grid committed",
      *cpu_problems, sep="\n")
display(Markdown(results_markdown(cpu_rows)))

# %% [markdown]
# ## The committed segmentation and 3D run
# `make seg3d` runs the grid's second part (`cpu-seg3d`): the PH2 lesion U-Net, scored by Dice and
# IoU under PGD on the per-pixel cross-entropy (PGD-CE) and on the Dice loss (PGD-Dice), and the
# AdrenalMNIST3D volume CNN under FGSM and PGD; NAT and PGD-AT, three seeds, ε ∈ {1, 2, 4, 8}/255.
# Its rows are committed under `benchmarks/benchmark_cpu_seg3d/` (README: command, machine, wall
# time); the tables and lines below are generated from them. This grid has no sanity column: that
# folder's `convergence.md` attacks the AdrenalMNIST3D models again with PGD-100 and 5 restarts;
# read it before citing their PGD numbers.

# %%
seg_spec = GRIDS["cpu-seg3d"]
seg_rows, seg_problems = load_rows(committed("benchmark_cpu_seg3d"), seg_spec, get_profile("cpu"))
print(f"{len(seg_rows)} of {len(plan(seg_spec))} cells of the cpu segmentation and 3D grid committed",
      *seg_problems, sep="\n")
seg_summary = summarise(seg_rows)
for dataset in seg_spec.datasets:
    display(Markdown(f"### {dataset}"))
    display(survey_table(seg_summary, dataset))
display(Markdown(results_markdown(seg_rows)))

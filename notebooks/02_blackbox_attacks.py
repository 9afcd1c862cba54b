# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Black-box attacks: Square, SimBA and transfer
#
# | | |
# |:--|:--|
# | **Objectives** | attack a model that only answers queries (Square, SimBA) and one that is never queried (transfer from a surrogate); read success against the query budget; use white-box PGD as the reference a black-box attack must not beat |
# | **Prerequisites** | notebook 01 (PGD, ε units, robust accuracy) |
# | **In class** | `cpu` (the target is the shipped pretrained model; the surrogate is trained once, then cached) |
# | **Run time** | `smoke` 0.7 min · `cpu` 15.2 min (one run each, 2026-11-28, on a shared 2-core CPU under load; see the start page) |
#
# Reproduces the survey's taxonomy branch **attacks → black-box** (Dong et al., ACM CSUR 2024,
# Sec. 3): **query-based** attacks that only read the model's output scores — Square (Andriushchenko
# et al. 2020) and SimBA (Guo et al. 2019) — and a **transfer** attack that crafts PGD examples on a
# separately trained surrogate and never touches the target. Each evaluation below is labelled
# white-box, transfer or query-based; a white-box PGD row is the reference: a black-box attack should
# never beat it (if it does, suspect gradient masking).

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from survey_lib import exercises, pretrained
from survey_lib.attacks import make_attack
from survey_lib.config import get_profile
from survey_lib.evaluate import robust_metrics, sweep
from survey_lib.train import load_dataset, select_device, train_baseline

# %% tags=["parameters"]
PROFILE = None  # "smoke" | "cpu" | "paper"; None: $SURVEY_PROFILE, else cpu

# %%
profile = get_profile(PROFILE)
FLAG, EPS = "pneumoniamnist", 8
N_EVAL = min(profile.eval_subset or 256, 256)  # query-based attacks are slow on a CPU
BUDGETS = [10, 50] if profile.name == "smoke" else [10, 50, 100, 300, 1000]  # queries per image
print(f"profile: {profile.name} · device: {select_device()} · {N_EVAL} test images")
model, source = pretrained.baseline_model(FLAG, profile)  # the shipped one in cpu
print(source)
surrogate, _ = train_baseline(FLAG, profile, seed=profile.seed + 1, progress=False)  # separately trained
test = load_dataset(FLAG)["test"].subset(N_EVAL, 0)

# %% [markdown]
# ## 1 · One table, three threat models (ε = 8/255 L∞)
# `queries` is the mean number of model evaluations per image (images stop querying once fooled).

# %%
settings = [("clean", None, "—"),
            ("PGD-10", make_attack("pgd", eps=EPS, steps=10), "white-box"),
            ("transfer PGD-10 from surrogate", make_attack("transfer", eps=EPS, steps=10,
                                                           surrogate=surrogate), "transfer"),
            (f"Square, {BUDGETS[-1]} queries", make_attack("square", eps=EPS, steps=BUDGETS[-1]),
             "query-based"),
            (f"SimBA, {BUDGETS[-1]} pixels", make_attack("simba", eps=EPS, steps=BUDGETS[-1]),
             "query-based")]
rows = [{**robust_metrics(model, test, attack), "attack": name, "threat model": kind}
        for name, attack, kind in settings]
pd.DataFrame(rows)[["attack", "threat model", "acc", "bacc", "auc", "shares", "queries",
                    "seconds"]].round(3)

# %% [markdown]
# ## 2 · Success versus queries (query-based)
# Attack success rate (1 − robust accuracy) against the query budget per image. Square changes a
# whole window per query and wins early; SimBA changes one pixel per query.

# %%
curves = pd.concat([sweep(model, test, name, "steps", BUDGETS, eps=EPS) for name in ("square", "simba")])
curves["success"] = 1 - curves["acc"]
fig, ax = plt.subplots(figsize=(6, 3.5))
sns.lineplot(curves, x="queries", y="success", hue="attack", marker="o", ax=ax)
ax.set(xscale="log", title=f"Query-based attacks on {FLAG}, ε = {EPS}/255",
       xlabel="mean queries per image (log)", ylabel="attack success rate")
fig.tight_layout()
curves[["attack", "steps", "queries", "acc", "bacc", "auc", "shares"]].round(3)

# %% [markdown]
# ## 3 · Transfer versus ε (transfer vs white-box)
# The same PGD-10 crafted on the surrogate (transfer) or on the target itself (white-box). Transfer
# success needs a larger ε: the two models share some, not all, of their vulnerable directions.

# %%
eps_grid = [2, 8] if profile.name == "smoke" else [1, 2, 4, 8, 16]
both = pd.concat([sweep(model, test, "transfer", "eps", eps_grid, label="transfer", surrogate=surrogate),
                  sweep(model, test, "pgd", "eps", eps_grid, label="white-box")])
fig, ax = plt.subplots(figsize=(6, 3.5))
sns.lineplot(both, x="eps", y="acc", hue="model", marker="o", ax=ax)
ax.set(title="PGD-10: transferred from a surrogate vs white-box", xlabel="ε (/255)",
       ylabel="robust accuracy")
fig.tight_layout()

# %% [markdown]
# ## 4 · Exercise: Square Attack's proposal
# Square keeps its current best perturbation and, at each iteration, proposes to overwrite one
# random square window with ±ε (one sign per channel); the proposal is kept when the margin of the
# true class drops. **02.square_update**: write that proposal. The cell after it compares yours with
# `survey_lib`'s on fixed windows and signs (✓ or ✗); `python -m survey_lib exercises grade
# <notebook>` grades it.


# %% tags=["solution"]
def square_candidate(x, x_best, top, left, size, signs, eps):
    """Task 02.square_update: one Square Attack proposal (Andriushchenko et al., ECCV 2020).

    In image i, the size×size window with top-left corner (top[i], left[i]) gets the perturbation
    signs[i, c]·ε in channel c; elsewhere the current perturbation x_best − x is kept. Return x plus
    the perturbation, clipped to [0, 1]. ε in /255 units; signs (N, C) holds ±1.
    """
    delta = x_best - x
    for i in range(len(x)):
        t, u = int(top[i]), int(left[i])
        delta[i, :, t:t + size, u:u + size] = eps / 255 * signs[i].view(-1, 1, 1)
    return (x + delta).clamp(0, 1)


# %%
exercises.check("02.square_update", square_candidate)

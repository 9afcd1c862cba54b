"""The survey's benchmark as a resumable grid (Dong et al. 2024, Sec. 6): NAT, PGD-AT, TRADES,
MART, HAT and fast AT models, each trained once per seed and attacked at every evaluation ε with the
survey's attacks (FGSM, PGD-20, CW-30, AutoAttack, Square, SimBA, transfer), plus per-model sanity
checks against gradient masking.

- :mod:`.spec`: what a grid runs (:class:`GridSpec`, the profiles' :data:`GRIDS`, :func:`plan`);
- :mod:`.protocol`: how one cell is computed (model, attack settings, test images, metrics);
- :mod:`.rows`: result rows on disk, and which of them a table may use;
- :mod:`.runner`: running the unfinished cells (locally or as Slurm jobs), the run log;
- :mod:`.gallery`: examples for the gallery figure.

Each cell is one JSON row (in the spirit of RobustBench's ``model_info`` rows) at
``<results>/<dataset>/<defense>_t<ε>_s<seed>/<attack>_e<ε>.json``.
"""

from .gallery import gallery
from .protocol import git_commit, make_grid_attack, pgd_step, train_model
from .rows import SCHEMA_VERSION, load_rows
from .runner import estimate_seconds, grid_wall_seconds, read_run_log, run_cell, run_grid
from .spec import ATTACKS, DEFENSES, GRIDS, Cell, GridSpec, plan

__all__ = ["ATTACKS", "DEFENSES", "GRIDS", "SCHEMA_VERSION", "Cell", "GridSpec", "estimate_seconds",
           "gallery", "git_commit", "grid_wall_seconds", "load_rows", "make_grid_attack", "pgd_step",
           "plan", "read_run_log", "run_cell", "run_grid", "train_model"]

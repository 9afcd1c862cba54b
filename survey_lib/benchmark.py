"""The survey's benchmark as a resumable grid (Dong et al. 2024, Sec. 6: clean and robust accuracy
of NAT / PGD-AT / TRADES / MART / HAT models under FGSM, PGD, CW, AutoAttack and Square).

A grid is datasets × defenses × training ε × evaluation attacks (evaluated at the training ε). Each
cell is one JSON row, in the spirit of RobustBench's ``model_info`` rows, written atomically to
``<results>/<dataset>/<defense>_e<ε>/<attack>.json``: a run killed at any point resumes where it
stopped and never recomputes a finished cell. Rows carry accuracy *and* balanced accuracy, AUC,
per-class prediction shares and the collapse flag. Executors: ``local`` (this process) or ``slurm``
(each cell an independent job through ``submitit``, writing into the same results folder).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import __version__
from .errors import ConfigError, SurveyError

SCHEMA_VERSION = 1
DEFENSES = ("nat", "pgd_at", "trades", "mart", "hat", "fast_at")
ATTACKS = ("clean", "fgsm", "pgd", "cw_pgd", "autoattack", "square")


@dataclass(frozen=True)
class GridSpec:
    """What to run. ``attack_steps`` sets PGD/CW/APGD steps, ``square_queries`` Square's budget;
    ``eval_subset``/``slow_subset`` cap the test images for fast / slow (AutoAttack, Square) cells.
    ``early_stop``: PGD and CW stop spending steps on an example once it is fooled (the fooling
    point is kept, so robust accuracy can only be lower than without it, never higher).
    ``extra``: per-dataset overrides of ``defenses`` and ``eps``."""

    datasets: tuple[str, ...]
    defenses: tuple[str, ...] = DEFENSES
    eps: tuple[float, ...] = (1, 2, 4, 8)
    attacks: tuple[str, ...] = ATTACKS
    attack_steps: int = 20
    square_queries: int = 1000
    eval_subset: int | None = None
    slow_subset: int | None = None
    size: int = 28
    seed: int = 0
    early_stop: bool = True
    extra: dict = field(default_factory=dict)  # {"retinamnist": {"defenses": (...), "eps": (...)}}

    def validate(self) -> None:
        from .data import task_info

        for name in self.datasets:
            task_info(name, self.size)  # raises a ConfigError naming the valid datasets
        defenses = [d for name in self.datasets for d in self.defenses_for(name)]
        for kind, names, valid in (("defense", defenses, DEFENSES),
                                   ("attack", self.attacks, ATTACKS)):
            bad = [n for n in names if n not in valid]
            if bad:
                raise ConfigError(f"Unknown {kind} {bad[0]!r} in the grid spec. Valid {kind}s: "
                                  f"{', '.join(valid)}.")
        eps = [e for name in self.datasets for e in self.eps_for(name)]
        if any(not 0 < e <= 255 for e in eps):
            raise ConfigError(f"Grid ε values are in /255 units and must lie in (0, 255]: {eps}.")

    def defenses_for(self, dataset: str) -> tuple[str, ...]:
        return tuple(self.extra.get(dataset, {}).get("defenses", self.defenses))

    def eps_for(self, dataset: str) -> tuple[float, ...]:
        return tuple(self.extra.get(dataset, {}).get("eps", self.eps))


GRIDS = {
    "smoke": GridSpec(datasets=("breastmnist",), defenses=("nat", "pgd_at"), eps=(2, 8),
                      attack_steps=3, square_queries=20, eval_subset=64, slow_subset=32),
    # cpu: under an hour on the 2-core CPU. One training ε per dataset (8/255 on PneumoniaMNIST;
    # 2/255 on BreastMNIST, where adversarial training at 8/255 collapses to one class — notebook
    # 05 shows it), both on RetinaMNIST for NAT and PGD-AT; AutoAttack and Square on 100 images.
    "cpu": GridSpec(datasets=("pneumoniamnist", "breastmnist", "retinamnist"), eps=(8,),
                    attack_steps=20, square_queries=300, eval_subset=None, slow_subset=100,
                    extra={"breastmnist": {"eps": (2,)},
                           "retinamnist": {"defenses": ("nat", "pgd_at"), "eps": (2, 8)}}),
    "paper": GridSpec(datasets=("pneumoniamnist", "breastmnist", "retinamnist", "dermamnist"),
                      attack_steps=20, square_queries=5000),
}


@dataclass(frozen=True)
class Cell:
    """One result row: a (dataset, defense, training ε) model under one attack at that ε."""

    dataset: str
    defense: str
    eps: float
    attack: str

    def path(self, root: Path) -> Path:
        return Path(root) / self.dataset / f"{self.defense}_e{self.eps:g}" / f"{self.attack}.json"


def plan(spec: GridSpec) -> list[Cell]:
    """Every cell of the grid, models grouped so each is trained (or loaded) once."""
    spec.validate()
    return [Cell(d, defense, e, a) for d in spec.datasets for defense in spec.defenses_for(d)
            for e in spec.eps_for(d) for a in spec.attacks]


# ----------------------------------------------------------------------------- one cell
def make_grid_attack(name: str, eps: float, spec: GridSpec):
    """The attack a grid column names, at ε (/255); ``None`` for clean."""
    from .attacks import make_attack

    if name == "clean":
        return None
    if name == "fgsm":
        return make_attack("fgsm", eps=eps)
    if name == "square":
        return make_attack("square", eps=eps, steps=spec.square_queries)
    if name == "autoattack":
        return make_attack("autoattack", eps=eps, steps=spec.attack_steps,
                           square_queries=spec.square_queries)
    return make_attack(name, eps=eps, steps=spec.attack_steps, early_stop=spec.early_stop)


def train_model(dataset: str, defense: str, eps: float, profile, progress: bool = False):
    """The (cached) model of a grid row: the NAT baseline, or an adversarially trained one."""
    from .defenses import make_defense
    from .train import train_baseline

    if defense == "nat":
        return train_baseline(dataset, profile, progress=progress)
    return make_defense(defense, eps=eps).train(dataset, profile, progress=progress)


@functools.lru_cache(maxsize=4)
def _test_split(dataset: str, size: int):
    """The test split, read once per process (every cell of a dataset evaluates on it)."""
    from .train import load_dataset

    return load_dataset(dataset, size)["test"]


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the code this process runs (read once, at its first row)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=False, cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def run_cell(cell: Cell, spec: GridSpec, profile, root: Path) -> dict:
    """Compute one row and write it atomically; returns it."""
    from .evaluate import robust_metrics
    from .train import select_device

    start = time.perf_counter()
    model, record = train_model(cell.dataset, cell.defense, cell.eps, profile)
    test = _test_split(cell.dataset, spec.size)
    slow = cell.attack in ("autoattack", "square")
    test = test.subset(spec.slow_subset if slow else spec.eval_subset, spec.seed)
    clean = robust_metrics(model, test)
    attack = make_grid_attack(cell.attack, cell.eps, spec)
    adv = clean if attack is None else robust_metrics(model, test, attack)
    config = record["config"]
    row = {
        "schema_version": SCHEMA_VERSION, **asdict(cell), "eval_eps": cell.eps,
        "train_eps": None if cell.defense == "nat" else cell.eps, "size": spec.size,
        "model": config["model"], "profile": config["profile"], "seed": spec.seed,
        "attack_config": adv["attack"], "n": adv["n"],
        "clean_acc": clean["acc"], "clean_bacc": clean["bacc"], "clean_auc": clean["auc"],
        "robust_acc": adv["acc"], "robust_bacc": adv["bacc"], "robust_auc": adv["auc"],
        "clean_shares": clean["shares"], "robust_shares": adv["shares"],
        "collapsed": bool(clean["collapsed"]), "robust_collapsed": bool(adv["collapsed"]),
        "attack_seconds": adv["seconds"] if attack is not None else 0.0,
        "train_seconds": record.get("train_seconds", record.get("wall_seconds")),
        "wall_seconds": round(time.perf_counter() - start, 2), "device": str(select_device()),
        "package_version": __version__, "git_commit": git_commit(),
    }
    path = cell.path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(row, indent=1))
    os.replace(tmp, path)
    return row


def gallery(spec: GridSpec, profile, n: int = 4, defenses=("nat", "pgd_at")) -> list[dict]:
    """Examples for the gallery figure: the first ``n`` test images of each dataset (seeded subset)
    under white-box PGD at the dataset's largest grid ε, against the NAT and PGD-AT models."""
    import torch

    out = []
    for dataset in spec.datasets:
        eps = max(spec.eps_for(dataset))
        test = _test_split(dataset, spec.size).subset(n, spec.seed)
        for defense in [d for d in defenses if d in spec.defenses_for(dataset)]:
            model, _ = train_model(dataset, defense, eps, profile)
            x_adv = make_grid_attack("pgd", eps, spec)(model, test.x, test.y)
            with torch.no_grad():
                pred, pred_adv = model(test.x).argmax(1), model(x_adv).argmax(1)
            out.append({"dataset": dataset, "defense": defense, "eps": eps, "x": test.x,
                        "x_adv": x_adv, "y": test.y.view(-1), "pred": pred, "pred_adv": pred_adv,
                        "classes": test.info.class_names})
    return out


# ----------------------------------------------------------------------------- rows on disk
def read_row(path: Path) -> dict | None:
    """A finished row, or None when the file is missing, truncated or corrupt (it is recomputed).
    A row of another schema version raises: mixing schemas would give a wrong table."""
    try:
        row = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(row, dict) or "robust_acc" not in row:
        return None
    if row.get("schema_version") != SCHEMA_VERSION:
        raise SurveyError(
            f"{path} was written with result schema version {row.get('schema_version')!r}, but "
            f"this survey_lib writes version {SCHEMA_VERSION}. Use a fresh --results folder (or "
            "move the old one away); old rows are not mixed with new ones.")
    return row


def load_rows(root: Path) -> tuple[list[dict], list[str]]:
    """Every valid row under ``root`` and a list of problems (corrupt or truncated files)."""
    rows, problems = [], []
    for path in sorted(Path(root).glob("*/*/*.json")):
        row = read_row(path)
        if row is None:
            problems.append(f"{path}: corrupt or truncated JSON, skipped (the runner recomputes it)")
        else:
            rows.append(row)
    return rows, problems


# ----------------------------------------------------------------------------- the grid
def estimate_seconds(cells: list[Cell], spec: GridSpec, root: Path, profile=None) -> float:
    """A rough cost (seconds on the 2-core CPU) of the unfinished cells: training at ~2000
    image-passes/s (a PGD-k epoch is k + 1 passes) and attacks at ~300 image-steps/s."""
    from .data import _info
    from .defenses import make_defense
    from .train import baseline_config

    todo = [c for c in cells if read_row(c.path(root)) is None]
    steps = {"clean": 0.05, "fgsm": 1, "pgd": spec.attack_steps, "cw_pgd": spec.attack_steps,
             "autoattack": spec.attack_steps + spec.square_queries / 4,
             "square": spec.square_queries / 4}
    seconds = 0.0
    for c in todo:
        n_test = _info()[c.dataset]["n_samples"]["test"]
        cap = spec.slow_subset if c.attack in ("autoattack", "square") else spec.eval_subset
        seconds += min(n_test, cap or n_test) * steps[c.attack] / 300
    for dataset, defense, eps in {(c.dataset, c.defense, 0 if c.defense == "nat" else c.eps)
                                  for c in todo}:
        config = (baseline_config(dataset, profile) if defense == "nat"
                  else make_defense(defense, eps=eps).resolve(dataset, profile))
        n = min(_info()[dataset]["n_samples"]["train"], config["train_subset"] or 10**9)
        seconds += n * config["epochs"] * (1 + config.get("steps", 0)) / 2000
    return seconds


def run_grid(spec: GridSpec, root: str | Path, profile=None, executor: str = "local",
             progress: bool = True, stop_after: int | None = None,
             slurm: dict | None = None) -> list[dict]:
    """Run every unfinished cell; returns all rows. ``slurm``: submitit parameters (e.g.
    ``{"slurm_partition": "gpu", "gpus_per_node": 1}``); ``stop_after`` (tests) stops after n cells."""
    import torch
    from tqdm.auto import tqdm

    from .train import select_device

    if executor not in ("local", "slurm", "submitit-local"):
        raise ConfigError(f"Unknown executor {executor!r}. Valid executors: local, slurm.")
    root = Path(root)
    cells = plan(spec)
    todo = [c for c in cells if read_row(c.path(root)) is None]
    started, start = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), time.perf_counter()
    try:
        if executor == "local":
            for i, cell in enumerate(tqdm(todo, desc="benchmark cells", disable=not progress)):
                if stop_after is not None and i >= stop_after:
                    break
                run_cell(cell, spec, profile, root)
        else:
            submit(todo, spec, profile, root, "slurm" if executor == "slurm" else "local", slurm)
    finally:  # also when interrupted: the time spent counts
        rows = [r for c in cells if (r := read_row(c.path(root))) is not None]
        if todo:
            log_run(root, {"started": started,
                           "wall_seconds": round(time.perf_counter() - start, 1),
                           "cells_computed": len(todo) - (len(cells) - len(rows)),
                           "cells_total": len(cells), "executor": executor,
                           "device": str(select_device()), "torch_threads": torch.get_num_threads(),
                           "git_commit": git_commit()})
    return rows


def log_run(root: Path, entry: dict) -> None:
    """Append one invocation of the runner (its wall time, cells computed) to ``run_log.jsonl``:
    the grid's total wall time is the sum over the invocations that built it."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "run_log.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


def read_run_log(root: Path) -> list[dict]:
    path = Path(root) / "run_log.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill: that invocation's time is unknown
    return out


def _train_job(key: tuple[str, str, float], profile) -> str:
    train_model(*key, profile)
    return "/".join(map(str, key))


def submit(cells: list[Cell], spec: GridSpec, profile, root: Path, cluster: str = "slurm",
           slurm: dict | None = None) -> None:
    """Run the cells as submitit jobs and wait for them: first one job per model to train (so no
    two jobs train the same model), then one job per cell. Every cell job writes its own row into
    ``root`` (a shared folder on a cluster), so resuming works as locally."""
    import submitit

    if not cells:
        return
    executor = submitit.AutoExecutor(folder=root / "_submitit", cluster=cluster)
    executor.update_parameters(**{"timeout_min": 240, **(slurm or {})})
    models = sorted({(c.dataset, c.defense, c.eps) for c in cells})
    for job in executor.map_array(_train_job, models, [profile] * len(models)):
        job.result()  # re-raises a job's error here, with its log path
    n = len(cells)
    for job in executor.map_array(run_cell, cells, [spec] * n, [profile] * n, [root] * n):
        job.result()

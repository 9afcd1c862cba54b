"""Running a grid: every unfinished cell once, resumable, several processes on one folder without
duplicated work, on this machine or as Slurm jobs (submitit), with a log of every invocation.

Each cell is claimed before it is computed (:mod:`survey_lib.claims`: the holder's host and PID),
so two runners on one results folder split the cells between them, and a claim left by a killed
runner is taken over at once. A model is trained by one process; another that needs it works on
other models' cells meanwhile, or waits for it. ``run_log.jsonl`` gets a ``start`` entry when a
runner starts and an ``end`` entry when it stops (also on Ctrl-C); a runner killed outright has
no ``end``, and :func:`read_run_log` estimates its wall time from the last row it wrote.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from queue import Empty

from ..errors import ConfigError
from .protocol import compute_row, expected_model_key, git_commit, train_model
from .rows import _attack_configs, check_row, load_rows, parse_row, write_row
from .spec import Cell, GridSpec, plan

POLL_SECONDS = 2.0


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log_run(root: Path, entry: dict) -> None:
    """Append one entry to ``run_log.jsonl``."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "run_log.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


def read_run_log(root: Path) -> list[dict]:
    """One dict per runner invocation: its start entry merged with its end entry; a runner killed
    before its end (no end entry) gets ``killed: True`` and a wall time estimated from the last row
    it wrote (``wall_seconds_estimated``). Lines cut by a kill are skipped."""
    path = Path(root) / "run_log.jsonl"
    if not path.exists():
        return []
    runs: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        inv = entry.get("invocation")
        if inv is None:
            continue
        runs.setdefault(inv, {}).update({k: v for k, v in entry.items() if k != "event"})
    last_row: dict[str, str] = {}
    for row_path in Path(root).glob("*/*/*.json"):
        row, _ = parse_row(row_path)
        if row and row.get("invocation") in runs:
            last_row[row["invocation"]] = max(last_row.get(row["invocation"], ""), row["finished"])
    out = []
    for inv, run in runs.items():
        if "wall_seconds" not in run:
            run["killed"] = True
            if inv in last_row:
                start = datetime.fromisoformat(run["started"].replace("Z", "+00:00"))
                end = datetime.fromisoformat(last_row[inv].replace("Z", "+00:00"))
                run["wall_seconds_estimated"] = round((end - start).total_seconds(), 1)
        out.append(run)
    return sorted(out, key=lambda r: r["started"])


def grid_wall_seconds(runs: list[dict]) -> float:
    """Total wall time of the invocations that built a results folder (estimates for killed ones)."""
    return sum(r.get("wall_seconds", r.get("wall_seconds_estimated", 0.0)) for r in runs)


class _Done:
    """Which cells already have a row the runner accepts (:mod:`.rows`, checks 1–6)."""

    def __init__(self, root: Path, spec: GridSpec, profile):
        self.root, self.spec, self.profile = root, spec, profile
        self.expected_config = _attack_configs(spec, profile)
        self.keys: dict[tuple, str] = {}

    def model_key(self, cell: Cell) -> str:
        if cell.model not in self.keys:
            self.keys[cell.model] = expected_model_key(cell, self.profile, self.spec.external)
        return self.keys[cell.model]

    def __call__(self, cell: Cell) -> bool:
        path = cell.path(self.root)
        if not path.exists():
            return False
        row, why = parse_row(path)
        return row is not None and not check_row(row, cell, self.spec, self.profile,
                                                 self.expected_config) \
            and row.get("model_key") == self.model_key(cell)


def run_cell(cell: Cell, spec: GridSpec, profile, root: Path, invocation: str = "") -> dict:
    """Compute one row and write it atomically; returns it."""
    row = compute_row(cell, spec, profile, invocation)
    write_row(row, cell.path(root))
    return row


def _model_busy(cell: Cell, done: _Done) -> bool:
    """Whether another live process is training this cell's model right now."""
    if cell.defense in done.spec.external:
        return False
    from ..claims import HOST, holder, is_live
    from ..train import runs_root

    claim = holder(runs_root() / cell.dataset / done.model_key(cell) / "train.claim")
    mine = claim is not None and claim.get("host") == HOST and claim.get("pid") == os.getpid()
    return claim is not None and not mine and is_live(claim)


def _run_local(todo: list[Cell], spec, profile, root: Path, done: _Done, invocation: str,
               progress: bool, stop_after: int | None) -> int:
    from tqdm.auto import tqdm

    from ..claims import release, try_claim

    computed, pending = 0, list(todo)
    bar = tqdm(total=len(todo), desc="benchmark cells", disable=not progress)
    while pending:
        progressed = False
        for cell in list(pending):
            if stop_after is not None and computed >= stop_after:
                return computed
            if done(cell):  # another runner finished it
                pending.remove(cell)
                bar.update()
                continue
            claim = cell.path(root).with_suffix(".claim")
            if _model_busy(cell, done) or not try_claim(claim):
                continue  # another runner trains its model or computes it: take other cells
            try:
                if not done(cell):
                    run_cell(cell, spec, profile, root, invocation)
                    computed += 1
            finally:
                release(claim)
            pending.remove(cell)
            bar.update()
            progressed = True
        if pending and not progressed:
            time.sleep(POLL_SECONDS)
    bar.close()
    return computed


def _worker(todo, spec, profile, root, invocation, threads, queue) -> None:
    """One local worker process: its own torch threads (and CUDA stream/context on a GPU)."""
    import torch

    from ..train import TRAINED

    torch.set_num_threads(threads)
    done = _Done(root, spec, profile)
    queue.put((_run_local(todo, spec, profile, root, done, invocation, False, None), len(TRAINED)))


def _run_workers(todo, spec, profile, root, invocation, workers: int, progress: bool) -> tuple:
    """``workers`` processes share the cells through their claims; returns (cells, models)."""
    import multiprocessing as mp

    import torch
    from tqdm.auto import tqdm

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    threads = max(1, torch.get_num_threads() // workers)
    procs = [ctx.Process(target=_worker, args=(todo, spec, profile, root, invocation, threads, queue))
             for _ in range(workers)]
    for p in procs:
        p.start()
    results = []
    with tqdm(total=len(todo), desc=f"benchmark cells ({workers} workers)", disable=not progress) as bar:
        while any(p.is_alive() for p in procs) or len(results) < workers:
            try:  # drained while they run: a worker exits only once its result is read
                results.append(queue.get(timeout=POLL_SECONDS))
            except Empty:
                if not any(p.is_alive() for p in procs):
                    break
            bar.n = sum(1 for c in todo if c.path(root).exists())
            bar.refresh()
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} benchmark worker(s) failed (exit codes {failed}); their "
                           "traceback is above. The cells they finished are kept: run again to resume.")
    return sum(r[0] for r in results), sum(r[1] for r in results)


def run_grid(spec: GridSpec, root: str | Path, profile=None, executor: str = "local",
             progress: bool = True, stop_after: int | None = None,
             slurm: dict | None = None, workers: int = 1) -> list[dict]:
    """Run every unfinished cell; returns the grid's accepted rows. ``workers`` (local executor):
    that many processes share the cells (several grid cells at once on one GPU, or one core each on
    a CPU; torch threads are split between them). ``slurm``: submitit parameters (e.g.
    ``{"slurm_partition": "gpu", "gpus_per_node": 1}``); ``stop_after`` (tests) stops after n
    computed cells."""
    import torch

    from ..train import TRAINED, select_device

    if executor not in ("local", "slurm", "submitit-local"):
        raise ConfigError(f"Unknown executor {executor!r}. Valid executors: local, slurm.")
    if workers < 1 or (workers > 1 and executor != "local"):
        raise ConfigError(f"workers must be ≥ 1 and applies to the local executor only; got "
                          f"{workers} with executor {executor!r}.")
    root = Path(root)
    cells = plan(spec)
    done = _Done(root, spec, profile)
    todo = [c for c in cells if not done(c)]
    invocation, start, trained0 = uuid.uuid4().hex[:12], time.perf_counter(), len(TRAINED)
    log_run(root, {"event": "start", "invocation": invocation, "started": _now(),
                   "host": socket.gethostname(), "pid": os.getpid(), "executor": executor,
                   "device": str(select_device()), "torch_threads": torch.get_num_threads(),
                   "workers": workers,
                   "git_commit": git_commit(),
                   "cells_total": len(cells), "cells_todo": len(todo)})
    computed, trained, interrupted = 0, 0, True
    try:
        if executor == "local" and workers > 1:
            computed, trained = _run_workers(todo, spec, profile, root, invocation, workers, progress)
        elif executor == "local":
            computed = _run_local(todo, spec, profile, root, done, invocation, progress, stop_after)
        else:
            computed = submit(todo, spec, profile, root, "slurm" if executor == "slurm" else "local",
                              slurm, invocation)
        interrupted = False
    finally:  # also on Ctrl-C or an error: the time spent counts
        log_run(root, {"event": "end", "invocation": invocation, "ended": _now(),
                       "wall_seconds": round(time.perf_counter() - start, 1),
                       "cells_computed": computed,
                       "models_trained": len(TRAINED) - trained0 + trained,
                       "interrupted": interrupted})
    return load_rows(root, spec, profile)[0]


def _train_job(model: tuple, profile) -> str:
    train_model(*model, profile)
    return "/".join(map(str, model))


def submit(cells: list[Cell], spec: GridSpec, profile, root: Path, cluster: str = "slurm",
           slurm: dict | None = None, invocation: str = "") -> int:
    """Run the cells as submitit jobs and wait for them: first one job per model to train (the
    transfer surrogates included), then one job per cell. Every cell job writes its own row into
    ``root`` (a shared folder on a cluster), so resuming works as locally. Returns the cells run."""
    import submitit

    if not cells:
        return 0
    executor = submitit.AutoExecutor(folder=root / "_submitit", cluster=cluster)
    executor.update_parameters(**{"timeout_min": 240, **(slurm or {})})
    models = sorted({c.model for c in cells if c.defense not in spec.external}, key=str)
    models += sorted({(c.dataset, "nat", None, spec.surrogate_seed) for c in cells
                      if c.attack == "transfer"}, key=str)
    for job in executor.map_array(_train_job, models, [profile] * len(models)):
        job.result()  # re-raises a job's error here, with its log path
    n = len(cells)
    for job in executor.map_array(run_cell, cells, [spec] * n, [profile] * n, [root] * n,
                                  [invocation] * n):
        job.result()
    return n


# Rough costs on the 2-core CPU of the SmallCNN at 28 px (image-gradient evaluations per second and
# forward passes per second); other models scale by their forward FLOPs relative to it.
GRADS_PER_SECOND, FORWARDS_PER_SECOND = 1300.0, 4000.0
MODEL_COST = {"smallcnn": 1.0, "resnet18": 25.0, "cnn3d": 40.0, "resnet3d": 400.0, "unet": 60.0}


def _column_cost(column: str, spec: GridSpec, classes: int) -> tuple[float, float]:
    """(gradient evaluations, forward passes) per image of a column, at most (no early stop)."""
    targets = min(9, max(classes - 1, 1))
    return {"clean": (0, 1), "fgsm": (1, 2), "pgd": (spec.pgd_steps, 2), "cw": (spec.cw_steps, 2),
            "pgd_ce": (spec.pgd_steps, 2), "pgd_dice": (spec.pgd_steps, 2), "transfer": (0, 2),
            "autoattack": (100 + 100 * targets * 3, 5000), "aa_lite": (spec.aa_steps, spec.aa_square),
            "square": (0, spec.square_queries), "simba": (0, 1.5 * spec.simba_steps),
            "sanity": (20 + 500 + 50, 3)}[column]


def estimate_seconds(cells: list[Cell], spec: GridSpec, root: Path, profile=None) -> float:
    """A rough upper bound (seconds on the 2-core CPU) of the cells without a row: training at
    :data:`GRADS_PER_SECOND` (a PGD-k epoch is k + 1 passes; the checkpoint selection's PGD on
    validation images included) and attacks as :func:`_column_cost`, scaled by the model's cost."""
    from ..data import _info
    from .protocol import model_config

    todo = [c for c in cells if not c.path(root).exists()]
    seconds, sizes = 0.0, {}
    for c in todo:
        if c.dataset not in sizes:
            info = _info().get(c.dataset, {"n_samples": {"train": 140, "val": 20, "test": 40},
                                          "label": {"0": 0, "1": 1}})
            sizes[c.dataset] = (info["n_samples"], len(info["label"]))
        samples, classes = sizes[c.dataset]
        config = model_config(c.dataset, c.defense, c.train_eps, c.seed, profile, spec.external)
        n = samples["test"]
        cap = {"sanity": spec.sanity_subset}.get(c.attack, spec.slow_subset if c.attack in (
            "autoattack", "aa_lite", "square", "simba") else spec.eval_subset)
        grads, forwards = _column_cost(c.attack, spec, classes)
        seconds += min(n, cap or n) * (grads / GRADS_PER_SECOND + forwards / FORWARDS_PER_SECOND) \
            * MODEL_COST.get(config["model"], 1.0)
    for model in {c.model for c in todo if c.defense not in spec.external} | {
            (c.dataset, "nat", None, spec.surrogate_seed) for c in todo if c.attack == "transfer"}:
        config = model_config(*model, profile)
        samples = sizes[model[0]][0]
        n = min(samples["train"], config.get("train_subset") or 10**9)
        select = min(samples["val"], config.get("select_subset") or 10**9) * config.get(
            "select_steps", 0)
        seconds += (n * (1 + config.get("steps", 0)) + select) * config["epochs"] \
            * MODEL_COST.get(config["model"], 1.0) / GRADS_PER_SECOND
    return seconds

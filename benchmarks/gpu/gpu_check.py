"""The survey's recipe on a GPU (issue 15): throughput, several workers, attack precision, and the
projected wall time of the `paper` grid.

    bash benchmarks/gpu/gpu_check.sh                      # the one command, on a machine with a GPU
    python benchmarks/gpu/gpu_check.py --quick --out DIR  # every section on the CPU, tiny sizes (CI)

Sections (``--sections``, in this order; each writes one CSV under ``--out``, default this folder
on a GPU; the summary ``gpu_check.md`` is rebuilt from every CSV there, so a section can be rerun
alone; ``runs.csv`` logs each section's wall time and status with the machine):

- ``throughput``: images/s of the paper model (ResNet-18, width 64, 28 px, 1 channel, 2 classes)
  for a training step, a whole epoch of :func:`survey_lib.train.fit`, PGD-20 (20 input-gradient
  evaluations per image) and a forward pass, eager and compiled (``torch.compile`` default,
  ``mode="reduce-overhead"`` with CUDA graphs, the ``cudagraphs`` backend; within a time budget),
  plus several models of one architecture trained in one vmapped step
  (``torch.func.stack_module_state``); FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode``,
  achieved TFLOP/s and their fraction of the card's dense bf16 peak; median of the timed repeats
  after warm-up, the device synchronised around each.
- ``workers``: wall time of one small paper-profile grid slice with ``--workers 1`` and ``N``, each
  in a fresh results folder and a fresh model cache.
- ``precision``: robust accuracy under PGD-20, CW-margin PGD-30 and APGD-CE in fp32 and in bf16
  autocast on the same models, attacks and seeds; the gap in images per 200 and the verdict.
- ``projection``: the wall time of the full `paper` grid (one seed, the datasets present here)
  from the measured rates (:func:`survey_lib.benchmark.estimate_seconds`), with 1 and the best N
  workers, against 60 minutes, with the grid's FLOPs at the card's peak for comparison.
- ``notebooks`` (only when named): notebooks 00 and 05 run as scripts in the cpu profile.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from survey_lib.attacks import make_attack
from survey_lib.benchmark import (
    GRIDS,
    estimate_seconds,
    make_grid_attack,
    plan,
    read_run_log,
    run_grid,
    train_model,
)
from survey_lib.benchmark.protocol import pgd_step, test_split
from survey_lib.benchmark.spec import available
from survey_lib.config import get_profile
from survey_lib.data import Split, TaskInfo, stratified_indices
from survey_lib.errors import ConfigError, SurveyError
from survey_lib.evaluate import robust_metrics
from survey_lib.losses import task_loss
from survey_lib.models import build_model
from survey_lib.train import (
    PRECISION_ENV,
    autocast,
    evaluation_autocast,
    fit,
    make_optimizer,
    predict,
    seed_everything,
    select_device,
    to_device,
)

HERE = Path(__file__).resolve().parent
SECTIONS = ("throughput", "workers", "precision", "projection", "notebooks")
DEFAULT_SECTIONS = SECTIONS[:4]  # the notebooks take minutes more: asked for by name
NOTEBOOKS = ("00_data_and_baselines", "05_adversarial_training")
PGD_STEPS = 20
EVAL_BATCH = 256  # robust_metrics' batch: what the grid's attacks run at
BUDGET_MINUTES = 60
# dense bf16 Tensor Core peak (TFLOP/s, NVIDIA datasheets, without sparsity), by the name
# torch.cuda.get_device_name reports (e.g. "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB",
# "NVIDIA A100 80GB PCIe"); other cards (H100 NVL, H200 NVL, ...) are unknown: TFLOP/s only
PEAK_BF16_TFLOPS = (("H100 SXM", r"H100 (80GB HBM3|SXM)", 989.0), ("H100 PCIe", r"H100 PCIe", 756.0),
                    ("H200 SXM", r"H200(?! NVL)", 989.0), ("A100 SXM", r"A100-SXM", 312.0),
                    ("A100 PCIe", r"A100(-PCIE| \d+GB PCIe)", 312.0))
# torch.compile variants: None is eager; fit() takes a backend only, so it skips "reduce-overhead"
VARIANTS = {"eager": None, "inductor": {"backend": "inductor"},
            "reduce-overhead": {"backend": "inductor", "mode": "reduce-overhead"},
            "cudagraphs": {"backend": "cudagraphs"},
            "dynamo-eager": {"backend": "eager"}}  # tracing only: the compile path on a CPU


@dataclass(frozen=True)
class Settings:
    """How much each section measures: :data:`FULL` on a GPU, :data:`QUICK` on the CPU (CI)."""

    model: str = "resnet18"
    width: int = 64
    batches: tuple[int, ...] = (32, 512)
    eval_batch: int = EVAL_BATCH  # PGD and forward passes also measured (eager) at this batch
    variants: tuple[str, ...] = ("eager", "reduce-overhead", "cudagraphs", "inductor")
    compile_budget_s: float | None = 90  # compiled rows start only while the section is younger
    warmup: int = 3
    repeats: int = 10
    stack: int = 4  # models of one architecture trained in one vmapped step
    fit_images: int = 1024  # synthetic training images of the fit() measurement (first batch only)
    fit_epochs: int = 3  # timed epochs, after one warm-up epoch
    workers: tuple[int, ...] = (1, 4)
    # the grid slice of the workers section, and the models of the precision section: this profile
    # with fewer epochs (and these changes)
    base_profile: str = "paper"
    profile_changes: dict = field(default_factory=dict)
    slice_dataset: str = "breastmnist"
    slice_epochs: int = 2
    slice_grid: dict = field(default_factory=lambda: dict(
        defenses=("nat", "pgd_at"), seeds=(0, 1), attacks=("clean", "fgsm", "pgd", "cw", "square"),
        eval_eps=(2, 8), square_queries=200))
    precision_models: tuple = (("pneumoniamnist", "nat"), ("pneumoniamnist", "pgd_at"),
                               ("retinamnist", "nat"), ("retinamnist", "pgd_at"))
    precision_epochs: int = 5
    precision_eps: tuple = (1, 8)
    precision_images: int | None = None  # all test images (624 and 400)
    apgd_steps: int = 100
    notebook_profile: str = "cpu"


FULL = Settings()
# the quick models: SmallCNNs of the cpu profile, trained long enough on PneumoniaMNIST (87% clean
# accuracy) for the random start of an attack to matter, so identical runs are a real check
QUICK = Settings(width=4, batches=(16,), eval_batch=128, variants=("eager", "dynamo-eager"),
                 compile_budget_s=None, warmup=1, repeats=2, stack=2, fit_images=32, fit_epochs=1,
                 workers=(1, 2), base_profile="cpu",
                 profile_changes=dict(width=8, train_subset=1024, batch_size=32), slice_epochs=1,
                 slice_grid=dict(defenses=("nat",), seeds=(0, 1), attacks=("clean", "pgd"),
                                 eval_eps=(8,), pgd_steps=2, eval_subset=32),
                 precision_models=(("pneumoniamnist", "nat"),), precision_epochs=2,
                 precision_eps=(2, 4), precision_images=48, apgd_steps=10, notebook_profile="smoke")


# modules a section needs beyond what the script imports (torch, pandas): medmnist reads the data
# files (survey_lib imports it only when data is read) and computes ACC/AUC; the notebooks also
# display through IPython. An offline GPU machine brings them as wheels (README.md, bring.sh).
NEEDS = {"workers": ("medmnist.dataset", "medmnist.evaluator"),
         "precision": ("medmnist.dataset", "medmnist.evaluator"), "projection": ("medmnist.info",),
         "notebooks": ("medmnist.dataset", "medmnist.evaluator", "IPython.display")}


def missing_modules(sections) -> dict[str, list[str]]:
    """``{module: [sections needing it]}`` for each needed module that cannot be imported here
    (imported, not only looked up: medmnist's package swallows its own import errors)."""
    import importlib

    missing = {}
    for section in sections:
        for module in NEEDS.get(section, ()):
            if module in missing:
                missing[module].append(section)
                continue
            try:
                importlib.import_module(module)
            except ImportError:
                missing[module] = [section]
    return missing


def preflight(sections) -> None:
    """Raise :class:`ConfigError` before any measurement when a section cannot run here."""
    missing = missing_modules(sections)
    if missing:
        raise ConfigError(
            "Cannot import " + "; ".join(f"{m} (needed by {', '.join(s)})" for m, s in missing.items())
            + ". On a machine without network access, gather the wheels elsewhere with "
            "benchmarks/gpu/bring.sh and pass their folder as SURVEY_WHEELS to gpu_check.sh (see "
            "benchmarks/gpu/README.md), or run only the sections that need none of them "
            "(--sections throughput).")


# ----------------------------------------------------------------------------- the machine
def machine() -> dict:
    """The device and software, as every summary names them."""
    device = select_device()
    cuda = device.type == "cuda"
    props = torch.cuda.get_device_properties(0) if cuda else None
    smi = None
    if cuda and shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                              "--format=csv,noheader", "--id=0"], capture_output=True, text=True,
                             check=False).stdout.strip() or None
    return {"device": str(device),
            "device_name": torch.cuda.get_device_name(0) if cuda else
            f"{platform.processor() or platform.machine()} CPU",
            "memory_gib": round(props.total_memory / 2**30, 1) if cuda else None,
            "torch": torch.__version__, "cuda": torch.version.cuda if cuda else None,
            "threads": torch.get_num_threads(), "cores": os.cpu_count(),
            "python": platform.python_version(),
            "driver_clock_power": smi}  # nvidia-smi: driver version, max SM clock, power limit


def peak_tflops(device_name: str) -> float | None:
    """The card's dense bf16 peak (TFLOP/s), or None for a card not in :data:`PEAK_BF16_TFLOPS`."""
    for _, pattern, peak in PEAK_BF16_TFLOPS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return peak
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, warmup: int, repeats: int, device) -> tuple[float, float]:
    """(median seconds of ``repeats`` calls, seconds of the ``warmup`` calls before them)."""
    sync(device)
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    sync(device)
    warm = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), warm


class _NonLeafInput:
    """The model called on a view of its input. FlopCounterMode's module tracker fails when the
    input of a module is a leaf and the gradient is taken by ``torch.autograd.grad`` (as attacks
    do; pytorch/pytorch#131753); a view costs no FLOP and is no leaf."""

    def __init__(self, model):
        self.model = model

    def __call__(self, x):
        return self.model(x.view_as(x))

    def __getattr__(self, name):
        return getattr(self.model, name)


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# ----------------------------------------------------------------------------- (a) throughput
def _compile(model, variant: str):
    options = VARIANTS[variant]
    return model if options is None else torch.compile(model, dynamic=False, **options)


def _compile_counters() -> dict:
    from torch._dynamo.utils import counters

    return {"graphs": counters["stats"]["unique_graphs"],
            "graph_breaks": sum(counters["graph_break"].values()),
            "cudagraph_skips": sum(v for k, v in counters["inductor"].items() if "cudagraph_skip" in k)}


def _paper_model(s: Settings):
    return build_model(s.model, 1, 2, s.width, 28)


def _batch(batch: int, device, model, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, 28, 28, generator=gen)
    y = torch.randint(0, 2, (batch,), generator=gen)
    return to_device(model, x, device), y.to(device)


def train_step(model, net, x, y, device, variant: str):
    """One training step as fit() takes it (autocast, SGD with the paper's settings)."""
    paper = get_profile("paper")
    opt = make_optimizer(model, paper.optimizer, paper.lr, paper.weight_decay)
    loss_fn = task_loss("binary-class")

    def step():
        if variant == "reduce-overhead":  # a new iteration: earlier graph outputs may be reused
            torch.compiler.cudagraph_mark_step_begin()
        with autocast(device):
            loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def pgd_call(net, x, y, device, precision: str):
    """PGD-20 at ε = 8/255 with the survey's step, in ``precision`` (as attack_split runs it)."""
    attack = make_attack("pgd", eps=8, steps=PGD_STEPS, step_size=pgd_step(8))

    def run():
        with evaluation_autocast(device, precision):
            attack(net, x, y)
    return run


def stacked_train_step(s: Settings, batch: int, device):
    """``s.stack`` models of one architecture trained in one step: parameters stacked with
    ``torch.func.stack_module_state`` and the model vmapped over them (BatchNorm statistics are
    stacked buffers and move as in separate training)."""
    from torch.func import functional_call, stack_module_state, vmap

    models = [_paper_model(s).train() for _ in range(s.stack)]
    for m in models:
        to_device(m, None, device)
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    paper = get_profile("paper")
    opt = torch.optim.SGD(list(params.values()), lr=paper.lr, momentum=0.9,
                          weight_decay=paper.weight_decay, nesterov=True)
    batches = [_batch(batch, device, models[0], seed) for seed in range(s.stack)]
    xs, ys = torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches])
    one = lambda p, b, x: functional_call(base, (p, b), (x,))  # noqa: E731

    def step():
        with autocast(device):
            logits = vmap(one)(params, buffers, xs)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), ys.flatten(), reduction="sum") / batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def _val_accuracy(model, val: Split) -> float:
    """The validation pass fit() makes each epoch (a forward pass of the split), scored by plain
    accuracy: fit's default score (AUC) comes from medmnist, which this section does without."""
    return (predict(model, val.x).argmax(1) == val.y).float().mean().item()


def fit_epochs(s: Settings, batch: int, device, variant: str) -> tuple[float, float]:
    """(median seconds of a timed fit() epoch, seconds of the warm-up epoch) on synthetic images:
    the real loop (host-side batching, augmentation, loss.item(), validation on 32 images)."""
    info = TaskInfo("synthetic", "binary-class", ("a", "b"), 1, False, 28)
    gen = torch.Generator().manual_seed(0)
    train = Split(torch.rand(s.fit_images, 1, 28, 28, generator=gen),
                  torch.randint(0, 2, (s.fit_images,), generator=gen), info)
    val = Split(torch.rand(32, 1, 28, 28, generator=gen), torch.tensor([0, 1] * 16), info)
    paper = get_profile("paper")
    backend = VARIANTS[variant]["backend"] if VARIANTS[variant] else None
    out = fit(_paper_model(s), train, val, epochs=1 + s.fit_epochs, batch_size=batch,
              optimizer=paper.optimizer, lr=paper.lr, weight_decay=paper.weight_decay,
              schedule=paper.schedule, seed=0, select_fn=_val_accuracy, progress=False,
              compile_backend=backend or "",
              device=str(device))
    ends = [h["seconds"] for h in out["history"]]
    return statistics.median(b - a for a, b in zip(ends, ends[1:])), ends[0]


def _measurements(s: Settings, cuda: bool):
    """(kind, variant, batch, precision) of every throughput row, in the order they run: every
    eager row first (cheap), then the compiled variants (a compile takes tens of seconds). fit()
    runs at the first batch only (the paper's training batch, 32)."""
    train_precision = "bf16" if cuda else "fp32"
    for variant in s.variants:
        for batch in s.batches:
            yield "train", variant, batch, train_precision
            if batch == s.batches[0] and variant != "reduce-overhead":
                yield "fit", variant, batch, train_precision
            yield "pgd", variant, batch, "fp32"
            if variant == "eager":
                yield "pgd", "eager", batch, "bf16"
                yield "forward", "eager", batch, "fp32"
        if variant == "eager":
            if s.eval_batch not in s.batches:
                yield "pgd", "eager", s.eval_batch, "fp32"
                yield "forward", "eager", s.eval_batch, "fp32"
            yield "train_vmap", "eager", s.batches[0], train_precision


def measure(s: Settings, kind: str, variant: str, batch: int, precision: str, device) -> dict:
    """One row of the throughput table: a fresh model, the dynamo caches and counters reset."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    seed_everything(0)  # the cuDNN flags fit() sets: what the grid's training and attacks run with
    torch._dynamo.reset()
    counters.clear()
    model = _paper_model(s)
    x, y = _batch(batch, device, model)
    if kind == "fit":
        seconds, warm = fit_epochs(s, batch, device, variant)
        step_seconds, rate = seconds * batch / s.fit_images, s.fit_images / seconds
        flops = count_flops(train_step(model.train(), model, x, y, device, "eager")) / batch
    else:
        net, images = _compile(model, variant), batch
        if kind == "train":
            step = train_step(model.train(), net, x, y, device, variant)
            flop_fn = train_step(model, model, x, y, device, "eager")
        elif kind == "pgd":
            step = pgd_call(net, x, y, device, precision)
            flop_fn = pgd_call(_NonLeafInput(model), x, y, device, precision)
        elif kind == "forward":
            model.eval()
            step = flop_fn = torch.no_grad()(lambda: net(x))
        else:  # train_vmap
            step = flop_fn = stacked_train_step(s, batch, device)
            images = batch * s.stack
        step_seconds, warm = timed(step, s.warmup, s.repeats, device)
        rate = images / step_seconds
        flops = count_flops(flop_fn) / images
    return {"kind": kind, "variant": variant, "batch": batch, "precision": precision,
            "models": s.stack if kind == "train_vmap" else 1, "images_per_s": round(rate, 1),
            "seconds_per_step": step_seconds, "warmup_seconds": round(warm, 2),
            "flops_per_image": flops, "tflops": flops * rate / 1e12,
            **(_compile_counters() if VARIANTS[variant] else {})}


THROUGHPUT_COLUMNS = ["model", "width", "kind", "variant", "batch", "precision", "models", "images_per_s",
                      "seconds_per_step", "warmup_seconds", "flops_per_image", "tflops", "graphs",
                      "graph_breaks", "cudagraph_skips", "status"]


def throughput(s: Settings, out: Path, device) -> pd.DataFrame:
    """Every row of :func:`_measurements`; the CSV is rewritten after each row (a run stopped
    early keeps what it measured). Compiled rows start only within ``s.compile_budget_s`` seconds
    of the section's start; later ones are listed as not run."""
    info = machine()
    peak = peak_tflops(info["device_name"]) if device.type == "cuda" else None
    rows, start = [], time.perf_counter()
    for kind, variant, batch, precision in _measurements(s, device.type == "cuda"):
        key = {"kind": kind, "variant": variant, "batch": batch, "precision": precision}
        if VARIANTS[variant] and s.compile_budget_s is not None and \
                time.perf_counter() - start > s.compile_budget_s:
            row = {**key, "status": f"not run: the compile budget ({s.compile_budget_s:g} s) was spent"}
        else:
            try:
                row = {**measure(s, kind, variant, batch, precision, device), "status": "ok"}
            except Exception as exc:  # one variant failing (e.g. no compiler for inductor) is a result
                traceback.print_exc()
                row = {**key, "status": f"failed: {type(exc).__name__}: {exc}".splitlines()[0]}
        rate = f"{row['images_per_s']} img/s" if "images_per_s" in row else row["status"]
        print(f"throughput {kind:10s} {variant:15s} batch {batch:4d} {precision}: {rate}", flush=True)
        rows.append({"model": s.model, "width": s.width, **row})
        df = pd.DataFrame(rows).reindex(columns=THROUGHPUT_COLUMNS)
        df["peak_bf16_tflops"] = peak
        df["fraction_of_bf16_peak"] = df["tflops"] / peak if peak else float("nan")
        df["device_name"] = info["device_name"]
        df.to_csv(out / "throughput.csv", index=False)
    return df


# ----------------------------------------------------------------------------- (b) workers
def check_profile(s: Settings, epochs: int):
    """The settings' base profile (the paper's) with fewer epochs and the settings' changes."""
    return get_profile(s.base_profile).replace(epochs=epochs, **s.profile_changes)


def grid_slice(s: Settings):
    spec = GRIDS["paper"].replace(datasets=(s.slice_dataset,), **s.slice_grid)
    return spec, check_profile(s, s.slice_epochs)


@contextlib.contextmanager
def runs_folder(path: Path):
    """$SURVEY_RUNS_DIR set to ``path`` for the duration (spawned workers inherit it)."""
    old = os.environ.get("SURVEY_RUNS_DIR")
    os.environ["SURVEY_RUNS_DIR"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("SURVEY_RUNS_DIR")
        else:
            os.environ["SURVEY_RUNS_DIR"] = old


def workers(s: Settings, out: Path, scratch: Path) -> pd.DataFrame:
    spec, profile = grid_slice(s)
    cells = plan(spec)
    rows = []
    for n in s.workers:
        with runs_folder(scratch / f"runs_workers{n}"):
            start = time.perf_counter()
            got = run_grid(spec, scratch / f"grid_workers{n}", profile, progress=False, workers=n)
            wall = time.perf_counter() - start
        if len(got) != len(cells):
            raise RuntimeError(f"the grid slice with {n} workers gave {len(got)} of {len(cells)} rows")
        rows.append({"workers": n, "profile": s.base_profile, "model": profile.model,
                     "dataset": s.slice_dataset, "epochs": s.slice_epochs,
                     "cells": len(cells), "models": len({c.model for c in cells}),
                     "models_trained": read_run_log(scratch / f"grid_workers{n}")[-1]["models_trained"],
                     "wall_seconds": round(wall, 2), "cells_per_min": round(len(cells) / wall * 60, 2)})
        print(f"workers {n}: {len(cells)} cells in {wall:.1f} s", flush=True)
    df = pd.DataFrame(rows)
    df["speedup"] = (df["wall_seconds"].iloc[0] / df["wall_seconds"]).round(3)
    df["device_name"] = machine()["device_name"]
    df.to_csv(out / "workers.csv", index=False)
    return df


# ----------------------------------------------------------------------------- (c) precision
def precision_attacks(eps, s: Settings) -> dict:
    """Fresh attacks (fixed seeds): the grid's PGD-20 and CW-30 columns, and APGD-CE."""
    spec = GRIDS["paper"]
    return {"pgd": make_grid_attack("pgd", eps, spec), "cw": make_grid_attack("cw", eps, spec),
            "apgd_ce": make_attack("apgd_ce", eps=eps, steps=s.apgd_steps, seed=0)}


def precision(s: Settings, out: Path, precisions: tuple[str, ...]) -> pd.DataFrame:
    """Robust accuracy of each model under each attack in ``precisions[0]`` (the reference) and in
    each later one (candidates), every run on the same images with freshly built, seeded attacks."""
    profile = check_profile(s, s.precision_epochs)
    rows = []
    for dataset, defense in s.precision_models:
        model, record = train_model(dataset, defense, None if defense == "nat" else 8, 0, profile)
        test = test_split(dataset, 28)
        test = test.take(stratified_indices(test.y, s.precision_images, 0))
        for eps in s.precision_eps:
            for column in precision_attacks(eps, s):
                runs = [robust_metrics(model, test, precision_attacks(eps, s)[column], precision=p,
                                       keep_predictions=True) for p in precisions]
                ref = runs[0]
                for p, run in zip(precisions[1:], runs[1:]):
                    gap = round((run["acc"] - ref["acc"]) * len(test))
                    rows.append({"dataset": dataset, "defense": defense, "model": profile.model,
                                 "width": profile.width, "epochs": record["config"]["epochs"],
                                 "attack": column, "eps": eps, "n": len(test), "reference": precisions[0],
                                 "candidate": p, "robust_reference": round(ref["acc"] * len(test)),
                                 "robust_candidate": round(run["acc"] * len(test)), "gap_images": gap,
                                 "gap_per_200": round(gap * 200 / len(test), 2),
                                 "changed_predictions": sum(a != b for a, b in zip(ref["pred"], run["pred"])),
                                 "seconds_reference": ref["seconds"], "seconds_candidate": run["seconds"],
                                 "attack_config": ref["attack"]})
                print(f"precision {dataset} {defense} {column} ε={eps}: robust "
                      + " / ".join(f"{r['acc']:.4f}" for r in runs), flush=True)
    df = pd.DataFrame(rows)
    df["device_name"] = machine()["device_name"]
    df.to_csv(out / "precision.csv", index=False)
    return df


def bf16_verdict(df: pd.DataFrame) -> str | None:
    """'yes' when bf16 is never weaker than fp32 by more than 1 image per 200, else 'no'."""
    pairs = df[(df["reference"] == "fp32") & (df["candidate"] == "bf16")]
    if pairs.empty:
        return None
    return "yes" if (pairs["gap_per_200"] <= 1).all() else "no"


# ----------------------------------------------------------------------------- (d) projection
def _nearest(rows: pd.DataFrame, target: int) -> pd.DataFrame:
    """The rows at the measured batch nearest ``target`` by ratio (512 stands for 256 before 32)."""
    batch = min(rows["batch"].unique(), key=lambda b: (abs(math.log(b / target)), -b))
    return rows[rows["batch"] == batch]


def _best(tp: pd.DataFrame, kind: str, batch: int, precision: str, compiled: bool) -> pd.Series:
    """The fastest measured row of a kind at the measured batch nearest ``batch``."""
    rows = tp[(tp["kind"] == kind) & (tp["precision"] == precision) & tp["images_per_s"].notna()]
    if not compiled:
        rows = rows[rows["variant"] == "eager"]
    if rows.empty:
        raise ConfigError(f"throughput.csv has no {kind} row in {precision}; run the throughput "
                          "section first (--sections throughput projection).")
    rows = _nearest(rows, batch)
    return rows.loc[rows["images_per_s"].idxmax()]


def measured_rates(tp: pd.DataFrame, profile, compiled: bool) -> tuple[dict, dict, dict]:
    """(images/s as :func:`estimate_seconds` takes them, the rows they come from, FLOPs per image):
    training from fit() at the profile's batch, the adversarial-training attack from PGD at that
    batch in the training precision, attacks from PGD and forward passes at the evaluation batch."""
    train_precision = "bf16" if ((tp["kind"] == "train") & (tp["precision"] == "bf16")).any() else "fp32"
    attack_precision = os.environ.get(PRECISION_ENV) or "fp32"
    rows = {"train": _best(tp, "fit", profile.batch_size, train_precision, compiled),
            "inner": _best(tp, "pgd", profile.batch_size, train_precision, compiled),
            "grads": _best(tp, "pgd", EVAL_BATCH, attack_precision, compiled),
            "forwards": _best(tp, "forward", EVAL_BATCH, "fp32", compiled)}
    per_grad = {"inner": PGD_STEPS, "grads": PGD_STEPS}
    rates = {k: r["images_per_s"] * per_grad.get(k, 1) for k, r in rows.items()}
    flops = {k: r["flops_per_image"] / per_grad.get(k, 1) for k, r in rows.items()}
    return rates, rows, flops


def paper_grid(epochs: int | None = None):
    """The full paper grid (one seed, the datasets readable here) and its profile."""
    spec, skipped = available(GRIDS["paper"])
    profile = get_profile("paper")
    if epochs is not None:
        profile = profile.replace(epochs=epochs)
    return spec, skipped, profile


def project(tp: pd.DataFrame, wk: pd.DataFrame | None, epochs: int | None = None) -> pd.DataFrame:
    """Projected wall time of the paper grid: eager and best-compiled rates, with 1 worker and with
    the number of workers that was fastest in ``wk`` (its measured speedup applied to the whole
    grid), and the same grid's FLOPs at the card's bf16 peak (``floor_seconds``)."""
    spec, skipped, profile = paper_grid(epochs)
    cells = plan(spec)
    peak = tp["peak_bf16_tflops"].iloc[0]
    best_n = wk.loc[wk["speedup"].idxmax()] if wk is not None and len(wk) else None
    options = [(1, 1.0)] + ([(int(best_n["workers"]), float(best_n["speedup"]))]
                            if best_n is not None and best_n["workers"] != 1 else [])
    nowhere = Path(tempfile.gettempdir()) / "gpu_check_no_rows"
    rows = []
    for label, compiled in (("eager", False), ("best", True)):
        rates, used, flops = measured_rates(tp, profile, compiled)
        parts = estimate_seconds(cells, spec, nowhere, profile, rates={profile.model: rates},
                                 breakdown=True)
        floor = None
        if pd.notna(peak):
            at_peak = {k: peak * 1e12 / f for k, f in flops.items()}
            floor = estimate_seconds(cells, spec, nowhere, profile, rates={profile.model: at_peak})
        total = sum(parts.values())
        for n, speedup in options:
            wall = total / speedup
            rows.append({"rates": label, "workers": n, "speedup": speedup, "epochs": profile.epochs,
                         "datasets": " ".join(spec.datasets), "skipped": " ".join(skipped),
                         "cells": len(cells), "models": len({c.model for c in cells}),
                         **{f"s_{k}": round(v, 1) for k, v in parts.items()},
                         "total_seconds": round(wall, 1), "hours": round(wall / 3600, 2),
                         "within_60_min": wall <= BUDGET_MINUTES * 60,
                         "floor_seconds": None if floor is None else round(floor / speedup, 1),
                         "utilisation": None if floor is None else floor / total,
                         **{f"{k}_from": f"{r['kind']} {r['variant']} b{r['batch']} {r['precision']}"
                            for k, r in used.items()},
                         **{f"{k}_per_s": round(v, 1) for k, v in rates.items()}})
    return pd.DataFrame(rows)


def projection(out: Path) -> pd.DataFrame:
    tp = _read(out, "throughput")
    if tp is None:
        raise ConfigError(f"{out / 'throughput.csv'} is missing: the projection needs the measured "
                          "rates; run the throughput section first.")
    df = project(tp, _read(out, "workers"))
    df.to_csv(out / "projection.csv", index=False)
    return df


# ----------------------------------------------------------------------------- (e) notebooks
def notebooks(s: Settings, out: Path, scratch: Path) -> pd.DataFrame:
    """Notebooks 00 and 05 run as scripts (their py:percent sources; no Jupyter needed) in
    ``s.notebook_profile`` on this machine's device, from an empty folder, with this run's model
    cache; each one's output goes to ``<scratch>/<notebook>.log``, its tail to the console."""
    from survey_lib.paths import NOTEBOOKS as FOLDER

    env = {**os.environ, "SURVEY_PROFILE": s.notebook_profile, "MPLBACKEND": "Agg"}
    rows = []
    for name in NOTEBOOKS:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(FOLDER / f"{name}.py")], cwd=scratch, env=env,
                              capture_output=True, text=True)
        (scratch / f"{name}.log").write_text(proc.stdout + proc.stderr)
        tail = (proc.stdout + proc.stderr).strip().splitlines()
        print(f"notebook {name} ({s.notebook_profile}): exit {proc.returncode}", *tail[-15:], sep="\n  ")
        rows.append({"notebook": name, "profile": s.notebook_profile, "device": str(select_device()),
                     "exit_code": proc.returncode, "seconds": round(time.perf_counter() - start, 1),
                     "error": tail[-1] if proc.returncode and tail else None})
        pd.DataFrame(rows).assign(device_name=machine()["device_name"]).to_csv(
            out / "notebooks.csv", index=False)
    failed = [r["notebook"] for r in rows if r["exit_code"]]
    if failed:
        raise RuntimeError(f"notebook(s) {', '.join(failed)} failed; see notebooks.csv and the logs")
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- summary
def _read(out: Path, name: str) -> pd.DataFrame | None:
    path = out / f"{name}.csv"
    return pd.read_csv(path) if path.exists() else None


def _pct(x) -> str:
    return "–" if pd.isna(x) else f"{100 * x:.1f}%"


def peak_note(device_name: str, peak) -> str:
    """The sentence naming the peak the fractions are taken of, or saying there is none."""
    if pd.notna(peak):
        return f"Fractions of the dense bf16 peak of the {device_name}: {peak:g} TFLOP/s (datasheet)."
    known = ", ".join(f"{name} {p:g}" for name, _, p in PEAK_BF16_TFLOPS)
    return (f"The bf16 peak of the {device_name} is unknown (table: {known} TFLOP/s): achieved "
            "TFLOP/s only, no fraction of the peak.")


def summarise_throughput(df: pd.DataFrame) -> list[str]:
    ok = df[df["images_per_s"].notna()]
    lines = [peak_note(df["device_name"].iloc[0], df["peak_bf16_tflops"].iloc[0]), "",
             "| kind | batch | precision | eager img/s | best compiled (variant) img/s | speedup | "
             "TFLOP/s (best) | of bf16 peak |", "|---|---|---|---|---|---|---|---|"]
    for (kind, batch, prec), g in ok.groupby(["kind", "batch", "precision"], sort=False):
        eager = g[g["variant"] == "eager"]
        compiled = g[g["variant"] != "eager"]
        best = g.loc[g["images_per_s"].idxmax()]
        e = eager["images_per_s"].iloc[0] if len(eager) else float("nan")
        c = compiled.loc[compiled["images_per_s"].idxmax()] if len(compiled) else None
        label = kind if kind != "train_vmap" else f"train, {int(g['models'].iloc[0])} models vmapped"
        lines.append(f"| {label} | {batch} | {prec} | {e:,.0f} | "
                     + (f"{c['images_per_s']:,.0f} ({c['variant']}) | {c['images_per_s'] / e:.2f}× | "
                        if c is not None else "– | – | ")
                     + f"{best['tflops']:.2f} | {_pct(best['fraction_of_bf16_peak'])} |")
    others = df[df["status"] != "ok"]
    if len(others):
        lines.append("")
    lines += [f"- {r['kind']} {r['variant']} batch {r['batch']} {r['precision']}: {r['status']}"
              for _, r in others.iterrows()]
    lines += [f"- CUDA graphs skipped in {r['kind']} {r['variant']} batch {r['batch']} "
              f"({int(r['cudagraph_skips'])} times): that row ran (partly) without graphs."
              for _, r in df[df["cudagraph_skips"].fillna(0) > 0].iterrows()]
    return lines


def summarise_workers(df: pd.DataFrame) -> list[str]:
    first = df.iloc[0]
    return [f"A slice of the grid in the {first['profile']} profile ({first['model']}, "
            f"{int(first['epochs'])} epochs): {first['dataset']}, {int(first['models'])} models, "
            f"{int(first['cells'])} cells, a fresh results folder and model cache per run."] + [
        f"- {int(r['workers'])} worker(s): {r['wall_seconds']:.1f} s, {r['cells_per_min']:.1f} "
        f"cells/min, speedup {r['speedup']:.2f}×" for _, r in df.iterrows()]


def summarise_precision(df: pd.DataFrame) -> list[str]:
    lines = ["| dataset | defense | attack | ε (/255) | n | robust (reference) | robust (candidate) "
             "| gap per 200 | changed predictions |", "|---|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        lines.append(f"| {r['dataset']} | {r['defense']} | {r['attack']} | {r['eps']:g} | {r['n']} | "
                     f"{r['robust_reference']} ({r['reference']}) | {r['robust_candidate']} "
                     f"({r['candidate']}) | {r['gap_per_200']:+.2f} | {r['changed_predictions']} |")
    verdict = bf16_verdict(df)
    if verdict is not None:
        worst = df[df["candidate"] == "bf16"]["gap_per_200"].max()
        lines.append(f"\nbf16 never weaker than fp32 by more than 1 image per 200: **{verdict}** "
                     f"(largest gap {worst:+.2f} images per 200; positive: bf16 left more images "
                     "robust).")
    return lines


def summarise_projection(df: pd.DataFrame, tp: pd.DataFrame | None) -> list[str]:
    first = df.iloc[0]
    lines = [f"The full paper grid: {int(first['cells'])} cells, {int(first['models'])} models, "
             f"datasets {first['datasets']}"
             + (f" (skipped, not present: {first['skipped']})" if isinstance(first["skipped"], str)
                and first["skipped"] else "")
             + f", {int(first['epochs'])} epochs, one seed; an upper bound (no early stopping)."]
    for _, r in df.iterrows():
        floor = "" if pd.isna(r["floor_seconds"]) else (
            f"; the same FLOPs at the bf16 peak: {r['floor_seconds'] / 60:.1f} min "
            f"(utilisation {_pct(r['utilisation'])})")
        lines.append(f"- {r['rates']} rates, {int(r['workers'])} worker(s): {r['hours']:.2f} h "
                     f"({'within' if r['within_60_min'] else 'over'} 60 min){floor}")
    best = df.loc[df["total_seconds"].idxmin()]
    if not best["within_60_min"]:
        parts = {k[2:]: v for k, v in best.items() if k.startswith("s_")}
        total = sum(parts.values())
        top = sorted(parts.items(), key=lambda kv: -kv[1])[:4]
        lines.append("\nOver 60 min even at the best setting. Where the time goes: "
                     + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in top) + ".")
        if tp is not None:
            what = {"train": "training steps", "inner": "the adversarial-training attack",
                    "grads": "attack gradients", "forwards": "attack forward passes (Square, SimBA)"}
            for part, words in what.items():
                kind, variant, batch, prec = best[f"{part}_from"].split()
                row = tp[(tp["kind"] == kind) & (tp["variant"] == variant)
                         & (tp["batch"] == int(batch[1:])) & (tp["precision"] == prec)].iloc[0]
                lines.append(f"- {words}: {kind} ({variant}, batch {batch[1:]}, {prec}) at "
                             f"{row['tflops']:.2f} TFLOP/s, {_pct(row['fraction_of_bf16_peak'])} of "
                             "the bf16 peak")
    return lines


def summarise_notebooks(df: pd.DataFrame) -> list[str]:
    return [f"- {r['notebook']} ({r['profile']} profile, {r['device']}): "
            + ("ran" if r["exit_code"] == 0 else f"failed (exit {r['exit_code']}: {r['error']})")
            + f" in {r['seconds']:.0f} s" for _, r in df.iterrows()]


def write_summary(out: Path) -> Path:
    """``gpu_check.md``, rebuilt from the CSVs in ``out`` and the invocation log ``runs.csv``."""
    runs = _read(out, "runs")
    lines = ["# GPU check: the survey's recipe on a GPU", ""]
    if runs is not None:
        last = runs.iloc[-1]
        smi = last["driver_clock_power"]
        lines += [f"Machine: **{last['device_name']}**"
                  + (f" ({last['memory_gib']} GiB)" if pd.notna(last["memory_gib"]) else "")
                  + f", torch {last['torch']}" + (f", CUDA {last['cuda']}" if pd.notna(last["cuda"]) else "")
                  + f", {int(last['threads'])} torch threads of {int(last['cores'])} cores, Python "
                  f"{last['python']}"
                  + (f"; nvidia-smi (driver, max SM clock, power limit): {smi}" if pd.notna(smi) else "")
                  + ".", "", "| date (UTC) | command | section | seconds | status |", "|---|---|---|---|---|"]
        lines += [f"| {r['date']} | `{r['command']}` | {r['section']} | {r['seconds']:.0f} | "
                  f"{r['status']} |" for _, r in runs.iterrows()]
    tp = _read(out, "throughput")
    for name, fn in (("throughput", summarise_throughput), ("workers", summarise_workers),
                     ("precision", summarise_precision),
                     ("projection", lambda df: summarise_projection(df, tp)),
                     ("notebooks", summarise_notebooks)):
        df = _read(out, name)
        if df is not None and len(df):
            lines += ["", f"## {name.capitalize()} ({name}.csv)", ""] + fn(df)
    path = out / "gpu_check.md"
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- main
def log_section(out: Path, command: str, section: str, seconds: float, status: str) -> None:
    info = machine()
    row = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"), "command": command,
           "section": section, "seconds": round(seconds, 1), "status": status,
           **{k: info[k] for k in ("device_name", "memory_gib", "torch", "cuda", "threads", "cores",
                                   "python", "driver_clock_power")}}
    path = out / "runs.csv"
    pd.DataFrame([row]).to_csv(path, mode="a", header=not path.exists(), index=False)


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("--quick", action="store_true", help="tiny sizes and one torch thread: every "
                   "section on the CPU in about a minute (CI); the numbers mean nothing")
    p.add_argument("--out", type=Path, help="folder for the CSVs and gpu_check.md (default: this "
                   "script's folder on a GPU; required on a CPU)")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(DEFAULT_SECTIONS),
                   help="default: every section but the notebooks (notebooks 00 and 05 run as "
                   "scripts, cpu profile; minutes more)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="compile variants of the "
                   "throughput section (default: eager reduce-overhead cudagraphs inductor)")
    p.add_argument("--batches", nargs="+", type=int, help="batch sizes (default: 32 512)")
    p.add_argument("--compile-budget", type=float, metavar="SECONDS", help="compiled rows start only "
                   "this long into the throughput section (default: 90 on a GPU, none with --quick)")
    p.add_argument("--workers", nargs="+", type=int, help="worker counts (default: 1 4)")
    p.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"],
                   help="the reference precision, then the candidates (default: fp32 bf16)")
    p.add_argument("--runs", type=Path, help="model cache and scratch folder (default: a fresh "
                   "temporary folder, deleted at the end)")
    args = p.parse_args(argv)
    if len(args.precisions) < 2:
        p.error("--precisions needs a reference and at least one candidate, e.g. fp32 bf16")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    device = select_device()
    if args.out is None and (args.quick or device.type != "cuda"):
        raise ConfigError("No --out given: on a CPU (or with --quick) the check writes elsewhere "
                          "than benchmarks/gpu/, which holds GPU results only. Pass --out DIR.")
    preflight(args.sections)
    s = QUICK if args.quick else FULL
    if args.quick:  # tiny models: one thread is faster, and spared when the CPU is shared
        torch.set_num_threads(1)
    changes = {k: tuple(v) for k, v in (("variants", args.variants), ("batches", args.batches),
                                        ("workers", args.workers)) if v}
    if args.compile_budget is not None:
        changes["compile_budget_s"] = args.compile_budget
    s = replace(s, **changes)
    out = (args.out or HERE).resolve()
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/gpu/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:])
    failed = []
    with contextlib.ExitStack() as stack:
        scratch = args.runs or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu_check-")))
        scratch.mkdir(parents=True, exist_ok=True)
        stack.enter_context(runs_folder(scratch / "runs"))
        for section in [x for x in SECTIONS if x in args.sections]:
            start = time.perf_counter()
            try:
                if section == "throughput":
                    throughput(s, out, device)
                elif section == "workers":
                    workers(s, out, scratch)
                elif section == "precision":
                    precision(s, out, tuple(args.precisions))
                elif section == "projection":
                    projection(out)
                else:
                    notebooks(s, out, scratch)
                status = "ok"
            except Exception as exc:  # the other sections still run; the exit code says it failed
                traceback.print_exc()
                status = f"failed: {type(exc).__name__}: {exc}".splitlines()[0]
                failed.append(section)
            log_section(out, command, section, time.perf_counter() - start, status)
            print(f"== {section}: {status} ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"wrote {write_summary(out)}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SurveyError as exc:  # a user-fixable error: its paragraph, exit 2 (as the CLI does)
        print(f"gpu_check: {exc}", file=sys.stderr)
        sys.exit(2)

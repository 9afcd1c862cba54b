"""One training loop for every task (d2l-style: short, readable, reused by the defenses).

- loss from the task: cross-entropy (single-label), BCE-with-logits (multi-label), Dice + CE
  (segmentation); a defense swaps in its own ``loss_fn`` (adversarial training, issue 4).
- seeding and deterministic flags; cuda > mps > cpu; channels_last everywhere, bf16 autocast on CUDA.
- the checkpoint kept is the best on the validation split by ``select_fn`` (AUC by default, as in
  MedMNIST v2; Dice for segmentation); the test split is never looked at during training.
- every epoch is saved atomically to ``last.pt``, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import validation
from .data import Split
from .errors import ConfigError, DataError
from .losses import task_loss
from .metrics import classification_metrics, dice_iou


# ----------------------------------------------------------------------------- device and seeds
def select_device(name: str | None = None) -> torch.device:
    """``name`` if given, else cuda > mps > cpu."""
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask cuDNN for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def autocast(device: torch.device):
    """bf16 autocast for training steps on CUDA, a no-op elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


PRECISION_ENV = "SURVEY_ATTACK_PRECISION"


def evaluation_autocast(device: torch.device, precision: str | None = None):
    """The precision of attacks and evaluation: fp32 unless asked (``precision="bf16"`` or
    ``$SURVEY_ATTACK_PRECISION=bf16``): input gradients in bf16 can be coarser than in fp32, and a
    weaker attack would report a higher robust accuracy. bf16 runs under autocast on any device."""
    precision = precision or os.environ.get(PRECISION_ENV) or "fp32"
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"Attack precision must be 'fp32' (the default) or 'bf16', got "
                          f"{precision!r} (from the argument or ${PRECISION_ENV}).")
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(model: nn.Module, x: torch.Tensor | None, device: torch.device):
    """Move a model (and a batch) to ``device`` in channels_last memory format (images and
    volumes): faster on CUDA and on the CPU too (1.3× for PGD on our models on the 2-core CPU,
    benchmarks/performance)."""
    fmt = None
    if x is not None and x.ndim in (4, 5):
        fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
    model.to(device, memory_format=fmt) if fmt else model.to(device)
    if x is None:
        return None
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=fmt) if fmt else x


# ----------------------------------------------------------------------------- augmentation
def augment(x: torch.Tensor, y: torch.Tensor | None = None, max_degrees: float = 15.0):
    """Random horizontal flip and small rotation of a 2D batch (the mask ``y`` follows); flips only
    for volumes. Rotation uses bilinear resampling with border padding."""
    n = x.shape[0]
    flip = torch.rand(n, device=x.device) < 0.5
    x = torch.where(flip.view(-1, *[1] * (x.ndim - 1)), x.flip(-1), x)
    if y is not None and y.ndim >= 3:
        y = torch.where(flip.view(-1, *[1] * (y.ndim - 1)), y.flip(-1), y)
    if x.ndim != 4 or max_degrees <= 0:
        return x, y
    angle = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(max_degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zeros = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    if y is not None and y.ndim == 3:
        y = F.grid_sample(y[:, None].float(), grid, mode="nearest", align_corners=False)[:, 0].long()
    return x, y


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256,
            device: torch.device | None = None, precision: str | None = None,
            unit_range: bool = True) -> torch.Tensor:
    """Logits of ``model`` on ``x`` (images in [0, 1] unless ``unit_range`` is False; eval mode,
    batched; fp32 unless ``precision``, see :func:`evaluation_autocast`), returned on the CPU."""
    validation.images(x, unit_range=unit_range)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb = to_device(model, x[i:i + batch_size], device)
        with evaluation_autocast(device, precision):
            out.append(model(xb).float().cpu())
    model.train(was_training)
    return torch.cat(out)


def evaluate(model: nn.Module, split: Split, batch_size: int = 256) -> dict:
    """Clean metrics of ``model`` on a split: ACC/AUC/bACC/shares, or Dice/IoU for segmentation."""
    validation.split(split)
    logits = predict(model, split.x, batch_size)
    if split.info.task == "segmentation":
        return dice_iou(logits, split.y)
    return classification_metrics(logits, split.y, split.info.task, split.info.num_classes)


def default_select(model: nn.Module, val: Split) -> float:
    """Validation score used to keep the best checkpoint: AUC, or Dice for segmentation."""
    m = evaluate(model, val)
    return m["dice"] if "dice" in m else m["auc"]


# ----------------------------------------------------------------------------- the loop
def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float):
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay,
                               nesterov=True)
    raise ConfigError(f"Unknown optimizer {name!r}. Valid optimizers: adam, sgd.")


def make_schedule(opt, name: str, epochs: int, steps_per_epoch: int, lr: float):
    """Per-step LR schedule: cosine, OneCycle (the survey's), multistep (×0.1 at 50%/75%), constant."""
    total = max(epochs * steps_per_epoch, 1)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total)
    if name == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(opt, [total // 2, 3 * total // 4], 0.1)
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    raise ConfigError(f"Unknown schedule {name!r}. Valid: cosine, onecycle, multistep, constant.")


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file, then rename: a kill never leaves a half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fit(model: nn.Module, train: Split, val: Split, *, epochs: int, batch_size: int,
        optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
        schedule: str = "cosine", augment_data: bool = True, seed: int = 0,
        loss_fn: Callable | None = None, select_fn: Callable | None = None,
        sampler_weights: torch.Tensor | None = None, device: str | None = None,
        checkpoint: Path | None = None, progress: bool = True,
        compile_backend: str | None = None) -> dict:
    """Train ``model`` in place and load the best-on-validation weights into it.

    ``loss_fn(model, x, y) -> loss`` replaces the task loss (adversarial training plugs in here);
    ``select_fn(model, val) -> score`` picks the checkpoint (higher is better);
    ``sampler_weights`` (one per training example) turns on weighted sampling with replacement;
    ``checkpoint`` is a ``last.pt`` path: saved after every epoch, resumed from when present.
    ``compile_backend`` (default ``$SURVEY_COMPILE``): a ``torch.compile`` backend for the training
    steps ("1" or "inductor": the default one, e.g. on a GPU; "eager": tracing only, for checks);
    weights, checkpoints and validation are those of the uncompiled ``model``.
    Returns ``{"history": [...], "best_epoch": int, "best_score": float, "seconds": float}``.
    """
    validation.split(train, "the training split")
    validation.split(val, "the validation split")
    seed_everything(seed)
    dev = select_device(device)
    to_device(model, train.x[:1], dev)
    criterion = task_loss(train.info.task)
    loss_fn = loss_fn or (lambda m, xb, yb: criterion(m(xb), yb))
    backend = os.environ.get("SURVEY_COMPILE") if compile_backend is None else compile_backend
    forward = torch.compile(model, backend="inductor" if backend in ("1", "inductor") else backend) \
        if backend else model
    select_fn = select_fn or default_select
    steps = math.ceil(len(train) / batch_size)
    opt = make_optimizer(model, optimizer, lr, weight_decay)
    sched = make_schedule(opt, schedule, epochs, steps, lr)
    state = {"epoch": 0, "history": [], "best_score": -math.inf, "best_epoch": -1,
             "best_state": None, "seconds": 0.0}
    if checkpoint is not None and Path(checkpoint).exists():
        try:
            saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            sched.load_state_dict(saved["scheduler"])
            torch.set_rng_state(saved["rng"])
            state = saved["state"]
        except Exception as exc:  # truncated zip, missing keys, other shapes: many kinds
            raise _corrupt(Path(checkpoint), exc) from None
    bar = tqdm(range(state["epoch"], epochs), desc=f"train {train.info.flag}", disable=not progress,
               initial=state["epoch"], total=epochs, leave=False)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)  # same order after a resume
        if sampler_weights is not None:
            order = torch.multinomial(sampler_weights, len(train), replacement=True, generator=gen)
        else:
            order = torch.randperm(len(train), generator=gen)
        total, seen = 0.0, 0
        for i in range(steps):
            idx = order[i * batch_size:(i + 1) * batch_size]
            xb = to_device(model, train.x[idx], dev)
            yb = train.y[idx].to(dev)
            if augment_data:
                xb, yb_aug = augment(xb, yb if train.info.task == "segmentation" else None)
                yb = yb_aug if yb_aug is not None else yb
            with autocast(dev):
                loss = loss_fn(forward, xb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        score = float(select_fn(model, val))
        state["seconds"] += time.perf_counter() - start
        state["history"].append({"epoch": epoch + 1, "loss": total / seen, "val_score": score,
                                 "lr": sched.get_last_lr()[0], "seconds": state["seconds"]})
        if score > state["best_score"]:
            state.update(best_score=score, best_epoch=epoch + 1,
                         best_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        state["epoch"] = epoch + 1
        bar.set_postfix(loss=f"{total / seen:.3f}", val=f"{score:.3f}", best=f"{state['best_score']:.3f}")
        if checkpoint is not None:
            atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict(), "rng": torch.get_rng_state(),
                         "state": state}, Path(checkpoint))
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    model.eval()
    return {k: state[k] for k in ("history", "best_epoch", "best_score", "seconds")}


# ----------------------------------------------------------------------------- cached runs
def runs_root() -> Path:
    """Where trained models are cached: ``$SURVEY_RUNS_DIR``, else the checkout's ``runs/``."""
    from .paths import runs_dir

    return runs_dir()


def _normalised(value):
    """JSON-able value with integral floats as ints (ε = 2 and 2.0 name the same model)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalised(v) for v in value]
    return value


def config_hash(config: dict) -> str:
    """A short stable hash of a JSON-able configuration (numbers normalised: 2 == 2.0)."""
    import hashlib
    import json

    return hashlib.sha1(json.dumps(_normalised(config), sort_keys=True).encode()).hexdigest()[:12]


TRAINED: list[str] = []  # run folders this process trained (the benchmark's run log counts them)


def _corrupt(path: Path, exc: Exception) -> DataError:
    return DataError(
        f"The cached file {path} is corrupt or truncated ({type(exc).__name__}: {exc}). Delete its "
        f"folder {path.parent} to retrain that model, or run again with --force (force=True), which "
        "retrains from scratch and replaces it.")


def _load_cached(model: nn.Module, weights: Path, record_path: Path):
    import json

    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as exc:
        raise _corrupt(record_path, exc) from None
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as exc:  # truncated zip, wrong keys or shapes: torch raises many kinds
        raise _corrupt(weights, exc) from None
    return model.eval(), record


def cached_run(config: dict, build: Callable[[], nn.Module],
               train_fn: Callable[[nn.Module, Path], dict], force: bool = False, root=None,
               report: Callable[[nn.Module], dict] | None = None):
    """Train once per configuration and data file, then reuse: ``runs/<dataset>/<name>-<hash>/``.

    The hash covers ``config`` (numbers normalised) and the data file's fingerprint
    (:func:`survey_lib.data.fingerprint`, recorded as ``config["data"]``), so a model is never
    resumed nor reused on other data. ``build()`` makes the untrained model; ``train_fn(model,
    last_pt_path)`` trains it in place while the test split is locked
    (:func:`survey_lib.data.lock_test_split`) and returns a JSON-able record; ``report(model)``
    then adds what may look at the test split (test metrics). The folder holds ``model.pt``,
    ``record.json`` and, while training, ``last.pt`` (resume point). One process trains a folder at
    a time (:mod:`survey_lib.claims`); another waits and loads the result. A corrupt cached file
    raises a :class:`~survey_lib.errors.DataError` naming it; ``force`` retrains from scratch.
    Returns ``(model in eval mode, record)``.
    """
    import json

    from .claims import claimed
    from .data import fingerprint, lock_test_split

    config = {**config, "data": fingerprint(config["dataset"], config.get("size", 28), root)}
    folder = runs_root() / config["dataset"] / f"{config['name']}-{config_hash(config)}"
    weights, record_path, last = folder / "model.pt", folder / "record.json", folder / "last.pt"
    model = build()
    if not force and weights.exists() and record_path.exists():
        return _load_cached(model, weights, record_path)
    folder.mkdir(parents=True, exist_ok=True)
    with claimed(folder / "train.claim"):
        if not force and weights.exists() and record_path.exists():  # trained by another process
            return _load_cached(model, weights, record_path)
        if force:  # from scratch: a partial checkpoint (possibly the corrupt file) is discarded
            for stale in (last, folder / "val_log.json"):
                stale.unlink(missing_ok=True)
        with lock_test_split(f"the training of {folder.name}"):
            record = train_fn(model, last)
        record = {"config": _normalised(config), **record, **(report(model) if report else {})}
        atomic_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, weights)
        tmp = record_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, record_path)
        last.unlink(missing_ok=True)
        TRAINED.append(str(folder))
    return model.eval(), record


def class_balanced_weights(split: Split, power: float = 1.0) -> torch.Tensor | None:
    """One sampling weight per example, 1 / (size of its class) ** ``power``: 1 draws every class
    equally often (the seed code's WeightedRandomSampler), 0.5 is square-root balancing, 0 the
    natural frequencies. None for multi-label and segmentation tasks."""
    if split.y.ndim != 1:
        return None
    counts = torch.bincount(split.y, minlength=split.info.num_classes).clamp_min(1).double()
    return counts[split.y] ** -float(power)


def load_dataset(dataset: str, size: int = 28, root=None,
                 splits=("train", "val", "test")) -> dict[str, Split]:
    """The ``splits`` (default train/val/test) of a MedMNIST flag or of ``"ph2"``."""
    from .data import load_ph2, load_splits

    if dataset.lower() == "ph2":
        return {s: load_ph2(s, root) for s in splits}
    return load_splits(dataset, size, root, splits=splits)


def baseline_config(dataset: str, profile, size: int = 28, seed: int | None = None) -> dict:
    """The (hashable) training configuration of an undefended model for ``dataset`` and a profile."""
    from .config import get_profile

    p = get_profile(profile)
    dataset = dataset.lower()
    if dataset == "ph2":
        size = 128  # the PH2 file's resolution
        model, width, epochs, batch = "unet", p.seg_width, p.epochs_seg, p.batch_size_seg
    elif dataset.endswith("3d"):
        model, width, epochs, batch = p.model_3d, None, p.epochs_3d, p.batch_size_3d
    else:
        model, width, epochs, batch = p.model, p.width, p.epochs, p.batch_size
    return {"name": f"nat-{model}", "dataset": dataset, "size": size, "model": model,
            "width": width, "epochs": epochs, "batch_size": batch, "optimizer": p.optimizer,
            "lr": p.lr, "weight_decay": p.weight_decay, "schedule": p.schedule,
            "augment": p.augment, "balanced": p.balanced, "train_subset": p.train_subset,
            "eval_subset": p.eval_subset,
            "seed": p.seed if seed is None else seed, "profile": p.name}


def build_for(config: dict, info) -> nn.Module:
    """The model a configuration names, shaped for the dataset's channels and classes; its initial
    weights are drawn from the configuration's seed."""
    from .models import build_model

    seed_everything(config["seed"])
    return build_model(config["model"], info.n_channels, info.num_classes, config["width"],
                       config["size"])


def test_split(config: dict, root=None) -> Split:
    """The test split a training configuration reports on (its ``eval_subset``, seeded)."""
    test = load_dataset(config["dataset"], config["size"], root, ("test",))["test"]
    return test.subset(config.get("eval_subset"), config["seed"])


def train_recipe(config: dict, loss_fn: Callable | None = None, select_fn: Callable | None = None,
                 build: Callable[[], nn.Module] | None = None, root=None, force: bool = False,
                 progress: bool = True):
    """Train (or load from ``runs/``) the model a configuration describes (see
    :func:`baseline_config`), optionally with another ``loss_fn(model, x, y)`` or checkpoint
    ``select_fn`` (training-time defenses plug in here), on the train split with checkpoints chosen
    on val; once trained, evaluate it on test.

    Returns ``(model, record)``; the record holds the config, val/test metrics, the training history
    and the wall time.
    """
    splits = load_dataset(config["dataset"], config["size"], root, ("train", "val"))
    train = splits["train"].subset(config["train_subset"], config["seed"])
    val = splits["val"].subset(config["eval_subset"], config["seed"])
    balance = config.get("balanced") or 0

    def train_fn(model: nn.Module, last: Path) -> dict:
        start = time.perf_counter()
        out = fit(model, train, val, epochs=config["epochs"], batch_size=config["batch_size"],
                  optimizer=config["optimizer"], lr=config["lr"],
                  weight_decay=config["weight_decay"], schedule=config["schedule"],
                  augment_data=config["augment"], seed=config["seed"], checkpoint=last,
                  loss_fn=loss_fn, select_fn=select_fn, progress=progress,
                  sampler_weights=class_balanced_weights(train, balance) if balance else None)
        return {"val": evaluate(model, val), "wall_seconds": round(time.perf_counter() - start, 1),
                "device": str(select_device()), "torch": torch.__version__, **out}

    return cached_run(config, build or (lambda: build_for(config, train.info)), train_fn, force,
                      root, report=lambda model: {"test": evaluate(model, test_split(config, root))})


def train_baseline(dataset: str, profile=None, size: int = 28, seed: int | None = None,
                   root=None, force: bool = False, progress: bool = True):
    """Train (or load from ``runs/``) the undefended model of a dataset with the profile's recipe;
    ``(model, record)`` as :func:`train_recipe`. The CLI's table and notebook 00 show the record."""
    return train_recipe(baseline_config(dataset, profile, size, seed), root=root, force=force,
                        progress=progress)

"""Adversarial training (survey taxonomy: defenses → adversarial training).

One recipe, :class:`AdversarialTraining`, with a pluggable inner attack and outer loss, each a
``loss_fn(model, x, y)`` for :func:`survey_lib.train.fit`:

- ``pgd_at``: train on PGD examples only (Madry et al., ICLR 2018); also for the PH2 U-Net (outer
  loss Dice + CE, inner PGD on the per-pixel CE);
- ``trades``: CE(clean) + β·KL(p(x) ‖ p(x')), x' maximising the KL (Zhang et al., ICML 2019);
- ``mart``: boosted CE on x' + β·KL weighted by 1 − p_y(x) (Wang et al., ICLR 2020);
- ``hat``: TRADES + γ·CE on helper examples x + h·(x' − x) labelled by a standard (NAT) model's
  prediction on x' (Rade & Moosavi-Dezfooli, ICLR 2022; the seed survey's strongest method);
- ``fast_at``: PGD-AT with one step of α = 1.25ε from a uniform random start, i.e. FGSM with random
  start (Wong, Rice & Kolter, ICLR 2020).

The inner maximisation uses the package's :class:`~survey_lib.attacks.PGD`, so, like every attack,
it runs the model in **eval mode** (BatchNorm uses and keeps its running statistics; the standard
choice of the reference implementations of TRADES/MART/HAT) and restores train mode for the outer
step. Each batch draws a fresh random start. The checkpoint kept is the one with the best *robust
balanced accuracy* (PGD on the validation split; robust Dice for segmentation) — never the test
split — which is also the early stopping that guards fast AT against catastrophic overfitting.
The per-epoch validation log (clean/robust acc, bACC, prediction shares, collapse) is in the record.

Imbalanced data collapse (BreastMNIST at 8/255: the model answers "benign" for everything, ACC =
majority rate, bACC 0.5). Remedies: ``balanced=True`` (class-balanced sampling), a smaller ε, and
an ε warm-up (``eps_schedule``, one ε per epoch, see :func:`warmup`).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import validation
from ..attacks import PGD
from ..config import get_profile
from ..errors import ConfigError, DataError
from ..evaluate import robust_metrics
from ..losses import task_loss
from ..train import (
    baseline_config,
    build_for,
    cached_run,
    class_balanced_weights,
    config_hash,
    evaluate,
    fit,
    load_dataset,
    select_device,
    test_split,
    train_baseline,
)

METHODS = ("pgd_at", "trades", "mart", "hat", "fast_at")
CLASSIFICATION_ONLY = ("trades", "mart", "hat", "fast_at")
PAPER_STEP = {1: 0.5, 2: 0.5, 4: 1.0, 8: 2.0}  # the survey's PGD step (/255) for each ε (/255)

# How much each profile spends: AT epochs (None: the profile's; a dict: per dataset), class-balanced
# sampling (a dict per dataset; absent: the profile's), inner PGD steps, PGD steps and validation
# examples for checkpoint selection, PGD steps of the test evaluation. The cpu budget fits the 2-core
# CPU (PGD-5 inner attack, step 2.5ε/5); its epochs and balancing were chosen on the validation split
# (benchmarks/at_budget: BreastMNIST at 8/255 needs 30 epochs with every class drawn equally often
# to stop collapsing in every seed; the PH2 U-Net's validation robust Dice still rises from 10 to 30
# epochs).
BUDGETS = {
    "smoke": {"epochs": 1, "steps": 2, "select_steps": 2, "select_subset": 64, "eval_steps": 5},
    "cpu": {"epochs": {"breastmnist": 30, "ph2": 30, "default": 4},
            "balanced": {"breastmnist": 1.0}, "steps": 5,
            "select_steps": 10, "select_subset": 256, "eval_steps": 20},
    "paper": {"epochs": None, "steps": 10, "select_steps": 10, "select_subset": None,
              "eval_steps": 20},
}


def inner_step(eps: float, steps: int) -> float:
    """The inner PGD step (/255): the survey's table for PGD-10, else Madry's 2.5ε/steps."""
    return PAPER_STEP[eps] if steps == 10 and eps in PAPER_STEP else 2.5 * eps / steps


def warmup(eps: float, epochs: int, warmup_epochs: int) -> tuple[float, ...]:
    """A per-epoch ε schedule rising linearly to ``eps`` over ``warmup_epochs``, then constant."""
    if not 0 <= warmup_epochs <= epochs:
        raise ConfigError(f"warm-up of {warmup_epochs} epochs does not fit in {epochs} epochs; "
                          "use 0 ≤ warmup_epochs ≤ epochs.")
    return tuple(round(eps * min(1.0, (e + 1) / (warmup_epochs + 1)), 4) if warmup_epochs else eps
                 for e in range(epochs))


class KLPGD(PGD):
    """PGD ascending KL(p(x) ‖ p(x')) from x + 0.001·N(0, I): the inner maximisation of TRADES and
    HAT (Zhang et al. 2019). The labels passed in are ignored; the targets are the clean
    probabilities of the model (in eval mode, as the attack runs). Only the loss differs from PGD."""

    name = "pgd_kl"

    def perturb(self, model, x, y):
        with torch.no_grad():
            p_clean = torch.softmax(model(x).float(), dim=1)
        return super().perturb(model, x, p_clean)

    def grad_and_logits(self, model, x, p_clean):
        """(input gradient of the summed KL to ``p_clean``, the logits of that forward pass)."""
        x = x.detach().requires_grad_(True)
        logits = model(x)
        loss = F.kl_div(F.log_softmax(logits.float(), dim=1), p_clean, reduction="sum")
        return torch.autograd.grad(loss, x)[0], logits.detach()

    def grad(self, model, x, p_clean):
        return self.grad_and_logits(model, x, p_clean)[0]

    def _random_start(self, x, gen):
        return self.project(x + 0.001 * torch.randn(x.shape, generator=gen).to(x.device), x)


def kl(logits_adv: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Batch-mean KL(p(x) ‖ p(x')), the TRADES regulariser."""
    return F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits, 1), reduction="batchmean")


def require_classification(method: str, task: str, what: str) -> None:
    """ConfigError when a classification-only method meets a segmentation or multi-label task."""
    if method in CLASSIFICATION_ONLY and (task == "segmentation" or task.startswith("multi-label")):
        raise ConfigError(f"{method} is defined for single-label classification only (its loss needs "
                          f"class probabilities), but {what} is a {task} task. Use method='pgd_at' "
                          "(e.g. for the PH2 U-Net), or a MedMNIST classification dataset.")


class AdversarialLoss:
    """``loss_fn(model, x, y)`` for :func:`fit`: runs the inner attack (fresh random start per
    batch, ε from the per-epoch schedule), then the outer loss of ``method``."""

    def __init__(self, method: str, attack: PGD, task: str, eps_schedule=None,
                 steps_per_epoch: int = 1, start_epoch: int = 0, beta: float = 6.0,
                 h: float = 3.5, gamma: float = 1.0, helper: nn.Module | None = None):
        require_classification(method, task, "this model")
        self.method, self.attack, self.criterion = method, attack, task_loss(task)
        self.schedule, self.steps_per_epoch = eps_schedule, steps_per_epoch
        self.step = start_epoch * steps_per_epoch  # so a resumed run continues the ε schedule
        self.ratio = attack.step_size / attack.eps
        self.beta, self.h, self.gamma, self.helper = beta, h, gamma, helper

    def perturb(self, model, x, y):
        if self.schedule is not None:
            eps = self.schedule[min(self.step // self.steps_per_epoch, len(self.schedule) - 1)]
            self.attack.eps, self.attack.step_size = eps / 255, self.ratio * eps / 255
        self.step += 1
        self.attack.seed = int(torch.randint(2**31 - 1, (1,)))  # from fit's seeded RNG: resumable
        return x.detach() if self.attack.eps == 0 else self.attack(model, x, y)

    def __call__(self, model, x, y):
        x_adv = self.perturb(model, x, y)
        if self.method in ("pgd_at", "fast_at"):
            return self.criterion(model(x_adv), y)
        y = y.view(-1)
        logits, logits_adv = model(x).float(), model(x_adv).float()
        if self.method == "trades":
            return F.cross_entropy(logits, y) + self.beta * kl(logits_adv, logits)
        if self.method == "mart":
            p_adv, p = F.softmax(logits_adv, 1), F.softmax(logits, 1)
            top2 = p_adv.topk(2, dim=1).indices
            other = torch.where(top2[:, 0] == y, top2[:, 1], top2[:, 0])  # strongest wrong class
            bce = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), other)
            weight = 1.0000001 - p.gather(1, y[:, None]).squeeze(1)
            div = F.kl_div(torch.log(p_adv + 1e-12), p, reduction="none").sum(1)
            return bce + self.beta * (div * weight).mean()
        # hat: helper examples beyond the ε-ball (not clipped to [0, 1], as in the reference code),
        # labelled by the standard model on x'
        x_help = x + self.h * (x_adv - x)
        with torch.no_grad():
            y_help = self.helper(x_adv).argmax(1)
        return (F.cross_entropy(logits, y) + self.beta * kl(logits_adv, logits)
                + self.gamma * F.cross_entropy(model(x_help).float(), y_help))


class RobustSelector:
    """``select_fn`` for :func:`fit`: robust balanced accuracy (robust Dice for segmentation)
    under PGD on the validation split. Logs clean/robust metrics per epoch to ``log_path``."""

    def __init__(self, attack: PGD, log_path: Path | None = None, start_epoch: int = 0):
        self.attack, self.log_path = attack, log_path
        self.log = json.loads(log_path.read_text())[:start_epoch] if (
            log_path and log_path.exists()) else []

    def __call__(self, model, val):
        start = time.perf_counter()
        clean, adv = evaluate(model, val), robust_metrics(model, val, self.attack)
        key = "dice" if "dice" in adv else "bacc"
        entry = {"epoch": len(self.log) + 1, **{f"clean_{k}": v for k, v in clean.items()},
                 **{f"adv_{k}": v for k, v in adv.items() if k not in ("seconds", "attack")},
                 "select_seconds": round(time.perf_counter() - start, 2)}
        self.log.append(entry)
        if self.log_path:
            tmp = self.log_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.log))
            os.replace(tmp, self.log_path)
        return adv[key]


def overfitting_epochs(log: list[dict], drop: float = 0.2) -> list[int]:
    """Epochs whose robust validation score fell ≥ ``drop`` below the best earlier epoch: the
    signature of catastrophic overfitting (Wong et al. 2020; PGD accuracy collapses in an epoch)."""
    key = "adv_dice" if log and "adv_dice" in log[0] else "adv_bacc"
    best, out = -math.inf, []
    for entry in log:
        if entry[key] <= best - drop:
            out.append(entry["epoch"])
        best = max(best, entry[key])
    return out


@dataclass(frozen=True)
class AdversarialTraining:
    """The adversarial-training recipe. ε and step sizes in /255 units; ``None`` fields take the
    profile's budget (:data:`BUDGETS`): ``steps`` inner PGD steps, ``epochs``, ``balanced``
    sampling (the profile's ``balanced`` flag, else off), ``seed`` (the profile's).
    ``eps_schedule``: one ε per epoch."""

    method: str = "pgd_at"
    eps: float = 8
    steps: int | None = None
    step_size: float | None = None
    beta: float = 6.0
    h: float = 3.5
    gamma: float = 1.0
    epochs: int | None = None
    eps_schedule: tuple | None = None
    balanced: bool | None = None
    seed: int | None = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"Unknown adversarial training {self.method!r}. Valid: "
                              f"{', '.join(METHODS)}.")
        for name in ("beta", "h", "gamma"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{self.method}: {name} must be ≥ 0 (got {getattr(self, name)}); "
                                  "the survey's setting is β = 6, h = 3.5, γ = 1.")
        validation.linf_eps(self.eps, self.method)

    def resolve(self, dataset: str, profile) -> dict:
        """The full, hashable training configuration for a dataset and a profile."""
        p = get_profile(profile)
        budget = BUDGETS.get(p.name, BUDGETS["cpu"])
        config = baseline_config(dataset, p, seed=self.seed)
        if config["dataset"] == "ph2":
            require_classification(self.method, "segmentation", "ph2")
        epochs = budget["epochs"]
        if isinstance(epochs, dict):
            epochs = epochs.get(config["dataset"], epochs["default"])
        epochs = self.epochs or epochs or config["epochs"]
        steps = 1 if self.method == "fast_at" else (self.steps or budget["steps"])
        step = 1.25 * self.eps if self.method == "fast_at" else (
            self.step_size or inner_step(self.eps, steps))
        schedule = tuple(self.eps_schedule) if self.eps_schedule is not None else None
        if schedule is not None and (len(schedule) != epochs or max(schedule) > self.eps
                                     or min(schedule) < 0):
            raise ConfigError(f"{self.method}: the ε schedule {schedule} must give one ε per epoch "
                              f"({epochs} epochs), each in [0, ε={self.eps}]; got {len(schedule)} "
                              f"values. Build one with warmup(eps, epochs, warmup_epochs).")
        balanced = self.balanced if self.balanced is not None else budget.get("balanced", {}).get(
            config["dataset"], config.get("balanced", False))
        config.update(name=f"{self.method}-{config['model']}", defense=self.method, eps=self.eps,
                      steps=steps, step_size=round(step, 4), epochs=epochs, eps_schedule=schedule,
                      balanced=balanced, select_steps=budget["select_steps"],
                      select_subset=budget["select_subset"], eval_steps=budget["eval_steps"])
        if self.method in ("trades", "mart", "hat"):
            config["beta"] = self.beta
        if self.method == "hat":  # the helper is the NAT model of train_baseline: name its recipe
            config.update(h=self.h, gamma=self.gamma,
                          helper=config_hash(baseline_config(dataset, p, seed=self.seed)))
        return config

    def train(self, dataset: str, profile=None, force: bool = False, progress: bool = True):
        """Train (or load from ``runs/``) the defended model; returns ``(model, record)`` with
        clean and PGD test metrics (bACC, shares, collapse flag) and the per-epoch validation log."""
        config = self.resolve(dataset, profile)
        train, val = training_splits(config)
        helper = train_baseline(dataset, profile, seed=self.seed, progress=progress)[0] \
            if self.method == "hat" else None
        return cached_run(config, lambda: build_for(config, train.info),
                          lambda model, last: run_training(config, model, last, train, val,
                                                           helper, progress), force,
                          report=lambda model: test_report(config, model))


def training_splits(config: dict):
    """The (train, val) splits a configuration trains on (its subsets, seeded)."""
    splits = load_dataset(config["dataset"], config["size"], splits=("train", "val"))
    return (splits["train"].subset(config["train_subset"], config["seed"]),
            splits["val"].subset(config["eval_subset"], config["seed"]))


def test_report(config: dict, model: nn.Module) -> dict:
    """After training: clean and PGD (``eval_steps``, the training ε) metrics on the test split."""
    test = test_split(config)
    return {"test": evaluate(model, test),
            "test_adv": robust_metrics(model, test, PGD(eps=config["eps"], steps=config["eval_steps"]))}


def _saved_epoch(last: Path) -> int:
    if not last.exists():
        return 0
    try:
        return torch.load(last, map_location="cpu", weights_only=False)["state"]["epoch"]
    except Exception as exc:  # a truncated or foreign file
        raise DataError(f"The checkpoint {last} is corrupt or truncated ({type(exc).__name__}). "
                        f"Delete it to retrain from scratch, or pass force=True (--force).") from None


def run_training(config: dict, model: nn.Module, last: Path, train, val,
                 helper: nn.Module | None = None, progress: bool = True) -> dict:
    """The train_fn of :meth:`AdversarialTraining.train` (resumable from ``last``)."""
    start, epoch0 = time.perf_counter(), _saved_epoch(last)
    eps, attack_cls = config["eps"], KLPGD if config["defense"] in ("trades", "hat") else PGD
    attack = attack_cls(eps=eps, steps=config["steps"], step_size=config["step_size"])
    loss = AdversarialLoss(config["defense"], attack, train.info.task, config["eps_schedule"],
                           math.ceil(len(train) / config["batch_size"]), epoch0,
                           config.get("beta", 6.0), config.get("h", 3.5), config.get("gamma", 1.0),
                           helper.to(select_device()).eval() if helper is not None else None)
    selector = RobustSelector(PGD(eps=eps, steps=config["select_steps"]),
                              last.with_name("val_log.json"), epoch0)
    out = fit(model, train, val.subset(config["select_subset"], config["seed"]),
              epochs=config["epochs"], batch_size=config["batch_size"],
              optimizer=config["optimizer"], lr=config["lr"], weight_decay=config["weight_decay"],
              schedule=config["schedule"], augment_data=config["augment"], seed=config["seed"],
              loss_fn=loss, select_fn=selector, checkpoint=last, progress=progress,
              sampler_weights=class_balanced_weights(train, float(config["balanced"]))
              if config["balanced"] else None)
    select_seconds = sum(e["select_seconds"] for e in selector.log)
    return {"val": evaluate(model, val), **out, "val_log": selector.log,
            "train_seconds": round(out["seconds"] - select_seconds, 1),
            "overfitting_epochs": overfitting_epochs(selector.log),
            "collapsed_epochs": [e["epoch"] for e in selector.log
                                 if e.get("clean_collapsed") or e.get("adv_collapsed")],
            "wall_seconds": round(time.perf_counter() - start, 1), "device": str(select_device())}


def train_adversarial(dataset: str, method: str = "pgd_at", profile=None, force: bool = False,
                      progress: bool = True, **kwargs):
    """Shortcut: ``AdversarialTraining(method, **kwargs).train(dataset, profile)``."""
    return AdversarialTraining(method, **kwargs).train(dataset, profile, force, progress)


def nat_reference(dataset: str, profile=None, eps: float = 8, progress: bool = True):
    """The undefended (NAT) model of ``train_baseline`` evaluated like the defended ones: clean
    and PGD test metrics at ``eps`` (cached as a run named ``nat-eval``). Returns (model, record)."""
    p = get_profile(profile)
    nat, nat_record = train_baseline(dataset, p, progress=progress)
    config = {**nat_record["config"], "name": f"nat-eval-{nat_record['config']['model']}",
              "defense": "nat", "eps": eps, "eval_steps": BUDGETS.get(p.name, BUDGETS["cpu"])["eval_steps"]}

    def train_fn(model, last):
        return {k: nat_record[k] for k in ("val", "history", "wall_seconds")}

    return cached_run(config, lambda: copy.deepcopy(nat), train_fn,
                      report=lambda model: test_report(config, model))


def grid(profile=None) -> list[tuple[str, str, dict]]:
    """The (dataset, method, options) runs of notebook 05 and ``benchmarks/defenses_at_cpu.py``:
    BreastMNIST at 8/255 without class balancing (the collapse), all five methods at 2/255 with
    balancing, then the remedies at 8/255 (balancing, ε warm-up); then (not in ``smoke``, which
    must run in seconds) all five at 8/255 on PneumoniaMNIST, PGD-AT on AdrenalMNIST3D and on the PH2
    U-Net (8/255)."""
    p = get_profile(profile)
    epochs = AdversarialTraining(eps=8).resolve("breastmnist", p)["epochs"]
    runs = [("breastmnist", "pgd_at", {"eps": 8, "balanced": False})]
    runs += [("breastmnist", m, {"eps": 2, "balanced": True}) for m in METHODS]
    runs += [("breastmnist", m, {"eps": 8, "balanced": False}) for m in ("fast_at", "trades")]
    runs += [("breastmnist", "pgd_at", {"eps": 8, "balanced": True}),
             ("breastmnist", "pgd_at", {"eps": 8, "balanced": True,
                                        "eps_schedule": warmup(8, epochs, epochs // 2)})]
    if p.name == "smoke":
        return [r for r in runs if r[1] != "trades" or r[2]["eps"] == 2]
    runs += [("pneumoniamnist", m, {"eps": 8}) for m in METHODS]
    return runs + [("adrenalmnist3d", "pgd_at", {"eps": 8}), ("ph2", "pgd_at", {"eps": 8})]


def summary(record: dict) -> dict:
    """One flat table row of a run's record: clean and PGD test metrics (ACC, bACC, AUC or Dice,
    prediction shares, collapse flag), training cost and the per-epoch robust validation score."""
    c, log = record["config"], record.get("val_log", [])
    out = {"dataset": c["dataset"], "method": c.get("defense", "nat"), "eps": c["eps"],
           "balanced": c.get("balanced"), "warmup": bool(c.get("eps_schedule")),
           "epochs": c["epochs"], "inner_steps": c.get("steps"), "best_epoch": record.get("best_epoch")}
    for prefix, m in (("clean", record["test"]), ("pgd", record["test_adv"])):
        out.update({f"{prefix}_{k}": round(m[k], 4) for k in ("acc", "bacc", "auc", "dice") if k in m})
        if "shares" in m:
            out[f"{prefix}_shares"] = "/".join(f"{s:.2f}" for s in m["shares"])
            out[f"{prefix}_collapsed"] = m["collapsed"]
    out["eval_attack"] = record["test_adv"]["attack"]
    out["train_s"] = record.get("train_seconds", record.get("wall_seconds"))
    out["s_per_epoch"] = round(out["train_s"] / c["epochs"], 1) if out["train_s"] else None
    out["overfit_epochs"] = " ".join(map(str, record.get("overfitting_epochs", [])))
    out["collapsed_epochs"] = " ".join(map(str, record.get("collapsed_epochs", [])))
    out["val_robust_by_epoch"] = " ".join(f"{e.get('adv_bacc', e.get('adv_dice')):.2f}" for e in log)
    return out

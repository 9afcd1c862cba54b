"""Robust evaluation: metrics of a model on attacked inputs, always with balanced accuracy,
per-class prediction shares, the collapse flag and AUC beside plain accuracy.

- :func:`robust_metrics`: clean or attacked metrics of one model on one split (also Dice/IoU for
  segmentation, mean queries per image for query-based attacks, per-stage counts for the cascade);
- :func:`cascade_metrics`: the standard AutoAttack (or AA-lite, given budgets) at one ε;
- :func:`pick_examples`: the images a single-example demo shows: drawn (seeded) among those the
  model gets right with high confidence, so an attack has something to change;
- :func:`sanity_checks`: the usual signs of gradient masking (Carlini et al. 2019, "On evaluating
  adversarial robustness"; Athalye et al., ICML 2018), each a pass/fail line with its numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from . import validation
from .data import Split
from .errors import ConfigError, DataError
from .metrics import classification_metrics, dice_iou, predictions
from .train import evaluation_autocast, predict, select_device, to_device


def attack_split(model: nn.Module, split: Split, attack, batch_size: int = 256,
                 progress: bool = False, precision: str | None = None) -> torch.Tensor:
    """Adversarial versions of every image of ``split`` (batched, on the model's device), on the CPU.
    Attacks run in fp32 unless ``precision="bf16"`` (:func:`~survey_lib.train.evaluation_autocast`);
    channels_last inputs. Sets ``attack.total_queries`` (summed over batches) and, for the
    cascade, ``attack.total_stages``."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    out, queries, stages = [], 0, {}
    for i in tqdm(range(0, len(split), batch_size), desc=getattr(attack, "name", "attack"),
                  disable=not progress, leave=False):
        x = to_device(model, split.x[i:i + batch_size], device)
        y = split.y[i:i + batch_size].to(device)
        with evaluation_autocast(device, precision):
            out.append(attack(model, x, y).float().cpu())
        queries += getattr(attack, "queries", 0)
        for name, robust in getattr(attack, "stages", []):
            stages[name] = stages.get(name, 0) + robust
    attack.total_queries, attack.total_stages = queries, stages
    return torch.cat(out)


def robust_metrics(model: nn.Module, split: Split, attack=None, batch_size: int = 256,
                   progress: bool = False, keep_predictions: bool = False,
                   precision: str | None = None) -> dict:
    """Metrics on clean inputs (``attack=None``) or on ``attack``'s adversarial examples.

    Classification: acc, bacc, macro precision/recall/F1, auc, shares, collapsed, below_majority,
    n; segmentation: dice, iou, n. The AUC is left out (None, with ``auc_note``) for an attack
    whose scores are not the full attack's (early stopping, query attacks that stop on success,
    cascades): their accuracy is right, their scores are not. Adds ``seconds`` (attack +
    evaluation wall time) and ``attack`` (its configuration string); ``queries`` (mean per image)
    for a black-box attack or the cascade's Square stage; ``stages`` (robust accuracy after each
    stage) for the cascade; with ``keep_predictions`` the per-image predictions (``pred``) or
    Dice (``dice_per_image``). ``precision``: see :func:`survey_lib.train.evaluation_autocast`
    (fp32 unless asked).
    """
    validation.split(split)
    model.to(select_device())
    start = time.perf_counter()
    x = split.x if attack is None else attack_split(model, split, attack, batch_size, progress,
                                                     precision)
    logits = predict(model, x, batch_size, precision=precision)
    if split.info.task == "segmentation":
        m = dice_iou(logits, split.y, keep_per_image=keep_predictions)
    else:
        m = classification_metrics(logits, split.y, split.info.task, split.info.num_classes,
                                   keep_predictions)
        if attack is not None and not attack.full_scores:
            m["auc"], m["auc_note"] = None, "not computed: the attack stops early on fooled images"
    m["seconds"] = round(time.perf_counter() - start, 2)
    m["attack"] = "clean" if attack is None else repr(attack)
    if attack is not None and (getattr(attack, "black_box", False) or attack.total_queries):
        m["queries"] = round(attack.total_queries / max(len(split), 1), 1)
    if attack is not None and attack.total_stages:
        m["stages"] = {k: round(v / len(split), 4) for k, v in attack.total_stages.items()}
    return m


def cascade_metrics(model: nn.Module, split: Split, eps: float = 8, steps: int | None = None,
                    square_queries: int | None = None, batch_size: int = 256, seed: int = 0) -> dict:
    """Robust metrics under the standard AutoAttack at ε (/255): APGD-CE, APGD-T, FAB-T, Square,
    each on the points still robust (see :mod:`survey_lib.attacks.autoattack` for K < 4). Given
    ``steps`` or ``square_queries``, the reduced cascade AA-lite with those budgets instead (its
    other budgets are AA-lite's defaults); ``attack`` names which ran. ``stages`` holds the robust
    accuracy after each stage."""
    from .attacks import AALite, AutoAttack

    if steps is None and square_queries is None:
        attack = AutoAttack(eps=eps, seed=seed)
    else:
        budgets = {k: v for k, v in (("steps", steps), ("square_queries", square_queries))
                   if v is not None}
        attack = AALite(eps=eps, seed=seed, **budgets)
    return robust_metrics(model, split, attack, batch_size)


@dataclass(frozen=True)
class Pick:
    """Images chosen for a demo: ``indices`` into the split, their ``scores`` (p(true class), or
    Dice for segmentation) and ``rule``, a sentence for the caption saying how they were chosen."""

    indices: list[int]
    scores: list[float]
    rule: str


def pick_examples(model: nn.Module, split: Split, n: int = 1, seed: int = 0, top: float = 0.5,
                  batch_size: int = 256) -> Pick:
    """``n`` images for a single-example demo, drawn with ``seed`` among the correctly classified
    images of ``split`` whose probability of the true class is in the ``top`` fraction (of the
    correct ones); for segmentation, among the ``top`` fraction by per-image Dice.
    A demo on an image the model already gets wrong shows nothing: every attack "succeeds" with a
    zero perturbation. Raises :class:`~survey_lib.errors.DataError` when fewer than ``n`` qualify."""
    task = split.info.task
    if task.startswith("multi-label"):
        raise ConfigError(f"pick_examples needs a single-label or segmentation task; {split.info.flag} "
                          f"is {task}. Pick the images by hand (indices into the split).")
    if not 0 < top <= 1:
        raise ConfigError(f"top is a fraction in (0, 1]; got {top}.")
    logits = predict(model, split.x, batch_size)
    if task == "segmentation":
        score = torch.tensor(dice_iou(logits, split.y, keep_per_image=True)["dice_per_image"])
        ok = torch.ones_like(score, dtype=torch.bool)
        what = f"the model segments best (the top {top:.0%} by per-image Dice)"
    else:
        y = split.y.view(-1)
        score = torch.softmax(logits, 1).gather(1, y.view(-1, 1))[:, 0]
        ok = torch.as_tensor(predictions(logits, task)) == y
        what = (f"the model classifies correctly with the highest confidence (the top {top:.0%} of "
                "the correct ones by p(true class))")
    candidates = torch.nonzero(ok).view(-1)
    candidates = candidates[score[candidates].argsort(descending=True)]
    candidates = candidates[:max(n, round(top * len(candidates)))]
    if len(candidates) < n:
        raise DataError(f"Only {len(candidates)} of the {len(split)} {split.info.flag} images qualify "
                        f"for a demo (images {what}), fewer than the {n} asked for: the model "
                        "gets too few right. Use a trained model (see notebook 00) or a larger split.")
    gen = torch.Generator().manual_seed(seed)
    chosen = candidates[torch.randperm(len(candidates), generator=gen)[:n]].sort().values.tolist()
    rule = f"drawn (seed {seed}) among the {len(candidates)} of {len(split)} {split.info.flag} images {what}"
    return Pick(chosen, [round(float(score[i]), 4) for i in chosen], rule)


def sanity_checks(model: nn.Module, split: Split, eps_grid=(1, 2, 4, 8), steps_grid=(1, 5, 20),
                  huge_eps: float = 128, black_box_queries: int = 300, tol: float = 0.01,
                  batch_size: int = 256) -> list[dict]:
    """Gradient-masking checks on a classifier, each ``{"check", "passed", "detail"}``:

    accuracy non-increasing in ε (PGD-10) and in steps (PGD at the largest ε); about 0 at a huge ε
    (PGD-50 with 4/255 steps, ≤ 5%, meaningful for an undefended model); PGD ≤ FGSM; white-box
    PGD ≤ black-box Square at the largest ε. ``tol`` absorbs ties of a few images.
    """
    from .attacks import FGSM, PGD, Square

    def acc(attack) -> float:
        return robust_metrics(model, split, attack, batch_size)["acc"]

    top = max(eps_grid)
    by_eps = [acc(PGD(eps=e, steps=10)) for e in eps_grid]
    by_steps = [acc(PGD(eps=top, steps=s)) for s in steps_grid]
    huge = acc(PGD(eps=huge_eps, steps=50, step_size=4))  # small fixed steps: 2.5ε/k would overshoot
    fgsm, square = acc(FGSM(eps=top)), acc(Square(eps=top, steps=black_box_queries))
    pgd = by_eps[-1]

    def monotone(values) -> bool:
        return all(b <= a + tol for a, b in zip(values, values[1:]))

    return [
        {"check": "accuracy non-increasing in ε", "passed": monotone(by_eps),
         "detail": dict(zip(eps_grid, by_eps))},
        {"check": "accuracy non-increasing in steps", "passed": monotone(by_steps),
         "detail": dict(zip(steps_grid, by_steps))},
        {"check": f"accuracy ≈ 0 at ε = {huge_eps:g}/255", "passed": huge <= 0.05, "detail": huge},
        {"check": "PGD ≤ FGSM", "passed": pgd <= fgsm + tol, "detail": {"pgd": pgd, "fgsm": fgsm}},
        {"check": "white-box ≤ black-box", "passed": pgd <= square + tol,
         "detail": {"pgd": pgd, "square": square}},
    ]


def sweep(model: nn.Module, split: Split, attack: str, param: str, values, label: str = "",
          batch_size: int = 256, **kwargs):
    """Robust metrics of ``make_attack(attack, **{param: v}, **kwargs)`` for each value ``v`` (an
    accuracy-vs-ε curve, accuracy vs steps, success vs query budget, Dice vs ε): one row per value
    with the attack, the value, every metric, and the mean queries per image where counted."""
    import pandas as pd

    from .attacks import make_attack

    rows = []
    for v in values:
        m = robust_metrics(model, split, make_attack(attack, **{param: v}, **kwargs), batch_size)
        rows.append({"model": label, "attack": attack, param: v,
                     **{k: m[k] for k in m if k not in ("attack", "stages")}})
    return pd.DataFrame(rows)

"""Robust evaluation: metrics of a model on attacked inputs, always with balanced accuracy,
per-class prediction shares, the collapse flag and AUC beside plain accuracy."""

from __future__ import annotations

import time

import torch
from torch import nn

from .data import Split
from .metrics import classification_metrics, dice_iou
from .train import predict, select_device


def attack_split(model: nn.Module, split: Split, attack, batch_size: int = 256,
                 progress: bool = False) -> torch.Tensor:
    """Adversarial versions of every image of ``split`` (batched, on the model's device), on the CPU."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    out = []
    for i in tqdm(range(0, len(split), batch_size), desc=getattr(attack, "name", "attack"),
                  disable=not progress, leave=False):
        x = split.x[i:i + batch_size].to(device)
        y = split.y[i:i + batch_size].to(device)
        out.append(attack(model, x, y).cpu())
    return torch.cat(out)


def robust_metrics(model: nn.Module, split: Split, attack=None, batch_size: int = 256,
                   progress: bool = False) -> dict:
    """Metrics on clean inputs (``attack=None``) or on ``attack``'s adversarial examples.

    Classification: acc, auc, bacc, shares, collapsed, n; segmentation: dice, iou, n. Adds
    ``seconds`` (attack + evaluation wall time) and ``attack`` (its repr).
    """
    model.to(select_device())
    start = time.perf_counter()
    x = split.x if attack is None else attack_split(model, split, attack, batch_size, progress)
    logits = predict(model, x, batch_size)
    if split.info.task == "segmentation":
        m = dice_iou(logits, split.y)
    else:
        m = classification_metrics(logits, split.y, split.info.task, split.info.num_classes)
    m["seconds"] = round(time.perf_counter() - start, 2)
    m["attack"] = "clean" if attack is None else repr(attack)
    return m

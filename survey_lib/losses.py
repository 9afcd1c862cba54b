"""Losses shared by training and attacks (a low layer: both ``train`` and ``attacks`` import it).

- :func:`task_loss`: the natural training loss of a task: cross-entropy (single-label),
  BCE-with-logits (multi-label), Dice + cross-entropy (segmentation);
- :func:`dice_loss`: the soft Dice loss of the lesion map (Milletari et al., 3DV 2016), also the loss
  a segmentation attack ascends.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def dice_loss(logits: torch.Tensor, masks: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss of the lesion channel (Milletari et al. 2016)."""
    p = torch.softmax(logits.float(), dim=1)[:, 1]
    t = masks.float()
    inter = (p * t).flatten(1).sum(1)
    return 1 - ((2 * inter + eps) / (p.flatten(1).sum(1) + t.flatten(1).sum(1) + eps)).mean()


def task_loss(task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The natural loss of a task: CE, BCE-with-logits (multi-label) or Dice + CE (segmentation)."""
    if task == "segmentation":
        return lambda logits, y: F.cross_entropy(logits.float(), y) + dice_loss(logits, y)
    if task.startswith("multi-label"):
        return lambda logits, y: F.binary_cross_entropy_with_logits(logits.float(), y.float())
    return lambda logits, y: F.cross_entropy(logits.float(), y.view(-1))

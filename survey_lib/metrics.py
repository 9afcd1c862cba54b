"""Metrics that do not lie on imbalanced medical data.

ACC and AUC are MedMNIST's own (``medmnist.evaluator.getACC/getAUC``, Yang et al. 2023); beside them
we always report balanced accuracy (mean per-class recall) and the share of predictions per class,
and flag a model as *collapsed* when ≥ 95% of its predictions fall in one class: on BreastMNIST a
model that always answers "benign" scores ACC 0.73 with balanced accuracy 0.50. Dice and IoU are for
segmentation.
"""

from __future__ import annotations

import numpy as np
import torch

COLLAPSE_SHARE = 0.95


def scores_from_logits(logits: torch.Tensor, multi_label: bool = False) -> np.ndarray:
    """Class scores as MedMNIST's evaluator expects them: softmax, or sigmoid for multi-label."""
    logits = logits.detach().float().cpu()
    return (torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=1)).numpy()


def predictions(logits: torch.Tensor, task: str) -> np.ndarray:
    """Predicted labels, with MedMNIST's rules (binary: p(class 1) > 0.5; multi-label: per label)."""
    score = scores_from_logits(logits, task.startswith("multi-label"))
    if task.startswith("multi-label"):
        return (score > 0.5).astype(np.int64)
    if task == "binary-class":
        return (score[:, -1] > 0.5).astype(np.int64)
    return score.argmax(axis=1)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Mean recall over the classes present in ``y_true``."""
    recalls = [np.mean(y_pred[y_true == c] == c) for c in range(num_classes) if np.any(y_true == c)]
    return float(np.mean(recalls))


def prediction_shares(y_pred: np.ndarray, num_classes: int) -> list[float]:
    """Fraction of predictions that fall in each class."""
    counts = np.bincount(y_pred.reshape(-1), minlength=num_classes)[:num_classes]
    return (counts / max(len(y_pred), 1)).round(4).tolist()


def classification_metrics(logits: torch.Tensor, y: torch.Tensor, task: str,
                           num_classes: int) -> dict:
    """ACC, AUC (MedMNIST), balanced ACC, per-class prediction shares and the collapse flag."""
    from medmnist.evaluator import getACC, getAUC

    multi_label = task.startswith("multi-label")
    score = scores_from_logits(logits, multi_label)
    y_true = y.detach().cpu().numpy()
    acc = float(getACC(y_true, score, task))
    try:
        auc = float(getAUC(y_true, score, task))
    except ValueError:  # a split (or subset) that lacks a class has no AUC
        auc = float("nan")
    out = {"acc": acc, "auc": auc, "n": len(y_true)}
    if multi_label:  # per-label metrics: balanced accuracy averaged over labels
        y_pred = predictions(logits, task)
        out["bacc"] = float(np.mean([balanced_accuracy(y_true[:, i].astype(int), y_pred[:, i], 2)
                                     for i in range(y_true.shape[1])]))
        out["shares"] = y_pred.mean(axis=0).round(4).tolist()
        out["collapsed"] = False
        return out
    y_pred = predictions(logits, task)
    shares = prediction_shares(y_pred, num_classes)
    out["bacc"] = balanced_accuracy(y_true, y_pred, num_classes)
    out["shares"] = shares
    out["collapsed"] = bool(max(shares) >= COLLAPSE_SHARE)
    return out


def dice_iou(logits: torch.Tensor, masks: torch.Tensor, eps: float = 1e-7) -> dict:
    """Mean per-image Dice and IoU of the lesion class (argmax of the two logit maps)."""
    pred = logits.argmax(dim=1).bool()
    target = masks.bool()
    inter = (pred & target).flatten(1).sum(1).float()
    p, t = pred.flatten(1).sum(1).float(), target.flatten(1).sum(1).float()
    dice = (2 * inter + eps) / (p + t + eps)
    iou = (inter + eps) / (p + t - inter + eps)
    return {"dice": float(dice.mean()), "iou": float(iou.mean()), "n": len(masks)}

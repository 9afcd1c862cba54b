"""Metrics that do not lie on imbalanced medical data.

ACC and AUC are MedMNIST's own (``medmnist.evaluator.getACC/getAUC``, Yang et al. 2023); beside them
we always report balanced accuracy (mean per-class recall), macro precision / recall / F1 (the
survey's metrics), the share of predictions per class, and two flags: *collapsed* when ≥ 95% of the
predictions fall in one class, and *below majority* when accuracy is under the majority-class rate
of the labels (on BreastMNIST a model that always answers "benign" scores ACC 0.73 with balanced
accuracy 0.50). Dice and IoU are for segmentation. Uncertainty: :func:`wilson_interval` for one
accuracy, :func:`bootstrap_interval` over test images for anything else.
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


def macro_scores(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Macro-averaged precision, recall and F1 over the classes present in ``y_true`` (a class
    never predicted has precision 0), as scikit-learn's ``average="macro"`` on those labels."""
    present = [c for c in range(num_classes) if np.any(y_true == c)]
    precision, recall, f1 = [], [], []
    for c in present:
        tp = np.sum((y_pred == c) & (y_true == c))
        p = tp / max(np.sum(y_pred == c), 1)
        r = tp / np.sum(y_true == c)
        precision.append(p)
        recall.append(r)
        f1.append(2 * p * r / (p + r) if p + r > 0 else 0.0)
    return {"macro_precision": float(np.mean(precision)), "macro_recall": float(np.mean(recall)),
            "macro_f1": float(np.mean(f1))}


def majority_rate(y_true: np.ndarray) -> float:
    """The accuracy of always answering the most frequent class of ``y_true``."""
    return float(np.bincount(y_true.reshape(-1)).max() / max(len(y_true), 1))


def label_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Every metric of single-label predictions that needs no scores: acc, bacc, macro
    precision/recall/F1, shares, the collapse and below-majority flags, n."""
    y_true, y_pred = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    acc = float(np.mean(y_pred == y_true))
    shares = prediction_shares(y_pred, num_classes)
    return {"acc": acc, "bacc": balanced_accuracy(y_true, y_pred, num_classes),
            **macro_scores(y_true, y_pred, num_classes), "shares": shares,
            "collapsed": bool(max(shares) >= COLLAPSE_SHARE),
            "majority_rate": majority_rate(y_true),
            "below_majority": bool(acc < majority_rate(y_true)), "n": int(len(y_true))}


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (Wilson 1927): well-behaved at 0 and 1."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_interval(statistic, n: int, reps: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(index)`` over ``n`` test images resampled with
    replacement (Efron & Tibshirani 1993); ``statistic`` takes an index array. Paired comparisons
    pass a statistic of the difference, so both sides see the same resampled images."""
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, n, n)) for _ in range(reps)]
    lo, hi = np.nanpercentile(values, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return (float(lo), float(hi))


def mean_interval(values, reps: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of finite ``values`` (e.g. one number per image)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0 or not np.isfinite(v).all():
        raise ValueError(f"mean_interval needs finite values; got {len(v)} values, "
                         f"{int((~np.isfinite(v)).sum())} not finite")
    return bootstrap_interval(lambda idx: float(v[idx].mean()), len(v), reps, seed, level)


def classification_metrics(logits: torch.Tensor, y: torch.Tensor, task: str,
                           num_classes: int, keep_predictions: bool = False) -> dict:
    """ACC, AUC (MedMNIST), balanced ACC, macro precision/recall/F1, per-class prediction shares,
    the collapse and below-majority flags; with ``keep_predictions`` also the predicted label of
    every image (``pred``, for intervals and paired comparisons over images)."""
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
    out = {**label_metrics(y_true, y_pred, num_classes), **out}
    return {**out, "pred": y_pred.tolist()} if keep_predictions else out


def dice_iou(logits: torch.Tensor, masks: torch.Tensor, eps: float = 1e-7,
             keep_per_image: bool = False) -> dict:
    """Mean per-image Dice and IoU of the lesion class (argmax of the two logit maps); with
    ``keep_per_image`` also each image's Dice (``dice_per_image``)."""
    pred = logits.argmax(dim=1).bool()
    target = masks.bool()
    inter = (pred & target).flatten(1).sum(1).float()
    p, t = pred.flatten(1).sum(1).float(), target.flatten(1).sum(1).float()
    dice = (2 * inter + eps) / (p + t + eps)
    iou = (inter + eps) / (p + t - inter + eps)
    out = {"dice": float(dice.mean()), "iou": float(iou.mean()), "n": len(masks)}
    return {**out, "dice_per_image": dice.tolist()} if keep_per_image else out

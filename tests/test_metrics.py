import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from survey_lib.metrics import classification_metrics, dice_iou, mean_interval


def test_binary_matches_sklearn():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (200,), generator=g)
    logits = torch.randn(200, 2, generator=g) + 1.5 * torch.nn.functional.one_hot(y, 2)
    m = classification_metrics(logits, y, "binary-class", 2)
    p1 = torch.softmax(logits, 1)[:, 1].numpy()
    assert m["auc"] == pytest.approx(roc_auc_score(y.numpy(), p1))
    assert m["acc"] == pytest.approx(np.mean((p1 > 0.5) == y.numpy()))
    assert m["bacc"] == pytest.approx(balanced_accuracy_score(y.numpy(), p1 > 0.5))
    assert sum(m["shares"]) == pytest.approx(1.0) and not m["collapsed"]


def test_majority_class_model_is_flagged():
    y = torch.tensor([1] * 114 + [0] * 42)  # BreastMNIST's test balance: 73.1% one class
    logits = torch.tensor([[0.0, 3.0]]).repeat(156, 1)
    m = classification_metrics(logits, y, "binary-class", 2)
    assert m["acc"] == pytest.approx(114 / 156) and m["bacc"] == 0.5
    assert m["shares"] == [0.0, 1.0] and m["collapsed"]


def test_multiclass_auc_is_medmnist_one_vs_rest_mean():
    g = torch.Generator().manual_seed(1)
    y = torch.arange(5).repeat(20)
    logits = torch.randn(100, 5, generator=g)
    m = classification_metrics(logits, y, "ordinal-regression", 5)
    p = torch.softmax(logits, 1).numpy()
    expected = np.mean([roc_auc_score(y.numpy() == c, p[:, c]) for c in range(5)])
    assert m["auc"] == pytest.approx(expected)
    assert m["acc"] == pytest.approx(np.mean(p.argmax(1) == y.numpy()))


def test_multilabel():
    y = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]]).float()
    logits = torch.tensor([[5.0, -5], [-5, 5], [5, 5], [-5, -5]])
    m = classification_metrics(logits, y, "multi-label, binary-class", 2)
    assert m["acc"] == 1.0 and m["auc"] == 1.0 and m["bacc"] == 1.0


def test_dice_iou():
    masks = torch.zeros(1, 4, 4, dtype=torch.long)
    masks[0, :2] = 1  # 8 lesion pixels
    logits = torch.zeros(1, 2, 4, 4)
    logits[0, 1, :1] = 1  # predicts 4 of them, nothing else
    m = dice_iou(logits, masks)
    assert m["dice"] == pytest.approx(2 * 4 / 12) and m["iou"] == pytest.approx(4 / 8)


def test_bootstrap_interval_covers_the_mean_with_the_normal_width():
    v = np.random.default_rng(0).normal(0.3, 0.2, 400)
    lo, hi = mean_interval(v)
    assert lo < v.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 * v.std() / np.sqrt(len(v)), rel=0.15)
    assert mean_interval([0.5] * 10) == (0.5, 0.5)

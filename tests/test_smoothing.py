import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch import nn

from survey_lib.config import get_profile
from survey_lib.defenses import smoothing as S
from survey_lib.errors import ConfigError
from survey_lib.train import load_dataset

PROFILE = get_profile("smoke").replace(epochs=8, width=16, train_subset=None)


class Constant(nn.Module):
    """Always votes for class ``c`` (or for a random class when ``c`` is None)."""

    def __init__(self, c=None):
        super().__init__()
        self.c, self.w = c, nn.Parameter(torch.zeros(1))

    def forward(self, x):
        if self.c is None:
            return torch.randn(len(x), 2)
        return torch.nn.functional.one_hot(torch.full((len(x),), self.c), 2).float() * 5


@pytest.mark.parametrize("sigma", [0, -0.25])
def test_sigma_must_be_positive(sigma):
    with pytest.raises(ConfigError, match="σ"):
        S.SmoothedClassifier(Constant(1), sigma, 2)
    with pytest.raises(ConfigError):
        S.train_smoothed("breastmnist", "smoke", sigma=sigma)


def test_classification_only():
    with pytest.raises(ConfigError, match="segmentation"):
        S.train_smoothed("ph2", "smoke", sigma=0.25)


def test_clopper_pearson_radius_and_abstention():
    x = torch.rand(3, 1, 28, 28)
    preds, radii = S.SmoothedClassifier(Constant(1), 0.5, 2).certify(x, n0=10, n=100, alpha=0.001)
    # all 100 votes for class 1: one-sided Clopper–Pearson lower bound p = α^(1/n)
    assert preds.tolist() == [1, 1, 1]
    assert np.allclose(radii.numpy(), 0.5 * norm.ppf(0.001 ** (1 / 100)), atol=1e-5)
    coin = S.SmoothedClassifier(Constant(None), 0.5, 2)
    assert (coin.predict(x, n=100, alpha=0.001) == S.ABSTAIN).all()
    preds, radii = coin.certify(x, n0=10, n=100, alpha=0.001)
    assert (preds == S.ABSTAIN).all() and (radii == 0).all()


def test_certified_accuracy_curve(data_env):
    base, record = S.train_smoothed("breastmnist", PROFILE, sigma=0.25)
    assert record["config"]["sigma"] == 0.25
    test = load_dataset("breastmnist")["test"].subset(64, 0)
    smoothed = S.SmoothedClassifier(base, 0.25, 2)
    preds, radii = smoothed.certify(test.x, n0=20, n=200, alpha=0.001)
    clean = S.smoothed_metrics(preds, test.y, 2)
    assert clean["acc"] > 0.6 and 0 <= clean["abstain"] < 0.5 and len(clean["shares"]) == 2
    assert clean["collapsed"] == (max(clean["shares"]) >= 0.95)
    curve = S.certified_accuracy(preds, radii, test.y, np.linspace(0, 1, 11), 2)
    assert curve[0]["radius"] == 0 and curve[0]["certified_acc"] == pytest.approx(clean["acc"])
    accs = [row["certified_acc"] for row in curve]
    assert all(a >= b for a, b in zip(accs, accs[1:])) and accs[-1] < accs[0]
    assert curve[0]["certified_bacc"] == pytest.approx(clean["bacc"])
    logits = smoothed(test.x[:8])  # forward: log vote shares, usable as logits
    assert logits.shape == (8, 2) and torch.allclose(logits.exp().sum(1), torch.ones(8))

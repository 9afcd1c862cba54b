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


def _linear_base(sigma=0.25):
    """A linear base classifier on 1×4×4 images, f(x) = 1 iff u·(x − 0.5) > 0 with ‖u‖ = 1, and
    images at signed distances ``t`` from its hyperplane. With Gaussian noise of level σ, the smoothed
    classifier is g(x) = f(x), with p_A = Φ(|t|/σ) and exact robust L2 radius |t| (Cohen et al.,
    ICML 2019: the certificate is tight for linear classifiers)."""
    u = torch.randn(16, generator=torch.Generator().manual_seed(0))
    u = u / u.norm()
    base = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        base[1].weight.copy_(torch.stack([torch.zeros(16), u]))
        base[1].bias.copy_(torch.tensor([0.0, -0.5 * u.sum().item()]))
    t = torch.tensor([-0.5, -0.3, -0.15, 0.0, 0.15, 0.3, 0.5])
    x = (0.5 + t[:, None] * u).view(-1, 1, 4, 4)
    return base, x, t


def test_certificate_of_a_linear_classifier():
    """Predictions, radii and the certified-accuracy curve against the exact smoothed classifier."""
    base, x, t = _linear_base()
    preds, radii = S.SmoothedClassifier(base, 0.25, 2).certify(x, n0=100, n=2000, alpha=0.001)
    g = (t > 0).long()
    answered = t != 0
    assert torch.equal(preds[answered], g[answered]) and (preds[~answered] == S.ABSTAIN).all()
    # sound (never beyond the exact radius) and nearly tight (the Clopper–Pearson bound with n = 2000)
    assert (radii <= t.abs()).all() and (radii[answered] >= 0.75 * t.abs()[answered]).all()
    y = torch.tensor([0, 1, 1, 0, 1, 0, 1])  # right, wrong, wrong, (abstains), right, wrong, right
    grid = [0.0, 0.1, 0.2, 0.4, 0.6]  # between the certified radius and the exact one of every image
    curve = S.certified_accuracy(preds, radii, y, grid, 2)
    for r, row in zip(grid, curve):
        ok = (y == g) & answered & (t.abs() >= r)  # robustly right at radius r, exactly
        assert row["radius"] == r
        assert row["certified_acc"] == pytest.approx(ok.float().mean().item())
        recall = [ok[y == c].float().mean().item() for c in (0, 1)]
        assert row["certified_bacc"] == pytest.approx(np.mean(recall))
    assert [row["certified_acc"] for row in curve] == pytest.approx([3 / 7, 3 / 7, 2 / 7, 2 / 7, 0])


def test_certified_accuracy_on_breastmnist(data_env):
    base, record = S.train_smoothed("breastmnist", PROFILE, sigma=0.25)
    assert record["config"]["sigma"] == 0.25
    test = load_dataset("breastmnist")["test"].subset(64, 0)
    smoothed = S.SmoothedClassifier(base, 0.25, 2)
    preds, radii = smoothed.certify(test.x, n0=20, n=200, alpha=0.001)
    clean = S.smoothed_metrics(preds, test.y, 2)
    assert clean["acc"] > 0.6 and 0 <= clean["abstain"] < 0.5 and len(clean["shares"]) == 2
    curve = S.certified_accuracy(preds, radii, test.y, np.linspace(0, 1, 11), 2)
    assert curve[-1]["certified_acc"] < curve[0]["certified_acc"]
    # an independent estimate of the same g (PREDICT, other noise draws): where both answer, they
    # agree (each is g(x) with probability ≥ 1 − α)
    other = S.SmoothedClassifier(base, 0.25, 2, seed=1).predict(test.x, n=200, alpha=0.001)
    both = (preds != S.ABSTAIN) & (other != S.ABSTAIN)
    assert both.float().mean() > 0.5 and torch.equal(preds[both], other[both])
    logits = smoothed(test.x[:8])  # forward: log vote shares, usable as logits
    assert logits.shape == (8, 2) and torch.allclose(logits.exp().sum(1), torch.ones(8))

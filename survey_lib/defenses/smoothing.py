"""Certified robustness by randomized smoothing (survey taxonomy: defenses → certified
robustness; Cohen, Rosenfeld & Kolter, ICML 2019).

The smoothed classifier g(x) = argmax_c P(f(x + δ) = c), δ ~ N(0, σ²I), is provably constant inside
an L2 ball of radius σ·Φ⁻¹(p_A) around x, p_A being (a lower confidence bound on) the probability
of its top class. :func:`train_smoothed` trains the base classifier f on Gaussian-noise-augmented
inputs; :class:`SmoothedClassifier` implements Cohen et al.'s PREDICT (abstains when the top two
classes are not separated by a binomial test at level α) and CERTIFY (top class from n0 samples,
one-sided Clopper–Pearson lower bound on p_A from n fresh samples; abstains when it is ≤ 1/2).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import beta, binomtest, norm
from torch import nn

from .. import validation
from ..errors import ConfigError
from ..metrics import COLLAPSE_SHARE, balanced_accuracy, prediction_shares
from ..train import predict
from .distillation import defense_recipe

ABSTAIN = -1


def check_sigma(sigma: float) -> None:
    if not sigma > 0:
        raise ConfigError(f"Randomized smoothing needs a noise level σ > 0 (pixel units, images in "
                          f"[0, 1]); got {sigma}. Cohen et al. use σ = 0.12, 0.25, 0.5, 1.0.")


class SmoothedClassifier(nn.Module):
    """g(x) from a base classifier and σ. ``forward`` returns log vote shares of ``n`` noisy copies
    (so :func:`~survey_lib.evaluate.robust_metrics` can score it); :meth:`predict` and
    :meth:`certify` are the statistically sound procedures."""

    def __init__(self, base: nn.Module, sigma: float, num_classes: int, n: int = 100,
                 batch_size: int = 512, seed: int = 0):
        check_sigma(sigma)
        super().__init__()
        self.base, self.sigma, self.num_classes = base, float(sigma), num_classes
        self.n, self.batch_size = n, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def counts(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """(N, K) votes of the base classifier over ``n`` Gaussian copies of each image."""
        validation.images(x)
        out = torch.zeros(len(x), self.num_classes, dtype=torch.long)
        per_chunk = max(1, self.batch_size // len(x))
        for done in range(0, n, per_chunk):
            m = min(per_chunk, n - done)
            noise = torch.randn((len(x), m, *x.shape[1:]), generator=self.generator)
            noisy = (x.cpu()[:, None] + self.sigma * noise).flatten(0, 1)
            votes = predict(self.base, noisy, self.batch_size, unit_range=False).argmax(1).view(len(x), m)
            out += F.one_hot(votes, self.num_classes).sum(1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log((self.counts(x, self.n).float() + 1) / (self.n + self.num_classes))

    def predict(self, x: torch.Tensor, n: int = 100, alpha: float = 0.001) -> torch.Tensor:
        """Cohen et al.'s PREDICT: the top class, or ``ABSTAIN`` (-1) when a two-sided binomial test
        of its count against the runner-up's does not reject equality at level ``alpha``."""
        top2, order = self.counts(x, n).topk(2, dim=1)
        classes = order[:, 0]
        pvalues = [binomtest(int(a), int(a + b), 0.5).pvalue for a, b in top2.tolist()]
        return torch.where(torch.tensor(pvalues) <= alpha, classes, ABSTAIN)

    def certify(self, x: torch.Tensor, n0: int = 100, n: int = 1000, alpha: float = 0.001):
        """Cohen et al.'s CERTIFY: returns (predictions with ``ABSTAIN``, certified L2 radii; 0 where
        abstained). With probability ≥ 1 − α per image, g is constant within the radius."""
        if not (0 < alpha < 1 and n0 >= 1 and n >= 1):
            raise ConfigError(f"certify needs 0 < α < 1 and n0, n ≥ 1; got α={alpha}, n0={n0}, n={n}.")
        guess = self.counts(x, n0).argmax(1)
        n_a = self.counts(x, n).gather(1, guess[:, None])[:, 0].numpy()
        p_lower = np.where(n_a > 0, beta.ppf(alpha, np.maximum(n_a, 1), n - n_a + 1), 0.0)
        certified = torch.from_numpy(p_lower > 0.5)
        radius = torch.from_numpy(self.sigma * norm.ppf(np.clip(p_lower, 0.5, 1.0))).float()
        return torch.where(certified, guess, ABSTAIN), torch.where(certified, radius, 0.0)


def certified_accuracy(preds: torch.Tensor, radii: torch.Tensor, y: torch.Tensor,
                       radius_grid, num_classes: int) -> list[dict]:
    """Certified accuracy (and certified balanced accuracy) at each L2 radius of ``radius_grid``:
    the share of images predicted correctly *and* certified at radius ≥ r (abstentions count as
    wrong). At r = 0 it is the smoothed classifier's clean accuracy on the same certify run."""
    y = y.view(-1)
    rows = []
    for r in radius_grid:
        ok = (preds == y) & (radii >= r)
        recalls = [ok[y == c].float().mean().item() for c in range(num_classes) if (y == c).any()]
        rows.append({"radius": float(r), "certified_acc": ok.float().mean().item(),
                     "certified_bacc": float(np.mean(recalls))})
    return rows


def smoothed_metrics(preds: torch.Tensor, y: torch.Tensor, num_classes: int) -> dict:
    """acc, bacc (abstentions count as wrong), per-class shares of the answered predictions, the
    collapse flag (≥ 95% of them in one class) and the abstention rate."""
    y, p = y.view(-1).numpy(), preds.numpy()
    answered = p != ABSTAIN
    shares = prediction_shares(p[answered], num_classes)
    return {"acc": float((p == y).mean()), "bacc": balanced_accuracy(y, p, num_classes),
            "shares": shares, "collapsed": bool(max(shares) >= COLLAPSE_SHARE),
            "abstain": float(1 - answered.mean()), "n": int(len(y))}


def train_smoothed(dataset: str, profile=None, sigma: float = 0.25, size: int = 28, root=None,
                   progress: bool = False):
    """Train (or load) the base classifier on Gaussian-noise-augmented inputs x + N(0, σ²I) (the
    noisy images are not clipped, as in Cohen et al.). Returns ``(base model, record)``."""
    check_sigma(sigma)

    def noisy_ce(m, x, y):
        return F.cross_entropy(m(x + sigma * torch.randn_like(x)).float(), y.view(-1))

    return defense_recipe(f"smooth-{sigma:g}", dataset, profile, noisy_ce, extra={"sigma": sigma},
                        size=size, root=root, progress=progress)

"""Adversarial example detection (survey taxonomy: defenses → detection).

A detector scores an image (higher = more likely adversarial) from the classifier's features:

- :class:`MahalanobisDetector` (Lee et al., NeurIPS 2018): class-conditional Gaussians with a tied
  covariance fitted on the penultimate features of clean training images; the score is the
  Mahalanobis distance to the closest class mean (single layer, without Lee et al.'s input
  pre-processing and layer ensemble);
- :class:`LearnedDetector` (Metzen et al., ICLR 2017): a small CNN on an intermediate feature map of
  the frozen classifier, trained to tell clean from adversarial training images.

:func:`detection_scores` / :func:`evaluate_detectors` measure the AUROC on held-out clean test images
against their adversarial versions from several attacks; :class:`DetectorAwarePGD` is the adaptive
attacker (Carlini & Wagner, AISec 2017): PGD on the CW margin (capped at κ, so once the image is
misclassified the attacker spends its budget on hiding) minus λ × the standardised detector score.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn

from ..attacks import PGD, Attack
from ..attacks.base import frozen, margin_loss
from ..data import Split, TaskInfo
from ..errors import ConfigError
from ..evaluate import attack_split, robust_metrics
from ..metrics import predictions
from ..train import cached_run, config_hash, fit, predict, seed_everything
from .purification import require_2d_classification


def features(model: nn.Module, x: torch.Tensor, upto: int | None = None) -> torch.Tensor:
    """The classifier's features: ``model.features[:upto]`` after its input normalisation (all of
    them, i.e. the penultimate layer, when ``upto`` is None)."""
    if not (hasattr(model, "features") and hasattr(model, "normalize")):
        raise ConfigError(f"Detectors read a classifier's features, but {type(model).__name__} has no "
                          "'features' and 'normalize' parts. Use smallcnn or resnet18.")
    layers = model.features if upto is None else model.features[:upto]
    return layers(model.normalize(x))


class MahalanobisDetector(nn.Module):
    """Score = min over classes of the Mahalanobis distance of the penultimate features."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @torch.no_grad()
    def fit(self, split: Split, batch_size: int = 256) -> "MahalanobisDetector":
        """Class means and tied covariance of the clean training features."""
        require_2d_classification(split.info, "The Mahalanobis detector")
        with frozen(self.model):
            f = torch.cat([features(self.model, split.x[i:i + batch_size])
                           for i in range(0, len(split), batch_size)]).double()
        y = split.y.view(-1)
        means = torch.stack([f[y == c].mean(0) for c in range(split.info.num_classes)])
        centred = f - means[y]
        cov = centred.T @ centred / len(f)
        self.register_buffer("means", means.float())
        self.register_buffer("precision", torch.linalg.pinv(cov, hermitian=True).float())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = features(self.model, x)[:, None] - self.means  # (N, K, D)
        return torch.einsum("nkd,de,nke->nk", d, self.precision, d).amin(1)


class LearnedDetector(nn.Module):
    """A binary CNN (clean vs adversarial) on ``model.features[:layer]``; the classifier stays
    frozen and in eval mode. Score = logit(adversarial) − logit(clean)."""

    def __init__(self, model: nn.Module, channels: int, layer: int = 3, width: int = 32):
        super().__init__()
        self.model, self.layer = model, layer
        self.head = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 2))

    def train(self, mode: bool = True) -> "LearnedDetector":
        super().train(mode)
        self.model.eval()  # the classifier's BatchNorm statistics never move
        return self

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(features(self.model, x, self.layer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.logits(x)
        return z[:, 1] - z[:, 0]


def _detection_split(model, split: Split, attack) -> Split:
    """Clean images labelled 0 and their adversarial versions labelled 1."""
    info = TaskInfo(split.info.flag, "binary-class", ("clean", "adversarial"),
                    split.info.n_channels, False, split.info.size)
    x = torch.cat([split.x, attack_split(model, split, attack)])
    return Split(x, torch.cat([torch.zeros(len(split)), torch.ones(len(split))]).long(), info)


def train_learned_detector(model: nn.Module, model_config: dict, train: Split, val: Split, attack,
                           epochs: int = 10, layer: int = 3, width: int = 32, seed: int = 0,
                           progress: bool = False):
    """Train (or load from ``runs/``) a :class:`LearnedDetector` for ``model`` on the training
    images and ``attack``'s adversarial versions (Metzen et al. train on one attack); the
    checkpoint kept has the best validation detection AUROC. Returns ``(detector, record)``."""
    require_2d_classification(train.info, "The learned detector")
    config = {"name": "detector", "dataset": model_config["dataset"], "layer": layer,
              "width": width, "epochs": epochs, "attack": repr(attack), "seed": seed,
              "n_train": len(train), "model": config_hash(model_config)}
    channels = features(model.eval(), train.x[:1], layer).shape[1]

    def build():
        seed_everything(seed)
        return LearnedDetector(model, channels, layer, width)

    def train_fn(detector: nn.Module, last: Path) -> dict:
        start = time.perf_counter()
        det_train, det_val = _detection_split(model, train, attack), _detection_split(model, val, attack)
        flags = [p.requires_grad for p in model.parameters()]
        model.requires_grad_(False)
        try:
            out = fit(detector, det_train, det_val, epochs=epochs, batch_size=128, seed=seed,
                      augment_data=False, checkpoint=last, progress=progress,
                      loss_fn=lambda m, x, y: F.cross_entropy(m.logits(x), y),
                      select_fn=lambda m, v: roc_auc_score(v.y.numpy(), predict(m, v.x).numpy()))
        finally:
            for p, flag in zip(model.parameters(), flags):
                p.requires_grad_(flag)
        return {"wall_seconds": round(time.perf_counter() - start, 1), **out}

    detector, record = cached_run(config, build, train_fn)
    return detector.eval(), record


class DetectorAwarePGD(PGD):
    """Adaptive PGD against a classifier guarded by a detector: ascend
    min(CW margin, κ) − λ·(s(x) − μ)/σ, with μ, σ the detector's score statistics on the clean batch
    (Carlini & Wagner, AISec 2017). λ = 0 is ordinary margin PGD."""

    name = "detector_aware_pgd"

    def __init__(self, detector: nn.Module, eps: float = 8, weight: float = 1.0,
                 kappa: float = 2.0, **kw):
        super().__init__(eps, **kw)
        self.detector, self.weight, self.kappa = detector, weight, kappa

    def perturb(self, model, x, y):
        with frozen(self.detector), torch.no_grad():
            clean = self.detector(x)
        self.mu, self.sd = clean.mean(), clean.std().clamp_min(1e-6)
        with frozen(self.detector):
            return super().perturb(model, x, y)

    def grad_and_logits(self, model, x, y):
        x = x.detach().requires_grad_(True)
        logits = model(x)
        score = (self.detector(x) - self.mu) / self.sd
        loss = margin_loss(logits, y).clamp(max=self.kappa).sum() - self.weight * score.sum()
        return torch.autograd.grad(loss, x)[0], logits.detach()


@torch.no_grad()
def detection_scores(detector: nn.Module, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    with frozen(detector):
        return torch.cat([detector(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).numpy()


def evaluate_detectors(model: nn.Module, detectors: dict[str, nn.Module], split: Split,
                       attacks: dict[str, object], fpr: float = 0.05) -> tuple[list[dict], dict]:
    """For every attack and detector: AUROC of clean vs adversarial test images, the true-positive
    rate at the threshold that flags ``fpr`` of the clean images, and the classifier's metrics on the
    adversarial images (acc, bacc, shares, collapsed). An attack given as a callable
    ``detector -> Attack`` is built per detector (adaptive attacks). Returns (rows, ROC curves)."""
    rows, curves = [], {}
    clean = {name: detection_scores(d, split.x) for name, d in detectors.items()}
    for attack_name, attack in attacks.items():
        for det_name, det in detectors.items():
            atk = attack if isinstance(attack, Attack) else attack(det)
            x_adv = attack_split(model, split, atk)
            m = robust_metrics(model, Split(x_adv, split.y, split.info))
            adv = detection_scores(det, x_adv)
            labels = np.r_[np.zeros(len(adv)), np.ones(len(adv))]
            scores = np.r_[clean[det_name], adv]
            threshold = np.quantile(clean[det_name], 1 - fpr)
            curves[(det_name, attack_name)] = roc_curve(labels, scores)[:2]
            fooled = predictions(predict(model, x_adv), split.info.task) != split.y.numpy()
            rows.append({"detector": det_name, "attack": attack_name,
                         "auroc": float(roc_auc_score(labels, scores)),
                         f"tpr@{fpr:g}fpr": float((adv > threshold).mean()),
                         "undetected_success": float((fooled & (adv <= threshold)).mean()),
                         **{k: m[k] for k in ("acc", "bacc", "shares", "collapsed")}})
    return rows, curves

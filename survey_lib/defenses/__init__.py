"""Defenses by the survey's taxonomy, and a registry to name them by string.

>>> from survey_lib.defenses import make_defense
>>> model, record = make_defense("trades", eps=8, beta=6).train("pneumoniamnist", "cpu")
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from ..errors import ConfigError
from . import adversarial_training, detection, distillation, feature_level, purification, smoothing
from .adversarial_training import AdversarialTraining, train_adversarial

DEFENSES: dict[str, Callable] = {}

# defenses → adversarial training
DEFENSES.update({m: partial(AdversarialTraining, m) for m in adversarial_training.METHODS})

# defenses → pre-processing, detection, certified (model wrappers: make_defense("jpeg", model=m,
# quality=50)) and distillation, feature-level, noise training for smoothing (training recipes:
# make_defense("defensive_distillation", temperature=50).train(dataset, profile))
DEFENSES.update(purification.PURIFIERS)
DEFENSES.update({"mahalanobis": detection.MahalanobisDetector,
                 "learned_detector": detection.train_learned_detector,
                 "randomized_smoothing": smoothing.SmoothedClassifier,
                 "defensive_distillation": partial(distillation.Recipe, distillation.train_distilled),
                 "feature_denoising": partial(distillation.Recipe,
                                              feature_level.train_feature_denoising),
                 "gaussian_augmentation": partial(distillation.Recipe, smoothing.train_smoothed)})


def make_defense(name: str, **kwargs):
    """Build a registered defense by name (``DEFENSES`` lists them)."""
    try:
        factory = DEFENSES[name.lower()]
    except KeyError:
        raise ConfigError(f"Unknown defense {name!r}. Valid defenses: "
                          f"{', '.join(sorted(DEFENSES))}.") from None
    return factory(**kwargs)


__all__ = ["DEFENSES", "AdversarialTraining", "make_defense", "train_adversarial"]

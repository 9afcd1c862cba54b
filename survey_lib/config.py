"""Profiles: how much compute a run may spend (``smoke`` for CI, ``cpu`` for a laptop, ``paper`` for a GPU).

A profile is chosen, in this order, by an explicit argument (the CLI's ``--profile`` flag or the
papermill ``PROFILE`` parameter of a notebook), then by the ``SURVEY_PROFILE`` environment variable,
then falls back to ``cpu``. The ``paper`` profile follows the recipe of the survey's benchmark
(Dong et al. 2024, Sec. 6): 100 epochs, SGD momentum 0.9, weight decay 5e-4, OneCycle LR, batch 32,
random rotation and flips, ResNet-18.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from .errors import ConfigError

PROFILE_ENV = "SURVEY_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Every knob a profile sets. ``None`` subsets mean "use the whole split"."""

    name: str
    model: str = "smallcnn"  # classification model for 2D data
    width: int = 32  # base channel width of that model
    model_3d: str = "cnn3d"
    epochs: int = 20  # 2D classification
    epochs_3d: int = 20
    epochs_seg: int = 30
    batch_size: int = 128
    batch_size_3d: int = 32
    batch_size_seg: int = 16
    optimizer: str = "adam"  # "adam" | "sgd"
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine" | "onecycle" | "multistep" | "constant"
    augment: bool = True  # random flips + small rotations (2D), flips (3D, seg)
    # class-balanced sampling (single-label tasks): examples drawn with weight 1 / class size ** balanced,
    # 0 = natural frequencies, 0.5 = square-root balancing, 1 = every class equally often
    balanced: float = 0.5
    train_subset: int | None = None  # cap on training examples (smoke)
    eval_subset: int | None = None  # cap on val/test examples (smoke)
    seg_width: int = 16
    seed: int = 0

    def replace(self, **changes) -> Profile:
        """A copy with some fields changed (``profile.replace(epochs=5)``)."""
        return dataclasses.replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", width=8, epochs=1, epochs_3d=1, epochs_seg=1, batch_size=64,
        batch_size_3d=16, batch_size_seg=8, train_subset=256, eval_subset=128, seg_width=4,
    ),
    "cpu": Profile(name="cpu"),
    "paper": Profile(
        name="paper", model="resnet18", width=64, model_3d="resnet3d", epochs=100, epochs_3d=100,
        epochs_seg=100, batch_size=32, batch_size_3d=32, optimizer="sgd", lr=0.05,
        weight_decay=5e-4, schedule="onecycle", seg_width=32, balanced=0.0,
    ),
}


def get_profile(name: str | Profile | None = None) -> Profile:
    """Return the profile named ``name``, else ``$SURVEY_PROFILE``, else ``cpu``."""
    if isinstance(name, Profile):
        return name
    chosen = name or os.environ.get(PROFILE_ENV) or "cpu"
    try:
        return PROFILES[chosen.lower()]
    except KeyError:
        source = "" if name else f" (from ${PROFILE_ENV})"
        raise ConfigError(
            f"Unknown profile {chosen!r}{source}. Valid profiles: {', '.join(PROFILES)}: "
            "'smoke' runs in seconds for CI, 'cpu' in minutes on a laptop, 'paper' is the "
            "survey's full recipe for a GPU."
        ) from None

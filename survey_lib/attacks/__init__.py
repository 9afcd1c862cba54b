"""Attacks by the survey's taxonomy, and a registry to name them by string.

>>> from survey_lib.attacks import make_attack
>>> pgd = make_attack("pgd", eps=8, steps=20)   # ε = 8/255
>>> x_adv = pgd(model, x, y)
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Attack, attack_loss
from .whitebox import FGSM, PGD, PGDL2

ATTACKS: dict[str, type[Attack]] = {cls.name: cls for cls in (FGSM, PGD, PGDL2)}


def make_attack(name: str, **kwargs) -> Attack:
    """Build a registered attack by name (``ATTACKS`` lists them)."""
    try:
        cls = ATTACKS[name.lower()]
    except KeyError:
        raise ConfigError(f"Unknown attack {name!r}. Valid attacks: {', '.join(sorted(ATTACKS))}.") from None
    return cls(**kwargs)


__all__ = ["ATTACKS", "Attack", "attack_loss", "make_attack", "FGSM", "PGD", "PGDL2"]

"""Attacks by the survey's taxonomy, and a registry to name them by string.

>>> from survey_lib.attacks import make_attack
>>> pgd = make_attack("pgd", eps=8, steps=20)   # ε = 8/255
>>> x_adv = pgd(model, x, y)

- white-box gradient / optimisation (``whitebox.py``): fgsm, bim, pgd, pgd_l2, mifgsm, cw_pgd,
  cw_l2, deepfool; eot_pgd (against randomized defenses);
- minimal perturbation (``fab.py``): fab, fab_t (FAB and the multi-targeted FAB-T);
- AutoAttack (``autoattack.py``): apgd_ce, apgd_dlr, apgd_t, autoattack (the standard version,
  budgets fixed), aa_lite (the same cascade with explicit reduced budgets, never called AutoAttack);
- black-box (``blackbox.py``): square, simba (query-based), transfer (surrogate);
- universal (``universal.py``): uap, patch;
- segmentation (``segmentation.py``): seg_pgd_ce, seg_pgd_dice.
"""

from __future__ import annotations

from ..errors import ConfigError
from .autoattack import APGD, APGDDLR, APGDT, AALite, AutoAttack
from .base import Attack, attack_loss, frozen, margin_loss
from .blackbox import SimBA, Square, Transfer
from .fab import FAB, FABT
from .segmentation import SegPGD, SegPGDDice
from .universal import AdversarialPatch, UniversalPerturbation
from .whitebox import BIM, CWL2, CWPGD, EOTPGD, FGSM, MIFGSM, PGD, PGDL2, DeepFool

ATTACKS: dict[str, type[Attack]] = {cls.name: cls for cls in (
    FGSM, BIM, PGD, PGDL2, MIFGSM, CWPGD, CWL2, DeepFool, EOTPGD,
    APGD, APGDDLR, APGDT, AutoAttack, AALite, FAB, FABT,
    Square, SimBA, Transfer,
    UniversalPerturbation, AdversarialPatch,
    SegPGD, SegPGDDice,
)}


def make_attack(name: str, **kwargs) -> Attack:
    """Build a registered attack by name (``ATTACKS`` lists them)."""
    try:
        cls = ATTACKS[name.lower()]
    except (KeyError, AttributeError):
        raise ConfigError(f"Unknown attack {name!r}. Valid attacks: {', '.join(sorted(ATTACKS))}.") from None
    return cls(**kwargs)


__all__ = ["ATTACKS", "Attack", "attack_loss", "frozen", "margin_loss", "make_attack",
           "FGSM", "BIM", "PGD", "PGDL2", "MIFGSM", "CWPGD", "CWL2", "DeepFool", "EOTPGD",
           "APGD", "APGDDLR", "APGDT", "AutoAttack", "AALite", "FAB", "FABT", "Square", "SimBA", "Transfer",
           "UniversalPerturbation", "AdversarialPatch", "SegPGD", "SegPGDDice"]

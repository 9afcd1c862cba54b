"""Attacks on segmentation (survey taxonomy: attacks → by task → segmentation): PGD L∞ against a
U-Net's per-pixel outputs, ascending either the per-pixel cross-entropy or the soft Dice loss of the
lesion map (the survey's segmentation attacks, e.g. Ozbulak et al., MICCAI 2019, target these
losses). Measured by Dice and IoU (``robust_metrics`` on a segmentation split)."""

from __future__ import annotations

from .whitebox import PGD


class SegPGD(PGD):
    """PGD L∞ on the mean per-pixel cross-entropy of the segmentation logits (N, 2, H, W)."""

    name = "seg_pgd_ce"
    task = "segmentation"

    def __init__(self, eps: float = 8, **kw):
        kw.setdefault("loss", "ce")
        super().__init__(eps, **kw)


class SegPGDDice(SegPGD):
    """PGD L∞ on the soft Dice loss of the lesion map: it directly lowers the overlap with the mask."""

    name = "seg_pgd_dice"

    def __init__(self, eps: float = 8, **kw):
        kw.setdefault("loss", "dice")
        super().__init__(eps, **kw)

"""The fixed inputs of the checks: tiny seeded models and seeded tensors (the global RNG is left
untouched), so every student sees the same numbers and a result is exact to compare."""

from __future__ import annotations

import torch


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _built(name: str, channels: int, classes: int, width: int, seed: int) -> torch.nn.Module:
    from ..models import build_model

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model(name, channels, classes, width=width).eval()


def classifier(channels: int = 1, classes: int = 2, seed: int = 0) -> torch.nn.Module:
    """A SmallCNN of width 8 (BatchNorm inside) with seeded weights, in eval mode."""
    return _built("smallcnn", channels, classes, 8, seed)


def unet(seed: int = 0) -> torch.nn.Module:
    """A U-Net of width 4 for 3-channel images and 2 classes (background, lesion), in eval mode."""
    return _built("unet", 3, 2, 4, seed)


def batch(n: int = 8, shape: tuple = (1, 28, 28), classes: int = 2, seed: int = 0):
    """(images in [0, 1], labels)."""
    g = seeded(seed)
    return torch.rand(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def segmentation_batch(seed: int = 4):
    """(4 RGB images 32×32, lesion masks in {0, 1})."""
    g = seeded(seed)
    x = torch.rand(4, 3, 32, 32, generator=g)
    return x, (torch.rand(4, 32, 32, generator=g) > 0.6).long()


def pgd_noise(x: torch.Tensor, seed: int) -> torch.Tensor:
    """The random start survey_lib's PGD draws for ``seed``: uniform in [-1, 1), shaped like x."""
    return torch.rand(x.shape, generator=seeded(seed)) * 2 - 1


def l2_pairs(channels: int, seed: int = 2):
    """(x_adv, x): 8 images whose perturbations have L2 norms from 0 (x_adv = x) through the inside
    of a unit ball to far outside it; x_adv is not clipped to [0, 1]."""
    g = seeded(seed)
    x = torch.rand(8, channels, 28, 28, generator=g)
    delta = torch.randn(x.shape, generator=g)
    scale = torch.tensor([0.0, 0.01, 0.02, 0.05, 0.1, 0.3, 1.0, 2.0]).view(-1, 1, 1, 1)
    return x + delta * scale, x


def square_inputs(seed: int = 3, n: int = 6, c: int = 3, h: int = 16, w: int = 16, eps: int = 8):
    """(x, x_best): RGB images and a current best perturbation of ±ε vertical stripes."""
    g = seeded(seed)
    x = torch.rand(n, c, h, w, generator=g)
    stripes = torch.randint(0, 2, (n, c, 1, w), generator=g) * 2 - 1
    return x, (x + eps / 255 * stripes).clamp(0, 1), g


def logit_maps(seed: int = 5):
    """(logits (4, 2, 32, 32), masks (4, 32, 32)); the first mask is empty (no lesion)."""
    g = seeded(seed)
    logits = torch.randn(4, 2, 32, 32, generator=g) * 3
    masks = (torch.rand(4, 32, 32, generator=g) > 0.7).long()
    masks[0] = 0
    return logits, masks

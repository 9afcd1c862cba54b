"""Universal and physical-style attacks (survey taxonomy: attacks → universal perturbation and
adversarial patch): one perturbation, fitted once on a set of images, applied to any image."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import Attack, frozen


class UniversalPerturbation(Attack):
    """Universal adversarial perturbation (Moosavi-Dezfooli et al., CVPR 2017), fitted by stochastic
    projected sign-gradient ascent on the mean loss over the fitting images (the SGD variant of
    Shafahi et al., AAAI 2020): one δ with ‖δ‖∞ ≤ ε for every image.

    ``fit(model, x, y)`` learns δ over ``steps`` epochs of mini-batches; calling the attack applies
    δ, fitting it on the images given first if it was never fitted (so it is not universal then).
    """

    name = "uap"
    norm = "universal"

    def __init__(self, eps: float = 8, steps: int = 5, batch_size: int = 64, **kw):
        kw.setdefault("random_start", False)
        super().__init__(eps, steps=steps, **kw)
        self.batch_size, self.delta = batch_size, None

    def _default_step(self) -> float:
        return self.eps / 4

    def fit(self, model, x: torch.Tensor, y: torch.Tensor) -> "UniversalPerturbation":
        device = next(model.parameters()).device
        gen = torch.Generator().manual_seed(self.seed)
        y = self._fit_labels(model, x, y)
        delta = torch.zeros(1, *x.shape[1:], device=device)
        with frozen(model):
            for _ in range(self.steps):
                for idx in torch.randperm(len(x), generator=gen).split(self.batch_size):
                    xb, yb = x[idx].to(device), y[idx].to(device)
                    d = delta.clone().requires_grad_(True)
                    g = torch.autograd.grad(self.loss_value(model, (xb + d).clamp(0, 1), yb), d)[0]
                    delta = (delta + self.step_size * g.sign()).clamp(-self.eps, self.eps)
        self.delta = delta.detach()
        return self

    def perturb(self, model, x, y):
        if self.delta is None:
            self.fit(model, x, y)
        return (x + self.delta.to(x.device)).clamp(0, 1)


class AdversarialPatch(Attack):
    """Adversarial patch (Brown et al., 2017): a square of free pixel values covering a fraction
    ``eps`` of the image area, pasted at a random place, fitted by sign-gradient ascent on the loss
    averaged over random placements (expectation over transformation). 2D images only.

    ``fit(model, x, y)`` learns the patch over ``steps`` epochs; calling the attack pastes it at a
    random position per image (seeded), fitting it first on the given images if never fitted.
    """

    name = "patch"
    norm = "patch"

    def __init__(self, eps: float = 0.05, steps: int = 5, step_size: float = 0.05,
                 batch_size: int = 64, **kw):
        if not 0 < eps <= 0.5:
            raise ConfigError(f"patch: eps is the fraction of the image area the patch covers, in "
                              f"(0, 0.5]; got {eps}.")
        kw.setdefault("random_start", False)
        super().__init__(eps, steps=steps, step_size=step_size, **kw)
        self.batch_size, self.patch = batch_size, None

    def side(self, x: torch.Tensor) -> int:
        return max(1, round((self.eps * x.shape[-2] * x.shape[-1]) ** 0.5))

    def paste(self, x: torch.Tensor, patch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``x`` with ``patch`` (C, s, s) at one random position per image (differentiable in the patch)."""
        n, _, h, w = x.shape
        s = patch.shape[-1]
        top = torch.randint(0, h - s + 1, (n, 1), generator=gen).to(x.device)
        left = torch.randint(0, w - s + 1, (n, 1), generator=gen).to(x.device)
        ih = torch.arange(h, device=x.device).view(1, -1) - top  # (n, H) row inside the patch
        iw = torch.arange(w, device=x.device).view(1, -1) - left
        inside = ((ih >= 0) & (ih < s)).view(n, 1, h, 1) & ((iw >= 0) & (iw < s)).view(n, 1, 1, w)
        canvas = patch[:, ih.clamp(0, s - 1)[:, :, None], iw.clamp(0, s - 1)[:, None, :]]
        return torch.where(inside, canvas.permute(1, 0, 2, 3), x)

    def fit(self, model, x: torch.Tensor, y: torch.Tensor) -> "AdversarialPatch":
        if x.ndim != 4:
            raise ConfigError("patch: adversarial patches are for 2D images (N, C, H, W); "
                              f"got shape {tuple(x.shape)}.")
        device = next(model.parameters()).device
        gen = torch.Generator().manual_seed(self.seed)
        y = self._fit_labels(model, x, y)
        s = self.side(x)
        patch = torch.rand(x.shape[1], s, s, generator=gen).to(device)
        with frozen(model):
            for _ in range(self.steps):
                for idx in torch.randperm(len(x), generator=gen).split(self.batch_size):
                    xb, yb = x[idx].to(device), y[idx].to(device)
                    p = patch.clone().requires_grad_(True)
                    g = torch.autograd.grad(self.loss_value(model, self.paste(xb, p, gen), yb), p)[0]
                    patch = (patch + self.step_size * g.sign()).clamp(0, 1)
        self.patch = patch.detach()
        return self

    def perturb(self, model, x, y):
        if self.patch is None:
            self.fit(model, x, y)
        return self.paste(x, self.patch.to(x.device), torch.Generator().manual_seed(self.seed + 1))

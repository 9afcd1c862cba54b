"""White-box gradient attacks (survey taxonomy: attacks → white-box → gradient-based)."""

from __future__ import annotations

import torch

from .base import Attack


class FGSM(Attack):
    """Fast Gradient Sign Method: one step of size ε along sign(∇x loss) (Goodfellow et al., ICLR 2015)."""

    name = "fgsm"

    def __init__(self, eps: float = 8, **kw):
        kw.setdefault("steps", 1)
        super().__init__(eps, **kw)

    def perturb(self, model, x, y):
        return self.project(x + self.eps * self.grad(model, x, y).sign(), x)


class PGD(Attack):
    """Projected Gradient Descent with random start and restarts (Madry et al., ICLR 2018).

    L∞: steps along the gradient sign; L2 (``PGDL2``): steps along the normalised gradient. With
    restarts, each example keeps the first restart that fooled the model, else the last one.
    """

    name = "pgd"

    def _step(self, g: torch.Tensor) -> torch.Tensor:
        return g.sign()

    def _random_start(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        noise = torch.rand(x.shape, generator=gen, device="cpu").to(x.device) * 2 - 1
        return self.project(x + self.eps * noise, x)

    def perturb(self, model, x, y):
        gen = torch.Generator().manual_seed(self.seed)
        best = x.clone()
        open_ = torch.ones(len(x), dtype=torch.bool, device=x.device)  # not fooled yet
        for _ in range(self.restarts):
            x_adv = self._random_start(x, gen) if self.random_start else x.clone()
            for _ in range(self.steps):
                x_adv = self.project(x_adv + self.step_size * self._step(self.grad(model, x_adv, y)), x)
            best[open_] = x_adv[open_]
            if self.restarts > 1:
                with torch.no_grad():
                    pred = model(x_adv).argmax(1)
                fooled = (pred == y) if self.targeted else (pred != y)
                open_ &= ~fooled.view(len(x), -1).all(1) if fooled.ndim > 1 else ~fooled
        return best


class PGDL2(PGD):
    """PGD in the L2 ball: normalised-gradient steps, uniform random start in the ball."""

    name = "pgd_l2"
    norm = "l2"

    def _step(self, g: torch.Tensor) -> torch.Tensor:
        return g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (g.ndim - 1))

    def _random_start(self, x, gen):
        d = torch.randn(x.shape, generator=gen).to(x.device)
        d = self._step(d) * torch.rand(len(x), generator=gen).to(x.device).view(-1, *[1] * (x.ndim - 1))
        return self.project(x + self.eps * d, x)

"""White-box gradient attacks (survey taxonomy: attacks → white-box → gradient-based and
optimisation-based). Each class is one algorithm; the bookkeeping lives in :class:`Attack`."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import Attack, margin_loss


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-example vector shaped to broadcast over images or volumes."""
    return v.view(-1, *[1] * (like.ndim - 1))


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

    L∞: steps along the gradient sign; L2 (``PGDL2``): steps along the normalised gradient. Each
    restart attacks only the examples no earlier restart fooled. ``early_stop=True`` freezes an
    example as soon as the forward pass of a step finds it fooled (that point is kept), so no step is
    spent on it; the other examples follow exactly the same path as without early stopping.
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
        todo = torch.arange(len(x), device=x.device)  # examples no restart has fooled yet
        for r in range(self.restarts):
            xs, ys = x[todo], y[todo]
            start = self._random_start(xs, gen) if self.random_start else xs.clone()
            x_adv, fooled = self._iterate(model, xs, ys, start)
            best[todo] = x_adv
            if r + 1 < self.restarts:
                with torch.no_grad():
                    fooled |= self.success(model(x_adv), ys)
                todo = todo[~fooled]
                if len(todo) == 0:
                    break
        return best

    def _iterate(self, model, x, y, x_adv):
        """``self.steps`` projected ascent steps from ``x_adv``; returns (x_adv, fooled-early mask)."""
        index = torch.arange(len(x), device=x.device)
        rows = slice(None)  # examples still being attacked (a view of all of them until one falls)
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(self.steps):
            g, logits = self.grad_and_logits(model, x_adv[rows], y[rows])
            if self.early_stop:
                hit = self.success(logits, y[rows])
                if hit.any():
                    active = index[rows]
                    fooled[active[hit]] = True
                    rows, g = active[~hit], g[~hit]
                    if len(rows) == 0:
                        break
            x_adv[rows] = self.project(x_adv[rows] + self.step_size * self._step(g), x[rows])
        return x_adv, fooled


class EOTPGD(PGD):
    """PGD with Expectation over Transformation, the adaptive attack on randomized defenses
    (Athalye, Engstrom, Ilyas & Kwok, ICML 2018; Athalye, Carlini & Wagner, ICML 2018): each step
    ascends the input gradient averaged over ``samples`` forward/backward passes, every pass with a
    fresh draw of the model's randomness (e.g. a random resize-and-pad purifier)."""

    name = "eot_pgd"

    def __init__(self, eps: float = 8, samples: int = 10, **kw):
        super().__init__(eps, **kw)
        if samples < 1:
            raise ConfigError(f"{self.name}: samples must be ≥ 1 (got {samples}); 10–20 is usual.")
        self.samples = samples

    def _extra_repr(self):
        return [f"samples={self.samples}"]

    def grad_and_logits(self, model, x, y):
        total = 0
        for _ in range(self.samples):
            g, logits = super().grad_and_logits(model, x, y)
            total = total + g
        return total / self.samples, logits


class PGDL2(PGD):
    """PGD in the L2 ball: normalised-gradient steps, uniform random start in the ball."""

    name = "pgd_l2"
    norm = "l2"

    def __init__(self, eps: float = 0.5, **kw):
        super().__init__(eps, **kw)

    def _step(self, g: torch.Tensor) -> torch.Tensor:
        return g / _view(g.flatten(1).norm(dim=1).clamp_min(1e-12), g)

    def _random_start(self, x, gen):
        d = torch.randn(x.shape, generator=gen).to(x.device)
        d = self._step(d) * _view(torch.rand(len(x), generator=gen).to(x.device), x)
        return self.project(x + self.eps * d, x)


class BIM(PGD):
    """Basic Iterative Method / I-FGSM: PGD from the clean image (no random start) with step
    1.25·ε/steps, as in Kurakin et al. (ICLR workshop 2017; α = 1/255 for min(ε+4, 1.25ε) steps)."""

    name = "bim"

    def __init__(self, eps: float = 8, **kw):
        kw.setdefault("random_start", False)
        super().__init__(eps, **kw)

    def _default_step(self) -> float:
        return 1.25 * self.eps / self.steps


class CWPGD(PGD):
    """PGD L∞ on the Carlini–Wagner margin max_{i≠y} z_i − z_y instead of cross-entropy: the "CW∞"
    variant used in the seed survey's benchmark (Dong et al. 2024; Carlini & Wagner, S&P 2017)."""

    name = "cw_pgd"

    def __init__(self, eps: float = 8, **kw):
        kw.setdefault("loss", "margin")
        super().__init__(eps, **kw)


class MIFGSM(Attack):
    """Momentum Iterative FGSM (Dong et al., CVPR 2018): g ← μ·g + ∇/‖∇‖₁, x ← x + α·sign(g),
    α = ε/steps, from the clean image."""

    name = "mifgsm"

    def __init__(self, eps: float = 8, decay: float = 1.0, **kw):
        kw.setdefault("random_start", False)
        super().__init__(eps, **kw)
        self.decay = decay

    def _extra_repr(self):
        return [f"decay={self.decay:g}"]

    def _default_step(self) -> float:
        return self.eps / self.steps

    def perturb(self, model, x, y):
        x_adv, momentum = x.clone(), torch.zeros_like(x)
        for _ in range(self.steps):
            g = self.grad(model, x_adv, y)
            momentum = self.decay * momentum + g / _view(g.abs().flatten(1).mean(1).clamp_min(1e-12), g)
            x_adv = self.project(x_adv + self.step_size * momentum.sign(), x)
        return x_adv


class CWL2(Attack):
    """Carlini–Wagner L2, optimisation form (Carlini & Wagner, S&P 2017).

    In tanh space, minimise ‖δ‖₂² + c·max(z_y − max_{i≠y} z_i, −κ) with Adam, and binary-search c per
    example (×10 until the first success). Keeps the smallest successful δ; an example whose smallest
    success is larger than ε (L2, pixels) is returned unchanged: the attack failed within the budget.
    """

    name = "cw_l2"
    norm = "l2"

    def __init__(self, eps: float = 1.0, steps: int = 100, c: float = 1.0, kappa: float = 0.0,
                 lr: float = 0.01, search_steps: int = 5, **kw):
        super().__init__(eps, steps=steps, **kw)
        self.c, self.kappa, self.lr, self.search_steps = c, kappa, lr, search_steps

    def _extra_repr(self):
        return [f"c={self.c:g}", f"kappa={self.kappa:g}", f"lr={self.lr:g}",
                f"search_steps={self.search_steps}"]

    def perturb(self, model, x, y):
        n = len(x)
        c = torch.full((n,), float(self.c), device=x.device)
        lo, hi = torch.zeros_like(c), torch.full_like(c, float("inf"))
        best, best_norm = x.clone(), torch.full_like(c, float("inf"))
        w0 = torch.atanh((x * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))
        for _ in range(self.search_steps):
            w = w0.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=self.lr)
            succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)
            for _ in range(self.steps):
                x_adv = (torch.tanh(w) + 1) / 2
                logits = model(x_adv)
                margin = margin_loss(logits, y)  # > 0 means fooled
                f = (-margin if not self.targeted else margin).clamp(min=-self.kappa)
                dist = (x_adv - x).flatten(1).pow(2).sum(1)
                opt.zero_grad()
                (dist + c * f).sum().backward()
                opt.step()
                with torch.no_grad():
                    ok = self.success(logits.detach(), y) & (f.detach() <= -self.kappa + 1e-12)
                    better = ok & (dist.sqrt() < best_norm)
                    best[better], best_norm[better] = x_adv.detach()[better], dist.sqrt()[better]
                    succeeded |= ok
            hi = torch.where(succeeded, torch.minimum(hi, c), hi)
            lo = torch.where(succeeded, lo, torch.maximum(lo, c))
            c = torch.where(hi < float("inf"), (lo + hi) / 2, c * 10)
        return torch.where(_view(best_norm <= self.eps, x), best, x)


class DeepFool(Attack):
    """DeepFool (Moosavi-Dezfooli et al., CVPR 2016): linearise the classifier at the current point
    and step to the nearest linearised decision boundary, until the label flips; overshoot 0.02. The
    minimal perturbation it finds is then projected into the L2 ε-ball."""

    name = "deepfool"
    norm = "l2"

    def __init__(self, eps: float = 1.0, steps: int = 50, overshoot: float = 0.02, **kw):
        super().__init__(eps, steps=steps, **kw)
        self.overshoot = overshoot

    def _extra_repr(self):
        return [f"overshoot={self.overshoot:g}"]

    def perturb(self, model, x, y):
        r = torch.zeros_like(x)
        rows = torch.arange(len(x), device=x.device)
        for _ in range(self.steps):
            xa = (x[rows] + (1 + self.overshoot) * r[rows]).clamp(0, 1).requires_grad_(True)
            logits = model(xa)
            keep = logits.argmax(1) == y[rows]
            if not keep.any():
                break
            grads = torch.stack([torch.autograd.grad(logits[:, k].sum(), xa, retain_graph=True)[0]
                                 for k in range(logits.shape[1])], 1)[keep]
            rows, z = rows[keep], logits.detach()[keep]
            yk, ar = y[rows], torch.arange(len(rows), device=x.device)
            w = grads - grads[ar, yk].unsqueeze(1)  # (n, K, ...) gradients of z_k − z_y
            f = z - z.gather(1, yk.view(-1, 1))
            w_norm = w.flatten(2).norm(dim=2) + 1e-8
            dist = f.abs() / w_norm
            dist[ar, yk] = float("inf")
            k = dist.argmin(1)
            r[rows] += _view(dist[ar, k] + 1e-4, x) * w[ar, k] / _view(w_norm[ar, k], x)
        return (x + (1 + self.overshoot) * r).clamp(0, 1)

"""Fast Adaptive Boundary attack, L∞ (survey taxonomy: attacks → white-box → minimal-perturbation;
Croce & Hein, ICML 2020, "Minimally distorted adversarial examples with a fast adaptive boundary
attack"), untargeted (``fab``) and the multi-targeted FAB-T that the standard AutoAttack runs
(``fab_t``).

FAB looks for the smallest L∞ perturbation that changes the label. Each step linearises the
classifier at the current point, picks the closest linearised decision boundary, projects both the
current point and the original image onto it (inside the [0, 1] box) and moves to a convex
combination of the two projections, biased towards the original image; once a point is
misclassified it steps back towards the original image to shrink the perturbation. As an evaluation
attack in the ε-ball, each image gets its smallest adversarial point when that point is within ε,
else it is returned unchanged.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import Attack


def project_on_hyperplane_linf(t: torch.Tensor, w: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Per row of t (n, D): the step d of smallest ‖d‖∞ with w·d = c and t + d in [0, 1]^D (FAB's
    projection onto the linearised boundary ∩ the box). Such a d moves every pixel by min(r, room)
    along sign(w·c), room being how far the pixel can go before leaving the box; r is the smallest
    radius whose reachable w·d attains c (a piecewise-linear function of r, solved between its sorted
    breakpoints). Where no r does, the step goes to the box corner that gets closest."""
    flip = torch.where(c < 0, -1.0, 1.0)
    w, c = w * flip.unsqueeze(1), (c * flip).unsqueeze(1)  # now w·d must rise by c ≥ 0
    room = torch.where(w > 0, 1 - t, t) * (w != 0)
    sorted_room, order = room.sort(1)
    weight = w.abs().gather(1, order)
    below = (weight * sorted_room).cumsum(1) - weight * sorted_room  # pixels saturated before it
    above = weight.flip(1).cumsum(1).flip(1)  # pixels still moving at radius sorted_room_k
    reach = below + sorted_room * above  # w·d reachable with radius sorted_room_k
    k = (reach < c).sum(1, keepdim=True)
    feasible = k < t.shape[1]
    k = k.clamp(max=t.shape[1] - 1)
    r = (c - below.gather(1, k)) / above.gather(1, k).clamp_min(1e-12)
    r = torch.where(feasible, r, torch.inf)
    return w.sign() * torch.minimum(r, room)


class FAB(Attack):
    """FAB, L∞, untargeted (Croce & Hein, ICML 2020): ``steps`` iterations per run, ``restarts`` runs
    (the first from the image, later ones from a random point at ε/2), step-back β, overshoot η,
    bias towards the original image α ≤ α_max. Each run attacks only the images no earlier run broke
    within ε; images misclassified from the start are left as they are."""

    name = "fab"

    def __init__(self, eps: float = 8, steps: int = 100, alpha_max: float = 0.1, eta: float = 1.05,
                 beta: float = 0.9, **kw):
        super().__init__(eps, steps=steps, **kw)
        if self.targeted:
            raise ConfigError(f"{self.name}: FAB picks its own targets; use fab_t (the n_targets most "
                              "likely wrong classes in turn) instead of targeted=True.")
        if not (0 < alpha_max <= 1 and eta >= 1 and 0 < beta < 1):
            raise ConfigError(f"{self.name}: needs 0 < alpha_max ≤ 1, eta ≥ 1 and 0 < beta < 1 (got "
                              f"{alpha_max}, {eta}, {beta}); the paper's values are 0.1, 1.05, 0.9.")
        self.alpha_max, self.eta, self.beta = alpha_max, eta, beta

    def _ranks(self, num_classes: int) -> list[int | None]:
        """Which target each round aims at: None (the closest boundary, untargeted)."""
        return [None]

    def perturb(self, model, x, y):
        gen = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            logits = model(x).float()
        out = x.clone()
        todo = (logits.argmax(1) == y).nonzero().view(-1)  # images still robust
        for rank in self._ranks(logits.shape[1]):
            for r in range(self.restarts):
                if len(todo) == 0:
                    return out
                xs = x[todo]
                target = None if rank is None else logits[todo].argsort(1, descending=True)[:, rank]
                start = xs
                if r > 0:
                    u = torch.rand(xs.shape, generator=gen).to(x.device) * 2 - 1
                    scale = self.eps / 2 / u.flatten(1).abs().amax(1).clamp_min(1e-12)
                    start = (xs + scale.view(-1, *[1] * (x.ndim - 1)) * u).clamp(0, 1)
                best, norm = self._run(model, xs, y[todo], target, start)
                broken = norm <= self.eps
                out[todo[broken]] = best[broken]
                todo = todo[~broken]
        return out

    def _run(self, model, x, y, target, x_k):
        """One FAB run from ``x_k``: (smallest-‖·‖∞ misclassified point found, its norm; inf if none)."""
        flat = x.flatten(1)
        best, best_norm = x.clone(), torch.full((len(x),), torch.inf, device=x.device)
        for _ in range(self.steps):
            f, g = self._boundary(model, x_k, y, target)  # f + g·(z − x_k) = 0: the closest boundary
            d_k = project_on_hyperplane_linf(x_k.flatten(1), g, -f)
            d_0 = project_on_hyperplane_linf(flat, g, -f - (g * (flat - x_k.flatten(1))).sum(1))
            n_k, n_0 = (d.abs().amax(1).clamp_min(1e-8) for d in (d_k, d_0))
            alpha = (n_k / (n_k + n_0)).clamp(max=self.alpha_max).unsqueeze(1)
            x_k = ((1 - alpha) * (x_k.flatten(1) + self.eta * d_k)
                   + alpha * (flat + self.eta * d_0)).clamp(0, 1).view_as(x)
            with torch.no_grad():
                fooled = model(x_k).argmax(1) != y
            norm = (x_k - x).flatten(1).abs().amax(1)
            better = fooled & (norm < best_norm)
            best[better], best_norm[better] = x_k[better], norm[better]
            x_k = torch.where(fooled.view(-1, *[1] * (x.ndim - 1)), x + self.beta * (x_k - x), x_k)
        return best, best_norm

    def _boundary(self, model, x, y, target):
        """(f, g) of the decision boundary closest in L∞ under linearisation: f = z_s − z_y at x and
        g = ∇x(z_s − z_y), flattened, for the wrong class s with the smallest |f| / ‖g‖₁."""
        x = x.detach().requires_grad_(True)
        z = model(x).float()
        ar = torch.arange(len(x), device=x.device)
        jac = torch.stack([torch.autograd.grad(z[:, k].sum(), x, retain_graph=k + 1 < z.shape[1])[0]
                           for k in range(z.shape[1])], 1).flatten(2).float()
        f, g = z.detach() - z.detach()[ar, y].unsqueeze(1), jac - jac[ar, y].unsqueeze(1)
        dist = f.abs() / (g.abs().sum(2) + 1e-12)
        dist[ar, y] = torch.inf
        s = dist.argmin(1)
        return f[ar, s], g[ar, s]


class FABT(FAB):
    """FAB-T, the targeted FAB of the standard AutoAttack (Croce & Hein, ICML 2020): one run per
    target, the ``n_targets`` most likely wrong classes in turn (at most K − 1), each on the images
    no earlier target broke; a run follows the boundary to its target class only, and an image
    counts as broken when it is misclassified (as any class) within ε."""

    name = "fab_t"

    def __init__(self, eps: float = 8, steps: int = 100, n_targets: int = 9, **kw):
        super().__init__(eps, steps=steps, **kw)
        if n_targets < 1:
            raise ConfigError(f"{self.name}: n_targets must be ≥ 1 (got {n_targets}); AutoAttack's "
                              "standard version uses 9 (at most K − 1 are used).")
        self.n_targets = n_targets

    def _ranks(self, num_classes: int) -> list[int | None]:
        return list(range(1, min(self.n_targets, num_classes - 1) + 1))

    def _boundary(self, model, x, y, target):
        x = x.detach().requires_grad_(True)
        z = model(x).float()
        ar = torch.arange(len(x), device=x.device)
        diff = z[ar, target] - z[ar, y]
        g = torch.autograd.grad(diff.sum(), x)[0].flatten(1).float()
        return diff.detach(), g

"""AutoAttack-style evaluation (survey taxonomy: attacks → evaluation of robustness; Croce & Hein,
ICML 2020): step-size-free APGD on cross-entropy and on the DLR loss, its targeted version, and a
cascade that also runs the query-based Square attack.

The cascade adapts to the number of classes K, because DLR needs the third-largest logit and its
targeted form the fourth: K = 2 (BreastMNIST, PneumoniaMNIST) runs APGD-CE + Square; K = 3 runs
APGD-CE + APGD-DLR + Square; K ≥ 4 runs APGD-CE + APGD-T (targeted DLR) + Square, as the standard
AutoAttack does (minus FAB-T). It never fails on binary tasks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import Attack, margin_loss
from .blackbox import Square


def dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Per-example Difference of Logits Ratio to ascend (Croce & Hein 2020): −(z_y − max_{i≠y} z_i) /
    (z_π1 − z_π3); targeted: −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2)."""
    z = logits.float()
    s = z.sort(1).values
    z_y = z.gather(1, y.view(-1, 1))[:, 0]
    if target is None:
        other = torch.where(s[:, -1] == z_y, s[:, -2], s[:, -1])
        return -(z_y - other) / (s[:, -1] - s[:, -3] + 1e-12)
    z_t = z.gather(1, target.view(-1, 1))[:, 0]
    return -(z_y - z_t) / (s[:, -1] - (s[:, -3] + s[:, -4]) / 2 + 1e-12)


def _checkpoints(steps: int) -> set[int]:
    """Iterations where APGD may halve its step: ⌈p_j·steps⌉ with p₀ = 0, p₁ = 0.22,
    p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return {math.ceil(q * steps) for q in p[1:] if q <= 1}


class APGD(Attack):
    """Auto-PGD L∞ (Croce & Hein, ICML 2020): step 2ε, momentum 0.75, the step halves at checkpoints
    where fewer than ρ = 75% of the steps increased the loss, or where neither the step nor the best
    loss changed; then it restarts from the best point. ``loss`` is "ce", "dlr" or "margin" (the CW
margin, for a second opinion on binary tasks where DLR is undefined). Each restart
    attacks only the examples still unbroken; with ``early_stop`` (default) a fooled example stops
    costing gradient steps."""

    name = "apgd_ce"
    default_loss = "ce"

    def __init__(self, eps: float = 8, steps: int = 100, rho: float = 0.75, **kw):
        kw.setdefault("loss", self.default_loss)
        kw.setdefault("early_stop", True)
        super().__init__(eps, steps=steps, **kw)
        if self.loss not in ("ce", "dlr", "margin"):
            raise ConfigError(f"{self.name}: loss must be 'ce', 'dlr' or 'margin', got {self.loss!r}.")
        self.rho = rho

    def _loss(self, logits, y, target):
        if self.loss == "dlr" or target is not None:
            if logits.shape[1] < (3 if target is None else 4):
                raise ConfigError(f"{self.name}: the DLR loss needs ≥ 3 classes (targeted: ≥ 4); "
                                  f"this model has {logits.shape[1]}. Use apgd_ce.")
            return dlr_loss(logits, y, target)
        if self.loss == "margin":
            return margin_loss(logits, y)
        return F.cross_entropy(logits.float(), y, reduction="none")

    def perturb(self, model, x, y):
        gen = torch.Generator().manual_seed(self.seed)
        best = x.clone()
        todo = torch.arange(len(x), device=x.device)
        for _ in range(self.restarts):
            x_adv, fooled = self._apgd(model, x[todo], y[todo], None, gen)
            best[todo] = x_adv
            todo = todo[~fooled]
            if len(todo) == 0:
                break
        return best

    def _apgd(self, model, x, y, target, gen):
        """One APGD run; returns (best point per example: first fooling one else highest loss, fooled)."""
        def loss_grad(xs, rows):
            xs = xs.detach().requires_grad_(True)
            logits = model(xs)
            loss = self._loss(logits, y[rows], None if target is None else target[rows])
            return loss.detach(), torch.autograd.grad(loss.sum(), xs)[0], logits.detach()

        n, eps = len(x), self.eps
        noise = torch.rand(x.shape, generator=gen).to(x.device) * 2 - 1
        x_k = self.project(x + eps * noise, x)
        rows = torch.arange(n, device=x.device)
        loss_k, g_k, logits = loss_grad(x_k, rows)
        fooled = self.success(logits, y)
        x_max, loss_max, g_max = x_k.clone(), loss_k.clone(), g_k.clone()
        out = torch.where(fooled.view(-1, *[1] * (x.ndim - 1)), x_k, x_max)
        eta = torch.full((n,), 2 * eps, device=x.device)
        x_prev, increases = x_k.clone(), torch.zeros(n, device=x.device)
        loss_at_check, reduced_at_check, last_check = loss_max.clone(), torch.zeros_like(fooled), 0
        checkpoints = _checkpoints(self.steps)
        rows = rows[~fooled] if self.early_stop else rows
        for k in range(self.steps):
            if len(rows) == 0:
                break
            step = eta[rows].view(-1, *[1] * (x.ndim - 1))
            z = self.project(x_k[rows] + step * g_k[rows].sign(), x[rows])
            if k > 0:
                xk, xp = x_k[rows], x_prev[rows]
                z = self.project(xk + 0.75 * (z - xk) + 0.25 * (xk - xp), x[rows])
            x_prev[rows] = x_k[rows]
            x_k[rows] = z
            loss_new, g_new, logits = loss_grad(z, rows)
            increases[rows] += (loss_new > loss_k[rows]).float()
            loss_k[rows], g_k[rows] = loss_new, g_new
            better = loss_new > loss_max[rows]
            up = rows[better]
            x_max[up], loss_max[up], g_max[up] = z[better], loss_new[better], g_new[better]
            hit = self.success(logits, y[rows])
            out[rows[hit]], fooled[rows[hit]] = z[hit], True
            if self.early_stop:
                rows = rows[~hit]
            if k + 1 in checkpoints:
                reduce = (increases < self.rho * (k + 1 - last_check)) | \
                         (~reduced_at_check & (loss_max <= loss_at_check))
                eta[reduce] /= 2
                x_k[reduce], g_k[reduce], loss_k[reduce] = x_max[reduce], g_max[reduce], loss_max[reduce]
                increases.zero_()
                reduced_at_check, loss_at_check, last_check = reduce, loss_max.clone(), k + 1
        out[~fooled] = x_max[~fooled]
        return out, fooled


class APGDDLR(APGD):
    """APGD on the DLR loss (needs ≥ 3 classes), invariant to the scale of the logits."""

    name = "apgd_dlr"
    default_loss = "dlr"


class APGDT(APGD):
    """Targeted APGD on the targeted DLR loss against each of the ``n_targets`` most likely wrong
    classes in turn (needs ≥ 4 classes); an example counts as broken when it is misclassified."""

    name = "apgd_t"
    default_loss = "dlr"

    def __init__(self, eps: float = 8, steps: int = 100, n_targets: int = 9, **kw):
        super().__init__(eps, steps=steps, **kw)
        self.n_targets = n_targets

    def perturb(self, model, x, y):
        gen = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            order = model(x).argsort(1, descending=True)
        best = x.clone()
        todo = torch.arange(len(x), device=x.device)
        for t in range(1, min(self.n_targets, order.shape[1] - 1) + 1):
            target = order[todo, t]
            target = torch.where(target == y[todo], order[todo, 0], target)  # skip the true class
            x_adv, fooled = self._apgd(model, x[todo], y[todo], target, gen)
            best[todo] = x_adv
            todo = todo[~fooled]
            if len(todo) == 0:
                break
        return best


class AutoAttack(Attack):
    """The AutoAttack-style cascade: each attack sees only the examples every earlier one left
    correctly classified. Stages by class count K (see the module docstring); ``stages`` after a
    call lists (attack, examples still robust after it)."""

    name = "autoattack"
    full_scores = False  # each stage attacks only what the earlier ones left robust

    def __init__(self, eps: float = 8, steps: int = 100, square_queries: int = 1000,
                 n_targets: int = 9, **kw):
        super().__init__(eps, steps=steps, **kw)
        self.square_queries, self.n_targets = square_queries, n_targets
        self.stages: list[tuple[str, int]] = []

    def attacks_for(self, num_classes: int) -> list[Attack]:
        """The cascade for a K-class model (binary: APGD-CE + Square)."""
        kw = {"eps": self.eps_units, "seed": self.seed}
        out: list[Attack] = [APGD(steps=self.steps, **kw)]
        if num_classes == 3:
            out.append(APGDDLR(steps=self.steps, **kw))
        elif num_classes >= 4:
            out.append(APGDT(steps=self.steps, n_targets=self.n_targets, **kw))
        return out + [Square(steps=self.square_queries, **kw)]

    def perturb(self, model, x, y):
        with torch.no_grad():
            logits = model(x)
        x_adv = x.clone()
        robust = ~self.success(logits, y)
        self.stages = [("clean", int(robust.sum()))]
        for attack in self.attacks_for(logits.shape[1]):
            idx = robust.nonzero().view(-1)
            if len(idx):
                x_adv[idx] = attack.perturb(model, x[idx], y[idx])
                self.queries += attack.queries
                with torch.no_grad():
                    robust[idx] = ~self.success(model(x_adv[idx]), y[idx])
            self.stages.append((attack.name, int(robust.sum())))
        return x_adv

"""AutoAttack (survey taxonomy: attacks → evaluation of robustness; Croce & Hein, ICML 2020,
"Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks"):
step-size-free APGD on cross-entropy and on the DLR loss, its targeted version, and the cascade.

``autoattack`` is the standard version, budgets fixed: APGD-CE (100 steps), APGD-T (targeted DLR,
9 targets × 100 steps), FAB-T (9 targets × 100 steps, ``fab.py``), Square (5000 queries), one
restart each, each stage on the images every earlier stage left correctly classified. ``aa_lite``
is the same cascade with the budgets you give it, and its name never says "AutoAttack" alone.

Targets are the min(9, K − 1) most likely wrong classes. Fewer than 4 classes need adapting, since
DLR needs the third-largest logit and its targeted form the fourth:

- K ≥ 4: as in the paper;
- K = 3: APGD-T ascends the targeted CW margin z_t − z_y instead of targeted DLR (2 targets);
- K = 2: no APGD-T: with one wrong class the targeted margin is a monotone function of the
  cross-entropy, so APGD on it (same seed) would retrace APGD-CE step for step; FAB-T has the one
  target and so is the untargeted FAB.

The attack's repr names exactly what ran on the last call, e.g.
``AutoAttack-standard(APGD-CE-100, APGD-T-4x100, FAB-T-4x100, Square-5000; eps=8/255)`` on a
5-class model, ``AA-lite(APGD-CE-20, Square-300; eps=8/255)`` for a reduced cascade on a binary one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import Attack, margin_loss
from .blackbox import Square
from .fab import FABT


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
        if self.loss == "margin":  # CW margin; targeted: z_t − z_y
            if target is None:
                return margin_loss(logits, y)
            z = logits.float()
            return (z.gather(1, target.view(-1, 1)) - z.gather(1, y.view(-1, 1)))[:, 0]
        if self.loss == "dlr":
            if logits.shape[1] < (3 if target is None else 4):
                raise ConfigError(f"{self.name}: the DLR loss needs ≥ 3 classes (targeted: ≥ 4); "
                                  f"this model has {logits.shape[1]}. Use apgd_ce, or loss='margin'.")
            return dlr_loss(logits, y, target)
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
    """Targeted APGD against each of the ``n_targets`` most likely wrong classes in turn (at most
    K − 1), on the targeted DLR loss (needs ≥ 4 classes) or the targeted CW margin z_t − z_y
    (``loss="margin"``, any K); an example counts as broken when it is misclassified."""

    name = "apgd_t"
    default_loss = "dlr"

    def __init__(self, eps: float = 8, steps: int = 100, n_targets: int = 9, **kw):
        super().__init__(eps, steps=steps, **kw)
        if self.loss not in ("dlr", "margin"):
            raise ConfigError(f"{self.name}: loss must be 'dlr' (targeted DLR) or 'margin' (targeted "
                              f"CW margin), got {self.loss!r}.")
        if n_targets < 1:
            raise ConfigError(f"{self.name}: n_targets must be ≥ 1 (got {n_targets}); AutoAttack's "
                              "standard version uses 9 (at most K − 1 are used).")
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
    """The standard AutoAttack, L∞ (Croce & Hein, ICML 2020), budgets fixed (module docstring):
    APGD-CE-100, APGD-T-9x100, FAB-T-9x100, Square-5000. For other budgets use :class:`AALite`.
    After a call ``stages`` lists (stage, images still robust after it), starting with "clean"."""

    name = "autoattack"
    label = "AutoAttack-standard"
    full_scores = False  # each stage attacks only what the earlier ones left robust

    def __init__(self, eps: float = 8, seed: int = 0, **budgets):
        if budgets:
            raise ConfigError(
                f"autoattack is the standard AutoAttack, whose budgets are fixed (APGD 100 steps, 9 "
                f"targets, FAB-T 100 steps, Square 5000 queries); got {budgets}. For a reduced "
                "cascade use make_attack('aa_lite', steps=..., n_targets=..., fab_steps=..., "
                "square_queries=...), which is named AA-lite in every result.")
        self._setup(eps, seed, steps=100, n_targets=9, fab_steps=100, square_queries=5000)

    def _setup(self, eps, seed, steps, n_targets, fab_steps, square_queries):
        super().__init__(eps, steps=steps, seed=seed)
        if n_targets < 1 or fab_steps < 0 or square_queries < 1:
            raise ConfigError(f"{self.name}: needs n_targets ≥ 1, fab_steps ≥ 0 (0: no FAB-T) and "
                              f"square_queries ≥ 1; got {n_targets}, {fab_steps}, {square_queries}.")
        self.n_targets, self.fab_steps, self.square_queries = n_targets, fab_steps, square_queries
        self.num_classes: int | None = None  # K of the last call
        self.stages: list[tuple[str, int]] = []

    def attacks_for(self, num_classes: int) -> list[Attack]:
        """The stages run on a K-class model, in order."""
        kw = {"eps": self.eps_units, "seed": self.seed}
        out: list[Attack] = [APGD(steps=self.steps, **kw)]
        if num_classes >= 3:
            out.append(APGDT(steps=self.steps, n_targets=self.n_targets,
                             loss="dlr" if num_classes >= 4 else "margin", **kw))
        if self.fab_steps:
            out.append(FABT(steps=self.fab_steps, n_targets=self.n_targets, **kw))
        return out + [Square(steps=self.square_queries, **kw)]

    def describe(self, num_classes: int | None = None) -> str:
        """What runs on a K-class model (default: the last call's K; before any call, K ≥ 10)."""
        k = num_classes or self.num_classes or self.n_targets + 1
        n = min(self.n_targets, k - 1)
        names = []
        for a in self.attacks_for(k):
            if isinstance(a, APGDT):
                names.append(f"APGD-T{'' if a.loss == 'dlr' else '(CW)'}-{n}x{a.steps}")
            elif isinstance(a, FABT):
                names.append(f"FAB-T-{n}x{a.steps}")
            elif isinstance(a, Square):
                names.append(f"Square-{a.steps}")
            else:
                names.append(f"APGD-CE-{a.steps}")
        return f"{self.label}({', '.join(names)}; eps={self.eps_units:g}/255)"

    def __repr__(self) -> str:
        return self.describe()

    def perturb(self, model, x, y):
        with torch.no_grad():
            logits = model(x)
        self.num_classes = logits.shape[1]
        x_adv = x.clone()
        robust = ~self.success(logits, y)
        self.stages = [("clean", int(robust.sum()))]
        for attack in self.attacks_for(self.num_classes):
            idx = robust.nonzero().view(-1)
            if len(idx):
                x_adv[idx] = attack.perturb(model, x[idx], y[idx])
                self.queries += attack.queries
                with torch.no_grad():
                    robust[idx] = ~self.success(model(x_adv[idx]), y[idx])
            self.stages.append((attack.name, int(robust.sum())))
        return x_adv


class AALite(AutoAttack):
    """A reduced AutoAttack cascade with explicit budgets, named ``AA-lite(...)`` in every result:
    APGD-CE (``steps``), APGD-T (``n_targets`` × ``steps``, K ≥ 3), FAB-T (``n_targets`` ×
    ``fab_steps``; 0 leaves it out), Square (``square_queries``). The defaults are the cpu
    benchmark's: ``AA-lite(APGD-CE-20, APGD-T-9x20, Square-300; eps=8/255)``."""

    name = "aa_lite"
    label = "AA-lite"

    def __init__(self, eps: float = 8, steps: int = 20, n_targets: int = 9, fab_steps: int = 0,
                 square_queries: int = 300, seed: int = 0):
        self._setup(eps, seed, steps, n_targets, fab_steps, square_queries)

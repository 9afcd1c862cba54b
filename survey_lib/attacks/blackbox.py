"""Black-box attacks (survey taxonomy: attacks → black-box → query-based and transfer-based).

Query-based attacks see only the model's output scores, never its gradients, and count their
queries in ``attack.queries`` (model evaluations of the last call, summed over images). The
transfer attack crafts examples on a separately trained surrogate and never queries the target.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .base import Attack, margin_loss


class Square(Attack):
    """Square Attack, L∞, score-based (Andriushchenko et al., ECCV 2020).

    Start from vertical stripes of ±ε; each iteration redraws one random square window (side from the
    p-schedule, one ±ε value per channel) and keeps it when the CW margin z_y − max_{i≠y} z_i drops.
    ``steps`` is the query budget per image; fooled images stop querying.
    """

    name = "square"
    black_box = True
    full_scores = False  # fooled images stop querying

    def __init__(self, eps: float = 8, steps: int = 1000, p_init: float = 0.8, **kw):
        kw.setdefault("random_start", False)
        super().__init__(eps, steps=steps, **kw)
        self.p_init = p_init

    def _extra_repr(self):
        return [f"p_init={self.p_init:g}"]

    def _p(self, i: int) -> float:
        """The fraction of pixels changed at iteration i (the paper's schedule, scaled to 10k iterations)."""
        i = int(i / self.steps * 10000)
        cuts = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
        return self.p_init / 2 ** sum(i > c for c in cuts)

    def _margin(self, model, x, y):
        with torch.no_grad():
            m = -margin_loss(model(x), y)  # > 0: still correct; targeted: the target's margin
        self.queries += len(x)
        return -m if self.targeted else m

    def perturb(self, model, x, y):
        gen = torch.Generator().manual_seed(self.seed)
        n, c, h, w = x.shape[0], x.shape[1], x.shape[-2], x.shape[-1]
        lead = x.shape[2:-2]  # the depth of a volume, else ()
        stripes = (torch.randint(0, 2, (n, c, *[1] * len(lead), 1, w), generator=gen) * 2 - 1).float()
        x_best = (x + self.eps * stripes.to(x.device)).clamp(0, 1)
        margin = self._margin(model, x_best, y)
        for i in range(self.steps - 1):
            rows = (margin > 0).nonzero().view(-1)
            if len(rows) == 0:
                break
            s = max(min(round((self._p(i) * h * w) ** 0.5), h - 1), 1)
            top = torch.randint(0, h - s + 1, (len(rows),), generator=gen).to(x.device)
            left = torch.randint(0, w - s + 1, (len(rows),), generator=gen).to(x.device)
            signs = (torch.randint(0, 2, (len(rows), c), generator=gen) * 2 - 1).float()
            x_new = self.candidate(x[rows], x_best[rows], top, left, s, signs.to(x.device))
            m_new = self._margin(model, x_new, y[rows])
            better = m_new < margin[rows]
            x_best[rows[better]], margin[rows[better]] = x_new[better], m_new[better]
        return x_best

    def candidate(self, x, x_best, top, left, s, signs):
        """One proposal: inside each image's s×s window with corner (top, left) (the last two
        dimensions), channel c is set to x + signs[:, c]·ε; elsewhere the current perturbation
        x_best − x is kept; clamped to [0, 1]."""
        n, h, w = len(x), x.shape[-2], x.shape[-1]
        hh = torch.arange(h, device=x.device).view(1, -1) - top.view(-1, 1)
        ww = torch.arange(w, device=x.device).view(1, -1) - left.view(-1, 1)
        win = ((hh >= 0) & (hh < s)).view(n, h, 1) & ((ww >= 0) & (ww < s)).view(n, 1, w)
        win = win.view(n, *[1] * (x.ndim - 3), h, w)
        step = self.eps * signs.view(n, -1, *[1] * (x.ndim - 2))
        return (x + torch.where(win, step, x_best - x)).clamp(0, 1)


class SimBA(Attack):
    """Simple Black-box Attack, pixel basis (Guo et al., ICML 2019): for randomly ordered pixels q,
    try x + ε·e_q, else x − ε·e_q, keeping a step when the probability of the true class drops.
    Each pixel is tried once, so the result stays in the L∞ ε-ball; ``steps`` pixels are tried
    (1–2 queries each); fooled images stop querying."""

    name = "simba"
    black_box = True
    full_scores = False  # fooled images stop querying

    def __init__(self, eps: float = 16, steps: int = 500, **kw):
        kw.setdefault("random_start", False)
        super().__init__(eps, steps=steps, **kw)

    def _query(self, model, x, y):
        """(probability of the true class — negated when targeted — and whether it is fooled)."""
        with torch.no_grad():
            logits = model(x)
        self.queries += len(x)
        p = torch.softmax(logits.float(), 1).gather(1, y.view(-1, 1))[:, 0]
        return (-p if self.targeted else p), self.success(logits, y)

    def perturb(self, model, x, y):
        gen = torch.Generator().manual_seed(self.seed)
        flat = x.reshape(len(x), -1)
        x_adv = flat.clone()
        prob, fooled = self._query(model, x, y)
        for q in torch.randperm(flat.shape[1], generator=gen)[: self.steps].tolist():
            rows = (~fooled).nonzero().view(-1)
            if len(rows) == 0:
                break
            for sign in (1.0, -1.0):
                trial = x_adv[rows].clone()
                trial[:, q] = (flat[rows, q] + sign * self.eps).clamp(0, 1)
                p, f = self._query(model, trial.view(-1, *x.shape[1:]), y[rows])
                better = p < prob[rows]
                won = rows[better]
                x_adv[won], prob[won], fooled[won] = trial[better], p[better], f[better]
                rows = rows[~better]
                if len(rows) == 0:
                    break
        return x_adv.view_as(x)


class Transfer(Attack):
    """Transfer attack (Papernot et al. 2016; Liu et al., ICLR 2017): craft the examples with a
    white-box attack (``base``, default PGD) on a ``surrogate`` model trained separately, and hand
    them to the target, which is never queried nor differentiated."""

    name = "transfer"
    black_box = True

    def __init__(self, eps: float = 8, steps: int = 10, surrogate: nn.Module | None = None,
                 base: str = "pgd", surrogate_name: str = "unnamed", **kw):
        super().__init__(eps, steps=steps, **kw)
        from . import make_attack

        self.surrogate, self.surrogate_name = surrogate, surrogate_name
        self.base = make_attack(base, eps=eps, steps=steps, **kw)
        self.norm, self.eps = self.base.norm, self.base.eps  # the budget is the base attack's

    @property
    def full_scores(self) -> bool:
        return self.base.full_scores

    def __repr__(self) -> str:
        return f"Transfer(base={self.base!r}, surrogate={self.surrogate_name})"

    def perturb(self, model, x, y):
        if self.surrogate is None:
            raise ConfigError("transfer: needs a surrogate model trained separately: "
                              "make_attack('transfer', surrogate=other_model). A different seed of "
                              "train_baseline gives one.")
        self.surrogate.to(x.device)
        return self.base(self.surrogate, x, y, target=y if self.targeted else None)

"""The one attack interface: ``attack(model, x, y) -> x_adv``.

An :class:`Attack` is configured with its threat model (norm, ε, steps, step size, restarts,
targeted) and called on a model, images in [0, 1] and labels (N,) or (N, 1). The base class does
the bookkeeping every attack needs, so each algorithm file holds only its algorithm:

- validates the inputs once per call (:mod:`survey_lib.validation`: ε in /255 units and at least half
  a grey level, images finite and inside [0, 1], labels of any integer dtype, (N,) or (N, 1));
- puts the model in eval mode (BatchNorm statistics never move) and restores its mode afterwards;
- takes gradients with respect to the input only (parameter ``.grad`` fields are never touched);
- warns once when the model seems to return probabilities instead of logits;
- clamps the result to [0, 1] and checks it stays inside the ε-ball.

ε for L∞ is given in /255 units (``eps=8`` means 8/255; ``eps_unit="pixel"`` accepts the [0, 1]
scale, ``eps=0.03``); step sizes in the same unit (they may be below 1/255); L2 ε in pixel units.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .. import validation
from ..errors import ConfigError
from ..losses import dice_loss


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example CW margin to ascend: max_{i≠y} z_i − z_y (Carlini & Wagner, S&P 2017)."""
    z = logits.float()
    z_y = z.gather(1, y.view(-1, 1))[:, 0]
    other = z.scatter(1, y.view(-1, 1), float("-inf")).amax(1)
    return other - z_y


def attack_loss(logits: torch.Tensor, y: torch.Tensor, task: str = "auto") -> torch.Tensor:
    """Loss to ascend, summed over the batch so each example's gradient does not depend on the batch
    size. ``task``: "auto" picks cross-entropy (single-label), BCE-with-logits (multi-label: float
    targets shaped like the logits) or per-pixel cross-entropy (segmentation logits (N, C, H, W));
    "ce", "bce", "margin" (CW) and "dice" (soft Dice of the lesion map, segmentation) force one."""
    logits = logits.float()
    if task == "margin":
        return margin_loss(logits, y).sum()
    if task == "dice":
        return dice_loss(logits, y) * len(logits)  # dice_loss is a mean over the batch
    if task in ("multi-label", "bce") or (task == "auto" and y.is_floating_point()
                                          and y.shape == logits.shape):
        bce = F.binary_cross_entropy_with_logits(logits, y.float(), reduction="none")
        return bce.flatten(1).mean(1).sum()
    if logits.ndim > 2:  # segmentation: mean over pixels, sum over images
        return F.cross_entropy(logits, y, reduction="none").flatten(1).mean(1).sum()
    if task not in ("auto", "ce"):
        raise ConfigError(f"Unknown attack loss {task!r}. Valid: auto, ce, bce, margin, dice.")
    return F.cross_entropy(logits, y, reduction="sum")


@contextlib.contextmanager
def frozen(model: nn.Module):
    """Eval mode and parameters without gradients for the duration; both restored afterwards."""
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)


class Attack:
    """Base class. Subclasses set ``name`` and ``norm`` and implement :meth:`perturb`."""

    name = "attack"
    norm = "linf"  # "linf" | "l2" | "patch" | "universal"
    black_box = False
    task = "classification"  # "segmentation" for the attacks on per-pixel outputs

    def __init__(self, eps: float = 8, steps: int = 10, step_size: float | None = None,
                 restarts: int = 1, targeted: bool = False, random_start: bool = True,
                 loss: str = "auto", seed: int = 0, early_stop: bool = False,
                 eps_unit: str = "/255"):
        linf = self.norm in ("linf", "universal")
        if linf:
            eps = validation.linf_eps(eps, self.name, eps_unit)
        elif self.norm == "l2":
            eps = validation.l2_eps(eps, self.name)
        if steps < 1 or restarts < 1:
            raise ConfigError(f"{self.name}: steps and restarts must be ≥ 1 (got {steps}, {restarts}).")
        self.eps_units = eps
        self.eps = eps / 255 if linf else float(eps)
        self.steps, self.restarts, self.targeted = steps, restarts, targeted
        if step_size is not None:  # same unit as ε: /255 for L∞ (may be below 1), pixels for L2
            step_size = validation.step(step_size, self.name, eps_unit if linf else "/255")
        self.step_size = self._default_step() if step_size is None else (
            step_size / 255 if linf else step_size)
        self.random_start, self.loss, self.seed = random_start, loss, seed
        # early_stop: stop spending steps on examples already fooled, keeping what fooled them
        self.early_stop = early_stop
        self.queries = 0  # model evaluations of the last call, summed over images (black-box)

    def _default_step(self) -> float:
        return 2.5 * self.eps / self.steps  # Madry et al. 2018's rule of thumb

    @property
    def full_scores(self) -> bool:
        """Whether the output scores of its adversarial examples are those of the whole attack. An
        attack that stops working on an example once it is fooled keeps the first fooling point:
        right for accuracy, but its scores are not the full attack's, so no AUC is computed on them."""
        return not self.early_stop

    def __repr__(self) -> str:
        """The exact configuration, as result rows record it."""
        linf = self.norm in ("linf", "universal")
        unit, scale = ("/255", 255) if linf else ("", 1)
        parts = [f"eps={self.eps_units:g}{unit}", f"steps={self.steps}",
                 f"step={self.step_size * scale:.4g}{unit}", f"restarts={self.restarts}",
                 f"loss={self.loss}", f"random_start={self.random_start}",
                 f"early_stop={self.early_stop}", f"seed={self.seed}"]
        if self.targeted:
            parts.append("targeted")
        return f"{type(self).__name__}({', '.join(parts + self._extra_repr())})"

    def _extra_repr(self) -> list[str]:
        """Settings of a subclass that its repr must name."""
        return []

    # ------------------------------------------------------------------ the call
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 target: torch.Tensor | None = None) -> torch.Tensor:
        validation.images(x, f"{self.name}: images")
        if self.targeted and target is None:
            raise ConfigError(f"{self.name}: a targeted attack needs target labels: "
                              "call attack(model, x, y, target=...).")
        self.queries = 0
        with frozen(model):
            out = self._check_logits(model, x[:8])
            y = self._labels(y, x, out)
            goal = self._labels(target, x, out, "target labels") if self.targeted else y
            x_adv = self.perturb(model, x.detach(), goal).detach()
            if self.norm in ("linf", "l2", "universal"):  # the guarantee: inside the ε-ball and [0, 1]
                x_adv = self.project(x_adv, x.detach())
        return x_adv.clamp_(0, 1)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers for subclasses
    @staticmethod
    def _labels(y: torch.Tensor, x: torch.Tensor, out: torch.Tensor, what: str = "labels") -> torch.Tensor:
        """Labels in their canonical form (:func:`survey_lib.validation.labels`), on ``x``'s device.
        The model's output ``out`` tells the task: per-pixel maps are segmentation; float labels
        shaped like the logits are multi-label targets; anything else is single-label."""
        if out.ndim > 2:
            task = "segmentation"
        elif isinstance(y, torch.Tensor) and y.is_floating_point() and y.ndim == 2 and \
                y.shape[1] == out.shape[1] and out.shape[1] > 1 and not bool((y.sum(1) == 1).all()):
            task = "multi-label"
        else:
            task = "multi-class"
        return validation.labels(y, len(x), task, out.shape[1], what).to(x.device)

    def _fit_labels(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images and labels checked at the entry of a fitting method (universal attacks)."""
        validation.images(x, f"{self.name}: images")
        with frozen(model):
            out = self._check_logits(model, x[:8].to(next(model.parameters()).device))
        return self._labels(y, x, out).cpu()

    def _check_logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The model's output on a few images; warns once when it looks like probabilities."""
        with torch.no_grad():
            out = model(x).float()
        if out.ndim == 2 and out.shape[1] > 1 and bool((out >= 0).all() and (out <= 1).all()) and \
                torch.allclose(out.sum(1), torch.ones(len(out), device=out.device), atol=1e-3):
            warnings.warn(f"{self.name}: the model's outputs are non-negative and sum to 1 per row: "
                          "it seems to return probabilities. Attacks need logits (remove the final "
                          "softmax); gradients through a saturated softmax vanish.", stacklevel=3)
        return out

    def loss_value(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The scalar to ascend (descend for targeted attacks)."""
        loss = attack_loss(model(x), y, "auto" if self.loss == "auto" else self.loss)
        return -loss if self.targeted else loss

    def grad(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Gradient of :meth:`loss_value` with respect to the input only."""
        return self.grad_and_logits(model, x, y)[0]

    def grad_and_logits(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        """(input gradient of :meth:`loss_value`, the logits of that same forward pass)."""
        x = x.detach().requires_grad_(True)
        logits = model(x)
        loss = attack_loss(logits, y, "auto" if self.loss == "auto" else self.loss)
        g = torch.autograd.grad(-loss if self.targeted else loss, x)[0]
        return g, logits.detach()

    def success(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per example: does the output already satisfy the attack (misclassified, or the target
        class for a targeted attack)? Never true for per-pixel (segmentation) outputs."""
        if logits.ndim > 2:
            return torch.zeros(len(logits), dtype=torch.bool, device=logits.device)
        if y.is_floating_point() and y.shape == logits.shape:  # multi-label
            same = ((logits > 0).float() == y).all(1)
            return same if self.targeted else ~same
        pred = logits.argmax(1)
        return pred == y if self.targeted else pred != y

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Project onto the ε-ball around ``x`` (L∞ or L2) and onto [0, 1]."""
        delta = x_adv - x
        if self.norm == "l2":
            norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
            delta = delta * (self.eps / norms).clamp(max=1.0).view(-1, *[1] * (x.ndim - 1))
        else:
            delta = delta.clamp(-self.eps, self.eps)
        return (x + delta).clamp(0, 1)

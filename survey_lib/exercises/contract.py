"""What a check asserts besides the numbers: the contract a task's docstring states.

Every property helper returns a list of messages, each naming one violated property ("pixels
outside [0, 1]", "gradients left on the model"); :func:`require` raises :class:`Violation` with all
of them, and with the name of the known mistake the result matches, if any. :class:`Student` calls a
student's function while watching for calls into the package's own implementation of the task:
``sys.setprofile`` sees a call to the reference's code object whatever name it was imported under,
so a solution that merely delegates to ``survey_lib`` is reported, not graded as correct.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch


class Violation(Exception):
    """A property of the task the student's function breaks; the message names it."""


def require(messages: Iterable[str], out=None, mistakes: Callable[[], list] | None = None) -> None:
    """Raise :class:`Violation` listing ``messages`` (if any), adding the known mistake that
    ``out`` reproduces (see :func:`diagnose`)."""
    messages = [m for m in messages if m]
    if messages:
        raise Violation("; ".join(messages + [diagnose(out, mistakes)]).rstrip("; "))


def diagnose(out, mistakes: Callable[[], list] | None, tol: float = 1e-6) -> str:
    """'it matches a known mistake: …' when ``out`` equals, within ``tol``, what one of the
    ``(description, result)`` pairs returned by ``mistakes()`` gives; else ''."""
    if mistakes is None or not isinstance(out, torch.Tensor):
        return ""
    with warnings.catch_warnings():  # a mistake may use a deprecated default (kl_div's reduction)
        warnings.simplefilter("ignore")
        known = mistakes()
    for description, value in known:
        if out.shape == value.shape and _max_diff(out, value) <= tol:
            return f"it matches a known mistake: {description}"
    return ""


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    diff = (a.detach().double() - b.detach().double()).abs()
    return float("nan") if diff.isnan().any() else diff.max().item() if diff.numel() else 0.0


def match(out: torch.Tensor, ref: torch.Tensor, tol: float, what: str,
          mistakes: Callable[[], list] | None = None) -> str:
    """The pass message when ``out`` equals ``ref`` within ``tol``; else raise :class:`Violation`
    naming the known mistake it reproduces, or the largest difference."""
    diff = _max_diff(out, ref)
    if diff <= tol:  # also false for NaN
        return f"matches {what} (max |Δ| = {diff:.1e}, tolerance {tol:g})"
    known = diagnose(out, mistakes, tol)
    raise Violation(f"{known} (max |Δ| = {diff:.3g} to {what})" if known else
                    f"differs from {what}: max |Δ| = {diff:.3g} (tolerance {tol:g})")


# ---------------------------------------------------------------------------- properties
def tensor_like(out, shape: tuple, what: str = "the result") -> list[str]:
    expected = "a scalar tensor (shape ())" if tuple(shape) == () else f"shape {tuple(shape)}"
    if not isinstance(out, torch.Tensor):
        return [f"{what} is a {type(out).__name__}, expected a tensor of {expected}"]
    if tuple(out.shape) != tuple(shape):
        return [f"{what} has shape {tuple(out.shape)}, expected {expected}"]
    if not out.is_floating_point():
        return [f"{what} has dtype {out.dtype}, expected floating point"]
    return []


def finite(out: torch.Tensor, hint: str = "") -> list[str]:
    bad = ~torch.isfinite(out.detach())
    if not bad.any():
        return []
    where = f" (image {bad.flatten(1).any(1).nonzero()[0].item()})" if out.ndim > 1 else ""
    return [f"NaN or ∞ in the result{where}{': ' + hint if hint else ''}"]


def detached(out: torch.Tensor) -> list[str]:
    if out.requires_grad or out.grad_fn is not None:
        return ["the result carries gradient history (requires_grad=True): return it detached "
                "(x_adv.detach())"]
    return []


def in_unit_range(out: torch.Tensor) -> list[str]:
    lo, hi = out.min().item(), out.max().item()
    if lo < 0 or hi > 1:
        return [f"pixels outside [0, 1] (min {lo:.3g}, max {hi:.3g}): clip the images to the valid "
                "range, .clamp(0, 1)"]
    return []


def in_linf_ball(out: torch.Tensor, x: torch.Tensor, eps_units: float) -> list[str]:
    """Per image: max |out − x| ≤ ε (ε in /255 units)."""
    dist = (out.detach() - x).abs().flatten(1).amax(1) * 255
    worst = int(dist.argmax())
    if dist[worst] > eps_units * (1 + 1e-4) + 1e-4:
        return [f"per-image L∞ distance {dist[worst]:.2f}/255 > ε = {eps_units:g}/255 (image {worst}): "
                "the perturbation must stay in the ε-ball (ε is given in /255 units)"]
    return []


def in_l2_ball(out: torch.Tensor, x: torch.Tensor, eps: float) -> list[str]:
    """Per image: ‖out − x‖₂ over all channels and pixels ≤ ε."""
    norms = (out.detach() - x).flatten(1).norm(dim=1)
    worst = int(norms.argmax())
    if norms[worst] > eps * (1 + 1e-5):
        return [f"per-image L2 norm {norms[worst]:.2f} > ε = {eps:g} (image {worst} of a batch of "
                f"{x.shape[1]}-channel images): the norm is taken over all channels and pixels of "
                "each image"]
    return []


def differentiable(out: torch.Tensor, inputs: dict[str, torch.Tensor]) -> list[str]:
    """The loss ``out`` must carry a non-zero gradient back to each of ``inputs``."""
    if not out.requires_grad:
        return ["the loss carries no gradient (computed under no_grad, detached, or from argmax or "
                ".item()): training and attacks back-propagate through it"]
    grads = torch.autograd.grad(out, list(inputs.values()), allow_unused=True, retain_graph=True)
    return [f"no gradient reaches {name}: keep the loss differentiable in it (no .detach(), argmax or "
            ".item() on the way)" for name, g in zip(inputs, grads) if g is None or not g.abs().sum() > 0]


def unchanged(inputs: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> list[str]:
    """``{name: (tensor passed, copy kept)}``: the inputs must not be modified in place."""
    return [f"modifies its input {name} in place: work on a copy (e.g. {name}.clone())"
            for name, (passed, kept) in inputs.items()
            if passed.shape != kept.shape or not torch.equal(passed.detach(), kept)]


@dataclass
class ModelState:
    """A model's mode and state (weights, BatchNorm statistics), to compare after a call."""

    training: bool
    state: dict

    @classmethod
    def of(cls, model: torch.nn.Module) -> ModelState:
        return cls(model.training, {k: v.detach().clone() for k, v in model.state_dict().items()})

    def changes(self, model: torch.nn.Module, grads: bool = True) -> list[str]:
        """What a function that must leave the model alone changed in it."""
        messages = []
        if grads and any(p.grad is not None for p in model.parameters()):
            messages.append("gradients left on the model's parameters (p.grad is set, e.g. by "
                            "loss.backward()): take the input gradient with torch.autograd.grad(loss, "
                            "x), which leaves the model's .grad fields alone")
        if model.training != self.training:
            messages.append(f"leaves the model in {'train' if model.training else 'eval'} mode (it "
                            f"was given in {'train' if self.training else 'eval'} mode): restore it")
        moved = [k for k, v in model.state_dict().items() if not torch.equal(v, self.state[k])]
        if moved:
            messages.append(f"changes the model's state ({moved[0]}"
                            f"{f' and {len(moved) - 1} more' if len(moved) > 1 else ''}): the "
                            "weights and BatchNorm statistics must not move (a forward pass in "
                            "train mode updates BatchNorm's running statistics)")
        return messages


# ---------------------------------------------------------------------------- the student's function
def _code(target: str):
    """The code object of ``"module:Qualified.name"``."""
    module, _, qualname = target.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return inspect.unwrap(obj).__code__


class Student:
    """Calls a student's function with the package's reference implementations of the task watched.

    ``references`` are ``"module:Qualified.name"`` strings; a call to one of them while the
    student's function runs (directly or through any object of the package) is a
    :class:`Violation`. ``calls`` counts the completed calls.
    """

    def __init__(self, fn: Callable, references: Iterable[str] = ()):
        self.fn = fn
        self.references = {_code(r): r.replace(":", ".") for r in references}
        self.calls = 0

    def __call__(self, *args):
        hits: list[str] = []
        codes, previous = self.references, sys.getprofile()

        def watch(frame, event, arg):
            if event == "call" and frame.f_code in codes:
                hits.append(codes[frame.f_code])
            if previous is not None:
                previous(frame, event, arg)

        sys.setprofile(watch)
        try:
            out = self.fn(*args)
        finally:
            sys.setprofile(previous)
        if hits:
            raise Violation(f"calls survey_lib's own implementation of the task ({hits[0]}): "
                            "the exercise is to write the computation yourself")
        self.calls += 1
        return out

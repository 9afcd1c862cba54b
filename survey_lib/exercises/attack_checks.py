"""The checks of the attack exercises (notebooks 01, 02, 04): FGSM, PGD, the L2 projection,
Square's proposal, the soft Dice loss and the Dice-loss attack.

Each check calls the student's function (a :class:`~.contract.Student`) on fixed inputs, asserts
the task's contract (no gradient history, the model left alone, images in [0, 1] and in the ε-ball
per image, ``noise`` honoured, inputs not modified) and compares the result with the package's
implementation. A mismatch is named when it equals what a known mistake gives (the ``*_mistakes``
functions re-derive those mistakes from the same inputs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .contract import (
    ModelState,
    detached,
    differentiable,
    finite,
    in_l2_ball,
    in_linf_ball,
    in_unit_range,
    match,
    require,
    tensor_like,
    unchanged,
)
from .inputs import (
    batch,
    classifier,
    l2_pairs,
    logit_maps,
    pgd_noise,
    segmentation_batch,
    square_inputs,
    unet,
)

ATTACK = ("survey_lib.attacks.base:Attack.__call__", "survey_lib.attacks.base:Attack.grad_and_logits",
          "survey_lib.attacks.base:Attack.project")


def _ce(logits, y):
    return F.cross_entropy(logits, y, reduction="sum")


def _dice(logits, masks):
    from ..losses import dice_loss

    return dice_loss(logits, masks)


def _input_grad(model, x, y, loss):
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(loss(model(x), y), x)[0]


def attack_call(student, model, x, y, eps_units, *args, noise=None, mistakes=None) -> torch.Tensor:
    """Call an attack exercise on copies of the inputs and assert the attack contract: a detached
    tensor shaped like x, in [0, 1] and in the L∞ ε-ball per image, the model (mode, weights,
    BatchNorm statistics, .grad fields) and the inputs left as they were."""
    before = ModelState.of(model)
    kept = {"x": x, "y": y, **({"noise": noise} if noise is not None else {})}
    passed = {k: v.clone() for k, v in kept.items()}
    out = student(model, passed["x"], passed["y"], eps_units, *args,
                  *([passed["noise"]] if noise is not None else []))
    require(tensor_like(out, x.shape), out, mistakes)
    require([*finite(out), *detached(out), *before.changes(model),
             *unchanged({k: (passed[k], kept[k]) for k in kept}), *in_unit_range(out),
             *in_linf_ball(out, x, eps_units)], out, mistakes)
    return out.detach()


# ---------------------------------------------------------------------------- 01.fgsm
def _fgsm_mistakes(model, x, y, eps_units):
    g, eps = _input_grad(model, x, y, _ce), eps_units / 255
    return [("it steps down the loss, x − ε·sign(∇); FGSM steps up, x + ε·sign(∇x loss)",
             (x - eps * g.sign()).clamp(0, 1)),
            ("it steps along the raw gradient ∇ instead of its sign", (x + eps * g).clamp(0, 1))]


def check_fgsm(fgsm) -> str:
    from ..attacks import FGSM

    model = classifier()
    x, y = batch()
    messages = []
    for eps in (8, 2):
        mistakes = lambda eps=eps: _fgsm_mistakes(model, x, y, eps)  # noqa: E731
        out = attack_call(fgsm, model, x, y, eps, mistakes=mistakes)
        messages.append(match(out, FGSM(eps=eps)(model, x, y), 1e-6,
                              f"survey_lib's FGSM at ε = {eps}/255 on 8 images", mistakes))
    return messages[0]


# ---------------------------------------------------------------------------- 01.pgd, 04.dice_pgd
def _pgd_path(model, x, y, eps_units, steps, step_units, noise, loss, start="projected",
              at_clean=False, direction=1):
    """PGD L∞ as the task states it, with one of the switches set the way a mistake sets it."""
    eps, step = eps_units / 255, step_units / 255

    def project(z):
        return (x + (z - x).clamp(-eps, eps)).clamp(0, 1)

    x_adv = {"projected": project(x + eps * noise), "raw": x + eps * noise,
             "unscaled": project(x + noise)}[start]
    for _ in range(steps):
        g = _input_grad(model, x if at_clean else x_adv, y, loss)
        x_adv = project(x_adv + direction * step * g.sign())
    return x_adv


def _pgd_mistakes(model, x, y, eps, steps, step, noise, loss, loss_name, others=()):
    def path(step_units=step, loss=loss, **kw):
        return _pgd_path(model, x, y, eps, steps, step_units, noise, loss, **kw)

    return lambda: [
        ("the random start x + ε·noise is not projected onto [0, 1] before the first gradient "
         "step (project the start as you project every step)", path(start="raw")),
        ("the gradient is taken at the clean image x at every step instead of at the current x_adv",
         path(at_clean=True)),
        (f"it descends the {loss_name} (x − α·sign ∇): the attack ascends it", path(direction=-1)),
        ("the random start is x + noise instead of x + ε·noise", path(start="unscaled")),
        ("step_size is used in pixel units; like ε it is given in /255", path(step_units=step * 255)),
        *[(f"it ascends the {name} instead of the {loss_name}", path(loss=other))
          for name, other in others]]


def _check_pgd_like(student, model, x, y, eps, steps, step, seeds, reference, loss, loss_name, what,
                    others=()) -> str:
    """PGD-type exercises: the contract for two noises, the noise honoured, then the numbers."""
    runs = []
    for seed in seeds:
        noise = pgd_noise(x, seed)
        mistakes = _pgd_mistakes(model, x, y, eps, steps, step, noise, loss, loss_name, others)
        runs.append((attack_call(student, model, x, y, eps, steps, step, noise=noise,
                                 mistakes=mistakes), mistakes, reference(seed)))
    again = attack_call(student, model, x, y, eps, steps, step, noise=pgd_noise(x, seeds[0]))
    first, second = runs[0][0], runs[1][0]
    require(["the result changes between two calls with the same `noise`: it draws its own "
             "randomness; start from x + ε·noise with the noise given"
             if (again - first).abs().max() > 1e-6 else "",
             "`noise` argument ignored: two different noises give the same images; start from "
             "x + ε·noise, projected" if torch.equal(first, second) else ""])
    return [match(out, ref, 1e-6, what, mistakes) for out, mistakes, ref in runs][0]


def check_pgd(pgd) -> str:
    from ..attacks import PGD

    model = classifier()
    x, y = batch(seed=1)
    return _check_pgd_like(
        pgd, model, x, y, 8, 5, 2, (7, 8),
        lambda seed: PGD(eps=8, steps=5, step_size=2, seed=seed)(model, x, y), _ce, "cross-entropy",
        "survey_lib's PGD (ε = 8/255, 5 steps of 2/255, same random start) on 8 images")


def check_dice_pgd(dice_pgd) -> str:
    from ..attacks import SegPGDDice

    model = unet()
    x, masks = segmentation_batch()
    return _check_pgd_like(
        dice_pgd, model, x, masks, 8, 3, 3, (11, 12),
        lambda seed: SegPGDDice(eps=8, steps=3, step_size=3, seed=seed)(model, x, masks), _dice,
        "soft Dice loss", "survey_lib's seg_pgd_dice (ε = 8/255, 3 steps of 3/255, same random "
        "start) on a tiny U-Net", others=[("cross-entropy", F.cross_entropy)])


# ---------------------------------------------------------------------------- 01.l2_projection
def _l2_mistakes(x_adv, x, eps):
    delta = x_adv - x

    def scaled(norm):
        return (x + delta * (eps / norm.clamp_min(1e-12)).clamp(max=1.0)).clamp(0, 1)

    norms = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return [("one norm for the whole batch instead of one per image", scaled(delta.norm())),
            ("one norm per channel instead of one per image (over all its channels and pixels)",
             scaled(delta.flatten(2).norm(dim=2)[..., None, None])),
            ("every δ is scaled to length ε, also those inside the ball: the factor is "
             "min(1, ε/‖δ‖₂)", (x + delta * eps / norms.clamp_min(1e-12)).clamp(0, 1)),
            ("each pixel is clipped to [−ε, ε] (the L∞ projection) instead of rescaling δ",
             (x + delta.clamp(-eps, eps)).clamp(0, 1))]


def _inside_unchanged(out, x_adv, x, eps) -> list[str]:
    norms = (x_adv - x).flatten(1).norm(dim=1)
    moved = (out.detach() - x_adv.clamp(0, 1)).abs().flatten(1).amax(1)
    bad = ((norms <= eps) & (moved > 1e-6)).nonzero().flatten()
    if len(bad) == 0:
        return []
    i = int(bad[0])
    return [f"image {i} lies inside the ball (‖δ‖₂ = {norms[i]:.2f} ≤ ε = {eps:g}) and must come "
            f"back unchanged (only clipped to [0, 1]), but moved by {moved[i]:.3g}: scale each δ by "
            "min(1, ε/‖δ‖₂) of its own image"]


def check_l2_projection(project_l2) -> str:
    from ..attacks import PGDL2

    messages = []
    for channels in (1, 3):
        x_adv, x = l2_pairs(channels)
        for eps in (1.0, 3.0):
            mistakes = lambda x_adv=x_adv, x=x, eps=eps: _l2_mistakes(x_adv, x, eps)  # noqa: E731
            passed = x_adv.clone(), x.clone()
            out = project_l2(*passed, eps)
            require(tensor_like(out, x.shape), out, mistakes)
            require(finite(out, "a zero perturbation (x_adv = x, image 0) has norm 0: guard it, "
                                ".clamp_min(1e-12)"), out, mistakes)
            require([*unchanged({"x_adv": (passed[0], x_adv), "x": (passed[1], x)}),
                     *in_unit_range(out), *in_l2_ball(out, x, eps), *_inside_unchanged(out, x_adv, x, eps)],
                    out, mistakes)
            messages.append(match(out, PGDL2(eps=eps).project(x_adv, x), 1e-6,
                                  f"survey_lib's L2 projection (ε = {eps:g}, {channels}-channel images "
                                  "inside and outside the ball)", mistakes))
    return messages[-1]


# ---------------------------------------------------------------------------- 02.square_update
def _window(top, left, s, shape):
    n, _, h, w = shape
    rows = torch.arange(h).view(1, -1) - top.view(-1, 1)
    cols = torch.arange(w).view(1, -1) - left.view(-1, 1)
    return (((rows >= 0) & (rows < s)).view(n, 1, h, 1) & ((cols >= 0) & (cols < s)).view(n, 1, 1, w))


def _square_mistakes(x, x_best, top, left, s, signs, eps):
    from ..attacks import Square

    def candidate(x_best=x_best, top=top, left=left, signs=signs):
        return Square(eps=eps).candidate(x, x_best, top, left, s, signs)

    return [("top and left are swapped: top[i] is the row (second-to-last dimension), left[i] the "
             "column", candidate(top=left, left=top)),
            ("every channel gets the sign of channel 0: channel c gets signs[i, c]·ε",
             candidate(signs=signs[:, :1].expand_as(signs))),
            ("outside the window the perturbation is reset to 0 instead of keeping x_best − x",
             candidate(x_best=x))]


def check_square_update(square_candidate) -> str:
    from ..attacks import Square

    eps = 8
    x, x_best, g = square_inputs(eps=eps)
    n, c, h, w = x.shape
    messages = []
    for s in (1, 5, 15):
        top = torch.randint(0, h - s + 1, (n,), generator=g)
        left = torch.randint(0, w - s + 1, (n,), generator=g)
        signs = (torch.randint(0, 2, (n, c), generator=g) * 2 - 1).float()
        ref = Square(eps=eps).candidate(x, x_best, top, left, s, signs)
        mistakes = lambda top=top, left=left, s=s, signs=signs: _square_mistakes(  # noqa: E731
            x, x_best, top, left, s, signs, eps)
        kept = {"x": x, "x_best": x_best, "top": top, "left": left, "signs": signs}
        passed = {k: v.clone() for k, v in kept.items()}
        out = square_candidate(passed["x"], passed["x_best"], passed["top"], passed["left"], s,
                               passed["signs"], eps)
        require(tensor_like(out, x.shape), out, mistakes)
        wrong = (out.detach() - ref).abs() > 1e-6
        win = _window(top, left, s, x.shape).expand_as(wrong)
        require([*finite(out), *unchanged({k: (passed[k], kept[k]) for k in kept}), *in_unit_range(out),
                 *in_linf_ball(out, x, eps),
                 f"inside the {s}×{s} window with its corner at (top[i], left[i]), channel c must be "
                 f"x + signs[i, c]·ε clipped to [0, 1]: {int((wrong & win).sum())} pixel(s) differ"
                 if (wrong & win).any() else "",
                 f"outside the {s}×{s} window the current perturbation x_best − x must be kept: "
                 f"{int((wrong & ~win).sum())} pixel(s) differ" if (wrong & ~win).any() else ""],
                out, mistakes)
        messages.append(match(out, ref, 1e-6, f"survey_lib Square's proposal ({s}×{s} windows, "
                                              f"{c} channels, {n} images)"))
    return messages[-1]


# ---------------------------------------------------------------------------- 04.dice_loss
def _dice_mistakes(logits, masks):
    m = masks.float()

    def loss(p, dims=(1, 2), smooth=1.0):
        inter, total = (p * m).sum(dims), p.sum(dims) + m.sum(dims)
        return 1 - ((2 * inter + smooth) / (total + smooth)).mean()

    p = logits.softmax(1)
    return [("there is no +1 smoothing: Dice = (2·Σ p·m + 1) / (Σ p + Σ m + 1)", loss(p[:, 1], smooth=0)),
            ("one Dice over the whole batch instead of the mean of the per-image Dice",
             loss(p[:, 1], dims=(0, 1, 2))),
            ("p is the probability of class 0 (background); the lesion is class 1", loss(p[:, 0])),
            ("p is sigmoid(logits[:, 1]) instead of the softmax probability of class 1",
             loss(logits[:, 1].sigmoid()))]


def check_dice_loss(soft_dice_loss) -> str:
    from ..losses import dice_loss

    logits, masks = logit_maps()
    mistakes = lambda: _dice_mistakes(logits, masks)  # noqa: E731
    passed = logits.clone().requires_grad_(True), masks.clone()
    out = soft_dice_loss(*passed)
    require(tensor_like(out, (), "the loss"), out, mistakes)
    require([*finite(out, "image 0 has no lesion: the +1 smoothing keeps its Dice finite"),
             *unchanged({"logits": (passed[0], logits), "masks": (passed[1], masks)}),
             *differentiable(out, {"logits": passed[0]}),
             "" if 0 <= out.item() <= 1 else f"the loss is {out.item():.3g}: a soft Dice loss lies in "
                                              "[0, 1] (1 minus a mean of Dice scores)"], out, mistakes)
    return match(out, dice_loss(logits, masks), 1e-6, "survey_lib.losses.dice_loss on 4 random logit "
                                                       "maps (one without lesion)", mistakes)


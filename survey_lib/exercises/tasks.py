"""The ten exercises: what each asks (its statement, as in the docstring of the notebook's
``solution`` cell), how many points it is worth, its check, and the package functions it re-derives
(a student's function that calls one of them is reported, see :class:`~.contract.Student`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .attack_checks import (
    ATTACK,
    check_dice_loss,
    check_dice_pgd,
    check_fgsm,
    check_l2_projection,
    check_pgd,
    check_square_update,
)
from .defense_checks import (
    ADVERSARIAL_LOSS,
    check_bpda,
    check_mart_loss,
    check_pgd_at_step,
    check_trades_loss,
)

PROJECT = "survey_lib.attacks.base:Attack.project"


@dataclass(frozen=True)
class Task:
    """One exercise: the function ``function`` written in notebook ``notebook``, checked by
    ``check(student) -> message`` (raises :class:`~.contract.Violation` when it fails)."""

    id: str
    notebook: str
    function: str
    title: str
    statement: str
    check: Callable[[Callable], str]
    points: int
    references: tuple[str, ...]

TASKS: dict[str, Task] = {t.id: t for t in (
    Task("01.fgsm", "01_whitebox_attacks", "fgsm", "FGSM",
         "Write fgsm(model, x, y, eps): one step of size ε along the sign of the gradient of the "
         "cross-entropy loss with respect to the input (Goodfellow et al., ICLR 2015), then clip the "
         "result to the valid pixel range [0, 1]. ε is in /255 units (eps=8 means 8/255). The model "
         "is already in eval mode; return the adversarial images without gradient history and "
         "leave the model as it was (mode, state, no gradients on its parameters).",
         check_fgsm, 1, ATTACK),
    Task("01.pgd", "01_whitebox_attacks", "pgd", "PGD with random start",
         "Write pgd(model, x, y, eps, steps, step_size, noise): projected gradient descent in the L∞ "
         "ball (Madry et al., ICLR 2018). Start from x + ε·noise (noise is given, uniform in [-1, 1]) "
         "projected onto the ball and [0, 1]; then take `steps` steps of size step_size along the "
         "sign of the input gradient of the cross-entropy, projecting after each step: clip the "
         "perturbation to [-ε, ε] and the image to [0, 1]. ε and step_size are in /255 units. Return "
         "the images detached and leave the model as it was.",
         check_pgd, 2, ATTACK),
    Task("01.l2_projection", "01_whitebox_attacks", "project_l2", "the L2 projection",
         "Write project_l2(x_adv, x, eps): project every image of x_adv onto the L2 ball of radius "
         "eps (pixels) around the matching image of x — rescale the perturbation x_adv − x by "
         "min(1, eps / ‖x_adv − x‖₂), the norm taken over all channels and pixels of that image "
         "(guard a zero norm with 1e-12) — then clip to [0, 1].",
         check_l2_projection, 1, (PROJECT,)),
    Task("02.square_update", "02_blackbox_attacks", "square_candidate", "Square Attack's proposal",
         "Write square_candidate(x, x_best, top, left, size, signs, eps): the proposal of one Square "
         "Attack iteration (Andriushchenko et al., ECCV 2020). For image i, the size×size window with "
         "its top-left corner at (top[i], left[i]) gets the perturbation signs[i, c]·ε in channel c; "
         "outside the window the current perturbation x_best − x is kept. Return x plus that "
         "perturbation, clipped to [0, 1], without modifying x_best (the attack's best so far). ε is "
         "in /255 units; signs holds ±1, shaped (N, C).",
         check_square_update, 2, ("survey_lib.attacks.blackbox:Square.candidate", PROJECT)),
    Task("04.dice_loss", "04_segmentation_and_3d", "soft_dice_loss", "the soft Dice loss",
         "Write soft_dice_loss(logits, masks): the soft Dice loss of the lesion map (Milletari et "
         "al. 2016). p is the softmax probability of class 1 (logits are (N, 2, H, W), masks (N, H, "
         "W) in {0, 1}); per image, Dice = (2·Σ p·m + 1) / (Σ p + Σ m + 1) with the +1 smoothing; "
         "return 1 minus the mean Dice over the batch, as a scalar tensor that back-propagates to "
         "the logits.",
         check_dice_loss, 1, ("survey_lib.losses:dice_loss",)),
    Task("04.dice_pgd", "04_segmentation_and_3d", "dice_pgd", "PGD on the Dice loss",
         "Write dice_pgd(model, x, masks, eps, steps, step_size, noise): the segmentation attack "
         "that ascends the soft Dice loss of the U-Net's lesion map — PGD in the L∞ ball exactly as "
         "in task 01.pgd (start from x + ε·noise projected, then signed steps and projection onto "
         "the ball and [0, 1]), with the soft Dice loss instead of the cross-entropy. ε and "
         "step_size are in /255 units. Return the images detached and leave the model as it was.",
         check_dice_pgd, 2, ATTACK),
    Task("05.pgd_at_step", "05_adversarial_training", "pgd_at_step", "one PGD-AT step",
         "Write pgd_at_step(model, optimizer, x, y, attack): one step of PGD adversarial training "
         "(Madry et al., ICLR 2018). Craft x′ = attack(model, x, y) (the attack runs the model in "
         "eval mode and restores its mode); then, with the model in train mode, clear the old "
         "gradients, back-propagate the cross-entropy of model(x′) and take one optimizer step. "
         "Return the loss as a float.",
         check_pgd_at_step, 2, (ADVERSARIAL_LOSS, "survey_lib.train:fit")),
    Task("05.trades_loss", "05_adversarial_training", "trades_loss", "the TRADES loss",
         "Write trades_loss(logits, logits_adv, y, beta): the outer loss of TRADES (Zhang et al., "
         "ICML 2019): the cross-entropy of the clean logits plus β times the batch-mean KL "
         "divergence KL(p(x) ‖ p(x′)) between the softmax of the clean logits and that of the "
         "adversarial logits. Return a scalar tensor that back-propagates to both logits.",
         check_trades_loss, 1,
         (ADVERSARIAL_LOSS, "survey_lib.defenses.adversarial_training:kl")),
    Task("05.mart_loss", "05_adversarial_training", "mart_loss", "the MART loss",
         "Write mart_loss(logits, logits_adv, y, beta): the outer loss of MART (Wang et al., ICLR "
         "2020). Boosted CE: the cross-entropy of the adversarial logits minus the mean of "
         "log(1.0001 − p′_k + 1e-12), where p′ = softmax(logits_adv) and k is the most probable "
         "wrong class under p′; plus β times the mean over the batch of KL(p ‖ p′) per example (p "
         "the clean softmax, log(p′ + 1e-12) inside the KL) weighted by 1.0000001 − p_y.",
         check_mart_loss, 2, (ADVERSARIAL_LOSS,)),
    Task("06.bpda", "06_purification", "bpda", "BPDA",
         "Write bpda(model, purify, x): the logits of model(purify(x)) whose gradient with respect "
         "to x treats the (non-differentiable) purifier as the identity — Backward Pass "
         "Differentiable Approximation (Athalye, Carlini & Wagner, ICML 2018). purify maps images to "
         "images and may return a tensor without gradient history (JPEG, bit-depth rounding).",
         check_bpda, 2, ("survey_lib.defenses.purification:Purifier.forward",)),
)}


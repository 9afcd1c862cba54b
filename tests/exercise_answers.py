"""Recorded answers to the ten exercises, written as students write them: plausible wrong ones,
each with the words its failure message must contain (the property it breaks), and correct ones in
other styles than the reference solutions. Used by tests/test_exercise_answers.py."""

from dataclasses import dataclass

# Each answer imports what it uses beyond the notebook's setup cell (notebook 02 and 06 do not
# import torch, notebook 04 not torch.nn.functional), as a student does after a NameError.


@dataclass(frozen=True)
class Answer:
    task: str
    name: str
    source: str
    expect: tuple[str, ...] = ()  # fragments of the FAIL message; empty for a correct answer

    def __str__(self):
        return f"{self.task}-{self.name}"


# A correct soft Dice loss, planted with the 04.dice_pgd answers (dice_pgd calls soft_dice_loss).
DICE = '''
def soft_dice_loss(logits, masks):
    """Soft Dice loss."""
    p, m = logits.softmax(1)[:, 1], masks.float()
    dice = (2 * (p * m).sum((1, 2)) + 1) / (p.sum((1, 2)) + m.sum((1, 2)) + 1)
    return 1 - dice.mean()
'''

# PGD as the task states it, with {loss}, {start} and {point} to put a mistake in.
PGD = '''
import torch.nn.functional as F

def {name}(model, x, y, eps, steps, step_size, noise):
    """PGD."""
    eps, step_size = eps / 255, step_size / 255

    def project(x_adv):
        return (x + (x_adv - x).clamp(-eps, eps)).clamp(0, 1)

    x_adv = {start}
    for _ in range(steps):
        point = {point}.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad({loss}(model(point), y), point)
        x_adv = project(x_adv.detach() + step_size * grad.sign())
    return x_adv.detach()
'''


def pgd(name="pgd", loss="F.cross_entropy", start="project(x + eps * noise)", point="x_adv"):
    return PGD.format(name=name, loss=loss, start=start, point=point)


WRONG = [
    # ------------------------------------------------------------------ 01.fgsm
    Answer("01.fgsm", "no_detach_backward", '''
def fgsm(model, x, y, eps):
    """FGSM."""
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return (x + eps / 255 * x.grad.sign()).clamp(0, 1)
''', ("gradient history", "gradients left on the model's parameters")),
    Answer("01.fgsm", "no_clamp", '''
def fgsm(model, x, y, eps):
    """FGSM."""
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return (x + eps / 255 * g.sign()).detach()
''', ("pixels outside [0, 1]",)),
    Answer("01.fgsm", "eps_not_over_255", '''
def fgsm(model, x, y, eps):
    """FGSM."""
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return (x + eps * g.sign()).clamp(0, 1).detach()
''', ("per-image L∞ distance", "> ε = 8/255")),
    Answer("01.fgsm", "calls_survey_lib", '''
from survey_lib.attacks import make_attack as _make

def fgsm(model, x, y, eps):
    """FGSM."""
    return _make("fgsm", eps=eps)(model, x, y)
''', ("calls survey_lib's own implementation",)),
    Answer("01.fgsm", "descends", '''
def fgsm(model, x, y, eps):
    """FGSM."""
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return (x - eps / 255 * g.sign()).clamp(0, 1).detach()
''', ("steps down the loss",)),
    Answer("01.fgsm", "train_mode", '''
def fgsm(model, x, y, eps):
    """FGSM."""
    model.train()
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return (x + eps / 255 * g.sign()).clamp(0, 1).detach()
''', ("leaves the model in train mode", "changes the model's state")),
    # ------------------------------------------------------------------ 01.pgd
    Answer("01.pgd", "unclipped_start", pgd(start="x + eps * noise"),
           ("random start x + ε·noise is not projected onto [0, 1]",)),
    Answer("01.pgd", "gradient_at_clean_image", pgd(point="x"), ("gradient is taken at the clean image",)),
    Answer("01.pgd", "noise_ignored", pgd(start="x.clone()"), ("`noise` argument ignored",)),
    Answer("01.pgd", "own_noise", pgd(start="project(x + eps * (torch.rand_like(x) * 2 - 1))"),
           ("draws its own randomness",)),
    Answer("01.pgd", "no_ball_projection", '''
def pgd(model, x, y, eps, steps, step_size, noise):
    """PGD."""
    x_adv = (x + eps / 255 * noise).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        x_adv = (x_adv.detach() + step_size / 255 * g.sign()).clamp(0, 1)
    return x_adv
''', ("per-image L∞ distance",)),
    # ------------------------------------------------------------------ 01.l2_projection
    Answer("01.l2_projection", "per_channel_norms", '''
def project_l2(x_adv, x, eps):
    """L2 projection."""
    delta = x_adv - x
    norms = delta.flatten(2).norm(dim=2).clamp_min(1e-12)[..., None, None]
    return (x + delta * (eps / norms).clamp(max=1.0)).clamp(0, 1)
''', ("per-image L2 norm 1.7", "> ε = 1", "3-channel", "one norm per channel")),
    Answer("01.l2_projection", "one_norm_for_the_batch", '''
def project_l2(x_adv, x, eps):
    """L2 projection."""
    delta = x_adv - x
    return (x + delta * min(1.0, eps / delta.norm().item())).clamp(0, 1)
''', ("inside the ball", "must come back unchanged", "one norm for the whole batch")),
    Answer("01.l2_projection", "no_zero_guard", '''
def project_l2(x_adv, x, eps):
    """L2 projection."""
    delta = x_adv - x
    norms = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return (x + delta / norms * norms.clamp(max=eps)).clamp(0, 1)
''', ("NaN", "zero perturbation", "clamp_min")),
    Answer("01.l2_projection", "linf_clip", '''
def project_l2(x_adv, x, eps):
    """L2 projection."""
    return (x + (x_adv - x).clamp(-eps, eps)).clamp(0, 1)
''', ("per-image L2 norm", "the L∞ projection")),
    Answer("01.l2_projection", "calls_survey_lib", '''
import survey_lib.attacks as A

def project_l2(x_adv, x, eps):
    """L2 projection."""
    return getattr(A, "PGD" + "L2")(eps=eps).project(x_adv, x)
''', ("calls survey_lib's own implementation", "Attack.project")),
    # ------------------------------------------------------------------ 02.square_update
    Answer("02.square_update", "one_sign_for_all_channels", '''
def square_candidate(x, x_best, top, left, size, signs, eps):
    """Square proposal."""
    delta = x_best - x
    for i in range(len(x)):
        t, u = int(top[i]), int(left[i])
        delta[i, :, t:t + size, u:u + size] = eps / 255 * signs[i, 0]
    return (x + delta).clamp(0, 1)
''', ("inside the", "window", "signs[i, c]")),
    Answer("02.square_update", "modifies_x_best", '''
def square_candidate(x, x_best, top, left, size, signs, eps):
    """Square proposal."""
    for i in range(len(x)):
        t, u = int(top[i]), int(left[i])
        window = x[i, :, t:t + size, u:u + size]
        x_best[i, :, t:t + size, u:u + size] = window + eps / 255 * signs[i].view(-1, 1, 1)
    return x_best.clamp(0, 1)
''', ("modifies its input x_best in place",)),
    Answer("02.square_update", "top_left_swapped", '''
def square_candidate(x, x_best, top, left, size, signs, eps):
    """Square proposal."""
    delta = x_best - x
    for i in range(len(x)):
        delta[i, :, int(left[i]):int(left[i]) + size, int(top[i]):int(top[i]) + size] = \\
            eps / 255 * signs[i].view(-1, 1, 1)
    return (x + delta).clamp(0, 1)
''', ("top and left are swapped",)),
    # ------------------------------------------------------------------ 04.dice_loss
    Answer("04.dice_loss", "no_smoothing", '''
def soft_dice_loss(logits, masks):
    """Soft Dice loss."""
    p, m = logits.softmax(1)[:, 1], masks.float()
    return 1 - (2 * (p * m).sum((1, 2)) / (p.sum((1, 2)) + m.sum((1, 2)))).mean()
''', ("no +1 smoothing",)),
    Answer("04.dice_loss", "hard_argmax", '''
def soft_dice_loss(logits, masks):
    """Soft Dice loss."""
    p, m = logits.argmax(1).float(), masks.float()
    return 1 - ((2 * (p * m).sum((1, 2)) + 1) / (p.sum((1, 2)) + m.sum((1, 2)) + 1)).mean()
''', ("carries no gradient",)),
    Answer("04.dice_loss", "per_image_vector", '''
def soft_dice_loss(logits, masks):
    """Soft Dice loss."""
    p, m = logits.softmax(1)[:, 1], masks.float()
    return 1 - (2 * (p * m).sum((1, 2)) + 1) / (p.sum((1, 2)) + m.sum((1, 2)) + 1)
''', ("shape (4,)", "scalar")),
    Answer("04.dice_loss", "whole_batch", '''
def soft_dice_loss(logits, masks):
    """Soft Dice loss."""
    p, m = logits.softmax(1)[:, 1], masks.float()
    return 1 - (2 * (p * m).sum() + 1) / (p.sum() + m.sum() + 1)
''', ("one Dice over the whole batch",)),
    # ------------------------------------------------------------------ 04.dice_pgd
    Answer("04.dice_pgd", "cross_entropy", DICE + pgd("dice_pgd"), ("ascends the cross-entropy",)),
    Answer("04.dice_pgd", "descends", DICE + pgd("dice_pgd", loss="(lambda z, m: -soft_dice_loss(z, m))"),
           ("descends the soft Dice loss",)),
    Answer("04.dice_pgd", "calls_survey_lib", DICE + '''
from survey_lib.attacks import SegPGDDice

def dice_pgd(model, x, masks, eps, steps, step_size, noise):
    """Dice PGD."""
    return SegPGDDice(eps=eps, steps=steps, step_size=step_size)(model, x, masks)
''', ("calls survey_lib's own implementation",)),
    # ------------------------------------------------------------------ 05.pgd_at_step
    Answer("05.pgd_at_step", "never_train_mode", '''
def pgd_at_step(model, optimizer, x, y, attack):
    """PGD-AT step."""
    x_adv = attack(model, x, y)
    loss = F.cross_entropy(model(x_adv), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
''', ("left in eval mode", "forward pass runs in eval mode")),
    Answer("05.pgd_at_step", "no_zero_grad", '''
def pgd_at_step(model, optimizer, x, y, attack):
    """PGD-AT step."""
    x_adv = attack(model, x, y)
    model.train()
    loss = F.cross_entropy(model(x_adv), y)
    loss.backward()
    optimizer.step()
    return loss.item()
''', ("old gradients are not cleared",)),
    Answer("05.pgd_at_step", "clean_images", '''
def pgd_at_step(model, optimizer, x, y, attack):
    """PGD-AT step."""
    attack(model, x, y)
    model.train()
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
''', ("trains on the clean images",)),
    Answer("05.pgd_at_step", "returns_tensor", '''
def pgd_at_step(model, optimizer, x, y, attack):
    """PGD-AT step."""
    x_adv = attack(model, x, y)
    model.train()
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x_adv), y)
    loss.backward()
    optimizer.step()
    return loss
''', ("returned a Tensor", "Python float")),
    Answer("05.pgd_at_step", "calls_survey_lib", '''
from survey_lib.defenses.adversarial_training import AdversarialLoss

def pgd_at_step(model, optimizer, x, y, attack):
    """PGD-AT step."""
    model.train()
    loss = AdversarialLoss("pgd_at", attack, "multi-class")(model, x, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
''', ("calls survey_lib's own implementation", "AdversarialLoss")),
    # ------------------------------------------------------------------ 05.trades_loss
    Answer("05.trades_loss", "kl_reversed", '''
def trades_loss(logits, logits_adv, y, beta):
    """TRADES."""
    kl = F.kl_div(F.log_softmax(logits, 1), F.softmax(logits_adv, 1), reduction="batchmean")
    return F.cross_entropy(logits, y) + beta * kl
''', ("KL is reversed",)),
    Answer("05.trades_loss", "kl_div_default_reduction", '''
def trades_loss(logits, logits_adv, y, beta):
    """TRADES."""
    return F.cross_entropy(logits, y) + beta * F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits, 1))
''', ("reduction='mean'", "batchmean")),
    Answer("05.trades_loss", "returns_float", '''
def trades_loss(logits, logits_adv, y, beta):
    """TRADES."""
    kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits, 1), reduction="batchmean")
    return (F.cross_entropy(logits, y) + beta * kl).item()
''', ("the loss is a float", "not loss.item()")),
    Answer("05.trades_loss", "detached_adversarial", '''
def trades_loss(logits, logits_adv, y, beta):
    """TRADES."""
    kl = F.kl_div(F.log_softmax(logits_adv.detach(), 1), F.softmax(logits, 1), reduction="batchmean")
    return F.cross_entropy(logits, y) + beta * kl
''', ("no gradient reaches logits_adv",)),
    # ------------------------------------------------------------------ 05.mart_loss
    Answer("05.mart_loss", "unweighted_kl", '''
def mart_loss(logits, logits_adv, y, beta):
    """MART."""
    p, q = logits.softmax(1), logits_adv.softmax(1)
    wrong = q.scatter(1, y[:, None], -1.0).argmax(1)
    boosted = F.cross_entropy(logits_adv, y) - torch.log(1.0001 - q.gather(1, wrong[:, None]) + 1e-12).mean()
    kl = (p * (torch.log(p + 1e-12) - torch.log(q + 1e-12))).sum(1)
    return boosted + beta * kl.mean()
''', ("not weighted by 1 − p_y(x)",)),
    Answer("05.mart_loss", "top_class_not_wrong_class", '''
def mart_loss(logits, logits_adv, y, beta):
    """MART."""
    p, q = logits.softmax(1), logits_adv.softmax(1)
    top = q.argmax(1)
    boosted = F.cross_entropy(logits_adv, y) - torch.log(1.0001 - q.gather(1, top[:, None]) + 1e-12).mean()
    kl = (p * (torch.log(p + 1e-12) - torch.log(q + 1e-12))).sum(1)
    return boosted + beta * (kl * (1.0000001 - p.gather(1, y[:, None]).squeeze(1))).mean()
''', ("most probable wrong class",)),
    # ------------------------------------------------------------------ 06.bpda
    Answer("06.bpda", "no_straight_through", '''
def bpda(model, purify, x):
    """BPDA."""
    return model(purify(x))
''', ("input gradient through BitDepthReduction is zero", "the purifier masks it")),
    Answer("06.bpda", "unpurified_logits", '''
def bpda(model, purify, x):
    """BPDA."""
    return model(x)
''', ("the logits are those of x",)),
    Answer("06.bpda", "calls_survey_lib", '''
from survey_lib.defenses import purification

def bpda(model, purify, x):
    """BPDA."""
    class Wrapped(purification.JPEGCompression):
        def purify(self, z):
            return purify(z)

    return Wrapped(model)(x)
''', ("calls survey_lib's own implementation", "Purifier.forward")),
]

RIGHT = [
    Answer("01.fgsm", "backward_then_clear", '''
def fgsm(model, x, y, eps):
    """FGSM with loss.backward(), clearing the model's gradients afterwards."""
    x_adv = x.detach().clone()
    x_adv.requires_grad = True
    F.cross_entropy(model(x_adv), y, reduction="sum").backward()
    step = eps / 255 * x_adv.grad.sign()
    model.zero_grad(set_to_none=True)
    return torch.clamp(x_adv.detach() + step, 0.0, 1.0)
'''),
    Answer("01.pgd", "tensor_bounds", '''
def pgd(model, x, y, eps, steps, step_size, noise):
    """PGD with the ball as tensor bounds."""
    lo, hi = (x - eps / 255).clamp(min=0), (x + eps / 255).clamp(max=1)
    x_adv = torch.max(torch.min(x + eps / 255 * noise, hi), lo)
    for _ in range(steps):
        x_adv = x_adv.clone().requires_grad_()
        loss = torch.nn.CrossEntropyLoss(reduction="sum")(model(x_adv), y)
        grad = torch.autograd.grad(loss, [x_adv])[0]
        x_adv = torch.max(torch.min(x_adv.detach() + step_size / 255 * torch.sign(grad), hi), lo)
    return x_adv
'''),
    Answer("01.l2_projection", "vector_norm_where", '''
def project_l2(x_adv, x, eps):
    """L2 projection with torch.linalg.vector_norm."""
    delta = x_adv - x
    norm = torch.linalg.vector_norm(delta, dim=tuple(range(1, x.ndim)), keepdim=True)
    delta = torch.where(norm > eps, delta * eps / norm.clamp_min(1e-12), delta)
    return torch.clamp(x + delta, 0, 1)
'''),
    Answer("02.square_update", "mask", '''
import torch

def square_candidate(x, x_best, top, left, size, signs, eps):
    """Square proposal with a window mask."""
    n, c, h, w = x.shape
    rows = torch.arange(h)[None, :, None]
    cols = torch.arange(w)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < top[:, None, None] + size)
              & (cols >= left[:, None, None]) & (cols < left[:, None, None] + size))[:, None]
    new = x + eps / 255 * signs[:, :, None, None]
    return torch.where(inside, new, x_best).clamp(0, 1)
'''),
    Answer("04.dice_loss", "einsum", '''
import torch.nn.functional as F

def soft_dice_loss(logits, masks):
    """Soft Dice loss with einsum."""
    p = F.softmax(logits, dim=1)[:, 1]
    m = masks.to(p.dtype)
    inter = torch.einsum("nhw,nhw->n", p, m)
    return 1 - torch.mean((2 * inter + 1) / (p.sum(dim=(1, 2)) + m.sum(dim=(1, 2)) + 1))
'''),
    Answer("04.dice_pgd", "own_dice_loss", DICE + pgd("dice_pgd", loss="soft_dice_loss")),
    Answer("05.pgd_at_step", "set_grads_to_none", '''
def pgd_at_step(model, optimizer, x, y, attack):
    """PGD-AT step clearing the gradients by hand."""
    model.eval()
    x_adv = attack(model, x, y).detach()
    model.train(True)
    for p in model.parameters():
        p.grad = None
    loss = torch.nn.functional.cross_entropy(model(x_adv), y)
    loss.backward()
    optimizer.step()
    return float(loss)
'''),
    Answer("05.trades_loss", "kl_div_batchmean", '''
def trades_loss(logits, logits_adv, y, beta):
    """TRADES with F.kl_div."""
    kl = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits, dim=1), reduction="batchmean")
    return F.cross_entropy(logits, y) + beta * kl
'''),
    Answer("05.mart_loss", "topk", '''
def mart_loss(logits, logits_adv, y, beta):
    """MART with topk, as in the authors' code."""
    p_adv, p = F.softmax(logits_adv, 1), F.softmax(logits, 1)
    top2 = torch.argsort(p_adv, dim=1)[:, -2:]
    other = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    bce = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), other)
    kl = torch.sum(F.kl_div(torch.log(p_adv + 1e-12), p, reduction="none"), dim=1)
    return bce + beta * torch.mean(kl * (1.0000001 - torch.gather(p, 1, y.unsqueeze(1)).squeeze(1)))
'''),
    Answer("06.bpda", "autograd_function", '''
import torch

class _Identity(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, x_pure):
        return x_pure.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def bpda(model, purify, x):
    """BPDA with a custom autograd Function."""
    return model(_Identity.apply(x, purify(x.detach())))
'''),
]

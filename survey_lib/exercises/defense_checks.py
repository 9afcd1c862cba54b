"""The checks of the defense exercises (notebooks 05, 06): one PGD-AT step, the TRADES and MART
losses, BPDA.

As in :mod:`.attack_checks`, each check asserts the task's contract before the numbers: PGD-AT
switches the model to train mode itself, clears the old gradients and trains on the attack's images;
the losses return a scalar tensor that back-propagates to both logits; BPDA returns the purified
images' logits with the identity as the purifier's gradient and leaves the model alone.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .contract import ModelState, differentiable, finite, match, require, tensor_like, unchanged
from .inputs import batch, classifier, seeded

ADVERSARIAL_LOSS = "survey_lib.defenses.adversarial_training:AdversarialLoss.__call__"


# ---------------------------------------------------------------------------- 05.pgd_at_step
class _GivenAttack:
    """The inner attack handed to ``pgd_at_step``: survey_lib's PGD at a fixed seed, counting its
    calls. :class:`AdversarialLoss` reseeds its attack from the global RNG on every batch; the seed
    it sets here is ignored, so the student and the reference train on the same x′."""

    def __init__(self, x_adv=None):
        from ..attacks import PGD

        self.pgd, self.x_adv, self.calls = PGD(eps=8, steps=3, seed=5), x_adv, 0
        self.eps, self.step_size, self.seed = self.pgd.eps, self.pgd.step_size, 0

    def __call__(self, model, x, y):
        self.calls += 1
        return self.pgd(model, x, y) if self.x_adv is None else self.x_adv


def _optimizer(model):
    for p in model.parameters():  # stale gradients of an earlier step: the step must clear them
        p.grad = torch.ones_like(p)
    return torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)


def _state(model) -> torch.Tensor:
    """Weights and BatchNorm statistics as one vector."""
    return torch.cat([v.detach().double().flatten() for v in model.state_dict().values()])


def _at_reference(model, batches):
    """(model after the steps, losses): survey_lib's AdversarialLoss('pgd_at') and SGD, as fit runs them."""
    from ..defenses.adversarial_training import AdversarialLoss

    model = copy.deepcopy(model)
    optimizer, losses = _optimizer(model), []
    loss_fn = AdversarialLoss("pgd_at", _GivenAttack(), "multi-class")
    for x, y in batches:
        model.train()
        with torch.random.fork_rng():  # AdversarialLoss draws its attack's seed
            loss = loss_fn(model, x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model, losses


def _at_mistakes(model, batches):
    def run(train=True, clear=True, adversarial=True):
        m = copy.deepcopy(model)
        optimizer, attack = _optimizer(m), _GivenAttack()
        for x, y in batches:
            m.eval()
            x_in = attack(m, x, y) if adversarial else x
            m.train(train)
            loss = F.cross_entropy(m(x_in), y)
            if clear:
                optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return _state(m)

    return lambda: [
        ("the forward pass runs in eval mode: call model.train() after the attack, so BatchNorm "
         "uses batch statistics and updates its running averages", run(train=False)),
        ("the old gradients are not cleared (optimizer.zero_grad()) before backward", run(clear=False)),
        ("it trains on the clean images x instead of the attack's x′", run(adversarial=False))]


def check_pgd_at_step(pgd_at_step) -> str:
    model = classifier(classes=3)
    batches = [batch(classes=3, seed=s) for s in (7, 8)]
    reference, ref_losses = _at_reference(model, batches)
    mistakes = _at_mistakes(copy.deepcopy(model), batches)
    optimizer, attack, losses = _optimizer(model), _GivenAttack(), []
    for x, y in batches:
        model.eval()  # as after an evaluation: the step itself must switch to train mode
        losses.append(pgd_at_step(model, optimizer, x.clone(), y.clone(), attack))
    state = _state(model)
    require(["never calls the attack: train on x′ = attack(model, x, y)" if attack.calls == 0 else "",
             "" if model.training else "the model is left in eval mode: the update runs in train "
                                       "mode (model.train())",
             *[f"returned a {type(v).__name__} at step {i + 1}: return the loss as a Python float "
               "(loss.item())" for i, v in enumerate(losses) if not isinstance(v, float | int)][:1]],
            state, mistakes)
    require([f"returned loss {v:.6f} at step {i + 1}, expected {r:.6f} (the cross-entropy on x′ "
             "before the update; tolerance 1e-5)"
             for i, (v, r) in enumerate(zip(losses, ref_losses)) if not abs(v - r) <= 1e-5][:1],
            state, mistakes)
    return match(state, _state(reference), 1e-6, "the weights and BatchNorm statistics of survey_lib's "
                 "AdversarialLoss('pgd_at') + SGD after 2 steps", mistakes)


# ---------------------------------------------------------------------------- 05.trades_loss, 05.mart_loss
def _outer_inputs(method: str, beta: float, seed: int):
    """(clean logits, adversarial logits, labels, survey_lib's loss) from a linear model whose logits
    vary by O(1) between x and x′ (3 classes, 8 images)."""
    from ..defenses.adversarial_training import AdversarialLoss

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 3))
        torch.nn.init.normal_(model[1].weight, std=0.2)
    x, y = batch(classes=3, seed=seed)
    x_adv = (x + 0.3 * torch.randn(x.shape, generator=seeded(seed + 1))).clamp(0, 1)
    with torch.random.fork_rng():  # AdversarialLoss draws the inner attack's seed
        ref = AdversarialLoss(method, _GivenAttack(x_adv), "multi-class", beta=beta)(model, x, y)
    with torch.no_grad():
        return model(x), model(x_adv), y, ref.detach()


def _trades_mistakes(logits, logits_adv, y, beta):
    p, log_p, log_q = logits.softmax(1), logits.log_softmax(1), logits_adv.log_softmax(1)
    ce, kl = F.cross_entropy(logits, y), (p * (log_p - log_q)).sum(1).mean()
    return [("the KL is reversed: TRADES uses KL(p(x) ‖ p(x′)), i.e. F.kl_div(log p(x′), p(x))",
             ce + beta * (log_q.exp() * (log_q - log_p)).sum(1).mean()),
            ("the KL is also averaged over the classes (F.kl_div's default reduction='mean'): use "
             "reduction='batchmean'", ce + beta * F.kl_div(log_q, p)),
            ("the KL is summed over the batch; TRADES averages it (reduction='batchmean')",
             ce + beta * kl * len(y)),
            ("the cross-entropy is on the adversarial logits; TRADES's first term is CE on the "
             "clean ones", F.cross_entropy(logits_adv, y) + beta * kl),
            ("F.kl_div got probabilities as its first argument; it expects log-probabilities",
             ce + beta * F.kl_div(log_q.exp(), p, reduction="batchmean"))]


def _mart_mistakes(logits, logits_adv, y, beta):
    p, q = logits.softmax(1), logits_adv.softmax(1)

    def loss(top=None, weight=None, kl=None, margin=True):
        top = q.scatter(1, y[:, None], -1.0).argmax(1) if top is None else top
        boosted = F.cross_entropy(logits_adv, y) - (torch.log(1.0001 - q.gather(1, top[:, None]) + 1e-12
                                                              ).mean() if margin else 0)
        kl = (p * (torch.log(p + 1e-12) - torch.log(q + 1e-12))).sum(1) if kl is None else kl
        weight = 1.0000001 - p.gather(1, y[:, None]).squeeze(1) if weight is None else weight
        return boosted + beta * (kl * weight).mean()

    return [("the KL term is not weighted by 1 − p_y(x)", loss(weight=torch.ones(len(y)))),
            ("k is the most probable class including the true one; MART takes the most probable "
             "wrong class", loss(top=q.argmax(1))),
            ("the weight uses the adversarial p′_y; MART weights by 1 − p_y on the clean image",
             loss(weight=1.0000001 - q.gather(1, y[:, None]).squeeze(1))),
            ("the KL is reversed: MART uses KL(p ‖ p′), p the clean softmax",
             loss(kl=(q * (torch.log(q + 1e-12) - torch.log(p + 1e-12))).sum(1))),
            ("the boosted cross-entropy lacks its margin term −log(1.0001 − p′_k)", loss(margin=False))]


def _check_outer(method: str, label: str, mistakes_of):
    def check(student) -> str:
        messages = []
        for beta, seed in ((6.0, 0), (1.0, 1)):
            logits, logits_adv, y, ref = _outer_inputs(method, beta, seed)
            mistakes = lambda a=(logits, logits_adv, y, beta): mistakes_of(*a)  # noqa: E731
            passed = (logits.clone().requires_grad_(True), logits_adv.clone().requires_grad_(True),
                      y.clone())
            out = student(*passed, beta)
            if isinstance(out, float):
                require(["the loss is a float: return the tensor (training back-propagates through "
                         "it), not loss.item()"])
            require(tensor_like(out, (), "the loss"), out, mistakes)
            require([*finite(out), *unchanged({"logits": (passed[0], logits),
                                               "logits_adv": (passed[1], logits_adv), "y": (passed[2], y)}),
                     *differentiable(out, {"logits": passed[0], "logits_adv": passed[1]})], out, mistakes)
            messages.append(match(out, ref, 1e-5, f"survey_lib's {label} loss (β = {beta:g}, 3 classes, "
                                                  "8 images)", mistakes))
        return messages[0]

    return check


check_trades_loss = _check_outer("trades", "TRADES", _trades_mistakes)
check_mart_loss = _check_outer("mart", "MART", _mart_mistakes)


# ---------------------------------------------------------------------------- 06.bpda
def check_bpda(bpda) -> str:
    from ..defenses.purification import BitDepthReduction, JPEGCompression

    model = classifier()
    x, y = batch(seed=6)
    messages = []
    for purifier in (BitDepthReduction(model, bits=3), JPEGCompression(model, quality=50)):
        name = type(purifier).__name__
        xr = x.clone().requires_grad_(True)
        ref = purifier(xr)
        ref_grad = torch.autograd.grad(F.cross_entropy(ref, y, reduction="sum"), xr)[0]
        mistakes = lambda: [("the logits are those of x: classify purify(x)",  # noqa: E731
                             model(x).detach())]
        before, xs = ModelState.of(model), x.clone().requires_grad_(True)
        out = bpda(model, purifier.purify, xs)
        require(tensor_like(out, ref.shape, "the logits"), out, mistakes)
        require([*finite(out), *before.changes(model), *unchanged({"x": (xs, x)})], out, mistakes)
        messages.append(match(out, ref, 1e-6, f"the logits of survey_lib's {name} wrapper", mistakes))
        require(["" if out.requires_grad else f"no gradient reaches x through {name}: the output must "
                                              "depend on x differentiably (value of purify(x), gradient "
                                              "of x)"])
        grad = torch.autograd.grad(F.cross_entropy(out, y, reduction="sum"), xs, allow_unused=True)[0]
        require(["" if grad is not None and grad.abs().max() > 0 else
                 f"the input gradient through {name} is zero: the purifier masks it; pass the gradient "
                 "straight through (identity backward)"])
        messages.append(match(grad, ref_grad, 1e-6, f"survey_lib's BPDA input gradient through {name} "
                                                    "(8 images)"))
    return messages[-1]

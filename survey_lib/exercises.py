"""Course-assignment versions of the notebooks: write the algorithms yourself, then grade them.

In the paired notebooks a code cell tagged ``solution`` holds one short function that re-derives
what the package does (FGSM, PGD, the L2 projection, Square's proposal, the soft Dice loss and a
Dice-loss attack, a PGD-AT step, the TRADES and MART losses, BPDA); the cell after it calls
:func:`check`.

- ``python -m survey_lib exercises build`` writes student copies under ``notebooks/exercises/``:
  each solution body is replaced by ``raise NotImplementedError`` naming the task (signature and
  docstring kept); ``--check`` only reports whether the committed copies are up to date.
- ``python -m survey_lib exercises grade FILE`` runs every task's check on a student's copy and
  prints a per-task report (PASS, FAIL, NOT IMPLEMENTED, MISSING, ERROR) and the score.

Each check (:data:`TASKS`) compares the student's function with the package's implementation on
fixed inputs (a tiny seeded model, seeded tensors): exact to 1e-6 for attacks, projections and
weights after training steps, 1e-5 for loss values (a sum computed in another order differs in the
last float32 digits).
"""

from __future__ import annotations

import ast
import contextlib
import filecmp
import re
import signal
import tempfile
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import ConfigError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXERCISES = NOTEBOOKS / "exercises"
TIMEOUT_S = 60  # per task, when grading from the command line


@dataclass(frozen=True)
class Task:
    """One exercise: the function ``function`` written in notebook ``notebook``, checked by
    ``check(student_fn) -> (ok, message)``."""

    id: str
    notebook: str
    function: str
    title: str
    statement: str
    check: Callable[[Callable], tuple[bool, str]]


@dataclass(frozen=True)
class Result:
    task: str
    status: str  # PASS | FAIL | NOT IMPLEMENTED | MISSING | ERROR
    message: str


# ---------------------------------------------------------------------------- fixed inputs
def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _classifier(channels: int = 1, classes: int = 2, seed: int = 0):
    """A tiny SmallCNN with seeded weights, in eval mode (the global RNG is left untouched)."""
    from .models import build_model

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model("smallcnn", channels, classes, width=8).eval()


def _batch(n=8, shape=(1, 28, 28), classes=2, seed=0):
    g = _seeded(seed)
    return torch.rand(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def _compare(out, ref, tol: float, what: str) -> tuple[bool, str]:
    if not isinstance(out, torch.Tensor):
        return False, f"returned {type(out).__name__}, expected a tensor shaped {tuple(ref.shape)}"
    if out.shape != ref.shape:
        return False, f"returned shape {tuple(out.shape)}, expected {tuple(ref.shape)}"
    diff = (out.detach().double() - ref.detach().double()).abs().max().item()
    if not diff <= tol:  # also catches NaN
        return False, f"differs from {what}: max |Δ| = {diff:.3g} (tolerance {tol:g})"
    return True, f"matches {what} (max |Δ| = {diff:.1e}, tolerance {tol:g})"


def _linf_hint(out, x, eps_units) -> str:
    if isinstance(out, torch.Tensor) and out.shape == x.shape:
        return (f"; its L∞ distance to x is {(out.detach() - x).abs().max().item() * 255:.2f}/255 "
                f"for ε = {eps_units}/255")
    return ""


def _all(*checks) -> tuple[bool, str]:
    """The first failing (ok, message), else the last passing one."""
    result = (True, "")
    for ok, message in checks:
        result = (ok, message)
        if not ok:
            break
    return result


# ---------------------------------------------------------------------------- the checks
def _check_fgsm(fgsm):
    from .attacks import FGSM

    model = _classifier()
    x, y = _batch()
    results = []
    for eps in (8, 2):
        ref = FGSM(eps=eps)(model, x, y)
        out = fgsm(model, x.clone(), y.clone(), eps)
        ok, msg = _compare(out, ref, 1e-6, f"survey_lib FGSM at ε = {eps}/255 on 8 images")
        results.append((ok, msg + ("" if ok else _linf_hint(out, x, eps))))
    return _all(*results)


def _pgd_noise(x, seed):
    """The random start survey_lib's PGD draws for ``seed``: uniform in [-1, 1), shaped like x."""
    return torch.rand(x.shape, generator=_seeded(seed)) * 2 - 1


def _check_pgd(pgd):
    from .attacks import PGD

    model = _classifier()
    x, y = _batch(seed=1)
    ref = PGD(eps=8, steps=5, step_size=2, seed=7)(model, x, y)
    out = pgd(model, x.clone(), y.clone(), 8, 5, 2, _pgd_noise(x, 7))
    ok, msg = _compare(out, ref, 1e-6, "survey_lib PGD (ε = 8/255, 5 steps of 2/255, same random "
                                       "start) on 8 images")
    return ok, msg + ("" if ok else _linf_hint(out, x, 8))


def _check_l2_projection(project_l2):
    from .attacks import PGDL2

    g = _seeded(2)
    x = torch.rand(8, 1, 28, 28, generator=g)
    delta = torch.randn(x.shape, generator=g)
    scale = torch.tensor([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]).view(-1, 1, 1, 1)
    x_adv = x + delta * scale  # L2 norms from ≈0.3 (inside the ball) to ≈56 (far outside)
    results = []
    for eps in (1.0, 3.0):
        ref = PGDL2(eps=eps).project(x_adv, x)
        out = project_l2(x_adv.clone(), x.clone(), eps)
        results.append(_compare(out, ref, 1e-6, f"survey_lib's L2 projection at ε = {eps} on 8 "
                                                "images inside and outside the ball"))
    return _all(*results)


def _check_square_update(square_candidate):
    from .attacks import Square

    g = _seeded(3)
    n, c, h, w, eps = 6, 3, 16, 16, 8
    x = torch.rand(n, c, h, w, generator=g)
    stripes = torch.randint(0, 2, (n, c, 1, w), generator=g) * 2 - 1
    x_best = (x + eps / 255 * stripes).clamp(0, 1)
    results = []
    for s in (1, 5, 15):
        top = torch.randint(0, h - s + 1, (n,), generator=g)
        left = torch.randint(0, w - s + 1, (n,), generator=g)
        signs = (torch.randint(0, 2, (n, c), generator=g) * 2 - 1).float()
        ref = Square(eps=eps).candidate(x, x_best, top, left, s, signs)
        out = square_candidate(x.clone(), x_best.clone(), top.clone(), left.clone(), s,
                               signs.clone(), eps)
        results.append(_compare(out, ref, 1e-6, f"survey_lib Square's proposal ({s}×{s} windows, "
                                                "3 channels, 6 images)"))
    return _all(*results)


def _segmentation_batch(seed=4):
    g = _seeded(seed)
    x = torch.rand(4, 3, 32, 32, generator=g)
    masks = (torch.rand(4, 32, 32, generator=g) > 0.6).long()
    return x, masks


def _unet(seed=0):
    from .models import build_model

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model("unet", 3, 2, width=4).eval()


def _check_dice_loss(soft_dice_loss):
    from .losses import dice_loss

    g = _seeded(5)
    logits = torch.randn(4, 2, 32, 32, generator=g) * 3
    masks = (torch.rand(4, 32, 32, generator=g) > 0.7).long()
    masks[0] = 0  # an image without lesion: the +1 smoothing keeps the loss finite
    return _compare(soft_dice_loss(logits.clone(), masks.clone()), dice_loss(logits, masks), 1e-6,
                    "survey_lib.losses.dice_loss on 4 random logit maps")


def _check_dice_pgd(dice_pgd):
    from .attacks import SegPGDDice

    model = _unet()
    x, masks = _segmentation_batch()
    ref = SegPGDDice(eps=8, steps=3, step_size=3, seed=11)(model, x, masks)
    out = dice_pgd(model, x.clone(), masks.clone(), 8, 3, 3, _pgd_noise(x, 11))
    ok, msg = _compare(out, ref, 1e-6, "survey_lib seg_pgd_dice (ε = 8/255, 3 steps of 3/255, "
                                       "same random start) on a tiny U-Net")
    return ok, msg + ("" if ok else _linf_hint(out, x, 8))


class _GivenAttack:
    """Stands in for the inner attack of :class:`AdversarialLoss`: returns fixed images."""

    eps, step_size, seed = 8 / 255, 2 / 255, 0

    def __init__(self, x_adv):
        self.x_adv = x_adv

    def __call__(self, model, x, y):
        return self.x_adv


def _outer_loss(method: str, student, beta: float, seed: int):
    """(student's loss, the loss of survey_lib's AdversarialLoss(method)) on the same logits."""
    from .defenses.adversarial_training import AdversarialLoss

    with torch.random.fork_rng():  # a linear model whose logits vary by O(1) between x and x'
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 3))
        torch.nn.init.normal_(model[1].weight, std=0.2)
    x, y = _batch(classes=3, seed=seed)
    x_adv = (x + 0.3 * torch.randn(x.shape, generator=_seeded(seed + 1))).clamp(0, 1)
    with torch.random.fork_rng():  # AdversarialLoss draws the inner attack's seed
        ref = AdversarialLoss(method, _GivenAttack(x_adv), "multi-class", beta=beta)(model, x, y)
    with torch.no_grad():
        logits, logits_adv = model(x), model(x_adv)
    return student(logits, logits_adv, y.clone(), beta), ref


def _check_outer(method, label):
    def check(student):
        results = []
        for beta, seed in ((6.0, 0), (1.0, 1)):
            out, ref = _outer_loss(method, student, beta, seed)
            results.append(_compare(torch.as_tensor(out) if isinstance(out, float) else out, ref,
                                    1e-5, f"survey_lib's {label} loss (β = {beta:g}, 3 classes, "
                                    "8 images)"))
        return _all(*results)

    return check


class _FixedSeed:
    """Wraps a PGD for :class:`AdversarialLoss`, which reseeds its attack from the global RNG on
    every batch: the seed it sets is ignored, so the student and the package see the same x′."""

    def __init__(self, attack):
        self.attack, self.eps, self.step_size, self.seed = attack, attack.eps, attack.step_size, 0

    def __call__(self, model, x, y):
        return self.attack(model, x, y)


def _check_pgd_at_step(pgd_at_step):
    import copy

    from .attacks import PGD
    from .defenses.adversarial_training import AdversarialLoss

    model = _classifier(classes=3).train()
    reference = copy.deepcopy(model)
    attack = _FixedSeed(PGD(eps=8, steps=3, seed=5))
    loss_fn = AdversarialLoss("pgd_at", attack, "multi-class")
    batches = [_batch(classes=3, seed=s) for s in (7, 8)]
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.5, momentum=0.9) for m in (model, reference)]
    for m in (model, reference):  # stale gradients: the step must clear them
        for p in m.parameters():
            p.grad = torch.ones_like(p)
    for x, y in batches:  # what fit does with the package's PGD-AT loss
        with torch.random.fork_rng():
            loss = loss_fn(reference, x, y)
        optimizers[1].zero_grad()
        loss.backward()
        optimizers[1].step()
        out = pgd_at_step(model, optimizers[0], x.clone(), y.clone(), attack)
    if model.training is not True:
        return False, "the model must be left in train mode after the step"
    ref_loss = loss.item()
    if not isinstance(out, (float, int)) or not abs(out - ref_loss) <= 1e-5:
        return False, f"returned loss {out!r}, expected the float {ref_loss:.6f} (tolerance 1e-5)"
    ref_state = reference.state_dict()
    worst = max((model.state_dict()[k].double() - v.double()).abs().max().item()
                for k, v in ref_state.items() if v.is_floating_point())
    if not worst <= 1e-6:
        return False, (f"the weights and BatchNorm statistics after 2 steps differ from survey_lib's "
                       f"PGD-AT (max |Δ| = {worst:.3g}, tolerance 1e-6): train on the attacked images, "
                       "in train mode, after clearing the old gradients")
    return True, (f"weights and BatchNorm statistics after 2 PGD-AT steps match survey_lib's "
                  f"AdversarialLoss('pgd_at') + SGD (max |Δ| = {worst:.1e}, tolerance 1e-6)")


def _check_bpda(bpda):
    from .defenses.purification import BitDepthReduction, JPEGCompression

    model = _classifier()
    x, y = _batch(seed=6)
    results = []
    for purifier in (BitDepthReduction(model, bits=3), JPEGCompression(model, quality=50)):
        name = type(purifier).__name__
        xr = x.clone().requires_grad_(True)
        ref = purifier(xr)
        ref_grad = torch.autograd.grad(F.cross_entropy(ref, y, reduction="sum"), xr)[0]
        xs = x.clone().requires_grad_(True)
        out = bpda(model, purifier.purify, xs)
        ok, msg = _compare(out, ref, 1e-6, f"the logits of survey_lib's {name} wrapper")
        results.append((ok, msg))
        if not ok:
            break
        if not out.requires_grad:
            results.append((False, f"the output with {name} does not depend on x differentiably "
                                   "(no gradient reaches the input)"))
            break
        grad = torch.autograd.grad(F.cross_entropy(out, y, reduction="sum"), xs, allow_unused=True)[0]
        if grad is None or grad.abs().max() == 0:
            results.append((False, f"the input gradient through {name} is zero: the purifier masks "
                                   "it; pass the gradient straight through (identity backward)"))
            break
        results.append(_compare(grad, ref_grad, 1e-6, f"survey_lib's BPDA forward and input "
                                                      f"gradient through {name} (8 images)"))
    return _all(*results)


TASKS: dict[str, Task] = {t.id: t for t in (
    Task("01.fgsm", "01_whitebox_attacks", "fgsm", "FGSM",
         "Write fgsm(model, x, y, eps): one step of size ε along the sign of the gradient of the "
         "cross-entropy loss with respect to the input (Goodfellow et al., ICLR 2015), then clip the "
         "result to the valid pixel range [0, 1]. ε is in /255 units (eps=8 means 8/255). The model "
         "is already in eval mode; return the adversarial images without gradient history.",
         _check_fgsm),
    Task("01.pgd", "01_whitebox_attacks", "pgd", "PGD with random start",
         "Write pgd(model, x, y, eps, steps, step_size, noise): projected gradient descent in the L∞ "
         "ball (Madry et al., ICLR 2018). Start from x + ε·noise (noise is given, uniform in [-1, 1]) "
         "projected onto the ball and [0, 1]; then take `steps` steps of size step_size along the "
         "sign of the input gradient of the cross-entropy, projecting after each step: clip the "
         "perturbation to [-ε, ε] and the image to [0, 1]. ε and step_size are in /255 units.",
         _check_pgd),
    Task("01.l2_projection", "01_whitebox_attacks", "project_l2", "the L2 projection",
         "Write project_l2(x_adv, x, eps): project every image of x_adv onto the L2 ball of radius "
         "eps (pixels) around the matching image of x — rescale the perturbation x_adv − x by "
         "min(1, eps / ‖x_adv − x‖₂), the norm taken over all pixels of that image (guard a zero norm "
         "with 1e-12) — then clip to [0, 1].",
         _check_l2_projection),
    Task("02.square_update", "02_blackbox_attacks", "square_candidate", "Square Attack's proposal",
         "Write square_candidate(x, x_best, top, left, size, signs, eps): the proposal of one Square "
         "Attack iteration (Andriushchenko et al., ECCV 2020). For image i, the size×size window with "
         "its top-left corner at (top[i], left[i]) gets the perturbation signs[i, c]·ε in channel c; "
         "outside the window the current perturbation x_best − x is kept. Return x plus that "
         "perturbation, clipped to [0, 1]. ε is in /255 units; signs holds ±1, shaped (N, C).",
         _check_square_update),
    Task("04.dice_loss", "04_segmentation_and_3d", "soft_dice_loss", "the soft Dice loss",
         "Write soft_dice_loss(logits, masks): the soft Dice loss of the lesion map (Milletari et "
         "al. 2016). p is the softmax probability of class 1 (logits are (N, 2, H, W), masks (N, H, "
         "W) in {0, 1}); per image, Dice = (2·Σ p·m + 1) / (Σ p + Σ m + 1) with the +1 smoothing; "
         "return 1 minus the mean Dice over the batch.",
         _check_dice_loss),
    Task("04.dice_pgd", "04_segmentation_and_3d", "dice_pgd", "PGD on the Dice loss",
         "Write dice_pgd(model, x, masks, eps, steps, step_size, noise): the segmentation attack "
         "that ascends the soft Dice loss of the U-Net's lesion map — PGD in the L∞ ball exactly as "
         "in task 01.pgd (start from x + ε·noise projected, then signed steps and projection onto "
         "the ball and [0, 1]), with the soft Dice loss instead of the cross-entropy. ε and "
         "step_size are in /255 units.",
         _check_dice_pgd),
    Task("05.pgd_at_step", "05_adversarial_training", "pgd_at_step", "one PGD-AT step",
         "Write pgd_at_step(model, optimizer, x, y, attack): one step of PGD adversarial training "
         "(Madry et al., ICLR 2018). Craft x′ = attack(model, x, y) (the attack runs the model in "
         "eval mode and restores its mode); then, with the model in train mode, clear the old "
         "gradients, back-propagate the cross-entropy of model(x′) and take one optimizer step. "
         "Return the loss as a float.",
         _check_pgd_at_step),
    Task("05.trades_loss", "05_adversarial_training", "trades_loss", "the TRADES loss",
         "Write trades_loss(logits, logits_adv, y, beta): the outer loss of TRADES (Zhang et al., "
         "ICML 2019): the cross-entropy of the clean logits plus β times the batch-mean KL "
         "divergence KL(p(x) ‖ p(x′)) between the softmax of the clean logits and that of the "
         "adversarial logits. Return a scalar tensor.",
         _check_outer("trades", "TRADES")),
    Task("05.mart_loss", "05_adversarial_training", "mart_loss", "the MART loss",
         "Write mart_loss(logits, logits_adv, y, beta): the outer loss of MART (Wang et al., ICLR "
         "2020). Boosted CE: the cross-entropy of the adversarial logits minus the mean of "
         "log(1.0001 − p′_k + 1e-12), where p′ = softmax(logits_adv) and k is the most probable "
         "wrong class under p′; plus β times the mean over the batch of KL(p ‖ p′) per example (p "
         "the clean softmax, log(p′ + 1e-12) inside the KL) weighted by 1.0000001 − p_y.",
         _check_outer("mart", "MART")),
    Task("06.bpda", "06_purification", "bpda", "BPDA",
         "Write bpda(model, purify, x): the logits of model(purify(x)) whose gradient with respect "
         "to x treats the (non-differentiable) purifier as the identity — Backward Pass "
         "Differentiable Approximation (Athalye, Carlini & Wagner, ICML 2018). purify maps images to "
         "images and may return a tensor without gradient history (JPEG, bit-depth rounding).",
         _check_bpda),
)}


# ---------------------------------------------------------------------------- running a check
@contextlib.contextmanager
def _time_limit(seconds: int | None):
    """Raise TimeoutError after ``seconds`` (only in the main thread of a Unix process)."""
    if not seconds or not hasattr(signal, "SIGALRM") or \
            threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"the check ran for more than {seconds} s (an endless loop?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _describe(exc: BaseException) -> str:
    """'Type: message', plus the line of the student's cell where it was raised, if any."""
    text = f"{type(exc).__name__}: {exc}".strip()
    cell_lines = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<task ")]
    if cell_lines:
        text += f" (line {cell_lines[-1].lineno} of the {cell_lines[-1].filename[6:-1]} cell)"
    return text if len(text) < 400 else text[:397] + "..."


def run(task_id: str, fn, timeout: int | None = None) -> Result:
    """Run a task's check on ``fn``; never raises (a stub or a broken function is a Result)."""
    if task_id not in TASKS:
        raise ConfigError(f"Unknown exercise {task_id!r}. Valid: {', '.join(TASKS)}.")
    if not callable(fn):
        return Result(task_id, "MISSING", f"{TASKS[task_id].function} is not a function")
    try:
        with _time_limit(timeout), torch.random.fork_rng():
            ok, message = TASKS[task_id].check(fn)
    except NotImplementedError as exc:
        return Result(task_id, "NOT IMPLEMENTED", str(exc) or "the function raises NotImplementedError")
    except (Exception, SystemExit) as exc:  # a student's function may raise anything: report it
        return Result(task_id, "ERROR", _describe(exc))
    return Result(task_id, "PASS" if ok else "FAIL", message)


def check(task_id: str, fn) -> None:
    """Notebook helper: print ✓ or ✗ with the check's message. Never raises."""
    result = run(task_id, fn)
    mark = "✓" if result.status == "PASS" else "✗"
    status = {"NOT IMPLEMENTED": "not implemented yet — ", "ERROR": "error — ",
              "MISSING": "missing — "}.get(result.status, "")
    print(f"{mark} {task_id} ({TASKS[task_id].title}): {status}{result.message}")


# ---------------------------------------------------------------------------- build
def _solution_cells(nb, notebook: str):
    """{task id: cell index} of the cells tagged ``solution`` in a reference notebook."""
    wanted = {t.function: t.id for t in TASKS.values() if t.notebook == notebook}
    found = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "solution" in cell.metadata.get("tags", []):
            names = [n.name for n in ast.parse(cell.source).body if isinstance(n, ast.FunctionDef)]
            for name in names:
                if name in wanted:
                    found[wanted[name]] = i
    return found


def stub(source: str, task: Task) -> str:
    """The cell's source with ``task.function``'s body replaced by a NotImplementedError naming the
    task; the signature, the docstring and the lines before the function are kept."""
    tree = ast.parse(source)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == task.function)
    doc = fn.body[0]
    if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
            and isinstance(doc.value.value, str)):
        raise ConfigError(f"Exercise {task.id}: {task.function} needs a docstring stating the task.")
    lines = source.splitlines()
    indent = " " * doc.col_offset
    return "\n".join(lines[:doc.end_lineno] + [
        f'{indent}raise NotImplementedError(',
        f'{indent}    "Task {task.id} ({task.title}) is not implemented yet: write the body of "',
        f'{indent}    "{task.function}() as its docstring says, then run the check cell below.")'])


def _header(notebook: str, tasks: list[Task]) -> str:
    items = "\n".join(f"- **{t.id}** ({t.title}). {t.statement}" for t in tasks)
    return (f"**Exercise copy** of `notebooks/{notebook}.ipynb`, written by `python -m survey_lib "
            f"exercises build` (do not edit the generated file in place: save your work under "
            f"another name). Your tasks:\n\n{items}\n\nEach exercise cell raises "
            "`NotImplementedError` until you write the function; the cell after it checks your "
            "version against `survey_lib`'s and prints ✓ or ✗. The rest of the notebook runs as "
            "usual. Grade all tasks at once with\n`python -m survey_lib exercises grade "
            f"<your copy>.ipynb` (see `notebooks/exercises/README.md`).")


def student_copy(notebook: str):
    """The exercise copy of ``notebooks/<notebook>.py`` as an nbformat notebook (no outputs,
    deterministic cell ids)."""
    import jupytext
    import nbformat

    source = NOTEBOOKS / f"{notebook}.py"
    if not source.exists():
        raise ConfigError(f"exercises build needs the notebook sources of a source checkout; "
                          f"{source} does not exist.")
    ref = jupytext.read(source)
    tasks = [t for t in TASKS.values() if t.notebook == notebook]
    cells = _solution_cells(ref, notebook)
    missing = [t.id for t in tasks if t.id not in cells]
    if missing:
        raise ConfigError(f"{source.name} has no cell tagged 'solution' defining the function of "
                          f"{', '.join(missing)}.")
    task_at = {i: TASKS[t] for t, i in cells.items()}
    out = []
    for i, cell in enumerate(ref.cells):
        tags = [t for t in cell.metadata.get("tags", []) if t != "solution"]
        if cell.cell_type == "markdown":
            out.append(nbformat.v4.new_markdown_cell(cell.source))
        elif i in task_at:
            task = task_at[i]
            out.append(nbformat.v4.new_code_cell(stub(cell.source, task),
                                                 metadata={"tags": tags + ["exercise"], "task": task.id}))
        else:  # the copies live one folder below the notebooks: fix their relative paths
            out.append(nbformat.v4.new_code_cell(cell.source.replace('Path("../', 'Path("../../')))
        if tags and i not in task_at:
            out[-1].metadata["tags"] = tags
        if i == 0:
            out.append(nbformat.v4.new_markdown_cell(_header(notebook, tasks)))
    for k, cell in enumerate(out):
        cell.id = f"{notebook[:2]}-{k:03d}"
    return nbformat.v4.new_notebook(cells=out, metadata={
        "kernelspec": ref.metadata.get("kernelspec", {"display_name": "Python 3", "language": "python",
                                                      "name": "python3"}),
        "survey_lib": {"exercises": notebook, "tasks": [t.id for t in tasks]}})


def _readme() -> str:
    rows = "\n".join(f"| `{t.id}` | `{t.notebook}.ipynb` | `{t.function}()` | {t.title} |"
                     for t in TASKS.values())
    return f"""# Exercises: the notebooks as course assignments

Generated by `python -m survey_lib exercises build` from the notebooks' sources (`notebooks/NN_*.py`,
cells tagged `solution`); do not edit these files by hand. CI checks they are up to date with
`python -m survey_lib exercises build --check`.

In each copy the solution cells are replaced by stubs that keep the signature and the docstring
(the task) and raise `NotImplementedError` naming the task, so the notebook still runs top to bottom.
Work on a copy (e.g. `cp 01_whitebox_attacks.ipynb my_01.ipynb` in this folder), since `build`
overwrites these files. Write each function, run the check cell below it (✓ or ✗), then grade
every task of the notebook:

```
python -m survey_lib exercises grade notebooks/exercises/my_01.ipynb
```

The grader runs each exercise cell (with the notebook's imports) and compares the function with
`survey_lib`'s implementation on fixed inputs (a tiny seeded model, seeded tensors): to 1e-6 for
attacks, projections and the weights after training steps, 1e-5 for loss values. It prints PASS,
FAIL (with the difference found), NOT IMPLEMENTED, MISSING (the cell was deleted) or ERROR (the
exception and the line of your cell) per task, then `score k/n`; exit code 0 at full marks, 1
otherwise, 2 when the file is not an exercise notebook.

| task | notebook | function | what |
|---|---|---|---|
{rows}
"""


def build(out: Path | str | None = None) -> list[Path]:
    """Write the exercise copies and the README to ``out`` (default ``notebooks/exercises``)."""
    import nbformat

    out = Path(out) if out else EXERCISES
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for notebook in dict.fromkeys(t.notebook for t in TASKS.values()):
        path = out / f"{notebook}.ipynb"
        path.write_text(nbformat.writes(student_copy(notebook)) + "\n", encoding="utf-8")
        paths.append(path)
    readme = out / "README.md"
    readme.write_text(_readme(), encoding="utf-8")
    return paths + [readme]


def stale(committed: Path | str | None = None) -> list[str]:
    """Names of generated files that are missing from or differ in ``committed``."""
    committed = Path(committed) if committed else EXERCISES
    with tempfile.TemporaryDirectory() as tmp:
        return [p.name for p in build(tmp)
                if not (committed / p.name).exists() or not filecmp.cmp(p, committed / p.name, False)]


# ---------------------------------------------------------------------------- grade
def _read(path: Path):
    """The notebook at ``path`` (.ipynb, or a jupytext .py/.md), or a one-line reason it is not one."""
    import nbformat

    if not path.exists():
        return None, f"{path} does not exist"
    try:
        if path.suffix == ".ipynb":
            return nbformat.read(path, as_version=4), None
        if path.suffix in (".py", ".md"):
            import jupytext

            return jupytext.read(path), None
    except Exception as exc:  # unreadable file, not JSON, or JSON that nbformat rejects
        return None, f"{path} is not a readable notebook ({type(exc).__name__}: {str(exc)[:200]})"
    return None, f"{path} is not a notebook (expected .ipynb, or a jupytext .py)"


def _defines(source: str, name: str) -> bool:
    return re.search(rf"^def\s+{re.escape(name)}\s*\(", source, re.MULTILINE) is not None


def _tasks_of(nb, path: Path) -> list[Task]:
    """The tasks a notebook is graded on: from the copy's metadata, its cells, or its file name."""
    meta = nb.metadata.get("survey_lib", {}).get("exercises")
    ids = {c.metadata.get("task") for c in nb.cells}
    notebooks = {t.notebook for t in TASKS.values()
                 if t.notebook == meta or t.id in ids or path.stem.startswith(t.notebook)}
    if not notebooks:  # a renamed copy without metadata: the notebooks whose solution cells it has
        notebooks = {t.notebook for t in TASKS.values() for c in nb.cells if c.cell_type == "code"
                     and {"solution", "exercise"} & set(c.metadata.get("tags", []))
                     and _defines(c.source, t.function)}
    return [t for t in TASKS.values() if t.notebook in notebooks]


def _find_cell(nb, task: Task):
    code = [c for c in nb.cells if c.cell_type == "code"]
    for match in (lambda c: c.metadata.get("task") == task.id,
                  lambda c: {"solution", "exercise"} & set(c.metadata.get("tags", []))
                  and _defines(c.source, task.function),
                  lambda c: _defines(c.source, task.function)):
        for cell in code:
            if match(cell):
                return cell
    return None


def _runnable(source: str) -> str:
    """Comment out IPython magics and shell escapes, which are not Python."""
    return "\n".join("# " + line if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def _imports(nb) -> dict:
    """A namespace with torch, F, nn, np, math and the notebook's top-level imports."""
    namespace: dict = {}
    exec("import math\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\n"
         "from torch import nn", namespace)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(_runnable(cell.source))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                with contextlib.suppress(Exception):
                    exec(compile(ast.Module([node], []), "<imports>", "exec"), namespace)
    return namespace


def grade_notebook(path: Path | str, timeout: int | None = TIMEOUT_S) -> tuple[list[Result] | None, str]:
    """(per-task results, header line); results is None when the file is not an exercise notebook.
    The exercise cells run in notebook order in one namespace holding the notebook's imports."""
    path = Path(path)
    nb, problem = _read(path)
    if nb is None:
        return None, problem
    tasks = _tasks_of(nb, path)
    if not tasks:
        return None, (f"{path} is not an exercise notebook: it has no exercise or solution cell of a "
                      f"known task. Exercise copies are in notebooks/exercises/ (python -m survey_lib "
                      f"exercises build); tasks: {', '.join(TASKS)}.")
    namespace = _imports(nb)
    results = []
    for task in tasks:
        cell = _find_cell(nb, task)
        if cell is None:
            results.append(Result(task.id, "MISSING", f"no cell defines {task.function}(): was the "
                                  "exercise cell deleted? Rebuild the copy or paste the stub back."))
            continue
        try:
            with _time_limit(timeout):
                exec(compile(_runnable(cell.source), f"<task {task.id}>", "exec"), namespace)
        except (Exception, SystemExit) as exc:
            results.append(Result(task.id, "ERROR", "the exercise cell itself fails: " + _describe(exc)))
            continue
        fn = namespace.get(task.function)
        if fn is None:
            results.append(Result(task.id, "MISSING", f"the exercise cell no longer defines "
                                  f"{task.function}()"))
            continue
        results.append(run(task.id, fn, timeout))
    return results, f"{path}: {len(tasks)} task(s) of notebook {tasks[0].notebook}"


def grade(path: Path | str) -> int:
    """Print the per-task report; exit code 0 at full marks, 1 otherwise, 2 if not an exercise notebook."""
    results, header = grade_notebook(path)
    if results is None:
        print(f"error: {header}")
        return 2
    print(header)
    width = max(len(r.task) for r in results)
    for r in results:
        print(f"  {r.task:<{width}}  {r.status:<15}  {r.message}")
    score = sum(r.status == "PASS" for r in results)
    print(f"score {score}/{len(results)}")
    return 0 if score == len(results) else 1

"""How a grid cell is computed: the model it names, the attack its column names (the survey's
settings), the test images it uses, and the metrics it stores.

The survey's settings (Dong et al. 2024, Sec. 6): FGSM; PGD-20 with step 0.5, 0.5, 1, 2 /255 at
ε = 1, 2, 4, 8 /255 (ε/4 elsewhere), run to the end so that the scores of its adversarial examples
give the robust AUC; CW-margin PGD with 30 steps (stops early on fooled images: accuracy only);
AutoAttack (standard, or a reduced version named as such); Square; SimBA; transfer from a NAT
surrogate of another seed. Slow columns run on a class-stratified subset of the test split whose
size every row records. Segmentation rows (PH2) run PGD-20 on the per-pixel CE and on the Dice loss.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import subprocess
import time
from pathlib import Path

import torch

from .. import __version__
from .spec import GridSpec

PAPER_STEP = {1: 0.5, 2: 0.5, 4: 1.0, 8: 2.0}  # the survey's PGD step (/255) for each ε (/255)
SLOW = ("autoattack", "aa_lite", "square", "simba")
SUBSET_SEED = 0  # the same stratified images for every model and seed (paired comparisons)


def pgd_step(eps: float) -> float:
    """The survey's PGD step (/255) for ε (/255); ε/4 for other budgets."""
    return PAPER_STEP.get(eps, eps / 4)


# ----------------------------------------------------------------------------- models
def train_model(dataset: str, defense: str, train_eps, seed: int, profile, progress: bool = False,
                external: dict | None = None):
    """The model of a grid row and its record: the NAT baseline or an adversarially trained one
    (cached), or an external model (``external[defense]["source"]``, checked, not trained)."""
    from ..defenses import make_defense
    from ..train import train_baseline

    if external and defense in external:
        return external_model(dataset, defense, external[defense]["source"], profile)
    if defense == "nat":
        return train_baseline(dataset, profile, seed=seed, progress=progress)
    return make_defense(defense, eps=train_eps, seed=seed).train(dataset, profile, progress=progress)


def external_model(dataset: str, defense: str, source: str, profile):
    """(model, record) of an external model: loaded, checked on a batch of the dataset's test
    images (:func:`survey_lib.external.check_model`)."""
    from ..external import check_model, load_model

    model = load_model(source)
    test = test_split(dataset, 28 if dataset != "ph2" else 128)
    check_model(model, test.info, test.x[:8], source)
    return model, {"config": model_config(dataset, defense, None, 0, profile,
                                          {defense: {"source": source}})}


def model_config(dataset: str, defense: str, train_eps, seed: int, profile,
                 external: dict | None = None) -> dict:
    """The training configuration of a grid model, without training it (an external model's:
    its source and fingerprint)."""
    from ..config import get_profile
    from ..defenses import make_defense
    from ..external import fingerprint
    from ..train import baseline_config

    if external and defense in external:
        source = external[defense]["source"]
        return {"name": defense, "model": "external", "source": source, "dataset": dataset,
                "fingerprint": fingerprint(source), "profile": get_profile(profile).name}
    if defense == "nat":
        return baseline_config(dataset, profile, seed=seed)
    return make_defense(defense, eps=train_eps, seed=seed).resolve(dataset, profile)


def surrogate_name(dataset: str, spec: GridSpec) -> str:
    return f"nat_s{spec.surrogate_seed}"


@functools.lru_cache(maxsize=16)
def _transfer(dataset: str, eps: float, steps: int, surrogate_seed: int, profile_name: str):
    """One transfer attack per (dataset, ε): its examples depend only on the surrogate and the
    images, so they are computed once per batch and reused for every target (memoised)."""
    from ..attacks import make_attack

    surrogate, _ = train_model(dataset, "nat", None, surrogate_seed, profile_name)
    attack = make_attack("transfer", eps=eps, steps=steps, step_size=pgd_step(eps),
                         surrogate=surrogate, surrogate_name=f"nat_s{surrogate_seed}")
    return Memoised(attack)


class Memoised:
    """An attack whose result depends only on the images and labels (transfer): the result of each
    batch is kept and returned again for the same batch."""

    def __init__(self, attack):
        self.attack, self._memo = attack, {}

    def __getattr__(self, name):
        return getattr(self.attack, name)

    def __repr__(self) -> str:
        return repr(self.attack)

    def __call__(self, model, x, y):
        key = hashlib.sha1(x.detach().cpu().numpy().tobytes() + y.cpu().numpy().tobytes()).hexdigest()
        if key not in self._memo:
            self._memo[key] = self.attack(model, x, y).cpu()
        return self._memo[key].to(x.device)


def make_grid_attack(column: str, eps, spec: GridSpec, dataset: str = "", profile=None):
    """The attack a grid column names, at ε (/255); ``None`` for the clean column."""
    from ..attacks import make_attack
    from ..config import get_profile

    step = pgd_step(eps) if eps is not None else None
    if column == "clean":
        return None
    if column == "fgsm":
        return make_attack("fgsm", eps=eps)
    if column == "pgd":
        return make_attack("pgd", eps=eps, steps=spec.pgd_steps, step_size=step)
    if column == "cw":
        return make_attack("cw_pgd", eps=eps, steps=spec.cw_steps, step_size=step, early_stop=True)
    if column == "autoattack":
        return make_attack("autoattack", eps=eps)
    if column == "aa_lite":
        return make_attack("aa_lite", eps=eps, steps=spec.aa_steps, square_queries=spec.aa_square)
    if column == "square":
        return make_attack("square", eps=eps, steps=spec.square_queries)
    if column == "simba":
        return make_attack("simba", eps=eps, steps=spec.simba_steps)
    if column == "transfer":
        return _transfer(dataset, eps, spec.pgd_steps, spec.surrogate_seed, get_profile(profile).name)
    if column in ("pgd_ce", "pgd_dice"):
        return make_attack(f"seg_{column}", eps=eps, steps=spec.pgd_steps, step_size=step)
    raise ValueError(f"no attack for column {column!r}")


# ----------------------------------------------------------------------------- test images
@functools.lru_cache(maxsize=4)
def test_split(dataset: str, size: int):
    """The test split, read once per process (every cell of a dataset evaluates on it)."""
    from ..train import load_dataset

    return load_dataset(dataset, size, splits=("test",))["test"]


def cell_images(dataset: str, column: str, spec: GridSpec):
    """(test images of a column, their indices in the test split, how they were chosen): the
    whole split, or a class-stratified seeded subset (``slow_subset`` for the slow columns,
    ``sanity_subset`` for the sanity checks, ``eval_subset`` otherwise)."""
    from ..data import stratified_indices

    test = test_split(dataset, spec.size)
    n = {"sanity": spec.sanity_subset, **dict.fromkeys(SLOW, spec.slow_subset)}.get(
        column, spec.eval_subset)
    index = stratified_indices(test.y, n, SUBSET_SEED)
    subset = None if len(index) == len(test) else {"n": len(index), "of": len(test),
                                                     "stratified": test.y.ndim == 1,
                                                     "seed": SUBSET_SEED}
    return test.take(index), index, subset


# ----------------------------------------------------------------------------- one cell
@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the code this process runs (read once, at its first row)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=False, cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _labels_text(values) -> str:
    """Per-image class labels as one digit each (classes 0–9) or comma-separated."""
    values = [int(v) for v in values]
    return "".join(map(str, values)) if max(values, default=0) < 10 else ",".join(map(str, values))


def _metrics(model, images, attack, keep: bool = True) -> dict:
    from ..evaluate import robust_metrics

    return robust_metrics(model, images, attack, keep_predictions=keep)


def sanity_attacks(eps, spec: GridSpec) -> list:
    """The attacks behind the per-model gradient-masking checks (Carlini et al. 2019), at the
    largest evaluation ε: the grid's PGD and a stronger PGD (``sanity_steps`` steps, default 100,
    ``sanity_restarts`` restarts, default 5, same step; it must not do better by more than a point,
    else the attack had not converged), and PGD at ε = 64/255 with steps of 4/255 (as many steps
    as the stronger PGD, at most 50; it must leave ≤ 5% of the images correct)."""
    from ..attacks import PGD

    return [make_grid_attack("pgd", eps, spec),
            PGD(eps=eps, steps=spec.sanity_steps, restarts=spec.sanity_restarts,
                step_size=pgd_step(eps)),
            PGD(eps=64, steps=min(spec.sanity_steps, 50), step_size=4)]


def sanity_measurements(model, images, spec: GridSpec, eps) -> dict:
    """Accuracy under each of :func:`sanity_attacks` (``pgd_acc``, ``strong_pgd_acc``,
    ``eps64_acc``) on the sanity images."""
    accs = [_metrics(model, images, a, keep=False)["acc"] for a in sanity_attacks(eps, spec)]
    return dict(zip(("pgd_acc", "strong_pgd_acc", "eps64_acc"), accs), eps=eps)


def sanity_config(eps, spec: GridSpec) -> str:
    return "; ".join(map(repr, sanity_attacks(eps, spec)))


def compute_row(cell, spec: GridSpec, profile, invocation: str = "") -> dict:
    """One row of the grid (not written)."""
    from ..train import select_device

    start = time.perf_counter()
    model, record = train_model(cell.dataset, cell.defense, cell.train_eps, cell.seed, profile,
                                external=spec.external)
    images, index, subset = cell_images(cell.dataset, cell.attack, spec)
    segmentation = images.info.task == "segmentation"
    row = {"dataset": cell.dataset, "defense": cell.defense, "train_eps": cell.train_eps,
           "seed": cell.seed, "attack": cell.attack, "eval_eps": cell.eval_eps,
           "profile": record["config"]["profile"], "size": spec.size,
           "model": record["config"]["model"], "model_key": model_key(record["config"]),
           "external": cell.defense in spec.external,
           "subset": subset, "index": index.tolist() if subset else None}
    if cell.attack == "sanity":
        eps = max(spec.eval_eps_for(cell.dataset))
        row.update(attack_config=sanity_config(eps, spec), n=len(images),
                   sanity=sanity_measurements(model, images, spec, eps))
    else:
        attack = make_grid_attack(cell.attack, cell.eval_eps, spec, cell.dataset, profile)
        adv = _metrics(model, images, attack)
        clean = adv if attack is None else _metrics(model, images, None, keep=False)
        row["attack_config"] = adv.pop("attack")
        if segmentation:
            row.update(n=adv["n"], dice=adv["dice"], iou=adv["iou"], clean_dice=clean["dice"],
                       clean_iou=clean["iou"],
                       dice_per_image=[round(v, 4) for v in adv.pop("dice_per_image")])
        else:
            row.update({k: adv[k] for k in ("n", "acc", "bacc", "macro_precision", "macro_recall",
                                            "macro_f1", "auc", "shares", "collapsed",
                                            "below_majority", "majority_rate")})
            row.update(auc_note=adv.get("auc_note"), clean_acc=clean["acc"], clean_bacc=clean["bacc"],
                       pred=_labels_text(adv["pred"]), y=_labels_text(images.y.tolist()),
                       queries=adv.get("queries"), stages=adv.get("stages"))
        row["attack_seconds"] = adv["seconds"]
    from ..train import PRECISION_ENV

    row.update(precision=os.environ.get(PRECISION_ENV) or "fp32",
               train_seconds=record.get("train_seconds", record.get("wall_seconds")),
               wall_seconds=round(time.perf_counter() - start, 2), device=str(select_device()),
               torch_threads=torch.get_num_threads(), package_version=__version__,
               git_commit=git_commit(), invocation=invocation,
               host_pid=f"{socket.gethostname()}:{os.getpid()}",
               finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return row


def model_key(config: dict) -> str:
    """The run folder name of a trained model's configuration (``<name>-<hash>``): which model,
    trained on which data file, a row was computed on."""
    from ..train import config_hash

    return f"{config['name']}-{config_hash(config)}"


def expected_model_key(cell, profile, external: dict | None = None) -> str:
    """The model key a row of ``cell`` must carry under the current recipes and data files."""
    from ..data import fingerprint

    config = model_config(cell.dataset, cell.defense, cell.train_eps, cell.seed, profile, external)
    if config["model"] == "external":
        return model_key(config)
    return model_key({**config, "data": fingerprint(config["dataset"], config.get("size", 28))})

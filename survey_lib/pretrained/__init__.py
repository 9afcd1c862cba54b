"""Small pretrained checkpoints shipped with the package, so a class sees meaningful models at once.

NAT and PGD-AT SmallCNNs for PneumoniaMNIST, BreastMNIST and RetinaMNIST (28 px) and the NAT U-Net
for PH2, trained with the ``cpu`` profile through the public API by ``python -m survey_lib
pretrained build`` (:mod:`survey_lib.pretrained.build`); the NAT SmallCNNs with a change to the cpu
recipe (more epochs or no augmentation, :data:`~survey_lib.pretrained.build.NAT_RECIPE`) chosen on
the validation split so that a small perturbation flips them, as a demo needs. Each is stored in
float16 beside ``manifest.json``, which holds per model its architecture, its training
configuration and its clean and robust test metrics (white-box PGD-20 at 2, 4 and 8/255), measured
on the shipped weights as :func:`load` returns them.

The loader reads this folder only: it never looks at (or depends on the keys of) the ``runs/``
cache of :func:`survey_lib.train.cached_run`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from ..config import get_profile
from ..errors import DataError
from ..models import build_model

FOLDER = Path(__file__).resolve().parent
MANIFEST = FOLDER / "manifest.json"


def key(dataset: str, defense: str = "nat") -> str:
    """The manifest key of a shipped model, e.g. ``"pneumoniamnist/pgd_at"``."""
    return f"{dataset.lower()}/{defense.lower()}"


@functools.lru_cache(maxsize=1)
def _read(path: Path, mtime: float) -> dict:
    return json.loads(path.read_text())


def manifest() -> dict:
    """The manifest (``{"provenance": ..., "models": {key: entry}}``); empty models when none."""
    if not MANIFEST.exists():
        return {"models": {}}
    return _read(MANIFEST, MANIFEST.stat().st_mtime)


def entries(profile=None) -> dict[str, dict]:
    """The shipped models, ``{key: manifest entry}``; only those trained with ``profile`` if given."""
    models = manifest()["models"]
    if profile is None:
        return dict(models)
    name = get_profile(profile).name
    return {k: e for k, e in models.items() if e["config"]["profile"] == name}


def available(dataset: str, defense: str = "nat", profile=None) -> bool:
    """Whether a model is shipped for ``dataset`` and ``defense`` (trained with ``profile``)."""
    return key(dataset, defense) in entries(profile)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load(dataset: str, defense: str = "nat") -> tuple[nn.Module, dict]:
    """The shipped model of ``dataset`` trained with ``defense`` ("nat" or "pgd_at"), in eval mode
    with float32 weights, and its manifest entry (configuration, test metrics)."""
    models = manifest()["models"]
    entry = models.get(key(dataset, defense))
    if entry is None:
        raise DataError(
            f"No pretrained model {key(dataset, defense)!r} ships with survey_lib. Shipped: "
            f"{', '.join(models) or 'none'}. Train it with survey_lib.train.train_baseline or "
            "survey_lib.defenses.make_defense(...).train, or rebuild the shipped set with "
            "`python -m survey_lib pretrained build`.")
    path = FOLDER / entry["file"]
    if not path.exists() or sha256(path) != entry["sha256"]:
        raise DataError(
            f"The pretrained weights {path} are missing or do not match the SHA-256 in {MANIFEST}. "
            "Restore them from the repository (git checkout survey_lib/pretrained), or rebuild "
            "them with `python -m survey_lib pretrained build --force`.")
    arch = entry["architecture"]
    model = build_model(arch["model"], arch["in_channels"], arch["num_classes"], arch["width"],
                        arch["size"])
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))  # fp16 → fp32
    return model.eval(), entry


def label(entry: dict) -> str:
    """How the explorer lists a shipped model, e.g. ``"pgd_at ε=8/255 (pretrained)"``."""
    if entry["defense"] == "nat":
        return "nat (pretrained)"
    return f"{entry['defense']} ε={entry['config']['eps']:g}/255 (pretrained)"


def table(profile=None):
    """The shipped models' test metrics, one row each, read from the manifest: clean ACC, balanced
    ACC and AUC (Dice and IoU for segmentation), then under white-box PGD-20 at each evaluated ε
    (``pgd2``: 2/255, ...) the same and ``flipped``, the share of the correctly classified images
    the attack makes wrong."""
    import pandas as pd

    rows = []
    for e in entries(profile).values():
        t = e["test"]
        row = {"dataset": e["dataset"], "defense": e["defense"],
               "train ε": e["config"].get("eps"), "model": e["architecture"]["model"], "n": t["n"]}
        for part in [k for k in t if k == "clean" or k.startswith("pgd")]:
            row.update({f"{part} {k}": t[part][k] for k in ("acc", "bacc", "auc", "flipped", "dice",
                                                            "iou") if k in t[part]})
        rows.append(row)
    return pd.DataFrame(rows)


def flip_table() -> str:
    """The start page's Markdown table, from the manifest: per shipped NAT classifier, how many test
    images it gets right and the share of those that white-box PGD-20 flips at each ε, with the
    95% Wilson interval (rounded to whole percents)."""
    from ..metrics import wilson_interval

    models = [e for e in manifest()["models"].values()
              if e["defense"] == "nat" and "acc" in e["test"]["clean"]]
    eps = [k for k in models[0]["test"] if k.startswith("pgd")] if models else []
    lines = ["| NAT model | correct (of test) | " + " | ".join(f"ε = {k[3:]}/255" for k in eps) + " |",
             "|---|---|" + "---|" * len(eps)]
    for e in models:
        t = e["test"]
        correct = round(t["clean"]["acc"] * t["n"])
        cells = []
        for k in eps:
            flips = round(t[k]["flipped"] * correct)
            lo, hi = wilson_interval(flips, correct)
            cells.append(f"{t[k]['flipped']:.0%} [{lo * 100:.0f}, {hi * 100:.0f}]")
        name = e["dataset"].removesuffix("mnist").capitalize() + "MNIST"
        lines.append(f"| {name} | {correct} of {t['n']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def baseline_model(dataset: str, profile=None, progress: bool = False) -> tuple[nn.Module, str]:
    """The undefended model a notebook uses: the shipped one when it was trained with this profile
    (no training), else :func:`survey_lib.train.train_baseline`'s (trained once, then cached).
    Returns ``(model, where it came from)``, a line for the notebook to print."""
    from ..train import train_baseline

    if available(dataset, "nat", profile):
        model, entry = load(dataset, "nat")
        changes = "".join(f", {k}={v}" for k, v in entry.get("recipe_changes", {}).items())
        return model, (f"{dataset}: pretrained NAT {entry['architecture']['model']} shipped with "
                       f"survey_lib ({entry['config']['profile']} profile{changes}; no training)")
    model, record = train_baseline(dataset, profile, progress=progress)
    return model, (f"{dataset}: NAT {record['config']['model']} from train_baseline "
                   f"({record['config']['profile']} profile)")

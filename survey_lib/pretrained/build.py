"""``python -m survey_lib pretrained build``: train the shipped checkpoints and write the manifest.

Each model is trained through the public API with the ``cpu`` profile
(:func:`survey_lib.train.train_recipe` on the cpu baseline configuration with the changes of
:data:`NAT_RECIPE` for NAT, ``make_defense("pgd_at", eps=...).train`` for PGD-AT, at the training ε
of the cpu benchmark grid: 8/255, but 2/255 on BreastMNIST where PGD-AT at 8/255 collapses to one
class), exported in float16, loaded back with
:func:`survey_lib.pretrained.load` and evaluated on the whole test split: clean ACC, balanced ACC,
AUC, prediction shares, and the same under white-box PGD-20 at 2/255, 4/255 and 8/255 with the
share of correctly classified images it flips (Dice and IoU, PGD on the per-pixel CE, for the PH2
U-Net).
Models already in the manifest are kept unless ``force``, which retrains them.
"""

from __future__ import annotations

import json
import os

import torch

from . import FOLDER, MANIFEST, key, load, manifest, sha256

PROFILE = "cpu"
# (dataset, defense, training ε in /255)
MODELS = (("pneumoniamnist", "nat", None), ("pneumoniamnist", "pgd_at", 8),
          ("breastmnist", "nat", None), ("breastmnist", "pgd_at", 2),
          ("retinamnist", "nat", None), ("retinamnist", "pgd_at", 8),
          ("ph2", "nat", None))
# A demo NAT model must flip under a perturbation too small to see: per dataset, the change to the
# cpu baseline recipe with the highest validation flip rate under PGD-20 at 2/255 among those within
# 5 points of its validation accuracy (benchmarks/demo_nat; the test split was not read)
NAT_RECIPE = {"pneumoniamnist": {"epochs": 60}, "breastmnist": {"augment": False},
              "retinamnist": {"epochs": 60}}
EVAL_EPS = (2, 4, 8)  # /255
EVAL_STEPS = 20


def train(dataset: str, defense: str, eps: float | None, force: bool = False,
          progress: bool = True):
    """``(model, record)`` of one shipped model, trained (or loaded from ``runs/``) with the cpu
    profile through the public API."""
    from ..defenses import make_defense
    from ..train import baseline_config, train_recipe

    if defense == "nat":
        config = {**baseline_config(dataset, PROFILE), **NAT_RECIPE.get(dataset, {})}
        return train_recipe(config, force=force, progress=progress)
    return make_defense(defense, eps=eps).train(dataset, PROFILE, force=force, progress=progress)


def export(model: torch.nn.Module, path) -> None:
    """Save the weights with floating-point tensors in float16 (atomically)."""
    from ..train import atomic_save

    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    atomic_save(state, path)


def shipped_metrics(model: torch.nn.Module, test) -> dict:
    """Clean and PGD-20 metrics at each ε of :data:`EVAL_EPS` on a test split; for classification
    also the share of the correctly classified images that the attack makes wrong (``flipped``)."""
    from ..attacks import make_attack
    from ..evaluate import attack_split
    from ..metrics import classification_metrics, dice_iou, predictions
    from ..train import predict

    task = test.info.task
    seg = task == "segmentation"

    def metrics(x):
        logits = predict(model, x)
        if seg:
            return dice_iou(logits, test.y), None
        m = classification_metrics(logits, test.y, task, test.info.num_classes)
        return m, torch.as_tensor(predictions(logits, task)) == test.y.view(-1)

    clean, correct = metrics(test.x)
    out = {"n": len(test), "clean": clean}
    for eps in EVAL_EPS:
        attack = make_attack("seg_pgd_ce" if seg else "pgd", eps=eps, steps=EVAL_STEPS)
        m, still = metrics(attack_split(model, test, attack))
        m["attack"] = repr(attack)
        if not seg:
            m["flipped"] = float((correct & ~still).sum() / correct.sum().clamp_min(1))
        out[f"pgd{eps}"] = m
    return out


def _round(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def build(force: bool = False, progress: bool = True) -> list[str]:
    """Train, export and evaluate every model of :data:`MODELS` missing from the manifest (all of
    them with ``force``); write ``manifest.json``. Returns the keys (re)built."""
    from ..report import provenance
    from ..train import load_dataset

    data = manifest()
    models = {} if force else dict(data["models"])
    built = []
    for dataset, defense, eps in MODELS:
        k = key(dataset, defense)
        if k in models and (FOLDER / models[k]["file"]).exists():
            continue
        model, record = train(dataset, defense, eps, force, progress)
        config = record["config"]
        file = f"{dataset}_{defense}.pt"
        export(model, FOLDER / file)
        info = load_dataset(dataset, config["size"])["test"].info
        entry = {"dataset": dataset, "defense": defense, "file": file, "sha256": sha256(FOLDER / file),
                 "dtype": "float16",
                 "architecture": {"model": config["model"], "in_channels": info.n_channels,
                                  "num_classes": info.num_classes, "width": config["width"],
                                  "size": config["size"]},
                 "config": config, "recipe_changes": NAT_RECIPE.get(dataset, {}) if defense == "nat"
                 else {}, "best_epoch": record.get("best_epoch"),
                 "train_wall_seconds": record.get("wall_seconds")}
        models[k] = entry
        _write({**data, "models": models})  # load() reads the entry from the manifest
        shipped, _ = load(dataset, defense)
        test = load_dataset(dataset, config["size"])["test"]
        models[k] = {**entry, "test": _round(shipped_metrics(shipped, test))}
        models = {key(*m[:2]): models[key(*m[:2])] for m in MODELS if key(*m[:2]) in models}
        data = {"provenance": provenance("python -m survey_lib pretrained build"
                                         + (" --force" if force else "")),
                "eval": f"whole test split; PGD-{EVAL_STEPS} L∞ at {EVAL_EPS} /255 (white-box)",
                "models": models}
        _write(data)
        built.append(k)
    return built


def _write(data: dict) -> None:
    tmp = MANIFEST.with_name(f".{MANIFEST.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, MANIFEST)

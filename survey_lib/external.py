"""Your own model through the survey's protocol: any classifier that takes [0, 1] images of a
dataset and returns logits, loaded from a TorchScript file or built by a ``module:function``.

    python -m survey_lib evaluate --model-file my_resnet.pt --dataset breastmnist --name my_resnet

runs it through the same attacks, ε values, metrics, sanity checks and tables as our models; its
rows sit beside ours in the results folder, marked ``external``. :func:`check_model` refuses, with
a message saying what to change, a model with the wrong number of outputs, one that fails on the
dataset's images, or one that returns probabilities instead of logits.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import torch
from torch import nn

from .errors import ConfigError

PREFIX = "ext_"  # a grid defense named ext_<name> is an external model
REGISTRY = "external_models.json"  # in a results folder: {defense: {"source", "datasets"}}


def defense_name(name: str) -> str:
    """The grid's defense name of an external model (``ext_<name>``), its name checked."""
    name = str(name).lower()
    if not name or not all(c.isalnum() or c == "_" for c in name):
        raise ConfigError(f"An external model's name must be letters, digits and '_' (it names "
                          f"folders and table rows); got {name!r}.")
    return PREFIX + name


def is_external(defense: str) -> bool:
    return defense.startswith(PREFIX)


def fingerprint(source: str) -> str:
    """What identifies the model: the SHA-256 of a TorchScript file, or the ``module:function``."""
    path = Path(source)
    if path.is_file():
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return "builder:" + source


def load_model(source: str) -> nn.Module:
    """A TorchScript file (``torch.jit.save``), an exported program (``torch.export.save``, a
    ``.pt2`` file) or ``package.module:function`` returning a model with its weights loaded; in
    eval mode on the CPU."""
    path = Path(source)
    if path.is_file() and path.suffix == ".pt2":
        try:
            return torch.export.load(str(path)).module()
        except Exception as exc:  # not an exported program: torch raises many kinds
            raise ConfigError(f"{path} is not a torch.export program ({type(exc).__name__}: {exc}). "
                              "Save it with torch.export.save(torch.export.export(model, (x,)), "
                              "path).") from None
    if path.is_file():
        try:
            model = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # not TorchScript: torch raises many kinds
            raise ConfigError(f"{path} is not a TorchScript file ({type(exc).__name__}: {exc}). Save "
                              "your model with torch.jit.save(torch.jit.script(model), path) (or "
                              "torch.jit.trace), or pass 'module:function' that builds and loads it."
                              ) from None
        return model.eval()
    module, _, function = source.partition(":")
    if not function:
        raise ConfigError(f"--model-file {source!r} is neither an existing file nor "
                          "'module:function' (e.g. my_package.models:load_model).")
    try:
        model = getattr(importlib.import_module(module), function)()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"Cannot build the model from {source!r}: {exc}. The function must be "
                          "importable (on PYTHONPATH) and take no arguments.") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{source} returned a {type(model).__name__}, not a torch.nn.Module.")
    return model.eval().cpu()


def check_model(model: nn.Module, info, x: torch.Tensor, source: str = "the model") -> None:
    """Refuse a model the protocol cannot evaluate fairly (one paragraph each): it must accept the
    dataset's [0, 1] images ``x`` and return (N, K) logits for the K classes of ``info``."""
    shape = tuple(x.shape[1:])
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:  # a shape mismatch surfaces as many kinds of errors
        raise ConfigError(f"{source} fails on {info.flag} images of shape (N, {', '.join(map(str, shape))}) "
                          f"in [0, 1] ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
                          "Models evaluated by survey_lib take the dataset's raw images in [0, 1] and "
                          "normalise inside (wrap yours: e.g. repeat a grey channel for an RGB "
                          "network).") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] != info.num_classes:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"{source} returns {got} for {len(x)} images, but {info.flag} has "
                          f"{info.num_classes} classes ({', '.join(info.class_names)}): it must "
                          f"return logits shaped (N, {info.num_classes}).")
    out = out.float()
    if bool((out >= 0).all() and (out <= 1).all()) and torch.allclose(
            out.sum(1), torch.ones(len(out)), atol=1e-3):
        raise ConfigError(f"{source} returns probabilities (non-negative, summing to 1 per image), "
                          "not logits: gradients through a saturated softmax vanish and would "
                          "overstate its robustness. Remove the final softmax.")


def register(results: Path, name: str, source: str, dataset: str) -> str:
    """Record the model ``name`` (its ``source``, evaluated on ``dataset``) in the results folder,
    so later report runs include its rows; returns its defense name. A name already bound to
    another source is an error."""
    known = registered(results)
    defense = defense_name(name)
    entry = known.setdefault(defense, {"source": source, "datasets": []})
    if entry["source"] != source:
        raise ConfigError(f"The name {name!r} is already used in {results} for {entry['source']}; "
                          "pick another --name, or use another --results folder.")
    entry["datasets"] = sorted(set(entry["datasets"]) | {dataset.lower()})
    path = Path(results) / REGISTRY
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=1))
    return defense


def registered(results: Path) -> dict[str, dict]:
    """``{defense name: {"source", "datasets"}}`` of the external models of a results folder."""
    path = Path(results) / REGISTRY
    return json.loads(path.read_text()) if path.exists() else {}

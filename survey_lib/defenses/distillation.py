"""Defensive distillation (survey taxonomy: defenses → distillation; Papernot et al., S&P 2016).

A teacher is trained at temperature T (softmax(z / T)); a student of the same architecture is
trained at the same T on the teacher's soft labels; the student is deployed at T = 1, i.e. its raw
logits are used. Those logits are about T times larger than a normal model's, so softmax saturates:
the cross-entropy gradient underflows to (almost) zero and FGSM / PGD-CE find nothing, although the
decision boundary has not moved. An attack on the logit margin (CW, Carlini & Wagner, S&P 2017)
ignores the softmax and breaks it — the textbook case of gradient masking.

:func:`defense_recipe` (the baseline's recipe with another loss and a name) is shared by the
other training-time defenses of this package (noise-augmented training), and :class:`Recipe` is how the
defense registry hands out a training-time defense.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from ..config import get_profile
from ..data import task_info
from ..errors import ConfigError
from ..train import baseline_config, train_recipe


def defense_recipe(name: str, dataset: str, profile, loss_fn, extra: dict | None = None,
                   size: int = 28, root=None, progress: bool = False):
    """Train (or load from ``runs/``) a single-label classifier with the undefended baseline's
    recipe (:func:`~survey_lib.train.train_recipe`) but ``loss_fn(model, x, y)``, cached under
    ``name``; ``extra`` (JSON-able) goes into, and may override, the configuration."""
    config = {**baseline_config(dataset, profile, size), "name": name, **(extra or {})}
    task = "segmentation" if config["dataset"] == "ph2" else task_info(config["dataset"], size).task
    if task not in ("binary-class", "multi-class", "ordinal-regression"):
        raise ConfigError(f"{name}: a defense for single-label classification, but {dataset!r} is a "
                          f"{task} task. Use e.g. breastmnist or pneumoniamnist.")
    return train_recipe(config, loss_fn, root=root, progress=progress)


class Recipe:
    """A training-time defense as the registry gives it, like
    :class:`~survey_lib.defenses.AdversarialTraining`: ``Recipe(fn, **kwargs).train(dataset,
    profile)`` returns ``fn(dataset, profile, **kwargs)``, a ``(model, record)`` pair."""

    def __init__(self, fn, **kwargs):
        try:
            inspect.signature(fn).bind(None, None, **kwargs)
        except TypeError as exc:
            valid = [k for k in inspect.signature(fn).parameters if k not in ("dataset", "profile")]
            raise ConfigError(f"{fn.__name__}: {exc}. Valid options: {', '.join(valid)}.") from None
        self.fn, self.kwargs = fn, kwargs

    def __repr__(self) -> str:
        return f"Recipe({self.fn.__name__}, {self.kwargs})"

    def train(self, dataset: str, profile=None, progress: bool = False):
        return self.fn(dataset, profile, **{"progress": progress, **self.kwargs})


def check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ConfigError(f"Distillation temperature must be positive, got {temperature}. "
                          "Papernot et al. use T = 20 to 100; T = 1 is ordinary training.")


def train_distilled(dataset: str, profile=None, temperature: float = 50.0,
                    epochs: int | None = None, lr: float | None = None, size: int = 28,
                    root=None, progress: bool = False):
    """Defensive distillation: teacher and student at temperature T; returns the student (used at
    T = 1) and ``{"teacher": record, "student": record}``. ``epochs`` and ``lr`` override the
    baseline recipe's: the logits must grow about T-fold during training for the defense to act
    as in the paper, which the cpu recipe's 30 Adam epochs at 1e-3 do not reach on BreastMNIST."""
    check_temperature(temperature)
    profile = get_profile(profile)
    T = float(temperature)
    recipe = {k: v for k, v in (("epochs", epochs), ("lr", lr)) if v is not None}

    def teacher_loss(m, x, y):
        return F.cross_entropy(m(x).float() / T, y)

    teacher, teacher_record = defense_recipe("distill-teacher", dataset, profile, teacher_loss,
                                           extra={"temperature": T, **recipe}, size=size, root=root,
                                           progress=progress)
    teacher.eval()

    def student_loss(m, x, y):
        with torch.no_grad():
            soft = F.softmax(teacher(x).float() / T, dim=1)
        return -(soft * F.log_softmax(m(x).float() / T, dim=1)).sum(1).mean()

    student, student_record = defense_recipe(
        "distill-student", dataset, profile, student_loss, size=size, root=root, progress=progress,
        extra={"temperature": T, **recipe, "teacher": teacher_record["config"]})
    return student, {"teacher": teacher_record, "student": student_record}

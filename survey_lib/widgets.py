"""Interactive explorers for the notebooks (ipywidgets): pick a dataset, an image, a model (one
shipped with the package, :mod:`survey_lib.pretrained`, in the profile it was trained with; the
undefended one or a defended one from the ``runs/`` cache), an attack, ε and steps; see the
original, the adversarial image, the amplified difference and the class probabilities before and
after (for segmentation: the true, clean and attacked masks). The title names the image, the
attack and the model.

Without a widget front end (CI, papermill, the rendered site: ``$CI`` or ``$SURVEY_STATIC_WIDGETS``
set, or no IPython kernel) :class:`Explorer` draws the same view once as a static figure.
"""

from __future__ import annotations

import functools
import html
import json
import os
from pathlib import Path

import torch

from . import pretrained, validation
from .attacks import make_attack
from .config import get_profile
from .data import Split
from .errors import ConfigError, DataError
from .evaluate import pick_examples
from .figures import _show
from .train import build_for, load_dataset, runs_root

CLASSIFICATION_ATTACKS = ("fgsm", "pgd", "cw_pgd", "mifgsm", "apgd_ce", "square")
SEGMENTATION_ATTACKS = ("seg_pgd_ce", "seg_pgd_dice")


def widget_frontend() -> bool:
    """Whether widgets will be seen: a Jupyter kernel, not CI, not a static rendering."""
    if os.environ.get("CI") or os.environ.get("SURVEY_STATIC_WIDGETS"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def cached_models(dataset: str, root: str | Path | None = None) -> dict[str, Path]:
    """The trained classifiers / U-Nets cached for ``dataset``: ``{label: run folder}``, labelled
    by defense and training ε (e.g. ``"pgd_at ε=8/255"``), NAT first."""
    found = {}
    for folder in sorted((Path(root) if root else runs_root()).glob(f"{dataset.lower()}/*")):
        record = folder / "record.json"
        if not (folder / "model.pt").exists() or not record.exists():
            continue
        config = json.loads(record.read_text())["config"]
        defense = config.get("name", "").split("-")[0]  # "nat-smallcnn", "pgd_at-smallcnn", ...
        if defense not in ("nat", "pgd_at", "trades", "mart", "hat", "fast_at") or "eval" in folder.name:
            continue  # detectors, purifiers, students and evaluation records are not plain models
        label = "nat" if defense == "nat" else f"{defense} ε={config['eps']:g}/255"
        if config.get("eps_schedule"):
            label += " warm-up"
        if defense != "nat" and config.get("balanced") is False:
            label += " unbalanced"
        found.setdefault(label, folder)
    return dict(sorted(found.items(), key=lambda kv: (kv[0] != "nat", kv[0])))


def load_cached(folder: str | Path, info) -> torch.nn.Module:
    """The model saved in a run folder of :func:`survey_lib.train.cached_run`, in eval mode."""
    config = json.loads((Path(folder) / "record.json").read_text())["config"]
    model = build_for(config, info)
    model.load_state_dict(torch.load(Path(folder) / "model.pt", map_location="cpu", weights_only=True))
    return model.eval()


def view_title(flag: str, index: int, attack: str, eps: float, steps: int, label: str = "") -> str:
    """What a view shows: the image, the attack and its budget, the model."""
    budget = f"{attack}, ε = {eps:g}/255" + ("" if attack == "fgsm" else f", {steps} steps")
    return f"{flag} test image {index} · {budget}" + (f" · model: {label}" if label else "")


def attack_view(model: torch.nn.Module, split: Split, index: int, attack: str, eps: float,
                steps: int, label: str = "", suptitle: bool = True):
    """Attack test image ``index`` of ``model`` and draw what changed, titled by
    :func:`view_title` (``label`` names the model; no title with ``suptitle=False``); returns the
    matplotlib figure."""
    import matplotlib.pyplot as plt

    if not 0 <= index < len(split):
        raise ConfigError(f"Image index {index} is outside the {split.info.flag} test split "
                          f"(0..{len(split) - 1}).")
    x, y = split.x[index:index + 1], split.y[index:index + 1]
    kw = {"eps": eps} if attack == "fgsm" else {"eps": eps, "steps": steps}
    x_adv = make_attack(attack, **kw)(model, x, y)
    with torch.no_grad():
        logits, logits_adv = model(x).float(), model(x_adv).float()
    diff = ((x_adv - x) * 255 / max(eps, 1e-6) / 2 + 0.5).clamp(0, 1)  # ±ε → [0, 1]
    if split.info.task == "segmentation":
        fig, axes = plt.subplots(1, 6, figsize=(13, 2.6))
        for ax, img, t in zip(axes, (x, x_adv, diff), ("clean", "adversarial", "δ (amplified)")):
            _show(ax, img[0], t)
        for ax, mask, t in zip(axes[3:], (y[0], logits.argmax(1)[0], logits_adv.argmax(1)[0]),
                               ("true mask", "prediction, clean", "prediction, attacked")):
            ax.imshow(mask.numpy(), cmap="magma", vmin=0, vmax=1)
            ax.set_title(t, fontsize=8)
            ax.axis("off")
    else:
        names = [n[:14] for n in split.info.class_names]
        fig, axes = plt.subplots(1, 4, figsize=(12, 2.8), width_ratios=[1, 1, 1, 1.6])
        p, p_adv = torch.softmax(logits, 1)[0], torch.softmax(logits_adv, 1)[0]
        for ax, img, t in zip(axes, (x, x_adv, diff),
                              (f"clean: {names[p.argmax()]}", f"attacked: {names[p_adv.argmax()]}",
                               "δ (amplified)")):
            _show(ax, img[0], t)
        ticks = torch.arange(len(names)).float()
        axes[3].barh(ticks - 0.2, p.numpy(), height=0.4, label="clean")
        axes[3].barh(ticks + 0.2, p_adv.numpy(), height=0.4, label="attacked")
        axes[3].set(yticks=ticks.tolist(), xlim=(0, 1), xlabel="probability",
                    title=f"true class: {names[int(y.view(-1)[0])]}")
        axes[3].set_yticklabels(names, fontsize=7)
        axes[3].legend(fontsize=7)
    if suptitle:
        fig.suptitle(view_title(split.info.flag, index, attack, eps, steps, label), fontsize=10)
    fig.tight_layout()
    return fig


class Explorer:
    """An attack explorer over ``datasets`` and their models: the ones shipped with the package for
    ``profile`` (:mod:`survey_lib.pretrained`; ``None``: ``$SURVEY_PROFILE``, else cpu), then those
    in the ``runs/`` cache (or only the given ``models`` ``{label: model}`` and test ``split``).
    It starts on image ``index``, by default one drawn by :func:`~survey_lib.evaluate.pick_examples`
    (``pick``) for the first model. Shown in a notebook (last expression of a cell) it is the
    widget with a front end, else the static figure of the initial choice (``interactive`` None:
    decided by :func:`widget_frontend`). ``controls`` maps names to the widgets; ``title`` is the
    title of the last view (:func:`view_title`; the widget shows it as text above the figure,
    ``caption``, the static figure as its title) and ``figure`` the last view drawn."""

    def __init__(self, datasets=("breastmnist", "pneumoniamnist"), models: dict | None = None,
                 split: Split | None = None, attack: str | None = None, eps: float = 4,
                 steps: int = 10, index: int | None = None, interactive: bool | None = None,
                 profile=None):
        eps = validation.linf_eps(eps, "Explorer")
        if split is not None:
            validation.split(split)
        self.datasets, self.models, self.split = [d.lower() for d in datasets], models, split
        self.profile = get_profile(profile)
        self._tests: dict[str, Split] = {}
        name = self.datasets[0]
        attack = attack or self.attacks_for(name)[-1 if self.segmentation(name) else 1]
        choices = self.model_choices(name)
        if not choices:
            raise DataError(
                f"No trained model for {name} under {runs_root()}, and none shipped for the "
                f"{self.profile.name} profile: run notebook 00 (or `python -m survey_lib train "
                f"--dataset {name}`) first, or pass models={{label: model}}.")
        self.pick = None
        if index is None:
            self.pick = pick_examples(self.load(name, next(iter(choices))), self.test_split(name))
            index = self.pick.indices[0]
        self.figure, self.widget, self.controls, self.caption, self.title = None, None, {}, None, ""
        if not (widget_frontend() if interactive is None else interactive):
            self.draw(name, next(iter(choices)), index, attack, eps, steps)
            return
        import ipywidgets as w

        self.caption = w.HTML()
        c = self.controls = {
            "dataset": w.Dropdown(options=self.datasets, value=name, description="dataset"),
            "model": w.Dropdown(options=list(choices), description="model"),
            "attack": w.Dropdown(options=self.attacks_for(name), value=attack, description="attack"),
            # sliders redraw when released (continuous_update=False): one attack per move, not one
            # per pixel dragged
            "index": w.IntSlider(index, 0, len(self.test_split(name)) - 1, description="image",
                                 continuous_update=False),
            "eps": w.FloatSlider(value=eps, min=0.5, max=32, step=0.5, description="ε (/255)",
                                 continuous_update=False),
            "steps": w.IntSlider(steps, 1, 100, description="steps", continuous_update=False)}
        self.out = w.Output()
        c["dataset"].observe(self._on_dataset, "value")
        for key in ("model", "attack", "index", "eps", "steps"):
            c[key].observe(self.redraw, "value")
        self.widget = w.VBox([w.HBox([c["dataset"], c["model"], c["attack"]]),
                              w.HBox([c["index"], c["eps"], c["steps"]]), self.caption, self.out])
        self.redraw()

    def test_split(self, name: str) -> Split:
        if self.split is not None:
            return self.split
        if name not in self._tests:
            self._tests[name] = load_dataset(name)["test"]
        return self._tests[name]

    def segmentation(self, name: str) -> bool:
        return self.test_split(name).info.task == "segmentation"

    def attacks_for(self, name: str) -> tuple[str, ...]:
        return SEGMENTATION_ATTACKS if self.segmentation(name) else CLASSIFICATION_ATTACKS

    def model_choices(self, name: str) -> dict:
        """``{label: model, run folder or loader of a shipped model}``, shipped models first."""
        if self.models is not None:
            return dict(self.models)
        shipped = {pretrained.label(e): functools.partial(pretrained.load, e["dataset"], e["defense"])
                   for e in pretrained.entries(self.profile).values() if e["dataset"] == name.lower()}
        return {**shipped, **cached_models(name)}

    def load(self, name: str, label: str) -> torch.nn.Module:
        """The model listed as ``label`` for dataset ``name``."""
        chosen = self.model_choices(name)[label]
        if isinstance(chosen, torch.nn.Module):
            return chosen
        if isinstance(chosen, Path):
            return load_cached(chosen, self.test_split(name).info)
        return chosen()[0]  # a shipped model: pretrained.load returns (model, manifest entry)

    def draw(self, name, label, index, attack, eps, steps):
        import matplotlib.pyplot as plt

        self.title = view_title(name, index, attack, eps, steps, label)
        self.figure = attack_view(self.load(name, label), self.test_split(name), index, attack, eps,
                                  steps, label, suptitle=self.caption is None)
        plt.close(self.figure)  # shown by display(), not again by the inline backend
        if self.caption is not None:
            self.caption.value = f"<b>{html.escape(self.title)}</b>"
        return self.figure

    def redraw(self, *_):
        # set the Output's content directly (no ``with out:`` capture and no clear_output(wait=True),
        # which can stall headless notebook runners)
        c = self.controls
        if c["model"].value is None:
            text = f"No trained model for {c['dataset'].value} under {runs_root()}.\n"
            self.out.outputs = ({"output_type": "stream", "name": "stdout", "text": text},)
            return
        figure = self.draw(*(c[k].value for k in ("dataset", "model", "index", "attack", "eps", "steps")))
        self.out.outputs = ()
        self.out.append_display_data(figure)

    def _on_dataset(self, change):
        c, name = self.controls, change["new"]
        with c["model"].hold_trait_notifications(), c["attack"].hold_trait_notifications():
            c["model"].options, c["attack"].options = list(self.model_choices(name)), \
                self.attacks_for(name)
            c["index"].max = len(self.test_split(name)) - 1
        self.redraw()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget if self.widget is not None else self.figure)


"""Input checks shared by every public entry point: attacks, prediction and evaluation, training, the
explorer and the CLI. Each check runs once, where the input enters the package (never inside an
attack step or a model's forward), and raises a :class:`~survey_lib.errors.ConfigError` whose one
paragraph says what was wrong and what to pass instead.

The rules:

- **Images** are float tensors (N, C, H, W) or (N, C, D, H, W), finite, inside [0, 1], never empty.
  Nothing is rescaled silently: 0..255 images and normalised images are refused.
- **Labels** of a single-label task: any integer dtype, shaped (N,) or (N, 1), or float rows that are
  exactly one-hot; all become (N,) ``int64``. Multi-label: (N, L) of 0/1, as float. Segmentation:
  integer masks (N, H, W) (or (N, 1, H, W)), as ``int64``.
- **L∞ ε is in /255 units** everywhere (``eps=8`` means 8/255). A value below half a grey level
  (< 0.5/255: ``0.03`` or ``8/255`` are pixel-scale habits) is refused with both readings, unless
  the caller says ``eps_unit="pixel"``; step sizes share ε's unit and may be below 1/255 (the
  survey's 0.5/255); L2 ε is on the [0, 1] pixel scale.
"""

from __future__ import annotations

import math

import torch

from .errors import ConfigError

HALF_GREY = 0.5  # the smallest L∞ ε (/255) an 8-bit image can represent a change of
EPS_UNITS = ("/255", "pixel")


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
            hasattr(value, "__float__") and getattr(value, "ndim", 0) == 0):
        raise ConfigError(f"{what} must be a number, got {value!r} ({type(value).__name__}).")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got {value}.")
    return value


def linf_eps(eps, owner: str = "", unit: str = "/255", param: str = "eps",
             pixel_option: str | None = "eps_unit='pixel'") -> float:
    """An L∞ budget in /255 units, checked. ``unit="pixel"``: ``eps`` is on the [0, 1] scale
    (0.03 ≈ 7.65/255). ``owner`` (e.g. the attack's name) and ``param`` name it in messages, which
    offer ``pixel_option`` (None where there is no such option, e.g. on the command line)."""
    sep = " " if param.startswith("--") else "="
    where = f"{owner}: " if owner else ""
    if unit not in EPS_UNITS:
        raise ConfigError(f"{where}eps_unit must be one of {', '.join(EPS_UNITS)}; got {unit!r}. "
                          "'/255' (the default): eps=8 means 8/255; 'pixel': eps=0.03 means 0.03 on "
                          "the [0, 1] scale.")
    value = _number(eps, f"{where}{param}")
    if value <= 0:
        raise ConfigError(f"{where}{param} must be positive, got {value:g}. L∞ ε is in /255 units: "
                          f"for 8/255 pass {param}{sep}8.")
    if unit == "pixel":
        if value > 1:
            raise ConfigError(f"{where}{param}={value:g} with eps_unit='pixel' exceeds the [0, 1] "
                              f"range. Did you mean {value:g}/255? Then pass {param}={value:g} "
                              "without eps_unit.")
        value *= 255
    if value < HALF_GREY:
        raise ConfigError(
            f"{where}{param}{sep}{eps:g} means {value:g}/255, less than half a grey level of an "
            f"8-bit image: no 8-bit image can change by that much. L∞ ε is given in /255 units. If "
            f"you meant {eps:g} on the [0, 1] pixel scale (= {eps * 255:.4g}/255), pass "
            f"{param}{sep}{eps * 255:.4g}{f' or {pixel_option}' if pixel_option else ''}; for ε = "
            f"8/255 pass {param}{sep}8.")
    if value > 255:
        raise ConfigError(f"{where}{param}{sep}{value:g} means {value:g}/255, more than the whole "
                          f"[0, 1] range (255/255). L∞ ε is given in /255 units, at most 255; for ε "
                          f"= 8/255 pass {param}{sep}8.")
    return value


def step(value, owner: str = "", unit: str = "/255") -> float:
    """A positive step size in ε's unit (/255 for L∞; may be below 1, e.g. the survey's 0.5/255)."""
    where = f"{owner}: " if owner else ""
    value = _number(value, f"{where}step_size")
    if value <= 0:
        raise ConfigError(f"{where}step_size must be positive, got {value:g} (in {unit} units, like "
                          "ε).")
    return value * 255 if unit == "pixel" else value


def l2_eps(eps, owner: str = "") -> float:
    """A positive L2 budget on the [0, 1] pixel scale (e.g. 0.5)."""
    where = f"{owner}: " if owner else ""
    value = _number(eps, f"{where}eps")
    if value <= 0:
        raise ConfigError(f"{where}eps must be positive, got {value:g} (L2 ε is on the [0, 1] pixel "
                          "scale, e.g. 0.5).")
    return value


def images(x, what: str = "images", unit_range: bool = True) -> torch.Tensor:
    """``x`` itself, checked: a non-empty float tensor (N, C, H, W) or (N, C, D, H, W), finite, in
    [0, 1] (the range is not checked when ``unit_range`` is False, for inputs that leave it on
    purpose, such as the Gaussian copies of randomized smoothing)."""
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{what} must be a torch.Tensor (N, C, H, W), got {type(x).__name__}.")
    if x.ndim not in (4, 5):
        raise ConfigError(f"{what} must be a batch shaped (N, C, H, W) or (N, C, D, H, W), got shape "
                          f"{tuple(x.shape)}. For one image use x[None] or x.unsqueeze(0).")
    if len(x) == 0:
        raise ConfigError(f"{what}: the batch is empty (shape {tuple(x.shape)}); pass at least one image.")
    if not x.is_floating_point():
        raise ConfigError(f"{what} must be floating point in [0, 1], got dtype {x.dtype}. Convert "
                          "8-bit images with x.float() / 255.")
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ConfigError(f"{what} contain {bad} NaN or infinite value(s); fix the data or the step "
                          "that produced them. Nothing is evaluated on non-finite inputs.")
    lo, hi = float(x.min()), float(x.max())
    if unit_range and (lo < 0 or hi > 1):
        raise ConfigError(
            f"{what} must lie in [0, 1], got values from {lo:.4g} to {hi:.4g}. survey_lib never "
            "rescales silently: divide 0..255 images by 255, and pass raw rather than normalised "
            "images (survey_lib models normalise inside).")
    return x


def labels(y, n: int, task: str = "multi-class", num_classes: int | None = None,
           what: str = "labels") -> torch.Tensor:
    """``y`` in its canonical form for ``task`` (see the module docstring), or a ConfigError."""
    if not isinstance(y, torch.Tensor):
        raise ConfigError(f"{what} must be a torch.Tensor, got {type(y).__name__}.")
    if len(y) != n:
        raise ConfigError(f"{what}: {len(y)} labels for {n} images; pass one label per image.")
    if task == "segmentation":
        return _masks(y, num_classes, what)
    if task.startswith("multi-label"):
        return _multi_label(y, what)
    if y.is_floating_point():
        onehot = y.ndim == 2 and y.shape[1] > 1 and bool(((y == 0) | (y == 1)).all()) and \
            bool((y.sum(1) == 1).all())
        if not onehot:
            raise ConfigError(
                f"{what} of a single-label task must be integers (any integer dtype, shaped (N,) or "
                f"(N, 1)) or exactly one-hot float rows; got a {y.dtype} tensor of shape "
                f"{tuple(y.shape)}. Convert class indices with y.long().")
        y = y.argmax(1)
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y.view(-1)
    if y.ndim != 1:
        raise ConfigError(f"{what} of a single-label task must be shaped (N,) or (N, 1), got "
                          f"{tuple(y.shape)}.")
    y = y.long()
    if len(y) and (int(y.min()) < 0 or (num_classes is not None and int(y.max()) >= num_classes)):
        raise ConfigError(f"{what} must be class indices in 0..{(num_classes or 0) - 1}, got values "
                          f"from {int(y.min())} to {int(y.max())}.")
    return y


def _multi_label(y: torch.Tensor, what: str) -> torch.Tensor:
    if y.ndim != 2 or not bool(((y == 0) | (y == 1)).all()):
        raise ConfigError(f"{what} of a multi-label task must be (N, L) of 0/1, got shape "
                          f"{tuple(y.shape)} and dtype {y.dtype}.")
    return y.float()


def _masks(y: torch.Tensor, num_classes: int | None, what: str) -> torch.Tensor:
    if y.ndim == 4 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 3 or y.is_floating_point():
        raise ConfigError(f"{what} of a segmentation task must be integer masks (N, H, W), got "
                          f"dtype {y.dtype} and shape {tuple(y.shape)}.")
    y = y.long()
    top = (num_classes or 2) - 1
    if int(y.min()) < 0 or int(y.max()) > top:
        raise ConfigError(f"{what}: mask values must lie in 0..{top}, got {int(y.min())}..{int(y.max())}.")
    return y


def split(s, what: str = "split"):
    """``s`` itself if it is a :class:`survey_lib.data.Split` (checked when it was made)."""
    if not all(hasattr(s, a) for a in ("x", "y", "info")):
        raise ConfigError(f"{what} must be a survey_lib.data.Split (images, labels and task info), "
                          f"got {type(s).__name__}. Build one with survey_lib.data.Split(x, y, info) "
                          "or load it with survey_lib.train.load_dataset.")
    return s

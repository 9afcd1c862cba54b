"""Attribution: Grad-CAM and saliency maps, and how far an attack moves them.

- :func:`gradcam`: Grad-CAM (Selvaraju et al., ICCV 2017) on the block that feeds the global pooling
  (:func:`cam_layer`), upsampled to the input size; for a GAP + linear head it equals CAM (Zhou et
  al., CVPR 2016), the class weights times the block's feature maps.
- :func:`saliency`: the input gradient |∂z_target/∂x| (Simonyan et al., ICLR workshop 2014), its
  maximum over channels.
- :func:`explanation_stability`: per image, the correlation between the map of a clean image and
  the map of its adversarial version, both explaining the true class (Ghorbani et al., AAAI 2019
  measure the fragility of interpretations this way); robust models are expected to keep theirs
  (Tsipras et al., ICLR 2019; Etmann et al., ICML 2019).
- :func:`explanation_figure`: clean / attacked images with their maps, one row per model and image.

The maps come from Captum (``captum.attr.LayerGradCam``, ``captum.attr.Saliency``). Like the
attacks, every function runs the model in eval mode with parameters frozen and restores both;
inputs are never modified.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from .attacks.base import frozen
from .data import Split, stratified_indices
from .errors import ConfigError
from .metrics import predictions
from .train import predict

POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


# ----------------------------------------------------------------------------- checks
def _check_images(x, what: str = "explain") -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim not in (4, 5):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"{what}: images must be a float tensor (N, C, H, W) or (N, C, D, H, W); "
                          f"got {shape}. Add the batch dimension with x[None] for a single image.")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ConfigError(f"{what}: images must be finite and lie in [0, 1] (got min "
                          f"{float(x.nan_to_num().min()):.3g}, max {float(x.nan_to_num().max()):.3g}). "
                          "survey_lib models normalise inside; pass raw [0, 1] images.")


def _targets(logits: torch.Tensor, target, what: str) -> torch.Tensor:
    """``target`` as a (N,) long tensor on the logits' device; None: the predicted class."""
    n, k = logits.shape
    if target is None:
        return logits.argmax(1)
    target = torch.as_tensor(target, device=logits.device).reshape(-1)
    if target.is_floating_point() or len(target) not in (1, n):
        raise ConfigError(f"{what}: target must be one class index or one per image ({n}), as "
                          f"integers; got shape {tuple(target.shape)}, dtype {target.dtype}.")
    if target.min() < 0 or target.max() >= k:
        raise ConfigError(f"{what}: target classes must be in 0..{k - 1} (the model has {k} "
                          f"outputs); got {target.tolist()}.")
    return target.expand(n).long()


def cam_layer(model: nn.Module) -> nn.Module:
    """The block Grad-CAM looks at: the last module of ``model.features`` before its global
    average pooling (SmallCNN: the last conv block; ResNet18/ResNet3D: the last residual block;
    CNN3D: the last conv block)."""
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        for i, module in enumerate(features):
            if isinstance(module, POOLS) and i > 0:
                return features[i - 1]
    raise ConfigError(f"gradcam: no layer found in a {type(model).__name__}: the rule looks for a "
                      "`features` nn.Sequential with a global average pooling (SmallCNN, ResNet18, "
                      "CNN3D, ResNet3D). Pass layer=<the last convolutional block> instead.")


# ----------------------------------------------------------------------------- maps
def gradcam(model: nn.Module, x: torch.Tensor, target=None, layer: nn.Module | None = None,
            signed: bool = False) -> torch.Tensor:
    """Grad-CAM maps (N, H, W) (or (N, D, H, W)) of class ``target`` (None: the predicted class;
    an int or one per image), upsampled (bi/trilinear) from ``layer`` (default :func:`cam_layer`).

    Shown maps (``signed=False``): ReLU'd and divided by each image's maximum, so in [0, 1] (an
    image with no positive evidence for the class gives a map of zeros). ``signed=True`` returns
    the raw map before ReLU and normalisation (positive and negative evidence; used to compare
    maps, since it is never constant)."""
    from captum.attr import LayerAttribution, LayerGradCam

    _check_images(x, "gradcam")
    layer = layer or cam_layer(model)
    device = next(model.parameters()).device
    with frozen(model):
        x = x.detach().to(device)
        with torch.no_grad():
            t = _targets(model(x), target, "gradcam")
        cam = LayerGradCam(model, layer).attribute(x, target=t)
        mode = "bilinear" if x.ndim == 4 else "trilinear"
        cam = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode=mode)
    cam = cam.detach()[:, 0].float().cpu()
    if signed:
        return cam
    cam = cam.clamp_min(0)
    peak = cam.flatten(1).amax(1).clamp_min(1e-12)
    return cam / peak.view(-1, *[1] * (cam.ndim - 1))


def saliency(model: nn.Module, x: torch.Tensor, target=None) -> torch.Tensor:
    """Saliency maps (N, H, W) (or (N, D, H, W)): |∂z_target/∂x| of the logit of class ``target``
    (None: the predicted class), maximum over channels; not normalised."""
    from captum.attr import Saliency

    _check_images(x, "saliency")
    device = next(model.parameters()).device
    with frozen(model):
        x = x.detach().to(device).clone().requires_grad_(True)
        with torch.no_grad():
            t = _targets(model(x), target, "saliency")
        grad = Saliency(model).attribute(x, target=t, abs=True)
    return grad.detach().amax(1).float().cpu()


# ----------------------------------------------------------------------------- stability
def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row Pearson correlation of two (N, P) tensors (NaN where a row is constant)."""
    a, b = a.double() - a.double().mean(1, keepdim=True), b.double() - b.double().mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def _ranks(a: torch.Tensor) -> torch.Tensor:
    return a.argsort(1).argsort(1).double()


def map_correlation(a: torch.Tensor, b: torch.Tensor, method: str = "pearson") -> torch.Tensor:
    """Per-image correlation of two batches of maps (N, ...): ``pearson`` or ``spearman`` (Pearson
    of the pixel ranks; ties broken by position). NaN for a constant map (undefined)."""
    if a.shape != b.shape or a.ndim < 2:
        raise ConfigError(f"map_correlation: two batches of maps of the same shape (N, ...) are "
                          f"needed; got {tuple(a.shape)} and {tuple(b.shape)}.")
    a, b = a.flatten(1), b.flatten(1)
    if method == "pearson":
        return _pearson(a, b)
    if method == "spearman":
        return _pearson(_ranks(a), _ranks(b))
    raise ConfigError(f"map_correlation: unknown method {method!r}. Valid: pearson, spearman.")


def _require_single_label(split: Split, what: str) -> None:
    if not isinstance(split, Split) or split.y.ndim != 1 or split.y.is_floating_point():
        task = split.info.task if isinstance(split, Split) else type(split).__name__
        raise ConfigError(f"{what}: needs a single-label classification Split (labels (N,) "
                          f"integers) so that the true class can be explained; got {task}. "
                          "Load one with survey_lib.data.load_splits(flag)['test'].")


def _adversarial(model, x, y, attack, batch_size: int) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([attack(model, x[i:i + batch_size].to(device), y[i:i + batch_size].to(device))
                      .detach().cpu() for i in range(0, len(x), batch_size)])


def explanation_stability(model: nn.Module, split: Split, attack, n: int = 200, seed: int = 0,
                          batch_size: int = 100) -> pd.DataFrame:
    """How much an attack changes a model's explanations, one row per image.

    ``n`` test images drawn class-stratified (seeded; all when the split is smaller) are attacked
    with ``attack(model, x, y) -> x_adv``; the Grad-CAM (signed, see :func:`gradcam`) and saliency
    maps of the clean and the adversarial image, both of the **true class**, are compared by
    Pearson and Spearman correlation. Columns: index (in the split), label, pred_clean, pred_adv,
    flipped (pred_adv ≠ pred_clean), cam_pearson, cam_spearman, saliency_pearson, saliency_spearman.
    """
    _require_single_label(split, "explanation_stability")
    idx = stratified_indices(split.y, n, seed)
    x, y = split.x[idx], split.y[idx]
    _check_images(x, "explanation_stability")
    x_adv = _adversarial(model, x, y, attack, batch_size)
    rows: dict[str, list] = {}
    for i in range(0, len(x), batch_size):
        xc, xa, yb = x[i:i + batch_size], x_adv[i:i + batch_size], y[i:i + batch_size]
        with frozen(model), torch.no_grad():
            device = next(model.parameters()).device
            logits = [model(v.to(device)).float().cpu() for v in (xc, xa)]
        maps = {"cam": [gradcam(model, v, yb, signed=True) for v in (xc, xa)],
                "saliency": [saliency(model, v, yb) for v in (xc, xa)]}
        batch = {"pred_clean": predictions(logits[0], split.info.task),
                 "pred_adv": predictions(logits[1], split.info.task)}
        for name, (clean, adv) in maps.items():
            for method in ("pearson", "spearman"):
                batch[f"{name}_{method}"] = map_correlation(clean, adv, method).numpy()
        for k, v in batch.items():
            rows.setdefault(k, []).extend(np.asarray(v).tolist())
    out = pd.DataFrame({"index": idx.tolist(), "label": y.tolist(), **rows})
    out.insert(4, "flipped", out["pred_adv"] != out["pred_clean"])
    return out


# ----------------------------------------------------------------------------- figure
def _class_name(info, k: int) -> str:
    name = info.class_names[int(k)]
    return f"grade {name}" if info.task == "ordinal-regression" else name


def _middle(heat: torch.Tensor) -> torch.Tensor:
    """The middle slice of a volume's map (D, H, W), as ``figures._show`` shows volumes."""
    return heat[heat.shape[0] // 2] if heat.ndim == 3 else heat


def examples_correct_for_all(models: dict[str, nn.Module], split: Split, k: int, seed: int = 0,
                             pool: int = 400) -> torch.Tensor:
    """``k`` indices of images that every model classifies correctly, spread over the classes
    (round robin), drawn with ``seed`` from a stratified pool of ``pool`` images."""
    _require_single_label(split, "explanation_figure")
    idx = stratified_indices(split.y, pool, seed)
    ok = torch.ones(len(idx), dtype=torch.bool)
    for model in models.values():
        ok &= torch.as_tensor(predictions(predict(model, split.x[idx]), split.info.task)) == split.y[idx]
    idx = idx[ok]
    if len(idx) < k:
        raise ConfigError(f"explanation_figure: only {len(idx)} of {pool} images are classified "
                          f"correctly by every model ({', '.join(models)}); asked for k={k}. Ask "
                          "for fewer, or check for a collapsed model (one class for every image).")
    idx = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed))].tolist()
    labels, seen, key = split.y.tolist(), {}, {}
    for i in idx:  # round robin: the first of each class, then the second of each class, ...
        seen[labels[i]] = seen.get(labels[i], -1) + 1
        key[i] = (seen[labels[i]], labels[i])
    return torch.tensor(sorted(idx, key=key.get)[:k])


def explanation_figure(models: dict[str, nn.Module], split: Split, attack, k: int = 3,
                       seed: int = 0, title: str = ""):
    """For ``k`` images that every model classifies correctly (seeded, spread over the classes),
    one row per (image, model): the clean image, its Grad-CAM, the adversarial image (``attack``
    against that model), its Grad-CAM, then the saliency maps of both; all maps explain the true
    class, each scaled to its own maximum and overlaid on the image. Titles give the predictions
    and, on the adversarial maps, the clean-vs-adversarial Pearson correlation of the row."""
    import matplotlib.pyplot as plt

    from .figures import _show

    if not models:
        raise ConfigError("explanation_figure: pass at least one model, e.g. {'NAT': nat}.")
    idx = examples_correct_for_all(models, split, k, seed)
    x, y = split.x[idx], split.y[idx]
    cols = ["clean image", "Grad-CAM (clean)", "adversarial", "Grad-CAM (adv)", "saliency (clean)",
            "saliency (adv)"]
    rows = len(idx) * len(models)
    fig, axes = plt.subplots(rows, len(cols), figsize=(1.9 * len(cols), 2.0 * rows), squeeze=False)
    for m, (label, model) in enumerate(models.items()):
        x_adv = _adversarial(model, x, y, attack, len(x))
        pred = {"clean": predictions(predict(model, x), split.info.task),
                "adv": predictions(predict(model, x_adv), split.info.task)}
        cam = [gradcam(model, v, y) for v in (x, x_adv)]
        cam_r = map_correlation(*[gradcam(model, v, y, signed=True) for v in (x, x_adv)])
        sal = [saliency(model, v, y) for v in (x, x_adv)]
        sal_r = map_correlation(*sal)
        sal = [s / s.flatten(1).amax(1).clamp_min(1e-12).view(-1, *[1] * (s.ndim - 1)) for s in sal]
        for j in range(len(idx)):
            ax = axes[j * len(models) + m]
            true = _class_name(split.info, y[j])
            p_clean, p_adv = (_class_name(split.info, pred[s][j]) for s in ("clean", "adv"))
            panels = [(x[j], None, f"{label} | true: {true}\n#{int(idx[j])}"),
                      (x[j], cam[0][j], f"{label}: {p_clean}"),
                      (x_adv[j], None, f"{label} on adv: {p_adv}"),
                      (x_adv[j], cam[1][j], f"r(CAM) = {float(cam_r[j]):.2f}"),
                      (x[j], sal[0][j], f"{label}: {p_clean}"),
                      (x_adv[j], sal[1][j], f"r(saliency) = {float(sal_r[j]):.2f}")]
            for c, (a, (img, heat, text)) in enumerate(zip(ax, panels)):
                _show(a, img, text)
                if heat is not None:
                    a.imshow(_middle(heat).numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
                if c == 2 and p_adv != true:
                    a.title.set_color("crimson")
    for a, name in zip(axes[0], cols):
        a.set_title(f"{name}\n{a.get_title()}", fontsize=8, color=a.title.get_color())
    eps = getattr(attack, "eps_units", None)
    threat = f"{getattr(attack, 'name', 'attack')}" + (f" ε = {eps:g}/255" if eps is not None else "")
    fig.suptitle(title or f"{split.info.flag}: explanations of the true class, clean vs {threat} "
                 "(maps scaled per image; red title = prediction flipped)", fontsize=10)
    fig.tight_layout()
    return fig

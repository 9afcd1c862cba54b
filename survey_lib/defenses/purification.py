"""Pre-processing (input purification) defenses (survey taxonomy: defenses → pre-processing).

Each defense is a model wrapper, ``Purifier(model)``: it maps an image in [0, 1] to a "cleaned"
image and classifies that. The four purifiers:

- :class:`JPEGCompression`: JPEG encode/decode at a quality in 1..100 (Dziugaite et al. 2016;
  Guo et al., ICLR 2018);
- :class:`BitDepthReduction`: squeeze every pixel to ``bits`` bits (Xu et al., NDSS 2018);
- :class:`MedianSmoothing`: a k×k median filter (Xu et al., NDSS 2018);
- :class:`DenoiserPurifier` with a small :class:`DenoisingAutoencoder` trained on the dataset to
  remove Gaussian noise (Gu & Rigazio 2015; MagNet, Meng & Chen, CCS 2017);
- :class:`RandomResizePad`: a random shrink and a random placement, fresh at every call (Xie et
  al., ICLR 2018), the randomized kind of pre-processing.

Evaluating them honestly (Athalye, Carlini & Wagner, ICML 2018): JPEG and bit-depth reduction are
not differentiable (their gradient is zero or undefined), which *masks* the gradient of a naive
attack. Their backward pass here is the identity — Backward Pass Differentiable Approximation
(BPDA) — so that any white-box attack on the wrapper is the adaptive attack; the median filter and
the autoencoder are differentiable and are attacked end to end. A randomized purifier is attacked
with Expectation over Transformation (EOT: the gradient averaged over draws of the randomness,
:class:`~survey_lib.attacks.EOTPGD`). :func:`evaluate_purifiers` puts the naive evaluation (the attack
computed on the undefended model and transferred, as if the attacker ignored the purifier) beside
the adaptive one.
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..data import Split
from ..errors import ConfigError
from ..evaluate import attack_split, robust_metrics
from ..metrics import predictions
from ..train import cached_run, fit, load_dataset, predict, seed_everything


def require_2d_classification(info, defense: str) -> None:
    """ConfigError unless ``info`` describes a 2D image classification task."""
    if info.task == "segmentation" or info.task.startswith("multi-label") or info.is_3d:
        raise ConfigError(
            f"{defense} is a defense for 2D single-label image classification, but the dataset "
            f"{info.flag!r} is a {'3D ' if info.is_3d else ''}{info.task} task. Use a 2D MedMNIST "
            "classification dataset such as breastmnist or pneumoniamnist.")


class Purifier(nn.Module):
    """Model wrapper that classifies ``purify(x)``. Non-differentiable purifiers
    (``differentiable = False``) pass the gradient straight through (BPDA with the identity);
    randomized ones (``randomized = True``) are attacked with EOT by :func:`evaluate_purifiers`."""

    differentiable = True
    randomized = False

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ConfigError(f"{type(self).__name__} purifies 2D images (N, C, H, W); got a tensor "
                              f"of shape {tuple(x.shape)}. Volumes and other shapes are not supported.")
        if self.differentiable:
            return self.model(self.purify(x))
        return self.model(x + (self.purify(x.detach()) - x).detach())  # BPDA: identity backward


class JPEGCompression(Purifier):
    """JPEG encode/decode at ``quality`` (1..100; lower removes more high-frequency detail)."""

    differentiable = False

    def __init__(self, model: nn.Module, quality: int = 75):
        if not (isinstance(quality, int) and 1 <= quality <= 100):
            raise ConfigError(f"JPEG quality must be an integer in 1..100, got {quality!r}. "
                              "Typical values: 75 (mild) to 20 (strong).")
        super().__init__(model)
        self.quality = quality

    def purify(self, x):
        images = (x.detach().cpu() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        out = []
        for image in images:
            buffer = io.BytesIO()
            Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(
                buffer, format="JPEG", quality=self.quality)
            out.append(np.asarray(Image.open(buffer)).reshape(image.shape))
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255


class BitDepthReduction(Purifier):
    """Round every pixel to one of 2**bits levels (bits in 1..8; 8 leaves uint8 images unchanged)."""

    differentiable = False

    def __init__(self, model: nn.Module, bits: int = 4):
        if not (isinstance(bits, int) and 1 <= bits <= 8):
            raise ConfigError(f"Bit depth must be an integer in 1..8, got {bits!r}. "
                              "Xu et al. use 1 (MNIST) to 5 bits (CIFAR).")
        super().__init__(model)
        self.bits = bits

    def purify(self, x):
        levels = 2 ** self.bits - 1
        return torch.round(x * levels) / levels


class MedianSmoothing(Purifier):
    """k×k median filter with reflect padding (differentiable almost everywhere)."""

    def __init__(self, model: nn.Module, kernel: int = 3):
        if not (isinstance(kernel, int) and kernel >= 3 and kernel % 2 == 1):
            raise ConfigError(f"Median kernel size must be an odd integer ≥ 3, got {kernel!r}. "
                              "Xu et al. use 2×2 to 3×3 windows; 3 is the usual choice.")
        super().__init__(model)
        self.kernel = kernel

    def purify(self, x):
        k, p = self.kernel, self.kernel // 2
        patches = F.pad(x, (p, p, p, p), mode="reflect").unfold(2, k, 1).unfold(3, k, 1)
        return patches.reshape(*x.shape, k * k).median(dim=-1).values


class RandomResizePad(Purifier):
    """Shrink the batch to a random side in [⌈ratio·H⌉, H] (bilinear) and zero-pad it back to H×W at
    a random offset, with a fresh draw at every call (Xie et al., ICLR 2018, who enlarge instead;
    shrinking keeps the model's input size). Differentiable for a given draw, but random: a single
    gradient is a poor guide, so the adaptive attack averages over draws (EOT)."""

    randomized = True

    def __init__(self, model: nn.Module, ratio: float = 0.9):
        if not 0 < ratio < 1:
            raise ConfigError(f"Resize ratio must lie in (0, 1), got {ratio!r}; 0.9 shrinks 28-px "
                              "images to 26–28 px.")
        super().__init__(model)
        self.ratio = ratio

    def purify(self, x):
        h, w = x.shape[-2:]
        side_h = int(torch.randint(math.ceil(self.ratio * h), h + 1, (1,)))
        side_w = max(1, round(side_h * w / h))
        small = F.interpolate(x, size=(side_h, side_w), mode="bilinear", align_corners=False)
        top, left = (int(torch.randint(0, n + 1, (1,))) for n in (h - side_h, w - side_w))
        return F.pad(small, (left, w - side_w - left, top, h - side_h - top))


class DenoisingAutoencoder(nn.Module):
    """A small fully convolutional denoiser x → x̂ in [0, 1] (three 3×3 convolutions, full resolution)."""

    def __init__(self, channels: int = 1, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, channels, 3, padding=1), nn.Sigmoid(),
        )

    def forward(self, x):
        return self.net(x)


class DenoiserPurifier(Purifier):
    """Classify the autoencoder's reconstruction (end-to-end differentiable)."""

    def __init__(self, model: nn.Module, denoiser: nn.Module):
        super().__init__(model)
        self.denoiser = denoiser

    def purify(self, x):
        return self.denoiser(x)


def train_denoiser(dataset: str, profile, noise: float = 0.1, width: int = 32, size: int = 28,
                   root=None, progress: bool = False):
    """Train (or load from ``runs/``) a :class:`DenoisingAutoencoder` that maps x + N(0, noise²) to
    x on the training split; the checkpoint kept has the lowest validation reconstruction error."""
    from ..config import get_profile

    if noise <= 0:
        raise ConfigError(f"Denoiser training noise must be positive, got {noise}. Try 0.1.")
    p = get_profile(profile)
    splits = load_dataset(dataset, size, root)
    train = splits["train"].subset(p.train_subset, p.seed)
    val = splits["val"].subset(p.eval_subset, p.seed)
    require_2d_classification(train.info, "The denoising-autoencoder purifier")
    config = {"name": "dae", "dataset": dataset.lower(), "size": size, "noise": noise,
              "width": width, "epochs": p.epochs, "batch_size": p.batch_size, "lr": p.lr,
              "train_subset": p.train_subset, "seed": p.seed, "profile": p.name}

    def noisy_mse(m, x, y):
        return F.mse_loss(m((x + noise * torch.randn_like(x)).clamp(0, 1)), x)

    def val_score(m, val):
        return -F.mse_loss(predict(m, val.x), val.x).item()

    def train_fn(model: nn.Module, last: Path) -> dict:
        start = time.perf_counter()
        out = fit(model, train, val, epochs=p.epochs, batch_size=p.batch_size, lr=p.lr,
                  seed=p.seed, loss_fn=noisy_mse, select_fn=val_score, checkpoint=last,
                  progress=progress)
        return {"wall_seconds": round(time.perf_counter() - start, 1), **out}

    def build():
        seed_everything(p.seed)
        return DenoisingAutoencoder(train.info.n_channels, width)

    return cached_run(config, build, train_fn)


PURIFIERS = {"jpeg": JPEGCompression, "bit_depth": BitDepthReduction, "median": MedianSmoothing,
             "dae": DenoiserPurifier, "random_resize": RandomResizePad}


def make_purifier(name: str, model: nn.Module, **kwargs) -> Purifier:
    """Wrap ``model`` in the purifier ``name`` (``PURIFIERS`` lists them; ``dae`` needs
    ``denoiser=``)."""
    if name not in PURIFIERS:
        raise ConfigError(f"Unknown purifier {name!r}. Valid purifiers: {', '.join(PURIFIERS)}.")
    return PURIFIERS[name](model, **kwargs)


def eot(attack, samples: int = 10):
    """The EOT version of a PGD-type attack (same ε, steps, step size, restarts, loss, seed)."""
    from ..attacks import EOTPGD, PGD

    if not isinstance(attack, PGD):
        raise ConfigError(f"EOT averages the gradient of a PGD-type attack; got {attack!r}. Use "
                          "make_attack('pgd', ...) (or cw_pgd) to evaluate randomized purifiers.")
    return EOTPGD(eps=attack.eps_units, steps=attack.steps, step_size=attack.step_size * 255,
                  restarts=attack.restarts, loss=attack.loss, seed=attack.seed, samples=samples)


def evaluate_purifiers(model: nn.Module, split: Split, purifiers: dict[str, Purifier],
                       attack, eot_samples: int = 10, seed: int = 0) -> list[dict]:
    """Clean, naive and adaptive metrics of every purifier on ``split``.

    - naive (transfer): ``attack`` is run on the undefended ``model`` and its adversarial images are
      fed to the purified model, as an attacker unaware of the pre-processing would do;
    - white-box + BPDA: ``attack`` is run on the purified model itself (identity backward through
      the non-differentiable steps; for a randomized purifier, its EOT version with
      ``eot_samples`` draws per step, and a "white-box, one draw (no EOT)" row shows the difference);
    - adaptive: per example, the worse of the two for the defense (an attacker who knows the
      defense tries every attack it has; Carlini et al. 2019, "On evaluating adversarial
      robustness"), so its accuracy is never above the naive one.
    The undefended model comes first. Every row has acc, bacc, auc, shares and collapsed. The
    randomness of randomized purifiers is seeded with ``seed`` before every attack and evaluation.
    """
    require_2d_classification(split.info, "Input purification")
    start = time.perf_counter()
    x_naive = attack_split(model, split, attack)
    naive_seconds = time.perf_counter() - start
    rows = []
    for name, wrapped in {"none": model, **purifiers}.items():
        random = getattr(wrapped, "randomized", False)
        evals = {"clean": (split.x, 0.0), "naive (transfer)": (x_naive, naive_seconds)}
        if random:
            torch.manual_seed(seed)
            start = time.perf_counter()
            evals["white-box, one draw (no EOT)"] = (attack_split(wrapped, split, attack),
                                                     time.perf_counter() - start)
        torch.manual_seed(seed)
        start = time.perf_counter()
        x_white = x_naive if wrapped is model else attack_split(
            wrapped, split, eot(attack, eot_samples) if random else attack)
        seconds = time.perf_counter() - start
        torch.manual_seed(seed)
        fooled = predictions(predict(wrapped, x_white), split.info.task) != split.y.numpy()
        x_adaptive = torch.where(torch.from_numpy(fooled).view(-1, 1, 1, 1), x_white, x_naive)
        evals.update({"white-box + BPDA": (x_white, seconds),
                      "adaptive (worst of both)": (x_adaptive, seconds + naive_seconds)})
        for evaluation, (x, attack_seconds) in evals.items():
            torch.manual_seed(seed)
            m = robust_metrics(wrapped, Split(x, split.y, split.info))
            rows.append({"defense": name, "evaluation": evaluation, "attack": repr(attack),
                         **{k: m[k] for k in ("acc", "bacc", "auc", "shares", "collapsed", "n")},
                         "attack_seconds": round(attack_seconds, 2)})
    return rows

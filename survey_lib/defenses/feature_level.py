"""Feature-level defense: feature denoising (survey taxonomy: defenses → feature-level;
Xie, Wu, van der Maaten, Yuille & He, CVPR 2019).

Adversarial noise that is small in the image grows into large, noisy activations inside the
network. Xie et al. insert *denoising blocks* after intermediate stages: a non-local means of the
feature map (every position becomes a softmax(dot-product)-weighted average of all positions, their
"Gaussian" version), a 1×1 convolution and BatchNorm, added back to the input through a residual
connection. The BatchNorm scale starts at zero, so a fresh block is the identity. The blocks only
help together with adversarial training, so :func:`train_feature_denoising` trains the denoised
network with exactly the package's PGD-AT recipe (:mod:`.adversarial_training`), which makes it
comparable to the plain ``pgd_at`` model of the same profile.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..train import build_for, cached_run
from .adversarial_training import AdversarialTraining, run_training, test_report, training_splits


class NonLocalDenoise(nn.Module):
    """x + BN(conv1×1(non-local means of x)), softmax dot-product affinities over positions."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        f = x.flatten(2)  # (N, C, HW)
        affinity = torch.softmax(f.transpose(1, 2) @ f / c ** 0.5, dim=-1)  # (N, HW, HW)
        return x + self.bn(self.conv((f @ affinity.transpose(1, 2)).view(n, c, h, w)))


def add_feature_denoising(model: nn.Module) -> nn.Module:
    """Insert a :class:`NonLocalDenoise` block after every max-pooling of ``model.features`` (the
    smallcnn's two resolution drops); returns the model, changed in place."""
    layers, channels, inserted = [], None, 0
    for layer in getattr(model, "features", []):
        convs = [m for m in layer.modules() if isinstance(m, nn.Conv2d)]
        channels = convs[-1].out_channels if convs else channels
        layers.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            layers.append(NonLocalDenoise(channels))
            inserted += 1
    if not inserted:
        raise ConfigError(f"Feature denoising inserts its blocks after the max-poolings of a 2D "
                          f"smallcnn, but {type(model).__name__} has none. Use model 'smallcnn' "
                          "(the cpu and smoke profiles' model) on a 2D classification dataset.")
    model.features = nn.Sequential(*layers)
    return model


def train_feature_denoising(dataset: str, profile=None, eps: float = 8, progress: bool = False,
                            **kwargs):
    """PGD adversarial training (the package's recipe; ``kwargs`` go to
    :class:`AdversarialTraining`) of the baseline model with denoising blocks. Returns
    ``(model, record)``; the record has clean and PGD test metrics like the AT records."""
    config = AdversarialTraining("pgd_at", eps=eps, **kwargs).resolve(dataset, profile)
    if config["model"] != "smallcnn" or config["dataset"] == "ph2":
        raise ConfigError(f"Feature denoising is implemented for the smallcnn classifier of 2D "
                          f"datasets; {dataset!r} under this profile uses {config['model']!r}. Use a "
                          "2D MedMNIST dataset with the smoke or cpu profile.")
    config.update(name=f"featdenoise-{config['name']}", feature_denoising="nonlocal-after-pool")
    train, val = training_splits(config)
    return cached_run(config, lambda: add_feature_denoising(build_for(config, train.info)),
                      lambda model, last: run_training(config, model, last, train, val,
                                                       progress=progress),
                      report=lambda model: test_report(config, model))

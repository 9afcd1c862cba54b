"""Models we teach with. Every model takes images in [0, 1] and normalises inside, so ε is in pixels.

- :class:`SmallCNN`: the CPU workhorse for 2D MedMNIST (28 or 64 px, 1 or 3 channels).
- :class:`ResNet18`: the MedMNIST-style ResNet-18 (He et al. 2016; 3×3 stem, no max-pool at 28 px,
  Yang et al. 2023), configurable width.
- :class:`CNN3D` and :class:`ResNet3D`: small 3D networks for MedMNIST volumes (28 or 64 px).
- :class:`UNet`: a U-Net (Ronneberger et al. 2015) for 128 px lesion segmentation; two logit maps
  (background, lesion) so per-pixel cross-entropy and Dice both apply.
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import ConfigError


class Normalize(nn.Module):
    """(x - mean) / std with per-channel constants, the first layer of every model."""

    def __init__(self, mean: float = 0.5, std: float = 0.25, channels: int = 1, dims: int = 2):
        super().__init__()
        shape = (1, channels) + (1,) * dims
        self.register_buffer("mean", torch.full(shape, float(mean)))
        self.register_buffer("std", torch.full(shape, float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _conv_bn(cin: int, cout: int, dims: int = 2, stride: int = 1) -> nn.Sequential:
    conv, bn = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
    return nn.Sequential(conv(cin, cout, 3, stride, 1, bias=False), bn(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Four 3×3 conv blocks (two poolings), global average pooling and a linear head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 32):
        super().__init__()
        w = width
        self.normalize = Normalize(channels=in_channels)
        self.features = nn.Sequential(
            _conv_bn(in_channels, w), _conv_bn(w, w), nn.MaxPool2d(2),
            _conv_bn(w, 2 * w), _conv_bn(2 * w, 2 * w), nn.MaxPool2d(2),
            _conv_bn(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalize(x)))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dims: int):
        super().__init__()
        conv, bn = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
        self.body = nn.Sequential(
            conv(cin, cout, 3, stride, 1, bias=False), bn(cout), nn.ReLU(inplace=True),
            conv(cout, cout, 3, 1, 1, bias=False), bn(cout),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(conv(cin, cout, 1, stride, bias=False), bn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 as in MedMNIST v2: 3×3 stride-1 stem; at 64 px and above a stride-2 stem."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 64,
                 image_size: int = 28, dims: int = 2):
        super().__init__()
        conv, bn = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
        pool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool3d(1)
        stem_stride = 1 if image_size <= 32 else 2
        self.normalize = Normalize(channels=in_channels, dims=dims)
        layers: list[nn.Module] = [
            conv(in_channels, width, 3, stem_stride, 1, bias=False), bn(width), nn.ReLU(inplace=True)
        ]
        cin = width
        for i, cout in enumerate([width, 2 * width, 4 * width, 8 * width]):
            stride = 1 if i == 0 else 2
            layers += [_BasicBlock(cin, cout, stride, dims), _BasicBlock(cout, cout, 1, dims)]
            cin = cout
        self.features = nn.Sequential(*layers, pool, nn.Flatten())
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalize(x)))


class ResNet3D(ResNet18):
    """The ResNet-18 with 3D convolutions (MedMNIST's "ResNet-18 + 3D")."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 32,
                 image_size: int = 28):
        super().__init__(in_channels, num_classes, width, image_size, dims=3)


class CNN3D(nn.Module):
    """A small 3D CNN: three conv stages with pooling, global pooling, linear head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 16):
        super().__init__()
        w = width
        self.normalize = Normalize(channels=in_channels, dims=3)
        self.features = nn.Sequential(
            _conv_bn(in_channels, w, 3), nn.MaxPool3d(2),
            _conv_bn(w, 2 * w, 3), nn.MaxPool3d(2),
            _conv_bn(2 * w, 4 * w, 3), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalize(x)))


class UNet(nn.Module):
    """U-Net with four resolution levels; returns (N, num_classes, H, W) logits."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2, width: int = 16):
        super().__init__()
        w = [width, 2 * width, 4 * width, 8 * width]
        self.normalize = Normalize(channels=in_channels)
        self.down = nn.ModuleList()
        cin = in_channels
        for c in w:
            self.down.append(nn.Sequential(_conv_bn(cin, c), _conv_bn(c, c)))
            cin = c
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for c_low, c_high in zip(w[:0:-1], w[-2::-1]):
            self.up.append(nn.ConvTranspose2d(c_low, c_high, 2, stride=2))
            self.fuse.append(nn.Sequential(_conv_bn(2 * c_high, c_high), _conv_bn(c_high, c_high)))
        self.head = nn.Conv2d(w[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.normalize(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h if i == 0 else nn.functional.max_pool2d(h, 2))
            skips.append(h)
        for up, fuse, skip in zip(self.up, self.fuse, skips[-2::-1]):
            h = fuse(torch.cat([up(h), skip], dim=1))
        return self.head(h)


MODELS = {"smallcnn": SmallCNN, "resnet18": ResNet18, "cnn3d": CNN3D, "resnet3d": ResNet3D,
          "unet": UNet}


def build_model(name: str, in_channels: int, num_classes: int, width: int | None = None,
                image_size: int = 28) -> nn.Module:
    """Instantiate a registered model by name (see ``MODELS``)."""
    if name not in MODELS:
        raise ConfigError(f"Unknown model {name!r}. Valid models: {', '.join(MODELS)}.")
    kwargs = {"in_channels": in_channels, "num_classes": num_classes}
    if width is not None:
        kwargs["width"] = width
    if name in ("resnet18", "resnet3d"):
        kwargs["image_size"] = image_size
    return MODELS[name](**kwargs)

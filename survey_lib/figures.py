"""Figures that show images: example grids per class, class balance, volume slices, masks."""

from __future__ import annotations

import torch

from .data import Split


def _show(ax, img: torch.Tensor, title: str = "") -> None:
    """Draw one (C, H, W) image in [0, 1] (the middle slice of a (C, D, H, W) volume)."""
    if img.ndim == 4:
        img = img[:, img.shape[1] // 2]
    img = img.detach().cpu().float()
    if img.shape[0] == 1:
        ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1))
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def image_grid(split: Split, per_class: int = 6, seed: int = 0):
    """``per_class`` random examples of each class, one row per class, titled by class name.
    Segmentation splits show images with the lesion mask's outline."""
    import matplotlib.pyplot as plt

    gen = torch.Generator().manual_seed(seed)
    if split.info.task == "segmentation":
        idx = torch.randperm(len(split), generator=gen)[:per_class]
        fig, axes = plt.subplots(1, per_class, figsize=(1.6 * per_class, 1.9), squeeze=False)
        for ax, i in zip(axes[0], idx.tolist()):
            _show(ax, split.x[i], f"#{i}")
            ax.contour(split.y[i].numpy(), levels=[0.5], colors="yellow", linewidths=0.8)
        fig.suptitle(f"{split.info.flag}: images with the expert lesion outline", fontsize=10)
        return fig
    labels = split.y if split.y.ndim == 1 else split.y.argmax(1)
    names = split.info.class_names
    fig, axes = plt.subplots(len(names), per_class, figsize=(1.4 * per_class, 1.5 * len(names)),
                             squeeze=False)
    for c, row in enumerate(axes):
        members = torch.nonzero(labels == c).view(-1)
        pick = members[torch.randperm(len(members), generator=gen)[:per_class]].tolist()
        for j, ax in enumerate(row):
            if j < len(pick):
                _show(ax, split.x[pick[j]], names[c][:22] if j == 0 else "")
            else:
                ax.axis("off")
    kind = "middle axial slice of each volume" if split.info.is_3d else "random examples per class"
    fig.suptitle(f"{split.info.flag} ({split.info.size} px): {kind}", fontsize=10)
    fig.tight_layout()
    return fig


def class_balance(splits: dict[str, Split]):
    """Bar chart of the class shares in each split (the majority rate is the accuracy floor)."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    rows = []
    for name, split in splits.items():
        counts = torch.bincount(split.y, minlength=split.info.num_classes)
        for c, n in enumerate(counts.tolist()):
            rows.append({"split": name, "class": split.info.class_names[c][:22],
                         "share": n / len(split)})
    info = next(iter(splits.values())).info
    fig, ax = plt.subplots(figsize=(6, 2.8))
    sns.barplot(pd.DataFrame(rows), x="class", y="share", hue="split", ax=ax)
    ax.set(title=f"{info.flag}: class balance per split", ylabel="share of examples", xlabel="")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return fig

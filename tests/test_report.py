"""Figures of the report module: the adversarial-example gallery keeps each image's title clear of
the row above (the titles of the second row used to overlap the first row's images)."""

import matplotlib
import torch

from survey_lib.report import plot_gallery

matplotlib.use("Agg")


def test_gallery_titles_do_not_overlap_the_row_above():
    examples = [{"dataset": "breastmnist", "defense": d, "eps": 8, "x": torch.rand(4, 1, 28, 28),
                 "x_adv": torch.rand(4, 1, 28, 28), "y": torch.tensor([0, 1, 0, 1]),
                 "pred": torch.tensor([0, 0, 1, 1]), "pred_adv": torch.tensor([1, 1, 0, 0]),
                 "classes": ["malignant", "normal, benign"]} for d in ("nat", "pgd_at", "trades")]
    fig = plot_gallery(examples)
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    rows = [fig.axes[i * 8:(i + 1) * 8] for i in range(3)]
    for above, below in zip(rows, rows[1:]):
        bottom_above = min(ax.get_window_extent(renderer).y0 for ax in above)
        top_titles = max(ax.title.get_window_extent(renderer).y1 for ax in below)
        assert top_titles < bottom_above, (top_titles, bottom_above)
    assert [ax.title.get_color() for ax in rows[0][:4]] == ["black", "red", "red", "black"]

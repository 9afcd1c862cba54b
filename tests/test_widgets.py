"""The attack explorer: widget controls re-run the attack; static figure without a front end."""

import json

import pytest
import torch

from survey_lib.errors import DataError
from survey_lib.models import build_model
from survey_lib.train import load_dataset
from survey_lib.widgets import Explorer, cached_models, load_cached, widget_frontend


@pytest.fixture(scope="module")
def breast(real_root):
    return load_dataset("breastmnist", root=real_root)["test"].subset(6, 0)


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    return build_model("smallcnn", 1, 2, 8, 28).eval()


def title(fig) -> str:
    return fig.get_suptitle()


def test_widget_controls_rerun_the_attack(breast, toy):
    ex = Explorer(["breastmnist"], models={"toy": toy, "other": toy}, split=breast, interactive=True,
                  index=0)
    assert set(ex.controls) == {"dataset", "model", "attack", "index", "eps", "steps"}
    assert "pgd, ε = 4/255, 10 steps · model: toy" in ex.title
    first = ex.figure
    ex.controls["eps"].value = 8
    ex.controls["index"].value = 3
    assert ex.figure is not first
    assert "test image 3 · pgd, ε = 8/255" in ex.title
    ex.controls["model"].value = "other"
    assert ex.title.endswith("model: other")
    assert ex.caption.value == f"<b>{ex.title}</b>"  # the title as text above the figure
    assert title(ex.figure) == ""  # ... and not twice
    ex.controls["attack"].value = "fgsm"
    assert "fgsm, ε = 8/255" in ex.title and "steps" not in ex.title
    # original, adversarial, amplified difference and the probability bars of both classes
    assert len(ex.figure.axes) == 4
    assert len(ex.figure.axes[3].patches) == 2 * 2


def test_static_figure_without_front_end(breast, toy, monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert not widget_frontend()
    ex = Explorer(["breastmnist"], models={"toy": toy}, split=breast)
    assert ex.widget is None and ex.controls == {}
    assert "pgd, ε = 4/255" in title(ex.figure) and title(ex.figure) == ex.title


def test_segmentation_shows_masks(real_root):
    seg = load_dataset("ph2", root=real_root)["test"].subset(2, 0)
    unet = build_model("unet", 3, 2, 8, 128).eval()
    ex = Explorer(["ph2"], models={"u": unet}, split=seg, interactive=False, steps=2)
    assert "seg_pgd_dice" in title(ex.figure)
    assert [a.get_title() for a in ex.figure.axes[3:]] == [
        "true mask", "prediction, clean", "prediction, attacked"]


def test_cached_models_are_found_and_loaded(tmp_path, breast, toy):
    folder = tmp_path / "breastmnist" / "pgd_at-smallcnn-abc"
    folder.mkdir(parents=True)
    config = {"name": "pgd_at-smallcnn", "model": "smallcnn", "width": 8, "size": 28, "seed": 0,
              "defense": "pgd_at", "eps": 2, "balanced": True, "eps_schedule": None}
    (folder / "record.json").write_text(json.dumps({"config": config}))
    torch.save(toy.state_dict(), folder / "model.pt")
    dae = tmp_path / "breastmnist" / "dae-x"  # a purifier's autoencoder, not a classifier: ignored
    dae.mkdir()
    (dae / "record.json").write_text(json.dumps({"config": {"name": "dae", "noise": 0.1}}))
    torch.save({}, dae / "model.pt")
    found = cached_models("breastmnist", tmp_path)
    assert list(found) == ["pgd_at ε=2/255"]
    model = load_cached(found["pgd_at ε=2/255"], breast.info)
    # allclose: earlier tests ran toy through predict, which makes it channels_last (other kernels)
    assert torch.allclose(model(breast.x), toy(breast.x), atol=1e-5)


def test_no_model_is_a_clear_error(tmp_path, monkeypatch, data_env):
    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path))
    with pytest.raises(DataError, match="No trained model for breastmnist.*smoke profile"):
        Explorer(["breastmnist"], interactive=False, profile="smoke")  # nothing shipped for smoke


def test_default_image_is_one_the_model_gets_right(breast):
    torch.manual_seed(1)
    model = build_model("smallcnn", 1, 2, 8, 28).eval()
    with torch.no_grad():
        right = model(breast.x).argmax(1) == breast.y
    assert 0 < int(right.sum()) < len(breast)  # so a wrong pick is possible
    ex = Explorer(["breastmnist"], models={"m": model}, split=breast, interactive=False)
    assert right[ex.pick.indices[0]]
    assert f"test image {ex.pick.indices[0]} ·" in title(ex.figure)

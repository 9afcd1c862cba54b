"""Data and caches that know what they hold: PH2 file checks and fingerprint, the data file's
fingerprint in every cached model's key, corrupt cache files reported (and replaced by --force),
numbers normalised in keys, and the test split locked while a model trains."""

import json
import shutil

import numpy as np
import pytest
import torch

from survey_lib import data
from survey_lib.__main__ import main
from survey_lib.config import get_profile
from survey_lib.errors import DataError, TestSplitError
from survey_lib.train import baseline_config, config_hash, load_dataset, runs_root, train_baseline

PROFILE = get_profile("smoke").replace(epochs=1, train_subset=64, eval_subset=16, seg_width=4)


def _ph2_arrays(n=4, size=16, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split in data.SPLITS:
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        arrays[f"{split}_masks"] = (rng.random((n, size, size)) > 0.5).astype(np.uint8)
    return arrays


def _write(folder, arrays, fingerprint=True):
    path = folder / "seg" / data.PH2_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"fingerprint": np.array(data.ph2_fingerprint(arrays))} if fingerprint else {}
    np.savez_compressed(path, **arrays, **extra)
    return path


def test_ph2_good_file_loads_with_and_without_fingerprint(tmp_path):
    arrays = _ph2_arrays()
    for fp in (True, False):
        root = tmp_path / str(fp)
        _write(root, arrays, fp)
        split = data.load_ph2("val", root)
        assert split.x.shape == (4, 3, 16, 16) and torch.equal(
            split.y, torch.from_numpy(arrays["val_masks"]).long())
        first = torch.from_numpy(arrays["val_images"][0, 0, 0]).float()
        assert torch.allclose(split.x[0, :, 0, 0] * 255, first)


@pytest.mark.parametrize("damage,match", [
    ("truncated", "cannot be read"), ("empty", "cannot be read"), ("not a zip", "cannot be read"),
    ("grayscale", "not uint8 \\(N, H, W, 3\\) RGB"), ("float images in [0, 1]", "not uint8"),
    ("masks 0/255", "holds values up to 255"), ("missing key", "lacks the keys"),
    ("fingerprint mismatch", "do not match the content fingerprint"),
])
def test_damaged_ph2_files_are_clear_errors(tmp_path, damage, match):
    arrays = _ph2_arrays()
    path = _write(tmp_path, arrays)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not a zip":
        path.write_text("hello")
    elif damage == "grayscale":
        _write(tmp_path, {**arrays, "train_images": arrays["train_images"][..., 0]}, False)
    elif damage == "float images in [0, 1]":
        _write(tmp_path, {**arrays, "train_images": arrays["train_images"] / 255.0}, False)
    elif damage == "masks 0/255":
        _write(tmp_path, {**arrays, "test_masks": arrays["test_masks"] * 255}, False)
    elif damage == "missing key":
        np.savez_compressed(path, **{k: v for k, v in arrays.items() if k != "val_masks"})
    else:
        changed = {**arrays, "train_images": arrays["train_images"].copy()}
        changed["train_images"][0, 0, 0, 0] ^= 1
        np.savez_compressed(path, **changed, fingerprint=np.array(data.ph2_fingerprint(arrays)))
    with pytest.raises(DataError, match=match):
        data.load_ph2("train", tmp_path)


def test_prepare_ph2_records_a_fingerprint(tmp_path):
    from PIL import Image

    src = tmp_path / "PH2"
    for i in range(10):
        case = f"IMD{i:03d}"
        (src / case / f"{case}_Dermoscopic_Image").mkdir(parents=True)
        (src / case / f"{case}_lesion").mkdir(parents=True)
        Image.fromarray(np.full((40, 40, 3), 10 * i, np.uint8)).save(
            src / case / f"{case}_Dermoscopic_Image" / f"{case}.bmp")
        Image.fromarray(np.eye(40, dtype=np.uint8) * 255).save(
            src / case / f"{case}_lesion" / f"{case}_lesion.bmp")
    out = data.prepare_ph2(src, tmp_path / "seg" / data.PH2_FILE, size=16)
    with np.load(out) as npz:
        assert str(npz["fingerprint"]) == data.ph2_fingerprint({k: npz[k] for k in data.PH2_KEYS})
    assert len(data.load_ph2("train", tmp_path)) == 7


def test_a_model_is_never_reused_on_other_data(tmp_path, real_root, monkeypatch):
    """Two data folders whose PH2 files differ in one pixel give two cache entries."""
    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path / "runs"))
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        (folder / "seg").mkdir(parents=True)
    shutil.copy(real_root / "seg" / data.PH2_FILE, a / "seg" / data.PH2_FILE)
    with np.load(real_root / "seg" / data.PH2_FILE) as npz:
        arrays = {k: npz[k] for k in data.PH2_KEYS}
    arrays["train_images"] = arrays["train_images"].copy()
    arrays["train_images"][0, 0, 0, 0] ^= 1  # one pixel
    _write(b, arrays)
    profile = PROFILE.replace(train_subset=8, eval_subset=4)
    _, rec_a = train_baseline("ph2", profile, root=a, progress=False)
    _, rec_b = train_baseline("ph2", profile, root=b, progress=False)
    assert rec_a["config"]["data"] != rec_b["config"]["data"]
    assert len(list((tmp_path / "runs" / "ph2").iterdir())) == 2
    _, again = train_baseline("ph2", profile, root=a, progress=False)  # reused, not retrained
    assert again == rec_a


def test_numbers_are_normalised_in_keys():
    config = baseline_config("breastmnist", "smoke")
    assert config_hash({**config, "eps": 2}) == config_hash({**config, "eps": 2.0})
    assert config_hash({**config, "eps": 2}) != config_hash({**config, "eps": 2.5})


@pytest.fixture
def trained(tmp_path, monkeypatch, data_env):
    """The smoke-profile BreastMNIST baseline in a fresh runs folder (the one the CLI uses)."""
    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path / "runs"))
    model, record = train_baseline("breastmnist", "smoke", progress=False)
    folder = next((runs_root() / "breastmnist").iterdir())
    return model, record, folder


CLI = ["evaluate", "--dataset", "breastmnist", "--profile", "smoke"]


@pytest.mark.parametrize("victim", ["model.pt", "record.json"])
def test_corrupt_cache_files_are_clear_errors(trained, victim, capsys):
    model, record, folder = trained
    path = folder / victim
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match=f"{victim}.*corrupt or truncated.*--force"):
        train_baseline("breastmnist", "smoke", progress=False)
    assert main(CLI) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err
    again, rec = train_baseline("breastmnist", "smoke", force=True, progress=False)
    assert json.loads((folder / "record.json").read_text())["best_epoch"] == rec["best_epoch"]
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_corrupt_partial_checkpoint(trained, capsys):
    model, record, folder = trained
    (folder / "model.pt").unlink()
    (folder / "record.json").unlink()
    (folder / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="last.pt is corrupt or truncated"):
        train_baseline("breastmnist", "smoke", progress=False)
    assert main(CLI) == 2 and "last.pt" in capsys.readouterr().err
    again, rec = train_baseline("breastmnist", "smoke", force=True, progress=False)  # replaces it
    assert rec["best_epoch"] == record["best_epoch"] and not (folder / "last.pt").exists()
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_test_split_is_locked_during_training(data_env, tmp_path, monkeypatch):
    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path / "runs"))
    seen = []

    def peeking_select(model, val):
        seen.append(len(val))
        load_dataset("breastmnist", splits=("test",))  # a recipe that looks at test
        return 0.0

    from survey_lib.train import train_recipe

    with pytest.raises(TestSplitError, match="reporting only"):
        train_recipe(baseline_config("breastmnist", PROFILE), select_fn=peeking_select, progress=False)
    assert seen  # it got as far as checkpoint selection
    with data.lock_test_split("a check"):
        load_dataset("breastmnist", splits=("train", "val"))  # train and val stay loadable
        with pytest.raises(TestSplitError):
            data.load_ph2("test")
    assert len(load_dataset("breastmnist", splits=("test",))["test"]) == 156  # unlocked after
    _, record = train_baseline("breastmnist", PROFILE, progress=False)
    assert record["test"]["n"] == 16  # reported after training, on the test subset


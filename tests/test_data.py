import shutil

import numpy as np
import pytest
import torch

from survey_lib import data
from survey_lib.errors import ConfigError, DataError

REAL = [("breastmnist", 28, 1, 2), ("breastmnist", 64, 1, 2), ("pneumoniamnist", 28, 1, 2),
        ("retinamnist", 28, 3, 5), ("adrenalmnist3d", 28, 1, 2), ("vesselmnist3d", 28, 1, 2)]


@pytest.mark.parametrize("flag,size,channels,classes", REAL)
def test_real_medmnist_splits(data_env, flag, size, channels, classes):
    splits = data.load_splits(flag, size)
    counts = {"breastmnist": (546, 78, 156), "pneumoniamnist": (4708, 524, 624),
              "retinamnist": (1080, 120, 400), "adrenalmnist3d": (1188, 98, 298),
              "vesselmnist3d": (1335, 191, 382)}[flag]
    assert tuple(len(splits[s]) for s in data.SPLITS) == counts
    x, y, info = splits["test"].x, splits["test"].y, splits["test"].info
    spatial = (size,) * (3 if info.is_3d else 2)
    assert x.shape[1:] == (channels, *spatial) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
    assert y.dtype == torch.long and y.ndim == 1 and int(y.max()) == classes - 1
    assert info.num_classes == classes and info.n_channels == channels


def test_task_metadata():
    assert data.task_info("breastmnist").kind == "binary"
    assert data.task_info("retinamnist").kind == "ordinal"
    chest = data.task_info("chestmnist")
    assert chest.multi_label and chest.num_classes == 14 and chest.class_names[0] == "atelectasis"
    assert data.task_info("organmnist3d", 64).is_3d


def test_multilabel_labels_are_float():
    info = data.task_info("chestmnist")
    x, y = data._to_tensor(np.zeros((2, 28, 28), np.uint8), np.ones((2, 14), np.uint8), info)
    assert x.shape == (2, 1, 28, 28) and y.dtype == torch.float32 and y.shape == (2, 14)


def test_root_precedence(tmp_path, monkeypatch, real_root):
    monkeypatch.setenv(data.DATA_ENV, str(real_root))
    assert data.data_root() == real_root.resolve()
    assert data.data_root(tmp_path) == tmp_path.resolve()  # explicit beats the env var
    monkeypatch.delenv(data.DATA_ENV)
    monkeypatch.chdir(tmp_path)  # never the working directory: the checkout's data/
    from survey_lib.paths import ROOT

    assert data.data_root() == ROOT / "data" and not (tmp_path / "data").exists()


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.data_root(tmp_path / "nope")


@pytest.mark.parametrize("flag,size,match", [("mnist", 28, "Unknown dataset.*breastmnist"),
                                             ("breastmnist", 32, "Valid sizes: 28, 64, 128, 224"),
                                             ("adrenalmnist3d", 128, "Valid sizes: 28, 64")])
def test_bad_names_and_sizes(flag, size, match):
    with pytest.raises(ConfigError, match=match):
        data.task_info(flag, size)


def test_missing_file_offline(tmp_path, monkeypatch):
    import medmnist.dataset

    def offline(self):
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(medmnist.dataset.MedMNIST, "download", offline)
    with pytest.raises(DataError) as err:
        data.load_medmnist("dermamnist", root=tmp_path)
    msg = str(err.value)
    assert "dermamnist.npz" in msg and data._info()["dermamnist"]["MD5"] in msg and "zenodo" in msg
    assert not (tmp_path / "medmnist" / "dermamnist.npz").exists()


def test_no_download_flag(tmp_path):
    with pytest.raises(DataError, match="downloads are off"):
        data.medmnist_file("breastmnist", root=tmp_path, download=False)


def test_corrupt_file_is_reported_and_left_alone(tmp_path, real_root):
    (tmp_path / "medmnist").mkdir()
    bad = tmp_path / "medmnist" / "breastmnist.npz"
    shutil.copy(real_root / "medmnist" / "breastmnist.npz", bad)
    with open(bad, "r+b") as fh:
        fh.truncate(1000)
    before = bad.read_bytes()
    with pytest.raises(DataError, match="corrupt or truncated.*750601b1f35ba3300ea97c75c52ff8f6"):
        data.load_medmnist("breastmnist", root=tmp_path)
    assert bad.read_bytes() == before


def test_ph2_real(data_env):
    splits = {s: data.load_ph2(s) for s in data.SPLITS}
    assert [len(splits[s]) for s in data.SPLITS] == [140, 20, 40]
    x, y = splits["test"].x, splits["test"].y
    assert x.shape == (40, 3, 128, 128) and 0 <= x.min() and x.max() <= 1
    assert y.shape == (40, 128, 128) and set(y.unique().tolist()) == {0, 1}
    assert 0.2 < y.float().mean() < 0.45  # README: lesion covers about 32% of the pixels


def test_ph2_missing(tmp_path):
    with pytest.raises(DataError, match="ph2_128.npz.*prepare_ph2"):
        data.load_ph2("train", root=tmp_path)


def test_prepare_ph2_from_official_layout(tmp_path):
    from PIL import Image

    src = tmp_path / "PH2 Dataset images"
    rng = np.random.default_rng(0)
    names = [f"IMD{i:03d}" for i in range(1, 21)]
    for name in names:
        (src / name / f"{name}_Dermoscopic_Image").mkdir(parents=True)
        (src / name / f"{name}_lesion").mkdir()
        img = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
        Image.fromarray(img).save(src / name / f"{name}_Dermoscopic_Image" / f"{name}.bmp")
        mask = np.zeros((60, 80), np.uint8)
        mask[15:45, 20:60] = 255
        Image.fromarray(mask).convert("1").save(src / name / f"{name}_lesion" / f"{name}_lesion.bmp")
    csv = tmp_path / "PH2_dataset.csv"
    csv.write_text("Name,Clinical Diagnosis\n" + "\n".join(
        f"{n},{i % 2}" for i, n in enumerate(names)))
    out = data.prepare_ph2(src, tmp_path / "seg" / "ph2_32.npz", size=32, diagnosis_csv=csv)
    splits = {s: data.load_ph2(s, path=out) for s in data.SPLITS}
    assert [len(splits[s]) for s in data.SPLITS] == [14, 2, 4]
    assert splits["train"].x.shape == (14, 3, 32, 32)
    mask = splits["train"].y[0]
    assert mask[16, 16] == 1 and mask[0, 0] == 0  # the box survives the resize
    again = data.prepare_ph2(src, tmp_path / "again.npz", size=32, diagnosis_csv=csv)
    assert (np.load(again)["test_masks"] == np.load(out)["test_masks"]).all()  # reproducible


def test_local_datasets_lists_shared_files(data_env):
    rows = data.local_datasets()
    local = {(r["dataset"], r["size"]) for r in rows if r["local"]}
    assert ("breastmnist", 64) in local and ("ph2", 128) in local
    assert ("dermamnist", 28) not in local and any(r["dataset"] == "dermamnist" for r in rows)


def test_class_separation_by_value():
    info = data.TaskInfo("t", "binary-class", ("a", "b"), 1, False, 2)
    x = torch.tensor([[0, 0, 0, 0], [10, 0, 0, 0], [40, 40, 40, 40], [0, 0, 0, 30]]).float()
    x = x.view(4, 1, 2, 2) / 255
    s = data.class_separation(data.Split(x, torch.tensor([0, 0, 1, 1]), info))
    # nearest other-class image: 0→3: 30, 1→3: 30, 2→1: 40, 3→0: 30
    assert s["closest_pair"] == 30 and s["median_nearest"] == 30 and s["n"] == 4


def test_stratified_indices_keep_class_proportions_and_seed():
    y = torch.tensor([0] * 70 + [1] * 20 + [2] * 10)
    idx = data.stratified_indices(y, 30, seed=3)
    assert len(idx) == 30 and len(set(idx.tolist())) == 30
    assert torch.bincount(y[idx]).tolist() == [21, 6, 3]
    assert idx.equal(data.stratified_indices(y, 30, seed=3))
    assert not idx.equal(data.stratified_indices(y, 30, seed=4))
    assert torch.bincount(y[data.stratified_indices(y, 7)]).tolist() == [5, 1, 1]
    assert data.stratified_indices(y, 500).equal(torch.arange(100))

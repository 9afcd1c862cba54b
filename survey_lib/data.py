"""Real data: MedMNIST (Yang et al., Scientific Data 2023) through the official ``medmnist`` classes,
and the PH2 dermoscopy lesion set (Mendonça et al., EMBC 2013) for segmentation.

Data root, in this order: the ``root`` argument, the ``SURVEY_DATA_DIR`` environment variable, then
the checkout's ``data/`` folder (``survey_lib.paths``; never the current directory). Inside it
MedMNIST files live in ``medmnist/`` (official names, e.g. ``breastmnist.npz``,
``breastmnist_64.npz``) and PH2 in ``seg/ph2_128.npz``. A missing MedMNIST
file is downloaded (official Zenodo URL, MD5-checked, moved in place only when it verifies); a file
that fails its MD5 is reported and never used nor overwritten.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import validation
from .errors import ConfigError, DataError, TestSplitError

DATA_ENV = "SURVEY_DATA_DIR"
SPLITS = ("train", "val", "test")
SIZES_2D = (28, 64, 128, 224)
SIZES_3D = (28, 64)
PH2_FILE = "ph2_128.npz"


def _info() -> dict:
    from medmnist.info import INFO  # imported lazily: medmnist imports torchvision

    return INFO


@dataclass(frozen=True)
class TaskInfo:
    """What a model and a metric need to know about a dataset."""

    flag: str
    task: str  # "binary-class" | "multi-class" | "ordinal-regression" | "multi-label, binary-class"
    class_names: tuple[str, ...]
    n_channels: int
    is_3d: bool
    size: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def multi_label(self) -> bool:
        return self.task.startswith("multi-label")

    @property
    def kind(self) -> str:
        """Short task name: binary, multi-class, ordinal or multi-label."""
        return {"binary-class": "binary", "ordinal-regression": "ordinal",
                "multi-label, binary-class": "multi-label"}.get(self.task, self.task)


@dataclass
class Split:
    """One split of a dataset: images in [0, 1] and labels, plus the task metadata. Checked when
    made (:mod:`survey_lib.validation`): labels of any integer dtype, (N,) or (N, 1), or exactly
    one-hot rows, are stored in their canonical form; anything else raises a ConfigError."""

    x: torch.Tensor  # (N, C, H, W) or (N, C, D, H, W), float32 in [0, 1]
    y: torch.Tensor  # (N,) long, (N, L) float for multi-label, (N, H, W) long masks
    info: TaskInfo

    def __post_init__(self):
        validation.images(self.x, f"{self.info.flag} images")
        self.y = validation.labels(self.y, len(self.x), self.info.task, self.info.num_classes,
                                   f"{self.info.flag} labels")

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, n: int | None, seed: int = 0) -> Split:
        """A fixed random subset of ``n`` examples (all of them when ``n`` is None or larger)."""
        if n is None or n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return Split(self.x[idx], self.y[idx], self.info)

    def take(self, index: torch.Tensor) -> Split:
        """The examples at ``index``."""
        return Split(self.x[index], self.y[index], self.info)


def class_separation(split: Split) -> dict:
    """How far apart the classes of a single-label split are in L∞ (in /255): the closest pair of
    images with different labels, and the median distance from an image to its nearest image of
    another class. ε-balls of two classes can overlap only if the closest pair is ≤ 2ε apart."""
    if split.y.ndim != 1:
        raise ConfigError("class_separation needs one class per image (not masks or multi-label).")
    x = (split.x.flatten(1) * 255).round()
    nearest = torch.full((len(x),), float("inf"))
    for c in split.y.unique():
        inside, outside = split.y == c, split.y != c
        if outside.any():
            nearest[inside] = torch.cdist(x[inside], x[outside], p=float("inf")).min(1).values
    return {"closest_pair": float(nearest.min()), "median_nearest": float(nearest.median()),
            "n": len(x)}


def stratified_indices(labels: torch.Tensor, n: int | None, seed: int = 0) -> torch.Tensor:
    """Sorted indices of a seeded random subset of ``n`` examples in which every class keeps its
    share of ``labels`` (largest-remainder rounding); every index when ``n`` is None or too large.
    Labels that are not one class per example (masks, multi-label) give a plain random subset."""
    total = len(labels)
    if n is None or n >= total:
        return torch.arange(total)
    gen = torch.Generator().manual_seed(seed)
    if labels.ndim != 1:
        return torch.randperm(total, generator=gen)[:n].sort().values
    classes, counts = labels.unique(return_counts=True)
    quota = counts.double() * n / total
    take = quota.floor().long()
    for i in (quota - take).argsort(descending=True)[: n - int(take.sum())]:
        take[i] += 1
    picked = [torch.nonzero(labels == c).view(-1)[torch.randperm(int(k), generator=gen)[:int(t)]]
              for c, k, t in zip(classes, counts, take)]
    return torch.cat(picked).sort().values


def medmnist_flags(dim: int | None = None) -> list[str]:
    """All MedMNIST flags (``dim=2`` or ``dim=3`` to filter)."""
    flags = list(_info())
    if dim is None:
        return flags
    return [f for f in flags if f.endswith("3d") == (dim == 3)]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data root: argument > ``$SURVEY_DATA_DIR`` > the checkout's ``data/`` (created if
    needed)."""
    if root is None and os.environ.get(DATA_ENV):
        root, source = os.environ[DATA_ENV], f"${DATA_ENV}"
    else:
        source = "the root argument"
    if root is None:
        from .paths import ROOT

        path = ROOT / "data"
        path.mkdir(parents=True, exist_ok=True)
        return path
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(
            f"The data root {str(path)!r} (from {source}) does not exist or is not a folder. "
            f"Create it, or point {DATA_ENV} at the folder that holds medmnist/ and seg/ "
            "(in this project's checkout: ../shared/data)."
        )
    return path.resolve()


def task_info(flag: str, size: int = 28) -> TaskInfo:
    """Metadata of a MedMNIST flag; validates the flag and the size."""
    info = _info()
    flag = flag.lower()
    if flag not in info:
        raise ConfigError(
            f"Unknown dataset {flag!r}. Valid MedMNIST datasets: {', '.join(info)}; and 'ph2' "
            "for segmentation."
        )
    is_3d = flag.endswith("3d")
    sizes = SIZES_3D if is_3d else SIZES_2D
    if size not in sizes:
        raise ConfigError(
            f"Size {size} is not available for {flag} ({'3D' if is_3d else '2D'}). "
            f"Valid sizes: {', '.join(map(str, sizes))}."
        )
    meta = info[flag]
    names = tuple(meta["label"][str(i)] for i in range(len(meta["label"])))
    return TaskInfo(flag, meta["task"], names, meta["n_channels"], is_3d, size)


_MD5: dict[tuple, str] = {}


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """MD5 of a file, computed once per file version (path, size, mtime)."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _MD5:
        digest = hashlib.md5()
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
        _MD5[key] = digest.hexdigest()
    return _MD5[key]


def verify_md5(path: Path, expected: str) -> None:
    """Raise :class:`DataError` unless ``path`` has MD5 ``expected``."""
    actual = md5sum(path)
    if actual != expected:
        raise DataError(
            f"{path} is corrupt or truncated: its MD5 is {actual}, expected {expected}. It was not "
            "used and has not been touched. Delete it (or move it away) and run again to download "
            "a fresh copy, or download it by hand (see the MedMNIST homepage, medmnist.com)."
        )


def medmnist_file(flag: str, size: int = 28, root=None, download: bool = True) -> Path:
    """Path of a verified MedMNIST ``.npz``; downloads it when missing and ``download`` is set."""
    info = task_info(flag, size)
    suffix = "" if size == 28 else f"_{size}"
    meta = _info()[info.flag]
    folder = data_root(root) / "medmnist"
    path = folder / f"{info.flag}{suffix}.npz"
    expected = meta[f"MD5{suffix}"]
    if not path.exists():
        if not download:
            raise DataError(_missing_message(path, meta[f"url{suffix}"], expected, "downloads are off"))
        _download(info.flag, size, path, meta[f"url{suffix}"], expected)
    verify_md5(path, expected)
    return path


def _missing_message(path: Path, url: str, md5: str, why: str) -> str:
    return (
        f"{path.name} is not in {path.parent} and could not be downloaded ({why}). To get it by "
        f"hand: download {url} on a connected machine, check that its MD5 is {md5}, and put it at "
        f"{path} (or set {DATA_ENV} to a folder whose medmnist/ holds it)."
    )


def _download(flag: str, size: int, path: Path, url: str, md5: str) -> None:
    """Official download into a temporary folder; moved into place only when the MD5 matches."""
    import medmnist

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".download-") as tmp:
        try:
            cls = getattr(medmnist, _info()[flag]["python_class"])
            cls(split="test", root=tmp, size=size, download=True)
        except RuntimeError as exc:  # medmnist wraps every download failure in RuntimeError
            raise DataError(_missing_message(path, url, md5, type(exc).__name__)) from None
        got = Path(tmp) / path.name
        verify_md5(got, md5)
        shutil.move(str(got), path)


def _to_tensor(images: np.ndarray, labels: np.ndarray, info: TaskInfo) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    if info.is_3d:
        x = x.unsqueeze(1)  # (N, D, H, W) -> (N, 1, D, H, W)
    elif x.ndim == 3:
        x = x.unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
    else:
        x = x.permute(0, 3, 1, 2).contiguous()  # (N, H, W, 3) -> (N, 3, H, W)
    if info.multi_label:
        y = torch.from_numpy(labels.astype(np.float32))
    else:
        y = torch.from_numpy(labels.reshape(-1).astype(np.int64))
    return x, y


def load_medmnist(flag: str, split: str = "train", size: int = 28, root=None,
                  download: bool = True) -> Split:
    """One split of a MedMNIST dataset as tensors, loaded through the official ``medmnist`` class."""
    import medmnist

    if split not in SPLITS:
        raise ConfigError(f"Unknown split {split!r}. Valid splits: {', '.join(SPLITS)}.")
    guard_test_split(split, flag)
    path = medmnist_file(flag, size, root, download)
    info = task_info(flag, size)
    ds = getattr(medmnist, _info()[info.flag]["python_class"])(
        split=split, root=str(path.parent), size=size, download=False)
    x, y = _to_tensor(ds.imgs, ds.labels, info)
    return Split(x, y, info)


def load_splits(flag: str, size: int = 28, root=None, download: bool = True,
                splits=SPLITS) -> dict[str, Split]:
    """``{"train": Split, "val": Split, "test": Split}`` (or the ``splits`` named) of a MedMNIST set."""
    return {s: load_medmnist(flag, s, size, root, download) for s in splits}


def fingerprint(dataset: str, size: int = 28, root=None) -> str:
    """The MD5 of the file a dataset is read from (MedMNIST: verified against the official one;
    PH2: whatever file is there). Part of every cached model's key, so a model trained on one
    file is never resumed nor reused on another."""
    if dataset.lower() == "ph2":
        return "md5:" + md5sum(ph2_file(root))
    return "md5:" + md5sum(medmnist_file(dataset, size, root))


# ----------------------------------------------------------------------------- the test split
_TEST_LOCK: contextvars.ContextVar[str | None] = contextvars.ContextVar("test_lock", default=None)


@contextlib.contextmanager
def lock_test_split(why: str):
    """While active, loading any test split raises :class:`TestSplitError`: recipes, epochs and
    checkpoints are chosen on the validation split only; the test split is for reporting."""
    token = _TEST_LOCK.set(why)
    try:
        yield
    finally:
        _TEST_LOCK.reset(token)



def guard_test_split(split: str, dataset: str) -> None:
    """Raise :class:`TestSplitError` if ``split`` is "test" while :func:`lock_test_split` holds."""
    why = _TEST_LOCK.get()
    if split == "test" and why:
        raise TestSplitError(
            f"The test split of {dataset} was requested during {why}. The test split is for "
            "reporting only: training, recipe and checkpoint choices use the validation split. "
            "Evaluate on test after training has finished (e.g. in the report step of cached_run).")


# ----------------------------------------------------------------------------- PH2 segmentation
PH2_INFO = TaskInfo("ph2", "segmentation", ("background", "lesion"), 3, False, 128)


def ph2_file(root=None) -> Path:
    """Path of ``seg/ph2_128.npz`` under the data root, with a clear error when it is missing."""
    path = data_root(root) / "seg" / PH2_FILE
    if not path.exists():
        raise DataError(
            f"{PH2_FILE} is not in {path.parent}. PH2 cannot be downloaded automatically (its "
            "owners ask users to request it). Get the official PH2 folder from the Universidade do "
            "Porto site, then build the file with survey_lib.data.prepare_ph2(src, out) and put "
            f"it at {path}, or set {DATA_ENV} to a folder whose seg/ holds it."
        )
    return path


PH2_KEYS = tuple(f"{s}_{kind}" for s in SPLITS for kind in ("images", "masks"))


def ph2_fingerprint(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of the PH2 arrays (names, shapes, dtypes, bytes): recorded by :func:`prepare_ph2` in
    the file, checked by :func:`load_ph2` (a fixed MD5 would reject valid locally built files)."""
    digest = hashlib.sha256()
    for key in PH2_KEYS:
        a = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}{a.shape}{a.dtype}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _ph2_error(path: Path, problem: str) -> DataError:
    return DataError(
        f"{path} is not a usable PH2 file: {problem}. survey_lib expects the file written by "
        "survey_lib.data.prepare_ph2(src, out): uint8 RGB images (N, H, W, 3) in 0..255 and uint8 "
        "masks (N, H, W) in {0, 1} for the train, val and test splits. Rebuild it from the official "
        f"PH2 folder with prepare_ph2, or point {DATA_ENV} at a folder whose seg/ holds a good copy.")


_PH2_CHECKED: dict[tuple, dict[str, np.ndarray]] = {}


def read_ph2(path: Path) -> dict[str, np.ndarray]:
    """Every array of a PH2 file, checked once per file version (size, mtime): readable, the six
    keys, uint8 images (N, H, W, 3) and {0, 1} masks of matching sizes, and the content fingerprint
    when the file records one."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _PH2_CHECKED:
        return _PH2_CHECKED[key]
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = set(npz.files)
            missing = sorted(set(PH2_KEYS) - files)
            if missing:
                raise _ph2_error(path, f"it lacks the keys {missing}")
            arrays = {k: npz[k] for k in PH2_KEYS}
            recorded = str(npz["fingerprint"]) if "fingerprint" in files else None
    except DataError:
        raise
    except Exception as exc:  # truncated, empty or not a zip: numpy raises many kinds
        raise _ph2_error(path, f"it cannot be read ({type(exc).__name__}: {exc}); it is truncated, "
                               "empty or not an .npz file") from None
    for split in SPLITS:
        images, masks = arrays[f"{split}_images"], arrays[f"{split}_masks"]
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise _ph2_error(path, f"{split}_images has dtype {images.dtype} and shape "
                                   f"{images.shape}, not uint8 (N, H, W, 3) RGB")
        if masks.dtype not in (np.uint8, np.bool_) or masks.shape != images.shape[:3]:
            raise _ph2_error(path, f"{split}_masks has dtype {masks.dtype} and shape {masks.shape}, "
                                   f"not uint8 {images.shape[:3]}")
        if masks.size and masks.max() > 1:
            raise _ph2_error(path, f"{split}_masks holds values up to {masks.max()}, not {{0, 1}}")
    if recorded is not None and recorded != ph2_fingerprint(arrays):
        raise _ph2_error(path, "its arrays do not match the content fingerprint recorded when it was "
                               "prepared (it was modified or damaged since)")
    _PH2_CHECKED[key] = arrays
    return arrays


def load_ph2(split: str = "train", root=None, path: str | os.PathLike | None = None) -> Split:
    """A PH2 split: RGB images (N, 3, 128, 128) in [0, 1] and binary masks (N, 128, 128) long."""
    if split not in SPLITS:
        raise ConfigError(f"Unknown split {split!r}. Valid splits: {', '.join(SPLITS)}.")
    guard_test_split(split, "ph2")
    path = Path(path) if path is not None else ph2_file(root)
    arrays = read_ph2(path)
    images, masks = arrays[f"{split}_images"], arrays[f"{split}_masks"]
    x = torch.from_numpy(images).float().div_(255.0).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(masks.astype(np.int64))
    size = x.shape[-1]
    return Split(x, y, TaskInfo("ph2", "segmentation", PH2_INFO.class_names, 3, False, size))


def prepare_ph2(src: str | os.PathLike, out: str | os.PathLike, size: int = 128, seed: int = 0,
                diagnosis_csv: str | os.PathLike | None = None) -> Path:
    """Build a ``ph2_<size>.npz`` from the official PH2 folder layout.

    ``src`` holds ``IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp`` and
    ``IMDxxx/IMDxxx_lesion/IMDxxx_lesion.bmp``. Images are resized with the area filter, masks with
    nearest neighbour and thresholded at 127. The 70/10/20 split is stratified by the clinical
    diagnosis when a CSV with columns ``Name`` and ``Clinical Diagnosis`` is given. The file records
    a content fingerprint (:func:`ph2_fingerprint`) that :func:`load_ph2` checks.
    """
    import pandas as pd
    from PIL import Image

    src = Path(src)
    cases = sorted(p.name for p in src.glob("IMD*") if p.is_dir())
    if not cases:
        raise DataError(f"No IMDxxx case folders in {src}: is it the 'PH2 Dataset images' folder?")
    groups = {"all": cases}
    if diagnosis_csv is not None:
        table = pd.read_csv(diagnosis_csv)
        diag = dict(zip(table["Name"].str.strip(), table["Clinical Diagnosis"]))
        groups = {}
        for case in cases:
            groups.setdefault(diag.get(case, "unknown"), []).append(case)
    rng = np.random.default_rng(seed)
    splits: dict[str, list[str]] = {s: [] for s in SPLITS}
    for members in groups.values():
        members = [members[i] for i in rng.permutation(len(members))]
        n_train, n_val = round(0.7 * len(members)), round(0.1 * len(members))
        splits["train"] += members[:n_train]
        splits["val"] += members[n_train:n_train + n_val]
        splits["test"] += members[n_train + n_val:]
    arrays = {}
    for split, ids in splits.items():
        imgs, masks = [], []
        for case in sorted(ids):
            image = Image.open(src / case / f"{case}_Dermoscopic_Image" / f"{case}.bmp")
            mask = Image.open(src / case / f"{case}_lesion" / f"{case}_lesion.bmp")
            imgs.append(np.asarray(image.convert("RGB").resize((size, size), Image.BOX)))
            mask = np.asarray(mask.convert("L").resize((size, size), Image.NEAREST))
            masks.append((mask > 127).astype(np.uint8))
        arrays[f"{split}_images"] = np.stack(imgs) if imgs else np.zeros((0, size, size, 3), np.uint8)
        arrays[f"{split}_masks"] = np.stack(masks) if masks else np.zeros((0, size, size), np.uint8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays, fingerprint=np.array(ph2_fingerprint(arrays)))
    return out


@functools.lru_cache(maxsize=1)
def downloads_reachable(host: str = "zenodo.org", timeout: float = 3.0) -> bool:
    """Whether MedMNIST's download site answers (checked once per process; ``$SURVEY_OFFLINE``
    set means no)."""
    import socket

    if os.environ.get("SURVEY_OFFLINE"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def dataset_available(dataset: str, size: int = 28, root=None) -> tuple[bool, str]:
    """(whether ``dataset`` at ``size`` can be read here, why not): its file is under the data
    root, or it is a MedMNIST file and the download site answers."""
    dataset = dataset.lower()
    if dataset == "ph2":
        path = data_root(root) / "seg" / PH2_FILE
        return path.exists(), f"{path} is missing (PH2 cannot be downloaded automatically)"
    task_info(dataset, size)
    suffix = "" if size == 28 else f"_{size}"
    path = data_root(root) / "medmnist" / f"{dataset}{suffix}.npz"
    if path.exists():
        return True, ""
    if downloads_reachable():
        return True, f"{path.name} will be downloaded"
    return False, f"{path} is missing and the download site (zenodo.org) is unreachable"


def local_datasets(root=None) -> list[dict]:
    """Every dataset file known to survey_lib, with whether it is present under the data root."""
    base = data_root(root)
    rows = []
    for flag, meta in _info().items():
        sizes = SIZES_3D if flag.endswith("3d") else SIZES_2D
        for size in sizes:
            suffix = "" if size == 28 else f"_{size}"
            path = base / "medmnist" / f"{flag}{suffix}.npz"
            rows.append({"dataset": flag, "size": size, "task": meta["task"],
                         "local": path.exists(), "path": str(path)})
    ph2 = base / "seg" / PH2_FILE
    rows.append({"dataset": "ph2", "size": 128, "task": "segmentation", "local": ph2.exists(),
                 "path": str(ph2)})
    return rows

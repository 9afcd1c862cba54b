"""Shared fixtures. Real data comes from $SURVEY_DATA_DIR (the Makefile points it at ../shared/data);
trained models are cached in a per-session temporary runs folder so tests never touch ./runs."""

import json
import os
from pathlib import Path

import pytest

from survey_lib.data import DATA_ENV


def _real_root() -> Path | None:
    root = os.environ.get(DATA_ENV)
    if root and (Path(root) / "medmnist" / "breastmnist.npz").exists():
        return Path(root)
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return shared if (shared / "medmnist" / "breastmnist.npz").exists() else None


@pytest.fixture(scope="session")
def real_root() -> Path:
    """The folder with the real MedMNIST/PH2 files; in CI its absence is an error, not a skip."""
    root = _real_root()
    if root is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the real data: set {DATA_ENV} (see README)")
        pytest.skip(f"real data not found: set {DATA_ENV}")
    return root


@pytest.fixture(autouse=True, scope="session")
def _isolated_runs(tmp_path_factory):
    """Cache trained models in a temporary folder shared by the whole test session
    ($SURVEY_TEST_RUNS_DIR instead when set: tests/planted_bugs.py shares one between its runs)."""
    old = os.environ.get("SURVEY_RUNS_DIR")
    os.environ["SURVEY_RUNS_DIR"] = os.environ.get("SURVEY_TEST_RUNS_DIR") or str(
        tmp_path_factory.mktemp("runs"))
    yield
    if old is None:
        os.environ.pop("SURVEY_RUNS_DIR", None)
    else:
        os.environ["SURVEY_RUNS_DIR"] = old


@pytest.fixture
def data_env(real_root, monkeypatch):
    """Point $SURVEY_DATA_DIR at the real data for one test."""
    monkeypatch.setenv(DATA_ENV, str(real_root))
    return real_root


@pytest.fixture
def run_smoke(monkeypatch):
    """``run(notebook, cwd, out) -> outputs``: execute a notebook headless (papermill, Agg backend) in the
    smoke profile, from ``cwd``; returns the outputs of its code cells."""
    import papermill

    monkeypatch.setenv("MPLBACKEND", "Agg")

    def run(notebook: Path, cwd: Path, out: Path) -> list[dict]:
        papermill.execute_notebook(str(notebook), str(out), parameters={"PROFILE": "smoke"},
                                   cwd=str(cwd), kernel_name="python3", progress_bar=False)
        cells = json.loads(out.read_text())["cells"]
        return [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]

    return run


@pytest.fixture(scope="session")
def breast(real_root):
    """A BreastMNIST CNN trained 8 epochs (the model test_purification and test_smoothing also
    train) and the 156 test images ``(model, x, y)``: with steps of ε, PGD fools some images on the
    way and not at the end."""
    from survey_lib.config import get_profile
    from survey_lib.train import load_dataset, train_baseline

    profile = get_profile("smoke").replace(epochs=8, width=16, train_subset=None)
    model, _ = train_baseline("breastmnist", profile, root=real_root, progress=False)
    test = load_dataset("breastmnist", root=real_root)["test"]
    return model, test.x, test.y.view(-1)


@pytest.fixture
def cascade_by_hand():
    """``run(model, x, y, attacks) -> (robust counts, x_adv)``: an AutoAttack-style cascade computed
    attack by attack, each attack called on its own on the images that every earlier one left
    correctly classified; counts[0] is the clean count, counts[k] the count after attack k."""
    import torch

    def run(model, x, y, attacks):
        with torch.no_grad():
            robust = model(x).argmax(1) == y
        counts, x_adv = [int(robust.sum())], x.clone()
        for attack in attacks:
            idx = robust.nonzero().view(-1)
            if len(idx):
                x_adv[idx] = attack(model, x[idx], y[idx])
                with torch.no_grad():
                    robust[idx] = model(x_adv[idx]).argmax(1) == y[idx]
            counts.append(int(robust.sum()))
        return counts, x_adv

    return run

"""The pretrained checkpoints shipped with the package: what the manifest says is what the weights do
on the real test data; the NAT models are as good as the committed cpu baselines and fall to PGD
at 8/255; the loader needs no runs cache; the build command trains, exports and
evaluates."""

import json

import pandas as pd
import pytest
import torch

from survey_lib import pretrained
from survey_lib.attacks import make_attack
from survey_lib.errors import DataError
from survey_lib.metrics import classification_metrics, dice_iou
from survey_lib.paths import committed
from survey_lib.pretrained import build
from survey_lib.train import load_dataset, predict

NAT = [d for d, defense, _ in build.MODELS if defense == "nat"]
CLASSIFIERS = [d for d in NAT if d != "ph2"]


@pytest.fixture(scope="module")
def tests_of(real_root):
    cache = {}

    def get(dataset):
        if dataset not in cache:
            cache[dataset] = load_dataset(dataset, 128 if dataset == "ph2" else 28, real_root)["test"]
        return cache[dataset]

    return get


def test_manifest_covers_the_shipped_set_and_files_are_small():
    entries = pretrained.entries()
    assert list(entries) == [pretrained.key(d, defense) for d, defense, _ in build.MODELS]
    assert pretrained.entries("cpu") == entries and pretrained.entries("smoke") == {}
    total = 0
    for entry in entries.values():
        path = pretrained.FOLDER / entry["file"]
        total += path.stat().st_size
        assert pretrained.sha256(path) == entry["sha256"]
        state = torch.load(path, weights_only=True)
        assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    assert total < 5_000_000, f"{total / 1e6:.1f} MB: the shipped set should stay a few MB"


# Bars of the shipped NAT models (issue 14): clean accuracy within 5 points of the committed cpu
# baseline (Dice within 0.05 for PH2), and PGD-20 at 2/255 flips at least half of the correctly
# classified test images. Two miss, as notebooks/README.md states: the BreastMNIST demo model (no
# augmentation, chosen on validation) is 5.8 points under on accuracy but above on balanced accuracy;
# no recipe tried makes the RetinaMNIST one flip that easily (benchmarks/demo_nat/).
ACC_BAR_MISSED = {"breastmnist"}
FLIP_BAR_MISSED = {"retinamnist"}


def test_nat_models_match_the_committed_cpu_baselines(tests_of):
    baselines = pd.read_csv(committed("baselines_cpu/baselines_cpu.csv")).set_index("dataset")
    for dataset in NAT:
        model, entry = pretrained.load(dataset)
        test = tests_of(dataset)
        logits = predict(model, test.x)
        if dataset == "ph2":
            dice = dice_iou(logits, test.y)["dice"]
            assert abs(dice - baselines.loc["ph2", "test_dice"]) <= 0.05
            assert dice == pytest.approx(entry["test"]["clean"]["dice"], abs=1e-4)
            continue
        m = classification_metrics(logits, test.y, test.info.task, test.info.num_classes)
        base = baselines.loc[dataset]
        if dataset in ACC_BAR_MISSED:  # the start page's claim: less accurate, better balanced
            assert m["acc"] < base["test_acc"] - 0.05 and m["bacc"] > base["test_bacc"], dataset
        else:
            assert abs(m["acc"] - base["test_acc"]) <= 0.05, (dataset, m["acc"])
        assert m["acc"] == pytest.approx(entry["test"]["clean"]["acc"], abs=1e-4)  # manifest = truth
        assert entry["test"]["n"] == len(test)


@pytest.mark.parametrize("dataset", CLASSIFIERS)
def test_pgd_flips_most_correct_images_of_nat_models(dataset, tests_of):
    """White-box PGD-20 at 8/255 makes most of the correctly classified test images of a shipped NAT
    model wrong (a seeded subset of 200 test images, to stay fast), and the manifest's share grows
    with ε and reaches half at 2/255 (except where :data:`FLIP_BAR_MISSED` says it does not)."""
    model, entry = pretrained.load(dataset)
    test = tests_of(dataset).subset(200, 0)
    y = test.y.view(-1)
    right = predict(model, test.x).argmax(1) == y
    x_adv = make_attack("pgd", eps=8, steps=build.EVAL_STEPS)(model, test.x[right], y[right])
    flipped = float((predict(model, x_adv).argmax(1) != y[right]).float().mean())
    assert flipped >= 0.5, f"{dataset}: PGD-{build.EVAL_STEPS} at 8/255 flips only {flipped:.2f}"
    shares = [entry["test"][f"pgd{eps}"]["flipped"] for eps in build.EVAL_EPS]
    assert shares == sorted(shares) and shares[-1] >= 0.5, shares  # the whole test split
    assert (shares[0] >= 0.5) != (dataset in FLIP_BAR_MISSED), (dataset, shares)


def test_start_page_states_the_manifest():
    """The start page's table of flips is generated from the manifest, and its sentence on the
    BreastMNIST model quotes the manifest and the committed baseline."""
    from survey_lib.paths import NOTEBOOKS

    page = (NOTEBOOKS / "README.md").read_text()
    block = page.split("<!-- flips:begin -->\n")[1].split("<!-- flips:end -->")[0]
    assert block == pretrained.flip_table(), "paste pretrained.flip_table() into notebooks/README.md"
    clean = pretrained.entries()["breastmnist/nat"]["test"]["clean"]
    base = pd.read_csv(committed("baselines_cpu/baselines_cpu.csv")).set_index("dataset").loc[
        "breastmnist"]
    assert (f"{clean['acc']:.3f} clean accuracy against the `cpu` baseline's {base['test_acc']:.3f}, "
            f"but balanced accuracy {clean['bacc']:.3f} against {base['test_bacc']:.3f}") in \
        " ".join(page.split())
    for rate in (clean["shares"][0], json.loads(base["pred_shares"])[0]):
        assert f"{rate:.0%}" in page


def test_loader_needs_no_runs_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path / "runs"))
    model, source = pretrained.baseline_model("pneumoniamnist", "cpu")
    assert "pretrained" in source and not (tmp_path / "runs").exists()
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(model(x), pretrained.load("pneumoniamnist")[0](x))
    labels = {pretrained.label(e) for e in pretrained.entries("cpu").values()
              if e["dataset"] == "pneumoniamnist"}
    assert labels == {"nat (pretrained)", "pgd_at ε=8/255 (pretrained)"}


def test_missing_or_altered_weights_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="No pretrained model 'dermamnist/nat'.*pneumoniamnist/nat"):
        pretrained.load("dermamnist")
    entry = pretrained.entries()["breastmnist/nat"]
    (tmp_path / entry["file"]).write_bytes((pretrained.FOLDER / entry["file"]).read_bytes() + b"x")
    monkeypatch.setattr(pretrained, "FOLDER", tmp_path)
    with pytest.raises(DataError, match="do not match the SHA-256"):
        pretrained.load("breastmnist")


def test_build_trains_exports_and_measures(tmp_path, monkeypatch, data_env):
    """The build command in the smoke profile on one small dataset: the entry it writes describes
    the float16 weights it wrote; without --force it keeps them, with --force it retrains."""
    for module in (pretrained, build):
        monkeypatch.setattr(module, "FOLDER", tmp_path)
        monkeypatch.setattr(module, "MANIFEST", tmp_path / "manifest.json")
    monkeypatch.setattr(build, "PROFILE", "smoke")
    monkeypatch.setattr(build, "MODELS", (("breastmnist", "nat", None),))
    assert build.build(progress=False) == ["breastmnist/nat"]
    entry = json.loads((tmp_path / "manifest.json").read_text())["models"]["breastmnist/nat"]
    assert entry["config"]["profile"] == "smoke" and entry["dtype"] == "float16"
    # the demo recipe's change to the profile's NAT recipe is applied and recorded
    assert entry["recipe_changes"] == build.NAT_RECIPE["breastmnist"] == {"augment": False}
    assert entry["config"]["augment"] is False
    state = torch.load(tmp_path / entry["file"], weights_only=True)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    model, _ = pretrained.load("breastmnist")
    test = load_dataset("breastmnist")["test"]
    m = classification_metrics(predict(model, test.x), test.y, test.info.task, 2)
    assert entry["test"]["clean"]["acc"] == pytest.approx(m["acc"], abs=1e-4)
    assert entry["test"]["n"] == len(test)
    assert list(entry["test"]) == ["n", "clean"] + [f"pgd{eps}" for eps in build.EVAL_EPS]
    assert entry["test"]["pgd8"]["acc"] <= entry["test"]["clean"]["acc"]
    assert build.build(progress=False) == []  # kept
    assert build.build(force=True, progress=False) == ["breastmnist/nat"]


def test_cli_lists_them_with_their_metrics():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "survey_lib", "pretrained", "list"], check=False,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 + len(build.MODELS)  # header + one line per model
    acc = pretrained.entries()["pneumoniamnist/nat"]["test"]["clean"]["acc"]
    assert any(line.split()[:2] == ["pneumoniamnist", "nat"] and f"{acc:.4f}".rstrip("0") in line
               for line in lines), proc.stdout

"""The survey's recipe (the `paper` profile: ResNet-18, SGD with momentum, OneCycle, batch 32)
exercised on the CPU for a few steps through training, checkpointing, evaluation and one grid row,
so it cannot rot without a GPU; and the paper grid plans only the datasets present."""

import pytest
import torch

from survey_lib import benchmark as B
from survey_lib.__main__ import main
from survey_lib.config import get_profile
from survey_lib.models import ResNet18
from survey_lib.train import (
    baseline_config,
    build_for,
    fit,
    load_dataset,
    runs_root,
    train_baseline,
)

# one batch per epoch (32 images), 2 epochs, evaluation on 32 images
PAPER = get_profile("paper").replace(epochs=2, train_subset=32, eval_subset=32)


def test_paper_recipe_trains_checkpoints_and_evaluates(data_env, tmp_path, monkeypatch):
    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path / "runs"))
    model, record = train_baseline("breastmnist", PAPER, progress=False)
    c = record["config"]
    assert isinstance(model, ResNet18) and (c["model"], c["width"], c["optimizer"], c["schedule"],
                                            c["batch_size"]) == ("resnet18", 64, "sgd", "onecycle", 32)
    history = record["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=PAPER.lr)
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=PAPER.lr, total_steps=2)
    expected = []
    for _ in range(2):
        opt.step()
        one_cycle.step()
        expected.append(one_cycle.get_last_lr()[0])
    assert [h["lr"] for h in history] == pytest.approx(expected)  # one OneCycle step per epoch
    assert record["test"]["n"] == 32 and 0 <= record["test"]["acc"] <= 1
    folder = next((runs_root() / "breastmnist").iterdir())
    assert (folder / "model.pt").exists() and not (folder / "last.pt").exists()
    # a run cut after epoch 1 resumes from its checkpoint to the weights of an uninterrupted run
    splits = load_dataset("breastmnist", splits=("train", "val"))
    train, val = splits["train"].subset(32, 0), splits["val"].subset(32, 0)
    config = baseline_config("breastmnist", PAPER)
    last = tmp_path / "last.pt"
    kw = dict(epochs=2, batch_size=32, optimizer="sgd", lr=PAPER.lr, weight_decay=PAPER.weight_decay,
              schedule="onecycle", seed=0, progress=False)

    def latest(cut: bool):
        calls = []

        def select(model, val):  # the last epoch always scores best
            calls.append(1)
            if cut and len(calls) == 2:
                raise KeyboardInterrupt
            return float(len(calls))
        return select

    with pytest.raises(KeyboardInterrupt):
        fit(build_for(config, train.info), train, val, checkpoint=last, select_fn=latest(True), **kw)
    assert torch.load(last, weights_only=False)["state"]["epoch"] == 1
    resumed, straight = build_for(config, train.info), build_for(config, train.info)
    fit(resumed, train, val, checkpoint=last, select_fn=lambda m, v: 1.0 + len(v), **kw)
    fit(straight, train, val, select_fn=latest(False), **kw)
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(),
                                                 straight.state_dict().values()))


def test_paper_recipe_grid_row(data_env, tmp_path, monkeypatch):
    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path / "runs"))
    spec = B.GRIDS["paper"].replace(datasets=("breastmnist",), defenses=("nat",), eval_eps=(8,),
                                    attacks=("clean", "pgd"), pgd_steps=2, eval_subset=32)
    rows = B.run_grid(spec, tmp_path / "res", PAPER, progress=False)
    pgd = next(r for r in rows if r["attack"] == "pgd")
    assert len(rows) == 2 and pgd["model"] == "resnet18" and pgd["profile"] == "paper"
    assert pgd["n"] == 32 and pgd["acc"] <= next(r for r in rows if r["attack"] == "clean")["acc"]


def test_paper_dry_run_plans_only_local_datasets(data_env, capsys, monkeypatch):
    monkeypatch.setenv("SURVEY_OFFLINE", "1")
    assert main(["benchmark", "--profile", "paper", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "skipped dermamnist" in err and "dermamnist.npz is missing" in err
    assert "dermamnist" not in out and "pneumoniamnist" in out and "estimated cost" in out
    assert main(["benchmark", "--profile", "paper", "--dry-run", "--datasets", "dermamnist"]) == 0
    assert "dermamnist" in capsys.readouterr().out  # --datasets still wins

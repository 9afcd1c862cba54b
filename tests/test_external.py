"""Your own model through the protocol: `evaluate --model-file` runs a classifier trained outside
the package (a torchvision ResNet-18, TorchScript) through the grid's attacks and ε values, its rows
marked external beside ours; clear errors for a model with the wrong number of classes or input
shape, one that returns probabilities, a file that is not TorchScript."""

import json

import pytest
import torch
from torch import nn

from survey_lib.__main__ import main
from survey_lib.data import TaskInfo
from survey_lib.errors import ConfigError
from survey_lib.external import check_model, load_model

INFO = TaskInfo("breastmnist", "binary-class", ("malignant", "normal, benign"), 1, False, 28)
X = torch.rand(4, 1, 28, 28)


class Grey2RGB(nn.Module):
    """[0, 1] grey images → normalised 3-channel input of a torchvision network."""

    def forward(self, x):
        return (x.repeat(1, 3, 1, 1) - 0.5) / 0.25


def torchvision_resnet(num_classes=2):
    import torchvision

    torch.manual_seed(0)
    return nn.Sequential(Grey2RGB(), torchvision.models.resnet18(num_classes=num_classes))


@pytest.mark.parametrize("model,match", [
    (lambda: torchvision_resnet(3), "returns \\(4, 3\\) for 4 images, but breastmnist has 2 classes"),
    (lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 28 * 28, 2)),
     "fails on breastmnist images of shape \\(N, 1, 28, 28\\)"),
    (lambda: torch.nn.Sequential(torchvision_resnet(2), torch.nn.Softmax(1)), "returns probabilities"),
])
def test_unusable_models_are_refused(model, match):
    with pytest.raises(ConfigError, match=match):
        check_model(model().eval(), INFO, X, "my model")


def test_sources(tmp_path, monkeypatch):
    (tmp_path / "notes.pt").write_text("not a model")
    with pytest.raises(ConfigError, match="is not a TorchScript file"):
        load_model(str(tmp_path / "notes.pt"))
    with pytest.raises(ConfigError, match="neither an existing file nor 'module:function'"):
        load_model(str(tmp_path / "missing.pt"))
    (tmp_path / "builders.py").write_text("import torch\ndef build():\n    return torch.nn.Linear(2, 2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert isinstance(load_model("builders:build"), torch.nn.Linear)
    with pytest.raises(ConfigError, match="Cannot build the model"):
        load_model("builders:nothing")


def test_a_torchvision_model_through_the_protocol(tmp_path, data_env, monkeypatch, capsys):
    from survey_lib.train import load_dataset

    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path / "runs"))
    train = load_dataset("breastmnist", splits=("train",))["train"].subset(256, 0)
    model = torchvision_resnet()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for i in range(0, 256, 64):  # one epoch on 256 images: trained outside survey_lib
        loss = nn.functional.cross_entropy(model(train.x[i:i + 64]), train.y[i:i + 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path / "tv_resnet18.pt"
    torch.jit.save(torch.jit.trace(model.eval(), train.x[:2]), path)
    results = tmp_path / "res"
    argv = ["evaluate", "--model-file", str(path), "--dataset", "breastmnist", "--profile",
            "smoke", "--results", str(results)]
    assert main(argv) == 0
    folder = results / "breastmnist" / "ext_tv_resnet18_s0"
    rows = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    assert rows and all(r["external"] and r["model"] == "external" for r in rows)
    assert {r["attack"] for r in rows} >= {"clean", "pgd", "transfer", "sanity"}
    table = (results / "tables" / "breastmnist.md").read_text()
    assert "ext_tv_resnet18" in table
    # the same name for another model is refused; the wrong class count is a clear CLI error
    other = tmp_path / "other.pt"
    torch.jit.save(torch.jit.trace(torchvision_resnet(3).eval(), train.x[:2]), other)
    assert main(["evaluate", "--model-file", str(other), "--dataset", "breastmnist", "--profile",
                 "smoke", "--results", str(results), "--name", "tv_resnet18"]) == 2
    assert "already used" in capsys.readouterr().err
    assert main(["evaluate", "--model-file", str(other), "--dataset", "breastmnist", "--profile",
                 "smoke", "--results", str(results)]) == 2
    assert "breastmnist has 2 classes" in capsys.readouterr().err

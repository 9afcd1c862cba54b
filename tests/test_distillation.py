import pytest
import torch
from torch import nn

from survey_lib.attacks import make_attack
from survey_lib.config import get_profile
from survey_lib.defenses import DEFENSES, make_defense
from survey_lib.defenses import distillation as Dd
from survey_lib.defenses import feature_level as FL
from survey_lib.errors import ConfigError
from survey_lib.evaluate import robust_metrics
from survey_lib.models import build_model
from survey_lib.train import load_dataset, train_baseline

PROFILE = get_profile("smoke").replace(epochs=8, width=16, train_subset=None)


@pytest.mark.parametrize("temperature", [0, -5])
def test_temperature_must_be_positive(temperature):
    with pytest.raises(ConfigError, match="temperature"):
        Dd.train_distilled("breastmnist", "smoke", temperature=temperature)


def test_classification_only_and_registry():
    with pytest.raises(ConfigError, match="segmentation"):
        Dd.train_distilled("ph2", "smoke", temperature=20)
    with pytest.raises(ConfigError, match="smallcnn"):
        FL.add_feature_denoising(build_model("resnet18", 1, 2, 8))
    with pytest.raises(ConfigError, match="Valid options"):
        make_defense("defensive_distillation", temp=20)
    assert {"jpeg", "bit_depth", "median", "dae", "mahalanobis", "learned_detector",
            "randomized_smoothing", "defensive_distillation", "feature_denoising",
            "gaussian_augmentation"} <= set(DEFENSES)
    wrapped = make_defense("bit_depth", model=build_model("smallcnn", 1, 2, 4), bits=3)
    assert wrapped(torch.rand(2, 1, 28, 28)).shape == (2, 2)


def test_denoising_block_starts_as_identity():
    block = FL.NonLocalDenoise(8).eval()
    x = torch.randn(2, 8, 7, 7)
    assert torch.allclose(block(x), x)
    model = FL.add_feature_denoising(build_model("smallcnn", 1, 2, 4))
    assert sum(isinstance(m, FL.NonLocalDenoise) for m in model.modules()) == 2
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 2)


class Scaled(nn.Module):
    """Logits × s: what deploying a distilled student at T = 1 does to the softmax."""

    def __init__(self, model, s):
        super().__init__()
        self.model, self.s = model, s

    def forward(self, x):
        return self.model(x) * self.s


def test_saturated_softmax_masks_ce_gradients_but_not_the_margin(data_env):
    model, _ = train_baseline("breastmnist", PROFILE, progress=False)
    test = load_dataset("breastmnist")["test"].subset(64, 0)
    masked = Scaled(model, 1000.0)
    clean = robust_metrics(masked, test)["acc"]
    fgsm = robust_metrics(masked, test, make_attack("fgsm", eps=8))["acc"]
    cw = robust_metrics(masked, test, make_attack("cw_pgd", eps=8, steps=10))["acc"]
    plain_fgsm = robust_metrics(model, test, make_attack("fgsm", eps=8))["acc"]
    assert fgsm > plain_fgsm + 0.2  # "robust" to FGSM only because the CE gradient underflows
    assert cw < clean - 0.3 and cw < fgsm  # the margin attack is unaffected by the scale


def test_distillation_losses_by_value(monkeypatch):
    """The losses train_distilled trains with, against Papernot et al. (S&P 2016) written out here:
    the teacher on CE(z/T, y); the student on the cross-entropy between the teacher's softmax(t/T)
    and its own softmax(s/T), which does not look at the labels. Training is replaced by capturing
    the losses (the teacher is a fixed linear model)."""
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    captured = {}

    def capture(name, dataset, profile, loss_fn, extra=None, **kw):
        captured[name] = loss_fn
        return teacher, {"config": {"name": name, **(extra or {})}}

    monkeypatch.setattr(Dd, "defense_recipe", capture)
    T = 20.0
    Dd.train_distilled("breastmnist", "smoke", temperature=T)
    student = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    x, y = torch.rand(8, 1, 4, 4) * 4, torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    with torch.no_grad():
        s, t = student(x), teacher(x)
    ce_t = -torch.log_softmax(s / T, 1).gather(1, y.view(-1, 1)).mean()
    assert captured["distill-teacher"](student, x, y).item() == pytest.approx(ce_t.item(), rel=1e-5)
    soft = -(torch.softmax(t / T, 1) * torch.log_softmax(s / T, 1)).sum(1).mean()
    loss = captured["distill-student"](student, x, y)
    assert loss.item() == pytest.approx(soft.item(), rel=1e-5)
    assert captured["distill-student"](student, x, 1 - y).item() == pytest.approx(soft.item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())  # the teacher only labels


def test_distillation_trains_teacher_and_student(data_env, tmp_path, monkeypatch):
    student, records = Dd.train_distilled("breastmnist", PROFILE, temperature=20)
    assert records["teacher"]["config"]["temperature"] == 20
    assert records["student"]["config"]["teacher"] == records["teacher"]["config"]
    assert records["student"]["test"]["acc"] > 0.6 and not records["student"]["test"]["collapsed"]
    # the registry's recipe, trained from scratch in a model cache of its own, is the same model
    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path))
    again, _ = make_defense("defensive_distillation", temperature=20).train("breastmnist", PROFILE)
    assert len(list(tmp_path.rglob("model.pt"))) == 2  # teacher and student were trained again
    assert all(torch.equal(a, b) for a, b in zip(student.state_dict().values(),
                                                 again.state_dict().values()))


def test_feature_denoising_trains_with_the_at_recipe(data_env):
    model, record = FL.train_feature_denoising("breastmnist", "smoke")
    assert record["config"]["defense"] == "pgd_at" and record["config"]["feature_denoising"]
    assert {"acc", "bacc", "shares", "collapsed"} <= set(record["test_adv"])
    assert sum(isinstance(m, FL.NonLocalDenoise) for m in model.modules()) == 2

import math

import pytest
import torch
import torch.nn.functional as F

from survey_lib.attacks import PGD
from survey_lib.data import Split, TaskInfo
from survey_lib.defenses import DEFENSES, make_defense
from survey_lib.defenses import adversarial_training as AT
from survey_lib.errors import ConfigError
from survey_lib.models import build_model
from survey_lib.train import fit, seed_everything

BINARY = TaskInfo("breastmnist", "binary-class", ("malignant", "benign"), 1, False, 28)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One thread is several times faster than two on the shared, loaded 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _toy(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    seed_everything(seed)
    return build_model("smallcnn", 1, 2, width=4), x, torch.randint(0, 2, (n,), generator=g)


# ----------------------------------------------------------------------------- registry, errors
def test_registry_names_every_method_and_rejects_unknown():
    assert set(AT.METHODS) <= set(DEFENSES)
    assert make_defense("TRADES", beta=3).beta == 3
    with pytest.raises(ConfigError, match="Valid defenses:.*fast_at.*hat.*mart.*pgd_at.*trades"):
        make_defense("madry")


@pytest.mark.parametrize("kw, match", [
    ({"beta": -1}, "beta must be ≥ 0"), ({"gamma": -0.5}, "gamma"), ({"eps": 0}, "/255"),
    ({"eps": 300}, "/255")])
def test_bad_hyperparameters(kw, match):
    with pytest.raises(ConfigError, match=match):
        make_defense("trades", **kw)


def test_eps_schedule_must_match_epochs():
    with pytest.raises(ConfigError, match="one ε per epoch .*3 epochs.*got 2 values"):
        make_defense("pgd_at", eps=8, epochs=3, eps_schedule=(4, 8)).resolve("breastmnist", "smoke")
    with pytest.raises(ConfigError, match=r"each in \[0, ε=4\]"):
        make_defense("pgd_at", eps=4, epochs=2, eps_schedule=(4, 8)).resolve("breastmnist", "smoke")
    with pytest.raises(ConfigError, match="warm-up"):
        AT.warmup(8, 3, 5)
    assert AT.warmup(8, 4, 3) == (2, 4, 6, 8)
    assert make_defense("pgd_at", epochs=2, eps_schedule=AT.warmup(8, 2, 1)).resolve(
        "breastmnist", "smoke")["eps_schedule"] == (4, 8)


@pytest.mark.parametrize("method", AT.CLASSIFICATION_ONLY)
def test_classification_only_methods_reject_segmentation(method):
    with pytest.raises(ConfigError, match="classification only.*segmentation.*pgd_at"):
        make_defense(method).resolve("ph2", "smoke")
    with pytest.raises(ConfigError, match="classification only"):
        AT.AdversarialLoss(method, PGD(eps=8, steps=1), "segmentation")
    assert make_defense("pgd_at").resolve("ph2", "smoke")["model"] == "unet"


def test_settings_follow_the_profile():
    paper = make_defense("hat", eps=8).resolve("pneumoniamnist", "paper")
    assert (paper["steps"], paper["step_size"], paper["beta"], paper["h"], paper["gamma"]) == \
        (10, 2.0, 6.0, 3.5, 1.0)
    assert [AT.inner_step(e, 10) for e in (1, 2, 4, 8)] == [0.5, 0.5, 1.0, 2.0]
    fast = make_defense("fast_at", eps=8).resolve("breastmnist", "cpu")
    assert (fast["steps"], fast["step_size"]) == (1, 10.0)  # FGSM + random start, α = 1.25ε
    assert "beta" not in fast  # so a β change does not retrain models that ignore it


# ----------------------------------------------------------------------------- the losses
def test_inner_attacks_are_the_package_pgd_and_raise_their_loss():
    model, x, y = _toy()
    model.train()
    pgd = AT.AdversarialLoss("pgd_at", PGD(eps=8, steps=3), "binary-class")
    x_adv = pgd.perturb(model, x, y)
    assert model.training  # the attack ran in eval mode and restored train mode
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    model.eval()
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)
        p = torch.softmax(model(x), 1)
    kl_pgd = AT.KLPGD(eps=8, steps=3)
    assert isinstance(kl_pgd, PGD)
    x_kl = kl_pgd(model, x, y)
    with torch.no_grad():
        kl_adv = F.kl_div(F.log_softmax(model(x_kl), 1), p, reduction="batchmean")
        kl_start = F.kl_div(F.log_softmax(model(x + 0.001 * torch.randn_like(x)), 1), p,
                            reduction="batchmean")
    assert kl_adv > 10 * kl_start


def test_every_loss_is_finite_and_trains_only_through_the_outer_step():
    model, x, y = _toy()
    helper = build_model("smallcnn", 1, 2, width=4).eval()
    clean = F.cross_entropy(model.eval()(x), y).item()
    for method in AT.METHODS:
        attack = (AT.KLPGD if method in ("trades", "hat") else PGD)(eps=8, steps=2)
        loss_fn = AT.AdversarialLoss(method, attack, "binary-class", helper=helper)
        model.eval()  # BatchNorm statistics fixed, so the losses compare with the clean CE
        model.zero_grad()
        loss = loss_fn(model, x, y)
        assert math.isfinite(loss.item()) and loss.requires_grad
        if method != "mart":  # MART's boosted CE is a different scale
            assert loss.item() >= clean - 1e-6, method
        loss.backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_schedule_fresh_starts_and_clean_warmup_epoch():
    model, x, y = _toy(8)
    loss_fn = AT.AdversarialLoss("pgd_at", PGD(eps=8, steps=1, step_size=2), "binary-class",
                                 eps_schedule=(0, 4, 8), steps_per_epoch=2)
    assert torch.equal(loss_fn.perturb(model, x, y), x)  # ε = 0 in the first epoch: clean batch
    seeds, eps = [], []
    for _ in range(4):
        loss_fn.perturb(model, x, y)
        seeds.append(loss_fn.attack.seed)
        eps.append(round(loss_fn.attack.eps * 255, 4))
    assert eps == [0.0, 4, 4, 8]  # two steps per epoch; the step size scales with ε
    assert loss_fn.attack.step_size == pytest.approx(2 / 255)
    assert len(set(seeds)) == 4  # a fresh random start for every batch
    resumed = AT.AdversarialLoss("pgd_at", PGD(eps=8, steps=1), "binary-class",
                                 eps_schedule=(0, 4, 8), steps_per_epoch=2, start_epoch=2)
    resumed.perturb(model, x, y)
    assert resumed.attack.eps == pytest.approx(8 / 255)


def test_overfitting_detector():
    log = [{"epoch": i + 1, "adv_bacc": v} for i, v in enumerate([0.5, 0.62, 0.65, 0.31, 0.6])]
    assert AT.overfitting_epochs(log) == [4]
    assert AT.overfitting_epochs(log[:3]) == []


def test_segmentation_pgd_at_trains_a_unet():
    info = TaskInfo("ph2", "segmentation", ("background", "lesion"), 3, False, 32)
    g = torch.Generator().manual_seed(0)
    seg = Split(torch.rand(4, 3, 32, 32, generator=g), torch.randint(0, 2, (4, 32, 32), generator=g),
                info)
    model = build_model("unet", 3, 2, width=4)
    selector = AT.RobustSelector(PGD(eps=8, steps=1))
    out = fit(model, seg, seg, epochs=1, batch_size=2, progress=False, select_fn=selector,
              loss_fn=AT.AdversarialLoss("pgd_at", PGD(eps=8, steps=1), "segmentation"))
    assert 0 <= out["best_score"] <= 1 and selector.log[0]["adv_dice"] == out["best_score"]
    assert "clean_dice" in selector.log[0]


# ----------------------------------------------------------------------------- real data, cache
def test_hat_trains_on_real_data_with_full_record(data_env):
    model, record = make_defense("hat", eps=8).train("breastmnist", "smoke", progress=False)
    assert record["config"]["defense"] == "hat" and record["config"]["h"] == 3.5
    for split in ("test", "test_adv"):
        assert {"acc", "bacc", "auc", "shares", "collapsed"} <= set(record[split])
    assert record["test_adv"]["attack"].startswith("PGD(eps=8/255, steps=5")
    entry = record["val_log"][0]
    assert {"clean_bacc", "adv_acc", "adv_bacc", "adv_shares", "adv_collapsed"} <= set(entry)
    assert record["best_score"] == entry["adv_bacc"]  # selected by robust bACC on validation
    assert record["collapsed_epochs"] == ([1] if entry["clean_collapsed"] or entry["adv_collapsed"]
                                          else [])
    assert not model.training


def test_interrupted_training_resumes_without_corrupting_the_cache(data_env, tmp_path,
                                                                   monkeypatch):
    defense = make_defense("pgd_at", eps=8, epochs=2, eps_schedule=(4, 8), balanced=True)
    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path / "full"))
    full, full_record = defense.train("breastmnist", "smoke", progress=False)

    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path / "cut"))
    real_call, calls = AT.RobustSelector.__call__, []

    def ctrl_c_in_epoch_2(self, model, val):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_call(self, model, val)

    monkeypatch.setattr(AT.RobustSelector, "__call__", ctrl_c_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        defense.train("breastmnist", "smoke", progress=False)
    folder = next((tmp_path / "cut" / "breastmnist").iterdir())
    assert torch.load(folder / "last.pt", weights_only=False)["state"]["epoch"] == 1
    assert not (folder / "model.pt").exists() and not (folder / "record.json").exists()
    assert not list(folder.glob(".*tmp*")) and not list(folder.glob("*.tmp"))

    monkeypatch.setattr(AT.RobustSelector, "__call__", real_call)
    resumed, record = defense.train("breastmnist", "smoke", progress=False)
    assert not (folder / "last.pt").exists() and (folder / "model.pt").exists()
    assert [e["epoch"] for e in record["val_log"]] == [1, 2]
    def scores(log):
        return [{k: v for k, v in e.items() if k != "select_seconds"} for e in log]

    assert scores(record["val_log"]) == scores(full_record["val_log"])
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)

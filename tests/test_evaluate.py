"""Robust evaluation on a small CNN trained on real PneumoniaMNIST: robust accuracy always comes with
balanced accuracy, prediction shares and AUC; early stopping never raises robust accuracy; the
cascade only removes robust points; the gradient-masking sanity checks pass on an undefended model."""

import math

import pytest

from survey_lib.attacks import make_attack
from survey_lib.config import get_profile
from survey_lib.evaluate import cascade_metrics, robust_metrics, sanity_checks
from survey_lib.train import load_dataset, train_baseline


@pytest.fixture(scope="module")
def pneumonia(real_root):
    profile = get_profile("smoke").replace(epochs=3, train_subset=2000, eval_subset=300)
    model, _ = train_baseline("pneumoniamnist", profile, root=real_root, progress=False)
    return model, load_dataset("pneumoniamnist", root=real_root)["test"].subset(150, 0)


def test_robust_metrics_report_everything(pneumonia):
    model, test = pneumonia
    clean = robust_metrics(model, test)
    attacked = robust_metrics(model, test, make_attack("pgd", eps=4, steps=5))
    for m in (clean, attacked):
        assert {"acc", "bacc", "auc", "shares", "collapsed", "seconds", "attack"} <= set(m)
        assert len(m["shares"]) == 2 and math.isclose(sum(m["shares"]), 1, abs_tol=1e-3)
    assert attacked["acc"] < clean["acc"] and attacked["bacc"] < clean["bacc"]
    assert attacked["auc"] < clean["auc"]
    assert attacked["attack"].startswith("PGD(eps=4/255")
    square = robust_metrics(model, test, make_attack("square", eps=8, steps=20))
    assert 1 <= square["queries"] <= 20


def test_early_stopping_never_raises_robust_accuracy(pneumonia):
    model, test = pneumonia
    for kw in ({"eps": 2, "steps": 10}, {"eps": 4, "steps": 5, "restarts": 2}):
        full = robust_metrics(model, test, make_attack("pgd", **kw))
        early = robust_metrics(model, test, make_attack("pgd", early_stop=True, **kw))
        assert early["acc"] <= full["acc"]


def test_cascade_binary_stages(pneumonia):
    model, test = pneumonia
    m = cascade_metrics(model, test, eps=4, steps=30, square_queries=50)
    assert list(m["stages"]) == ["clean", "apgd_ce", "square"]
    values = list(m["stages"].values())
    assert values == sorted(values, reverse=True)
    assert m["acc"] == pytest.approx(values[-1], abs=1e-4)  # stages are rounded to 4 digits
    pgd = robust_metrics(model, test, make_attack("pgd", eps=4, steps=10))
    assert m["acc"] <= pgd["acc"] + 1 / len(test)  # at least as strong as PGD, up to one image
    assert 0 < m["queries"]


def test_sanity_checks_pass_on_undefended_model(pneumonia):
    model, test = pneumonia
    checks = sanity_checks(model, test.subset(100, 1), eps_grid=(1, 4, 8), steps_grid=(1, 5, 10),
                           black_box_queries=100)
    assert len(checks) == 5
    failed = [c for c in checks if not c["passed"]]
    assert not failed, failed

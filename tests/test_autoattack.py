"""FAB, FAB-T and the standard AutoAttack: FAB's box-constrained projection is the linear program's
optimum; FAB and FAB-T agree with torchattacks' (share broken within 2, 4, 8/255 within 3 points,
median minimal perturbation within a factor 1.25) on a small CNN trained on real RetinaMNIST; the
names say exactly what ran and a reduced cascade is never called AutoAttack; bad settings raise
ConfigError."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from survey_lib.attacks import AALite, make_attack
from survey_lib.attacks.fab import project_on_hyperplane_linf
from survey_lib.config import get_profile
from survey_lib.errors import ConfigError
from survey_lib.train import load_dataset, train_baseline


@pytest.fixture(scope="module")
def retina(real_root):
    """A small CNN trained briefly on real RetinaMNIST (5 classes; not collapsed) and 128 test images."""
    profile = dataclasses.replace(get_profile("smoke"), epochs=4, train_subset=None)
    model, record = train_baseline("retinamnist", profile, root=real_root, progress=False)
    assert record["test"]["acc"] > 0.45 and not record["test"]["collapsed"]
    test = load_dataset("retinamnist", root=real_root)["test"].subset(128, 0)
    return model.eval(), test.x, test.y.view(-1)


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(torch.as_tensor(x)).argmax(1) == y).float().mean().item()


def linf(a, b) -> torch.Tensor:
    return (a - b).flatten(1).abs().amax(1)


def test_projection_is_the_linear_programs_optimum():
    """min ‖d‖∞ s.t. w·d = c, 0 ≤ t + d ≤ 1, solved by scipy's LP; where the box cannot reach the
    hyperplane, the step is the box corner that moves w·d furthest towards c."""
    from scipy.optimize import linprog

    gen = np.random.default_rng(0)
    for _ in range(200):
        n = int(gen.integers(1, 8))
        t, w = gen.random(n), gen.normal(size=n) * (gen.random(n) > 0.2)
        c = gen.normal() * gen.choice([0.1, 1.0, 3.0])
        d = project_on_hyperplane_linf(torch.tensor(t).view(1, -1), torch.tensor(w).view(1, -1),
                                       torch.tensor([c]))[0].numpy()
        assert (t + d >= -1e-12).all() and (t + d <= 1 + 1e-12).all()
        lp = linprog(np.r_[np.zeros(n), 1.0],  # variables (d, r): minimise r
                     A_ub=np.r_[np.c_[np.eye(n), -np.ones(n)], np.c_[-np.eye(n), -np.ones(n)]],
                     b_ub=np.zeros(2 * n), A_eq=np.r_[w, 0.0][None], b_eq=[c],
                     bounds=[(-ti, 1 - ti) for ti in t] + [(0, None)])
        if lp.status == 0:
            assert w @ d == pytest.approx(c, abs=1e-9)
            assert np.abs(d).max() == pytest.approx(lp.fun, abs=1e-9)
        else:
            corner = np.where(w * np.sign(c) > 0, 1 - t, -t) * (w != 0)
            assert w @ d == pytest.approx(w @ corner, abs=1e-9)


def minimal_norms(x_adv, x) -> torch.Tensor:
    """Per image, the L∞ norm of the perturbation found (inf where the image came back unchanged)."""
    norms = linf(x_adv, x)
    return torch.where(norms > 0, norms, torch.inf)


@pytest.mark.parametrize("targeted", [False, True], ids=["fab", "fab_t"])
def test_fab_agrees_with_torchattacks(retina, targeted):
    """Same settings (10 steps, 1 run, ε = 32/255 so that the whole minimal-norm distribution shows;
    FAB-T: the 4 wrong classes of RetinaMNIST): the share of images broken within 2, 4 and 8/255
    within 3 points, and the median minimal perturbations within a factor 1.25."""
    import torchattacks

    model, x, y = retina
    x, y = x[:64], y[:64]
    theirs = torchattacks.FAB(model, norm="Linf", eps=32 / 255, steps=10, n_restarts=1,
                              multi_targeted=targeted, n_classes=5, seed=0)(x, y)
    ours = make_attack("fab_t" if targeted else "fab", eps=32, steps=10)(model, x, y)
    norms = [minimal_norms(a, x) for a in (ours, theirs)]
    for tau in (2, 4, 8):
        shares = [(n <= tau / 255).float().mean().item() for n in norms]
        assert abs(shares[0] - shares[1]) <= 0.03, (tau, shares)
    assert 0.1 < (norms[0] <= 4 / 255).float().mean() < 0.9  # not a trivial setting
    medians = [n[n < torch.inf].median().item() for n in norms]
    assert 0.8 < medians[0] / medians[1] < 1.25, medians


def test_fab_returns_small_successful_perturbations_or_the_image(retina):
    """Each changed image is misclassified, inside ε and typically well inside (FAB minimises the
    norm); the others come back exactly as they were."""
    model, x, y = retina
    x, y = x[:64], y[:64]
    eps = 8
    x_adv = make_attack("fab", eps=eps, steps=10)(model, x, y)
    changed = (x_adv != x).flatten(1).any(1)
    with torch.no_grad():
        assert (model(x_adv[changed]).argmax(1) != y[changed]).all()
    assert changed.float().mean() > 0.2
    norms = linf(x_adv, x)[changed]
    assert norms.max() <= eps / 255 + 1e-6
    assert norms.median() < 0.75 * eps / 255


def test_names_say_what_ran():
    aa = make_attack("autoattack", eps=8)
    assert repr(aa) == "AutoAttack-standard(APGD-CE-100, APGD-T-9x100, FAB-T-9x100, Square-5000; eps=8/255)"
    for k, stages in ((5, "APGD-T-4x100, FAB-T-4x100"), (3, "APGD-T(CW)-2x100, FAB-T-2x100"),
                      (2, "FAB-T-1x100")):
        assert aa.describe(k) == f"AutoAttack-standard(APGD-CE-100, {stages}, Square-5000; eps=8/255)"
    lite = make_attack("aa_lite", eps=8)
    assert repr(lite) == "AA-lite(APGD-CE-20, APGD-T-9x20, Square-300; eps=8/255)"
    assert "AutoAttack" not in repr(lite) and "AutoAttack" not in lite.describe(2)
    # after a call the name and the stages are those that ran on that model's class count
    torch.manual_seed(0)
    x = torch.rand(8, 1, 4, 4)
    for k, stages, name in (
            (3, ["apgd_ce", "apgd_t", "fab_t", "square"], "APGD-CE-3, APGD-T(CW)-2x3, FAB-T-2x4, Square-5"),
            (2, ["apgd_ce", "fab_t", "square"], "APGD-CE-3, FAB-T-1x4, Square-5")):
        model = nn.Sequential(nn.Flatten(), nn.Linear(16, k))
        y = model(x).argmax(1)  # every image starts correctly classified
        lite = AALite(eps=64, steps=3, fab_steps=4, square_queries=5)
        lite(model, x, y)
        assert repr(lite) == f"AA-lite({name}; eps=64/255)"
        assert [s for s, _ in lite.stages] == ["clean", *stages]


def test_bad_settings_raise_config_error():
    with pytest.raises(ConfigError, match="aa_lite"):
        make_attack("autoattack", steps=20)
    with pytest.raises(ConfigError, match="aa_lite"):
        make_attack("autoattack", square_queries=300)
    for name, kw in (("fab_t", {"n_targets": 0}), ("apgd_t", {"n_targets": 0}),
                     ("aa_lite", {"n_targets": 0}), ("aa_lite", {"fab_steps": -1}),
                     ("aa_lite", {"square_queries": 0}), ("aa_lite", {"steps": 0}),
                     ("fab", {"alpha_max": 0}), ("fab", {"eta": 0.9}), ("fab", {"beta": 1.0}),
                     ("fab", {"targeted": True}), ("apgd_t", {"loss": "ce"})):
        with pytest.raises(ConfigError):
            make_attack(name, **kw)

import numpy as np
import pytest
import torch

from survey_lib.attacks import make_attack
from survey_lib.config import get_profile
from survey_lib.data import TaskInfo
from survey_lib.defenses import purification as P
from survey_lib.errors import ConfigError
from survey_lib.models import build_model
from survey_lib.train import load_dataset, train_baseline

# a small BreastMNIST model that does not collapse (~10 s on the 2-core CPU; cached per session)
PROFILE = get_profile("smoke").replace(epochs=8, width=16, train_subset=None)


def _tiny():
    return build_model("smallcnn", 1, 2, width=4).eval()


@pytest.mark.parametrize("make", [
    lambda m: P.JPEGCompression(m, quality=0), lambda m: P.JPEGCompression(m, quality=101),
    lambda m: P.BitDepthReduction(m, bits=0), lambda m: P.BitDepthReduction(m, bits=9),
    lambda m: P.MedianSmoothing(m, kernel=2), lambda m: P.make_purifier("blur", m),
    lambda m: P.RandomResizePad(m, ratio=1.0), lambda m: P.eot(make_attack("square", eps=8)),
])
def test_bad_settings_raise_config_error(make):
    with pytest.raises(ConfigError):
        make(_tiny())


def test_classification_only():
    seg = TaskInfo("ph2", "segmentation", ("background", "lesion"), 3, False, 128)
    with pytest.raises(ConfigError, match="segmentation"):
        P.require_2d_classification(seg, "JPEG")
    with pytest.raises(ConfigError, match="2D"):
        P.BitDepthReduction(_tiny())(torch.rand(2, 1, 8, 28, 28))


def test_purifiers_transform_as_documented():
    x = torch.rand(4, 1, 28, 28)
    squeezed = P.BitDepthReduction(_tiny(), bits=2).purify(x)
    assert set(torch.unique((squeezed * 3).round()).tolist()) <= {0.0, 1.0, 2.0, 3.0}
    assert torch.allclose(squeezed * 3, (squeezed * 3).round(), atol=1e-6)
    jpeg = P.JPEGCompression(_tiny(), quality=90).purify(x)
    assert jpeg.shape == x.shape and 0 < (jpeg - x).abs().mean() < 0.2
    torch.manual_seed(0)
    resized = P.RandomResizePad(_tiny(), 0.9)
    a, b = resized.purify(x), resized.purify(x)
    assert a.shape == x.shape and not torch.equal(a, b)  # a fresh draw at every call
    salt = torch.full((1, 1, 9, 9), 0.5)
    salt[0, 0, 4, 4] = 1.0  # one impulse: the median filter removes it
    assert torch.allclose(P.MedianSmoothing(_tiny(), 3).purify(salt), torch.full_like(salt, 0.5))


def test_bpda_passes_the_gradient_that_rounding_masks():
    model, x = _tiny(), torch.rand(3, 1, 28, 28, requires_grad=True)
    masked = torch.autograd.grad(model(torch.round(x * 15) / 15).sum(), x)[0]
    assert masked.abs().sum() == 0  # the naive gradient through the rounding is zero
    for wrapper in (P.BitDepthReduction(model, 4), P.JPEGCompression(model, 50)):
        g = torch.autograd.grad(wrapper(x).sum(), x)[0]
        purified = wrapper.purify(x.detach()).requires_grad_(True)
        expected = torch.autograd.grad(model(purified).sum(), purified)[0]
        assert g.abs().sum() > 0 and torch.allclose(g, expected, atol=1e-6)
        assert torch.allclose(wrapper(x), model(wrapper.purify(x.detach())))  # forward unchanged


def test_purifier_rows_match_attacks_run_here(data_env):
    """The naive, white-box and adaptive rows of evaluate_purifiers against the attacks called here
    on their own: naive = PGD on the undefended model, transferred; white-box = PGD on the purified
    model (BPDA/end to end); adaptive = an image counts as robust only when it survives both.
    Exact for the deterministic purifiers."""
    model, _ = train_baseline("breastmnist", PROFILE, progress=False)
    dae, _ = P.train_denoiser("breastmnist", get_profile("smoke").replace(epochs=10, train_subset=None))
    test = load_dataset("breastmnist")["test"].subset(96, 0)
    noisy = (test.x + 0.1 * torch.randn(test.x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    with torch.no_grad():  # the autoencoder removes part of the noise it was trained on
        assert (dae(noisy) - test.x).pow(2).mean() < 0.8 * (noisy - test.x).pow(2).mean()
    purifiers = {"jpeg": P.JPEGCompression(model, 50), "bit_depth": P.BitDepthReduction(model, 4),
                 "median": P.MedianSmoothing(model, 3), "dae": P.DenoiserPurifier(model, dae),
                 "random_resize": P.RandomResizePad(model, 0.9)}
    attack = make_attack("pgd", eps=8, steps=5)
    rows = P.evaluate_purifiers(model, test, purifiers, attack)
    table = {(r["defense"], r["evaluation"]): r for r in rows}
    assert table[("none", "clean")]["acc"] > 0.7
    y = test.y.view(-1)

    def correct(wrapped, x):
        wrapped.eval()  # attacking a wrapper restores its (train) mode, and its model's with it
        with torch.no_grad():
            return wrapped(x).argmax(1) == y

    def acc_bacc(ok):
        return ok.float().mean().item(), np.mean([ok[y == c].float().mean().item() for c in (0, 1)])

    x_naive = attack(model, test.x, test.y)
    for name in ("jpeg", "bit_depth", "median", "dae"):
        wrapped = purifiers[name]
        naive, white = correct(wrapped, x_naive), correct(wrapped, attack(wrapped, test.x, test.y))
        for evaluation, ok in [("naive (transfer)", naive), ("white-box + BPDA", white),
                               ("adaptive (worst of both)", naive & white)]:
            row = table[(name, evaluation)]
            assert (row["acc"], row["bacc"]) == pytest.approx(acc_bacc(ok)), (name, evaluation)
        assert (naive & ~white).any() or (white & ~naive).any(), name  # the two attacks differ
        assert {"bacc", "shares", "collapsed"} <= set(table[(name, "adaptive (worst of both)")])
        # not by construction: the attack through the purifier alone (BPDA where it is not
        # differentiable) breaks images the purifier classified correctly
        assert table[(name, "white-box + BPDA")]["acc"] < table[(name, "clean")]["acc"], name
    # the randomized purifier: EOT breaks it, and one-draw gradients overstate it
    random = {e: table[("random_resize", e)]["acc"] for e in (
        "clean", "white-box + BPDA", "white-box, one draw (no EOT)")}
    assert random["white-box + BPDA"] < random["clean"]
    assert random["white-box + BPDA"] <= random["white-box, one draw (no EOT)"]
    assert ("jpeg", "white-box, one draw (no EOT)") not in table

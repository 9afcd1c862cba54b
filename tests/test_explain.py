"""Attribution: Grad-CAM finds the evidence of a model built to look at one quadrant and equals CAM
(Zhou et al. 2016) on SmallCNN, ResNet18 and CNN3D; saliency equals the autograd input gradient;
map correlations match NumPy/SciPy, are 1 for an unchanged image and below 1 after PGD on a real
small model; the model's mode, BatchNorm buffers and parameter gradients and the inputs are left
alone; bad input gets a survey_lib error."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from survey_lib import explain
from survey_lib.attacks import make_attack
from survey_lib.config import get_profile
from survey_lib.data import Split, TaskInfo
from survey_lib.errors import SurveyError
from survey_lib.models import SmallCNN, build_model
from survey_lib.train import load_dataset, train_baseline


class Mask(nn.Module):
    """Keeps the top-right quadrant of a 28×28 image, zeroes the rest."""

    def forward(self, x):
        m = torch.zeros_like(x)
        m[..., :14, 14:] = 1
        return x * m


def quadrant_model() -> nn.Module:
    """Logit 1 = mean of the top-right quadrant's 2×2-pooled features, logit 0 its negative: all
    the evidence for class 1 (and against class 0) lies in that quadrant."""
    model = nn.Module()
    model.features = nn.Sequential(Mask(), nn.AvgPool2d(2), nn.Conv2d(1, 3, 1), nn.ReLU(),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model.head = nn.Linear(3, 2)
    with torch.no_grad():
        model.features[2].weight.fill_(1.0)
        model.features[2].bias.zero_()
        model.head.weight.copy_(torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
        model.head.bias.zero_()
    model.forward = lambda x: model.head(model.features(x))
    return model


@pytest.fixture(scope="module")
def breast(real_root):
    """A small CNN trained briefly on all of real BreastMNIST (not collapsed) and its test split."""
    profile = get_profile("smoke").replace(epochs=4, train_subset=None)
    model, record = train_baseline("breastmnist", profile, root=real_root, progress=False)
    assert not record["test"]["collapsed"], record["test"]
    return model, load_dataset("breastmnist", root=real_root)["test"]


def test_gradcam_finds_the_quadrant_that_holds_the_evidence():
    x = torch.rand(3, 1, 28, 28) * 0.5 + 0.25
    cam = explain.gradcam(quadrant_model(), x, target=1)
    assert cam.shape == (3, 28, 28) and cam.amax((1, 2)).allclose(torch.ones(3))
    inside = cam[:, :14, 14:].sum((1, 2)) / cam.sum((1, 2))
    assert (inside > 0.95).all(), inside  # bilinear upsampling spills a little over the border
    assert cam[:, 18:, :10].abs().max() == 0  # far from the quadrant: nothing
    # class 0 only has negative evidence there: its ReLU'd map is empty, its signed map negative
    assert explain.gradcam(quadrant_model(), x, target=0).abs().max() == 0
    signed = explain.gradcam(quadrant_model(), x, target=0, signed=True)
    assert signed[:, :14, 14:].mean() < 0


@pytest.mark.parametrize("name,layer,shape", [
    ("smallcnn", lambda m: m.features[6], (4, 1, 28, 28)),  # the last conv block, 7×7
    ("resnet18", lambda m: m.features[-3], (4, 1, 28, 28)),  # the last residual block, 4×4
    ("cnn3d", lambda m: m.features[4], (2, 1, 28, 28, 28)),  # the last conv block, 7×7×7
], ids=["smallcnn", "resnet18", "cnn3d"])
def test_gradcam_equals_cam(name, layer, shape):
    """For global average pooling + a linear head, Grad-CAM = Σ_k w_yk A^k / (number of positions)
    (Selvaraju et al. 2017, Sec. 3.1), with A the output of the block before the pooling,
    upsampled (bilinear in 2D, trilinear in 3D) to the input size."""
    torch.manual_seed(0)
    model = build_model(name, 1, 3, 4 if name == "cnn3d" else 8).eval()
    x, target = torch.rand(*shape), torch.tensor([0, 1, 2, 1])[:shape[0]]
    feats = {}
    handle = layer(model).register_forward_hook(lambda m, i, o: feats.update(a=o.detach()))
    with torch.no_grad():
        model(x)
    handle.remove()
    a = feats["a"]
    cam = torch.einsum("nk,nk...->n...", model.head.weight[target].detach(), a) / a[0, 0].numel()
    mode = "bilinear" if len(shape) == 4 else "trilinear"
    expected = nn.functional.interpolate(cam[:, None], shape[2:], mode=mode)[:, 0]
    got = explain.gradcam(model, x, target, signed=True)
    assert torch.allclose(got, expected, atol=1e-6)
    shown = explain.gradcam(model, x, target)
    relu = expected.clamp_min(0)
    peak = relu.flatten(1).amax(1).view(-1, *[1] * (relu.ndim - 1))
    assert torch.allclose(shown, relu / peak, atol=1e-5)


def test_saliency_equals_the_autograd_input_gradient():
    torch.manual_seed(1)
    model = SmallCNN(3, 5, 8).eval()
    x, target = torch.rand(4, 3, 28, 28), torch.tensor([4, 0, 2, 2])
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(xg).gather(1, target[:, None]).sum(), xg)
    got = explain.saliency(model, x, target)
    assert got.shape == (4, 28, 28)
    assert torch.allclose(got, grad.abs().amax(1), atol=1e-7)
    # target=None explains the predicted class
    pred = model(x).argmax(1)
    assert torch.allclose(explain.saliency(model, x), explain.saliency(model, x, pred))


def test_map_correlation_matches_numpy_and_scipy():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(5, 28, 28, generator=gen)
    b = a + 0.5 * torch.rand(5, 28, 28, generator=gen) ** 3
    pearson = explain.map_correlation(a, b)
    spearman = explain.map_correlation(a, b, "spearman")
    for i in range(5):
        assert pearson[i] == pytest.approx(np.corrcoef(a[i].flatten(), b[i].flatten())[0, 1], abs=1e-9)
        assert spearman[i] == pytest.approx(spearmanr(a[i].flatten(), b[i].flatten())[0], abs=1e-9)
    assert explain.map_correlation(a, a).allclose(torch.ones(5, dtype=torch.float64))
    assert explain.map_correlation(a, -a)[0] == pytest.approx(-1)


def test_stability_is_one_for_unchanged_images_and_below_after_pgd(breast):
    model, test = breast
    identity = lambda m, x, y: x.clone()  # noqa: E731
    same = explain.explanation_stability(model, test, identity, n=12)
    assert not same["flipped"].any()
    for col in ("cam_pearson", "cam_spearman", "saliency_pearson", "saliency_spearman"):
        assert np.allclose(same[col], 1.0), col
    attack = make_attack("pgd", eps=8, steps=5)
    pgd = explain.explanation_stability(model, test, attack, n=12)
    assert pgd["index"].tolist() == same["index"].tolist()
    # both maps explain the true class (not the prediction, which flips)
    x, y = test.x[pgd["index"].tolist()], test.y[pgd["index"].tolist()]
    x_adv = attack(model, x, y)  # the same seeded random start
    r = explain.map_correlation(*[explain.gradcam(model, v, y, signed=True) for v in (x, x_adv)])
    assert np.allclose(pgd["cam_pearson"], r.numpy())
    assert (test.y[pgd["index"].tolist()].numpy() == pgd["label"].to_numpy()).all()
    for col in ("cam_pearson", "saliency_pearson"):
        assert (pgd[col] < 0.999).all() and (pgd[col] > -1).all(), pgd[col]
    assert pgd["saliency_pearson"].mean() < 0.95
    assert pgd["flipped"].any()  # an undefended model at 8/255
    assert (pgd["flipped"] == (pgd["pred_clean"] != pgd["pred_adv"])).all()


def test_model_mode_gradients_and_inputs_are_left_alone(breast):
    model, test = breast
    model.train().zero_grad(set_to_none=True)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    x = test.x[:8].clone()
    explain.gradcam(model, x)
    explain.saliency(model, x, test.y[:8])
    explain.explanation_stability(model, test, make_attack("pgd", eps=8, steps=2), n=6)
    assert model.training
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())
    assert torch.equal(x, test.x[:8]) and not x.requires_grad
    model.eval()


def test_explanation_figure_shows_images_every_model_gets_right(breast):
    import matplotlib

    matplotlib.use("Agg")
    model, test = breast
    other = build_model("smallcnn", 1, 2, 8).eval()
    models = {"NAT": model, "other": other}
    idx = explain.examples_correct_for_all(models, test, k=2, seed=0)
    for m in models.values():
        assert (m(test.x[idx]).argmax(1) == test.y[idx]).all()
    attack = make_attack("pgd", eps=8, steps=5)
    fig = explain.explanation_figure(models, test, attack, k=2)
    assert len(fig.axes) == 2 * 2 * 6  # (image, model) rows × 6 panels
    assert [len(a.images) for a in fig.axes[:6]] == [1, 2, 1, 2, 2, 2]  # maps overlaid on images
    names, flips = test.info.class_names, 0
    for m, (label, net) in enumerate(models.items()):
        adv = net(attack(net, test.x[idx], test.y[idx])).argmax(1)  # as the figure: one batch
        flips += int((adv != test.y[idx]).sum())
        for j, i in enumerate(idx.tolist()):
            row = fig.axes[6 * (2 * j + m):6 * (2 * j + m + 1)]
            assert f"{label} | true: {names[int(test.y[i])]}" in row[0].get_title()
            assert f"{label} on adv: {names[int(adv[j])]}" in row[2].get_title()
    assert flips > 0  # else the titles could not tell the true class from the adversarial one
    assert "r(CAM)" in fig.axes[3].get_title() and "r(saliency)" in fig.axes[5].get_title()


def test_bad_inputs_raise_survey_errors(breast):
    model, test = breast
    x = test.x[:2]
    with pytest.raises(SurveyError, match=r"\[0, 1\]"):
        explain.gradcam(model, x * 255)
    with pytest.raises(SurveyError, match=r"\(N, C, H, W\)"):
        explain.saliency(model, x[0])
    with pytest.raises(SurveyError, match="0..1"):
        explain.gradcam(model, x, target=2)
    with pytest.raises(SurveyError, match="one per image"):
        explain.saliency(model, x, target=torch.tensor([0, 1, 0]))
    with pytest.raises(SurveyError, match="layer="):
        explain.gradcam(nn.Sequential(nn.Flatten(), nn.Linear(784, 2)), x)
    multi = Split(test.x[:4], torch.zeros(4, 3), TaskInfo("chestmnist", "multi-label, binary-class",
                                                          ("a", "b", "c"), 1, False, 28))
    with pytest.raises(SurveyError, match="single-label"):
        explain.explanation_stability(model, multi, make_attack("pgd"), n=4)
    with pytest.raises(SurveyError, match="same shape"):
        explain.map_correlation(torch.rand(2, 4, 4), torch.rand(2, 4, 5))

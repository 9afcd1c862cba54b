"""Inputs are checked once at every public entry point (survey_lib.validation): each bad input gives
a SurveyError subclass from the API and a one-paragraph error with exit code 2 from the CLI; each
accepted variant (integer dtypes, (N, 1) labels, one-hot rows) gives exactly the result of its
canonical form."""

import pytest
import torch

from survey_lib import validation
from survey_lib.__main__ import main
from survey_lib.attacks import make_attack
from survey_lib.benchmark import GRIDS, plan
from survey_lib.data import Split, TaskInfo
from survey_lib.defenses import make_defense
from survey_lib.errors import ConfigError, SurveyError
from survey_lib.evaluate import robust_metrics
from survey_lib.models import build_model
from survey_lib.train import evaluate, fit, predict

INFO = TaskInfo("breastmnist", "binary-class", ("malignant", "normal, benign"), 1, False, 28)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("smallcnn", 1, 2, width=4).eval()


def images(n=6):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))


LABELS = torch.tensor([0, 1, 1, 0, 1, 0])
NAN = images().index_put_((torch.tensor([0]),), torch.tensor(float("nan")))

BAD_IMAGES = [
    ("0..255", images() * 255, "must lie in \\[0, 1\\].*divide 0..255 images by 255"),
    ("normalised", images() * 4 - 2, "must lie in \\[0, 1\\]"),
    ("nan", NAN, "NaN or infinite"),
    ("empty", torch.rand(0, 1, 28, 28), "the batch is empty"),
    ("uint8", (images() * 255).to(torch.uint8), "floating point"),
    ("one image without batch", torch.rand(1, 28, 28), "shaped \\(N, C, H, W\\)"),
]


def _attack(model, x, y):
    return make_attack("pgd", eps=8, steps=2)(model, x, y)


ENTRY_POINTS = {
    "attack": _attack,
    "predict": lambda model, x, y: predict(model, x),
    "split (evaluate, robust_metrics, fit)": lambda model, x, y: Split(x, y, INFO),
    "fgsm": lambda model, x, y: make_attack("fgsm", eps=2)(model, x, y),
    "square": lambda model, x, y: make_attack("square", eps=2, steps=2)(model, x, y),
    "uap fit": lambda model, x, y: make_attack("uap", eps=2, steps=1).fit(model, x, y),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=str)
@pytest.mark.parametrize("what,x,match", BAD_IMAGES, ids=[b[0] for b in BAD_IMAGES])
def test_bad_images_raise_everywhere(model, entry, what, x, match):
    y = LABELS[: len(x)] if len(x) else LABELS[:0]
    with pytest.raises(ConfigError, match=match):
        ENTRY_POINTS[entry](model, x, y)


BAD_LABELS = [
    ("float class indices", LABELS.float(), "must be integers"),
    ("soft rows", torch.tensor([[0.3, 0.7]] * 6), "exactly one-hot"),
    ("too few", LABELS[:4], "4 labels for 6 images"),
    ("out of range", torch.tensor([0, 1, 2, 0, 1, 0]), "class indices in 0..1"),
    ("negative", torch.tensor([0, -1, 1, 0, 1, 0]), "class indices"),
    ("(N, 2) integers", torch.zeros(6, 2, dtype=torch.long), "shaped \\(N,\\) or \\(N, 1\\)"),
]


@pytest.mark.parametrize("entry", ["attack", "split (evaluate, robust_metrics, fit)"])
@pytest.mark.parametrize("what,y,match", BAD_LABELS, ids=[b[0] for b in BAD_LABELS])
def test_bad_labels_raise(model, entry, what, y, match):
    with pytest.raises(ConfigError, match=match):
        ENTRY_POINTS[entry](model, images(), y)


ACCEPTED = {
    "int32": LABELS.int(),
    "uint8": LABELS.to(torch.uint8),
    "(N, 1)": LABELS.view(-1, 1),
    "(N, 1) int16": LABELS.view(-1, 1).short(),
    "one-hot float": torch.nn.functional.one_hot(LABELS, 2).float(),
}


@pytest.mark.parametrize("form", ACCEPTED)
def test_accepted_labels_give_the_canonical_result(model, form):
    x, y = images(), ACCEPTED[form]
    assert torch.equal(_attack(model, x, y), _attack(model, x, LABELS))
    split, canonical = Split(x, y, INFO), Split(x, LABELS, INFO)
    assert split.y.dtype == torch.long and torch.equal(split.y, LABELS)
    assert evaluate(model, split) == evaluate(model, canonical)
    pgd = make_attack("pgd", eps=8, steps=2)
    assert robust_metrics(model, split, pgd, keep_predictions=True)["pred"] == \
        robust_metrics(model, canonical, pgd, keep_predictions=True)["pred"]


def test_segmentation_masks(model):
    info = TaskInfo("ph2", "segmentation", ("background", "lesion"), 3, False, 16)
    x = torch.rand(2, 3, 16, 16)
    masks = (torch.rand(2, 16, 16) > 0.5).long()
    assert torch.equal(Split(x, masks.view(2, 1, 16, 16).to(torch.uint8), info).y, masks)
    with pytest.raises(ConfigError, match="mask values must lie in 0..1"):
        Split(x, masks * 3, info)
    with pytest.raises(ConfigError, match="integer masks"):
        Split(x, masks.float(), info)


@pytest.mark.parametrize("eps", [0.03, 8 / 255, 0.25, 0.4999])
def test_pixel_scale_eps_is_refused_with_both_readings(eps):
    with pytest.raises(ConfigError, match=f"means {eps:g}/255.*pass eps={eps * 255:.4g}"):
        make_attack("pgd", eps=eps)


def test_eps_units():
    assert make_attack("pgd", eps=0.5).eps_units == 0.5  # notebook 01 sweeps from 0.5/255
    pixel = make_attack("pgd", eps=0.03, eps_unit="pixel", step_size=0.002)
    assert pixel.eps_units == pytest.approx(7.65) and pixel.eps == pytest.approx(0.03)
    assert pixel.step_size == pytest.approx(0.002)  # the step shares ε's unit
    small_step = make_attack("pgd", eps=1, step_size=0.5)  # the survey's 0.5/255 step is valid
    assert small_step.step_size == pytest.approx(0.5 / 255)
    with pytest.raises(ConfigError, match="eps=300 means 300/255, more than the whole.*pass eps=8"):
        make_attack("pgd", eps=300)
    with pytest.raises(ConfigError, match="exceeds the \\[0, 1\\] range"):
        make_attack("pgd", eps=8, eps_unit="pixel")
    with pytest.raises(ConfigError, match="eps_unit must be one of"):
        make_attack("pgd", eps=8, eps_unit="percent")
    with pytest.raises(ConfigError, match="step_size must be positive"):
        make_attack("pgd", eps=8, step_size=0)
    assert make_attack("pgd_l2", eps=0.03).eps == pytest.approx(0.03)  # L2 stays on the pixel scale


@pytest.mark.parametrize("build", [
    lambda: make_defense("pgd_at", eps=0.03),
    lambda: plan(GRIDS["smoke"].replace(eval_eps=(0.03,))),
    lambda: plan(GRIDS["smoke"].replace(train_eps=8 / 255)),
])
def test_pixel_scale_eps_refused_by_defenses_and_grids(build):
    with pytest.raises(ConfigError, match="less than half a grey level"):
        build()


def test_non_split_inputs_raise(model):
    for call in (lambda: evaluate(model, (images(), LABELS)),
                 lambda: robust_metrics(model, [images(), LABELS]),
                 lambda: fit(model, images(), None, epochs=1, batch_size=2)):
        with pytest.raises(ConfigError, match="must be a survey_lib.data.Split"):
            call()


def test_validation_errors_are_survey_errors():
    with pytest.raises(SurveyError):
        validation.images("not a tensor")


@pytest.mark.parametrize("argv,match", [
    (["benchmark", "--profile", "smoke", "--eps", "0.03", "--dry-run"],
     "--eps 0.03 means 0.03/255.*pass --eps 7.65; for ε = 8/255 pass --eps 8"),
    (["benchmark", "--profile", "smoke", "--eps", "300", "--dry-run"], "more than the whole"),
    (["benchmark", "--profile", "smoke", "--train-eps", "0.03", "--dry-run"], "half a grey level"),
    (["benchmark", "--profile", "smoke", "--datasets", "mnist", "--dry-run"], "Unknown dataset"),
    (["benchmark", "--profile", "smoke", "--defenses", "adv", "--dry-run"], "Unknown defense 'adv'"),
    (["benchmark", "--profile", "nope"], "Unknown profile"),
])
def test_cli_bad_input_exits_2_with_one_paragraph(argv, match, capsys, data_env):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "\n" not in err.strip() and "Traceback" not in err
    import re

    assert re.search(match, err), err


def test_cli_names_are_case_insensitive(capsys, data_env):
    assert main(["benchmark", "--profile", "smoke", "--datasets", "BREASTMNIST", "--defenses",
                 "NAT", "--attacks", "Clean", "FGSM", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "breastmnist" in out and "BREASTMNIST" not in out and "fgsm" in out

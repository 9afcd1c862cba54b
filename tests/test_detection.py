import pytest
import torch

from survey_lib.attacks import make_attack
from survey_lib.config import get_profile
from survey_lib.data import Split, TaskInfo
from survey_lib.defenses import detection as D
from survey_lib.errors import ConfigError
from survey_lib.models import build_model
from survey_lib.train import load_dataset, train_baseline

PROFILE = get_profile("smoke").replace(epochs=8, width=16, train_subset=None)


def test_bad_inputs_raise_config_error():
    with pytest.raises(ConfigError, match="features"):
        D.features(build_model("unet", 3, 2, 4), torch.rand(1, 3, 32, 32))
    seg = TaskInfo("ph2", "segmentation", ("background", "lesion"), 3, False, 128)
    split = Split(torch.rand(4, 3, 128, 128), torch.zeros(4, 128, 128).long(), seg)
    with pytest.raises(ConfigError, match="segmentation"):
        D.MahalanobisDetector(build_model("smallcnn", 3, 2, 4)).fit(split)


def test_mahalanobis_matches_its_definition():
    info = TaskInfo("toy", "binary-class", ("a", "b"), 1, False, 28)
    model = build_model("smallcnn", 1, 2, 4).eval()
    split = Split(torch.rand(40, 1, 28, 28), torch.arange(40) % 2, info)
    det = D.MahalanobisDetector(model).fit(split)
    f = D.features(model, split.x[:3]).detach().double()
    dist = [[(v - det.means[c].double()) @ det.precision.double() @ (v - det.means[c].double())
             for c in range(2)] for v in f]
    expected = torch.tensor([min(d).item() for d in dist])
    assert torch.allclose(det(split.x[:3]).detach().double(), expected.double(), rtol=1e-3, atol=1e-3)


def test_detectors_and_adaptive_attack(data_env):
    model, record = train_baseline("breastmnist", PROFILE, progress=False)
    splits = load_dataset("breastmnist")
    test = splits["test"].subset(96, 0)
    pgd = make_attack("pgd", eps=8, steps=5)
    maha = D.MahalanobisDetector(model).fit(splits["train"])
    learned, det_record = D.train_learned_detector(model, record["config"], splits["train"],
                                                   splits["val"], pgd, epochs=3)
    assert det_record["best_score"] > 0.6  # validation AUROC
    before = [p.clone() for p in model.parameters()]
    attacks = {"fgsm": make_attack("fgsm", eps=8), "pgd": pgd,
               "adaptive": lambda det: D.DetectorAwarePGD(det, eps=8, steps=10, weight=1.0)}
    rows, curves = D.evaluate_detectors(model, {"mahalanobis": maha, "learned": learned}, test, attacks)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # classifier untouched
    table = {(r["detector"], r["attack"]): r for r in rows}
    for det in ("mahalanobis", "learned"):
        assert table[(det, "pgd")]["auroc"] > 0.6
        # the adaptive attacker still fools the classifier but hides from the detector
        assert table[(det, "adaptive")]["auroc"] < table[(det, "pgd")]["auroc"] - 0.1
        assert table[(det, "adaptive")]["acc"] < 0.5
        assert {"bacc", "shares", "collapsed"} <= set(table[(det, "pgd")])
        fpr, tpr = curves[(det, "pgd")]
        assert fpr[0] == 0 and tpr[-1] == 1

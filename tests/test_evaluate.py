"""Robust evaluation on a small CNN trained on real PneumoniaMNIST: robust accuracy always comes with
balanced accuracy, prediction shares and AUC; early stopping keeps exactly the images no PGD iterate
fooled; the cascade's stages match its attacks run one by one; the gradient-masking sanity checks pass
on an undefended model; demos pick images the model gets right with high confidence."""

import math

import pytest
import torch

from survey_lib.attacks import make_attack
from survey_lib.config import get_profile
from survey_lib.data import Split, TaskInfo, task_info
from survey_lib.errors import DataError
from survey_lib.evaluate import cascade_metrics, pick_examples, robust_metrics, sanity_checks
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


def test_early_stopping_keeps_exactly_the_never_fooled(breast):
    """Robust accuracy under PGD with early stopping is exactly the share of images that no iterate
    of PGD without it fooled: every forward pass on the whole split during that run (the iterates,
    then the evaluation of the last one) is recorded by a hook."""
    model, x, y = breast
    test = Split(x, y, task_info("breastmnist"))
    for kw in ({"eps": 4, "steps": 10, "step_size": 4}, {"eps": 8, "steps": 10, "step_size": 8}):
        seen = []
        hook = model.register_forward_hook(
            lambda m, i, out, seen=seen: seen.append(out.argmax(1) == y) if len(out) == len(y) else None)
        try:
            full = robust_metrics(model, test, make_attack("pgd", **kw))
        finally:
            hook.remove()
        assert len(seen) == kw["steps"] + 1
        never_fooled = torch.stack(seen).all(0).float().mean().item()
        early = robust_metrics(model, test, make_attack("pgd", early_stop=True, **kw))
        assert early["acc"] == pytest.approx(never_fooled, abs=1e-6), kw
        assert early["acc"] < full["acc"], kw  # images fooled on the way, not at the end


def test_cascade_stages_summed_over_batches(pneumonia, cascade_by_hand):
    """cascade_metrics in batches of 100: each stage's robust accuracy is the sum over the batches of
    the counts of the cascade's attacks called one by one, over the number of images."""
    model, test = pneumonia
    m = cascade_metrics(model, test, eps=4, steps=30, square_queries=50, batch_size=100)
    assert list(m["stages"]) == ["clean", "apgd_ce", "square"]
    x, y = test.x, test.y.view(-1)
    counts = [cascade_by_hand(model, x[i:i + 100], y[i:i + 100],
                              [make_attack("apgd_ce", eps=4, steps=30),
                               make_attack("square", eps=4, steps=50)])[0] for i in (0, 100)]
    expected = [(a + b) / len(test) for a, b in zip(*counts)]
    assert list(m["stages"].values()) == pytest.approx(expected, abs=1e-4)  # rounded to 4 digits
    assert expected[1] < expected[0]
    assert m["acc"] == pytest.approx(expected[-1], abs=1e-6)
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


class _Logits(torch.nn.Module):
    """A 'model' whose logits are stored in the image itself (pixel [0, 0, :k]), so a test sets
    exactly which images are right and how confident the model is."""

    def __init__(self, k: int):
        super().__init__()
        self.k, self.dummy = k, torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x[:, 0, 0, :self.k] * 10 + self.dummy


def _split(logits, labels, task="multi-class"):
    n, k = logits.shape
    x = torch.zeros(n, 1, 4, 4)
    x[:, 0, 0, :k] = logits
    info = TaskInfo("toy", task, tuple(f"c{i}" for i in range(k)), 1, False, 4)
    return Split(x, torch.as_tensor(labels), info)


def test_pick_examples_draws_among_confident_correct_images():
    gen = torch.Generator().manual_seed(0)
    logits = torch.rand(200, 3, generator=gen) / 10
    labels = torch.randint(0, 3, (200,), generator=gen)
    split = _split(logits, labels)
    p = torch.softmax(logits * 10, 1)
    correct = p.argmax(1) == labels
    p_true = p[torch.arange(200), labels]
    threshold = p_true[correct].sort(descending=True).values[round(0.5 * int(correct.sum())) - 1]
    model = _Logits(3)
    picks = {i for seed in range(30) for i in pick_examples(model, split, n=2, seed=seed).indices}
    assert len(picks) > 10  # the seed changes the draw
    for i in picks:
        assert correct[i] and p_true[i] >= threshold  # right, and in the top half by p(true)
    first = pick_examples(model, split, n=2, seed=3)
    assert first == pick_examples(model, split, n=2, seed=3)  # seeded
    assert first.scores == [round(float(p_true[i]), 4) for i in first.indices]
    assert "seed 3" in first.rule and f" {round(0.5 * int(correct.sum()))} of 200" in first.rule


def test_pick_examples_binary_and_segmentation():
    # binary: MedMNIST's rule (p(class 1) > 0.5); only images 1 and 3 are right
    split = _split(torch.tensor([[0.2, 0.0], [0.0, 0.3], [0.1, 0.0], [0.0, 0.05]]), [1, 1, 1, 1],
                   "binary-class")
    assert pick_examples(_Logits(2), split, top=1.0, n=2).indices == [1, 3]
    assert pick_examples(_Logits(2), split, top=0.5).indices == [1]  # the more confident one
    with pytest.raises(DataError, match="Only 2 of the 4 toy images qualify"):
        pick_examples(_Logits(2), split, n=3, top=1.0)

    class Seg(_Logits):  # predicts the lesion where the image is bright
        def forward(self, x):
            return torch.cat([0.5 - x[:, :1], x[:, :1] - 0.5], 1) + self.dummy

    masks = torch.zeros(4, 8, 8, dtype=torch.long)
    masks[:, 2:6, 2:6] = 1
    x = torch.zeros(4, 1, 8, 8)
    x[0, 0, 2:6, 2:6] = 1  # perfect
    x[1, 0, 2:4, 2:6] = 1  # half the lesion
    x[3, 0, 2:6, 2:5] = 1  # three quarters
    seg = Split(x, masks, TaskInfo("toyseg", "segmentation", ("bg", "lesion"), 1, False, 8))
    assert pick_examples(Seg(0), seg, n=2).indices == [0, 3]  # the two best segmented

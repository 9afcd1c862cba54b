import json

import pytest
import torch
import torch.nn.functional as F

from survey_lib import train as T
from survey_lib.data import Split, TaskInfo, load_splits
from survey_lib.models import build_model


def _small(real_root):
    s = load_splits("breastmnist", root=real_root)
    return s["train"].subset(160), s["val"]


def _fit(train, val, epochs=2, seed=0, **kw):
    T.seed_everything(seed)  # the initial weights depend on the seed too
    model = build_model("smallcnn", 1, 2, width=8)
    out = T.fit(model, train, val, epochs=epochs, batch_size=32, progress=False, seed=seed, **kw)
    return model, out


def test_same_seed_same_metrics(real_root):
    train, val = _small(real_root)
    runs = [_fit(train, val, seed=3) for _ in range(2)]
    assert [h["val_score"] for h in runs[0][1]["history"]] == \
           [h["val_score"] for h in runs[1][1]["history"]]
    for a, b in zip(runs[0][0].state_dict().values(), runs[1][0].state_dict().values()):
        assert torch.equal(a, b)


def _stop_after(n):
    """A select_fn that raises KeyboardInterrupt (Ctrl-C) in the validation of epoch n + 1."""
    calls = []

    def select(model, val):
        calls.append(1)
        if len(calls) > n:
            raise KeyboardInterrupt
        return T.default_select(model, val)

    return select


def test_resume_after_interrupt_matches_uninterrupted(real_root, tmp_path):
    train, val = _small(real_root)
    full, full_out = _fit(train, val, epochs=3, seed=1)
    ckpt = tmp_path / "last.pt"
    with pytest.raises(KeyboardInterrupt):
        _fit(train, val, epochs=3, seed=1, checkpoint=ckpt, select_fn=_stop_after(2))
    assert torch.load(ckpt, weights_only=False)["state"]["epoch"] == 2
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write: no half-written file left behind
    resumed, out = _fit(train, val, epochs=3, seed=1, checkpoint=ckpt)
    assert [h["val_score"] for h in out["history"]] == [h["val_score"] for h in full_out["history"]]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_training_learns_breastmnist(real_root):
    train, val = _small(real_root)
    model, out = _fit(train, val, epochs=4, seed=0)
    assert out["best_score"] > 0.65  # val AUC after a few epochs on real data
    assert not model.training


def test_optional_torch_compile_trains_the_same_model(real_root, monkeypatch):
    train, val = _small(real_root)
    plain, out = _fit(train, val, epochs=1)
    from torch._dynamo.utils import counters

    counters.clear()
    monkeypatch.setenv("SURVEY_COMPILE", "eager")  # dynamo traces the training steps
    compiled, out_c = _fit(train, val, epochs=1)
    assert counters["stats"]["calls_captured"] > 0  # the steps did run through torch.compile
    for (name, a), b in zip(plain.state_dict().items(), compiled.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name
    assert out_c["best_score"] == pytest.approx(out["best_score"], abs=1e-4)
    assert not any(k.startswith("_orig_mod") for k in compiled.state_dict())


def test_cached_run_reuses_the_model(data_env):
    model, record = T.train_baseline("breastmnist", "smoke", progress=False)
    calls = []
    again, record2 = T.cached_run(record["config"], lambda: build_model("smallcnn", 1, 2, 8),
                                  lambda m, p: calls.append(p) or {})
    assert not calls and record2 == json.loads(json.dumps(record))
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert {"acc", "auc", "bacc", "shares", "collapsed"} <= set(record["test"])


def _epoch_loss(model, split, batch_size=8):
    """The loss ``fit`` records for one epoch at learning rate 0 (the model never moves, no
    augmentation): the mean over the epoch of the loss it back-propagates."""
    out = T.fit(model, split, split, epochs=1, batch_size=batch_size, lr=0.0,
                augment_data=False, progress=False)
    return out["history"][0]["loss"]


def test_fit_uses_the_loss_of_the_task():
    """By value, against the losses written out here: cross-entropy (single-label),
    BCE-with-logits (multi-label), cross-entropy + soft Dice of the lesion channel (segmentation).
    The models have no BatchNorm, so train and eval mode give the same outputs."""
    torch.manual_seed(0)
    x = torch.rand(16, 1, 4, 4)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    with torch.no_grad():
        z = model(x)

    y = torch.randint(0, 3, (16,))
    info = TaskInfo("dermamnist", "multi-class", tuple("abc"), 1, False, 4)
    ce = -torch.log_softmax(z, 1).gather(1, y.view(-1, 1)).mean()
    assert _epoch_loss(model, Split(x, y, info)) == pytest.approx(ce.item(), rel=1e-5)

    y = torch.randint(0, 2, (16, 3)).float()
    info = TaskInfo("chestmnist", "multi-label, binary-class", tuple("abc"), 1, False, 4)
    bce = -(y * F.logsigmoid(z) + (1 - y) * F.logsigmoid(-z)).mean()
    soft_ce = -(y * torch.log_softmax(z, 1)).sum(1).mean()  # what CE would give on these targets
    assert abs(bce - soft_ce) > 0.1
    assert _epoch_loss(model, Split(x, y, info)) == pytest.approx(bce.item(), rel=1e-5)

    x = torch.rand(8, 3, 16, 16)
    masks = torch.zeros(8, 16, 16, dtype=torch.long)
    masks[:, 4:12, 3:10] = 1
    seg = torch.nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        z = seg(x)
    pixel_ce = -torch.log_softmax(z, 1).gather(1, masks[:, None]).mean()
    p = torch.softmax(z, 1)[:, 1]
    dice = (2 * (p * masks).sum((1, 2)) + 1) / (p.sum((1, 2)) + masks.sum((1, 2)) + 1)
    info = TaskInfo("ph2", "segmentation", ("background", "lesion"), 3, False, 16)
    assert 1 - dice.mean() > 0.1  # the Dice term is not negligible
    assert _epoch_loss(seg, Split(x, masks, info), batch_size=4) == \
        pytest.approx((pixel_ce + 1 - dice.mean()).item(), rel=1e-5)


def test_augment_moves_masks_with_images():
    """A mask drawn from its image (image = mask in every channel) still coincides with the
    augmented image: wherever bilinear resampling leaves the image clearly 0 or 1 (< 0.24 or > 0.76;
    then the nearest source pixel has the same value), the augmented mask equals it, pixel by pixel."""
    torch.manual_seed(0)
    n = 32
    masks = torch.zeros(n, 40, 40, dtype=torch.long)
    for i in range(n):  # an L-shaped lesion, not symmetric under a flip, away from the borders
        masks[i, 10:30, 12:17 + i % 4] = 1
        masks[i, 25:30, 12:26 + i % 3] = 1
    x = masks[:, None].float().expand(n, 3, 40, 40).contiguous()
    xa, ma = T.augment(x, masks)
    assert set(ma.unique().tolist()) <= {0, 1} and 0 <= xa.min() and xa.max() <= 1
    assert torch.equal(xa[:, 0], xa[:, 2])
    image = xa[:, 0]
    decided = (image < 0.24) | (image > 0.76)
    assert decided.float().mean() > 0.95
    assert torch.equal(ma[decided], (image[decided] > 0.5).long())
    moved = (ma != masks).flatten(1).sum(1)
    assert (moved > 40).float().mean() > 0.5  # most images were flipped or rotated noticeably

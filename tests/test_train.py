import json

import pytest
import torch

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


def test_multilabel_and_segmentation_losses():
    info = TaskInfo("chestmnist", "multi-label, binary-class", tuple("abc"), 1, False, 28)
    split = Split(torch.rand(16, 1, 28, 28), torch.randint(0, 2, (16, 3)).float(), info)
    model = build_model("smallcnn", 1, 3, width=4)
    out = T.fit(model, split, split, epochs=1, batch_size=8, progress=False)
    assert len(out["history"]) == 1
    seg = Split(torch.rand(4, 3, 32, 32), torch.randint(0, 2, (4, 32, 32)),
                TaskInfo("ph2", "segmentation", ("bg", "lesion"), 3, False, 32))
    out = T.fit(build_model("unet", 3, 2, width=4), seg, seg, epochs=1, batch_size=2,
                progress=False)
    assert 0 <= out["best_score"] <= 1  # Dice


def test_augment_keeps_range_and_masks_binary():
    x = torch.rand(8, 3, 32, 32)
    m = torch.randint(0, 2, (8, 32, 32))
    xa, ma = T.augment(x, m)
    assert xa.shape == x.shape and 0 <= xa.min() and xa.max() <= 1
    assert set(ma.unique().tolist()) <= {0, 1}

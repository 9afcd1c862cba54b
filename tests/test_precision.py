"""Attacks and evaluation run in fp32 unless bf16 is asked for (issue 15: a bf16 input gradient can
weaken an attack). Checked on the CPU by recording, inside the model's forward, whether autocast
is on: the attack path must leave it off by default."""

import pytest
import torch
from torch import nn

from survey_lib.attacks import make_attack
from survey_lib.data import Split, TaskInfo
from survey_lib.errors import ConfigError
from survey_lib.evaluate import robust_metrics
from survey_lib.train import PRECISION_ENV


class Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear, self.seen = nn.Linear(16, 2), []

    def forward(self, x):
        self.seen.append(torch.is_autocast_enabled(x.device.type))
        return self.linear(x.flatten(1))


SPLIT = Split(torch.rand(8, 1, 4, 4), torch.tensor([0, 1] * 4),
              TaskInfo("t", "binary-class", ("a", "b"), 1, False, 4))


def test_attacks_run_in_fp32_unless_asked(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    model = Recorder()
    robust_metrics(model, SPLIT, make_attack("pgd", eps=8, steps=2))
    assert model.seen and not any(model.seen)
    model.seen.clear()
    robust_metrics(model, SPLIT, make_attack("pgd", eps=8, steps=2), precision="bf16")
    assert model.seen and all(model.seen)
    model.seen.clear()
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    robust_metrics(model, SPLIT, make_attack("fgsm", eps=8))
    assert all(model.seen)
    monkeypatch.setenv(PRECISION_ENV, "fp16")
    with pytest.raises(ConfigError, match="'fp32' \\(the default\\) or 'bf16'"):
        robust_metrics(model, SPLIT)

import pytest

from survey_lib.config import PROFILE_ENV, PROFILES, get_profile
from survey_lib.errors import ConfigError


def test_precedence(monkeypatch):
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    assert get_profile().name == "cpu"
    monkeypatch.setenv(PROFILE_ENV, "smoke")
    assert get_profile().name == "smoke"
    assert get_profile("paper").name == "paper"  # explicit beats the env var


def test_paper_profile_is_the_survey_recipe():
    p = PROFILES["paper"]
    assert (p.epochs, p.optimizer, p.schedule, p.batch_size, p.model) == (
        100, "sgd", "onecycle", 32, "resnet18")
    assert p.weight_decay > 0 and p.augment


def test_unknown_profile(monkeypatch):
    with pytest.raises(ConfigError, match="Valid profiles: smoke, cpu, paper"):
        get_profile("fast")
    monkeypatch.setenv(PROFILE_ENV, "laptop")
    with pytest.raises(ConfigError, match=r"'laptop' \(from \$SURVEY_PROFILE\)"):
        get_profile()

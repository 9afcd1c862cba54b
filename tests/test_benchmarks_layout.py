"""benchmarks/: one folder per study, each with a README, all listed in the index; the studies'
scripts still import against the current package."""

import runpy
import sys

import pytest

from survey_lib.paths import BENCHMARKS

STUDIES = sorted(p for p in BENCHMARKS.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
SCRIPTS = sorted(BENCHMARKS.glob("*/*.py"))


def test_every_study_has_a_readme_and_is_indexed():
    index = (BENCHMARKS / "README.md").read_text()
    assert not [p for p in BENCHMARKS.iterdir() if p.is_file() and p.name != "README.md"], \
        "results belong in a study folder"
    for study in STUDIES:
        assert (study / "README.md").is_file(), f"{study.name}/ has no README.md"
        assert f"]({study.name}/README.md)" in index, f"{study.name}/ missing from benchmarks/README.md"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_imports(script, monkeypatch):
    """Running a study's script with --help imports everything it uses from survey_lib."""
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    assert done.value.code == 0

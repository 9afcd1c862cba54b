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


def test_make_main_record_meets_its_bar_and_its_text_matches_it():
    """The quiet `make main` run: ≤ 75 min, one uninterrupted cpu-grid invocation of 420 cells, and
    the README's numbers are the run log's and the thread comparison's."""
    import pandas as pd

    from survey_lib.benchmark import read_run_log
    from survey_lib.benchmark.runner import grid_wall_seconds

    folder = BENCHMARKS / "make_main"
    runs = read_run_log(folder)
    assert len(runs) == 1 and not runs[0].get("killed") and not runs[0]["interrupted"]
    assert runs[0]["cells_computed"] == runs[0]["cells_total"] == 420
    wall = grid_wall_seconds(runs)
    assert wall <= 75 * 60
    text = (folder / "README.md").read_text()
    assert f"{wall:.1f} s ({wall / 60:.1f} min) for {runs[0]['cells_computed']} cells and " \
           f"{runs[0]['models_trained']} trained models" in text
    assert f"{runs[0]['torch_threads']} torch threads" in text
    threads = pd.read_csv(folder / "thread_comparison.csv")
    low, high = threads.loc[threads.max_abs_diff.idxmin()], threads.loc[threads.max_abs_diff.idxmax()]
    assert f"at most {low.max_abs_diff:.4f}" in text and f"to {high.max_abs_diff:.4f}" in text
    assert f"{threads.mean_abs_diff.min():.4f}–{threads.mean_abs_diff.max():.4f}" in text
    assert f"all {len(threads)} models" in text and threads.same_model_key.all()

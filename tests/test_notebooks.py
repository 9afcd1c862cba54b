"""Notebook hygiene and execution: every notebook is a committed jupytext pair (ipynb + py:percent)
kept in sync, with outputs stripped and a papermill parameters cell; each runs top to bottom in the
smoke profile. Teaching material: each opens with the same front matter (objectives, prerequisites,
profile in class, measured run times) that the start page repeats; demos pick their images."""

import json
import re
from pathlib import Path

import jupytext
import pandas as pd
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def _cells(nb):
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def test_there_are_notebooks():
    assert SOURCES, "no notebooks found"


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_pair_exists_and_is_in_sync(py):
    ipynb = py.with_suffix(".ipynb")
    assert ipynb.exists(), f"{py.name} has no paired {ipynb.name}: run jupytext --sync {py}"
    assert _cells(jupytext.read(py)) == _cells(jupytext.read(ipynb)), (
        f"{py.name} and {ipynb.name} differ: run `jupytext --sync {py}`")


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_outputs_stripped_and_parameters_cell(py):
    nb = json.loads(py.with_suffix(".ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, \
                f"{py.with_suffix('.ipynb').name} has outputs: strip them before committing"
    params = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1 and "PROFILE = None" in "".join(params[0]["source"])
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_runs_in_smoke_profile(py, data_env, tmp_path, run_smoke):
    outputs = run_smoke(py.with_suffix(".ipynb"), NOTEBOOKS, tmp_path / py.with_suffix(".ipynb").name)
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors


# ----------------------------------------------------------------------------- teaching material
FRONT_MATTER = ("Objectives", "Prerequisites", "In class", "Run time")
TIMES = NOTEBOOKS.parent / "benchmarks" / "notebook_times" / "times.csv"
# a demo that takes test images by position (`.x[:1]`, `.y[0]`) may show one the model already gets
# wrong, where every attack "succeeds" with a zero perturbation: demos use pick_examples instead
POSITIONAL = re.compile(r"\.[xy]\[\s*\d*\s*:\s*\d+\s*\]|\.[xy]\[\s*\d+\s*\]")
DEMOS = ("01", "03", "04", "05", "06")  # notebooks that draw single test images under attack


def _front_matter(nb) -> dict:
    """The rows of the table that opens the notebook's first cell: ``{label: text}``."""
    return dict(re.findall(r"^\| \*\*(.+?)\*\* \| (.+) \|$", nb.cells[0].source, re.M))


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_front_matter_and_start_page(py):
    """Every notebook opens with the same front matter; its run times are the measured ones; the
    start page says the same about it."""
    front = _front_matter(jupytext.read(py))
    assert tuple(front) == FRONT_MATTER, f"{py.name}: front matter rows {list(front)}"
    times = pd.read_csv(TIMES)
    for profile in ("smoke", "cpu"):
        measured = times[(times.notebook == py.stem) & (times.profile == profile)].minutes
        assert len(measured) == 1 or profile != "smoke", f"no smoke run time of {py.stem} in {TIMES}"
        stated = f"`{profile}` {measured.item():g} min" if len(measured) else f"`{profile}` not measured"
        assert stated in front["Run time"], front["Run time"]
    start_page = (NOTEBOOKS / "README.md").read_text()
    for label, text in front.items():
        assert text in start_page, f"notebooks/README.md lacks {py.stem}'s {label}: {text}"


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_demo_images_are_picked_not_taken_by_position(py):
    code = "\n".join(c.source for c in jupytext.read(py).cells if c.cell_type == "code")
    assert not POSITIONAL.findall(code), (
        f"{py.name} takes test images by position ({POSITIONAL.findall(code)}): draw demo images "
        "with survey_lib.evaluate.pick_examples (correctly classified, confident, seeded)")
    if py.name[:2] in DEMOS:
        assert "pick_examples(" in code

"""Notebook hygiene and execution: every notebook is a committed jupytext pair (ipynb + py:percent)
kept in sync, with outputs stripped and a papermill parameters cell; each runs top to bottom in the
smoke profile."""

import json
from pathlib import Path

import jupytext
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

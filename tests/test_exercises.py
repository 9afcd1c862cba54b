"""Course-assignment copies of the notebooks: build, stubs, grading, and bad input to the grader."""

import ast
import re

import jupytext
import nbformat
import pytest

from survey_lib import exercises
from survey_lib.__main__ import main
from survey_lib.exercises import EXERCISES, NOTEBOOKS, TASKS, grade_notebook

BOOKS = sorted({t.notebook for t in TASKS.values()})


def _statuses(path, **kw):
    results, header = grade_notebook(path, **kw)
    assert results is not None, header
    return {r.task: r.status for r in results}, results


def _copy(tmp_path, notebook="01_whitebox_attacks"):
    exercises.build(tmp_path)
    return tmp_path / f"{notebook}.ipynb"


def _edit(path, fn):
    """Apply ``fn(nb)`` to the notebook at ``path`` and save it."""
    nb = nbformat.read(path, as_version=4)
    fn(nb)
    nbformat.write(nb, path)


def _task_cell(nb, task_id):
    return next(c for c in nb.cells if c.metadata.get("task") == task_id)


def test_registry_covers_the_issue():
    assert len(TASKS) >= 9
    assert {t.notebook[:2] for t in TASKS.values()} >= {"01", "02", "05", "06"}
    for t in TASKS.values():
        assert t.id.startswith(t.notebook[:2] + "."), t.id
        assert len(t.statement) > 80 and t.function in t.statement, t.id


def test_committed_copies_are_up_to_date():
    assert exercises.stale() == [], "run `python -m survey_lib exercises build` and commit"
    assert main(["exercises", "build", "--check"]) == 0


def test_check_flags_a_stale_copy(tmp_path, capsys):
    exercises.build(tmp_path)
    path = tmp_path / "02_blackbox_attacks.ipynb"
    path.write_text(path.read_text().replace("square_candidate", "renamed"))
    (tmp_path / "README.md").unlink()
    assert sorted(exercises.stale(tmp_path)) == ["02_blackbox_attacks.ipynb", "README.md"]
    assert main(["exercises", "build", "--out", str(tmp_path), "--check"]) == 1
    assert "02_blackbox_attacks.ipynb" in capsys.readouterr().out


def test_build_is_deterministic(tmp_path):
    exercises.build(tmp_path / "a")
    exercises.build(tmp_path / "b")
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


@pytest.mark.parametrize("notebook", BOOKS)
def test_stubs_keep_signature_and_docstring(notebook):
    ref = {t.function: t for t in TASKS.values() if t.notebook == notebook}
    solutions = {n.name: n for c in jupytext.read(NOTEBOOKS / f"{notebook}.py").cells
                 if "solution" in c.metadata.get("tags", []) for n in ast.parse(c.source).body
                 if isinstance(n, ast.FunctionDef)}
    copy = nbformat.read(EXERCISES / f"{notebook}.ipynb", as_version=4)
    nbformat.validate(copy)
    assert all(c.get("outputs", []) == [] for c in copy.cells)
    for name, task in ref.items():
        cell = _task_cell(copy, task.id)
        assert "exercise" in cell.metadata["tags"]
        fn = ast.parse(cell.source).body[0]
        assert fn.name == name and ast.dump(fn.args) == ast.dump(solutions[name].args)
        assert ast.get_docstring(fn) == ast.get_docstring(solutions[name])
        assert isinstance(fn.body[-1], ast.Raise) and len(fn.body) == 2
        assert task.id in cell.source and "NotImplementedError" in cell.source


@pytest.mark.parametrize("notebook", BOOKS)
def test_relative_paths_of_the_copies_point_at_the_repository(notebook):
    copy = nbformat.read(EXERCISES / f"{notebook}.ipynb", as_version=4)
    for cell in copy.cells:
        for rel in re.findall(r'Path\("(\.\.[^"]*)"\)', cell.source if cell.cell_type == "code" else ""):
            assert (EXERCISES / rel).parent.is_dir(), rel


@pytest.mark.parametrize("notebook", BOOKS)
def test_reference_solutions_score_full_marks(notebook):
    for path in (NOTEBOOKS / f"{notebook}.ipynb", NOTEBOOKS / f"{notebook}.py"):
        statuses, results = _statuses(path)
        assert statuses == {t.id: "PASS" for t in TASKS.values() if t.notebook == notebook}, results


@pytest.mark.parametrize("notebook", BOOKS)
def test_untouched_stubs_score_zero(notebook):
    statuses, results = _statuses(EXERCISES / f"{notebook}.ipynb")
    assert set(statuses.values()) == {"NOT IMPLEMENTED"}, results
    assert all(r.task in r.message for r in results)


def test_student_copy_scores_zero_then_full_after_pasting_the_solutions(tmp_path, capsys):
    path = _copy(tmp_path)
    assert main(["exercises", "grade", str(path)]) == 1
    assert "score 0/3" in capsys.readouterr().out
    solutions = [c.source for c in jupytext.read(NOTEBOOKS / "01_whitebox_attacks.py").cells
                 if "solution" in c.metadata.get("tags", [])]
    assert len(solutions) == 3

    def paste(nb):
        cells = [c for c in nb.cells if "exercise" in c.metadata.get("tags", [])]
        for cell, source in zip(cells, solutions, strict=True):
            cell.source = source

    _edit(path, paste)
    assert main(["exercises", "grade", str(path)]) == 0
    out = capsys.readouterr().out
    assert "score 3/3" in out and out.count("PASS") == 3


def test_a_wrong_answer_fails_with_the_difference(tmp_path):
    path = _copy(tmp_path)
    _edit(path, lambda nb: setattr(_task_cell(nb, "01.fgsm"), "source", (
        "def fgsm(model, x, y, eps):\n"
        "    x = x.clone().requires_grad_(True)\n"
        "    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)\n"
        "    return (x + eps * g.sign()).clamp(0, 1).detach()  # forgot /255\n")))
    statuses, results = _statuses(path)
    assert statuses["01.fgsm"] == "FAIL"
    assert "max |Δ|" in results[0].message and "/255" in results[0].message


def test_bad_input_not_an_exercise_notebook(tmp_path, capsys):
    assert grade_notebook(NOTEBOOKS / "00_data_and_baselines.ipynb")[0] is None
    assert main(["exercises", "grade", str(NOTEBOOKS / "00_data_and_baselines.ipynb")]) == 2
    assert "not an exercise notebook" in capsys.readouterr().out
    garbage = tmp_path / "broken.ipynb"
    garbage.write_text('{"cells": [')
    assert main(["exercises", "grade", str(garbage)]) == 2
    assert main(["exercises", "grade", str(tmp_path / "missing.ipynb")]) == 2
    assert "not a readable notebook" in capsys.readouterr().out


def test_bad_input_deleted_cells(tmp_path, capsys):
    path = _copy(tmp_path)
    _edit(path, lambda nb: nb.cells.remove(_task_cell(nb, "01.pgd")))
    statuses, results = _statuses(path)
    assert statuses == {"01.fgsm": "NOT IMPLEMENTED", "01.pgd": "MISSING",
                        "01.l2_projection": "NOT IMPLEMENTED"}
    assert "deleted" in results[1].message
    _edit(path, lambda nb: setattr(nb, "cells", []))  # every cell gone: the metadata still says 01
    statuses, _ = _statuses(path)
    assert set(statuses.values()) == {"MISSING"} and len(statuses) == 3
    assert main(["exercises", "grade", str(path)]) == 1
    assert "score 0/3" in capsys.readouterr().out


def test_bad_input_functions_and_cells_that_raise(tmp_path):
    path = _copy(tmp_path)

    def break_them(nb):
        _task_cell(nb, "01.fgsm").source = "def fgsm(model, x, y, eps):\n    return 1 / 0\n"
        _task_cell(nb, "01.pgd").source = "def pgd(model, x, y, eps, steps, step_size, noise:\n"
        _task_cell(nb, "01.l2_projection").source = ("undefined_name()\n"
                                                     "def project_l2(x_adv, x, eps):\n    pass\n")

    _edit(path, break_them)
    statuses, results = _statuses(path)
    assert set(statuses.values()) == {"ERROR"}
    fgsm, pgd, proj = (r.message for r in results)
    assert "ZeroDivisionError" in fgsm and "line 2 of the 01.fgsm cell" in fgsm
    assert "SyntaxError" in pgd
    assert "NameError" in proj and "undefined_name" in proj


def test_bad_input_a_function_that_exits(tmp_path):
    path = _copy(tmp_path, "02_blackbox_attacks")
    _edit(path, lambda nb: setattr(_task_cell(nb, "02.square_update"), "source",
                                   "import sys\ndef square_candidate(*args):\n    sys.exit(3)\n"))
    statuses, results = _statuses(path)
    assert statuses == {"02.square_update": "ERROR"} and "SystemExit: 3" in results[0].message


def test_bad_input_malformed_notebook_json(tmp_path):
    for i, text in enumerate(['[1, 2]', '{"cells": 3, "metadata": {}, "nbformat": 4}',
                              '{"cells": [{"cell_type": "code"}], "nbformat": 4, "nbformat_minor": 5}']):
        path = tmp_path / f"bad{i}.ipynb"
        path.write_text(text)
        results, message = grade_notebook(path)
        assert results is None and "not a readable notebook" in message


def test_a_hanging_function_times_out(tmp_path):
    path = _copy(tmp_path, "06_purification")
    _edit(path, lambda nb: setattr(_task_cell(nb, "06.bpda"), "source",
                                   "def bpda(model, purify, x):\n    while True:\n        pass\n"))
    statuses, results = _statuses(path, timeout=1)
    assert statuses == {"06.bpda": "ERROR"} and "TimeoutError" in results[0].message


def test_check_never_raises_and_prints_the_verdict(capsys):
    def stub(x_adv, x, eps):
        raise NotImplementedError("Task 01.l2_projection: write me")

    exercises.check("01.l2_projection", stub)
    exercises.check("01.l2_projection", lambda x_adv, x, eps: x_adv)
    exercises.check("01.l2_projection", lambda x_adv, x, eps: (x + (x_adv - x).renorm(2, 0, eps)).clamp(0, 1))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("✗ 01.l2_projection") and "not implemented yet — Task" in lines[0]
    assert lines[1].startswith("✗ 01.l2_projection") and "max |Δ|" in lines[1]
    assert lines[2].startswith("✓ 01.l2_projection")


@pytest.mark.parametrize("notebook", BOOKS)
def test_student_copy_runs_top_to_bottom(notebook, tmp_path, data_env, run_smoke):
    """Acceptance: each student copy executes (smoke profile, from notebooks/exercises/ as a student
    would run it) and its check cells report the stubs instead of failing."""
    outputs = run_smoke(EXERCISES / f"{notebook}.ipynb", EXERCISES, tmp_path / "out.ipynb")
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join("".join(o.get("text", "")) for o in outputs if o.get("name") == "stdout")
    tasks = [t for t in TASKS if TASKS[t].notebook == notebook]
    for task in tasks:
        assert f"✗ {task} ({TASKS[task].title}): not implemented yet — Task {task}" in text

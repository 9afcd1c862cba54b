"""Course-assignment copies of the notebooks: build, stubs, nbgrader export, how a file is graded
(as its check cells see it top to bottom), and bad input to the grader. The recorded right and wrong
answers are in test_exercise_answers.py."""

import ast
import re

import jupytext
import nbformat
import pytest
from exercise_answers import RIGHT, WRONG

from survey_lib import exercises
from survey_lib.__main__ import main
from survey_lib.exercises import EXERCISES, TASKS, grade_notebook, verdict
from survey_lib.paths import NOTEBOOKS

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
def test_reference_solutions_score_full_marks(notebook):
    for path in (NOTEBOOKS / f"{notebook}.ipynb", NOTEBOOKS / f"{notebook}.py"):
        statuses, results = _statuses(path)
        assert statuses == {t.id: "PASS" for t in TASKS.values() if t.notebook == notebook}, results


@pytest.mark.parametrize("notebook", BOOKS)
def test_untouched_stubs_score_zero(notebook):
    statuses, results = _statuses(EXERCISES / f"{notebook}.ipynb")
    assert set(statuses.values()) == {"NOT IMPLEMENTED"}, results
    assert all(r.task in r.message for r in results)


def _solutions(notebook="01_whitebox_attacks"):
    return [c.source for c in jupytext.read(NOTEBOOKS / f"{notebook}.py").cells
            if "solution" in c.metadata.get("tags", [])]


def test_solutions_written_below_the_untouched_stubs_score_full_marks(tmp_path, capsys):
    """The issue's case: each solution in a new cell under its untouched stub, above its check cell."""
    path = _copy(tmp_path)
    assert main(["exercises", "grade", str(path)]) == 1
    assert "score 0/3 tasks, 0/4 points" in capsys.readouterr().out

    def paste_below(nb):
        stubs = [c for c in nb.cells if "exercise" in c.metadata.get("tags", [])]
        for stub, source in zip(stubs, _solutions(), strict=True):
            nb.cells.insert(nb.cells.index(stub) + 1, nbformat.v4.new_code_cell(source))

    _edit(path, paste_below)
    assert main(["exercises", "grade", str(path)]) == 0
    out = capsys.readouterr().out
    assert "score 3/3 tasks, 4/4 points" in out and out.count("PASS") == 3


def test_a_definition_below_its_check_cell_is_not_graded(tmp_path):
    """Run top to bottom, the check cell sees the stub: so does the grader, and it says why."""
    path = _copy(tmp_path)
    _edit(path, lambda nb: nb.cells.append(nbformat.v4.new_code_cell(_solutions()[0])))
    statuses, results = _statuses(path)
    assert statuses["01.fgsm"] == "NOT IMPLEMENTED"
    assert "below the check cell" in results[0].message and "move it above" in results[0].message


def test_the_check_cell_decides_which_function_is_graded(tmp_path):
    path = _copy(tmp_path)

    def rename(nb):
        check = next(c for c in nb.cells if 'check("01.fgsm", fgsm)' in c.source)
        check.source = check.source.replace("fgsm)", "my_fgsm)")
        nb.cells.insert(nb.cells.index(check), nbformat.v4.new_code_cell(
            _solutions()[0].replace("def fgsm(", "def my_fgsm(")))

    _edit(path, rename)
    statuses, _ = _statuses(path)
    assert statuses["01.fgsm"] == "PASS"  # while fgsm() is still the untouched stub
    _edit(path, lambda nb: nb.cells.remove(next(c for c in nb.cells if "def my_fgsm(" in c.source)))
    statuses, results = _statuses(path)
    assert statuses["01.fgsm"] == "MISSING" and "passes my_fgsm, which no cell above it" in results[0].message


def test_the_last_check_cell_of_a_task_counts(tmp_path):
    """A check cell copied below a new definition: top to bottom, the first prints ✗ (stub), the
    last ✓; the grader reports the last."""
    path = _copy(tmp_path)

    def recheck(nb):
        check = next(c for c in nb.cells if 'check("01.fgsm", fgsm)' in c.source)
        at = nb.cells.index(check) + 1
        nb.cells[at:at] = [nbformat.v4.new_code_cell(_solutions()[0]),
                           nbformat.v4.new_code_cell('exercises.check("01.fgsm", fgsm)')]

    _edit(path, recheck)
    statuses, _ = _statuses(path)
    assert statuses["01.fgsm"] == "PASS"


def test_helpers_and_constants_from_cells_above_are_defined_and_computations_skipped(tmp_path):
    path = _copy(tmp_path)

    def helper_above(nb):
        stub = _task_cell(nb, "01.fgsm")
        nb.cells.insert(nb.cells.index(stub), nbformat.v4.new_code_cell(
            "SCALE = 1 / 255\nmodel_that_trains = train_forever()  # skipped: a call\n\n"
            "def _signed_step(x, grad, eps):\n    return (x + eps * SCALE * grad.sign()).clamp(0, 1)\n"))
        stub.source = ("def fgsm(model, x, y, eps):\n    x = x.clone().requires_grad_(True)\n"
                       "    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)\n"
                       "    return _signed_step(x, g, eps).detach()\n")

    _edit(path, helper_above)
    statuses, results = _statuses(path)
    assert statuses["01.fgsm"] == "PASS", results


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
    assert "passes pgd, which no cell above it defines" in results[1].message
    _edit(path, lambda nb: setattr(nb, "cells", []))  # every cell gone: the metadata still says 01
    statuses, _ = _statuses(path)
    assert set(statuses.values()) == {"MISSING"} and len(statuses) == 3
    assert main(["exercises", "grade", str(path)]) == 1
    assert "score 0/3" in capsys.readouterr().out


def test_bad_input_functions_and_cells_that_raise(tmp_path):
    path = _copy(tmp_path)

    def break_them(nb):
        _task_cell(nb, "01.fgsm").source = "def fgsm(model, x, y, eps):\n    x = x + 1\n    return 1 / 0\n"
        _task_cell(nb, "01.pgd").source = "def pgd(model, x, y, eps, steps, step_size, noise:\n"
        _task_cell(nb, "01.l2_projection").source = ("import not_a_module\n"
                                                     "def project_l2(x_adv, x, eps):\n    pass\n")

    _edit(path, break_them)
    statuses, results = _statuses(path)
    assert set(statuses.values()) == {"ERROR"}
    fgsm, pgd, proj = (r.message for r in results)
    assert "ZeroDivisionError" in fgsm and "line 3 of fgsm()" in fgsm
    assert "SyntaxError" in pgd and "does not parse" in pgd
    assert "ModuleNotFoundError" in proj and "not_a_module" in proj


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
    assert lines[1].startswith("✗ 01.l2_projection") and "per-image L2 norm" in lines[1]
    assert lines[2].startswith("✓ 01.l2_projection")


def test_strict_check_raises_unless_the_task_passes(capsys):
    with pytest.raises(AssertionError, match="per-image L2 norm"):
        exercises.check("01.l2_projection", lambda x_adv, x, eps: x_adv.clamp(0, 1), strict=True)
    exercises.check("01.l2_projection", lambda x_adv, x, eps: (x + (x_adv - x).renorm(2, 0, eps)).clamp(0, 1),
                    strict=True)
    assert capsys.readouterr().out.startswith("✗ 01.l2_projection")


def test_nbgrader_copies_carry_task_ids_and_points(tmp_path, capsys):
    assert main(["exercises", "build", "--nbgrader", "--out", str(tmp_path)]) == 0
    assert "wrote nbgrader source notebooks" in capsys.readouterr().out
    ids = set()
    for notebook in BOOKS:
        nb = nbformat.read(tmp_path / "source" / notebook / f"{notebook}.ipynb", as_version=4)
        nbformat.validate(nb)
        graded = [c for c in nb.cells if c.metadata.get("nbgrader")]
        ids |= {c.metadata.nbgrader.grade_id for c in graded}
        for task in (t for t in TASKS.values() if t.notebook == notebook):
            answer, test = [c for c in graded if c.metadata.get("task") == task.id]
            assert answer.metadata.nbgrader == {"grade": False, "solution": True, "locked": False,
                                                "schema_version": 3, "grade_id": exercises.grade_id(
                                                    task, "answer")}
            assert test.metadata.nbgrader == {"grade": True, "solution": False, "locked": True,
                                              "schema_version": 3, "points": task.points,
                                              "grade_id": exercises.grade_id(task)}
            assert "### BEGIN SOLUTION" in answer.source and f'check("{task.id}"' in test.source
            if task.id in ("02.square_update", "04.dice_loss", "05.trades_loss"):
                _autograde(answer.source, test.source, task)
    assert len(ids) == 2 * len(TASKS)  # nbgrader needs unique grade ids
    assert main(["exercises", "build", "--nbgrader", "--check"]) == 2


def _autograde(answer: str, test: str, task):
    """The test cell passes with the answer cell as written and raises once the solution region is
    replaced by a stub, as `nbgrader generate_assignment` does."""
    setup = "import torch\nimport torch.nn.functional as F\nfrom survey_lib import exercises\n"
    namespace: dict = {}
    exec(setup + answer + "\n" + test, namespace)
    released = re.sub(r"( *)### BEGIN SOLUTION.*?### END SOLUTION", r"\1raise NotImplementedError()",
                      answer, flags=re.DOTALL)
    exec(setup + released, namespace)
    with pytest.raises(AssertionError, match=f"✗ {re.escape(task.id)}.*not implemented"):
        exec(test, namespace)


@pytest.mark.parametrize("notebook", BOOKS)
def test_student_copy_runs_top_to_bottom(notebook, tmp_path, data_env, run_smoke):
    """Acceptance: each student copy executes (smoke profile, from notebooks/exercises/ as a student
    would run it) with a correct answer written below the first stub and a wrong one in place of
    the second; every check cell prints exactly the grader's verdict on the same file."""
    tasks = [t for t in TASKS.values() if t.notebook == notebook]
    nb = nbformat.read(EXERCISES / f"{notebook}.ipynb", as_version=4)
    first = _task_cell(nb, tasks[0].id)
    nb.cells.insert(nb.cells.index(first) + 1, nbformat.v4.new_code_cell(
        next(a for a in RIGHT if a.task == tasks[0].id).source))
    if len(tasks) > 1:
        _task_cell(nb, tasks[1].id).source = next(a for a in WRONG if a.task == tasks[1].id).source
    planted = tmp_path / f"{notebook}.ipynb"
    nbformat.write(nb, planted)
    outputs = run_smoke(planted, EXERCISES, tmp_path / "out.ipynb")
    assert not [o for o in outputs if o.get("output_type") == "error"]
    printed = "".join("".join(o.get("text", "")) for o in outputs if o.get("name") == "stdout")
    results, _ = grade_notebook(planted)
    assert [r.status for r in results] == ["PASS", "FAIL", "NOT IMPLEMENTED"][:len(tasks)]
    for result in results:
        assert verdict(result) in printed.splitlines(), (verdict(result), printed)


def test_hide_solutions_keeps_the_task_and_drops_the_answer_key():
    """The site's view of a solution cell: signature and docstring, no body, no output; a traceback
    that quotes a line of the body (an error raised inside a solution) loses that line."""
    source = _solutions()[0]
    body = "(grad,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)"
    assert body in source
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(source, metadata={"tags": ["solution"]},
                                  outputs=[nbformat.v4.new_output("stream", text="printed\n")]),
        nbformat.v4.new_code_cell("fgsm(None, 1, 2, 3)", outputs=[nbformat.v4.new_output(
            "error", ename="TypeError", evalue="bad", traceback=[
                "\x1b[0;31mTypeError\x1b[0m", f"----> 2 \x1b[0m    {body}", "other frame"])])])
    exercises.hide_solutions(nb)
    hidden = nb.cells[0].source
    assert hidden.startswith("def fgsm(model, x, y, eps):") and '"""Task 01.fgsm' in hidden
    assert body not in hidden and "reference solution not shown" in hidden and nb.cells[0].outputs == []
    traceback = nb.cells[1].outputs[0].traceback
    assert traceback[0].endswith("TypeError\x1b[0m") and traceback[2] == "other frame"
    assert body not in traceback[1]
    ast.parse(hidden)  # still Python

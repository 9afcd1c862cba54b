"""The grader against recorded answers (tests/exercise_answers.py), graded in-process: each plausible
wrong answer fails with a message naming what is wrong, each correct answer in another style passes,
and the notebook's check cell and `exercises grade` on the file say the same for every answer."""

import ast
import contextlib
import io

import nbformat
import pytest
from exercise_answers import RIGHT, WRONG, Answer

from survey_lib import exercises
from survey_lib.exercises import TASKS, grade_notebook, verdict


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    out = tmp_path_factory.mktemp("copies")
    exercises.build(out)
    return out


def _in_notebook(answer: Answer, copies) -> str:
    """What the check cell prints after the answer's cell has run in the kernel of the student copy
    (whose setup cell has run: the copy's imports above the exercise cell)."""
    task = TASKS[answer.task]
    cells = nbformat.read(copies / f"{task.notebook}.ipynb", as_version=4).cells
    above = cells[:next(k for k, c in enumerate(cells) if c.metadata.get("task") == task.id)]
    imports = [s for c in above if c.cell_type == "code" for s in ast.parse(c.source).body
               if isinstance(s, ast.Import | ast.ImportFrom)]
    namespace: dict = {}
    exec(compile(ast.Module(imports, []), "<setup>", "exec"), namespace)
    exec(answer.source, namespace)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exercises.check(answer.task, namespace[TASKS[answer.task].function])
    return printed.getvalue().strip()


def _graded(answer: Answer, copies, path, below: bool):
    """Plant the answer in a student copy, in the stub's cell or in a new cell right below the
    untouched stub (above the check cell), and grade the file."""
    task = TASKS[answer.task]
    nb = nbformat.read(copies / f"{task.notebook}.ipynb", as_version=4)
    i = next(k for k, c in enumerate(nb.cells) if c.metadata.get("task") == task.id)
    if below:
        nb.cells.insert(i + 1, nbformat.v4.new_code_cell(answer.source))
    else:
        nb.cells[i].source = answer.source
    nbformat.write(nb, path)
    results, header = grade_notebook(path)
    assert results is not None, header
    return next(r for r in results if r.task == task.id)


def test_every_task_has_recorded_answers():
    assert len(WRONG) >= 15
    assert {a.task for a in WRONG} == set(TASKS) == {a.task for a in RIGHT}
    assert all(a.expect for a in WRONG) and not any(a.expect for a in RIGHT)


@pytest.mark.parametrize("answer", WRONG, ids=str)
def test_wrong_answer_fails_naming_what_is_wrong(answer, copies, tmp_path):
    result = _graded(answer, copies, tmp_path / "answer.ipynb", below=WRONG.index(answer) % 2 == 1)
    assert result.status == "FAIL", result
    missing = [e for e in answer.expect if e not in result.message]
    assert not missing, f"{missing} not in: {result.message}"
    assert _in_notebook(answer, copies) == verdict(result)


@pytest.mark.parametrize("answer", RIGHT, ids=str)
def test_correct_answer_in_another_style_passes(answer, copies, tmp_path):
    result = _graded(answer, copies, tmp_path / "answer.ipynb", below=True)
    assert result.status == "PASS", result
    assert _in_notebook(answer, copies) == verdict(result)

"""Copies of the notebooks without the answer key.

- :func:`student_copy` / :func:`build`: the student copies in ``notebooks/exercises/``, each
  solution body replaced by ``raise NotImplementedError`` naming the task (signature and docstring
  kept); :func:`stale` says whether the committed copies are up to date.
- :func:`nbgrader_copy` / :func:`build_nbgrader`: instructor ("source") notebooks for a course's own
  nbgrader: solution bodies between ``### BEGIN SOLUTION`` / ``### END SOLUTION``, each check cell
  an autograded test cell (``check(..., strict=True)``) with the task's id and points.
- :func:`hide_solutions`: an executed notebook with the solutions' bodies removed, for the site.
"""

from __future__ import annotations

import ast
import filecmp
import re
import tempfile
from pathlib import Path

from ..errors import ConfigError
from ..paths import NOTEBOOKS, results_dir
from .grading import check_calls
from .tasks import TASKS, Task

EXERCISES = NOTEBOOKS / "exercises"
HIDDEN = "...  # reference solution not shown (python -m survey_lib site --with-solutions shows it)"


def _solution_cells(nb, notebook: str) -> dict[str, int]:
    """{task id: cell index} of the cells tagged ``solution`` in a reference notebook."""
    wanted = {t.function: t.id for t in TASKS.values() if t.notebook == notebook}
    return {wanted[n.name]: i for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and "solution" in cell.metadata.get("tags", [])
            for n in ast.parse(cell.source).body
            if isinstance(n, ast.FunctionDef) and n.name in wanted}


def _parts(source: str, fn: ast.FunctionDef, what: str) -> tuple[list[str], list[str], str]:
    """(lines up to the end of the docstring, the body's lines, the body's indent)."""
    doc = fn.body[0]
    if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
            and isinstance(doc.value.value, str)) or len(fn.body) < 2:
        raise ConfigError(f"{what}: {fn.name} needs a docstring stating the task, then its body.")
    lines = source.splitlines()
    return lines[:doc.end_lineno], lines[doc.end_lineno:fn.end_lineno], " " * doc.col_offset


def _function(source: str, task: Task) -> ast.FunctionDef:
    return next(n for n in ast.parse(source).body
                if isinstance(n, ast.FunctionDef) and n.name == task.function)


def stub(source: str, task: Task) -> str:
    """The cell's source with ``task.function``'s body replaced by a NotImplementedError naming the
    task; the signature, the docstring and the lines before the function are kept."""
    head, _, indent = _parts(source, _function(source, task), f"Exercise {task.id}")
    return "\n".join(head + [
        f'{indent}raise NotImplementedError(',
        f'{indent}    "Task {task.id} ({task.title}) is not implemented yet: write the body of "',
        f'{indent}    "{task.function}() as its docstring says, then run the check cell below.")'])


def _header(notebook: str, tasks: list[Task]) -> str:
    items = "\n".join(f"- **{t.id}** ({t.title}, {t.points} point{'s' * (t.points > 1)}). {t.statement}"
                      for t in tasks)
    return (f"**Exercise copy** of `notebooks/{notebook}.ipynb`, written by `python -m survey_lib "
            f"exercises build` (do not edit the generated file in place: save your work under "
            f"another name). Your tasks:\n\n{items}\n\nEach exercise cell raises "
            "`NotImplementedError` until you write the function (in that cell, or in a new cell "
            "below it and above its check cell); the check cell after it tests your version "
            "against `survey_lib`'s and prints ✓ or ✗ with the property that fails. The rest of "
            "the notebook runs as usual. Grade all tasks at once with\n`python -m survey_lib "
            f"exercises grade <your copy>.ipynb` (see `notebooks/exercises/README.md`).")


def _reference(notebook: str):
    """(the reference notebook read from its jupytext source, its tasks, {cell index: task})."""
    import jupytext

    source = NOTEBOOKS / f"{notebook}.py"
    if not source.exists():
        raise ConfigError(f"exercises build needs the notebook sources of a source checkout; "
                          f"{source} does not exist.")
    ref = jupytext.read(source)
    tasks = [t for t in TASKS.values() if t.notebook == notebook]
    cells = _solution_cells(ref, notebook)
    missing = [t.id for t in tasks if t.id not in cells]
    if missing:
        raise ConfigError(f"{source.name} has no cell tagged 'solution' defining the function of "
                          f"{', '.join(missing)}.")
    return ref, tasks, {i: TASKS[t] for t, i in cells.items()}


def _notebook(ref, notebook: str, tasks: list[Task], cells: list):
    import nbformat

    for k, cell in enumerate(cells):
        cell.id = f"{notebook[:2]}-{k:03d}"
    return nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": ref.metadata.get("kernelspec", {"display_name": "Python 3", "language": "python",
                                                      "name": "python3"}),
        "survey_lib": {"exercises": notebook, "tasks": [t.id for t in tasks]}})


def student_copy(notebook: str):
    """The exercise copy of ``notebooks/<notebook>.py`` as an nbformat notebook (no outputs,
    deterministic cell ids)."""
    import nbformat

    ref, tasks, task_at = _reference(notebook)
    out = []
    for i, cell in enumerate(ref.cells):
        tags = [t for t in cell.metadata.get("tags", []) if t != "solution"]
        if cell.cell_type == "markdown":
            out.append(nbformat.v4.new_markdown_cell(cell.source))
        elif i in task_at:
            task = task_at[i]
            out.append(nbformat.v4.new_code_cell(stub(cell.source, task),
                                                 metadata={"tags": tags + ["exercise"], "task": task.id}))
        else:
            out.append(nbformat.v4.new_code_cell(cell.source))
        if tags and i not in task_at:
            out[-1].metadata["tags"] = tags
        if i == 0:
            out.append(nbformat.v4.new_markdown_cell(_header(notebook, tasks)))
    return _notebook(ref, notebook, tasks, out)


# ---------------------------------------------------------------------------- nbgrader
def grade_id(task: Task, part: str = "") -> str:
    """nbgrader's grade_id of a task's cell (letters, digits, - and _): ``task-01-fgsm``."""
    return "task-" + task.id.replace(".", "-") + (f"-{part}" if part else "")


def _nbgrader(task: Task, grade: bool) -> dict:
    meta = {"grade": grade, "solution": not grade, "locked": grade, "schema_version": 3,
            "grade_id": grade_id(task, "" if grade else "answer")}
    return {"nbgrader": meta | ({"points": task.points} if grade else {}), "task": task.id}


def solution_region(source: str, task: Task) -> str:
    """The solution cell with ``task.function``'s body between nbgrader's solution delimiters."""
    head, body, indent = _parts(source, _function(source, task), f"Exercise {task.id}")
    end = _function(source, task).end_lineno
    return "\n".join(head + [f"{indent}### BEGIN SOLUTION", *body, f"{indent}### END SOLUTION"]
                     + source.splitlines()[end:])


def nbgrader_copy(notebook: str):
    """The instructor version of ``notebooks/<notebook>.py`` for nbgrader: each solution cell an
    autograded answer (body in ``### BEGIN/END SOLUTION``), each check cell a locked test cell
    worth the task's points that raises unless the task passes."""
    import nbformat

    ref, tasks, task_at = _reference(notebook)
    checked = {i: TASKS[task_id] for i, cell in enumerate(ref.cells) if cell.cell_type == "code"
               for task_id, _ in check_calls(ast.parse(cell.source), {t.id for t in tasks})}
    unchecked = [t.id for t in tasks if t not in checked.values()]
    if unchecked:
        raise ConfigError(f"{notebook}.py has no check cell (exercises.check(...)) for "
                          f"{', '.join(unchecked)}.")
    out = []
    for i, cell in enumerate(ref.cells):
        meta = {"tags": cell.metadata["tags"]} if cell.metadata.get("tags") else {}
        if cell.cell_type == "markdown":
            out.append(nbformat.v4.new_markdown_cell(cell.source))
        elif i in task_at:
            out.append(nbformat.v4.new_code_cell(solution_region(cell.source, task_at[i]),
                                                 metadata=meta | _nbgrader(task_at[i], grade=False)))
        elif i in checked:
            task = checked[i]
            out.append(nbformat.v4.new_code_cell(
                f'exercises.check("{task.id}", {task.function}, strict=True)  # autograded: '
                f'{task.points} point{"s" * (task.points > 1)}', metadata=meta | _nbgrader(task, grade=True)))
        else:
            out.append(nbformat.v4.new_code_cell(cell.source, metadata=meta))
        if i == 0:
            items = "\n".join(f"- **{t.id}** ({t.title}): {t.points} point{'s' * (t.points > 1)}"
                              for t in tasks)
            out.append(nbformat.v4.new_markdown_cell(
                f"**nbgrader source** of `notebooks/{notebook}.ipynb` (`python -m survey_lib exercises "
                f"build --nbgrader`). Tasks:\n\n{items}\n\n`nbgrader generate_assignment` replaces "
                "each solution region with a stub; the locked cells calling `exercises.check(..., "
                "strict=True)` are autograded."))
    return _notebook(ref, notebook, tasks, out)


def build_nbgrader(out: Path | str | None = None) -> list[Path]:
    """Write nbgrader source notebooks as ``<out>/source/<notebook>/<notebook>.ipynb`` (nbgrader's
    course layout; default ``<results>/nbgrader``)."""
    import nbformat

    out = Path(out) if out else results_dir() / "nbgrader"
    paths = []
    for notebook in dict.fromkeys(t.notebook for t in TASKS.values()):
        path = out / "source" / notebook / f"{notebook}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(nbformat.writes(nbgrader_copy(notebook)) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------- the site
def hidden(source: str) -> str:
    """A solution cell as the site shows it: each function's signature and docstring, no body."""
    out = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            head, _, indent = _parts(source, node, "A solution cell")
            out += head[start - 1:] + [f"{indent}{HIDDEN}", ""]
    return "\n".join(out).strip() or f"# {HIDDEN[5:]}"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def hide_solutions(nb) -> None:
    """Remove the answer key from an (executed) notebook in place: the ``solution`` cells keep only
    signatures and docstrings and lose their outputs; traceback lines quoting them are blanked."""
    lines = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and "solution" in cell.metadata.get("tags", []):
            lines |= {line.strip() for line in cell.source.splitlines() if len(line.strip()) > 8}
            kept = set(hidden(cell.source).splitlines())
            lines -= {line.strip() for line in kept}
            cell.source, cell.outputs = hidden(cell.source), []
            cell.execution_count = None
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [
                    "(a line of a reference solution, not shown)"
                    if any(line in _ANSI.sub("", text) for line in lines) else text
                    for text in output.get("traceback", [])]


# ---------------------------------------------------------------------------- the committed copies
def _readme() -> str:
    rows = "\n".join(f"| `{t.id}` | `{t.notebook}.ipynb` | `{t.function}()` | {t.title} | {t.points} |"
                     for t in TASKS.values())
    return f"""# Exercises: the notebooks as course assignments

Generated by `python -m survey_lib exercises build` from the notebooks' sources (`notebooks/NN_*.py`,
cells tagged `solution`); do not edit these files by hand. CI checks they are up to date with
`python -m survey_lib exercises build --check`.

In each copy the solution cells are replaced by stubs that keep the signature and the docstring
(the task) and raise `NotImplementedError` naming the task, so the notebook still runs top to bottom.
Work on a copy (e.g. `cp 01_whitebox_attacks.ipynb my_01.ipynb`), since `build` overwrites these
files. Write each function in its exercise cell (or in a new cell below it, above its check cell),
run the check cell (✓ or ✗), then grade every task of the notebook:

```
python -m survey_lib exercises grade my_01.ipynb
```

**How a notebook is graded.** The grader reads the file as its check cells see it when the
notebook runs top to bottom: the imports, function and class definitions and constant assignments of
the code cells run in order (training, plots and prints are skipped), and each task's function is the
one its check cell passes, i.e. the last definition above that cell (the last check cell, if you
copied it). The grader and the ✓ or ✗ of the check cell therefore agree. A definition below the
check cell does not count (the report says so), and a function must get what it needs through its
arguments, not from variables the notebook computes.

**What a check asserts.** Each check calls your function on fixed inputs (a tiny seeded model,
seeded tensors) and asserts what the task's docstring states before comparing numbers: no gradient
history on an attack's result and no gradients or state changes left on the model; images in [0, 1]
and in the ε-ball of each image (the L2 projection is also checked on 3-channel images); the `noise`
argument used; train mode for the PGD-AT step; losses that back-propagate; inputs not modified in
place. A function that calls `survey_lib`'s own implementation of its task is reported (however it
is imported). Then the result must match `survey_lib`'s: to 1e-6 for attacks, projections and the
weights after training steps, 1e-5 for loss values. The report is PASS, FAIL (naming the property
that fails, or the known mistake your result reproduces, else the largest difference), NOT
IMPLEMENTED, MISSING (the function is not defined above its check cell) or ERROR (the exception and
its line), per task, then the score in tasks and points; exit code 0 at full marks, 1 otherwise, 2
when the file is not an exercise notebook.

**Solutions policy.** The reference solutions are the `solution` cells of `notebooks/NN_*.py` and
`.ipynb`: they are public in this repository, because the notebooks run them. These copies and the
rendered site (`python -m survey_lib site`) never show their bodies; only `site --with-solutions`
does, for a teacher's own use. A course that grades the exercises should not rely on the answers
being secret: keep its own variants private, or use its own nbgrader setup with
`python -m survey_lib exercises build --nbgrader --out <course dir>`, which writes nbgrader source
notebooks (`<course dir>/source/<notebook>/<notebook>.ipynb`: solution bodies between
`### BEGIN SOLUTION` and `### END SOLUTION`, each check cell a locked, autograded test cell carrying
the task's `grade_id` and points) for `nbgrader generate_assignment` and `nbgrader autograde`.

| task | notebook | function | what | points |
|---|---|---|---|---|
{rows}
"""


def build(out: Path | str | None = None) -> list[Path]:
    """Write the exercise copies and the README to ``out`` (default ``notebooks/exercises``)."""
    import nbformat

    out = Path(out) if out else EXERCISES
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for notebook in dict.fromkeys(t.notebook for t in TASKS.values()):
        path = out / f"{notebook}.ipynb"
        path.write_text(nbformat.writes(student_copy(notebook)) + "\n", encoding="utf-8")
        paths.append(path)
    readme = out / "README.md"
    readme.write_text(_readme(), encoding="utf-8")
    return paths + [readme]


def stale(committed: Path | str | None = None) -> list[str]:
    """Names of generated files that are missing from or differ in ``committed``."""
    committed = Path(committed) if committed else EXERCISES
    with tempfile.TemporaryDirectory() as tmp:
        return [p.name for p in build(tmp)
                if not (committed / p.name).exists() or not filecmp.cmp(p, committed / p.name, False)]

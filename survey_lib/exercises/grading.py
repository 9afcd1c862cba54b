"""Grading: a task's check on one function (:func:`run`; :func:`check` in a notebook's check cell)
or on every task of a notebook file (:func:`grade_notebook`, ``python -m survey_lib exercises grade``).

A file is graded as its check cells see it when the notebook runs top to bottom, so the grader and
the ✓/✗ printed in the notebook cannot disagree: the code cells' imports, function and class
definitions and constant assignments (no calls) run in notebook order; each task's function is
what the task's (last) check cell, ``exercises.check("<task>", fn)``, passes at that point (the last
definition above it wins: a solution written in a new cell under the untouched stub counts). Other
statements (training, plots, prints) are skipped, so a function must get what it needs through its
arguments, as every task's signature provides. Without a check cell, the last definition of the
task's function in the notebook is graded.
"""

from __future__ import annotations

import ast
import contextlib
import re
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError
from .contract import Student, Violation
from .tasks import TASKS, Task

TIMEOUT_S = 60  # per task, when grading from the command line


@dataclass(frozen=True)
class Result:
    task: str
    status: str  # PASS | FAIL | NOT IMPLEMENTED | MISSING | ERROR
    message: str


# ---------------------------------------------------------------------------- one function
@contextlib.contextmanager
def _time_limit(seconds: int | None):
    """Raise TimeoutError after ``seconds`` (only in the main thread of a Unix process)."""
    if not seconds or not hasattr(signal, "SIGALRM") or \
            threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"the check ran for more than {seconds} s (an endless loop?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _one_thread():
    """Run on one CPU thread: the checks' tensors are tiny, and threads that wait on a busy machine
    cost more than they compute (the same numbers in the notebook and the grader either way)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _describe(exc: BaseException, fn=None) -> str:
    """'Type: message', plus the line of the student's function where it was raised, if any."""
    text = f"{type(exc).__name__}: {exc}".strip()
    filename = getattr(getattr(fn, "__code__", None), "co_filename", None)
    where, tb = None, exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if filename and code.co_filename == filename:
            where = f" (line {tb.tb_lineno - code.co_firstlineno + 1} of {code.co_name}())"
        tb = tb.tb_next
    text = text if len(text) < 400 else text[:397] + "..."
    return text + (where or "")


def run(task_id: str, fn, timeout: int | None = None) -> Result:
    """Run a task's check on ``fn``; never raises (a stub or a broken function is a Result)."""
    if task_id not in TASKS:
        raise ConfigError(f"Unknown exercise {task_id!r}. Valid: {', '.join(TASKS)}.")
    task = TASKS[task_id]
    if not callable(fn):
        return Result(task_id, "MISSING", f"{task.function} is a {type(fn).__name__}, not a function")
    try:
        with _time_limit(timeout), torch.random.fork_rng(), _one_thread():
            message = task.check(Student(fn, task.references))
    except Violation as exc:
        return Result(task_id, "FAIL", str(exc))
    except NotImplementedError as exc:
        return Result(task_id, "NOT IMPLEMENTED", str(exc) or "the function raises NotImplementedError")
    except (Exception, SystemExit) as exc:  # a student's function may raise anything: report it
        return Result(task_id, "ERROR", _describe(exc, fn))
    return Result(task_id, "PASS", message)


def verdict(result: Result) -> str:
    """The line a check cell prints: ✓ or ✗, the task and the message."""
    status = {"NOT IMPLEMENTED": "not implemented yet — ", "ERROR": "error — ",
              "MISSING": "missing — ", "FAIL": "wrong — "}.get(result.status, "")
    return (f"{'✓' if result.status == 'PASS' else '✗'} {result.task} ({TASKS[result.task].title}): "
            f"{status}{result.message}")


def check(task_id: str, fn, strict: bool = False) -> None:
    """Notebook helper: print ✓ or ✗ with the check's message. With ``strict`` (the autograded
    cells of the nbgrader copies), raise AssertionError unless the task passes."""
    result = run(task_id, fn)
    print(verdict(result))
    if strict and result.status != "PASS":
        raise AssertionError(verdict(result))


# ---------------------------------------------------------------------------- a notebook file
def _read(path: Path):
    """The notebook at ``path`` (.ipynb, or a jupytext .py/.md), or a one-line reason it is not one."""
    import nbformat

    if not path.exists():
        return None, f"{path} does not exist"
    try:
        if path.suffix == ".ipynb":
            return nbformat.read(path, as_version=4), None
        if path.suffix in (".py", ".md"):
            import jupytext

            return jupytext.read(path), None
    except Exception as exc:  # unreadable file, not JSON, or JSON that nbformat rejects
        return None, f"{path} is not a readable notebook ({type(exc).__name__}: {str(exc)[:200]})"
    return None, f"{path} is not a notebook (expected .ipynb, or a jupytext .py)"


def _defines(source: str, name: str) -> bool:
    return re.search(rf"^\s*def\s+{re.escape(name)}\s*\(", source, re.MULTILINE) is not None


def check_calls(node: ast.AST, ids) -> list[tuple[str, ast.expr]]:
    """(task id, the expression passed as the function) of every ``check("<task>", fn)`` in node."""
    calls = []
    for call in ast.walk(node):
        if not (isinstance(call, ast.Call) and len(call.args) >= 2):
            continue
        func, first = call.func, call.args[0]
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name == "check" and isinstance(first, ast.Constant) and first.value in ids:
            calls.append((first.value, call.args[1]))
    return calls


def _tasks_of(nb, path: Path) -> list[Task]:
    """The tasks a notebook is graded on: from the copy's metadata, its cells, or its file name."""
    meta = nb.metadata.get("survey_lib", {}).get("exercises")
    code = [c for c in nb.cells if c.cell_type == "code"]
    ids = {c.metadata.get("task") for c in code}
    for cell in code:
        with contextlib.suppress(SyntaxError):  # a cell that does not parse names no task
            ids |= {task for task, _ in check_calls(ast.parse(_runnable(cell.source)), TASKS)}
    notebooks = {t.notebook for t in TASKS.values()
                 if t.notebook == meta or t.id in ids or path.stem.startswith(t.notebook)}
    if not notebooks:  # a renamed copy without metadata: the notebooks whose solution cells it has
        notebooks = {t.notebook for t in TASKS.values() for c in code
                     if {"solution", "exercise"} & set(c.metadata.get("tags", []))
                     and _defines(c.source, t.function)}
    return [t for t in TASKS.values() if t.notebook in notebooks]


def _runnable(source: str) -> str:
    """Comment out IPython magics and shell escapes, which are not Python."""
    return "\n".join("# " + line if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def _is_definition(stmt: ast.stmt) -> bool:
    """Does the grader run this top-level statement: an import, a def or class, or an assignment
    without calls (a constant such as ``EPS = 8 / 255``)?"""
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
    return value is not None and (isinstance(value, ast.Lambda)
                                  or not any(isinstance(n, ast.Call) for n in ast.walk(value)))


def _names(stmts) -> set[str]:
    """The functions and classes the statements define."""
    return {s.name for s in stmts if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def _label(number: int, source: str) -> str:
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    return f"cell {number} (`{first[:50]}{'…' if len(first) > 50 else ''}`)"


@dataclass
class _Found:
    fn: object = None
    problem: Result | None = None
    check_cell: int | None = None


def _functions(nb, tasks: list[Task], timeout: int | None) -> dict[str, _Found]:
    """Run the notebook's definitions top to bottom; what each task's check cell passes."""
    namespace: dict = {"__name__": "__main__"}
    by_id = {t.id: t for t in tasks}
    found: dict[str, _Found] = {}
    failed: dict[str, str] = {}  # function name → why its latest definition did not run
    for number, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code":
            continue
        source = _runnable(cell.source)
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            for task in tasks:
                if _defines(source, task.function):
                    failed[task.function] = f"{_label(number, source)} does not parse: {_describe(exc)}"
            continue
        for i, stmt in enumerate(tree.body):
            for task_id, expr in check_calls(stmt, by_id):
                found[task_id] = _resolve(by_id[task_id], expr, namespace, failed, number, source)
            if not _is_definition(stmt):
                continue
            try:
                with _time_limit(timeout):
                    exec(compile(ast.Module([stmt], []), f"<cell {number}>", "exec"), namespace)
            except (Exception, SystemExit) as exc:
                if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                    continue  # a constant built from what the grader skips: a use reports NameError
                for name in _names(tree.body[i:]):  # the kernel stops the cell here
                    failed[name] = f"{_label(number, source)} fails: {_describe(exc)}"
                break
            for name in _names([stmt]):
                failed.pop(name, None)
    for task in tasks:
        if task.id not in found:
            fn = namespace.get(task.function)
            problem = (Result(task.id, "ERROR", failed[task.function]) if task.function in failed else
                       None if fn is not None else
                       Result(task.id, "MISSING", f"no cell defines {task.function}(): was the exercise "
                              "cell deleted? Rebuild the copy or paste the stub back."))
            found[task.id] = _Found(fn, problem)
    return found


def _resolve(task: Task, expr: ast.expr, namespace: dict, failed: dict, number: int, source: str) -> _Found:
    """What the check call at ``expr`` (in cell ``number``) passes, as the kernel would evaluate it."""
    name = expr.id if isinstance(expr, ast.Name) else None
    if name in failed:
        return _Found(problem=Result(task.id, "ERROR", failed[name]), check_cell=number)
    try:
        fn = eval(compile(ast.Expression(expr), f"<cell {number}>", "eval"), namespace)
    except NameError as exc:
        return _Found(problem=Result(task.id, "MISSING", f"the check cell, {_label(number, source)}, "
                                     f"passes {ast.unparse(expr)}, which no cell above it defines "
                                     f"({exc})"), check_cell=number)
    except Exception as exc:
        return _Found(problem=Result(task.id, "ERROR", _describe(exc)), check_cell=number)
    return _Found(fn, None, number)


def _later_definitions(nb, task: Task, check_cell: int) -> str:
    later = [n for n, c in enumerate(nb.cells, 1) if n > check_cell and c.cell_type == "code"
             and _defines(c.source, task.function)]
    if not later:
        return ""
    return (f" (note: cell {later[0]}, below the check cell {check_cell}, defines {task.function}() "
            "again; the check cell, run top to bottom, does not see it: move it above the check cell)")


def grade_notebook(path: Path | str, timeout: int | None = TIMEOUT_S) -> tuple[list[Result] | None, str]:
    """(per-task results, header line); results is None when the file is not an exercise notebook."""
    path = Path(path)
    nb, problem = _read(path)
    if nb is None:
        return None, problem
    tasks = _tasks_of(nb, path)
    if not tasks:
        return None, (f"{path} is not an exercise notebook: it has no exercise or solution cell of a "
                      f"known task. Exercise copies are in notebooks/exercises/ (python -m survey_lib "
                      f"exercises build); tasks: {', '.join(TASKS)}.")
    found = _functions(nb, tasks, timeout)
    results = []
    for task in tasks:
        f = found[task.id]
        result = f.problem or run(task.id, f.fn, timeout)
        note = _later_definitions(nb, task, f.check_cell) if f.check_cell and result.status != "PASS" else ""
        results.append(Result(result.task, result.status, result.message + note))
    return results, f"{path}: {len(tasks)} task(s) of notebook {tasks[0].notebook}"


def grade(path: Path | str) -> int:
    """Print the per-task report; exit code 0 at full marks, 1 otherwise, 2 if not an exercise notebook."""
    results, header = grade_notebook(path)
    if results is None:
        print(f"error: {header}")
        return 2
    print(header)
    width = max(len(r.task) for r in results)
    for r in results:
        print(f"  {r.task:<{width}}  {r.status:<15}  {r.message}")
    score = sum(r.status == "PASS" for r in results)
    points = sum(TASKS[r.task].points for r in results if r.status == "PASS")
    print(f"score {score}/{len(results)} tasks, {points}/{sum(TASKS[r.task].points for r in results)} points")
    return 0 if score == len(results) else 1

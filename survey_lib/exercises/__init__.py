"""Course-assignment versions of the notebooks: write the algorithms yourself, then grade them.

In the paired notebooks a code cell tagged ``solution`` holds one short function that re-derives
what the package does (FGSM, PGD, the L2 projection, Square's proposal, the soft Dice loss and a
Dice-loss attack, a PGD-AT step, the TRADES and MART losses, BPDA); the cell after it calls
:func:`check`.

- ``tasks.py`` (with ``attack_checks.py``, ``defense_checks.py``, ``contract.py``, ``inputs.py``):
  the ten tasks and their checks. A check asserts the contract the task states (gradient history,
  the model left alone, [0, 1] and the ε-ball per image, multi-channel inputs, train/eval mode, the
  ``noise`` argument, no call into the package's own implementation), then compares the student's
  result with the package's on fixed inputs, naming the property or known mistake that fails.
- ``copies.py``: ``python -m survey_lib exercises build`` writes the student copies under
  ``notebooks/exercises/`` (``--check``: are they up to date; ``--nbgrader``: nbgrader source
  notebooks for a course's own nbgrader); the site hides the solutions with :func:`hide_solutions`.
- ``grading.py``: ``python -m survey_lib exercises grade FILE`` grades a copy as its check cells see
  it run top to bottom: PASS, FAIL, NOT IMPLEMENTED, MISSING or ERROR per task, and the score.
"""

from .copies import (
    EXERCISES,
    build,
    build_nbgrader,
    grade_id,
    hide_solutions,
    nbgrader_copy,
    stale,
    stub,
    student_copy,
)
from .grading import Result, check, grade, grade_notebook, run, verdict
from .tasks import TASKS, Task

__all__ = ["EXERCISES", "TASKS", "Result", "Task", "build", "build_nbgrader", "check", "grade", "grade_id",
           "grade_notebook", "hide_solutions", "nbgrader_copy", "run", "stale", "student_copy", "stub",
           "verdict"]

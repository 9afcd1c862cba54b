"""Where the project's folders are, whatever the working directory.

A notebook run by papermill from the repository root, JupyterLab started in ``notebooks/`` and the
CLI run from anywhere all find the same folders:

- :data:`ROOT`: the checkout that holds this package (``pyproject.toml`` beside ``survey_lib/``);
  for an installed copy without a checkout, ``$SURVEY_HOME`` (default ``~/survey_lib``);
- :data:`BENCHMARKS`: the committed results (``benchmarks/``); :func:`committed` returns a file
  in it or raises :class:`~survey_lib.errors.DataError` naming the missing path;
- :func:`results_dir`, :func:`runs_dir`, :func:`default_data_dir`: what runs write and read, each
  overridable by an environment variable (``SURVEY_RESULTS_DIR``, ``SURVEY_RUNS_DIR``,
  ``SURVEY_DATA_DIR``), else a folder of :data:`ROOT`. Nothing is written outside the checkout
  unless one of those settings says so.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DataError

HOME_ENV, RESULTS_ENV, RUNS_ENV, DATA_ENV = ("SURVEY_HOME", "SURVEY_RESULTS_DIR", "SURVEY_RUNS_DIR",
                                             "SURVEY_DATA_DIR")


def _root() -> Path:
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").exists() and (checkout / "survey_lib").is_dir():
        return checkout
    return Path(os.environ.get(HOME_ENV) or "~/survey_lib").expanduser().resolve()


ROOT = _root()
BENCHMARKS = ROOT / "benchmarks"
NOTEBOOKS = ROOT / "notebooks"


def _env_or(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def results_dir() -> Path:
    """Where runs write tables and figures: ``$SURVEY_RESULTS_DIR``, else ``<ROOT>/results``."""
    return _env_or(RESULTS_ENV, ROOT / "results")


def runs_dir() -> Path:
    """Where trained models are cached: ``$SURVEY_RUNS_DIR``, else ``<ROOT>/runs``."""
    return _env_or(RUNS_ENV, ROOT / "runs")


def default_data_dir() -> Path:
    """The data root when no argument names one: ``$SURVEY_DATA_DIR``, else ``<ROOT>/data``."""
    return _env_or(DATA_ENV, ROOT / "data")


def committed(relative: str | os.PathLike) -> Path:
    """A committed result file or folder under ``benchmarks/``; a clear error when it is missing."""
    path = BENCHMARKS / relative
    if not path.exists():
        raise DataError(
            f"The committed result {path} is missing. It ships with the repository: run from a "
            "full checkout of survey_lib (git clone), or regenerate it with the command named in "
            f"{BENCHMARKS / 'README.md'}.")
    return path

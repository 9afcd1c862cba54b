"""Result rows on disk: one JSON file per cell, written atomically, read back only when it is what
its path says and what the grid asks for.

A row is accepted when (1) it parses and has this schema version, (2) its identity (dataset,
defense, training ε, seed, attack, evaluation ε) is the one its path names, (3) the cell is part of
the grid, (4) its attack configuration is the one the grid's settings give and its profile the
grid's, and (5) all rows of one model folder were computed on the same model (``model_key``); the
runner also requires (6) that model to be the one today's recipe and data file give. Anything else
is reported once with its reason and never enters a table; the runner recomputes what fails
(1)–(6) for a planned cell, and ignores files that are not planned cells.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from ..data import task_info
from ..errors import SurveyError
from ..train import PRECISION_ENV
from .protocol import make_grid_attack, pgd_step, sanity_config, surrogate_name
from .spec import Cell, GridSpec, plan

SCHEMA_VERSION = 2
IDENTITY = ("dataset", "defense", "train_eps", "seed", "attack", "eval_eps")


def write_row(row: dict, path: Path) -> None:
    """Write atomically: a kill never leaves a half-written row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps({"schema_version": SCHEMA_VERSION, **row}, indent=1))
    os.replace(tmp, path)


def parse_row(path: Path) -> tuple[dict | None, str]:
    """(the row, "") or (None, why it cannot be used). A row of another schema version raises:
    mixing schemas would give a wrong table."""
    try:
        row = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        return None, f"unreadable or truncated JSON ({type(exc).__name__})"
    if not isinstance(row, dict) or not all(k in row for k in IDENTITY + ("attack_config",)):
        return None, "not a result row of survey_lib (fields missing)"
    if row.get("schema_version") != SCHEMA_VERSION:
        raise SurveyError(
            f"{path} was written with result schema version {row.get('schema_version')!r}, but "
            f"this survey_lib writes version {SCHEMA_VERSION}. Use a fresh --results folder (or "
            "move the old one away); old rows are not mixed with new ones.")
    return row, ""


def _attack_configs(spec: GridSpec, profile) -> dict:
    """Memo of the attack configuration string each (dataset, column, ε) must carry."""
    memo = {}

    def expected(cell: Cell) -> str | None:
        key = (cell.dataset, cell.attack, cell.eval_eps)
        if key not in memo:
            if cell.attack == "sanity":
                memo[key] = sanity_config(max(spec.eval_eps_for(cell.dataset)), spec)
            elif cell.attack == "transfer":  # built without training its surrogate
                from ..attacks import make_attack

                base = make_attack("pgd", eps=cell.eval_eps, steps=spec.pgd_steps,
                                   step_size=pgd_step(cell.eval_eps))
                memo[key] = f"Transfer(base={base!r}, surrogate={surrogate_name(cell.dataset, spec)})"
            elif cell.attack == "clean":
                memo[key] = "clean"
            else:
                attack = make_grid_attack(cell.attack, cell.eval_eps, spec, cell.dataset, profile)
                # a cascade's name lists the stages a K-class model gets
                memo[key] = attack.describe(task_info(cell.dataset, spec.size).num_classes) \
                    if hasattr(attack, "describe") else repr(attack)
        return memo[key]

    return expected


def check_row(row: dict, cell: Cell, spec: GridSpec, profile, expected_config) -> str:
    """Why ``row`` is not the result of ``cell`` under ``spec`` ("" when it is)."""
    from ..config import get_profile

    got = tuple(row.get(k) for k in IDENTITY)
    want = tuple(getattr(cell, k) for k in IDENTITY)
    if got != want:
        return f"its content is the cell {got}, not the cell {want} its path names"
    if profile is not None and row.get("profile") != get_profile(profile).name:
        return f"computed in the {row.get('profile')!r} profile, not {get_profile(profile).name!r}"
    want_config = expected_config(cell)
    if row["attack_config"] != want_config:
        return f"computed with {row['attack_config']}, but the grid asks for {want_config}"
    precision = os.environ.get(PRECISION_ENV) or "fp32"
    if row.get("precision") != precision:
        return f"attacked in {row.get('precision')}, but this run attacks in {precision}"
    return ""


def load_rows(root: Path, spec: GridSpec, profile=None) -> tuple[list[dict], list[str]]:
    """The accepted rows of the grid's cells under ``root`` (in plan order) and one line per file
    that was not accepted, saying why and what happens to it."""
    root = Path(root)
    cells = {c.path(root): c for c in plan(spec)}
    expected = _attack_configs(spec, profile)
    rows, problems, by_model = [], [], {}
    for path in sorted(root.glob("*/*/*.json")):
        cell = cells.get(path)
        if cell is None:
            problems.append(f"{path}: not a cell of this grid (dataset, model or column not "
                            "planned); ignored, never used in a table")
            continue
        row, why = parse_row(path)
        if row is not None:
            why = check_row(row, cell, spec, profile, expected)
        if why:
            problems.append(f"{path}: {why}; not used, recomputed by the next run of this grid")
            continue
        rows.append((cell, row))
        by_model.setdefault(cell.model, []).append(row.get("model_key"))
    majority = {m: Counter(keys).most_common(1)[0][0] for m, keys in by_model.items()}
    accepted = []
    for cell, row in sorted(rows, key=lambda cr: cr[0]):
        if row.get("model_key") != majority[cell.model]:
            problems.append(f"{cell.path(root)}: computed on model {row.get('model_key')}, while the "
                            f"other rows of {cell.model_dir()} used {majority[cell.model]}; not used "
                            "(the next run recomputes every row whose model is not the one today's "
                            "recipe and data give)")
        else:
            accepted.append(row)
    return accepted, problems

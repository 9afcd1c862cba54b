"""Run time of every notebook per profile, for the start page (notebooks/README.md).

    SURVEY_DATA_DIR=<data dir> OMP_NUM_THREADS=1 \
        .venv/bin/python benchmarks/notebook_times/notebook_times.py --profile smoke cpu \
        --machine-note '<what else ran on the machine>'

(On a machine shared with other jobs, one torch thread per process runs several times faster than
two threads that wait for each other's cores.)

Each notebook is executed headless with papermill (``-p PROFILE <profile>``) from ``notebooks/``,
in the order 00 → 09, with a runs cache (``$SURVEY_RUNS_DIR``) that is empty when a profile starts:
a notebook reuses the models an earlier one cached (e.g. 02 the PneumoniaMNIST baseline of 00), as
in a course that goes through them in order; the shipped pretrained models are used where the
notebooks use them. Writes ``times.csv`` beside this script (one row per notebook and profile,
replaced when rerun) and ``README.md`` (command, machine, load, the table of minutes); the
executed notebooks go to ``results/notebook_times/<profile>/`` (to look at their figures).
Also records the load average before and after each notebook.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import pandas as pd
import papermill
import torch

from survey_lib.paths import NOTEBOOKS, results_dir

HERE = Path(__file__).parent
MACHINE = (f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
           f"torch {torch.__version__}")
CSV, MD = HERE / "times.csv", HERE / "README.md"


def run(notebook: Path, profile: str, out: Path, note: str) -> dict:
    """Execute one notebook; its wall time, whether it failed, and the load average around it."""
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    error = ""
    try:
        papermill.execute_notebook(str(notebook), str(out), parameters={"PROFILE": profile},
                                   cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False)
    except papermill.PapermillExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}"[:200]
    return {"notebook": notebook.stem, "profile": profile,
            "minutes": round((time.perf_counter() - start) / 60, 1), "error": error,
            "load_before": round(load_before, 1), "load_after": round(os.getloadavg()[0], 1),
            "date": datetime.date.today().isoformat(), "machine": MACHINE, "note": note}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", nargs="+", default=["smoke", "cpu"])
    parser.add_argument("--notebooks", nargs="+", metavar="NN", help="only these (default: all)")
    parser.add_argument("--machine-note", default="", help="what else ran on the machine")
    args = parser.parse_args()
    # figures inline (to look at them), explorers drawn as static figures, as on the rendered site
    os.environ.update({"MPLBACKEND": "module://matplotlib_inline.backend_inline",
                       "SURVEY_STATIC_WIDGETS": "1"})
    notebooks = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")
                       if not args.notebooks or p.name[:2] in args.notebooks)
    for profile in args.profile:
        out = results_dir() / "notebook_times" / profile
        out.mkdir(parents=True, exist_ok=True)
        os.environ["SURVEY_RUNS_DIR"] = str(out / "runs")  # empty at the start of a fresh folder
        for nb in notebooks:
            row = run(nb, profile, out / nb.name, args.machine_note)
            print(json.dumps(row), flush=True)
            rows = save_row(row)
    write_markdown(rows)


def save_row(row: dict) -> pd.DataFrame:
    """Add (or replace) one row of the CSV, read afresh: several profiles may run at once."""
    rows = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame(columns=list(row))
    rows = rows[~((rows.notebook == row["notebook"]) & (rows.profile == row["profile"]))]
    rows = pd.concat([rows, pd.DataFrame([row])], ignore_index=True).sort_values(["profile", "notebook"])
    tmp = CSV.with_suffix(f".tmp{os.getpid()}")
    rows.to_csv(tmp, index=False)
    os.replace(tmp, CSV)
    return rows


def write_markdown(rows: pd.DataFrame) -> None:
    """The table of minutes (notebooks × profiles) and, per profile, when and where it was measured."""
    table = rows.pivot(index="notebook", columns="profile", values="minutes")
    lines = []
    for profile, r in rows.groupby("profile"):
        lines.append(f"- `{profile}`: {', '.join(sorted(set(r.date)))}, {'; '.join(sorted(set(r.machine)))}"
                     f": {'; '.join(sorted(set(r.note.fillna(''))))}; load average "
                     f"{min(r.load_before.min(), r.load_after.min()):g}–"
                     f"{max(r.load_before.max(), r.load_after.max()):g}"
                     + (f"; failed: {', '.join(r.notebook[r.error.fillna('') != ''])}"
                        if (r.error.fillna("") != "").any() else ""))
    MD.write_text(
        "# Notebook run times (minutes of wall time)\n\n"
        "How long each notebook takes to run top to bottom, per profile, for the start page "
        "(`notebooks/README.md`). Command:\n\n"
        "```bash\nSURVEY_DATA_DIR=<data dir> OMP_NUM_THREADS=1 \\\n"
        "    .venv/bin/python benchmarks/notebook_times/notebook_times.py --profile smoke cpu \\\n"
        "    --machine-note '<what else ran on the machine>'\n```\n\n"
        "Papermill, notebooks in the order 00 → 09, runs cache empty when a profile starts (a notebook "
        "reuses the models earlier ones cached, as in a course that goes through them in order), the "
        "pretrained models shipped with the package used where the notebooks use them. One run per "
        "notebook and profile (n = 1): no uncertainty is measured; on a loaded machine the times vary "
        "with the load, given per profile below (1-minute load average before and after each notebook "
        "in `times.csv`). A missing entry was not measured.\n\n"
        "Machine, date and load per profile:\n\n" + "\n".join(lines) + "\n\n"
        + table.map(lambda m: "not measured" if pd.isna(m) else f"{m:g}").to_markdown() + "\n")


if __name__ == "__main__":
    main()

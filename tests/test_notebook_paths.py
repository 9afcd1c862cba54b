"""Notebooks do not depend on the directory they are run from: the README's headless command
(papermill from the repository root) and a run from notebooks/ (as JupyterLab does) give the same
outputs, and read the committed results of the checkout."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/00_data_and_baselines.ipynb"


def _outputs(path: Path) -> list:
    """Every output of the executed notebook but progress bars (stderr, tqdm widgets: the first run
    trains, the second loads the cache) and execution metadata."""
    cells = json.loads(path.read_text())["cells"]
    out = []
    for cell in cells:
        for o in cell.get("outputs", []):
            if o.get("name") == "stderr" or "application/vnd.jupyter.widget-view+json" in o.get("data", {}):
                continue
            out.append({k: v for k, v in o.items() if k not in ("execution_count", "metadata")})
    return out


def test_same_outputs_from_the_root_and_from_notebooks(tmp_path, data_env):
    env = {**os.environ, "MPLBACKEND": "Agg", "SURVEY_RUNS_DIR": str(tmp_path / "runs")}
    papermill = [sys.executable, "-m", "papermill", "--no-progress-bar", "-p", "PROFILE", "smoke",
                 "-k", "python3"]
    subprocess.run(papermill + [NOTEBOOK, str(tmp_path / "root.ipynb")], cwd=ROOT, env=env,
                   check=True, capture_output=True)  # the README's command, from the root
    subprocess.run(papermill + [Path(NOTEBOOK).name, str(tmp_path / "nb.ipynb")], cwd=ROOT / "notebooks",
                   env=env, check=True, capture_output=True)
    root, nb = _outputs(tmp_path / "root.ipynb"), _outputs(tmp_path / "nb.ipynb")
    assert root == nb
    committed = (ROOT / "benchmarks").rglob("baselines_cpu.md")
    first_line = next(committed).read_text().splitlines()[0][:60]
    assert any(first_line in "".join(o.get("data", {}).get("text/markdown", "")) for o in root)
    assert not (ROOT / "notebooks" / "results").exists() and not (ROOT.parent / "results").exists()

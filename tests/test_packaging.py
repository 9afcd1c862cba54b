"""The install story: pyproject.toml and environment.yml list the same packages; the README's two
commands are the Makefile targets that CI runs."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    for sep in "<>=!~[ ;":
        req = req.split(sep)[0]
    return req.strip().lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {r for r in pip if not r.startswith("-e")}
    assert listed == wanted, (f"only in environment.yml: {listed - wanted}; "
                              f"only in pyproject: {wanted - listed}")
    assert "python=3.11" in env["dependencies"]


def test_required_dependencies_are_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"]}
    assert {"torch", "torchvision", "medmnist", "numpy", "pandas", "seaborn", "matplotlib",
            "scikit-learn", "tqdm", "ipywidgets", "jupyterlab", "jupytext", "papermill"} <= names
    dev = {_name(r) for r in project["optional-dependencies"]["dev"]}
    assert {"pytest", "ruff", "adversarial-robustness-toolbox"} <= dev


def test_readme_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert "make main" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    makefile = (ROOT / "Makefile").read_text()
    assert "\nmain:" in makefile and "\ntest:" in makefile


def test_top_level_layout():
    for name in ("notebooks", "survey_lib", "data", "tests", "environment.yml", "README.md",
                 "pyproject.toml", ".ci/run", "data/README.md"):
        assert (ROOT / name).exists(), name
    ignored = (ROOT / ".gitignore").read_text()
    assert "data/*" in ignored and "runs/" in ignored


def test_lint_clean():
    """ruff (pyproject's rules) passes on the package, tests, benchmarks and notebooks."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "survey_lib", "tests",
                           "benchmarks", "notebooks"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr

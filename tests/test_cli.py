"""The command line, as a user meets it: real subprocesses, clear errors, exit codes."""

import os
import shutil
import subprocess
import sys


def run(*args, env=None, cwd=None):
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "survey_lib", *args], check=False,
                          capture_output=True, text=True, env=full, cwd=cwd, timeout=600)


def _clear_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ")
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_help_explains_each_command():
    out = run("--help").stdout
    for cmd in ("datasets", "train", "evaluate"):
        assert cmd in out
    assert "--profile" in run("train", "--help").stdout


def test_datasets_lists_local_files(data_env):
    out = run("datasets").stdout
    assert "breastmnist" in out and "ph2" in out and "dermamnist" not in out
    assert "dermamnist" in run("datasets", "--all").stdout


def test_unknown_dataset(data_env):
    _clear_error(run("train", "--dataset", "mnist", "--profile", "smoke", "--out", ""),
                 "Unknown dataset 'mnist'", "pneumoniamnist")


def test_unsupported_size(data_env):
    _clear_error(run("train", "--dataset", "breastmnist", "--size", "32", "--profile", "smoke"),
                 "Valid sizes: 28, 64, 128, 224")


def test_unknown_profile(data_env):
    _clear_error(run("train", "--profile", "turbo"), "Valid profiles: smoke, cpu, paper")
    _clear_error(run("train", env={"SURVEY_PROFILE": "turbo"}), "$SURVEY_PROFILE")


def test_missing_data_root():
    _clear_error(run("datasets", "--root", "/nonexistent/folder"), "does not exist")
    _clear_error(run("datasets", env={"SURVEY_DATA_DIR": "/nonexistent/folder"}),
                 "$SURVEY_DATA_DIR")


def test_missing_file_offline(tmp_path):
    # no network here; on a connected machine this would download instead
    proc = run("train", "--dataset", "dermamnist", "--profile", "smoke", "--root", str(tmp_path),
               env={"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"})
    _clear_error(proc, "dermamnist.npz", "could not be downloaded", "MD5")


def test_corrupt_file(tmp_path, real_root):
    (tmp_path / "medmnist").mkdir()
    bad = tmp_path / "medmnist" / "breastmnist.npz"
    shutil.copy(real_root / "medmnist" / "breastmnist.npz", bad)
    with open(bad, "r+b") as fh:
        fh.seek(5000)
        fh.write(b"\0" * 100)
    _clear_error(run("train", "--profile", "smoke", "--root", str(tmp_path)), "corrupt")


def test_train_smoke_writes_table_and_figure(data_env, tmp_path):
    proc = run("train", "--dataset", "breastmnist", "--profile", "smoke", "--out",
               str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stderr
    for ext in ("csv", "md", "png", "pdf"):
        assert (tmp_path / "results" / f"baselines_smoke.{ext}").stat().st_size > 0
    assert "test_bacc" in (tmp_path / "results" / "baselines_smoke.md").read_text()
    ev = run("evaluate", "--dataset", "breastmnist", "--profile", "smoke")
    assert ev.returncode == 0 and "bacc=" in ev.stdout and "shares=" in ev.stdout

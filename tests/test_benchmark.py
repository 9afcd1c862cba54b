"""The benchmark grid: resumable JSON rows, identical tables after a kill, clear errors."""

import dataclasses
import json

import pytest

from survey_lib import benchmark as B
from survey_lib.errors import ConfigError, SurveyError
from survey_lib.report import benchmark_table, save_benchmark_tables

SPEC = dataclasses.replace(B.GRIDS["smoke"], attacks=("clean", "fgsm", "pgd", "autoattack"))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, real_root):
    import os

    os.environ["SURVEY_DATA_DIR"] = str(real_root)
    root = tmp_path_factory.mktemp("full")
    return root, B.run_grid(SPEC, root, "smoke", progress=False)


def test_grid_rows_are_complete(full_run):
    root, rows = full_run
    assert len(rows) == len(B.plan(SPEC)) == 16
    row = rows[0]
    for key in ("dataset", "defense", "train_eps", "attack", "eval_eps", "clean_acc", "robust_acc",
                "clean_bacc", "robust_bacc", "robust_auc", "robust_shares", "collapsed", "n", "seed",
                "wall_seconds", "device", "package_version", "git_commit", "schema_version"):
        assert key in row
    by = {(r["defense"], r["eps"], r["attack"]): r for r in rows}
    for defense in ("nat", "pgd_at"):
        for eps in (2, 8):
            assert by[(defense, eps, "pgd")]["robust_acc"] <= by[(defense, eps, "clean")]["robust_acc"]
    assert not list(root.rglob(".*tmp*"))  # atomic writes leave nothing behind


def test_killed_run_resumes_without_recomputing(full_run, tmp_path, monkeypatch):
    """A run killed after 5 cells and resumed gives the rows of the uninterrupted run, each cell
    computed once. Its models are trained again in a cache of their own (not loaded from the first
    run's), so this also checks that training and evaluation are deterministic."""
    _, rows = full_run
    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path / "runs"))
    results = tmp_path / "results"
    B.run_grid(SPEC, results, "smoke", progress=False, stop_after=5)  # "killed" after 5 cells
    done = {p: p.stat().st_mtime_ns for p in results.rglob("*.json")}
    assert len(done) == 5
    computed = []
    real = B.run_cell
    monkeypatch.setattr(B, "run_cell", lambda cell, *a: computed.append(cell) or real(cell, *a))
    resumed = B.run_grid(SPEC, results, "smoke", progress=False)
    assert len(computed) == 11 and all(p.stat().st_mtime_ns == t for p, t in done.items())
    assert len(list((tmp_path / "runs").rglob("model.pt"))) == 3  # nat, pgd_at ε=2 and ε=8: retrained
    pick = ["defense", "eps", "attack", "clean_acc", "clean_auc", "robust_acc", "robust_bacc",
            "robust_auc", "robust_shares"]
    assert [[r[k] for k in pick] for r in resumed] == [[r[k] for k in pick] for r in rows]
    assert benchmark_table(resumed, "breastmnist").equals(benchmark_table(rows, "breastmnist"))


def test_corrupt_row_is_reported_and_recomputed(full_run, tmp_path):
    root, rows = full_run
    B.run_grid(SPEC, tmp_path, "smoke", progress=False, stop_after=2)
    victim = sorted(tmp_path.rglob("*.json"))[0]
    victim.write_text(victim.read_text()[:40])  # truncated
    rows_now, problems = B.load_rows(tmp_path)
    assert len(rows_now) == 1 and len(problems) == 1 and "corrupt or truncated" in problems[0]
    B.run_grid(dataclasses.replace(SPEC, defenses=("nat",), eps=(2,), attacks=("clean", "fgsm")),
               tmp_path, "smoke", progress=False)
    assert json.loads(victim.read_text())["schema_version"] == B.SCHEMA_VERSION


def test_incompatible_schema_is_a_clear_error(full_run, tmp_path):
    root, _ = full_run
    path = next(root.rglob("*.json"))
    row = json.loads(path.read_text())
    old = tmp_path / path.relative_to(root)
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({**row, "schema_version": 0}))
    with pytest.raises(SurveyError, match="schema version 0"):
        B.load_rows(tmp_path)


def test_tables_and_figures(full_run, tmp_path):
    from survey_lib.report import plot_benchmark, save_figures

    _, rows = full_run
    paths = save_benchmark_tables(rows, tmp_path / "tables")
    assert (tmp_path / "tables" / "breastmnist_robust_bacc.tex").read_text().startswith("\\begin")
    md = (tmp_path / "tables" / "breastmnist_robust_acc.md").read_text()
    assert "pgd_at" in md and "autoattack ε=8" in md
    paths += save_figures(plot_benchmark(rows), tmp_path / "figures")
    assert all(p.stat().st_size > 0 for p in paths)


def _cell(text: str) -> tuple[float, bool]:
    """A table cell "0.123†" as (0.123, True)."""
    return float(text.rstrip("†")), text.endswith("†")


def _markdown_cells(text: str) -> dict:
    """{(row label, column label): (value, dagger)} of the one Markdown table in ``text``."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    split = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    header, body = split[0], split[2:]  # split[1] is the :--- separator
    return {(row[0], col): _cell(cell) for row in body for col, cell in zip(header[1:], row[1:])}


def _latex_cells(text: str, columns: list[str]) -> dict:
    """{(row label, column label): (value, dagger)} of the body rows of a LaTeX table."""
    body = text.split("\\midrule")[1].split("\\bottomrule")[0]
    rows = [[c.strip() for c in line.rstrip("\\ ").split("&")] for line in body.splitlines()
            if "&" in line]
    return {(row[0], col): _cell(cell) for row in rows for col, cell in zip(columns, row[1:])}


def test_dagger_marks_exactly_the_collapsed_models(tmp_path):
    """† follows the *model* (dataset, defense, training ε) whose clean predictions collapsed, in
    every attack column at that ε and nowhere else; a model that collapses only under attack
    (robust_collapsed) is not marked. Checked cell by cell in the Markdown and LaTeX tables."""
    collapsed = {("breastmnist", "pgd_at", 8), ("pneumoniamnist", "trades", 2)}
    rows, value = [], 0.1
    for dataset in ("breastmnist", "pneumoniamnist"):
        for defense in ("nat", "pgd_at", "trades"):
            for eps in (2, 8):
                for attack in ("clean", "pgd"):
                    value = round(value + 0.013, 3)  # every cell its own value
                    rows.append({"dataset": dataset, "defense": defense, "eps": eps,
                                 "attack": attack, "robust_acc": value,
                                 "robust_bacc": round(1 - value, 3),
                                 "collapsed": (dataset, defense, eps) in collapsed,
                                 "robust_collapsed": defense == "nat" and attack == "pgd"})
    save_benchmark_tables(rows, tmp_path)
    columns = [f"{attack} ε={eps}" for attack in ("clean", "pgd") for eps in (2, 8)]
    for dataset in ("breastmnist", "pneumoniamnist"):
        for metric in ("robust_acc", "robust_bacc"):
            expected = {(r["defense"], f"{r['attack']} ε={r['eps']}"):
                        (r[metric], (dataset, r["defense"], r["eps"]) in collapsed)
                        for r in rows if r["dataset"] == dataset}
            stem = tmp_path / f"{dataset}_{metric}"
            assert _markdown_cells(stem.with_suffix(".md").read_text()) == expected
            assert _latex_cells(stem.with_suffix(".tex").read_text(), columns) == expected
    marked = sum(dagger for _, dagger in _markdown_cells(
        (tmp_path / "breastmnist_robust_acc.md").read_text()).values())
    assert marked == 2  # pgd_at at ε=8 under clean and pgd


@pytest.mark.parametrize("field,value,match", [
    ("datasets", ("mnist",), "Unknown dataset"), ("defenses", ("nat", "adv"), "Unknown defense 'adv'"),
    ("attacks", ("pgd", "zoo"), "Unknown attack 'zoo'"), ("eps", (0,), "must lie in"),
])
def test_bad_grid_spec(field, value, match):
    with pytest.raises(ConfigError, match=match):
        B.plan(dataclasses.replace(SPEC, **{field: value}))


def test_submitit_local_executor(full_run, tmp_path):
    spec = dataclasses.replace(SPEC, defenses=("nat",), eps=(8,), attacks=("clean", "fgsm"))
    rows = B.run_grid(spec, tmp_path, "smoke", executor="submitit-local", progress=False)
    assert [r["attack"] for r in rows] == ["clean", "fgsm"]
    assert (tmp_path / "_submitit").exists()
    with pytest.raises(ConfigError, match="Valid executors"):
        B.run_grid(spec, tmp_path, "smoke", executor="kubernetes")


def test_run_log_records_each_invocation(full_run):
    root, _ = full_run
    log = B.read_run_log(root)
    assert len(log) == 1 and log[0]["cells_computed"] == log[0]["cells_total"] == 16
    assert log[0]["wall_seconds"] > 0 and log[0]["executor"] == "local"
    (root / "run_log.jsonl").open("a").write('{"cut by a ki')  # a kill mid-line: skipped
    assert len(B.read_run_log(root)) == 1


def test_per_dataset_overrides():
    spec = dataclasses.replace(SPEC, datasets=("breastmnist", "pneumoniamnist"), extra={
        "pneumoniamnist": {"defenses": ("nat",), "eps": (8,)}})
    cells = B.plan(spec)
    assert {(c.defense, c.eps) for c in cells if c.dataset == "pneumoniamnist"} == {("nat", 8)}
    assert {(c.defense, c.eps) for c in cells if c.dataset == "breastmnist"} == {
        (d, e) for d in ("nat", "pgd_at") for e in (2, 8)}
    with pytest.raises(ConfigError, match="Unknown defense 'adv'"):
        B.plan(dataclasses.replace(spec, extra={"pneumoniamnist": {"defenses": ("adv",)}}))


def test_gallery(full_run):
    from survey_lib.report import plot_gallery

    examples = B.gallery(SPEC, "smoke", n=3)
    assert [(e["defense"], e["eps"]) for e in examples] == [("nat", 8), ("pgd_at", 8)]
    for e in examples:
        assert (e["x_adv"] - e["x"]).abs().max() <= 8 / 255 + 1e-6 and len(e["pred_adv"]) == 3
    assert len(plot_gallery(examples).axes) == 2 * 2 * 3

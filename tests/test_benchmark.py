"""The benchmark grid: the survey's protocol as rows (one model attacked at every ε, seeds as an
axis), resumable JSON rows that defend themselves, concurrent runners that never duplicate work,
the run log, and clear errors."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from survey_lib import benchmark as B
from survey_lib.benchmark import rows as R
from survey_lib.benchmark import runner
from survey_lib.errors import ConfigError, SurveyError
from survey_lib.report import plot_benchmark, save_benchmark_tables, save_figures

SPEC = B.GRIDS["smoke"].replace(
    attacks=("clean", "fgsm", "pgd", "cw", "aa_lite", "square", "simba", "transfer", "sanity"))
MODELS = {("breastmnist", "nat", None, 0), ("breastmnist", "pgd_at", 8, 0)}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, real_root):
    """The smoke grid, run once with its own model cache (so its run log counts every training)."""
    saved = {k: os.environ.get(k) for k in ("SURVEY_DATA_DIR", "SURVEY_RUNS_DIR")}
    os.environ["SURVEY_DATA_DIR"] = str(real_root)
    os.environ["SURVEY_RUNS_DIR"] = str(tmp_path_factory.mktemp("bench_runs"))
    root = tmp_path_factory.mktemp("full")
    yield root, B.run_grid(SPEC, root, "smoke", progress=False)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_plan_attacks_each_model_at_every_eps():
    cells = B.plan(SPEC)
    assert {c.model for c in cells} == MODELS
    for model in MODELS:
        mine = [c for c in cells if c.model == model]
        assert {c.eval_eps for c in mine if c.attack == "pgd"} == {2, 8}
        assert [c.attack for c in mine if c.eval_eps is None] == ["clean", "sanity"]
    seeds = B.plan(SPEC.replace(seeds=(0, 1, 2)))
    assert len(seeds) == 3 * len(cells) and {c.seed for c in seeds} == {0, 1, 2}


def test_grid_rows_are_complete(full_run):
    root, rows = full_run
    assert len(rows) == len(B.plan(SPEC))
    by = {(r["defense"], r["attack"], r["eval_eps"]): r for r in rows}
    for row in rows:
        for key in ("dataset", "defense", "train_eps", "seed", "attack", "eval_eps", "attack_config",
                    "n", "model_key", "wall_seconds", "device", "git_commit", "schema_version"):
            assert key in row, key
        if row["attack"] != "sanity":
            for key in ("acc", "bacc", "macro_precision", "macro_recall", "macro_f1", "shares",
                        "collapsed", "below_majority", "clean_acc"):
                assert key in row, key
            assert len(row["pred"]) == len(row["y"]) == row["n"]
            assert row["below_majority"] == (row["acc"] < row["majority_rate"])
    assert by[("nat", "clean", None)]["train_eps"] is None and by[("pgd_at", "clean", None)]["train_eps"] == 8
    # the AUC only where the attack ran to the end
    assert by[("nat", "pgd", 8)]["auc"] is not None and by[("nat", "fgsm", 2)]["auc"] is not None
    for attack in ("cw", "aa_lite", "square", "simba"):
        assert by[("nat", attack, 8)]["auc"] is None and "stops early" in by[("nat", attack, 8)]["auc_note"]
    # slow columns on a class-stratified subset, named in the row
    square = by[("nat", "square", 8)]
    assert square["subset"] == {"n": 32, "of": 156, "stratified": True, "seed": 0}
    assert len(square["index"]) == 32 and square["y"].count("0") == round(32 * 42 / 156)
    assert "Square(eps=8/255, steps=20" in square["attack_config"]
    assert by[("nat", "transfer", 8)]["attack_config"].endswith("surrogate=nat_s1000)")
    assert set(by[("nat", "sanity", None)]["sanity"]) == {"eps", "pgd_acc", "strong_pgd_acc", "eps64_acc"}
    assert "PGD(eps=8/255, steps=5, step=2/255, restarts=2" in by[("nat", "sanity", None)]["attack_config"]
    assert not list(root.rglob(".*tmp*")) and not list(root.rglob("*.claim"))


def test_killed_run_resumes_without_recomputing(tmp_path, monkeypatch, data_env):
    """A run killed after 4 cells and resumed gives the rows of an uninterrupted run, each cell
    computed once. The two runs train their models in model caches of their own (neither loads the
    other's), so this also checks that training and evaluation are deterministic."""
    spec = SPEC.replace(attacks=("clean", "fgsm", "pgd"))
    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path / "runs_full"))
    rows = B.run_grid(spec, tmp_path / "full", "smoke", progress=False)
    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path / "runs"))
    results = tmp_path / "results"
    B.run_grid(spec, results, "smoke", progress=False, stop_after=4)  # "killed" after 4 cells
    done = {p: p.stat().st_mtime_ns for p in results.rglob("*.json")}
    assert len(done) == 4
    computed = []
    real = runner.run_cell
    monkeypatch.setattr(runner, "run_cell", lambda cell, *a: computed.append(cell) or real(cell, *a))
    resumed = B.run_grid(spec, results, "smoke", progress=False)
    assert len(computed) == len(B.plan(spec)) - 4 and all(p.stat().st_mtime_ns == t for p, t in done.items())
    for cache in ("runs_full", "runs"):  # nat and pgd_at ε=8, trained in each cache
        assert len(list((tmp_path / cache).rglob("model.pt"))) == 2
    pick = ["defense", "attack", "eval_eps", "acc", "bacc", "auc", "pred"]
    full = {(r["defense"], r["attack"], r["eval_eps"]): [r[k] for k in pick] for r in rows
            if r["attack"] != "sanity"}
    assert len(resumed) == len(rows) == len(full)
    assert all(full[(r["defense"], r["attack"], r["eval_eps"])] == [r[k] for k in pick] for r in resumed)


def _copy(src: Path, dst: Path) -> None:
    for path in src.rglob("*.json"):
        (dst / path.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
        (dst / path.relative_to(src)).write_text(path.read_text())


def test_results_folder_defends_itself(full_run, tmp_path, monkeypatch, capsys):
    root, rows = full_run
    _copy(root, tmp_path)
    nat = tmp_path / "breastmnist" / "nat_s0"
    # (1) a valid-looking row of a dataset never run
    alien = tmp_path / "pneumoniamnist" / "nat_s0" / "pgd_e8.json"
    alien.parent.mkdir(parents=True)
    alien.write_text((nat / "pgd_e8.json").read_text().replace("breastmnist", "pneumoniamnist"))
    # (2) a row at the wrong path: the ε=8 row moved to ε=2
    (nat / "fgsm_e2.json").write_text((nat / "fgsm_e8.json").read_text())
    # (3) a foreign JSON file
    (nat / "notes.json").write_text('{"hello": 1}')
    # (4) a row made with other attack settings
    row = json.loads((nat / "pgd_e2.json").read_text())
    (nat / "pgd_e2.json").write_text(json.dumps({**row, "attack_config": row["attack_config"].replace(
        "steps=3", "steps=7")}))
    # (5) a row computed on another model
    row = json.loads((nat / "cw_e2.json").read_text())
    (nat / "cw_e2.json").write_text(json.dumps({**row, "model_key": "nat-smallcnn-000000000000"}))
    accepted, problems = B.load_rows(tmp_path, SPEC, "smoke")
    text = "\n".join(problems)
    assert len(accepted) == len(rows) - 3 and len(problems) == 5
    assert "pneumoniamnist" in text and "not a cell of this grid" in text and "ignored" in text
    assert "not the cell ('breastmnist', 'nat', None, 0, 'fgsm', 2)" in text
    assert "notes.json: not a cell" in text
    assert "but the grid asks for" in text and "computed on model nat-smallcnn-000000000000" in text
    assert {"pneumoniamnist"} not in [{r["dataset"]} for r in accepted]
    paths = save_benchmark_tables(accepted, tmp_path / "tables")
    assert not (tmp_path / "tables" / "pneumoniamnist.md").exists() and paths
    # the runner recomputes exactly the rejected planned cells, truthfully as the warnings said
    computed = []
    real = runner.run_cell
    monkeypatch.setattr(runner, "run_cell", lambda cell, *a: computed.append(cell) or real(cell, *a))
    again = B.run_grid(SPEC, tmp_path, "smoke", progress=False)
    assert sorted((c.attack, c.eval_eps) for c in computed) == [("cw", 2), ("fgsm", 2), ("pgd", 2)]
    left = B.load_rows(tmp_path, SPEC, "smoke")[1]
    assert len(again) == len(rows) and len(left) == 2 and all("not a cell" in p for p in left)


def test_a_row_is_accepted_only_at_its_own_path(tmp_path, monkeypatch):
    """Without training: a row whose attack settings are right but whose identity is another cell's
    (seed 1's row at seed 0's path) is refused, naming both cells; at its own path it is accepted."""
    monkeypatch.delenv("SURVEY_ATTACK_PRECISION", raising=False)
    spec = SPEC.replace(attacks=("clean", "fgsm"), seeds=(0, 1))
    cell = next(c for c in B.plan(spec) if c.seed == 1 and c.attack == "fgsm" and c.eval_eps == 8)
    row = {**dataclasses.asdict(cell), "attack_config": R._attack_configs(spec, None)(cell),
           "precision": "fp32", "model_key": "m"}
    wrong = dataclasses.replace(cell, seed=0).path(tmp_path)
    R.write_row(row, wrong)
    accepted, problems = B.load_rows(tmp_path, spec)
    assert accepted == [] and len(problems) == 1
    assert "not the cell ('breastmnist', 'nat', None, 0, 'fgsm', 8)" in problems[0]
    wrong.unlink()
    R.write_row(row, cell.path(tmp_path))
    accepted, problems = B.load_rows(tmp_path, spec)
    assert problems == [] and [r["seed"] for r in accepted] == [1]


def test_incompatible_schema_is_a_clear_error(full_run, tmp_path):
    root, _ = full_run
    path = next(root.rglob("clean.json"))
    old = tmp_path / path.relative_to(root)
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": 1}))
    with pytest.raises(SurveyError, match="schema version 1"):
        B.load_rows(tmp_path, SPEC, "smoke")


def test_names_and_numbers_are_normalised():
    upper = SPEC.replace(datasets=("BreastMNIST",), defenses=("NAT", "PGD_AT"), eval_eps=(2.0, 8.0),
                         train_eps=8.0)
    assert B.plan(upper) == B.plan(SPEC)
    assert B.plan(upper)[0].path(Path("r")) == Path("r/breastmnist/nat_s0/clean.json")
    assert B.Cell("breastmnist", "pgd_at", 8, 0, "pgd", 2).model_dir() == "pgd_at_t8_s0"


def test_report_for_any_subset_of_columns(full_run, tmp_path):
    _, rows = full_run
    for keep in (("clean",), ("clean", "sanity"), ("pgd",)):
        subset = [r for r in rows if r["attack"] in keep]
        paths = save_benchmark_tables(subset, tmp_path / "-".join(keep))
        paths += save_figures(plot_benchmark(subset), tmp_path / "-".join(keep))
        assert all(p.stat().st_size > 0 for p in paths)


def test_tables_and_figures(full_run, tmp_path):
    _, rows = full_run
    paths = save_benchmark_tables(rows, tmp_path / "tables")
    md = (tmp_path / "tables" / "breastmnist.md").read_text()
    assert "pgd_at (ε=8)" in md and "AA-lite ε=8 acc" in md and "PGD ε=2 bACC" in md
    assert "AutoAttack" not in md.replace("AA-lite", "")  # a reduced cascade is never called AutoAttack
    assert "n = 32 (class-stratified 32 of 156)" in md
    assert (tmp_path / "tables" / "breastmnist.tex").read_text().startswith("\\begin")
    paths += save_figures(plot_benchmark(rows), tmp_path / "figures")
    assert {p.name for p in paths} >= {"robust_vs_eps.png", "tradeoff.png", "cost.png", "rows.csv",
                                       "summary.csv", "sanity.csv"}


@pytest.mark.parametrize("field,value,match", [
    ("datasets", ("mnist",), "Unknown dataset"), ("defenses", ("nat", "adv"), "Unknown defense 'adv'"),
    ("attacks", ("pgd", "zoo"), "Unknown attack 'zoo'"), ("eval_eps", (0,), "must be positive"),
    ("seeds", (), "no seed"), ("seeds", (1000,), "surrogate_seed 1000 is also a grid seed"),
])
def test_bad_grid_spec(field, value, match):
    with pytest.raises(ConfigError, match=match):
        B.plan(dataclasses.replace(SPEC, **{field: value}))


def test_submitit_local_executor(full_run, tmp_path):
    spec = SPEC.replace(defenses=("nat",), eval_eps=(8,), attacks=("clean", "fgsm"))
    rows = B.run_grid(spec, tmp_path, "smoke", executor="submitit-local", progress=False)
    assert [r["attack"] for r in rows] == ["clean", "fgsm"]
    assert (tmp_path / "_submitit").exists()
    with pytest.raises(ConfigError, match="Valid executors"):
        B.run_grid(spec, tmp_path, "smoke", executor="kubernetes")


def test_run_log_records_every_invocation(full_run, tmp_path):
    root, _ = full_run
    log = B.read_run_log(root)
    assert len(log) == 1 and log[0]["cells_computed"] == log[0]["cells_total"] == len(B.plan(SPEC))
    assert log[0]["models_trained"] == 3 and log[0]["wall_seconds"] > 0 and not log[0]["interrupted"]
    # a runner killed outright leaves a start entry only: reported, its time estimated from its rows
    _copy(root, tmp_path)
    (tmp_path / "run_log.jsonl").write_text((root / "run_log.jsonl").read_text().splitlines()[0] + "\n")
    killed = B.read_run_log(tmp_path)
    assert killed[0]["killed"] and 0 < killed[0]["wall_seconds_estimated"] <= log[0]["wall_seconds"] + 2
    with open(tmp_path / "run_log.jsonl", "a") as f:
        f.write('{"event": "end", "invocation": "cut by a ki')  # a kill mid-line: skipped
    assert len(B.read_run_log(tmp_path)) == 1


def test_two_runners_on_one_folder_compute_every_cell_once(tmp_path, data_env):
    """Two concurrent `benchmark --profile smoke` runs: every cell and every model computed once."""
    env = {**os.environ, "SURVEY_RUNS_DIR": str(tmp_path / "runs"), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "survey_lib", "benchmark", "--profile", "smoke", "--results",
           str(tmp_path / "res"), "--attacks", "clean", "fgsm", "pgd", "cw", "--seeds", "0", "1", "2"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(2)]
    outputs = [p.communicate(timeout=900)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    spec = SPEC.replace(attacks=("clean", "fgsm", "pgd", "cw"), seeds=(0, 1, 2))
    rows, problems = B.load_rows(tmp_path / "res", spec, "smoke")
    assert len(rows) == len(B.plan(spec)) and not problems
    log = B.read_run_log(tmp_path / "res")
    assert len(log) == 2 and sum(r["cells_computed"] for r in log) == len(rows)
    assert sum(r["models_trained"] for r in log) == 3 * len(MODELS)
    assert len({r["invocation"] for r in rows}) == 2  # both did work


def test_per_dataset_overrides():
    spec = SPEC.replace(datasets=("breastmnist", "pneumoniamnist"), extra={
        "pneumoniamnist": {"defenses": ("nat",), "eval_eps": (8,), "seeds": (3,)}})
    cells = B.plan(spec)
    assert {(c.defense, c.eval_eps, c.seed) for c in cells if c.dataset == "pneumoniamnist"} == {
        ("nat", 8, 3), ("nat", None, 3)}
    assert {c.model for c in cells if c.dataset == "breastmnist"} == MODELS
    with pytest.raises(ConfigError, match="Unknown defense 'adv'"):
        B.plan(spec.replace(extra={"pneumoniamnist": {"defenses": ("adv",)}}))


def test_gallery(full_run):
    from survey_lib.report import plot_gallery

    examples = B.gallery(SPEC, "smoke", n=3)
    assert [(e["defense"], e["eps"]) for e in examples] == [("nat", 8), ("pgd_at", 8)]
    nat = examples[0]
    assert (nat["pred"] == nat["y"]).all()  # chosen among correctly classified images
    for e in examples:
        assert (e["x_adv"] - e["x"]).abs().max() <= 8 / 255 + 1e-6 and len(e["pred_adv"]) == 3
    fig = plot_gallery(examples)
    titles = [ax.get_title() for ax in fig.axes]
    assert any("true: " in t for t in titles) and any("δ amplified" in t for t in titles)
    assert any("normal, benign" in t or "malignant" in t for t in titles)  # full class names
    # a grid without the figure's models (`--defenses trades`) has no gallery, and no error
    assert B.gallery(SPEC.replace(defenses=("trades",)), "smoke") == []


def test_rows_module_rejects_partial_files(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"dataset": "breastmnist"')
    assert R.parse_row(path) == (None, "unreadable or truncated JSON (JSONDecodeError)")


def test_local_workers_share_the_cells(tmp_path, data_env, monkeypatch):
    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path / "runs"))
    spec = SPEC.replace(attacks=("clean", "fgsm", "pgd"), seeds=(0, 1))
    rows = B.run_grid(spec, tmp_path / "res", "smoke", progress=False, workers=2)
    assert len(rows) == len(B.plan(spec))
    log = B.read_run_log(tmp_path / "res")
    assert log[0]["workers"] == 2 and log[0]["cells_computed"] == len(rows)
    assert log[0]["models_trained"] == 4 and len({r["host_pid"] for r in rows}) == 2
    with pytest.raises(ConfigError, match="local executor only"):
        B.run_grid(spec, tmp_path / "res", "smoke", executor="slurm", workers=2)


def test_segmentation_and_volume_rows(tmp_path, data_env, monkeypatch):
    monkeypatch.setenv("SURVEY_RUNS_DIR", str(tmp_path / "runs"))
    spec = B.GRIDS["smoke-seg3d"].replace(eval_eps=(8,), eval_subset=4)
    assert {(c.dataset, c.attack) for c in B.plan(spec)} == {
        ("ph2", a) for a in ("clean", "pgd_ce", "pgd_dice")} | {
        ("adrenalmnist3d", a) for a in ("clean", "fgsm", "pgd")}
    rows = B.run_grid(spec, tmp_path / "res", "smoke", progress=False)
    seg = {(r["defense"], r["attack"]): r for r in rows if r["dataset"] == "ph2"}
    assert len(rows) == len(B.plan(spec)) and seg[("nat", "pgd_dice")]["n"] == 4
    for r in seg.values():
        assert 0 <= r["dice"] <= 1 and len(r["dice_per_image"]) == 4
        assert r["dice"] == pytest.approx(sum(r["dice_per_image"]) / 4, abs=1e-4)
    assert seg[("nat", "pgd_dice")]["dice"] <= seg[("nat", "clean")]["dice"] + 1e-6
    vol = [r for r in rows if r["dataset"] == "adrenalmnist3d" and r["attack"] == "pgd"]
    assert vol and all("acc" in r and r["n"] == 4 for r in vol)
    paths = save_benchmark_tables(rows, tmp_path / "tables")
    paths += save_figures(plot_benchmark(rows), tmp_path / "figures")
    table = (tmp_path / "tables" / "ph2.md").read_text()
    assert "PGD-Dice ε=8 dice" in table and "random 4 of 40" in table and "Dice and IoU" in table

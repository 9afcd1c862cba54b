"""The command line: ``python -m survey_lib <command>``. Thin: it parses and calls the package.

Every user-fixable error (unknown dataset or profile, missing or corrupt file, bad data root) is
printed as one paragraph with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import validation
from .errors import ConfigError, SurveyError

PROFILE_HELP = ("compute profile: smoke (CI, seconds), cpu (laptop, minutes), paper (GPU, the "
                "survey's recipe); default: $SURVEY_PROFILE, else cpu")


def _datasets(args) -> None:
    import pandas as pd

    from .data import local_datasets

    rows = pd.DataFrame(local_datasets(args.root))
    if not args.all:
        rows = rows[rows["local"]]
        print("Datasets present under the data root (use --all to list every downloadable one):")
    print(rows.to_string(index=False))


def _train(args) -> None:
    from .report import baseline_table, plot_baselines, provenance, save_figures, save_table
    from .train import train_baseline

    records = []
    for name in args.dataset:
        _, record = train_baseline(name, args.profile, args.size, args.seed, args.root,
                                   force=args.force)
        records.append(record)
    table = baseline_table(records)
    print(table.drop(columns=["command"]).to_string(index=False))
    if args.out != "":
        from .paths import results_dir

        out = Path(args.out) if args.out else results_dir()
        stem = f"baselines_{records[0]['config']['profile']}"
        paths = save_table(table, out / stem,
                           note=provenance("python -m survey_lib " + " ".join(args.argv)))
        paths += save_figures({stem: plot_baselines(records)}, out)
        print("wrote " + ", ".join(map(str, paths)))


def _evaluate(args) -> None:
    from .train import evaluate, load_dataset, train_baseline

    if args.model_file:
        return _evaluate_external(args)
    model, record = train_baseline(args.dataset, args.profile, args.size, args.seed, args.root)
    split = load_dataset(args.dataset, args.size, args.root)[args.split]
    metrics = evaluate(model, split)
    print(f"{args.dataset} ({record['config']['profile']} profile, {args.split} split): " +
          ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in metrics.items()))


def _profile_and_grid(args):
    """(profile, grid name): ``--grid`` (default: the profile's own grid) and ``--profile``
    (default: the grid's profile, else $SURVEY_PROFILE, else cpu)."""
    from .benchmark import GRIDS
    from .benchmark.spec import grid_profile
    from .config import get_profile

    grid = getattr(args, "grid", None)
    if grid is not None and grid.lower() not in GRIDS:
        raise ConfigError(f"Unknown grid {grid!r}. Valid grids: {', '.join(GRIDS)}.")
    profile = get_profile(args.profile or (grid_profile(grid.lower()) if grid else None))
    name = grid.lower() if grid else profile.name
    if grid_profile(name) != profile.name:
        raise ConfigError(f"The grid {name!r} belongs to the {grid_profile(name)!r} profile, not "
                          f"{profile.name!r}: drop --profile or pick a grid of that profile.")
    return profile, name


def _grid(args, profile, datasets=None):
    """The grid (``--grid``, else the profile's) with the command line's overrides, only the
    datasets readable here (unless named), and the external models registered in the results
    folder."""
    from .benchmark import GRIDS
    from .benchmark.spec import available, configure
    from .external import registered
    from .paths import results_dir

    _, name = _profile_and_grid(args)
    for e in getattr(args, "eps", None) or []:
        validation.linf_eps(e, "benchmark", param="--eps", pixel_option=None)
    if getattr(args, "train_eps", None) is not None:
        validation.linf_eps(args.train_eps, "benchmark", param="--train-eps", pixel_option=None)
    results = Path(args.results) if args.results else results_dir() / f"benchmark_{name}"
    spec = configure(GRIDS[name], datasets, getattr(args, "defenses", None),
                     getattr(args, "attacks", None), getattr(args, "eps", None),
                     getattr(args, "train_eps", None), getattr(args, "seeds", None))
    if not datasets:  # the profile's datasets: only those that can be read here
        spec, skipped = available(spec)
        for name, why in skipped.items():
            print(f"skipped {name}: {why} (name it with --datasets to insist)", file=sys.stderr)
        if not spec.datasets:
            raise ConfigError(f"None of the {name} grid's datasets can be read here "
                              f"({', '.join(skipped)}). Put their files under $SURVEY_DATA_DIR "
                              "(see data/README.md) or pick local ones with --datasets.")
    return spec.replace(external=registered(results)), results


def _report(spec, results: Path, profile, argv, examples: bool) -> None:
    """Tables and figures of a results folder's rows of ``spec`` (the gallery when ``examples``)."""
    from .benchmark import gallery, grid_wall_seconds, load_rows, read_run_log
    from .benchmark.spec import describe
    from .report import (
        plot_benchmark,
        plot_gallery,
        provenance,
        results_markdown,
        save_benchmark_tables,
        save_figures,
    )

    rows, problems = load_rows(results, spec, profile)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if not rows:
        print(f"no result rows of this grid in {results} yet")
        return
    runs = read_run_log(results)
    note = provenance("python -m survey_lib " + " ".join(argv)) + " " + describe(spec)
    if runs:
        note += (f" Grid wall time: {grid_wall_seconds(runs) / 60:.1f} min over {len(runs)} "
                 f"invocation(s) of the runner ({runs[-1]['device']}, "
                 f"{runs[-1]['torch_threads']} torch threads), see run_log.jsonl.")
    paths = save_benchmark_tables(rows, results / "tables", note)
    figs = plot_benchmark(rows)
    if examples and (found := gallery(spec, profile)):  # the models are in this machine's cache
        figs["gallery"] = plot_gallery(found)
    paths += save_figures(figs, results / "figures")
    (results / "results.md").write_text(results_markdown(rows))  # the README quotes it (a test checks)
    paths.append(results / "results.md")
    print(f"{len(rows)} rows; wrote {len(paths)} files under {results}/tables and {results}/figures")


def _evaluate_external(args) -> None:
    """``evaluate --model-file``: the model through the profile's grid protocol on one dataset; its
    rows beside ours in the results folder, then that folder's tables."""
    from .benchmark import run_grid
    from .external import register

    profile, _ = _profile_and_grid(args)
    _, results = _grid(args, profile)
    name = args.name or Path(args.model_file.split(":")[-1]).stem
    defense = register(results, name, args.model_file, args.dataset)
    spec, _ = _grid(args, profile, datasets=[args.dataset])
    seeds = [args.seed] if args.seed is not None else None
    run = spec.replace(defenses=(), external={defense: spec.external[defense]},
                       seeds=seeds or spec.seeds, extra={})
    run_grid(run, results, profile)
    _report(_grid(args, profile)[0], results, profile, args.argv, examples=False)


def _benchmark(args) -> None:
    from .benchmark import estimate_seconds, plan, run_grid

    profile, _ = _profile_and_grid(args)
    spec, results = _grid(args, profile, args.datasets)
    cells = plan(spec)
    if args.dry_run:
        models = {c.model for c in cells}
        seconds = estimate_seconds(cells, spec, results, profile)
        print(f"{len(cells)} cells ({len(models)} models) in {results}; estimated cost of the "
              f"unfinished ones: ~{seconds / 60:.0f} min on a 2-core CPU (rough upper bound).")
        for c in cells:
            eps = "" if c.eval_eps is None else f"ε={c.eval_eps:g}/255"
            print(f"  {c.dataset:15s} {c.model_dir():16s} {c.attack:10s} {eps}")
        return
    if not args.report_only:
        slurm = {}
        for item in args.slurm or []:
            key, _, value = item.partition("=")
            slurm[key] = int(value) if value.isdigit() else value
        run_grid(spec, results, profile, executor=args.executor, slurm=slurm, workers=args.workers)
    _report(spec, results, profile, args.argv,
            examples=not args.report_only and args.executor == "local")


def _site(args) -> None:
    import os

    from .paths import ROOT
    from .site import build_site

    out = Path(args.out) if args.out else ROOT / "site"
    records = build_site(args.profile or os.environ.get("SURVEY_PROFILE") or "smoke", out,
                         args.notebooks, args.results, with_solutions=args.with_solutions)
    print(f"{len(records)} notebook(s) rendered; open {out / 'index.html'}")


def _exercises(args) -> int:
    from . import exercises
    from .errors import ConfigError

    if args.action == "grade":
        return exercises.grade(args.file)
    if args.nbgrader:
        if args.check:
            raise ConfigError("--check compares the committed student copies; the nbgrader copies are "
                              "not committed. Run `exercises build --check` without --nbgrader.")
        print("wrote nbgrader source notebooks: " + ", ".join(map(str, exercises.build_nbgrader(args.out))))
        return 0
    if args.check:
        stale = exercises.stale(args.out)
        print("stale exercise copies, run `python -m survey_lib exercises build`: " + ", ".join(stale)
              if stale else "the exercise copies are up to date")
        return 1 if stale else 0
    print("wrote " + ", ".join(map(str, exercises.build(args.out))))
    return 0


def _pretrained(args) -> None:
    from . import pretrained

    if args.action == "build":
        from .pretrained.build import build

        built = build(force=args.force)
        print(f"built {', '.join(built) or 'nothing (all present; --force retrains)'}; "
              f"manifest: {pretrained.MANIFEST}")
    shipped = pretrained.table()
    print(shipped.to_string(index=False) if len(shipped) else "no pretrained models shipped")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m survey_lib",
        description="Companion code of 'Adversarial Attack and Defense for Medical Image "
                    "Analysis' (Dong et al., ACM CSUR 2024). Data root: --root, else "
                    "$SURVEY_DATA_DIR, else ./data. Trained models are cached under "
                    "$SURVEY_RUNS_DIR (default ./runs).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("datasets", help="list the datasets present locally (and, with --all, "
                       "every one that can be downloaded)")
    p.add_argument("--all", action="store_true", help="also list datasets not downloaded yet")
    p.add_argument("--root", help="data root (default: $SURVEY_DATA_DIR, else ./data)")
    p.set_defaults(func=_datasets)

    def common(p, many: bool):
        if many:
            p.add_argument("--dataset", nargs="+", default=["breastmnist"],
                           help="one or more MedMNIST flags, or ph2 (default: breastmnist)")
        else:
            p.add_argument("--dataset", default="breastmnist", help="a MedMNIST flag, or ph2")
        p.add_argument("--size", type=int, default=28, help="image size: 28/64/128/224 (2D), "
                       "28/64 (3D); PH2 is 128 whatever this says")
        p.add_argument("--profile", help=PROFILE_HELP)
        p.add_argument("--seed", type=int, help="random seed (default: the profile's)")
        p.add_argument("--root", help="data root (default: $SURVEY_DATA_DIR, else ./data)")

    p = sub.add_parser("train", help="train (or load from the cache) the undefended baseline of "
                       "each dataset, evaluate it on the test split, write a table and a figure")
    common(p, many=True)
    p.add_argument("--out", help="folder for the table (CSV, Markdown) and figure (PNG, PDF); "
                   "'' to skip (default: $SURVEY_RESULTS_DIR, else the checkout's results/)")
    p.add_argument("--force", action="store_true", help="retrain even if a cached model exists")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="evaluate a dataset's cached baseline (training it "
                       "first if needed) on one split")
    common(p, many=False)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--model-file", help="your own classifier instead of our baseline: a TorchScript "
                   "file, or module:function that builds and loads it; it must take the dataset's "
                   "[0, 1] images and return logits. It runs through the profile's benchmark "
                   "protocol (every attack and ε, sanity checks) and its rows join the results "
                   "folder's tables, marked external")
    p.add_argument("--name", help="with --model-file: the model's name in the tables (default: the "
                   "file's or function's name)")
    p.add_argument("--results", help="with --model-file: the results folder (default: "
                   "<results>/benchmark_<profile>, beside our models' rows)")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("benchmark", help="the survey's benchmark grid (defenses × ε × attacks): one "
                       "JSON row per cell, resumable; then tables (CSV/Markdown/LaTeX) and figures")
    p.add_argument("--profile", help=PROFILE_HELP)
    p.add_argument("--grid", help="which grid of the profile: its classification grid (default, "
                   "e.g. cpu) or <profile>-seg3d (PH2 segmentation and AdrenalMNIST3D volumes)")
    p.add_argument("--results", help="results folder (default: <results>/benchmark_<grid>, "
                   "<results> = $SURVEY_RESULTS_DIR, else the checkout's results/); "
                   "finished cells in it are never recomputed")
    p.add_argument("--executor", default="local", help="local (this process) or slurm (one "
                   "submitit job per cell; see README)")
    p.add_argument("--workers", type=int, default=1, help="local executor: that many processes "
                   "share the cells (several cells at once on one GPU; on a CPU the torch threads are "
                   "split between them); default 1")
    p.add_argument("--slurm", nargs="+", metavar="KEY=VALUE", help="submitit parameters for "
                   "--executor slurm, e.g. slurm_partition=gpu gpus_per_node=1 timeout_min=120")
    p.add_argument("--dry-run", action="store_true", help="print the plan and its estimated cost")
    p.add_argument("--report-only", action="store_true", help="only rebuild tables and figures")
    p.add_argument("--datasets", nargs="+", help="override the profile's datasets")
    p.add_argument("--defenses", nargs="+", help="override the defenses (nat pgd_at trades mart "
                   "hat fast_at)")
    p.add_argument("--attacks", nargs="+", help="override the columns (clean fgsm pgd cw "
                   "autoattack aa_lite square simba transfer sanity)")
    p.add_argument("--eps", nargs="+", type=float, help="override the evaluation ε values (/255, "
                   "e.g. 1 2 4 8)")
    p.add_argument("--train-eps", type=float, help="override the training ε of the defended "
                   "models (/255, e.g. 8)")
    p.add_argument("--seeds", nargs="+", type=int, help="override the seeds (e.g. 0 1 2): every "
                   "model is trained once per seed")
    p.set_defaults(func=_benchmark)

    p = sub.add_parser("site", help="execute the notebooks in a profile and write a browsable "
                       "HTML site (index in taxonomy order, exercise copies, API reference, "
                       "benchmark tables and figures)")
    p.add_argument("--profile", help="compute profile (default: $SURVEY_PROFILE, else smoke)")
    p.add_argument("--out", help="output folder (default: the checkout's site/)")
    p.add_argument("--notebooks", nargs="+", metavar="NN", help="only these notebooks, by number "
                   "(e.g. 00 09; default: all)")
    p.add_argument("--results", help="folder whose Markdown tables and PNG figures the site "
                   "shows (default: the repository's benchmarks/, the committed results)")
    p.add_argument("--with-solutions", action="store_true", help="show the exercises' reference "
                   "solutions (by default the site shows their signatures and docstrings only)")
    p.set_defaults(func=_site)

    p = sub.add_parser("exercises", help="course-assignment copies of the notebooks: build the "
                       "student copies (notebooks/exercises/) or grade one")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = actions.add_parser("build", help="write the student copies, solutions replaced by stubs")
    b.add_argument("--out", help="output folder (default: notebooks/exercises; with --nbgrader: "
                   "results/nbgrader)")
    b.add_argument("--check", action="store_true", help="write nothing; exit 1 if the copies in "
                   "the output folder are not up to date")
    b.add_argument("--nbgrader", action="store_true", help="write nbgrader source notebooks instead "
                   "(OUT/source/<notebook>/<notebook>.ipynb: solution regions, autograded check cells "
                   "with the task's grade_id and points) for a course's own nbgrader")
    g = actions.add_parser("grade", help="run the checks of a notebook's tasks on a student's copy: "
                           "per-task report and score (exit 0 at full marks, 1 otherwise, 2 if "
                           "FILE is not an exercise notebook)")
    g.add_argument("file", help="the student's notebook (.ipynb, or a jupytext .py)")
    p.set_defaults(func=_exercises)

    p = sub.add_parser("pretrained", help="the small pretrained checkpoints shipped with the package "
                       "(NAT and PGD-AT SmallCNNs, the PH2 U-Net; cpu profile): list them, or "
                       "train and export them again")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="the shipped models and their test metrics (from the manifest)")
    b = actions.add_parser("build", help="train (cpu profile, through the runs/ cache) the models "
                           "missing from the manifest, export them in float16, evaluate them on "
                           "the test splits and write the manifest")
    b.add_argument("--force", action="store_true", help="retrain and re-evaluate every model")
    p.set_defaults(func=_pretrained)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        code = args.func(args)
    except SurveyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code or 0


if __name__ == "__main__":
    sys.exit(main())

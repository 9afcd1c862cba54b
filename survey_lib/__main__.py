"""The command line: ``python -m survey_lib <command>``. Thin: it parses and calls the package.

Every user-fixable error (unknown dataset or profile, missing or corrupt file, bad data root) is
printed as one paragraph with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import SurveyError

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

    model, record = train_baseline(args.dataset, args.profile, args.size, args.seed, args.root)
    split = load_dataset(args.dataset, args.size, args.root)[args.split]
    metrics = evaluate(model, split)
    print(f"{args.dataset} ({record['config']['profile']} profile, {args.split} split): " +
          ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in metrics.items()))


def _benchmark(args) -> None:
    import dataclasses

    from .benchmark import GRIDS, estimate_seconds, gallery, load_rows, plan, read_run_log, run_grid
    from .config import get_profile
    from .paths import results_dir
    from .report import plot_benchmark, plot_gallery, provenance, save_benchmark_tables, save_figures

    profile = get_profile(args.profile)
    spec = GRIDS[profile.name]
    overrides = {k: tuple(v) for k, v in (("datasets", args.datasets), ("defenses", args.defenses),
                                          ("attacks", args.attacks), ("eps", args.eps)) if v}
    extra = {d: {k: v for k, v in o.items() if k not in overrides} for d, o in spec.extra.items()}
    spec = dataclasses.replace(spec, **overrides, extra=extra)  # a flag wins over per-dataset values
    results = Path(args.results) if args.results else results_dir() / f"benchmark_{profile.name}"
    cells = plan(spec)
    if args.dry_run:
        seconds = estimate_seconds(cells, spec, results, profile)
        print(f"{len(cells)} cells ({len({(c.dataset, c.defense, c.eps) for c in cells})} models) "
              f"in {results}; estimated cost of the unfinished ones: ~{seconds / 60:.0f} min on "
              "the 2-core CPU (rough).")
        for c in cells:
            print(f"  {c.dataset:15s} {c.defense:8s} ε={c.eps:g}/255  {c.attack}")
        return
    if not args.report_only:
        slurm = {}
        for item in args.slurm or []:
            key, _, value = item.partition("=")
            slurm[key] = int(value) if value.isdigit() else value
        run_grid(spec, results, profile, executor=args.executor, slurm=slurm)
    rows, problems = load_rows(results)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if not rows:
        print(f"no result rows in {results} yet")
        return
    note = provenance("python -m survey_lib " + " ".join(args.argv))
    sizes = {"fast": spec.eval_subset or "all", "slow": spec.slow_subset or "all"}
    note += (f" Test images per cell: {sizes['slow']} (seeded subset) for AutoAttack and Square, "
             f"{sizes['fast']} for the other columns, so compare those two columns with each other. "
             f"PGD and CW-margin PGD use {spec.attack_steps} steps; Square {spec.square_queries} "
             "queries. On binary tasks CE and the CW margin have the same sign gradient, so their "
             "PGD columns coincide.")
    runs = read_run_log(results)
    if runs:
        note += (f" Grid wall time: {sum(r['wall_seconds'] for r in runs) / 60:.1f} min over "
                 f"{len(runs)} invocation(s) of the runner ({runs[-1]['device']}, "
                 f"{runs[-1]['torch_threads']} torch threads), see run_log.jsonl.")
    paths = save_benchmark_tables(rows, results / "tables", note)
    figs = plot_benchmark(rows)
    if not args.report_only and args.executor == "local":  # the models are in this machine's cache
        figs["gallery"] = plot_gallery(gallery(spec, profile))
    paths += save_figures(figs, results / "figures")
    print(f"{len(rows)} rows; wrote {len(paths)} files under {results}/tables and {results}/figures")


def _site(args) -> None:
    import os

    from .paths import ROOT
    from .site import build_site

    out = Path(args.out) if args.out else ROOT / "site"
    records = build_site(args.profile or os.environ.get("SURVEY_PROFILE") or "smoke", out,
                         args.notebooks, args.results)
    print(f"{len(records)} notebook(s) rendered; open {out / 'index.html'}")


def _exercises(args) -> int:
    from . import exercises

    if args.action == "grade":
        return exercises.grade(args.file)
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
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("benchmark", help="the survey's benchmark grid (defenses × ε × attacks): one "
                       "JSON row per cell, resumable; then tables (CSV/Markdown/LaTeX) and figures")
    p.add_argument("--profile", help=PROFILE_HELP)
    p.add_argument("--results", help="results folder (default: <results>/benchmark_<profile>, "
                   "<results> = $SURVEY_RESULTS_DIR, else the checkout's results/); "
                   "finished cells in it are never recomputed")
    p.add_argument("--executor", default="local", help="local (this process) or slurm (one "
                   "submitit job per cell; see README)")
    p.add_argument("--slurm", nargs="+", metavar="KEY=VALUE", help="submitit parameters for "
                   "--executor slurm, e.g. slurm_partition=gpu gpus_per_node=1 timeout_min=120")
    p.add_argument("--dry-run", action="store_true", help="print the plan and its estimated cost")
    p.add_argument("--report-only", action="store_true", help="only rebuild tables and figures")
    p.add_argument("--datasets", nargs="+", help="override the profile's datasets")
    p.add_argument("--defenses", nargs="+", help="override the defenses (nat pgd_at trades mart "
                   "hat fast_at)")
    p.add_argument("--attacks", nargs="+", help="override the attacks (clean fgsm pgd cw_pgd "
                   "autoattack square)")
    p.add_argument("--eps", nargs="+", type=float, help="override the ε values (/255)")
    p.set_defaults(func=_benchmark)

    p = sub.add_parser("site", help="execute the notebooks in a profile and write a browsable "
                       "HTML site (index in taxonomy order, benchmark tables and figures)")
    p.add_argument("--profile", help="compute profile (default: $SURVEY_PROFILE, else smoke)")
    p.add_argument("--out", help="output folder (default: the checkout's site/)")
    p.add_argument("--notebooks", nargs="+", metavar="NN", help="only these notebooks, by number "
                   "(e.g. 00 09; default: all)")
    p.add_argument("--results", help="folder whose Markdown tables and PNG figures the site "
                   "shows (default: the repository's benchmarks/, the committed results)")
    p.set_defaults(func=_site)

    p = sub.add_parser("exercises", help="course-assignment copies of the notebooks: build the "
                       "student copies (notebooks/exercises/) or grade one")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = actions.add_parser("build", help="write the student copies, solutions replaced by stubs")
    b.add_argument("--out", help="output folder (default: notebooks/exercises)")
    b.add_argument("--check", action="store_true", help="write nothing; exit 1 if the copies in "
                   "the output folder are not up to date")
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

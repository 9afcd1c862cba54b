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
    from .report import baseline_table, plot_baselines, provenance, save_table
    from .train import train_baseline

    records = []
    for name in args.dataset:
        _, record = train_baseline(name, args.profile, args.size, args.seed, args.root,
                                   force=args.force)
        records.append(record)
    table = baseline_table(records)
    print(table.drop(columns=["command"]).to_string(index=False))
    if args.out:
        out = Path(args.out)
        paths = save_table(table, out / f"baselines_{records[0]['config']['profile']}",
                           note=provenance("python -m survey_lib " + " ".join(args.argv)))
        fig = plot_baselines(records)
        for ext in ("png", "pdf"):
            paths.append(out / f"baselines_{records[0]['config']['profile']}.{ext}")
            fig.savefig(paths[-1], dpi=120)
        print("wrote " + ", ".join(map(str, paths)))


def _evaluate(args) -> None:
    from .train import evaluate, load_dataset, train_baseline

    model, record = train_baseline(args.dataset, args.profile, args.size, args.seed, args.root)
    split = load_dataset(args.dataset, args.size, args.root)[args.split]
    metrics = evaluate(model, split)
    print(f"{args.dataset} ({record['config']['profile']} profile, {args.split} split): " +
          ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in metrics.items()))


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
    p.add_argument("--out", default="results", help="folder for the table (CSV, Markdown) and "
                   "figure (PNG, PDF); '' to skip (default: results)")
    p.add_argument("--force", action="store_true", help="retrain even if a cached model exists")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="evaluate a dataset's cached baseline (training it "
                       "first if needed) on one split")
    common(p, many=False)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.set_defaults(func=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        args.func(args)
    except SurveyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

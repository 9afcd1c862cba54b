"""Is the grid's PGD-20 converged on the AdrenalMNIST3D models? (the seg3d grid has no sanity column)

For each model of ``--models``, on a class-stratified subset of ``--n`` test volumes: accuracy under
the grid's PGD-20 at 8/255 (cross-entropy, 2/255 steps), under PGD-100 with 5 restarts (same loss,
1/255 steps) and under PGD-100 on the CW margin loss (1/255 steps). A
stronger attack more than a point below PGD-20 means the grid's number overstates robustness
(Carlini et al. 2019, "On Evaluating Adversarial Robustness").

    SURVEY_DATA_DIR=<data dir> python benchmarks/benchmark_cpu_seg3d/convergence_check.py

Writes ``convergence.csv`` and ``convergence.md`` beside this script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from survey_lib.attacks import make_attack
from survey_lib.benchmark import GRIDS, train_model
from survey_lib.benchmark.protocol import make_grid_attack
from survey_lib.data import stratified_indices
from survey_lib.evaluate import robust_metrics
from survey_lib.metrics import wilson_interval
from survey_lib.report import provenance
from survey_lib.train import load_dataset

OUT = Path(__file__).resolve().parent
DATASET = "adrenalmnist3d"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["nat:0", "nat:1", "nat:2", "pgd_at:0"],
                   help="defense:seed, e.g. nat:1 pgd_at:0")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--eps", type=float, default=8)
    args = p.parse_args(argv)
    spec = GRIDS["cpu-seg3d"]
    test = load_dataset(DATASET, spec.size, splits=("test",))["test"]
    test = test.take(stratified_indices(test.y.view(-1), args.n, 0))
    attacks = {"PGD-20 (grid)": make_grid_attack("pgd", args.eps, spec),
               "PGD-100 x5 restarts": make_attack("pgd", eps=args.eps, steps=100, step_size=1,
                                                  restarts=5),
               "PGD-100 margin": make_attack("pgd", eps=args.eps, steps=100, step_size=1,
                                             loss="margin")}
    rows = []
    for item in args.models:
        defense, seed = item.split(":")
        train_eps = None if defense == "nat" else spec.train_eps_for(DATASET)
        model, _ = train_model(DATASET, defense, train_eps, int(seed), "cpu")
        row = {"model": defense, "seed": int(seed), "n": len(test),
               "clean": robust_metrics(model, test)["acc"]}
        for name, attack in attacks.items():
            acc = robust_metrics(model, test, attack)["acc"]
            lo, hi = wilson_interval(round(acc * len(test)), len(test))
            row.update({name: round(acc, 3), f"{name} 95%": f"[{lo:.3f}, {hi:.3f}]",
                        f"{name} config": repr(attack)})
            print(item, name, acc, flush=True)
        rows.append(row)
    df = pd.DataFrame(rows)
    df.to_csv(OUT / "convergence.csv", index=False)
    shown = df[[c for c in df.columns if not c.endswith("config")]]
    configs = "\n".join(f"- {name}: `{attack!r}`" for name, attack in attacks.items())
    command = "python benchmarks/benchmark_cpu_seg3d/convergence_check.py " + " ".join(
        argv or sys.argv[1:])
    (OUT / "convergence.md").write_text(
        provenance(command.strip()) + f" {DATASET} test volumes: a class-stratified subset of "
        f"{len(test)} (seed 0), ε = {args.eps:g}/255; accuracy with its 95% Wilson interval.\n\n"
        + configs + "\n\n" + shown.to_markdown(index=False) + "\n")
    print(shown.to_string(index=False))


if __name__ == "__main__":
    main()

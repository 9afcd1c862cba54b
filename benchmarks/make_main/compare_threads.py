"""Do models retrained with another thread count give the same rows? Compares the rows of this
folder's `make main` run (``rows.csv``) with the committed three-seed run
(``benchmarks/benchmark_cpu/tables/rows.csv``) on every (model, column, evaluation ε) both hold
from different runs (rows copied from this run into the committed one are skipped), and writes
``thread_comparison.csv``: per model, the torch threads of each run, how many cells were compared,
whether the model's cache key is the same, and the largest and mean absolute difference of accuracy.

    python benchmarks/make_main/compare_threads.py
"""

import argparse
from pathlib import Path

import pandas as pd

from survey_lib.paths import BENCHMARKS

OUT = Path(__file__).resolve().parent
KEYS = ["dataset", "defense", "seed", "attack", "eval_eps"]


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Per model held by both row tables: cells compared, same cache key, max and mean |Δ acc|."""
    a, b = (t.assign(eval_eps=t.eval_eps.fillna(-1)) for t in (a, b))
    m = a.merge(b, on=KEYS, suffixes=("_a", "_b"))
    m = m[m.acc_a.notna() & m.acc_b.notna() & (m.invocation_a != m.invocation_b)]
    m = m.assign(diff=(m.acc_a - m.acc_b).abs())
    return m.groupby(["dataset", "defense", "seed"]).agg(
        threads_a=("torch_threads_a", "first"), threads_b=("torch_threads_b", "first"),
        cells=("diff", "size"), same_model_key=("model_key_a", lambda k: bool(
            (k == m.loc[k.index, "model_key_b"]).all())),
        max_abs_diff=("diff", "max"), mean_abs_diff=("diff", "mean")).round(4).reset_index()


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    out = compare(pd.read_csv(OUT / "rows.csv"),
                  pd.read_csv(BENCHMARKS / "benchmark_cpu" / "tables" / "rows.csv"))
    out.to_csv(OUT / "thread_comparison.csv", index=False)
    print(out.to_string(index=False))


if __name__ == "__main__":
    main()

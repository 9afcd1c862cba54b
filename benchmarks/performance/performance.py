"""Performance record of the benchmark (issue 5): adversarial-training epoch cost, the cascade's
saving, and the cpu grid's wall time.

    SURVEY_DATA_DIR=<data dir> .venv/bin/python benchmarks/performance/performance.py \
        [--results results/benchmark_cpu] [--repeats 2]

1. PGD-k adversarial training epoch time / standard epoch time, k ∈ {5 (cpu budget), 10 (paper)},
   PneumoniaMNIST, the cpu profile's SmallCNN, batch 128, augmentation on (target ≤ 1.05·(k+1)).
2. The AutoAttack-style cascade (each attack sees only the examples still robust) against running
   every one of its attacks on every example, with the grid's settings (APGD 20 steps, Square 300
   queries), on the cpu grid's cached models (target ≤ 0.5).
3. The cpu grid's wall time, from ``run_log.jsonl`` and the rows of the results folder.
4. (``--parts layout``) The CPU speed-up of channels_last: a standard and a PGD-5 AT epoch with
   the model and batches in the default NCHW layout (the training path before commit 35bf885)
   and in channels_last (now), interleaved in one process (alternating which runs first) so both
   see the same machine.
Medians over ``--repeats``; CSV + Markdown under benchmarks/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from survey_lib.attacks import PGD, AALite
from survey_lib.benchmark import GRIDS, grid_wall_seconds, read_run_log, train_model
from survey_lib.config import get_profile
from survey_lib.data import stratified_indices
from survey_lib.defenses.adversarial_training import AdversarialLoss
from survey_lib.train import baseline_config, build_for, fit, load_dataset

HERE = Path(__file__).parent


def epoch_seconds(train, loss_fn=None) -> float:
    config = baseline_config("pneumoniamnist", "cpu")
    model = build_for(config, train.info)
    out = fit(model, train, train.subset(8, 0), epochs=1, batch_size=config["batch_size"],
              lr=config["lr"], augment_data=config["augment"], loss_fn=loss_fn,
              select_fn=lambda m, v: 0.0, progress=False)
    return out["seconds"]


@contextlib.contextmanager
def nchw():
    """The training path as it was before channels_last on the CPU: the model and every batch in
    the default contiguous (NCHW) layout."""
    import survey_lib.train as train_module

    original = train_module.to_device

    def to_device(model, x, device):
        model.to(device, memory_format=torch.contiguous_format)
        return None if x is None else x.to(device).contiguous()

    train_module.to_device = to_device
    try:
        yield
    finally:
        train_module.to_device = original


def layout_cost(repeats: int) -> list[dict]:
    """Per-epoch seconds in NCHW (before) and channels_last (after), interleaved; their ratio."""
    train = load_dataset("pneumoniamnist")["train"]
    rows = []
    for name, loss in (("standard", None),
                       ("PGD-5 AT", lambda: AdversarialLoss("pgd_at", PGD(eps=8, steps=5, step_size=4),
                                                            train.info.task))):
        times = {"NCHW": [], "channels_last": []}
        for r in range(repeats):  # the order alternates, so neither layout always runs first
            for fmt in list(times)[::1 if r % 2 == 0 else -1]:
                with nchw() if fmt == "NCHW" else contextlib.nullcontext():
                    times[fmt].append(epoch_seconds(train, loss() if loss else None))
        before, after = (statistics.median(times[f]) for f in times)
        rows += [{"measure": f"{name} epoch, NCHW (before) (s)", "value": round(before, 2)},
                 {"measure": f"{name} epoch, channels_last (after) (s)", "value": round(after, 2)},
                 {"measure": f"{name} epoch: NCHW / channels_last", "value": round(before / after, 3),
                  "target": "> 1", "met": before > after,
                  "detail": "per repeat (s): " + "; ".join(
                      f"{a:.1f} vs {b:.1f}" for a, b in zip(times["NCHW"], times["channels_last"]))}]
    return rows


def training_cost(repeats: int) -> list[dict]:
    train = load_dataset("pneumoniamnist")["train"]
    rows, standard = [], []
    for _ in range(repeats):
        standard.append(epoch_seconds(train))
    base = statistics.median(standard)
    rows.append({"measure": "standard epoch (s)", "value": round(base, 2), "target": None})
    for k, method, step in ((5, "pgd_at", 2.5 * 8 / 5), (10, "pgd_at", 2.5 * 8 / 10),
                            (1, "fast_at", 1.25 * 8)):
        name = f"PGD-{k} AT" if method == "pgd_at" else "fast AT (FGSM-RS)"
        times = []
        for _ in range(repeats):
            attack = PGD(eps=8, steps=k, step_size=step)
            times.append(epoch_seconds(train, AdversarialLoss(method, attack, train.info.task)))
        ratio = statistics.median(times) / base
        rows.append({"measure": f"{name} epoch (s)", "value": round(statistics.median(times), 2),
                     "target": None})
        rows.append({"measure": f"{name} epoch / standard epoch", "value": round(ratio, 3),
                     "target": f"≤ {1.05 * (k + 1):.2f}", "met": ratio <= 1.05 * (k + 1)})
    return rows


def cascade_cost(repeats: int, n: int) -> list[dict]:
    spec, profile, rows = GRIDS["cpu"], get_profile("cpu"), []
    for dataset, defense, eps in (("pneumoniamnist", "nat", 8), ("pneumoniamnist", "pgd_at", 8),
                                  ("retinamnist", "nat", 8), ("retinamnist", "pgd_at", 8)):
        model, _ = train_model(dataset, defense, None if defense == "nat" else eps, spec.seeds[0], profile)
        test = load_dataset(dataset, splits=("test",))["test"]
        test = test.take(stratified_indices(test.y, n, spec.seeds[0]))
        cascade = AALite(eps=eps, steps=spec.aa_steps, square_queries=spec.aa_square)
        stages = cascade.attacks_for(test.info.num_classes)
        full = cascade.attacks_for(test.info.num_classes)
        for attack in full:  # APGD without early stopping: every step on every example
            attack.early_stop = False
        times = {"cascade": [], "each": [], "each, no early stop": []}
        for _ in range(repeats):
            for key, attacks in (("cascade", [cascade]), ("each", stages), ("each, no early stop", full)):
                start = time.perf_counter()
                for attack in attacks:  # the cascade; or every attack on every example
                    attack(model, test.x, test.y)
                times[key].append(time.perf_counter() - start)
        t = {k: statistics.median(v) for k, v in times.items()}
        what = (f"{dataset} {defense} {eps}/255 ({' → '.join(a.name for a in stages)}; robust after "
                f"each: {' → '.join(str(r) for _, r in cascade.stages)} of {n})")
        for key, label in (("each", "every attack (each with early stopping) on every example"),
                           ("each, no early stop", "every attack, APGD without early stopping, on "
                                                   "every example")):
            ratio = t["cascade"] / t[key]
            rows.append({"measure": f"cascade / {label}: {what}", "value": round(ratio, 3),
                         "target": "≤ 0.5", "met": ratio <= 0.5,
                         "detail": f"{t['cascade']:.1f} s vs {t[key]:.1f} s"})
    return rows


def grid_time(results: Path) -> list[dict]:
    runs = read_run_log(results)
    rows = [json.loads(p.read_text()) for p in results.glob("*/*/*.json")]
    if not runs:
        return []
    wall = grid_wall_seconds(runs)
    return [{"measure": "cpu grid wall time, sum over runner invocations (min)",
             "value": round(wall / 60, 1), "target": "≤ 75", "met": wall <= 75 * 60,
             "detail": f"{len(runs)} invocation(s), {len(rows)} rows; started {runs[0]['started']}"},
            {"measure": "cpu grid, sum of the rows' wall times (min; training included once per model)",
             "value": round(sum(r["wall_seconds"] for r in rows) / 60, 1), "target": None}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/benchmark_cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n", type=int, default=100, help="test images for the cascade timing")
    parser.add_argument("--parts", nargs="+", default=["grid", "training", "cascade"])
    parser.add_argument("--out", default=str(HERE / "performance_cpu"))
    args = parser.parse_args()
    torch.manual_seed(0)
    start = time.perf_counter()
    parts = {"grid": lambda: grid_time(Path(args.results)), "training": lambda: training_cost(args.repeats),
             "cascade": lambda: cascade_cost(args.repeats, args.n),
             "layout": lambda: layout_cost(args.repeats)}
    rows = [row for name in args.parts for row in parts[name]()]
    df = pd.DataFrame(rows)
    machine = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads")
    df.to_csv(args.out + ".csv", index=False)
    Path(args.out + ".md").write_text(
        "# Performance record (issue 5)\n\n"
        "Command: `SURVEY_DATA_DIR=<data dir> .venv/bin/python benchmarks/performance/performance.py "
        f"--repeats {args.repeats} --n {args.n} --parts {' '.join(args.parts)}"
        + (f" --out {args.out}" if args.out != parser.get_default("out") else "")
        + f"`; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"machine: {machine}; this script took {time.perf_counter() - start:.0f} s.\n\n"
        + df.to_markdown(index=False) + "\n")
    print(df.to_string())


if __name__ == "__main__":
    main()

"""Do adversarially trained models keep their explanations under attack? Grad-CAM and saliency of
NAT vs PGD-AT, clean vs PGD-20 at 8/255, on each local 2D classification dataset.

    SURVEY_DATA_DIR=<data dir> python benchmarks/explanations/explanations.py \
        [--datasets pneumoniamnist breastmnist retinamnist] [--n 200] [--seeds 0 1 2]

Models: the NAT and PGD-AT models of the cpu benchmark grid, one per seed
(:func:`survey_lib.benchmark.protocol.train_model`, PGD-AT at the grid's training ε of the dataset),
the same files as the grid's rows (trained on first use, cached in ``runs/``). Images: ``n`` test
images drawn class-stratified with seed 0 (the same images for every model). Attack: the grid's
PGD-20 at 8/255 (survey step 2/255, random start). Per image and model (``survey_lib.explain``): the
Pearson correlation between the map of the clean image and the map of its PGD-20 version, both
explaining the true class, for Grad-CAM and for saliency; and, as controls, the same after random
±8/255 sign noise, and the correlation between the maps of two different clean images (how
image-specific the maps are). Writes into this folder: ``per_image.csv``, ``summary.csv`` (mean, std
and 95 % bootstrap interval over images per model and seed; per model mean ± std over seeds; the
paired PGD-AT − NAT difference per seed and over seeds),
``<dataset>.png`` (the figure) and ``run.json`` (per dataset: date, machine, threads, versions,
arguments). Rows of datasets not named in ``--datasets`` are kept from earlier runs.
"""

import argparse
import datetime
import json
import os
import platform

import matplotlib
import numpy as np
import pandas as pd
import torch

from survey_lib.attacks import make_attack
from survey_lib.benchmark import GRIDS
from survey_lib.benchmark.protocol import pgd_step, train_model
from survey_lib.explain import (
    explanation_figure,
    explanation_stability,
    gradcam,
    map_correlation,
    saliency,
)
from survey_lib.metrics import mean_interval
from survey_lib.paths import BENCHMARKS
from survey_lib.train import load_dataset

OUT = BENCHMARKS / "explanations"
EPS = 8
GRID = GRIDS["cpu"]
METRICS = ("cam_pearson", "saliency_pearson", "cam_spearman", "saliency_spearman")


def sign_noise(eps: float, seed: int = 0):
    """A non-adversarial control with the attack's signature: x + ε·(random ±1), clamped to [0, 1]."""
    def perturb(model, x, y):
        gen = torch.Generator().manual_seed(seed)
        step = torch.randint(0, 2, x.shape, generator=gen).float() * 2 - 1
        return (x + eps / 255 * step.to(x.device)).clamp(0, 1)
    return perturb


def stability(model, test, attack, noise, n: int) -> pd.DataFrame:
    """Per image: the correlations under ``attack``, under ``noise`` (``*_noise``), and between the
    clean map of this image and the clean map of another of the n images (``*_other``, a fixed
    random pairing): how image-specific the maps are, the floor a stable map should be far above."""
    adv = explanation_stability(model, test, attack, n=n, seed=0)
    control = explanation_stability(model, test, noise, n=n, seed=0)
    for m in ("cam_pearson", "saliency_pearson"):
        adv[f"{m}_noise"] = control[m].to_numpy()
    adv["noise_flipped"] = control["flipped"].to_numpy()
    x, y = test.x[adv["index"].tolist()], test.y[adv["index"].tolist()]
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    other = torch.empty_like(order)
    other[order] = order.roll(-1)  # a random pairing in which no image meets itself
    for name, maps in (("cam", gradcam(model, x, y, signed=True)), ("saliency", saliency(model, x, y))):
        adv[f"{name}_pearson_other"] = map_correlation(maps, maps[other]).numpy()
    return adv


def describe(df: pd.DataFrame) -> dict:
    """Mean, std and 95 % bootstrap interval over images of each correlation; accuracy, flips."""
    out = {"n": len(df), "clean_acc": (df.pred_clean == df.label).mean(),
           "robust_acc": (df.pred_adv == df.label).mean(), "flip_rate": df.flipped.mean(),
           "noise_flip_rate": df.noise_flipped.mean()}
    controls = tuple(f"{name}_pearson_{c}" for c in ("noise", "other") for name in ("cam", "saliency"))
    for m in METRICS + controls:
        v = df[m].to_numpy()
        out[f"{m}_undefined"] = int(np.isnan(v).sum())
        v = v[~np.isnan(v)]
        lo, hi = mean_interval(v)
        out.update({f"{m}_mean": v.mean(), f"{m}_std": v.std(ddof=1), f"{m}_lo": lo, f"{m}_hi": hi})
    for name, rows in (("kept", df[~df.flipped]), ("flipped", df[df.flipped])):
        out[f"cam_pearson_{name}_n"] = len(rows)
        out[f"cam_pearson_{name}_mean"] = rows.cam_pearson.mean() if len(rows) else float("nan")
    return out


def _paired(a: pd.DataFrame, b: pd.DataFrame, m: str) -> np.ndarray:
    """Per image ``a − b`` of metric ``m`` (the same images, in the same order), NaNs dropped."""
    assert a["index"].tolist() == b["index"].tolist()
    d = a[m].to_numpy() - b[m].to_numpy()
    return d[~np.isnan(d)]


def summarize(per_image: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, seed); per (dataset, model) the mean ± std of the per-seed means
    over seeds; the paired PGD-AT − NAT difference per seed (95 % bootstrap interval over images)
    and its mean ± std over seeds."""
    rows = []
    for (dataset, model, seed), df in per_image.groupby(["dataset", "model", "seed"], sort=False):
        rows.append({"dataset": dataset, "model": model, "seed": str(seed), **describe(df)})
    summary = pd.DataFrame(rows)
    extra = []
    for (dataset, model), s in summary.groupby(["dataset", "model"], sort=False):
        if len(s) < 2:
            continue
        row = {"dataset": dataset, "model": model, "seed": "mean±std over " + " ".join(s.seed),
               "n": int(s.n.iloc[0])}
        pooled = per_image[(per_image.dataset == dataset) & (per_image.model == model)]
        for c in ("clean_acc", "robust_acc", "flip_rate") + tuple(f"{m}_mean" for m in METRICS):
            row[c] = s[c].mean()
            row[c.replace("_mean", "") + "_seed_std"] = s[c].std(ddof=1)
        for m in METRICS:
            row[f"{m}_std"] = pooled[m].std(ddof=1)  # over every (seed, image)
        extra.append(row)
    for dataset in per_image.dataset.unique():
        data = per_image[per_image.dataset == dataset]
        seeds = sorted(set(data[data.model == "PGD-AT"].seed) & set(data[data.model == "NAT"].seed))
        diffs = {m: [] for m in ("cam_pearson", "saliency_pearson")}
        for seed in seeds:  # the same images: paired difference PGD-AT − NAT of the same seed
            a = data[(data.model == "PGD-AT") & (data.seed == seed)]
            b = data[(data.model == "NAT") & (data.seed == seed)]
            row = {"dataset": dataset, "model": "PGD-AT − NAT", "seed": f"{seed} (paired)",
                   "n": len(a)}
            for m in diffs:
                d = _paired(a, b, m)
                lo, hi = mean_interval(d)
                diffs[m].append(d.mean())
                row.update({f"{m}_mean": d.mean(), f"{m}_std": d.std(ddof=1), f"{m}_lo": lo,
                            f"{m}_hi": hi})
            extra.append(row)
        if len(seeds) > 1:
            row = {"dataset": dataset, "model": "PGD-AT − NAT",
                   "seed": "mean±std over " + " ".join(map(str, seeds)), "n": len(a)}
            for m, v in diffs.items():
                row.update({f"{m}_mean": np.mean(v), f"{m}_seed_std": np.std(v, ddof=1)})
            extra.append(row)
    return pd.concat([summary, pd.DataFrame(extra)], ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["pneumoniamnist", "breastmnist", "retinamnist"])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--k", type=int, default=3, help="example images per figure")
    args = parser.parse_args()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    OUT.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    attack = make_attack("pgd", eps=EPS, steps=20, step_size=pgd_step(EPS))
    noise = sign_noise(EPS)
    frames = []
    for dataset in args.datasets:
        test = load_dataset(dataset)["test"]
        models = {(label, seed): train_model(dataset, defense, train_eps, seed, "cpu")[0]
                  for label, defense, train_eps in (("NAT", "nat", None),
                                                    ("PGD-AT", "pgd_at", GRID.train_eps_for(dataset)))
                  for seed in args.seeds}
        for (label, seed), model in models.items():
            df = stability(model, test, attack, noise, args.n)
            frames.append(df.assign(dataset=dataset, model=label, seed=seed))
            print(f"{dataset} {label} seed {seed}: CAM r = {df.cam_pearson.mean():.3f} "
                  f"± {df.cam_pearson.std():.3f}, saliency r = {df.saliency_pearson.mean():.3f}, "
                  f"flipped {df.flipped.mean():.2f} (n = {len(df)})", flush=True)
        first = args.seeds[0]
        fig = explanation_figure({"NAT": models["NAT", first], "PGD-AT": models["PGD-AT", first]},
                                 test, attack, k=args.k, seed=0)
        fig.savefig(OUT / f"{dataset}.png", dpi=110)
        plt.close(fig)
    per_image = pd.concat(frames, ignore_index=True)
    keys = ["dataset", "model", "seed"]
    per_image = per_image[keys + [c for c in per_image.columns if c not in keys]]
    runs = json.loads((OUT / "run.json").read_text()) if (OUT / "run.json").exists() else {}
    if (OUT / "per_image.csv").exists():  # keep the datasets of earlier runs, replace these
        earlier = pd.read_csv(OUT / "per_image.csv")
        per_image = pd.concat([earlier[~earlier.dataset.isin(args.datasets)], per_image],
                              ignore_index=True)
    per_image.to_csv(OUT / "per_image.csv", index=False, float_format="%.5f")
    summarize(per_image).to_csv(OUT / "summary.csv", index=False, float_format="%.4f")
    info = {"started_utc": started.isoformat(timespec="seconds"),
            "finished_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores",
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "attack": repr(attack), "control": f"random sign noise ±{EPS}/255 (seed 0)",
            "target": "true label", **vars(args)}
    runs.update({dataset: info for dataset in args.datasets})
    (OUT / "run.json").write_text(json.dumps(runs, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

"""Measured cpu-profile numbers of the non-adversarial-training defenses (issue 4, items 2–5), the
evaluations of notebooks 06–08 on BreastMNIST with the undefended baseline of ``train_baseline``:

- purification: JPEG / bit depth / median / DAE, clean, naive (transfer), white-box + BPDA and
  adaptive PGD-20 at 8/255;
- detection: Mahalanobis and learned detectors, AUROC on FGSM, PGD, PGD-L2, CW-PGD and the
  detector-aware adaptive PGD;
- distillation: NAT vs distilled student (T = 50) under FGSM, PGD-CE and CW-PGD (margin);
- smoothing: randomized smoothing certify (n0 = 100, n = 500, α = 0.001) for σ = 0.25, 0.5;
- feature: PGD-AT with and without feature denoising (the AT recipe's cpu budget).

Writes ``benchmarks/defenses_other_cpu.csv`` (one row per measurement) and ``.md``:

    SURVEY_DATA_DIR=<data dir> .venv/bin/python benchmarks/defenses_other_cpu/defenses_other_cpu.py
    (--sections purification detection ... runs a subset; the files are rewritten with what ran)
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from survey_lib.attacks import make_attack
from survey_lib.defenses import make_defense, train_adversarial
from survey_lib.defenses.detection import (
    DetectorAwarePGD,
    MahalanobisDetector,
    evaluate_detectors,
    train_learned_detector,
)
from survey_lib.defenses.purification import evaluate_purifiers, train_denoiser
from survey_lib.defenses.smoothing import SmoothedClassifier, certified_accuracy, smoothed_metrics
from survey_lib.evaluate import robust_metrics
from survey_lib.train import load_dataset, predict, train_baseline

OUT = Path(__file__).resolve().parent / "defenses_other_cpu"
DATASET, PROFILE, STEPS = "breastmnist", "cpu", 20
KEYS = ["acc", "bacc", "auc", "shares", "collapsed"]
COMMAND = "SURVEY_DATA_DIR=<data dir> .venv/bin/python benchmarks/defenses_other_cpu/defenses_other_cpu.py"


def purification(model, splits):
    denoiser, dae = train_denoiser(DATASET, PROFILE)
    purifiers = {"jpeg (q=50)": make_defense("jpeg", model=model, quality=50),
                 "bit_depth (4 bits)": make_defense("bit_depth", model=model, bits=4),
                 "median (3x3)": make_defense("median", model=model, kernel=3),
                 "dae": make_defense("dae", model=model, denoiser=denoiser)}
    rows = evaluate_purifiers(model, splits["test"], purifiers, make_attack("pgd", eps=8, steps=STEPS))
    return [{"defense": r["defense"], "evaluation": r["evaluation"], "attack": r["attack"],
             **{k: r[k] for k in KEYS}, "seconds": r["attack_seconds"]} for r in rows] + [
        {"defense": "dae", "evaluation": "training", "seconds": dae["wall_seconds"],
         "note": f"validation MSE {-dae['best_score']:.4f}"}]


def detection(model, splits, record):
    detectors = {"mahalanobis": MahalanobisDetector(model).fit(splits["train"])}
    detectors["learned"], det = train_learned_detector(model, record["config"], splits["train"],
                                                       splits["val"], make_attack("pgd", eps=8, steps=10))
    attacks = {"fgsm": make_attack("fgsm", eps=8), "pgd": make_attack("pgd", eps=8, steps=STEPS),
               "pgd_l2 (eps 0.5)": make_attack("pgd_l2", eps=0.5, steps=STEPS),
               "cw_pgd": make_attack("cw_pgd", eps=8, steps=STEPS),
               "adaptive (detector-aware PGD)": lambda d: DetectorAwarePGD(d, eps=8, steps=STEPS)}
    rows, _ = evaluate_detectors(model, detectors, splits["test"], attacks)
    return [{"defense": r["detector"], "evaluation": r["attack"], "auroc": r["auroc"],
             "tpr_at_5fpr": r["tpr@0.05fpr"], "undetected_success": r["undetected_success"],
             **{k: r[k] for k in KEYS if k in r}} for r in rows] + [
        {"defense": "learned", "evaluation": "training", "seconds": det["wall_seconds"],
         "note": f"best validation AUROC {det['best_score']:.3f} (epoch {det['best_epoch']})"}]


def distillation(model, splits):
    student, records = make_defense("defensive_distillation", temperature=50, epochs=60,
                                    lr=0.01).train(DATASET, PROFILE)
    attacks = {"clean": None, "fgsm (CE)": make_attack("fgsm", eps=8),
               "pgd (CE)": make_attack("pgd", eps=8, steps=STEPS),
               "cw_pgd (margin)": make_attack("cw_pgd", eps=8, steps=STEPS)}
    rows = []
    for name, net in {"NAT": model, "distilled T=50": student}.items():
        z = predict(net, splits["test"].x).topk(2, 1).values
        gap = f"median top-2 logit gap {(z[:, 0] - z[:, 1]).median().item():.2f}"
        for evaluation, attack in attacks.items():
            m = robust_metrics(net, splits["test"], attack)
            rows.append({"defense": name, "evaluation": evaluation, "attack": m["attack"],
                         **{k: m[k] for k in KEYS}, "seconds": m["seconds"], "note": gap})
    for role in ("teacher", "student"):
        rows.append({"defense": f"distilled T=50 ({role})", "evaluation": "training",
                     "seconds": records[role]["wall_seconds"], "note": "60 epochs, Adam lr 0.01"})
    return rows


def smoothing(model, splits):
    test, rows = splits["test"], []
    for sigma in (0.25, 0.5):
        base, record = make_defense("gaussian_augmentation", sigma=sigma).train(DATASET, PROFILE)
        start = time.perf_counter()
        preds, radii = SmoothedClassifier(base, sigma, 2).certify(test.x, n0=100, n=500, alpha=0.001)
        seconds = round(time.perf_counter() - start, 1)
        m = smoothed_metrics(preds, test.y, 2)
        rows.append({"defense": f"smoothing sigma={sigma}", "evaluation": "smoothed clean (certify run)",
                     "acc": m["acc"], "bacc": m["bacc"], "shares": m["shares"], "abstain": m["abstain"],
                     "seconds": seconds, "note": f"base training {record['wall_seconds']} s"})
        for row in certified_accuracy(preds, radii, test.y, np.round(np.arange(0, 1.51, 0.25), 2), 2):
            rows.append({"defense": f"smoothing sigma={sigma}", "evaluation": "certified",
                         "radius": row["radius"], "acc": row["certified_acc"],
                         "bacc": row["certified_bacc"]})
    return rows


def feature(model, splits):
    rows = []
    fd_model, fd = make_defense("feature_denoising", eps=8).train(DATASET, PROFILE, progress=False)
    _, at = train_adversarial(DATASET, "pgd_at", PROFILE, progress=False, eps=8)
    for name, r in (("PGD-AT", at), ("PGD-AT + feature denoising", fd)):
        for evaluation, key in (("clean", "test"), ("white-box PGD", "test_adv")):
            rows.append({"defense": name, "evaluation": evaluation,
                         "attack": r[key].get("attack", "clean"), **{k: r[key][k] for k in KEYS}})
        rows.append({"defense": name, "evaluation": "training", "seconds": r["wall_seconds"],
                     "note": f"{r['config']['epochs']} epochs, PGD-{r['config']['steps']} inner"})
    return rows


SECTIONS = {"purification": purification, "detection": detection, "distillation": distillation,
            "smoothing": smoothing, "feature": feature}


def markdown(df: pd.DataFrame, seconds: dict) -> str:
    lines = [
        "# Non-adversarial-training defenses, cpu profile (issue 4, items 2–5)", "",
        f"Command: `{COMMAND}`  ", f"Date: {datetime.date.today()}; machine: 2-core CPU under "
        "heavy load from other processes at the time (wall times are inflated by that); "
        f"torch {torch.__version__}."
        "  ", f"Dataset: {DATASET} test split (156 images), undefended baseline = "
        "`train_baseline(breastmnist, cpu)`; ε in /255; every accuracy with balanced accuracy "
        "and prediction shares (malignant, benign).", "",
        "Section wall times (s, training of uncached models included): "
        + ", ".join(f"{k} {v}" for k, v in seconds.items()), ""]
    for section, part in df.groupby("section", sort=False):
        part = part.dropna(axis=1, how="all").drop(columns="section")
        if "collapsed" in part:
            part["collapsed"] = part["collapsed"].map({True: "yes", False: "no"})
        lines += [f"## {section}", "", part.to_markdown(index=False, floatfmt=".3f"), ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    args = parser.parse_args()
    model, record = train_baseline(DATASET, PROFILE, progress=False)
    splits = load_dataset(DATASET)
    rows, seconds = [], {}
    for section in args.sections:
        start = time.perf_counter()
        fn = SECTIONS[section]
        out = fn(model, splits, record) if section == "detection" else fn(model, splits)
        seconds[section] = round(time.perf_counter() - start, 1)
        rows += [{"section": section, **r} for r in out]
        df = pd.DataFrame(rows)
        df.to_csv(OUT.with_suffix(".csv"), index=False)
        OUT.with_suffix(".md").write_text(markdown(df, seconds))
        print(f"{section}: {seconds[section]} s", flush=True)


if __name__ == "__main__":
    main()

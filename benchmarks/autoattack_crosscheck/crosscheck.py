"""Cross-check of our standard AutoAttack against torchattacks' on RetinaMNIST (issue 12).

    SURVEY_DATA_DIR=<data dir> nice -n 10 .venv/bin/python benchmarks/autoattack_crosscheck/crosscheck.py

Trains (or loads from runs/) the cpu-profile RetinaMNIST models, NAT and PGD-AT at 8/255, and
attacks the test split (all 400 images, or a class-stratified subset with ``--n``) at each ε with:

- ours: ``AutoAttack(eps)``, the standard version (APGD-CE-100, APGD-T-4x100, FAB-T-4x100,
  Square-5000 on 5 classes);
- ``torchattacks.AutoAttack(model, norm="Linf", eps=eps/255, version="standard", n_classes=5,
  seed=0)`` as the library builds it; note that it leaves APGD, APGD-T and FAB at their default 10
  steps, so it is a weaker budget than the paper's standard version;
- torchattacks' own APGD, APGD-T, FAB (multi-targeted) and Square chained by its MultiAttack at
  the paper's budgets (100 steps, 5000 queries), the like-for-like reference.

Writes ``crosscheck.csv`` beside this script: robust accuracy, images still robust after each stage,
and, against ours, the images only one of the two attacks broke (the paired difference and its
standard error).
"""

import argparse
import csv
import math
from pathlib import Path

import torch

from survey_lib.attacks import AutoAttack
from survey_lib.defenses import make_defense
from survey_lib.train import load_dataset, train_baseline

HERE = Path(__file__).resolve().parent


def stratified(split, n: int | None, seed: int = 0):
    """All of ``split`` (n None), else n images drawn per class in proportion to its size (largest
    remainders get the leftover images), seeded."""
    y = split.y.view(-1)
    if n is None or n >= len(y):
        return split.x, y
    sizes = torch.bincount(y)
    quota = n * sizes / len(y)
    take = quota.floor().long()
    take[(quota - take).argsort(descending=True)[: n - int(take.sum())]] += 1
    gen = torch.Generator().manual_seed(seed)
    idx = torch.cat([(y == c).nonzero().view(-1)[torch.randperm(int(sizes[c]), generator=gen)[:k]]
                     for c, k in enumerate(take.tolist())]).sort().values
    return split.x[idx], y[idx]


def torchattacks_stages(model, eps: float, steps: int | None):
    """torchattacks' standard cascade: as ``AutoAttack`` builds it (``steps=None``: its defaults),
    or its components at ``steps`` iterations and 5000 Square queries, chained by MultiAttack."""
    import torchattacks as ta

    if steps is None:
        return ta.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=5, seed=0)._autoattack
    return ta.MultiAttack([
        ta.APGD(model, norm="Linf", eps=eps, steps=steps, n_restarts=1, loss="ce", seed=0),
        ta.APGDT(model, norm="Linf", eps=eps, steps=steps, n_restarts=1, n_classes=5, seed=0),
        ta.FAB(model, norm="Linf", eps=eps, steps=steps, n_restarts=1, multi_targeted=True,
               n_classes=5, seed=0),
        ta.Square(model, norm="Linf", eps=eps, n_queries=5000, n_restarts=1, seed=0),
    ])


def run_torchattacks(multi, x, y):
    """(adversarial images, images still robust after each stage) of a torchattacks MultiAttack."""
    multi._accumulate_multi_atk_records = True  # its per-stage counts (a private record)
    multi._multi_atk_records = [0.0] * (len(multi.attacks) + 1)
    x_adv = multi(x, y)
    return x_adv, [int(v) for v in multi._multi_atk_records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eps", type=float, nargs="+", default=[8, 2])
    parser.add_argument("--n", type=int, default=None, help="class-stratified subset (default: all)")
    parser.add_argument("--models", nargs="+", default=["nat", "pgd_at"], choices=["nat", "pgd_at"])
    parser.add_argument("--out", type=Path, default=HERE / "crosscheck.csv")
    args = parser.parse_args()
    train = {"nat": lambda: train_baseline("retinamnist", "cpu", progress=False),
             "pgd_at": lambda: make_defense("pgd_at", eps=8).train("retinamnist", "cpu", progress=False)}
    x, y = stratified(load_dataset("retinamnist")["test"], args.n)
    fields = ["model", "eps", "n", "attack", "config", "clean_acc", "robust_acc", "robust_after_each_stage",
              "broken_by_ours_only", "broken_by_this_only", "ours_minus_this_points", "se_points"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:  # one row written as soon as it is measured
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for name in args.models:
            for row in crosscheck(train[name]()[0].eval(), name, x, y, args.eps):
                writer.writerow(row)
                f.flush()
                print(row, flush=True)
    print(f"wrote {args.out}")


def crosscheck(model, name, x, y, eps_grid):
    """Rows: ours and the two torchattacks cascades on one model at each ε (/255)."""
    def correct(images):
        with torch.no_grad():
            return model(images).argmax(1) == y

    clean = int(correct(x).sum())
    for eps in eps_grid:
        ours = AutoAttack(eps=eps)
        ours_ok = correct(ours(model, x, y))
        results = [("ours", repr(ours), ours_ok, [n for _, n in ours.stages])]
        for label, steps in (("torchattacks AutoAttack (library defaults)", None),
                             ("torchattacks components, paper budgets", 100)):
            x_adv, counts = run_torchattacks(torchattacks_stages(model, eps / 255, steps), x, y)
            config = ("APGD-CE, APGD-T-4, FAB-T-4 at 10 steps (its defaults), Square-5000" if steps is None
                      else f"APGD-CE-{steps}, APGD-T-4x{steps}, FAB-T-4x{steps}, Square-5000")
            results.append((label, config, correct(x_adv), [clean, *counts[1:]]))  # [0] is n
        for label, config, ok, counts in results:
            only_ours, only_this = int((~ours_ok & ok).sum()), int((ours_ok & ~ok).sum())
            diff = (only_this - only_ours) / len(y)  # ours − this, in robust accuracy (paired)
            se = math.sqrt(max(only_ours + only_this - diff ** 2 * len(y), 0)) / len(y)
            yield {"model": name, "eps": f"{eps:g}/255", "n": len(y), "attack": label, "config": config,
                   "clean_acc": round(clean / len(y), 4), "robust_acc": round(ok.float().mean().item(), 4),
                   "robust_after_each_stage": " > ".join(map(str, counts)),
                   "broken_by_ours_only": only_ours, "broken_by_this_only": only_this,
                   "ours_minus_this_points": round(100 * diff, 2), "se_points": round(100 * se, 2)}


if __name__ == "__main__":
    main()

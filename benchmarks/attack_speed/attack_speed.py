"""Speed of PGD-10 L∞ (issue 3): our PGD vs a plain loop, ART and torchattacks on the same model and
batch, the ratio of PGD-k time to k × one forward+backward (input gradient), and the speed-up of the
early-stopping evaluation mode on an undefended and an adversarially trained model.

    SURVEY_DATA_DIR=<data dir> .venv/bin/python benchmarks/attack_speed/attack_speed.py [--repeats 5]

Contenders are interleaved inside each repeat (the CPU is shared with other jobs), and the median
over repeats is reported. torchattacks is optional (not a dependency of survey_lib); when it is not
installed its row is skipped with a message.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from survey_lib.attacks import make_attack
from survey_lib.evaluate import robust_metrics
from survey_lib.train import load_dataset, train_baseline

HERE = Path(__file__).parent
NOTE = ("\n\nNotes: torchattacks (3.5.1) was installed into the venv with `pip install --no-deps "
        "torchattacks` for this benchmark only; it is not a survey_lib dependency. The PGD-AT model "
        "is `train_adversarial(dataset, 'pgd_at', at_profile)`; in the smoke profile it is collapsed "
        "(bACC 0.5: one class for every image), so its speed-up describes a degenerate model. The CPU "
        "was shared with other jobs: absolute images/s are low, compare rows within one table.\n")
EPS, STEPS = 8, 10


def plain_loop(model, x, y, eps=EPS / 255, alpha=2.5 * EPS / 255 / STEPS, steps=STEPS):
    """The textbook PGD loop, for reference (random start, sign steps, clamp)."""
    x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        g, = torch.autograd.grad(loss, x_adv)
        x_adv = (x + (x_adv.detach() + alpha * g.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    return x_adv


def one_grad(model, x, y):
    """One forward + backward for the input gradient (the unit of PGD's cost)."""
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)[0]


def contenders(model, x):
    out = {"survey_lib PGD-10": lambda x, y: make_attack("pgd", eps=EPS, steps=STEPS)(model, x, y),
           "plain loop PGD-10": lambda x, y: plain_loop(model, x, y)}
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                            nb_classes=2, clip_values=(0.0, 1.0))
    art = ProjectedGradientDescent(clf, norm=np.inf, eps=EPS / 255, eps_step=2.5 * EPS / 255 / STEPS,
                                   max_iter=STEPS, num_random_init=1, batch_size=len(x), verbose=False)
    out["ART PGD-10"] = lambda x, y: torch.as_tensor(art.generate(x.numpy(), y=y.numpy()))
    try:
        import torchattacks

        ta = torchattacks.PGD(model, eps=EPS / 255, alpha=2.5 * EPS / 255 / STEPS, steps=STEPS,
                              random_start=True)
        out["torchattacks PGD-10"] = lambda x, y: ta(x, y)
    except ImportError:
        print("torchattacks is not installed: its row is skipped (pip install torchattacks to add it)")
    return out


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def speed(model, x, y, repeats: int) -> pd.DataFrame:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    fns = contenders(model, x)
    for fn in fns.values():  # warm-up
        fn(x, y)
    times = {name: [] for name in [*fns, "one forward+backward"]}
    for _ in range(repeats):
        times["one forward+backward"].append(statistics.median(timed(one_grad, model, x, y)
                                                               for _ in range(5)))
        for name, fn in fns.items():
            times[name].append(timed(fn, x, y))
    unit = statistics.median(times.pop("one forward+backward"))
    rows = [{"contender": name, "batch": len(x), "median_s": round(statistics.median(t), 4),
             "images_per_s": round(len(x) / statistics.median(t), 1),
             "ratio_to_k_grads": round(statistics.median(t) / (STEPS * unit), 3)}
            for name, t in times.items()]
    rows.append({"contender": "one forward+backward", "batch": len(x), "median_s": round(unit, 4),
                 "images_per_s": round(len(x) / unit, 1), "ratio_to_k_grads": None})
    return pd.DataFrame(rows)


def early_stop(model, split, label: str, steps: int = 20) -> list[dict]:
    rows = []
    for es in (False, True):
        m = robust_metrics(model, split, make_attack("pgd", eps=EPS, steps=steps, early_stop=es))
        rows.append({"model": label, "early_stop": es, "steps": steps, "robust_acc": round(m["acc"], 4),
                     "robust_bacc": round(m["bacc"], 4), "seconds": m["seconds"]})
    rows[1]["speedup"] = round(rows[0]["seconds"] / rows[1]["seconds"], 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="pneumoniamnist")
    parser.add_argument("--profile", default="cpu", help="profile of the undefended model")
    parser.add_argument("--at-profile", default="smoke", help="profile of the PGD-AT model")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--eval-subset", type=int, default=512)
    parser.add_argument("--out", default=str(HERE / "attack_speed"))
    parser.add_argument("--machine-note", default="say what else ran on the machine",
                        help="what else ran on the CPU during the measurement")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, _ = train_baseline(args.dataset, args.profile, progress=False)
    test = load_dataset(args.dataset)["test"]
    x, y = test.x[:args.batch], test.y[:args.batch]
    table = speed(model, x, y, args.repeats)
    rows = early_stop(model, test.subset(args.eval_subset, 0), f"undefended ({args.profile})")
    try:
        from survey_lib.defenses.adversarial_training import train_adversarial

        at_model, _ = train_adversarial(args.dataset, "pgd_at", args.at_profile, progress=False)
        rows += early_stop(at_model, test.subset(args.eval_subset, 0), f"PGD-AT ({args.at_profile})")
    except ImportError:
        print("survey_lib.defenses has no PGD-AT recipe: the adversarially trained row is left undone")
    es = pd.DataFrame(rows)
    machine = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
               f"2-core CPU ({args.machine_note})")
    table.insert(0, "machine", machine)
    es.insert(0, "machine", machine)
    table.to_csv(args.out + ".csv", index=False)
    es.to_csv(args.out + "_early_stop.csv", index=False)
    Path(args.out + ".md").write_text(
        f"# PGD-10 L∞ speed (ε = {EPS}/255, batch {args.batch}, {args.dataset} SmallCNN, "
        f"profile {args.profile})\n\n"
        f"Command: `SURVEY_DATA_DIR=<data dir> .venv/bin/python benchmarks/attack_speed/attack_speed.py "
        f"--repeats {args.repeats}`; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"machine: {machine}. Contenders interleaved in each of {args.repeats} repeats; medians. "
        "`ratio_to_k_grads` = PGD-10 time / (10 × one forward+backward input gradient).\n\n"
        + table.drop(columns="machine").to_markdown(index=False)
        + f"\n\n## Early-stopping evaluation mode (PGD-20 at {EPS}/255, {args.eval_subset} test "
        "images; a found adversarial example is kept, so robust accuracy can only go down)\n\n"
        + es.drop(columns="machine").to_markdown(index=False) + NOTE)
    print(table.to_string(index=False))
    print(es.to_string(index=False))


if __name__ == "__main__":
    main()

"""Are the images the cascade leaves robust, or is the cascade too weak (gradient masking)?

    SURVEY_DATA_DIR=... python benchmarks/cascade_survivors.py [--dataset retinamnist] [--eps 8]

Runs the AutoAttack-style cascade on the cpu baseline's test split, then throws much stronger
attacks (more steps and restarts, other losses, 5000-query Square) at the survivors only.
"""

import argparse

import torch

from survey_lib.attacks import AutoAttack, make_attack
from survey_lib.data import load_medmnist
from survey_lib.train import predict, train_baseline

STRONGER = [("apgd_ce", {"steps": 200, "restarts": 5}), ("apgd_dlr", {"steps": 200, "restarts": 3}),
            ("apgd_t", {"steps": 200}), ("cw_pgd", {"steps": 200, "restarts": 5}),
            ("pgd", {"steps": 200, "restarts": 10}), ("square", {"steps": 5000})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="retinamnist")
    parser.add_argument("--eps", type=float, default=8)
    args = parser.parse_args()
    model, _ = train_baseline(args.dataset, "cpu", progress=False)
    test = load_medmnist(args.dataset, "test")
    cascade = AutoAttack(eps=args.eps, steps=100, square_queries=1000)
    survivors = (predict(model, cascade(model, test.x, test.y)).argmax(1) == test.y).nonzero().view(-1)
    print(f"cascade at {args.eps:g}/255: {len(survivors)} of {len(test)} robust; stages {cascade.stages}")
    x, y = test.x[survivors], test.y[survivors]
    alive = torch.ones(len(x), dtype=torch.bool)
    for name, kw in STRONGER:
        fooled = predict(model, make_attack(name, eps=args.eps, **kw)(model, x, y)).argmax(1) != y
        alive &= ~fooled
        print(f"{name} {kw}: fooled {int(fooled.sum())}, still robust {int(alive.sum())}")
    print(f"robust accuracy after all of them: {int(alive.sum()) / len(test):.4f}")


if __name__ == "__main__":
    main()

"""Are the images the cascade leaves robust, or is the cascade too weak (gradient masking)?

    SURVEY_DATA_DIR=... python benchmarks/cascade_survivors.py [--dataset retinamnist] [--eps 8]

Runs the AutoAttack-style cascade on the cpu baseline's test split, then throws much stronger
attacks (more steps and restarts, other losses, 5000-query Square) at the survivors only, and
describes them: true class, clean logit margin, and the margin over its first-order bound
ε·‖∇ₓ loss‖₁ (how far a linear model of the loss says ε can move the logits: ≫ 1 means a flat,
confident neighbourhood).
"""

import argparse

import torch

from survey_lib.attacks import AALite, make_attack
from survey_lib.data import load_medmnist
from survey_lib.train import predict, train_baseline

STRONGER = [("apgd_ce", {"steps": 200, "restarts": 5}), ("apgd_dlr", {"steps": 200, "restarts": 3}),
            ("apgd_t", {"steps": 200}), ("cw_pgd", {"steps": 200, "restarts": 5}),
            ("pgd", {"steps": 200, "restarts": 10}), ("square", {"steps": 5000})]


def describe(model, x, y, survivors, eps) -> None:
    logits = predict(model, x)
    correct = logits.argmax(1) == y
    others = correct.clone()
    others[survivors] = False  # clean-correct images the cascade broke
    top2 = logits.topk(2, 1).values
    margin = top2[:, 0] - top2[:, 1]
    xg = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(model.eval()(xg), y, reduction="sum").backward()
    ratio = margin / (eps / 255 * xg.grad.flatten(1).abs().sum(1))
    print(f"survivors' true classes: {torch.bincount(y[survivors], minlength=logits.shape[1]).tolist()}"
          f"; clean-correct: {torch.bincount(y[correct], minlength=logits.shape[1]).tolist()}")
    print(f"median clean margin: survivors {margin[survivors].median():.2f}, "
          f"broken {margin[others].median():.2f}"
          f"; margin / (eps * |grad|_1): survivors {ratio[survivors].median():.1f}, "
          f"broken {ratio[others].median():.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="retinamnist")
    parser.add_argument("--eps", type=float, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, _ = train_baseline(args.dataset, "cpu", progress=False)
    test = load_medmnist(args.dataset, "test")
    cascade = AALite(eps=args.eps, steps=100, square_queries=1000)
    survivors = (predict(model, cascade(model, test.x, test.y)).argmax(1) == test.y).nonzero().view(-1)
    print(f"cascade at {args.eps:g}/255: {len(survivors)} of {len(test)} robust; stages {cascade.stages}")
    describe(model, test.x, test.y.view(-1), survivors, args.eps)
    x, y = test.x[survivors], test.y[survivors]
    alive = torch.ones(len(x), dtype=torch.bool)
    for name, kw in STRONGER:
        fooled = predict(model, make_attack(name, eps=args.eps, **kw)(model, x, y)).argmax(1) != y
        alive &= ~fooled
        print(f"{name} {kw}: fooled {int(fooled.sum())}, still robust {int(alive.sum())}")
    print(f"robust accuracy after all of them: {int(alive.sum()) / len(test):.4f}")


if __name__ == "__main__":
    main()

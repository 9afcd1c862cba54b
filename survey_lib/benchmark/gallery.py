"""Examples for the benchmark's gallery figure: correctly and confidently classified test images
attacked by white-box PGD at each dataset's largest evaluation ε, against the NAT and PGD-AT
models of the first seed."""

from __future__ import annotations

import torch

from .protocol import make_grid_attack, test_split, train_model
from .spec import GridSpec


def confident_examples(model, split, n: int) -> torch.Tensor:
    """Indices of ``n`` test images the model classifies correctly with the highest confidence,
    taken in turn from each class (so every class appears when it can)."""
    from ..train import predict

    probs = torch.softmax(predict(model, split.x), 1)
    p_true = probs.gather(1, split.y.view(-1, 1))[:, 0]
    correct = probs.argmax(1) == split.y
    ranked = [torch.nonzero(correct & (split.y == c)).view(-1) for c in range(probs.shape[1])]
    ranked = [r[p_true[r].argsort(descending=True)] for r in ranked]
    picks, depth = [], 0
    while len(picks) < n and any(depth < len(r) for r in ranked):
        picks += [int(r[depth]) for r in ranked if depth < len(r)]
        depth += 1
    return torch.tensor(picks[:n], dtype=torch.long)


def gallery(spec: GridSpec, profile, n: int = 4, defenses=("nat", "pgd_at")) -> list[dict]:
    """One entry per 2D classification dataset and model: ``n`` images the NAT model classifies
    correctly and confidently (seed of the grid's first seed), their PGD versions at the largest
    evaluation ε, and both predictions."""
    out = []
    for dataset in spec.datasets:
        test = test_split(dataset, spec.size)
        if test.info.task == "segmentation" or test.info.is_3d:
            continue
        eps, seed = max(spec.eval_eps_for(dataset)), spec.seeds_for(dataset)[0]
        chosen = [d for d in defenses if d in spec.defenses_for(dataset)]
        if not chosen:  # e.g. `--defenses trades mart`: no model of the figure in this grid
            continue
        models = {d: train_model(dataset, d, None if d == "nat" else spec.train_eps_for(dataset),
                                 seed, profile)[0] for d in chosen}
        images = test.take(confident_examples(models[chosen[0]], test, n))
        for defense, model in models.items():
            x_adv = make_grid_attack("pgd", eps, spec)(model, images.x, images.y)
            with torch.no_grad():
                pred, pred_adv = model(images.x).argmax(1), model(x_adv).argmax(1)
            out.append({"dataset": dataset, "defense": defense, "eps": eps, "seed": seed,
                        "x": images.x, "x_adv": x_adv, "y": images.y, "pred": pred,
                        "pred_adv": pred_adv, "classes": test.info.class_names})
    return out

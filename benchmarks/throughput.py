"""Training and PGD-10 throughput (images/s) of our models on this machine's device.

    python benchmarks/throughput.py [--models smallcnn resnet18] [--batch 128] [--out FILE.csv]

On CUDA it uses bf16 autocast and channels_last (what survey_lib.train does); ``--compile`` adds
torch.compile. Each number is the median of ``--repeats`` timed runs after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from survey_lib.attacks import make_attack
from survey_lib.losses import task_loss
from survey_lib.models import build_model
from survey_lib.train import autocast, select_device, to_device


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(name: str, batch: int, repeats: int, compile_model: bool) -> dict:
    device = select_device()
    torch.manual_seed(0)
    model = build_model(name, 1, 2, image_size=28)
    x = to_device(model, torch.rand(batch, 1, 28, 28), device)
    y = torch.randint(0, 2, (batch,), device=device)
    net = torch.compile(model) if compile_model else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = task_loss("binary-class")

    def train_step():
        with autocast(device):
            loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    pgd = make_attack("pgd", eps=8, steps=10)

    def timed(fn) -> float:
        fn()
        _sync(device)  # warm-up (and compilation)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - start)
        return batch / statistics.median(times)

    model.train()
    train = timed(train_step)
    attack = timed(lambda: pgd(net, x, y))
    return {"model": name, "batch": batch, "device": str(device),
            "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "compile": compile_model,
            "train_img_per_s": round(train, 1), "pgd10_img_per_s": round(attack, 1),
            "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smallcnn", "resnet18"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = pd.DataFrame([measure(m, args.batch, args.repeats, args.compile) for m in args.models])
    print(rows.to_string(index=False))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()

"""Seconds per iteration and images per second of the paper-size image NODEs/ANODEs.

    python benchmarks/bench_images.py [--iters 3] [--batch-size 256] [--device auto] [--datasets mnist,cifar10]

Random inputs of MNIST (1x28x28) and CIFAR-10 (3x32x32) shape, the paper's parameter-matched
presets, Adam lr 1e-3, dopri5 at rtol = atol = 1e-3, backpropagation through the solver. One
warm-up iteration is not timed. On CUDA the timer synchronises the device. On CPU one thread.
"""
import argparse
import time

import torch

from anode_utils import conv
from anode_utils.nfe import read_and_reset_nfe
from anode_utils.provenance import hardware


def bench(dataset, model_name, iters, batch_size, device):
    torch.manual_seed(0)
    model = conv.preset(dataset, model_name).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch_size, *conv.PRESETS[dataset]["img_size"], device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        nf = read_and_reset_nfe(model)
        loss.backward()
        opt.step()
        return nf, read_and_reset_nfe(model)

    step()  # warm-up (allocations, cuDNN autotuning)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    nfes = [step() for _ in range(iters)]
    sync()
    sec = (time.perf_counter() - t0) / iters
    n = sum(p.numel() for p in model.parameters())
    return sec, batch_size / sec, nfes[-1], n


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--datasets", default="mnist,cifar10", help="comma-separated: mnist, cifar10")
    args = p.parse_args()
    datasets = [d for d in args.datasets.split(",") if d]
    if set(datasets) - {"mnist", "cifar10"}:
        p.error(f"--datasets takes mnist and/or cifar10; got {args.datasets!r}")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    if device.type == "cpu":
        torch.set_num_threads(1)
    print(f"# {hardware()}; torch {torch.__version__}; device {device}; batch {args.batch_size}; "
          f"{args.iters} timed iterations after 1 warm-up")
    print("| data | model | parameters | s / iteration | images / s | NFE forward / backward |")
    print("|---|---|---|---|---|---|")
    for dataset in datasets:
        for model in ("node", "anode"):
            sec, ips, (nf, nb), n = bench(dataset, model, args.iters, args.batch_size, device)
            print(f"| {dataset} | {model} | {n:,} | {sec:.2f} | {ips:.0f} | {nf} / {nb} |", flush=True)


if __name__ == "__main__":
    main()

"""Seconds per iteration and images per second of the paper-size image NODEs/ANODEs.

    python benchmarks/bench_images.py [--iters 3] [--batch-size 256] [--device auto] [--datasets mnist,cifar10]
                                      [--time-dependent] [--tf32] [--channels-last]

Random inputs of MNIST (1x28x28) and CIFAR-10 (3x32x32) shape, the paper's parameter-matched
presets, Adam lr 1e-3, dopri5 at rtol = atol = 1e-3, backpropagation through the solver. One
warm-up iteration is not timed. On CUDA the timer synchronises the device. On CPU one thread.
Full float32 unless --tf32 (the header prints the precision settings in force); no time input
unless --time-dependent (the CPU table in benchmarks/README.md was measured without it).
"""

import argparse
import time

import torch

from anode_utils import conv, precision
from anode_utils.nfe import read_and_reset_nfe
from anode_utils.provenance import hardware


def bench(
    dataset,
    model_name,
    iters,
    batch_size,
    device,
    time_dependent=False,
    channels_last=False,
):
    torch.manual_seed(0)
    model = conv.preset(dataset, model_name, time_dependent=time_dependent).to(
        device
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(
        batch_size, *conv.PRESETS[dataset]["img_size"], device=device
    )
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
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
    p.add_argument(
        "--datasets",
        default="mnist,cifar10",
        help="comma-separated: mnist, cifar10",
    )
    p.add_argument(
        "--time-dependent",
        action="store_true",
        help="time input (the authors' setting)",
    )
    p.add_argument(
        "--tf32",
        action="store_true",
        help="allow TF32 on a GPU (changes numerics; measure it)",
    )
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="channels-last memory format",
    )
    args = p.parse_args()
    if args.iters < 1 or args.batch_size < 1:
        p.error("--iters and --batch-size must be >= 1")
    datasets = [d for d in args.datasets.split(",") if d]
    if set(datasets) - {"mnist", "cifar10"}:
        p.error(
            f"--datasets takes mnist and/or cifar10; got {args.datasets!r}"
        )
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    if device.type == "cpu":
        torch.set_num_threads(1)
    prec = precision.configure(args.tf32)
    gpu = (
        f" ({torch.cuda.get_device_name(device)})"
        if device.type == "cuda"
        else ""
    )
    print(
        f"# {hardware()}; torch {torch.__version__}; device {device}{gpu}; batch {args.batch_size}; "
        f"{args.iters} timed iterations after 1 warm-up; time input {args.time_dependent}; "
        f"channels_last {args.channels_last}"
    )
    print(
        f"# cudnn.allow_tf32={prec['cudnn_allow_tf32']}, cuda.matmul.allow_tf32="
        f"{prec['cuda_matmul_allow_tf32']}, float32 matmul precision {prec['float32_matmul_precision']!r}"
        + ("" if device.type == "cuda" else " (no effect on the CPU)")
    )
    print(
        "| data | model | parameters | s / iteration | images / s | NFE forward / backward |"
    )
    print("|---|---|---|---|---|---|")
    for dataset in datasets:
        for model in ("node", "anode"):
            sec, ips, (nf, nb), n = bench(
                dataset,
                model,
                args.iters,
                args.batch_size,
                device,
                args.time_dependent,
                args.channels_last,
            )
            print(
                f"| {dataset} | {model} | {n:,} | {sec:.2f} | {ips:.0f} | {nf} / {nb} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""``python -m anode_utils images``: NODE / ANODE image classifiers, checkpointed and resumable.

Example (the paper's MNIST ANODE)::

    python -m anode_utils images --dataset mnist --model anode --epochs 30 \\
        --out results/images/mnist_anode.json --checkpoint runs/mnist_anode.pt

Every ``--checkpoint-every`` iterations (and at the end) the model, optimizer, history and RNG
states are saved with ``torch.save``; rerunning the same command after an interruption resumes
from the checkpoint and produces the same history as an uninterrupted run (the batch order
comes from the seed alone). Under ``torchrun --nproc_per_node N`` the model is wrapped in
DistributedDataParallel (NCCL on GPUs, gloo on CPU) and each process trains on its slice of
every global batch of ``--batch-size`` images.
"""
import os
import pathlib
import time

import torch

from . import conv, images
from .provenance import provenance, write_json
from .training import History, evaluate, train


def add_arguments(p):
    p.add_argument("--dataset", choices=images.DATASETS, default="mnist")
    p.add_argument("--model", choices=("node", "anode"), default="anode",
                   help="node or anode; --filters/--augment-dim default to the paper's matched preset")
    p.add_argument("--filters", type=int, default=None, help="filters of the vector field's convolutions")
    p.add_argument("--augment-dim", type=int, default=None, help="zero channels appended (0: NODE)")
    p.add_argument("--time-dependent", action="store_true", help="feed t as an extra channel")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-iters", type=int, default=None, help="stop after this many iterations")
    p.add_argument("--batch-size", type=int, default=256, help="global batch (split over processes)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--method", default="dopri5")
    p.add_argument("--tol", type=float, default=1e-3, help="rtol = atol of adaptive solvers")
    p.add_argument("--step-size", type=float, default=None, help="step of fixed-step solvers (euler, rk4)")
    p.add_argument("--adjoint", action="store_true", help="backpropagate with the adjoint method")
    p.add_argument("--max-num-steps", type=int, default=1000)
    p.add_argument("--subset", type=int, default=None, help="first N training images")
    p.add_argument("--test-subset", type=int, default=None, help="first N test images")
    p.add_argument("--img-size", type=int, default=None, help="resize images to S x S")
    p.add_argument("--out", default=None, help="results JSON (history, test accuracy, provenance)")
    p.add_argument("--checkpoint", default=None, help="checkpoint .pt (one per seed when several)")
    p.add_argument("--checkpoint-every", type=int, default=10, help="iterations between checkpoints")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")


def _distributed():
    """(rank, world_size, local_rank), initialising torch.distributed under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    import torch.distributed as dist
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, local


def _device(choice, local_rank):
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device(choice)


def checkpoint_path(path, seed, seeds):
    """The checkpoint of one seed: ``path`` itself for a single seed, else NAME.seedS.pt."""
    path = pathlib.Path(path)
    return path if len(seeds) == 1 else path.with_name(f"{path.stem}.seed{seed}{path.suffix}")


def save_checkpoint(path, model, optimizer, history, config):
    """Atomically save plain containers and tensors only (loadable with weights_only=True)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "history": history.to_dict(), "config": config,
             "rng": {"torch": torch.get_rng_state(),
                     "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, model, optimizer):
    """Restore model, optimizer and RNG states in place; return (history, config)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return History.from_dict(state["history"]), state["config"]


def build_model(args):
    """The ConvODENet the arguments describe (paper preset unless --filters/--augment-dim)."""
    filters, augment = conv.PRESETS[args.dataset][args.model]
    filters = filters if args.filters is None else args.filters
    augment = augment if args.augment_dim is None else args.augment_dim
    if args.model == "node" and augment:
        raise ValueError(f"--model node means no augmentation; got --augment-dim {augment}")
    c = conv.PRESETS[args.dataset]["img_size"][0]
    s = args.img_size or conv.PRESETS[args.dataset]["img_size"][1]
    solver = dict(method=args.method, rtol=args.tol, atol=args.tol, adjoint=args.adjoint,
                  max_num_steps=args.max_num_steps, step_size=args.step_size)
    return conv.ConvODENet((c, s, s), filters, augment, output_dim=10,
                           time_dependent=args.time_dependent, **solver)


def _config(args):
    return {k: v for k, v in vars(args).items() if k != "func"}


def run_seed(args, seed, x, y, test, device, rank, world, verbose=True):
    """Train (or resume) one seed; return its record for the results file."""
    torch.manual_seed(seed)
    model = build_model(args).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    history, ckpt = History(), None
    if args.checkpoint:
        ckpt = checkpoint_path(args.checkpoint, seed, args.seeds)
        if ckpt.is_file():
            history, saved = load_checkpoint(ckpt, model, optimizer)
            for key in ("dataset", "model", "filters", "augment_dim", "batch_size", "lr",
                        "weight_decay", "method", "tol", "subset", "img_size"):
                if saved.get(key) != getattr(args, key):
                    raise ValueError(f"{ckpt} was written with --{key.replace('_', '-')} "
                                     f"{saved.get(key)!r}, not {getattr(args, key)!r}: "
                                     f"use another --checkpoint or the original arguments")
            if verbose and rank == 0:
                print(f"seed {seed}: resuming {ckpt} at iteration {len(history)}", flush=True)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    config = _config(args)

    def callback(_, hist):
        n = len(hist)
        if verbose and rank == 0 and n % 10 == 0:
            print(f"seed {seed} iter {n}: loss {hist.loss[-1]:.4f} acc {hist.accuracy[-1]:.3f} "
                  f"nfe {hist.nfe_forward[-1]:.0f}/{hist.nfe_backward[-1]:.0f}", flush=True)
        if ckpt is not None and rank == 0 and n % args.checkpoint_every == 0:
            save_checkpoint(ckpt, model, optimizer, hist, config)

    start = time.perf_counter()
    history = train(net, x, y, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    weight_decay=args.weight_decay, loss="cross_entropy", seed=seed,
                    history=history, callback=callback, optimizer=optimizer,
                    start_iteration=len(history), max_iterations=args.max_iters,
                    shard=(rank, world) if world > 1 else None)
    seconds = time.perf_counter() - start
    if ckpt is not None and rank == 0:
        save_checkpoint(ckpt, model, optimizer, history, config)
    test_loss, test_acc = evaluate(model, *test, loss="cross_entropy", batch_size=1000)
    return {"seed": seed, "num_parameters": sum(p.numel() for p in model.parameters()),
            "history": history.to_dict(), "test_loss": test_loss, "test_accuracy": test_acc,
            "seconds_this_session": seconds}


def run_config(config):
    """One seed, in this process, from a plain dict of command-line options (``augment_dim``
    for ``--augment-dim``; ``seed`` for a single seed). Returns the run's record (history,
    test accuracy, number of parameters). Module-level, so :func:`anode_utils.run_parallel`
    can run several configurations side by side (one thread each)."""
    import argparse
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    config = dict(config)
    if "seed" in config:
        config["seeds"] = [config.pop("seed")]
    unknown = set(config) - set(vars(args))
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; valid: {sorted(vars(args))}")
    vars(args).update(config)
    device = _device(args.device, 0)
    x, y = images.load_images(args.dataset, "train", args.subset, args.img_size, device)
    test = images.load_images(args.dataset, "test", args.test_subset, args.img_size, device)
    return dict(run_seed(args, args.seeds[0], x, y, test, device, 0, 1, verbose=False),
                config=config)


def run(args):
    if args.checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every must be >= 1; got {args.checkpoint_every}")
    rank, world, local = _distributed()
    device = _device(args.device, local)
    if device.type == "cpu":
        torch.set_num_threads(1)
    if args.batch_size % world:
        raise ValueError(f"--batch-size {args.batch_size} must be divisible by the "
                         f"{world} processes so that every process gets an equal slice")
    x, y = images.load_images(args.dataset, "train", args.subset, args.img_size, device)
    test = images.load_images(args.dataset, "test", args.test_subset, args.img_size, device)
    runs = [run_seed(args, seed, x, y, test, device, rank, world) for seed in args.seeds]
    if rank == 0:
        for r in runs:
            print(f"seed {r['seed']}: {len(r['history']['loss'])} iterations, "
                  f"test accuracy {r['test_accuracy']:.4f}", flush=True)
        if args.out:
            write_json(args.out, {"provenance": provenance(), "config": _config(args),
                                  "world_size": world, "device": str(device), "runs": runs})
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
        dist.destroy_process_group()
    return 0

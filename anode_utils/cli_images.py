"""``python -m anode_utils images``: NODE / ANODE image classifiers, checkpointed and resumable.

Example (the authors' MNIST ANODE: 64 filters + 5 channels, time input, batch 256, 20 epochs)::

    python -m anode_utils images --dataset mnist --model anode --epochs 20 --seeds 0 1 2 3 4 \\
        --out results/images/mnist_anode.json --checkpoint runs/mnist_anode.pt

Every option is checked (type and range) before any data loads. Every ``--checkpoint-every``
iterations (and at the end) the model, optimizer, history and RNG states are saved with
``torch.save``; rerunning the same command after an interruption resumes from the checkpoint
and produces the same history as an uninterrupted run (the batch order comes from the seed
alone). A checkpoint written with other model or numerics options is refused before any
weights load. The results file (``--out``, format in :mod:`anode_utils.image_results`) is
rewritten atomically at every checkpoint, every epoch end and at the end; runs of other seeds
already in it are kept (a file of another experiment is refused, never overwritten).
``--max-seconds`` stops training after that much wall-clock time per seed, then evaluates on
the test set and writes the results.

Numerics: full float32 on GPUs by default (cuDNN and matmul TF32 off, float32 matmul
precision 'highest'): TF32's ~1e-3 relative precision is the size of the solver tolerance and
can change step counts. ``--tf32`` and ``--channels-last`` are opt-in speed switches.

Under ``torchrun --nproc_per_node N`` each process trains on its slice of every global batch
of ``--batch-size`` images and gradients are averaged (gloo for ``--device cpu``, NCCL for
cuda); see :mod:`anode_utils.distributed` for what that computes with an adaptive solver.
"""

import argparse
import contextlib
import os
import pathlib
import time

import torch

from . import conv, distributed, image_results, images, precision, solvers
from ._checks import (
    ADAPTIVE_SOLVERS,
    SOLVER_NAMES,
    check_nonneg,
    check_nonneg_int,
    check_pos_int,
    check_positive,
    check_solver,
)
from .ode import SolverError
from .provenance import provenance
from .solvers import BACKEND_NAMES as BACKENDS
from .training import History, Resume, evaluate, train

UNBENCHMARKED = (
    "opt-in speed switch, not benchmarked here (measure before relying on it)"
)
#: --model choices: NODE, ANODE, and the readout-only baseline (no ODE block, NFE 0).
MODELS = ("node", "anode", "readout")


def add_arguments(p):
    p.add_argument("--dataset", choices=images.DATASETS, default="mnist")
    p.add_argument(
        "--model",
        choices=MODELS,
        default="anode",
        help="node or anode (--filters/--augment-dim default to the paper's matched "
        "preset), or readout: the linear readout on the raw pixels (T = 0, no ODE)",
    )
    p.add_argument(
        "--filters",
        type=int,
        default=None,
        help="filters of the vector field's convolutions",
    )
    p.add_argument(
        "--augment-dim",
        type=int,
        default=None,
        help="zero channels appended (0: NODE)",
    )
    p.add_argument(
        "--time-dependent",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="feed t as an extra channel to each convolution (default: on, as the "
        "authors' image configurations)",
    )
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument(
        "--max-iters",
        type=int,
        default=None,
        help="stop after this many iterations",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop training a seed after this many wall-clock seconds, then evaluate "
        "on the test set and write the results",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="global batch (split over processes)",
    )
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument(
        "--method",
        default="dopri5",
        help=f"a torchdiffeq solver: {', '.join(SOLVER_NAMES)}",
    )
    p.add_argument(
        "--tol",
        type=float,
        default=1e-3,
        help="rtol = atol of adaptive solvers",
    )
    p.add_argument(
        "--step-size",
        type=float,
        default=None,
        help="step of fixed-step solvers (euler, rk4)",
    )
    p.add_argument(
        "--adjoint",
        action="store_true",
        help="backpropagate with the adjoint method",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torchdiffeq",
        help="solver implementation: torchdiffeq, or lean (the package's dopri5: the "
        "same steps with less overhead; dopri5 without --adjoint only)",
    )
    p.add_argument("--max-num-steps", type=int, default=1000)
    p.add_argument(
        "--subset", type=int, default=None, help="first N training images"
    )
    p.add_argument(
        "--test-subset", type=int, default=None, help="first N test images"
    )
    p.add_argument(
        "--img-size", type=int, default=None, help="resize images to S x S"
    )
    p.add_argument(
        "--out",
        default=None,
        help="results JSON (per-iteration history, test accuracy "
        "per epoch, provenance); other seeds in it are kept",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint .pt (one per seed when several)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=10,
        help="iterations between checkpoints",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA when available), cpu, cuda or cuda:N",
    )
    p.add_argument(
        "--tf32",
        action="store_true",
        help=f"allow TF32 in cuDNN convolutions and matmuls (~1e-3 relative precision, "
        f"the solver tolerance's size: can change NFE); {UNBENCHMARKED}",
    )
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="channels-last memory format for the model and images (faster on the CPU "
        "for chapter 7's small pair, see benchmarks/README.md; not benchmarked on a GPU: "
        "measure before relying on it there)",
    )


# ----------------------------------------------------------------------------- checks


def _defaults():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args([]))


def resolved(config):
    """A configuration with the parser's defaults for missing fields (older checkpoints) and
    the preset's filters / augment_dim and the native image size filled in."""
    cfg = dict(_defaults(), **config)
    if cfg.get("dataset") in conv.PRESETS and cfg.get("model") in (
        "node",
        "anode",
    ):
        filters, augment = conv.PRESETS[cfg["dataset"]][cfg["model"]]
        cfg["filters"] = filters if cfg["filters"] is None else cfg["filters"]
        cfg["augment_dim"] = (
            augment if cfg["augment_dim"] is None else cfg["augment_dim"]
        )
        cfg["img_size"] = (
            cfg["img_size"] or conv.PRESETS[cfg["dataset"]]["img_size"][1]
        )
    if cfg.get("dataset") in conv.PRESETS and cfg.get("model") == "readout":
        cfg["augment_dim"] = (
            cfg["augment_dim"] or 0
        )  # no field: no filters, no channels added
        cfg["img_size"] = (
            cfg["img_size"] or conv.PRESETS[cfg["dataset"]]["img_size"][1]
        )
    return cfg


def _optional(check, name, value):
    return None if value is None else check(name, value)


def check_device(choice):
    """'auto', 'cpu', 'cuda' or 'cuda:N', usable on this machine."""
    if not isinstance(choice, str):
        raise ValueError(
            f"--device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {choice!r}"
        )
    if choice == "auto":
        return choice
    try:
        dev = torch.device(choice)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(
            f"--device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {choice!r}"
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {choice}: CUDA is not available on this machine "
                f"(torch.cuda.is_available() is False); use --device cpu or auto"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {choice}: this machine has {torch.cuda.device_count()} "
                f"CUDA device(s)"
            )
    return choice


def check_args(args):
    """Check every option's type and range (messages name the option) and fill in the preset's
    --filters / --augment-dim and the native --img-size, in place. Runs before any data loads."""
    a = args
    if a.dataset not in images.DATASETS:
        raise ValueError(
            f"--dataset must be one of {', '.join(images.DATASETS)}; got {a.dataset!r}"
        )
    if a.model not in MODELS:
        raise ValueError(
            f"--model must be 'node', 'anode' or 'readout'; got {a.model!r}"
        )
    a.filters = _optional(check_pos_int, "--filters", a.filters)
    a.augment_dim = _optional(check_nonneg_int, "--augment-dim", a.augment_dim)
    if not isinstance(a.time_dependent, bool):
        raise ValueError(
            f"--time-dependent must be True or False; got {a.time_dependent!r}"
        )
    a.epochs = check_pos_int("--epochs", a.epochs)
    a.max_iters = _optional(check_pos_int, "--max-iters", a.max_iters)
    a.max_seconds = _optional(check_positive, "--max-seconds", a.max_seconds)
    a.batch_size = check_pos_int("--batch-size", a.batch_size)
    a.lr = check_positive("--lr", a.lr)
    a.weight_decay = check_nonneg("--weight-decay", a.weight_decay)
    if not isinstance(a.seeds, (list, tuple)) or not a.seeds:
        raise ValueError(
            f"--seeds must be one or more non-negative integers; got {a.seeds!r}"
        )
    a.seeds = [check_nonneg_int("--seeds", s) for s in a.seeds]
    if len(set(a.seeds)) != len(a.seeds):
        raise ValueError(f"--seeds must not repeat a seed; got {a.seeds}")
    check_solver(a.method, "--method")
    a.tol = check_positive("--tol", a.tol)
    a.step_size = _optional(check_positive, "--step-size", a.step_size)
    if a.step_size is not None and a.method in ADAPTIVE_SOLVERS:
        raise ValueError(
            f"--step-size is for fixed-step solvers (euler, midpoint, rk4); "
            f"--method {a.method} chooses its own steps (set --tol instead)"
        )
    a.max_num_steps = check_pos_int("--max-num-steps", a.max_num_steps)
    a.subset = _optional(check_pos_int, "--subset", a.subset)
    a.test_subset = _optional(check_pos_int, "--test-subset", a.test_subset)
    a.img_size = _optional(check_pos_int, "--img-size", a.img_size)
    a.checkpoint_every = check_pos_int(
        "--checkpoint-every", a.checkpoint_every
    )
    check_device(a.device)
    if a.backend not in BACKENDS:
        raise ValueError(
            f"--backend must be one of {', '.join(BACKENDS)}; got {a.backend!r}"
        )
    backend = solvers.BACKENDS[a.backend]
    if a.method not in backend.methods or (a.adjoint and not backend.adjoint):
        raise ValueError(
            f"--backend {a.backend} implements {backend.description}; got --method "
            f"{a.method}{' --adjoint' if a.adjoint else ''}: drop --backend {a.backend}"
        )
    for flag in ("adjoint", "tf32", "channels_last"):
        if not isinstance(getattr(a, flag), bool):
            raise ValueError(
                f"{image_results.option(flag)} must be True or False; got {getattr(a, flag)!r}"
            )
    cfg = resolved(vars(a))
    if a.model == "node" and cfg["augment_dim"]:
        raise ValueError(
            f"--model node means no augmentation; got --augment-dim {cfg['augment_dim']}"
        )
    if a.model == "readout" and (
        cfg["filters"] is not None or cfg["augment_dim"]
    ):
        raise ValueError(
            "--model readout has no vector field: drop --filters and --augment-dim"
        )
    if a.model == "anode" and not cfg["augment_dim"]:
        raise ValueError(
            "--model anode needs --augment-dim > 0 (with 0 it is a NODE: use --model node)"
        )
    a.filters, a.augment_dim, a.img_size = (
        cfg["filters"],
        cfg["augment_dim"],
        cfg["img_size"],
    )
    if a.out is not None:
        image_results.read_existing(
            a.out, image_results.experiment_of(_config(a))
        )
    if a.checkpoint is not None:
        for seed in a.seeds:
            ckpt = checkpoint_path(a.checkpoint, seed, a.seeds)
            if ckpt.exists():
                check_checkpoint(ckpt, read_checkpoint(ckpt)["config"], a)
    return a


# ----------------------------------------------------------------------------- checkpoints


class CheckpointError(ValueError):
    """A checkpoint file that cannot be resumed (unreadable, or written with other options)."""


def checkpoint_path(path, seed, seeds):
    """The checkpoint of one seed: ``path`` itself for a single seed, else NAME.seedS.pt."""
    path = pathlib.Path(path)
    return (
        path
        if len(seeds) == 1
        else path.with_name(f"{path.stem}.seed{seed}{path.suffix}")
    )


def save_checkpoint(path, model, optimizer, history, config, seconds=0.0):
    """Atomically save plain containers and tensors only (loadable with weights_only=True)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history.to_dict(),
        "config": config,
        "seconds": float(seconds),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all()
            if torch.cuda.is_available()
            else [],
        },
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def read_checkpoint(path):
    """The saved state (tensors on the CPU). Raises :class:`CheckpointError` naming the file
    when it is not a checkpoint of this command (truncated, garbage, another program's)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"--checkpoint {path} exists but is not a file; pass another --checkpoint"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (
        Exception
    ) as err:  # UnpicklingError, RuntimeError (bad zip), EOFError, ...
        raise CheckpointError(
            f"{path} is not a readable checkpoint of `python -m anode_utils images` "
            f"({type(err).__name__}); delete it to start afresh or pass another --checkpoint"
        ) from None
    if not isinstance(state, dict) or not {
        "model",
        "optimizer",
        "history",
        "config",
        "rng",
    } <= set(state):
        raise CheckpointError(
            f"{path} does not hold a checkpoint of `python -m anode_utils images`; "
            f"delete it to start afresh or pass another --checkpoint"
        )
    return state


def check_checkpoint(path, saved, args):
    """Refuse to resume ``path`` (before any weights load) when it was written with another value
    of an option that changes the model or the numerics (image_results.CHECKPOINT_KEYS)."""
    old, new = resolved(saved), resolved(vars(args))
    diffs = image_results.differences(old, new, image_results.CHECKPOINT_KEYS)
    if diffs:
        raise CheckpointError(
            f"{path} was written with other options: {image_results.describe(diffs)}. Resume with "
            f"the original options, or pass another --checkpoint (or delete it) to start afresh"
        )


def load_checkpoint(state, model, optimizer):
    """Restore model, optimizer and RNG states in place from :func:`read_checkpoint`'s state;
    return (history, training seconds so far)."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return History.from_dict(state["history"]), float(
        state.get("seconds", 0.0)
    )


# ----------------------------------------------------------------------------- one seed


def build_model(args):
    """The ConvODENet the arguments describe (paper preset unless --filters/--augment-dim)."""
    cfg = resolved(vars(args))
    c = conv.PRESETS[args.dataset]["img_size"][0]
    s = cfg["img_size"]
    if args.model == "readout":
        return conv.ReadoutNet((c, s, s), output_dim=10)
    solver = dict(
        method=args.method,
        rtol=args.tol,
        atol=args.tol,
        adjoint=args.adjoint,
        max_num_steps=args.max_num_steps,
        step_size=args.step_size,
        backend=getattr(args, "backend", "torchdiffeq"),
    )
    return conv.ConvODENet(
        (c, s, s),
        cfg["filters"],
        cfg["augment_dim"],
        output_dim=10,
        time_dependent=args.time_dependent,
        **solver,
    )


def _config(args):
    return {k: v for k, v in vars(args).items() if k != "func"}


class _OutOfTime(Exception):
    """Raised by the training callback when --max-seconds is spent (on every process alike)."""


def _out_of_time(deadline, device, world):
    late = deadline is not None and time.perf_counter() >= deadline
    if (
        world > 1
    ):  # process 0's clock decides for all, so they stop at the same iteration
        import torch.distributed as dist

        flag = torch.tensor([int(late)], device=device)
        dist.broadcast(flag, 0)
        late = bool(flag.item())
    return late


def run_seed(args, seed, x, y, test, device, rank, world, verbose=True):
    """Train (or resume) one seed; return its record for the results file (written to
    ``args.out`` by process 0 at every checkpoint, every epoch end and at the end)."""
    torch.manual_seed(seed)
    model = build_model(args).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=args.lr, weight_decay=args.weight_decay
    )
    history, ckpt, seconds_before = History(), None, 0.0
    if args.checkpoint:
        ckpt = checkpoint_path(args.checkpoint, seed, args.seeds)
        state = None
        if rank == 0 and ckpt.is_file():
            state = read_checkpoint(ckpt)
            check_checkpoint(
                ckpt, state["config"], args
            )  # before any weights load
        if world > 1:
            # process 0 (which writes the checkpoints) hands its state to all: on several
            # machines the others may not see the file, and all must resume the same state
            import torch.distributed as dist

            box = [state]
            dist.broadcast_object_list(
                box, src=0, device=device if device.type == "cuda" else None
            )
            state = box[0]
        if state is not None:
            history, seconds_before = load_checkpoint(state, model, optimizer)
            if verbose and rank == 0:
                print(
                    f"seed {seed}: resuming {ckpt} at iteration {len(history)}",
                    flush=True,
                )
    config = dict(_config(args), world_size=world)
    experiment = image_results.experiment_of(config)
    num_parameters = sum(p.numel() for p in model.parameters())
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    deadline = None if args.max_seconds is None else start + args.max_seconds

    def record(status, stopped_by, test_metrics=(None, None)):
        h = history.to_dict()
        return {
            "seed": seed,
            "status": status,
            "stopped_by": stopped_by,
            "iterations": len(history),
            "epochs_completed": len(history.epoch_end),
            "num_parameters": num_parameters,
            "train_seconds": seconds_before + time.perf_counter() - start,
            "history": {
                k: h[k] for k in (*image_results.SERIES, "epoch_end", "error")
            },
            "test_accuracy_per_epoch": h["val_accuracy"],
            "test_loss_per_epoch": h["val_loss"],
            "test_loss": test_metrics[0],
            "test_accuracy": test_metrics[1],
            "config": config,
            "world_size": world,
            "device": str(device),
            "cuda_max_memory_gib": (
                torch.cuda.max_memory_allocated(device) / 2**30
                if device.type == "cuda"
                else None
            ),
            "provenance": provenance(),
        }

    def write(status="running", stopped_by=None, test_metrics=(None, None)):
        if rank == 0 and args.out:
            image_results.write_run(
                args.out,
                experiment,
                record(status, stopped_by, test_metrics),
                num_parameters,
            )

    def save():
        if ckpt is not None and rank == 0:
            save_checkpoint(
                ckpt,
                model,
                optimizer,
                history,
                config,
                seconds_before + time.perf_counter() - start,
            )

    def callback(_, hist):
        n = len(hist)
        if verbose and rank == 0 and n % 10 == 0:
            print(
                f"seed {seed} iter {n}: loss {hist.loss[-1]:.4f} acc {hist.accuracy[-1]:.3f} "
                f"nfe {hist.nfe_forward[-1]:.0f}/{hist.nfe_backward[-1]:.0f}",
                flush=True,
            )
        if n % args.checkpoint_every == 0:
            save()
            write()
        if deadline is not None and _out_of_time(deadline, device, world):
            raise _OutOfTime

    stopped_by = (
        "error" if history.error is not None else None
    )  # a failed run stays failed
    try:
        # one call per epoch, so the results file is rewritten at each epoch end; the batch
        # order is the same as one call for all epochs (train replays the seeded order)
        for epoch in range(1, args.epochs + 1):
            if stopped_by is not None or len(history.epoch_end) >= epoch:
                continue  # finished before a resume
            history = train(
                model,
                x,
                y,
                epochs=epoch,
                batch_size=args.batch_size,
                lr=args.lr,
                weight_decay=args.weight_decay,
                loss="cross_entropy",
                seed=seed,
                val=test,
                callback=callback,
                optimizer=optimizer,
                resume=Resume(history, args.max_iters),
                shard=(rank, world) if world > 1 else None,
            )
            if history.error is not None:
                stopped_by = "error"
                break
            if len(history.epoch_end) < epoch:
                stopped_by = "max_iters"
                break
            write()
    except _OutOfTime:
        stopped_by = "max_seconds"
    save()
    metrics = (None, None)
    if rank == 0:  # the other processes wait at the end-of-run barrier
        try:
            metrics = evaluate(
                model, *test, loss="cross_entropy", batch_size=1000
            )
        except SolverError as err:
            history.error = history.error or f"test evaluation failed: {err}"
            stopped_by = stopped_by or "error"
    status = {None: "complete", "error": "failed"}.get(stopped_by, "stopped")
    write(status, stopped_by, metrics)
    return record(status, stopped_by, metrics)


# ----------------------------------------------------------------------------- the command


def _device(choice, local_rank):
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(choice)
    if dev.type == "cuda":
        dev = torch.device(
            "cuda", dev.index if dev.index is not None else local_rank
        )
        torch.cuda.set_device(dev)
    return dev


def describe_machine(device):
    """One line: device, GPU, versions and float32 precision settings (printed at start)."""
    p = provenance([])
    gpu = (
        p["gpu"]["name"] if p["gpu"] and device.type == "cuda" else "none used"
    )
    prec = p["precision"]
    return (
        f"device {device}; GPU {gpu}; torch {p['torch']}, torchdiffeq {p['torchdiffeq']}, "
        f"CUDA {p['cuda']}, cuDNN {p['cudnn']}; cudnn.allow_tf32={prec['cudnn_allow_tf32']}, "
        f"cuda.matmul.allow_tf32={prec['cuda_matmul_allow_tf32']}, float32 matmul precision "
        f"{prec['float32_matmul_precision']!r}"
    )


def _load_data(args, device):
    x, y = images.load_images(
        args.dataset, "train", args.subset, args.img_size, device
    )
    test = images.load_images(
        args.dataset, "test", args.test_subset, args.img_size, device
    )
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        test = (test[0].contiguous(memory_format=torch.channels_last), test[1])
    return x, y, test


def run_config(config):
    """One seed, in this process, from a plain dict of command-line options (``augment_dim``
    for ``--augment-dim``; ``seed`` for a single seed). Returns the run's record (history,
    test accuracy, number of parameters). Module-level, so :func:`anode_utils.run_parallel`
    can run several configurations side by side (one thread each)."""
    args = argparse.Namespace(**_defaults())
    config = dict(config)
    if "seed" in config:
        config["seeds"] = [config.pop("seed")]
    unknown = set(config) - set(vars(args))
    if unknown:
        raise ValueError(
            f"unknown options {sorted(unknown)}; valid: {sorted(vars(args))}"
        )
    vars(args).update(config)
    check_args(args)
    precision.configure(args.tf32)
    device = _device(args.device, 0)
    x, y, test = _load_data(args, device)
    return dict(
        run_seed(args, args.seeds[0], x, y, test, device, 0, 1, verbose=False),
        config=config,
    )


# Errors the command expects: before training, bad options, missing or damaged data sets and
# files, a checkpoint that cannot be resumed, a missing optional dependency (the images
# extra); during training, a checkpoint or results file that cannot be read or written and a
# solve that gives up. `python -m anode_utils` prints them as one ``error: ...`` line (exit
# status 1, as ``toy``); anything else is a bug and keeps its traceback.
SETUP_ERRORS = (ValueError, OSError, ImportError)
TRAINING_ERRORS = (CheckpointError, SolverError, OSError)


@contextlib.contextmanager
def _expected(*errors):
    """Mark ``errors`` raised inside as expected ones (``err.expected_by_command``) and re-raise
    them: called as a function, :func:`run` still raises the package's own error types."""
    try:
        yield
    except errors as err:
        err.expected_by_command = True
        raise


def run(args):
    with _expected(*SETUP_ERRORS):
        check_args(args)  # before any data loads or processes connect
        precision.configure(args.tf32)
        device = _device(args.device, int(os.environ.get("LOCAL_RANK", "0")))
        rank, world, _ = distributed.init_from_env(
            device
        )  # gloo for cpu, NCCL for cuda
        if device.type == "cpu" and world > 1:
            torch.set_num_threads(
                1
            )  # side-by-side processes share the cores; one alone uses them
        if args.batch_size % world:
            raise ValueError(
                f"--batch-size {args.batch_size} must be divisible by the "
                f"{world} processes so that every process gets an equal slice"
            )
        if rank == 0:
            print(
                describe_machine(device)
                + (f"; {world} processes" if world > 1 else ""),
                flush=True,
            )
            if args.out and pathlib.Path(args.out).exists():
                from .provenance import read_json

                there = image_results.seeds_in(read_json(args.out))
                keep = sorted(set(there) - set(args.seeds))
                again = sorted(set(there) & set(args.seeds))
                if keep:
                    print(
                        f"{args.out} holds seeds {keep}: kept; this run adds seeds {args.seeds}",
                        flush=True,
                    )
                if again:
                    print(
                        f"{args.out}: its runs of seeds {again} are replaced by this run's",
                        flush=True,
                    )
        x, y, test = _load_data(args, device)
    with _expected(*TRAINING_ERRORS):
        runs = [
            run_seed(args, seed, x, y, test, device, rank, world)
            for seed in args.seeds
        ]
    if rank == 0:
        for r in runs:
            acc = (
                "n/a"
                if r["test_accuracy"] is None
                else f"{r['test_accuracy']:.4f}"
            )
            print(
                f"seed {r['seed']}: {r['iterations']} iterations ({r['status']}"
                f"{', ' + r['stopped_by'] if r['stopped_by'] else ''}), test accuracy {acc}"
                + (
                    f"; error: {r['history']['error']}"
                    if r["history"]["error"]
                    else ""
                ),
                flush=True,
            )
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0

#!/usr/bin/env python
"""MNIST NODE (92 filters) and ANODE (64 filters + 5 channels) at the authors' settings on one
GPU, inside a wall-clock budget.

    python scripts/gpu_paper_mnist.py --max-seconds 540

The authors' MNIST configuration: a time input to the vector field, batch 256, Adam at lr
1e-3, dopri5 at rtol = atol = 1e-3, direct backpropagation, 20 epochs, 5 repetitions. Every
(model, seed) runs as ``python -m anode_utils images`` (``--jobs`` of them side by side on the
GPU), each with a training budget (``--max-seconds`` of that command) chosen so that the whole
script ends within ``--max-seconds``: a run whose budget is spent stops, is evaluated on the
full test set and writes its results. A run still alive at the end of the budget is stopped
(its results file holds what it wrote at its last checkpoint).

Writes ``<out-dir>/mnist_node.json`` and ``<out-dir>/mnist_anode.json`` (format
``anode_utils.image-results/1``; default out-dir ``results/images/`` in the working
directory: ``load_image_results('results/images/mnist_node.json')`` reads them, and copied
into ``anode_utils/results/images/`` they become the image chapter's shipped runs), and
checkpoints in ``<checkpoint-dir>`` (default ``runs/gpu_paper_mnist/`` in the working
directory): rerunning the same command resumes
every run where it stopped, so several budget-sized calls add up to the full 20 epochs.
Runs of other seeds already in the results files are kept.

Prints the GPU, the versions and the float32 precision settings first. Full float32 by
default (cuDNN / matmul TF32 off, float32 matmul precision 'highest'), as needed for numbers
comparable with the paper; ``--tf32`` and ``--channels-last`` are passed through and are not
benchmarked here. Data: ``ANODE_DATA_DIR`` (or ``--data-dir``) with MNIST's four .gz files
(~11 MB), verified before anything starts.

Tiny CPU check (the test suite): ``--device cpu --jobs 1 --img-size 6 --subset 64
--test-subset 32 --batch-size 16 --max-iters 2``.
"""

import argparse
import math
import os
import pathlib
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout, installed or not

#: The paper's parameter-matched MNIST pair (anode_utils.conv.PRESETS) and the authors' settings.
MODELS = {"node": (92, 0), "anode": (64, 5)}
AUTHORS = {
    "--batch-size": "256",
    "--lr": "1e-3",
    "--method": "dopri5",
    "--tol": "1e-3",
}


def parse(argv):
    p = argparse.ArgumentParser(
        description=" ".join(__doc__.split("\n\n")[0].split())
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        required=True,
        help="wall-clock budget of the whole script (start-up, training, evaluation)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="seeds of each model (the authors ran 5: --seeds 0 1 2 3 4; the budget "
        "is then shared)",
    )
    p.add_argument(
        "--models", nargs="+", choices=tuple(MODELS), default=list(MODELS)
    )
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="runs at once (default 2: NODE and ANODE side by side on the GPU); 1 runs "
        "them one after another in this process",
    )
    p.add_argument(
        "--reserve",
        type=float,
        default=45.0,
        help="seconds per round of runs for start-up, data loading and the final test "
        "evaluation (default 45)",
    )
    p.add_argument(
        "--out-dir",
        default=str(pathlib.Path("results", "images")),
        help="where the two results files go (default results/images in the working "
        "directory)",
    )
    p.add_argument(
        "--checkpoint-dir",
        default=str(pathlib.Path("runs", "gpu_paper_mnist")),
        help="checkpoints, for resuming (default runs/gpu_paper_mnist in the working "
        "directory)",
    )
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument(
        "--data-dir",
        default=None,
        help="sets ANODE_DATA_DIR (MNIST/raw/*.gz below it)",
    )
    p.add_argument(
        "--device",
        default="cuda",
        help="cuda (default) or cpu (tiny checks only)",
    )
    p.add_argument(
        "--tf32",
        action="store_true",
        help="allow TF32 (not benchmarked here; changes NFE)",
    )
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="channels-last layout (not benchmarked here)",
    )
    tiny = p.add_argument_group("tiny-scale checks (not the paper's settings)")
    tiny.add_argument("--subset", type=int, default=None)
    tiny.add_argument("--test-subset", type=int, default=None)
    tiny.add_argument("--img-size", type=int, default=None)
    tiny.add_argument("--batch-size", type=int, default=None)
    tiny.add_argument("--max-iters", type=int, default=None)
    args = p.parse_args(argv)
    if not (args.max_seconds > 0 and math.isfinite(args.max_seconds)):
        p.error(
            f"--max-seconds must be a positive number; got {args.max_seconds}"
        )
    if args.jobs < 1 or args.reserve < 0 or args.epochs < 1:
        p.error("--jobs and --epochs must be >= 1 and --reserve >= 0")
    return args


def command(args, model, seed, seconds):
    """The images command line of one run (without the interpreter)."""
    filters, augment = MODELS[model]
    out = pathlib.Path(args.out_dir) / f"mnist_{model}.json"
    ckpt = pathlib.Path(args.checkpoint_dir) / f"mnist_{model}.seed{seed}.pt"
    cmd = [
        "images",
        "--dataset",
        "mnist",
        "--model",
        model,
        "--filters",
        str(filters),
        "--augment-dim",
        str(augment),
        "--time-dependent",
        "--epochs",
        str(args.epochs),
        "--seeds",
        str(seed),
        "--out",
        str(out),
        "--checkpoint",
        str(ckpt),
        "--checkpoint-every",
        str(args.checkpoint_every),
        "--device",
        args.device,
        "--max-seconds",
        f"{seconds:.1f}",
    ]
    for k, v in AUTHORS.items():
        cmd += [
            k,
            str(args.batch_size)
            if k == "--batch-size" and args.batch_size
            else v,
        ]
    for opt in ("subset", "test_subset", "img_size", "max_iters"):
        if getattr(args, opt) is not None:
            cmd += ["--" + opt.replace("_", "-"), str(getattr(args, opt))]
    return (
        cmd + ["--tf32"] * args.tf32 + ["--channels-last"] * args.channels_last
    )


def _pump(proc, tag):
    for line in proc.stdout:
        print(f"[{tag}] {line}", end="", flush=True)


def header(args):
    import torch

    from anode_utils import cli_images, images, precision
    from anode_utils.provenance import provenance

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(
            "error: no CUDA device here (torch.cuda.is_available() is False); this script is "
            "for a GPU machine (--device cpu only for tiny checks)"
        )
    precision.configure(args.tf32)
    print(
        "#", cli_images.describe_machine(torch.device(args.device)), flush=True
    )
    p = provenance()
    print(f"# GPU: {p['gpu']}; hardware: {p['hardware']}", flush=True)
    print(f"# precision: {p['precision']}", flush=True)
    root, _ = images.data_root()
    for split in (
        "train",
        "test",
    ):  # verifies the files (md5, headers) before any run starts
        images.load_images("mnist", split, subset=1)
    print(f"# data: {root}/MNIST/raw verified", flush=True)


def main(argv=None):
    start = time.monotonic()
    args = parse(argv)
    if args.data_dir:
        os.environ["ANODE_DATA_DIR"] = str(
            pathlib.Path(args.data_dir).resolve()
        )
    header(args)
    runs = [(m, s) for s in args.seeds for m in args.models]
    deadline = start + args.max_seconds - 5.0  # 5 s for the summary at the end

    def budget(waiting):
        """Training seconds for a run starting now, ``waiting`` runs still to start after it:
        the time left shared over the rounds to go, less the reserve of each round."""
        return (deadline - time.monotonic()) / math.ceil(
            (waiting + 1) / args.jobs
        ) - args.reserve

    first = budget(len(runs) - 1)
    if first < 1.0:
        sys.exit(
            f"error: --max-seconds {args.max_seconds:g} leaves {first:.0f} s of training per run "
            f"({len(runs)} runs, {args.jobs} at a time, --reserve {args.reserve:g} s per round): "
            f"give more time, fewer --seeds or more --jobs"
        )
    print(
        f"# {len(runs)} runs ({', '.join(f'{m} seed {s}' for m, s in runs)}), {args.jobs} at a time: "
        f"{math.ceil(len(runs) / args.jobs)} round(s) of ~{first:.0f} s training + {args.reserve:g} s "
        f"reserve",
        flush=True,
    )
    failed = []
    if (
        args.jobs == 1
    ):  # in this process, one after another (tiny checks; no start-up cost)
        from anode_utils.__main__ import main as cli

        for i, (m, s) in enumerate(runs):
            cmd = command(args, m, s, max(1.0, budget(len(runs) - 1 - i)))
            print(
                f"# {m} seed {s}: python -m anode_utils {' '.join(cmd)}",
                flush=True,
            )
            try:
                cli(cmd)
            except Exception as err:  # report and carry on with the other runs
                print(
                    f"# {m} seed {s} failed: {type(err).__name__}: {err}",
                    flush=True,
                )
                failed.append((m, s))
    else:
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(
                [str(ROOT)]
                + [
                    p
                    for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                    if p
                ]
            ),
        )
        pending, active = list(runs), []
        while pending or active:
            while pending and len(active) < args.jobs:
                m, s = pending.pop(0)
                cmd = command(args, m, s, max(1.0, budget(len(pending))))
                print(
                    f"# {m} seed {s}: python -m anode_utils {' '.join(cmd)}",
                    flush=True,
                )
                proc = subprocess.Popen(
                    [sys.executable, "-m", "anode_utils", *cmd],
                    env=env,
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
                threading.Thread(
                    target=_pump, args=(proc, f"{m} {s}"), daemon=True
                ).start()
                active.append((m, s, proc))
            time.sleep(0.5)
            for m, s, proc in list(active):
                if proc.poll() is None and time.monotonic() > deadline:
                    print(
                        f"# {m} seed {s}: out of the script's budget, stopped",
                        flush=True,
                    )
                    proc.terminate()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                if proc.poll() is not None:
                    active.remove((m, s, proc))
                    if proc.returncode != 0:
                        failed.append((m, s))
    summary(args)
    print(
        f"# done in {time.monotonic() - start:.0f} s of {args.max_seconds:g}",
        flush=True,
    )
    if failed:
        print(f"# failed runs: {failed}", flush=True)
        return 1
    return 0


def summary(args):
    """One line per run from the results files."""
    from anode_utils.image_results import load_image_results
    from anode_utils.image_results import summary as rows

    for m in args.models:
        path = pathlib.Path(args.out_dir) / f"mnist_{m}.json"
        if not path.is_file():
            print(f"# {path}: not written", flush=True)
            continue
        res = load_image_results(path)
        print(f"# {path}: {res['num_parameters']:,} parameters", flush=True)
        for r, run in zip(rows(res), res["runs"]):
            acc = (
                "n/a"
                if r["test_accuracy"] is None
                else f"{r['test_accuracy']:.4f}"
            )
            nfe = (
                "n/a"
                if r["nfe_forward_last_epoch"] is None
                else f"{r['nfe_forward_last_epoch']:.1f}"
            )
            mem = run.get("cuda_max_memory_gib")
            print(
                f"#   seed {r['seed']}: {r['status']} ({run['stopped_by'] or 'all epochs'}), "
                f"{r['iterations']} iterations, {r['epochs_completed']} epochs, test accuracy {acc}, "
                f"forward NFE (last epoch) {nfe}, {run['train_seconds']:.0f} s training"
                + (f", peak GPU memory {mem:.1f} GiB" if mem else ""),
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())

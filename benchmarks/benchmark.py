"""Performance figures reported in benchmarks/README.md.

    python benchmarks/benchmark.py                       # everything
    python benchmarks/benchmark.py --sections toy,adjoint  # a subset
    python benchmarks/benchmark.py --sections profile      # where a step's time goes, per backend
    python benchmarks/benchmark.py --sections book         # each chapter before (--book-before) and now

Toy configuration (paper Section 4.1 set-up): 2-d annulus, 1,000 points in ||x|| <= 0.5 and 2,000 in
1 <= ||x|| <= 1.5, time-dependent MLP field of width 32, batch 64, Adam lr 1e-3, dopri5 at
rtol = atol = 1e-3, NODE and ANODE (p = 1), 12 epochs, one CPU thread.
"""

import argparse
import json
import os
import pathlib
import platform
import re
import statistics
import sys
import time

import torch

import anode_utils as au
from anode_utils.data import batches

ROOT = pathlib.Path(__file__).resolve().parents[1]


def toy_step_times(model_name, augment_dim, epochs=12, backend="torchdiffeq"):
    """Median seconds per training iteration, and forward/backward NFE at start and end."""
    torch.set_num_threads(1)
    cfg = au.make_config(
        model=model_name,
        augment_dim=augment_dim,
        epochs=epochs,
        backend=backend,
    )
    (x, y), _ = au.make_data(cfg)
    model = au.make_model(cfg)
    opt = torch.optim.Adam(
        model.parameters(), lr=cfg["lr"], foreach=True
    )  # as train() builds it
    loss_fn = torch.nn.MSELoss()
    gen = torch.Generator().manual_seed(0)
    times, fwd, bwd = [], [], []
    for _ in range(epochs):
        for xb, yb in batches(x, y, cfg["batch_size"], gen):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            pred = model(xb)
            fwd.append(au.read_and_reset_nfe(model))
            loss_fn(pred, yb).backward()
            opt.step()
            bwd.append(au.read_and_reset_nfe(model))
            times.append(time.perf_counter() - t0)
    per_epoch = len(times) // epochs
    by_nfe = {}
    for t, n in zip(times, fwd):
        by_nfe.setdefault(n, []).append(t)
    return {
        "median_s_per_iter": statistics.median(times),
        "median_s_per_iter_by_nfe": {
            n: statistics.median(v) for n, v in sorted(by_nfe.items())
        },
        "nfe_forward_first_epoch": statistics.mean(fwd[:per_epoch]),
        "nfe_forward_last_epoch": statistics.mean(fwd[-per_epoch:]),
        "nfe_forward_range": [min(fwd), max(fwd)],
        "nfe_backward_mean": statistics.mean(bwd),
        "iterations": len(times),
    }


def multi_seed_speedup(seeds=(0, 1), epochs=12):
    """Wall time of running seeds one after another vs one process per core."""
    jobs = au.seed_configs(au.make_config(model="node", epochs=epochs), seeds)
    t0 = time.perf_counter()
    au.run_parallel(au.run_toy, jobs, processes=1)
    seq = time.perf_counter() - t0
    t0 = time.perf_counter()
    au.run_parallel(au.run_toy, jobs, processes=len(seeds))
    par = time.perf_counter() - t0
    return {
        "seeds": len(seeds),
        "sequential_s": seq,
        "parallel_s": par,
        "speedup": seq / par,
    }


def adjoint_vs_direct(steps=20):
    """Training-step time, NFE and memory kept for backward: direct backprop vs adjoint,
    for a NODE and an ANODE trained 12 epochs on the toy annulus, batch 64."""
    from anode_utils import cost

    torch.set_num_threads(1)
    out = {}
    for name, p in (("node", 0), ("anode", 1)):
        r = au.run_toy(au.make_config(model=name, augment_dim=p))
        model = au.load_model(r)
        (x, y), _ = au.make_data(r["config"])
        for adjoint in (False, True):
            rows = []
            with cost.solver_settings(model, adjoint=adjoint):
                for i in range(steps):
                    idx = torch.arange(i * 64, (i + 1) * 64) % len(x)
                    rows.append(cost.training_step_cost(model, x[idx], y[idx]))
            out[f"{name}_{'adjoint' if adjoint else 'direct'}"] = {
                "median_s_per_step": statistics.median(
                    c["seconds"] for c in rows
                ),
                "nfe_forward": statistics.mean(c["nfe_forward"] for c in rows),
                "nfe_backward": statistics.mean(
                    c["nfe_backward"] for c in rows
                ),
                "saved_MiB": statistics.mean(c["saved_bytes"] for c in rows)
                / 2**20,
            }
    return out


BACKEND_LINE = re.compile(r'^BACKEND = "lean"', re.M)
#: The book before this benchmark's solver work: the last commit whose chapters, with their
#: BACKEND lines put back to "torchdiffeq", ran as before the lean solver (its package has the
#: slower field call and no image --backend/--channels-last use in chapter 7).
BOOK_BEFORE = "98fb233"


def _execute(nb, path, pythonpath=None):
    """Seconds to execute notebook ``nb`` (read from ``path``) in a fresh kernel, as nbval does;
    ``pythonpath`` is put first on the kernel's import path (an older copy of the package)."""
    import copy

    from nbclient import NotebookClient

    nb = copy.deepcopy(nb)
    saved = os.environ.get("PYTHONPATH")
    if (
        pythonpath is not None
    ):  # the kernel (and its forked workers) inherit this environment
        os.environ["PYTHONPATH"] = str(pythonpath) + (
            os.pathsep + saved if saved else ""
        )
    try:
        t0 = time.perf_counter()
        NotebookClient(
            nb,
            timeout=1800,
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        return time.perf_counter() - t0
    finally:
        if pythonpath is not None:
            if saved is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = saved


def _checkout(rev, dest):
    """The tree of git revision ``rev`` unpacked into ``dest``; returns the package there."""
    import io
    import subprocess
    import tarfile

    tar = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        # the 'data' filter where this Python has it (3.11.4+; 3.14 makes it the default)
        archive.extractall(
            dest,
            **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}),
        )
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import anode_utils; print(anode_utils.__file__)",
        ],
        env=dict(os.environ, PYTHONPATH=str(dest)),
        cwd=str(dest / "book"),
        capture_output=True,
        text=True,
        check=True,
    )
    if not found.stdout.strip().startswith(str(dest)):
        raise RuntimeError(
            f"PYTHONPATH={dest} does not shadow the installed anode_utils "
            f"({found.stdout.strip()}): before and after would run the same package"
        )
    return dest


def _chapters(root):
    toc = (root / "_toc.yml").read_text()
    return [
        rel
        for rel in re.findall(r"file:\s*(\S+)", toc)
        if (root / (rel + ".ipynb")).exists()
    ]


def book_times(before=BOOK_BEFORE):
    """Seconds to execute each notebook of the table of contents (as nbval does), before and
    after, chapter by chapter, back to back in one run (the before first). After: this working
    tree's chapters and package. Before: git revision ``before``'s chapters and package, with
    every ``BACKEND = "lean"`` line set to "torchdiffeq" (the solver the chapters used before the
    lean one). Returns {chapter: {"before": s, "after": s}} (or a failure message)."""
    import tempfile

    import nbformat

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        old = _checkout(before, pathlib.Path(tmp))
        for rel in _chapters(ROOT):
            try:
                times = {}
                path = old / (rel + ".ipynb")
                if path.exists():
                    nb = nbformat.read(path, as_version=4)
                    for c in nb.cells:
                        if c.cell_type == "code":
                            c.source = BACKEND_LINE.sub(
                                'BACKEND = "torchdiffeq"', c.source
                            )
                    times["before"] = _execute(nb, path, pythonpath=old)
                path = ROOT / (rel + ".ipynb")
                times["after"] = _execute(
                    nbformat.read(path, as_version=4), path
                )
                out[rel] = times
            except Exception as err:  # report and go on: one broken chapter should not hide the others
                out[rel] = (
                    f"failed: {type(err).__name__} (image chapters need ANODE_DATA_DIR offline)"
                )
    return out


def profile_rows(iters=30, repeats=3):
    """Step time vs the field's own time, per solver backend (benchmarks/profile_step.py).
    The toy profile is repeated ``repeats`` times (the first is tabulated); each repeat's
    step / field ratios are kept, to show how much they move within one run."""
    import profile_step

    out = {}
    for name, p in (("node", 0), ("anode", 1)):
        ratios = {}
        for r in range(repeats):
            summary, bad = profile_step.toy_profile(
                name, p, iters, fused_adam=True
            )
            if r == 0:
                out[name], out[f"{name}_nfe_mismatches"] = summary, bad
            for variant, m in summary.items():
                ratios.setdefault(variant, []).append(m["ratio"])
        out[f"{name}_ratio_repeats"] = ratios
    out["mnist32"], out["mnist32_nfe_mismatches"] = (
        profile_step.image_profile()
    )
    out["floor"] = profile_step.solver_floor()
    live, bad = profile_step.live_image_profile()
    for name in live:
        out[name], out[f"{name}_nfe_mismatches"] = live[name], bad[name]
    return out


def adam_step_times(iters=3000, warmup=100):
    """Median seconds per optimizer step of torch's Adam: the ``foreach`` path (what ``train``
    builds), the per-tensor loop (the CPU's default) and the ``fused`` kernel, on the parameters of the toy NODE and of the ten-layer ResNet, steps interleaved
    (A, B, C, A, ...) on fixed random gradients, one thread, CPU time. Steps run back to back,
    so caches are warm: inside a training step, after the backward pass, each costs more."""
    import copy

    import profile_step

    torch.set_num_threads(1)
    variants = {
        "torch Adam (foreach)": lambda ps: torch.optim.Adam(
            ps, lr=1e-3, foreach=True
        ),
        "torch Adam (for-loop)": lambda ps: torch.optim.Adam(
            ps, lr=1e-3, foreach=False
        ),
        "torch Adam (fused)": lambda ps: torch.optim.Adam(
            ps, lr=1e-3, fused=True
        ),
    }
    out = {}
    for name in ("node", "resnet"):
        torch.manual_seed(0)
        base = au.make_model(au.make_config(model=name))
        gen = torch.Generator().manual_seed(1)
        grads = [
            torch.randn(p.shape, generator=gen).mul_(1e-3)
            for p in base.parameters()
        ]
        opts = {}
        for variant, make in variants.items():
            params = list(copy.deepcopy(base).parameters())
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opts[variant] = make(params)
        times = {v: [] for v in variants}
        for i in range(iters + warmup):
            for variant, opt in opts.items():
                t0 = profile_step._clock()
                opt.step()
                if i >= warmup:
                    times[variant].append(profile_step._clock() - t0)
        out[name] = {
            "tensors": len(grads),
            "numbers": sum(g.numel() for g in grads),
            **{v: statistics.median(t) for v, t in times.items()},
        }
    return out


SECTIONS = ("toy", "parallel", "adjoint", "profile", "book")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)",
    )
    ap.add_argument(
        "--skip-book",
        action="store_true",
        help="same as leaving 'book' out of --sections",
    )
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument(
        "--book-before",
        default=BOOK_BEFORE,
        help=f"git revision whose book is the 'before' of the book section (default "
        f"{BOOK_BEFORE})",
    )
    args = ap.parse_args(argv)
    sections = [
        s
        for s in args.sections.split(",")
        if s and not (s == "book" and args.skip_book)
    ]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        ap.error(
            f"unknown section(s) {sorted(unknown)}; choose from {','.join(SECTIONS)}"
        )
    report = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"torch {report['torch']}, {report['machine']}")
    if "toy" in sections:
        print("\nToy annulus, 12 epochs, 1 thread")
        print(
            f"{'model':6} {'backend':11} {'ms/iter':>8} {'ms/iter @NFE20':>15} {'fwd NFE start':>14} "
            f"{'fwd NFE end':>12} {'range':>8} {'bwd NFE':>8}"
        )
        for name, p in (("node", 0), ("anode", 1)):
            for backend in ("torchdiffeq", "lean"):
                r = toy_step_times(name, p, backend=backend)
                report[
                    f"toy_{name}"
                    + ("" if backend == "torchdiffeq" else f"_{backend}")
                ] = r
                at20 = r["median_s_per_iter_by_nfe"].get(20)
                print(
                    f"{name:6} {backend:11} {1e3 * r['median_s_per_iter']:8.1f} "
                    f"{(f'{1e3 * at20:.1f}' if at20 else '-'):>15} {r['nfe_forward_first_epoch']:14.1f} "
                    f"{r['nfe_forward_last_epoch']:12.1f} {str(r['nfe_forward_range']):>8} "
                    f"{r['nfe_backward_mean']:8.1f}"
                )
    if "parallel" in sections:
        s = multi_seed_speedup()
        report["multi_seed"] = s
        print(
            f"\n{s['seeds']} seeds, 12 epochs each: sequential {s['sequential_s']:.1f} s, "
            f"one process per core {s['parallel_s']:.1f} s, speed-up {s['speedup']:.2f}x"
        )
    if "adjoint" in sections:
        report["adjoint_vs_direct"] = a = adjoint_vs_direct()
        print(
            "\nTrained toy models, batch 64, 1 thread: direct backpropagation vs adjoint"
        )
        print(
            f"{'model':16} {'ms/step':>8} {'fwd NFE':>8} {'bwd NFE':>8} {'saved for backward':>19}"
        )
        for k, v in a.items():
            print(
                f"{k:16} {1e3 * v['median_s_per_step']:8.1f} {v['nfe_forward']:8.1f} "
                f"{v['nfe_backward']:8.1f} {v['saved_MiB']:15.3f} MiB"
            )
    if "profile" in sections:
        import profile_step

        report["profile"] = prof = profile_rows()
        print(
            "\nWhere a training step's time goes, per backend (CPU time, 1 thread; "
            "benchmarks/profile_step.py)"
        )
        print(profile_step.HEADER)
        for name in ("node", "anode", "mnist32", *profile_step.LIVE_PAIR):
            print("\n".join(profile_step.format_rows(name, prof[name])))
            if prof[f"{name}_nfe_mismatches"]:
                print(
                    f"  NFE differed between variants at {prof[f'{name}_nfe_mismatches']} iterations"
                )
        for name in ("node", "anode"):
            print(
                f"{name} step / field over {len(prof[name + '_ratio_repeats']['lean'])} repeats "
                f"of the toy profile: "
                + "; ".join(
                    f"{v} " + ", ".join(f"{r:.2f}" for r in rs)
                    for v, rs in prof[name + "_ratio_repeats"].items()
                )
            )
        print(
            "\nThe solver's own cost: dopri5 around a field of one 3 x 3 matmul (toy state 64 x 3)"
        )
        print("\n".join(profile_step.format_floor(prof["floor"])))
        report["adam"] = adam = adam_step_times()
        print(
            "\nAdam steps alone, us (median; back to back on fixed gradients, 1 thread, CPU time)"
        )
        print(
            f"{'model':8} {'tensors':>7} {'numbers':>8} "
            + " ".join(
                f"{v:>21}"
                for v in adam["node"]
                if v not in ("tensors", "numbers")
            )
        )
        for name, r in adam.items():
            print(
                f"{name:8} {r['tensors']:7d} {r['numbers']:8d} "
                + " ".join(
                    f"{1e6 * t:21.1f}"
                    for v, t in r.items()
                    if v not in ("tensors", "numbers")
                )
            )
    if "book" in sections:
        report["book_s"] = times = book_times(args.book_before)
        report["book_before"] = args.book_before
        print(
            f"\nBook execution (nbval-equivalent, seconds): before = revision {args.book_before} "
            f"with its training chapters on torchdiffeq, after = this working tree; each chapter's "
            f"two executions back to back"
        )
        print(f"  {'chapter':40} {'before':>7} {'after':>7} {'speed-up':>8}")
        for rel, t in times.items():
            if isinstance(t, dict) and "before" in t:
                print(
                    f"  {rel:40} {t['before']:7.1f} {t['after']:7.1f} {t['before'] / t['after']:7.2f}x"
                )
            else:
                print(f"  {rel:40} {t}")
        ok = [
            t for t in times.values() if isinstance(t, dict) and "before" in t
        ]
        b, a = sum(t["before"] for t in ok), sum(t["after"] for t in ok)
        print(f"  {'whole book':40} {b:7.1f} {a:7.1f} {b / a:7.2f}x")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

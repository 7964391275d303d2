"""Run independent jobs (seeds, configs) in worker processes, one thread each.

Small ODE models are dominated by per-step Python overhead, so one thread per process is
fastest, and a process per core gives nearly linear speed-up over seeds. Each job runs
with one thread whatever the number of processes, so results do not depend on it.
"""

import concurrent.futures as cf
import multiprocessing as mp
import os
import sys

import torch


def _init_worker():
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already fixed in this process; harmless
        pass


def default_processes():
    """One per available core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def run_parallel(fn, jobs, processes=None):
    """``[fn(job) for job in jobs]``, computed in ``processes`` worker processes.

    ``fn`` must be importable (a module-level function, e.g. :func:`anode_utils.run_toy`);
    jobs and results must be picklable. ``processes=1`` runs in this process, also with one
    thread, so the numbers are the same either way. On Linux workers are forked (no second
    import of torch: a spawned worker spends seconds on that before its first step) and set
    to one thread before any work, the pattern torch's own DataLoader workers use; other
    platforms use 'spawn'.
    """
    jobs = list(jobs)
    processes = default_processes() if processes is None else int(processes)
    if processes < 1:
        raise ValueError(f"processes must be >= 1; got {processes}")
    processes = min(processes, len(jobs)) or 1
    if processes == 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return [fn(job) for job in jobs]
        finally:
            torch.set_num_threads(threads)
    method = (
        "fork"
        if "fork" in mp.get_all_start_methods() and sys.platform == "linux"
        else "spawn"
    )
    with cf.ProcessPoolExecutor(
        processes, mp_context=mp.get_context(method), initializer=_init_worker
    ) as pool:
        return list(pool.map(fn, jobs))

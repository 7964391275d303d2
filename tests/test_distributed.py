"""Data parallelism on the CPU with two gloo processes: failures stop every process, short last
batches are dropped, fixed-step runs equal one process on the global batch. Every test has a
hard timeout: a process still alive after it is killed and the test fails (never hangs)."""

import datetime
import multiprocessing as mp
import os
import socket
import sys

import pytest
import torch

import anode_utils as au
from anode_utils import distributed

TIMEOUT_S = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, case, queue):
    """One process of a two-process group: train a tiny NODE on its slices; report (rank, error,
    iterations, final parameters)."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    import torch.distributed as dist

    dist.init_process_group(
        "gloo",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=TIMEOUT_S // 2),
    )
    try:
        torch.manual_seed(
            rank
        )  # different initial weights: train() must broadcast process 0's
        solver = (
            dict(method="rk4", step_size=0.25)
            if case in ("fixed", "nan_fixed")
            else {}
        )
        model = au.ODENet(2, hidden_dim=8, **solver)
        x, y = au.concentric_spheres(2, 20, 30, seed=0)
        n = {"short": 49}.get(
            case, 50
        )  # 49 = 3 batches of 16 + a last batch of 1 < 2 processes
        x, y = x[:n], y[:n]
        if rank == 1 and case == "solver":
            model.odeblock.max_num_steps = (
                1  # dopri5 needs more: SolverError on process 1 only
            )
        if rank == 1 and case in ("nan", "nan_fixed"):
            x = torch.full_like(x, float("nan"))  # process 1's data blows up
        h = au.train(
            model, x, y, epochs=2, batch_size=16, shard=(rank, world), seed=3
        )
        # plain lists: a tensor would travel as shared memory, gone once this process exits
        queue.put(
            (
                rank,
                h.error,
                len(h),
                h.epoch_end,
                [p.tolist() for p in model.parameters()],
                h.loss,
            )
        )
    except BaseException as err:  # report, so the parent fails with the reason
        queue.put(
            (
                rank,
                f"EXCEPTION {type(err).__name__}: {err}",
                -1,
                None,
                None,
                None,
            )
        )
    finally:
        dist.destroy_process_group()


def _cli_worker(rank, world, port, argv, nan_rank, queue):
    """One process of ``python -m anode_utils images`` as torchrun would start it; on process
    ``nan_rank`` the training images are NaN."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    try:
        from anode_utils import cli_images
        from anode_utils.__main__ import main as cli

        if rank == nan_rank:
            real = cli_images.images.load_images

            def poisoned(name, split="train", *a, **k):
                x, y = real(name, split, *a, **k)
                return (
                    torch.full_like(x, float("nan")) if split == "train" else x
                ), y

            cli_images.images.load_images = poisoned
        queue.put((rank, cli(argv)))
    except BaseException as err:
        queue.put((rank, f"EXCEPTION {type(err).__name__}: {err}"))


def run_two(case, target=_worker):
    """Start two processes (fork: no second import of torch), join with a hard timeout."""
    ctx = mp.get_context("fork" if sys.platform == "linux" else "spawn")
    queue, port = ctx.Queue(), free_port()
    procs = [
        ctx.Process(
            target=target,
            args=(r, 2, port, *case, queue)
            if isinstance(case, tuple)
            else (r, 2, port, case, queue),
        )
        for r in range(2)
    ]
    for p in procs:
        p.start()
    results = {}
    try:
        for _ in procs:
            r = queue.get(timeout=TIMEOUT_S)
            results[r[0]] = r[1:]
    except Exception:  # queue.Empty: a process hangs or died without reporting
        pass
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
    assert len(results) == 2, (
        f"{case}: only processes {sorted(results)} reported within {TIMEOUT_S} s"
    )
    return results


@pytest.mark.parametrize(
    "case,fragment",
    [
        ("solver", "max_num_steps"),
        ("nan", "process(es) [1] failed"),
        ("nan_fixed", "process 1: x holds"),
    ],
)
def test_a_failure_on_one_process_stops_both_with_the_same_error(
    case, fragment
):
    res = run_two(case)
    (err0, n0, *_), (err1, n1, *_) = res[0], res[1]
    assert err0 and not err0.startswith("EXCEPTION"), err0
    assert (
        err0 == err1
        and "training stopped on all 2 processes" in err0
        and fragment in err0
    )
    assert n0 == n1 == 0  # both stopped at the first iteration, neither hung


def test_short_last_batch_is_dropped_and_fixed_step_runs_match_one_process():
    res = run_two("fixed")
    assert res[0][0] is None and res[1][0] is None, res
    assert res[0][1] == 8 and res[0][2] == [
        4,
        8,
    ]  # 4 batches of 50 per epoch (16, 16, 16, 2)
    assert (
        res[0][3] == res[1][3]
    )  # parameters stay identical on both processes
    # one process on the global batch: same data, same order, process 0's initial weights
    torch.manual_seed(0)
    model = au.ODENet(2, hidden_dim=8, method="rk4", step_size=0.25)
    x, y = au.concentric_spheres(2, 20, 30, seed=0)
    h = au.train(model, x, y, epochs=2, batch_size=16, seed=3)
    assert h.loss == pytest.approx(res[0][4], abs=1e-5)
    for a, b in zip(model.parameters(), res[0][3]):
        assert torch.allclose(a, torch.tensor(b), atol=1e-5)

    short = run_two(
        "short"
    )  # 49 points: the last global batch of 1 < 2 processes is dropped
    assert short[0][0] is None and short[0][1] == 6 and short[0][2] == [3, 6]


def test_backend_follows_the_device():
    assert distributed.backend_for("cpu") == "gloo"
    assert distributed.backend_for(torch.device("cuda", 1)) == "nccl"
    assert distributed.init_from_env("cpu") == (
        0,
        1,
        0,
    )  # outside torchrun: no process group


def test_shard_of_a_batch_smaller_than_the_world_is_none():
    x, y = torch.zeros(3, 2), torch.zeros(3)
    assert distributed.shard(x[:1], y[:1], 0, 2) is None
    xs, ys, w = distributed.shard(x, y, 1, 2)
    assert len(xs) == 1 and w == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="initialised torch.distributed"):
        distributed.is_parallel((0, 2))


def cli_args(tmp_path, monkeypatch):
    from test_images import TINY, write_synthetic_svhn

    monkeypatch.setenv(
        "ANODE_DATA_DIR", str(write_synthetic_svhn(tmp_path / "data"))
    )  # forks inherit it
    return TINY + ["--checkpoint-every", "100", "--device", "cpu"]


def test_cli_under_two_processes_resumes_from_process_0s_checkpoint(
    tmp_path, monkeypatch
):
    args = cli_args(tmp_path, monkeypatch)
    from anode_utils.__main__ import main as cli

    cli(
        args + ["--max-iters", "3", "--checkpoint", str(tmp_path / "one.pt")]
    )  # fixed-step rk4
    two = args + [
        "--checkpoint",
        str(tmp_path / "two.pt"),
        "--out",
        str(tmp_path / "two.json"),
    ]
    for stop in ("2", "3"):  # interrupted after 2 iterations, then resumed
        res = run_two((two + ["--max-iters", stop], None), target=_cli_worker)
        assert res[0] == (0,) and res[1] == (0,), res
    one = torch.load(tmp_path / "one.pt", weights_only=True)
    both = torch.load(tmp_path / "two.pt", weights_only=True)
    assert both["config"]["world_size"] == 2
    assert one["history"]["loss"] == pytest.approx(
        both["history"]["loss"], abs=1e-5
    )
    for k in one["model"]:
        assert torch.allclose(one["model"][k], both["model"][k], atol=1e-5), k


def test_cli_stops_every_process_when_one_processs_data_blows_up(
    tmp_path, monkeypatch
):
    args = [
        a if a != "rk4" else "dopri5" for a in cli_args(tmp_path, monkeypatch)
    ]
    i = args.index("--step-size")
    del args[i : i + 2]
    out = tmp_path / "r.json"
    res = run_two((args + ["--out", str(out)], 1), target=_cli_worker)
    assert res[0] == (0,) and res[1] == (0,), (
        res
    )  # both ended (no hang), the failure recorded
    (run,) = au.load_image_results(out)["runs"]
    assert (run["status"], run["stopped_by"], run["iterations"]) == (
        "failed",
        "error",
        0,
    )
    assert (
        "training stopped on all 2 processes at iteration 0: process(es) [1] failed"
        in run["history"]["error"]
    )

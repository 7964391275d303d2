"""Data-parallel training under ``torchrun``: process groups, batch slices, gradient averaging,
and failures that every process agrees on.

What it computes
    Each of the N processes takes a contiguous slice of every global batch (sizes differ by at
    most one), solves the ODE forward and backward for its slice alone, and the gradients are
    then averaged over the processes, each weighted by its share of the batch, before the
    optimizer step (what DistributedDataParallel does). With a *fixed-step* solver (euler,
    rk4 at a given step size) every slice is integrated on the same time grid, so the
    averaged gradient is the global batch's and the run equals a single-process run up to
    float rounding. With an *adaptive* solver (dopri5) each process chooses its own steps from
    an error estimate over its own slice, so its NFE and its gradient differ from a
    single-process solve of the whole batch: a data-parallel dopri5 run is a different (equally
    valid) computation, not the same one done faster. Logged loss and accuracy are the global
    batch's (slice-weighted means); logged NFE is the mean over processes.

Failures
    A solver failure or a non-finite loss on one process would leave the others waiting for
    its gradients forever. So every iteration, after the backward pass and before any gradient
    is exchanged, the processes all-reduce one failure flag each; when any is set, every
    process raises the same :class:`DistributedTrainingError` (naming the failed processes and
    the first one's message), which :func:`anode_utils.training.train` records in
    ``history.error`` on every process alike.

Short last batches
    A last global batch with fewer images than processes would leave some process an empty
    slice (a NaN loss); it is dropped, by every process alike (they all draw the same batch
    order from the seed), and is not counted as an iteration.
"""

import contextlib
import os

import torch

from .nfe import read_and_reset_nfe
from .ode import SolverError, backward_guard


class DistributedTrainingError(SolverError):
    """A solver failure or non-finite loss on one process, raised on every process with the
    same message so that all of them stop together."""


def backend_for(device):
    """The process-group backend for a device: NCCL for CUDA, gloo for the CPU."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_from_env(device):
    """(rank, world_size, local_rank) from torchrun's environment (WORLD_SIZE, RANK,
    LOCAL_RANK, MASTER_ADDR, MASTER_PORT), creating the process group with the backend of
    ``device`` (a torch.device or string: 'cpu' -> gloo, 'cuda' -> nccl). (0, 1, 0) and no
    process group outside torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if world == 1:
        return 0, 1, 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend_for(device))
    return dist.get_rank(), dist.get_world_size(), local


def is_parallel(shard):
    """Whether ``shard=(rank, world_size)`` means several processes of an initialised group."""
    if shard is None or shard[1] == 1:
        return False
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            f"shard={tuple(shard)} needs an initialised torch.distributed process "
            f"group (run under torchrun, or call init_from_env first)"
        )
    if dist.get_world_size() != shard[1] or dist.get_rank() != shard[0]:
        raise ValueError(
            f"shard={tuple(shard)} does not match this process: rank "
            f"{dist.get_rank()} of {dist.get_world_size()}"
        )
    return True


def shard(xb, yb, rank, world):
    """This process's slice of a global batch and its weight (slice size * world / batch size:
    1 when the batch divides evenly), or None when the batch holds fewer items than processes
    (then every process drops it). Shapes: xb (b, ...), yb (b, ...) -> slices (~b / world, ...)."""
    if len(xb) < world:
        return None
    xs, ys = xb.tensor_split(world)[rank], yb.tensor_split(world)[rank]
    return xs, ys, len(xs) * world / len(xb)


def agree_on_failure(message, device, iteration=None):
    """Collective: every process passes its failure message (None if it is fine). Returns
    when no process failed; otherwise raises the same :class:`DistributedTrainingError` on
    every process."""
    import torch.distributed as dist

    world, rank = dist.get_world_size(), dist.get_rank()
    flags = torch.zeros(world, dtype=torch.int32, device=device)
    flags[rank] = int(message is not None)
    dist.all_reduce(flags)
    failed = flags.nonzero().flatten().tolist()
    if not failed:
        return
    box = [message]
    dist.broadcast_object_list(
        box,
        src=failed[0],
        device=torch.device(device)
        if torch.device(device).type == "cuda"
        else None,
    )
    where = "" if iteration is None else f" at iteration {iteration}"
    raise DistributedTrainingError(
        f"training stopped on all {world} processes{where}: process(es) {failed} failed; "
        f"process {failed[0]}: {box[0]}"
    )


def broadcast_parameters(model):
    """Copy process 0's parameters and buffers to every process (in place)."""
    import torch.distributed as dist

    for t in model.state_dict().values():
        dist.broadcast(t, 0)


def average_gradients(model, weight=1.0):
    """Average ``weight * grad`` over processes into every parameter's ``.grad`` (one
    all-reduce; a parameter without a gradient counts as zeros and gets the average)."""
    import torch.distributed as dist

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return
    flat = torch.cat(
        [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
            for p in params
        ]
    )
    flat.mul_(weight / dist.get_world_size())
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        g = flat[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.copy_(g)


def train_step(model, optimizer, loss_fn, xb, yb, weight, iteration=None):
    """One synchronised step on this process's slice: forward, backward, agree on failures,
    average gradients, optimizer step. Returns (pred, loss, nfe_forward, nfe_backward).

    A DistributedDataParallel model is run under ``no_sync`` (its own all-reduce inside
    ``backward`` is exactly what must not start before the processes agree)."""
    device = next(model.parameters()).device
    sync_off = getattr(model, "no_sync", contextlib.nullcontext)
    optimizer.zero_grad(set_to_none=True)
    failure, pred, batch_loss, nfe_f = None, None, None, 0
    try:
        with sync_off():
            pred = model(xb)
            nfe_f = read_and_reset_nfe(model)
            batch_loss = loss_fn(pred, yb)
            if not torch.isfinite(batch_loss):
                failure = (
                    f"the loss is {batch_loss.item()}: the model or the data has "
                    f"non-finite values; lower the learning rate"
                )
            else:
                # regularised models leave a penalty to add; the history keeps the data loss
                penalty = getattr(model, "penalty", None)
                with backward_guard():
                    (
                        batch_loss if penalty is None else batch_loss + penalty
                    ).backward()
    except SolverError as err:
        failure = str(err)
    agree_on_failure(failure, device, iteration)
    average_gradients(model, weight)
    optimizer.step()
    return pred, batch_loss, nfe_f, read_and_reset_nfe(model)


__all__ = [
    "DistributedTrainingError",
    "agree_on_failure",
    "average_gradients",
    "backend_for",
    "broadcast_parameters",
    "init_from_env",
    "is_parallel",
    "shard",
    "train_step",
]

"""What a solve costs: function evaluations, accepted/rejected steps, memory kept for backward.

Steps are counted with torchdiffeq's own step callbacks (``callback_accept_step`` and
``callback_reject_step``, and their ``_adjoint`` twins for the backward solve), not inferred
from NFE. Memory is the total size of the tensors autograd saves for the backward pass,
which is what direct backpropagation through the solver pays and the adjoint avoids; it is
deterministic, unlike a process's peak resident memory.
"""

import contextlib
import statistics
import time

import torch

from ._checks import check_pos_int
from .nfe import read_and_reset_nfe, reset_nfe


def _check_inputs(model, x, y):
    """Before any solve: ``model`` has a vector field; x, y non-empty, finite, of one length."""
    from .training import _check_xy

    if not isinstance(getattr(model, "field", None), torch.nn.Module):
        raise ValueError(
            f"model must be an ODE model with a .field (ODENet, ConvODENet, ...); "
            f"got {type(model).__name__}"
        )
    integer_labels = isinstance(y, torch.Tensor) and not y.is_floating_point()
    _check_xy(model, x, y, "cross_entropy" if integer_labels else "mse")


_NAMES = ("accept", "reject", "accept_adjoint", "reject_adjoint")


class StepCounter(contextlib.AbstractContextManager):
    """Count a field's accepted and rejected solver steps while the context is open.

    >>> with StepCounter(model.field) as steps:
    ...     model(x).sum().backward()
    >>> steps.counts  # {'accept': 3, 'reject': 0, 'accept_adjoint': 0, 'reject_adjoint': 0}

    Only adaptive methods (dopri5, bosh3, ...) report accepted/rejected steps.
    """

    def __init__(self, field):
        self.field = field
        self.counts = dict.fromkeys(_NAMES, 0)

    def _make(self, name):
        def callback(t0, y0, dt):
            self.counts[name] += 1

        return callback

    def __enter__(self):
        for name in _NAMES:
            suffix = "_adjoint" if name.endswith("_adjoint") else ""
            kind = name.replace("_adjoint", "")
            setattr(
                self.field, f"callback_{kind}_step{suffix}", self._make(name)
            )
        return self

    def __exit__(self, *exc):
        for name in _NAMES:
            suffix = "_adjoint" if name.endswith("_adjoint") else ""
            kind = name.replace("_adjoint", "")
            delattr(self.field, f"callback_{kind}_step{suffix}")
        return False


@contextlib.contextmanager
def saved_tensor_bytes(exclude=()):
    """Yield a one-item list holding the bytes autograd keeps for backward inside the block.

    Counted once per storage: autograd often saves several views of one buffer (and the same
    tensor at several nodes), so summing every saved reference overstates the memory about
    twofold. Storages of ``exclude`` (pass the model's parameters: they are held anyway) are
    not counted.
    """
    skip = {p.untyped_storage().data_ptr() for p in exclude}
    seen = set()
    total = [0]

    def pack(t):
        storage = t.untyped_storage()
        key = storage.data_ptr()
        # saved tensors stay alive inside the block (pack returns them), so a pointer cannot
        # be reused by another saved storage while we count
        if key not in skip and key not in seen:
            seen.add(key)
            total[0] += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total


def training_step_cost(model, x, y, loss_fn=None, repeats=1):
    """One forward + backward pass of ``model`` on (x, y), measured.

    Returns a dict: nfe_forward, nfe_backward, steps (accept/reject, forward and adjoint),
    saved_bytes (memory held for backward, unique storages, parameters excluded), seconds
    (wall time of one pass, machine dependent). With ``repeats > 1`` the pass is first run once
    to warm up (allocator, kernel choice), then ``repeats`` times, and ``seconds`` is the median
    of those; the counts come from the last pass (they are the same every time: same inputs).
    Gradients are left in ``.grad`` for the caller to inspect.
    """
    repeats = check_pos_int("repeats", repeats)
    _check_inputs(model, x, y)
    loss_fn = loss_fn or torch.nn.MSELoss()
    times = []
    for k in range(1 + repeats if repeats > 1 else 1):
        model.zero_grad(set_to_none=True)
        reset_nfe(model)
        with StepCounter(model.field) as steps:
            t0 = time.perf_counter()
            with saved_tensor_bytes(exclude=list(model.parameters())) as saved:
                loss = loss_fn(model(x), y)
            nfe_f = read_and_reset_nfe(model)
            loss.backward()
            times.append(time.perf_counter() - t0)
            nfe_b = read_and_reset_nfe(model)
    seconds = statistics.median(times[1:] if repeats > 1 else times)
    return {
        "nfe_forward": nfe_f,
        "nfe_backward": nfe_b,
        "steps": dict(steps.counts),
        "saved_bytes": saved[0],
        "seconds": seconds,
        "loss": loss.item(),
    }


@contextlib.contextmanager
def solver_settings(model, **settings):
    """Temporarily change the ODE block's solver (method, rtol, atol, step_size, adjoint,
    adjoint_rtol, adjoint_atol, backend) of ``model``; the trained weights are untouched."""
    from ._checks import check_choice, check_positive, check_solver
    from .solvers import BACKEND_NAMES

    blk = getattr(model, "odeblock", None)
    if not isinstance(blk, torch.nn.Module):
        raise ValueError(
            f"model must be an ODE model with an .odeblock (ODENet, ConvODENet, ...); "
            f"got {type(model).__name__}"
        )
    unknown = set(settings) - {
        "method",
        "rtol",
        "atol",
        "step_size",
        "adjoint",
        "adjoint_rtol",
        "adjoint_atol",
        "T",
        "backend",
    }
    if unknown:
        raise ValueError(f"unknown solver setting(s) {sorted(unknown)}")
    if "method" in settings:
        check_solver(settings["method"])
    if "backend" in settings:
        check_choice("backend", settings["backend"], BACKEND_NAMES)
    for k in (
        "rtol",
        "atol",
        "step_size",
        "adjoint_rtol",
        "adjoint_atol",
        "T",
    ):
        if settings.get(k) is not None:
            check_positive(k, settings[k])
    old = {k: getattr(blk, k) for k in settings}
    try:
        for k, v in settings.items():
            setattr(blk, k, v)
        yield model
    finally:
        for k, v in old.items():
            setattr(blk, k, v)


def gradient(model, x, y, loss_fn=None, **settings):
    """Loss gradient w.r.t. all parameters, computed with the solver ``settings``
    (e.g. ``adjoint=True, adjoint_rtol=1e-5`` or ``rtol=1e-8, atol=1e-8``).

    Returns dict: grad (1-d tensor), nfe_forward, nfe_backward. ``.grad`` is cleared after.
    """
    _check_inputs(model, x, y)
    loss_fn = loss_fn or torch.nn.MSELoss()
    with solver_settings(model, **settings):
        model.zero_grad(set_to_none=True)
        reset_nfe(model)
        out = model(x)
        nfe_f = read_and_reset_nfe(model)
        loss_fn(out, y).backward()
        nfe_b = read_and_reset_nfe(model)
    g = torch.cat(
        [p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]
    )
    model.zero_grad(set_to_none=True)
    return {"grad": g, "nfe_forward": nfe_f, "nfe_backward": nfe_b}


def relative_error(a, b):
    """||a - b|| / ||b|| for two gradient vectors."""
    if (
        not isinstance(a, torch.Tensor)
        or not isinstance(b, torch.Tensor)
        or a.shape != b.shape
    ):
        raise ValueError(
            f"a and b must be tensors of one shape; got "
            f"{getattr(a, 'shape', type(a).__name__)} and "
            f"{getattr(b, 'shape', type(b).__name__)}"
        )
    return ((a - b).norm() / b.norm()).item()


def adjoint_gradient_error(
    model, x, y, adjoint_rtol, adjoint_atol, loss_fn=None
):
    """Adjoint gradient (backward solve at the given tolerances) vs direct backpropagation
    through the same forward solve. Returns dict: nfe_backward, rel_error."""
    direct = gradient(model, x, y, loss_fn, adjoint=False)
    adj = gradient(
        model,
        x,
        y,
        loss_fn,
        adjoint=True,
        adjoint_rtol=adjoint_rtol,
        adjoint_atol=adjoint_atol,
    )
    return {
        "nfe_backward": adj["nfe_backward"],
        "rel_error": relative_error(adj["grad"], direct["grad"]),
    }


@torch.no_grad()
def evaluate_with_solver(model, x, y, batch_size=None, **settings):
    """Accuracy (sign of the output vs labels -1/+1) and forward NFE with the solver
    ``settings`` (see :func:`solver_settings`).

    batch_size : None solves the whole set at once (``nfe`` is that solve's count); an int
    solves consecutive batches of that size, as training does, and ``nfe`` is the mean count
    per batch (``nfe_per_batch`` lists them): the cost a user of the model pays per batch.
    """
    _check_inputs(model, x, y)
    step = (
        len(x)
        if batch_size is None
        else check_pos_int("batch_size", batch_size)
    )
    was_training = model.training
    model.eval()  # e.g. a regularised model solves the plain ODE in eval mode
    counts, preds = [], []
    try:
        with solver_settings(model, **settings):
            for i in range(0, len(x), step):
                reset_nfe(model)
                preds.append(model(x[i : i + step]))
                counts.append(read_and_reset_nfe(model))
    finally:
        model.train(was_training)
    pred = torch.cat(preds)
    out = {
        "accuracy": (torch.sign(pred) == y).float().mean().item(),
        "nfe": counts[0] if batch_size is None else sum(counts) / len(counts),
    }
    if batch_size is not None:
        out["nfe_per_batch"] = counts
    return out

"""What a solve costs: function evaluations, accepted/rejected steps, memory kept for backward.

Steps are counted with torchdiffeq's own step callbacks (``callback_accept_step`` and
``callback_reject_step``, and their ``_adjoint`` twins for the backward solve), not inferred
from NFE. Memory is the total size of the tensors autograd saves for the backward pass,
which is what direct backpropagation through the solver pays and the adjoint avoids; it is
deterministic, unlike a process's peak resident memory.
"""
import contextlib
import time

import torch

from .nfe import read_and_reset_nfe, reset_nfe

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
            setattr(self.field, f"callback_{kind}_step{suffix}", self._make(name))
        return self

    def __exit__(self, *exc):
        for name in _NAMES:
            suffix = "_adjoint" if name.endswith("_adjoint") else ""
            kind = name.replace("_adjoint", "")
            delattr(self.field, f"callback_{kind}_step{suffix}")
        return False


@contextlib.contextmanager
def saved_tensor_bytes():
    """Yield a one-item list holding the bytes autograd saves for backward inside the block."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total


def training_step_cost(model, x, y, loss_fn=None):
    """One forward + backward pass of ``model`` on (x, y), measured.

    Returns a dict: nfe_forward, nfe_backward, steps (accept/reject, forward and adjoint),
    saved_bytes (memory held for backward), seconds (wall time, machine dependent).
    Gradients are left in ``.grad`` for the caller to inspect.
    """
    loss_fn = loss_fn or torch.nn.MSELoss()
    model.zero_grad(set_to_none=True)
    reset_nfe(model)
    with StepCounter(model.field) as steps:
        t0 = time.perf_counter()
        with saved_tensor_bytes() as saved:
            loss = loss_fn(model(x), y)
        nfe_f = read_and_reset_nfe(model)
        loss.backward()
        seconds = time.perf_counter() - t0
        nfe_b = read_and_reset_nfe(model)
    return {"nfe_forward": nfe_f, "nfe_backward": nfe_b, "steps": dict(steps.counts),
            "saved_bytes": saved[0], "seconds": seconds, "loss": loss.item()}

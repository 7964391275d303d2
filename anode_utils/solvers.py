"""The solver backends behind ``ODEBlock(backend=...)``, in one registry.

A backend says what it supports (methods, the adjoint) and how to solve; :class:`ODEBlock`
(anode_utils.ode) looks it up by name and asks nothing else. Two backends:

* ``"torchdiffeq"``: ``torchdiffeq.odeint`` / ``odeint_adjoint``, the reference the book
  explains; every torchdiffeq method, and the adjoint;
* ``"lean"``: :mod:`anode_utils.dopri5`, the same dopri5 steps with less overhead per step;
  dopri5 only, backpropagation through the solver only.

Both stop a solve that cannot finish by counting in Python, never by an ``assert``
(torchdiffeq's ``max_num_steps`` and step-size underflow checks are ``assert`` statements,
which ``python -O`` removes): the torchdiffeq backend counts the field's evaluations and gives
up past ``max_num_steps`` steps' worth of them, and counts the adjoint's backward solve's
steps through torchdiffeq's ``callback_step_adjoint``; the lean solver counts its own steps.
"""

import dataclasses

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from .dopri5 import GaveUp, check_times, dopri5_outputs

#: torchdiffeq's method names (version 0.2.x; its README lists them).
TORCHDIFFEQ_METHODS = (
    "adaptive_heun",
    "bosh3",
    "dopri5",
    "dopri8",
    "euler",
    "explicit_adams",
    "fehlberg2",
    "fixed_adams",
    "heun2",
    "heun3",
    "implicit_adams",
    "midpoint",
    "rk4",
    "scipy_solver",
)
#: Methods that choose their own step size (and so accept ``max_num_steps``), with the most
#: field evaluations one attempted step makes.
STAGES = {
    "adaptive_heun": 2,
    "bosh3": 4,
    "dopri5": 6,
    "dopri8": 13,
    "fehlberg2": 3,
}
ADAPTIVE_METHODS = frozenset(STAGES)


class _Watch:
    """Forward hook on the field for a torchdiffeq solve: keeps (references to) the field's
    latest inputs and output, so a failure can tell a non-finite state from a stiff one, and
    counts the evaluations, giving up (:class:`GaveUp`) once there are more than ``limit``."""

    def __init__(self, limit=None):
        self.tensors, self.count, self.limit = (), 0, limit

    def __call__(self, module, args, output):
        self.tensors = (*args, output)
        self.count += 1
        if self.limit is not None and self.count > self.limit:
            raise GaveUp(
                f"max_num_steps exceeded: {self.count} evaluations of the field, more "
                f"than {self.limit}",
                self.tensors,
            )


@dataclasses.dataclass(frozen=True)
class Backend:
    """One solver implementation. ``solve(block, h0, times, last_only)`` integrates the
    augmented state ``h0`` over ``times`` (a 1-d tensor) with ``block``'s settings and returns
    the trajectory (len(times), *h0.shape), or only its last state when ``last_only``; it raises
    :class:`~anode_utils.dopri5.GaveUp` when the solver gives up."""

    name: str
    methods: tuple
    adjoint: bool
    solve: callable
    description: str

    def check(self, method, adjoint):
        """ValueError unless this backend can run ``method`` (with the adjoint if asked)."""
        if method not in self.methods or (adjoint and not self.adjoint):
            raise ValueError(
                f"backend={self.name!r} implements {self.description}; got method={method!r}, "
                f"adjoint={adjoint}. Use backend='torchdiffeq' for other methods or the adjoint."
            )


def _evaluation_limit(block, times):
    """The most field evaluations an adaptive solve of ``block`` may make over ``times``:
    ``max_num_steps`` attempted steps per output interval (torchdiffeq's own bound), each of
    at most ``STAGES[method]`` evaluations, plus the initial step's."""
    stages = STAGES.get(block.method)
    if stages is None:
        return None  # a fixed grid: a known, finite number of steps
    return (len(times) - 1) * block.max_num_steps * stages + 2 * stages


class _AdjointStepLimit:
    """The field's ``callback_step_adjoint`` during an adaptive adjoint solve: torchdiffeq calls
    it before every attempted step of the backward solve, which it bounds with an assert only.
    Past ``limit`` steps (``max_num_steps`` per output interval, torchdiffeq's own bound) it
    raises :class:`~anode_utils.ode.SolverError`; a callback the field already had (e.g. a
    :class:`~anode_utils.cost.StepCounter`'s) is called as well."""

    def __init__(self, limit, chained=None):
        self.limit, self.count, self.chained = limit, 0, chained

    def restart(self, grad_outputs=None):
        self.count = 0  # each backward pass through the solve (retain_graph) counts afresh

    def __call__(self, t0, y0, dt):
        self.count += 1
        if self.count > self.limit:
            from .ode import adjoint_gave_up

            raise adjoint_gave_up(
                f"max_num_steps exceeded: {self.count} steps of the backward "
                f"solve, more than {self.limit}"
            )
        if self.chained is not None:
            self.chained(t0, y0, dt)


def _odeint_adjoint(block, h0, times, **kwargs):
    """torchdiffeq's ``odeint_adjoint``, its backward solve bounded (adaptive methods) by an
    :class:`_AdjointStepLimit`. torchdiffeq reads the field's adjoint callbacks when the
    forward solve starts, so the limit is set on the field only for the call."""
    field = block.field
    if block.method not in ADAPTIVE_METHODS:
        return odeint_adjoint(field, h0, times, **kwargs)
    name = "callback_step_adjoint"
    had = name in vars(field)
    old = getattr(field, name, None)
    limit = _AdjointStepLimit((len(times) - 1) * block.max_num_steps, old)
    setattr(field, name, limit)
    try:
        out = odeint_adjoint(field, h0, times, **kwargs)
    finally:
        if had:
            setattr(field, name, old)
        else:
            delattr(field, name)
    if out.grad_fn is not None:
        out.grad_fn.register_prehook(limit.restart)
    return out


def _torchdiffeq_options(block):
    if block.method in ADAPTIVE_METHODS:
        return {"max_num_steps": block.max_num_steps}
    if block.step_size is not None:
        return {"step_size": block.step_size}
    return {}


def _solve_torchdiffeq(block, h0, times, last_only=False):
    field = block.field
    watch = _Watch(_evaluation_limit(block, times))
    hook = (
        field.register_forward_hook(watch)
        if isinstance(field, nn.Module)
        else None
    )
    kwargs = dict(
        rtol=block.rtol,
        atol=block.atol,
        method=block.method,
        options=_torchdiffeq_options(block),
    )
    try:
        if block.adjoint:
            out = _odeint_adjoint(
                block,
                h0,
                times,
                adjoint_rtol=block.adjoint_rtol,
                adjoint_atol=block.adjoint_atol,
                adjoint_options=_torchdiffeq_options(block),
                **kwargs,
            )
        else:
            out = odeint(field, h0, times, **kwargs)
    except AssertionError as err:
        # torchdiffeq's own give-up (unless run with python -O); other asserts pass unchanged
        if "max_num_steps" in str(err) or "underflow" in str(err):
            raise GaveUp(str(err), watch.tensors) from None
        raise
    finally:
        if hook is not None:
            hook.remove()
        watch.tensors = ()
    return out[-1] if last_only else out


def _solve_lean(block, h0, times, last_only=False):
    outs = dopri5_outputs(
        block.field,
        h0,
        check_times(times),
        block.rtol,
        block.atol,
        block.max_num_steps,
    )
    # the end state alone costs no stack and select, nor their backward
    return outs[-1] if last_only else torch.stack(outs)


#: Backend name -> :class:`Backend`; the one list of backend names (``tuple(BACKENDS)``).
BACKENDS = {
    "torchdiffeq": Backend(
        "torchdiffeq",
        TORCHDIFFEQ_METHODS,
        True,
        _solve_torchdiffeq,
        "every torchdiffeq method, with or without the adjoint",
    ),
    "lean": Backend(
        "lean",
        ("dopri5",),
        False,
        _solve_lean,
        "dopri5 with backpropagation through the solver",
    ),
}
BACKEND_NAMES = tuple(BACKENDS)

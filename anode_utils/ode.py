"""The ODE block: append p zeros, solve dh/dt = f(h, t) on [0, T] with torchdiffeq."""

import contextlib

import torch
from torch import nn

from ._checks import (
    check_batch,
    check_choice,
    check_data,
    check_nonneg_int,
    check_positive,
    check_solver,
    float_dtype,
)
from .dopri5 import GaveUp
from .solvers import BACKEND_NAMES as BACKENDS
from .solvers import BACKENDS as _REGISTRY


class SolverError(RuntimeError):
    """The ODE solver gave up (too many steps or a step size underflow).

    Raised instead of hanging. On a finite state the flow has become too stiff for the chosen
    tolerances: lower the learning rate, add weight decay, raise ``max_num_steps`` or loosen
    rtol/atol. When the state (or the field's parameters) became non-finite (NaN/inf) the
    message says so instead: the inputs hold NaN/inf, or training diverged.
    """


def adjoint_gave_up(msg):
    """The :class:`SolverError` of an adjoint backward solve that gave up (``msg``: why)."""
    return SolverError(
        f"the backward (adjoint) solve gave up ({msg}): the adjoint ODE is too stiff for its "
        f"tolerances; raise max_num_steps, loosen adjoint_rtol/adjoint_atol, lower the learning "
        f"rate, or backpropagate through the solver (adjoint=False)"
    )


@contextlib.contextmanager
def backward_guard():
    """Run ``loss.backward()`` inside this so that a give-up of the adjoint method's backward
    solve (torchdiffeq raises it from inside autograd) becomes a :class:`SolverError` that says
    what to do, as a forward give-up does. Other errors pass unchanged."""
    try:
        yield
    except (AssertionError, RuntimeError) as err:
        msg = str(err)
        if isinstance(err, SolverError) or not (
            "max_num_steps" in msg or "underflow" in msg
        ):
            raise
        raise adjoint_gave_up(msg) from None


def _all_finite(tensors):
    return all(
        bool(torch.isfinite(t).all())
        for t in tensors
        if isinstance(t, torch.Tensor) and t.is_floating_point()
    )


def _nonfinite_reason(field, h0, last_tensors):
    """Why a failed solve went non-finite, or None when state and parameters are finite."""
    if not _all_finite([h0]):
        return (
            "the initial state holds non-finite values (NaN/inf): check the inputs, e.g. "
            "torch.isfinite(x).all()"
        )
    if isinstance(field, nn.Module) and not _all_finite(field.parameters()):
        return (
            "the vector field's parameters are non-finite (NaN/inf): training diverged; lower "
            "the learning rate, add weight decay, or restart from an earlier checkpoint"
        )
    if not _all_finite(last_tensors):
        return (
            "the ODE state became non-finite (NaN/inf) during the solve: the flow blew up; lower "
            "the learning rate, add weight decay, or shorten T"
        )
    return None


def augment(x, augment_dim):
    """Append ``augment_dim`` zero coordinates: (batch, d) -> (batch, d + p)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(
            f"x must be a torch.Tensor of shape (batch, d); got "
            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    if check_nonneg_int("augment_dim", augment_dim) == 0:
        return x
    return torch.cat([x, x.new_zeros(x.shape[0], augment_dim)], dim=1)


class ODEBlock(nn.Module):
    """Features phi_T(x): solve dh/dt = f(h, t), h(0) = [x, 0_p], from t = 0 to T.

    Parameters
    ----------
    field : nn.Module with ``forward(t, h)``, h of shape (batch, data_dim + augment_dim)
    data_dim : int, d, the dimension of the inputs
    augment_dim : int, p >= 0 zero dimensions appended before solving (p = 0: NODE)
    T : float > 0, end time
    method : any torchdiffeq method name ('dopri5', 'euler', 'rk4', ...)
    rtol, atol : tolerances of adaptive methods
    adjoint : bool, use ``odeint_adjoint`` (backward pass solves the adjoint ODE)
    adjoint_rtol, adjoint_atol : tolerances of the adjoint solve (default: rtol, atol)
    step_size : float, step of fixed-grid methods (euler, rk4, midpoint)
    max_num_steps : int, adaptive solves that need more steps raise :class:`SolverError`
    backend : 'torchdiffeq' (default) or 'lean': :mod:`anode_utils.dopri5`, the same dopri5
        steps as torchdiffeq with less overhead per step (dopri5 only, no adjoint)
    """

    def __init__(
        self,
        field,
        data_dim,
        augment_dim=0,
        T=1.0,
        method="dopri5",
        rtol=1e-3,
        atol=1e-3,
        adjoint=False,
        adjoint_rtol=None,
        adjoint_atol=None,
        step_size=None,
        max_num_steps=1000,
        backend="torchdiffeq",
    ):
        super().__init__()
        self.field = field
        self.data_dim = check_nonneg_int("data_dim", data_dim)
        if self.data_dim == 0:
            raise ValueError(
                "data_dim must be a positive integer (1, 2, ...); got 0"
            )
        self.augment_dim = check_nonneg_int("augment_dim", augment_dim)
        self.T = check_positive("T", T)
        self.method = check_solver(method)
        self.rtol = check_positive("rtol", rtol)
        self.atol = check_positive("atol", atol)
        self.adjoint_rtol = check_positive(
            "adjoint_rtol", adjoint_rtol if adjoint_rtol is not None else rtol
        )
        self.adjoint_atol = check_positive(
            "adjoint_atol", adjoint_atol if adjoint_atol is not None else atol
        )
        self.step_size = (
            None
            if step_size is None
            else check_positive("step_size", step_size)
        )
        self.max_num_steps = check_nonneg_int("max_num_steps", max_num_steps)
        self.adjoint = bool(adjoint)
        self.backend = check_choice("backend", backend, BACKENDS)
        field_dim = getattr(field, "dim", None)
        if field_dim is not None and field_dim != self.state_dim:
            raise ValueError(
                f"field.dim ({field_dim}) must equal data_dim + augment_dim "
                f"({self.data_dim} + {self.augment_dim})"
            )

    @property
    def state_dim(self):
        """d + p, the dimension the ODE is solved in."""
        return self.data_dim + self.augment_dim

    def solve(self, h0, times, last_only=False):
        """Integrate from an already augmented state h0 (batch, d + p) over ``times`` (a 1-d
        tensor) with the backend chosen by name (:mod:`anode_utils.solvers`).

        Returns (len(times), batch, d + p), or only the state at ``times[-1]`` when
        ``last_only``. ``times`` may run backwards (T -> 0). A solver that gives up raises
        :class:`SolverError`, which says whether the state had become non-finite.
        """
        backend = _REGISTRY[self.backend]
        # checked here, not in __init__, because solver settings may change after construction
        # (anode_utils.cost.solver_settings)
        backend.check(self.method, self.adjoint)
        try:
            return backend.solve(self, h0, times, last_only)
        except GaveUp as err:
            reason = _nonfinite_reason(self.field, h0, err.tensors)
            raise self._solver_error(str(err), reason) from None

    def _solver_error(self, msg, reason=None):
        if reason is not None:
            return SolverError(f"{self.method} gave up ({msg}): {reason}.")
        return SolverError(
            f"{self.method} gave up ({msg}). The flow is too stiff for rtol={self.rtol}, "
            f"atol={self.atol}: lower the learning rate, add weight decay, raise "
            f"max_num_steps (now {self.max_num_steps}) or loosen the tolerances."
        )

    def forward(self, x, times=None):
        """Features h(T) of shape (batch, d + p), or the trajectory at ``times``.

        x : (batch, d), non-empty, finite, of the parameters' dtype. times : optional 1-d
        tensor/sequence of increasing times starting at 0; then the result has shape
        (len(times), batch, d + p).
        """
        dtype = (
            float_dtype(self.field)
            if isinstance(self.field, nn.Module)
            else None
        )
        check_data(check_batch(x, self.data_dim), "x", dtype)
        h0 = augment(x, self.augment_dim)
        if times is None:
            t = torch.tensor([0.0, self.T], dtype=x.dtype, device=x.device)
            return self.solve(h0, t, last_only=True)
        return self.solve(
            h0, torch.as_tensor(times, dtype=x.dtype, device=x.device)
        )

    def extra_repr(self):
        # short enough for the book's output column; the defaults (direct backprop, torchdiffeq)
        # are left out
        return (
            f"data_dim={self.data_dim}, augment_dim={self.augment_dim}, T={self.T}, "
            f"method={self.method!r}, rtol={self.rtol}, atol={self.atol}"
            + (", adjoint=True" if self.adjoint else "")
            + (
                ""
                if self.backend == "torchdiffeq"
                else f", backend={self.backend!r}"
            )
        )

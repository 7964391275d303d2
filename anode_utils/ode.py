"""The ODE block: append p zeros, solve dh/dt = f(h, t) on [0, T] with torchdiffeq."""
import contextlib

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from ._checks import (ADAPTIVE_SOLVERS, check_batch, check_choice, check_data, check_nonneg_int,
                      check_positive, check_solver, float_dtype)
from .dopri5 import GaveUp, check_times, dopri5_outputs, rounded

#: Solver implementations behind ``ODEBlock(backend=...)``: torchdiffeq (the reference the
#: book explains) and the package's lean dopri5 (same steps, less overhead per step).
BACKENDS = ("torchdiffeq", "lean")


class SolverError(RuntimeError):
    """The ODE solver gave up (too many steps or a step size underflow).

    Raised instead of hanging. On a finite state the flow has become too stiff for the chosen
    tolerances: lower the learning rate, add weight decay, raise ``max_num_steps`` or loosen
    rtol/atol. When the state (or the field's parameters) became non-finite (NaN/inf) the
    message says so instead: the inputs hold NaN/inf, or training diverged.
    """


@contextlib.contextmanager
def backward_guard():
    """Run ``loss.backward()`` inside this so that a give-up of the adjoint method's backward
    solve (torchdiffeq raises it from inside autograd) becomes a :class:`SolverError` that says
    what to do, as a forward give-up does. Other errors pass unchanged."""
    try:
        yield
    except (AssertionError, RuntimeError) as err:
        msg = str(err)
        if isinstance(err, SolverError) or not ("max_num_steps" in msg or "underflow" in msg):
            raise
        raise SolverError(
            f"the backward (adjoint) solve gave up ({msg}): the adjoint ODE is too stiff for its "
            f"tolerances; raise max_num_steps, loosen adjoint_rtol/adjoint_atol, lower the learning "
            f"rate, or backpropagate through the solver (adjoint=False)") from None


def _all_finite(tensors):
    return all(bool(torch.isfinite(t).all()) for t in tensors
               if isinstance(t, torch.Tensor) and t.is_floating_point())


class _LastCall:
    """Forward hook that keeps (references to) the field's latest state and derivative, so a
    solver failure can tell a non-finite state from a stiff one. Copies nothing."""

    def __init__(self):
        self.tensors = ()

    def __call__(self, module, args, output):
        self.tensors = (*args, output)


def _nonfinite_reason(field, h0, last):
    """Why a failed solve went non-finite, or None when state and parameters are finite."""
    if not _all_finite([h0]):
        return ("the initial state holds non-finite values (NaN/inf): check the inputs, e.g. "
                "torch.isfinite(x).all()")
    if isinstance(field, nn.Module) and not _all_finite(field.parameters()):
        return ("the vector field's parameters are non-finite (NaN/inf): training diverged; lower "
                "the learning rate, add weight decay, or restart from an earlier checkpoint")
    if not _all_finite(last.tensors):
        return ("the ODE state became non-finite (NaN/inf) during the solve: the flow blew up; lower "
                "the learning rate, add weight decay, or shorten T")
    return None


def augment(x, augment_dim):
    """Append ``augment_dim`` zero coordinates: (batch, d) -> (batch, d + p)."""
    if augment_dim == 0:
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

    def __init__(self, field, data_dim, augment_dim=0, T=1.0, method="dopri5", rtol=1e-3,
                 atol=1e-3, adjoint=False, adjoint_rtol=None, adjoint_atol=None,
                 step_size=None, max_num_steps=1000, backend="torchdiffeq"):
        super().__init__()
        self.field = field
        self.data_dim = check_nonneg_int("data_dim", data_dim)
        if self.data_dim == 0:
            raise ValueError("data_dim must be a positive integer (1, 2, ...); got 0")
        self.augment_dim = check_nonneg_int("augment_dim", augment_dim)
        self.T = check_positive("T", T)
        self.method = check_solver(method)
        self.rtol = check_positive("rtol", rtol)
        self.atol = check_positive("atol", atol)
        self.adjoint_rtol = check_positive("adjoint_rtol", adjoint_rtol if adjoint_rtol is not None else rtol)
        self.adjoint_atol = check_positive("adjoint_atol", adjoint_atol if adjoint_atol is not None else atol)
        self.step_size = None if step_size is None else check_positive("step_size", step_size)
        self.max_num_steps = check_nonneg_int("max_num_steps", max_num_steps)
        self.adjoint = bool(adjoint)
        self.backend = check_choice("backend", backend, BACKENDS)
        field_dim = getattr(field, "dim", None)
        if field_dim is not None and field_dim != self.state_dim:
            raise ValueError(f"field.dim ({field_dim}) must equal data_dim + augment_dim "
                             f"({self.data_dim} + {self.augment_dim})")

    @property
    def state_dim(self):
        """d + p, the dimension the ODE is solved in."""
        return self.data_dim + self.augment_dim

    def _options(self):
        if self.method in ADAPTIVE_SOLVERS:
            return {"max_num_steps": self.max_num_steps}
        if self.step_size is not None:
            return {"step_size": self.step_size}
        return {}

    def solve(self, h0, times):
        """Integrate from an already augmented state h0 (batch, d + p) over ``times``.

        Returns (len(times), batch, d + p). ``times`` may run backwards (T -> 0).
        """
        if self.backend == "lean":
            return self._solve_lean(h0, check_times(times))
        kwargs = dict(rtol=self.rtol, atol=self.atol, method=self.method, options=self._options())
        if self.adjoint:
            return self._guarded(h0, lambda: odeint_adjoint(
                self.field, h0, times, adjoint_rtol=self.adjoint_rtol, adjoint_atol=self.adjoint_atol,
                adjoint_options=self._options(), **kwargs))
        return self._guarded(h0, lambda: odeint(self.field, h0, times, **kwargs))

    def _guarded(self, h0, run, watch=True):
        """``run()`` with a give-up of the solver turned into :class:`SolverError`, which says
        whether the state had become non-finite. torchdiffeq's solve is watched (a forward hook
        keeps the field's last call); the lean solver hands its last state and stages over in
        the exception instead (``watch=False``), because a hook slows every field call."""
        last = _LastCall()
        hook = (self.field.register_forward_hook(last)
                if watch and isinstance(self.field, nn.Module) else None)
        try:
            return run()
        except (AssertionError, RuntimeError) as err:
            msg = str(err)
            if "max_num_steps" in msg or "underflow" in msg:
                if isinstance(err, GaveUp):
                    last.tensors = err.tensors
                raise self._solver_error(msg, _nonfinite_reason(self.field, h0, last)) from None
            raise
        finally:
            if hook is not None:
                hook.remove()
            last.tensors = ()

    def _solver_error(self, msg, reason=None):
        if reason is not None:
            return SolverError(f"{self.method} gave up ({msg}): {reason}.")
        return SolverError(
            f"{self.method} gave up ({msg}). The flow is too stiff for rtol={self.rtol}, "
            f"atol={self.atol}: lower the learning rate, add weight decay, raise "
            f"max_num_steps (now {self.max_num_steps}) or loosen the tolerances.")

    def _solve_lean(self, h0, times, last_only=False):
        # checked here, not in __init__, because solver settings may change after construction
        # (anode_utils.cost.solver_settings)
        if self.method != "dopri5" or self.adjoint:
            raise ValueError(f"backend='lean' implements dopri5 with backpropagation through the "
                             f"solver; got method={self.method!r}, adjoint={self.adjoint}. Use "
                             f"backend='torchdiffeq' for other methods or the adjoint.")
        outs = self._guarded(h0, lambda: dopri5_outputs(self.field, h0, times, self.rtol,
                                                        self.atol, self.max_num_steps), watch=False)
        return outs[-1] if last_only else torch.stack(outs)

    def forward(self, x, times=None):
        """Features h(T) of shape (batch, d + p), or the trajectory at ``times``.

        x : (batch, d), non-empty, finite, of the parameters' dtype. times : optional 1-d
        tensor/sequence of increasing times starting at 0; then the result has shape
        (len(times), batch, d + p).
        """
        dtype = float_dtype(self.field) if isinstance(self.field, nn.Module) else None
        if times is None and self.backend == "lean":
            # the training path: the end state without stacking it, and the inputs' finiteness
            # tested only when the solve fails (a non-finite input makes dopri5's first step
            # size NaN, so it always gives up) rather than by three tensor calls every solve
            check_data(check_batch(x, self.data_dim), "x", dtype, finite=False)
            try:
                # T rounded to x's dtype, as the time tensor of the path below holds it
                return self._solve_lean(augment(x, self.augment_dim),
                                        (0.0, rounded(self.T, x.dtype)), True)
            except SolverError:
                check_data(x, "x", dtype)
                raise
        check_data(check_batch(x, self.data_dim), "x", dtype)
        h0 = augment(x, self.augment_dim)
        if times is None:
            t = torch.tensor([0.0, self.T], dtype=x.dtype, device=x.device)
            return self.solve(h0, t)[-1]
        t = torch.as_tensor(times, dtype=x.dtype, device=x.device)
        return self.solve(h0, t)

    def extra_repr(self):
        # short enough for the book's output column; the defaults (direct backprop, torchdiffeq)
        # are left out
        return (f"data_dim={self.data_dim}, augment_dim={self.augment_dim}, T={self.T}, "
                f"method={self.method!r}, rtol={self.rtol}, atol={self.atol}"
                + (", adjoint=True" if self.adjoint else "")
                + ("" if self.backend == "torchdiffeq" else f", backend={self.backend!r}"))

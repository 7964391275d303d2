"""A lean dopri5: torchdiffeq's adaptive Dormand–Prince solver, step for step, with far less
Python and small-tensor work around each function evaluation.

What is the same as ``torchdiffeq.odeint(..., method='dopri5')`` (version 0.2.x):

* the Dormand–Prince (Shampine) tableau, rounded to the state's dtype, and the stage times
  ``t0 + c_i dt`` rounded to the state's dtype the way torchdiffeq rounds them (the last two
  stages just below ``t1``, as its ``Perturb.PREV`` does);
* the initial step (Hairer, Norsett & Wanner II.4, torchdiffeq's ``_select_initial_step``,
  two evaluations) and the RMS error norm over all elements with
  ``atol + rtol * max(|y0|, |y1|)``;
* the step-size controller: safety 0.9, ifactor 10, dfactor 0.2 (1 after an accepted step),
  order 5, computed in float64; the count of attempted steps per output interval that
  ``max_num_steps`` bounds; the underflow test ``t0 + dt > t0``;
* the output times: the solver steps past them and evaluates the 4th-order dopri5 interpolant
  of the step that covers them; times may run backwards (solved as ``-f(-t, y)``);
* step callbacks ``callback_step``, ``callback_accept_step`` and ``callback_reject_step`` of
  the field, called with the same arguments.

Hence, on the same inputs, the same accepted and rejected steps and the same NFE, and the same
first step size to the bit wherever torch's square root is correctly rounded (MKL's vector math,
which torch may use for it, is not always: then the two can differ by an ulp; this solver's
square root is the correctly rounded one on every machine). States agree to rounding (a
different order of summation), ~1e-7 relative in float32; the error estimate is a sum that
cancels to far below the stages it sums, so its rounding, and with it the later step sizes,
differ by ~1e-6 relative on the toy models (~1e-4 next to a jump in the field); an
accept/reject decision could flip only for an error ratio that close to 1.

What is leaner: times, step sizes and stage weights are Python floats (numpy float32 where the
state is float32) instead of 0-d tensors; stages are combined by ``torch.add(alpha=)`` instead
of a (..., 7) buffer written through a custom autograd function; the error ratio is computed
without recording autograd and read once per step; the interpolant is formed only for the step
that covers an output time, as one linear combination of the stages.

One deliberate difference: step sizes are constants for autograd. torchdiffeq differentiates
through its initial step-size heuristic (only the first step's size carries a gradient, later
ones are computed under ``no_grad``), which changes its gradients by ~1e-4 relative on the toy
models (more where the solution depends strongly on where the first step ends); here, as in
the adjoint method, the gradient is that of the solve at fixed steps, and equals torchdiffeq's
with its first step size detached up to rounding (tests/test_solver_backend.py).
"""

import math

import numpy as np
import torch

# Dormand–Prince 5(4) with Shampine's dense output, exactly as torchdiffeq writes it
# (torchdiffeq/_impl/dopri5.py): nodes c, stage matrix a, 5th-order weights b (= the last row
# of a: first same as last), error weights b - b* (the 7th stage included), midpoint weights.
_C = [1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0]
_A = [
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
]
_E = [
    35 / 384 - 1951 / 21600,
    0,
    500 / 1113 - 22642 / 50085,
    125 / 192 - 451 / 720,
    -2187 / 6784 - -12231 / 42400,
    11 / 84 - 649 / 6300,
    -1.0 / 60.0,
]
_MID = [
    6025192743 / 30085553152 / 2,
    0,
    51252292925 / 65400821598 / 2,
    -2691868925 / 45128329728 / 2,
    187940372067 / 1594534317056 / 2,
    -1776094331 / 19743644256 / 2,
    11237099 / 235043384 / 2,
]
_ORDER = 5
_SAFETY, _IFACTOR, _DFACTOR = 0.9, 10.0, 0.2

# numpy scalar type that rounds like the state: times and weights are formed in the state's
# dtype by torchdiffeq (its _runge_kutta_step casts t0, dt, t1 and the tableau to y0's dtype)
_NP = {torch.float32: np.float32, torch.float64: np.float64}


class _Tableau:
    """The tableau rounded to one dtype; stage weights are ``a * dt`` formed per step."""

    def __init__(self, np_dtype):
        self.np = np_dtype
        self.c = np.array(_C[:4], dtype=np_dtype)  # the nodes below 1
        a = np.zeros((6, 6), dtype=np_dtype)
        for i, row in enumerate(_A):
            a[i, : len(row)] = row
        self.a = a
        self.nonzero = [[j for j, v in enumerate(row) if v != 0] for row in _A]
        self.e = np.array(_E, dtype=np_dtype)
        self._e_tensors = {}
        self.mid = [float(np_dtype(m)) for m in _MID]
        self.b = [float(np_dtype(b)) for b in _A[-1]] + [0.0]
        self.one = np_dtype(1)

    def e_tensor(self, device):
        """The error weights as a tensor on ``device`` (made once per device)."""
        if device not in self._e_tensors:
            self._e_tensors[device] = torch.as_tensor(self.e, device=device)
        return self._e_tensors[device]


_TABLEAUS = {}


def rounded(t, dtype):
    """The Python float ``t`` rounded to ``dtype`` (float32 or float64), as a time tensor of that
    dtype would hold it."""
    return float(_tableau(dtype).np(t))


def _tableau(dtype):
    if dtype not in _NP:
        raise ValueError(
            f"backend='lean' solves float32 or float64 states; got {dtype}. "
            f"Use backend='torchdiffeq' for other dtypes."
        )
    if dtype not in _TABLEAUS:
        _TABLEAUS[dtype] = _Tableau(_NP[dtype])
    return _TABLEAUS[dtype]


def _rms(x, T):
    """torchdiffeq's norm ``x.abs().pow(2).mean().sqrt()`` as a Python float of dtype T.

    x.square() equals x.abs().pow(2) bit for bit, and the square root of the float32 mean taken
    in float64 and rounded to float32 is the correctly rounded float32 square root, on any
    machine (torch's float32 sqrt is too, except where MKL's vector math stands in for it)."""
    return T(math.sqrt(x.square().mean().item()))


def _combine(y0, ks, weights, nonzero):
    """y0 + sum_j weights[j] * ks[j] over the indices ``nonzero``: one autograd node a term."""
    y = y0
    for j in nonzero:
        y = torch.add(y, ks[j], alpha=weights[j])
    return y


def _interp_weights(x, b, mid):
    """Weights c_j(x) with y(t0 + x dt) = y0 + dt * sum_j c_j(x) k_j for torchdiffeq's
    4th-order interpolant through y0, y1, the midpoint y0 + dt * sum mid_j k_j, f0 and f1
    (torchdiffeq/_impl/interp.py expanded: the y0 coefficients sum to one)."""
    x2, x3, x4 = x * x, x * x * x, x * x * x * x
    p_y1 = -5 * x2 + 14 * x3 - 8 * x4
    p_mid = 16 * x2 - 32 * x3 + 16 * x4
    w = [bj * p_y1 + mj * p_mid for bj, mj in zip(b, mid)]
    w[0] += x - 4 * x2 + 5 * x3 - 2 * x4
    w[6] += x2 - 3 * x3 + 2 * x4
    return w


def _min(a, b):
    """min that propagates NaN, as torch.min of two tensors does."""
    return a if a != a or a <= b else b


def _max(a, b):
    """max that propagates NaN, as torch.max of two tensors does."""
    return a if a != a or a >= b else b


def _initial_step(call, t0, y0, f0, abs_y0, rtol, atol, T, order=_ORDER - 1):
    """torchdiffeq's ``_select_initial_step`` (Hairer, Norsett & Wanner II.4) in the
    solver's internal time; ``call(t, y)`` is the internal right-hand side, f0 = call(t0, y0).

    The same tensor operations where tensors are involved and the same scalar operations in
    the state's dtype T (numpy scalars) elsewhere, so the same number comes out; torchdiffeq
    keeps these scalars as 0-d tensors. Returns a Python float."""
    scale = abs_y0 * rtol + atol
    d0 = _rms(y0 / scale, T)
    d1 = _rms(f0 / scale, T)
    if d0 < T(1e-5) or d1 < T(1e-5):
        h0 = T(1e-6)
    else:
        h0 = T(0.01) * d0 / d1
    f1 = call(t0 + float(h0), y0 + f0 * float(h0))
    d2 = _rms((f1 - f0) / scale, T) / h0
    if d1 <= T(1e-15) and d2 <= T(1e-15):
        h1 = _max(T(1e-6), h0 * T(1e-3))
    else:
        # torch evaluates 0.01 / d as reciprocal(d) * 0.01 and a float32 power in float64;
        # max(d1, d2) is Python's max in torchdiffeq too
        h1 = T(
            float((T(1) / max(d1, d2)) * T(0.01)) ** (1.0 / float(order + 1))
        )
    return float(_min(T(100) * h0, h1))


def _next_step(dt, ratio):
    """torchdiffeq's ``_optimal_step_size`` on Python floats (NaN propagates as torch's
    min/max do, so a NaN error makes the next step size NaN and the solve underflow)."""
    if ratio == 0:
        return dt * _IFACTOR
    if math.isnan(ratio):
        return math.nan
    dfactor = 1.0 if ratio < 1 else _DFACTOR
    return dt * min(_IFACTOR, max(_SAFETY / ratio ** (1.0 / _ORDER), dfactor))


class GaveUp(RuntimeError):
    """The solver gave up ('max_num_steps exceeded' or 'underflow in dt', torchdiffeq's words).
    ``tensors`` holds the state and the stages of the last attempted step, so the caller can
    tell a non-finite state from a stiff one without watching every field call."""

    def __init__(self, message, tensors=()):
        super().__init__(message)
        self.tensors = tuple(tensors)


def odeint_dopri5(field, y0, times, rtol, atol, max_num_steps=2**31 - 1):
    """Solve dy/dt = field(t, y), y(times[0]) = y0, and return y at ``times``.

    field : callable ``field(t, y)`` with t a 0-d tensor of y's dtype; its optional
        ``callback_step``, ``callback_accept_step``, ``callback_reject_step`` are called
        as torchdiffeq calls them.
    y0 : tensor of any shape (float32 or float64).
    times : 1-d tensor, strictly increasing or strictly decreasing.
    rtol, atol : floats. max_num_steps : attempted steps allowed per output interval.

    Returns a tensor of shape (len(times), *y0.shape); entry 0 is y0. Raises :class:`GaveUp`
    (a RuntimeError) with 'max_num_steps exceeded' or 'underflow in dt' when the solver gives
    up, as torchdiffeq does (:class:`anode_utils.ode.ODEBlock` turns both into SolverError); a
    non-finite state makes the step size NaN and so ends in the same underflow.
    """
    return torch.stack(
        dopri5_outputs(
            field, y0, check_times(times), rtol, atol, max_num_steps
        )
    )


def check_times(times):
    """``times`` (a 1-d tensor or sequence of floats) as a list of Python floats; ValueError
    unless strictly increasing or strictly decreasing."""
    ts = times.tolist() if isinstance(times, torch.Tensor) else list(times)
    if not all(isinstance(v, float) for v in ts):
        raise ValueError(
            f"times must be a 1-d sequence of floats; got {times!r}"
        )
    later = ts[1:]
    if not (
        all(b > a for a, b in zip(ts, later))
        or all(b < a for a, b in zip(ts, later))
    ):
        raise ValueError(
            "times must be strictly increasing or strictly decreasing"
        )
    return ts


def dopri5_outputs(field, y0, ts, rtol, atol, max_num_steps=2**31 - 1):
    """:func:`odeint_dopri5` without checking ``ts`` and without stacking: the list of states
    at ``ts``, a strictly monotone sequence of Python floats. The end state alone
    (``[-1]``) then costs no stack and select, nor their backward."""
    tab = _tableau(y0.dtype)
    T = tab.np
    # decreasing times are solved in s = -t, where the right-hand side is -field(-s, y); the
    # sign is folded into the stage weights (negation is exact, so nothing else changes)
    sign = -1.0 if len(ts) > 1 and ts[0] > ts[1] else 1.0
    if sign < 0:
        ts = [-v for v in ts]
    dtype, device = y0.dtype, y0.device
    on_cpu = device.type == "cpu"
    e_weights = tab.e_tensor(device)
    inv_sqrt_n = 1.0 / math.sqrt(max(y0.numel(), 1))
    cb_step = getattr(field, "callback_step", None)
    cb_accept = getattr(field, "callback_accept_step", None)
    cb_reject = getattr(field, "callback_reject_step", None)

    def callback(cb, t0, y, dt):
        cb(
            torch.tensor(sign * t0, dtype=torch.float64, device=device),
            y,
            torch.tensor(dt, dtype=torch.float64, device=device),
        )

    def call(s, y):  # the internal right-hand side, for the initial step
        f = field(
            torch.scalar_tensor(
                sign * float(T(s)), dtype=dtype, device=device
            ),
            y,
        )
        return f if sign > 0 else -f

    t0 = ts[0]
    k0 = field(
        torch.scalar_tensor(sign * float(T(t0)), dtype=dtype, device=device),
        y0,
    )
    with torch.no_grad():  # step sizes are constants for autograd
        abs_y = y0.abs()
        dt = _initial_step(
            call, t0, y0, k0 if sign > 0 else -k0, abs_y, rtol, atol, T
        )
    y, ks = y0, [k0]
    last = (
        t0,
        t0,
        y0,
        None,
        None,
    )  # the last accepted step: t0, t1, y0, stages, dt
    out = [y0]
    for t_out in ts[1:]:
        n_steps = 0
        while t_out > last[1]:
            if n_steps >= max_num_steps:
                raise GaveUp(
                    f"max_num_steps exceeded ({n_steps}>={max_num_steps})",
                    (y, *ks),
                )
            n_steps += 1
            t0 = last[1]
            if not math.isfinite(dt):
                dt = 0.0
            if cb_step is not None:
                callback(cb_step, t0, y, dt)
            t1 = t0 + dt
            if not t1 > t0:
                raise GaveUp(f"underflow in dt {dt}", (y, *ks))
            # stage weights a * dt and times t0 + c * dt in the state's dtype, the c = 1
            # stages just below t1 (torchdiffeq's Perturb.PREV), as torchdiffeq forms them;
            # the times go to torch as one fresh array (the stages' 0-d tensors view it)
            t0_, dt_, t1_ = T(t0), T(dt), T(t1)
            stage_t = np.empty(6, dtype=T)
            stage_t[:4] = t0_ + tab.c * dt_
            stage_t[4:] = np.nextafter(t1_, t1_ - tab.one)
            if sign > 0:
                w = (tab.a * dt_).tolist()
            else:
                w = (tab.a * -dt_).tolist()
                np.negative(stage_t, out=stage_t)
            stage_t = torch.from_numpy(stage_t)
            stage_t = (stage_t if on_cpu else stage_t.to(device)).unbind()
            ks = [k0]
            for i, nonzero in enumerate(tab.nonzero):
                wi, yi = w[i], y
                for j in nonzero:
                    yi = torch.add(yi, ks[j], alpha=wi[j])
                ks.append(field(stage_t[i], yi))
            # yi is now y1: dopri5's last stage is evaluated at the solution (FSAL)
            with torch.no_grad():
                # error estimate dt * sum_j e_j k_j; (7,) @ (7, N) is cheaper than stacking
                # along a new last axis; dt is applied to the norm (a float) below
                err = (e_weights @ torch.stack(ks).reshape(7, -1)).reshape(
                    yi.shape
                )
                abs_y1 = yi.abs()
                err /= torch.maximum(abs_y, abs_y1).mul_(rtol).add_(atol)
                # RMS over all elements as torchdiffeq's norm, up to the order of summation
                ratio = float(
                    T(
                        torch.linalg.vector_norm(err).item()
                        * inv_sqrt_n
                        * float(dt_)
                    )
                )
            if ratio <= 1:
                if cb_accept is not None:
                    callback(cb_accept, t0, y, dt)
                last = (t0, t1, y, ks, dt)
                y, k0, abs_y = yi, ks[-1], abs_y1
            else:
                if cb_reject is not None:
                    callback(cb_reject, t0, y, dt)
                last = (t0, t0) + last[2:]
            dt = _next_step(dt, ratio)
        out.append(_interpolate(last, t_out, tab, sign))
    return out


def _interpolate(last, t, tab, sign):
    """The state at internal time t from the interpolant of the accepted step ``last``."""
    t0, t1, y0, ks, dt = last
    x = float(tab.np((t - t0) / (t1 - t0)))
    h = float(tab.np(dt)) * sign
    w = [h * c for c in _interp_weights(x, tab.b, tab.mid)]
    return _combine(
        y0, ks, w, (0, 2, 3, 4, 5, 6)
    )  # k_1 has weight 0 in b and mid

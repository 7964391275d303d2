"""Executable counterparts of the paper's theory (Sections 3-4): flows and their inverses,
Jacobian determinants two ways (Liouville's formula and autograd), a rotation field that
solves g1d with one augmented dimension, and the "gap" analysis of a trained NODE.

Conventions. A *field* is an ``nn.Module`` with ``forward(t, h)``, h of shape (batch, D),
returning (batch, D) (e.g. :class:`~anode_utils.fields.MLPField`). Every function below also
accepts an :class:`~anode_utils.ode.ODEBlock` or an :class:`~anode_utils.models.ODENet` and
then uses its field and, for inputs of shape (batch, d), appends its p zero dimensions.
All functions solve with their own tolerances (default dopri5, rtol = atol = 1e-7), not
the model's training tolerances, and leave the field's NFE counter as they found it.
"""

import math

import torch
from torch import nn

from ._checks import (
    check_batch,
    check_data,
    check_nonneg_int,
    check_pos_int,
    check_positive,
    check_solver,
)
from .data import grid_2d
from .dopri5 import check_times
from .fields import CountingField
from .ode import ODEBlock, augment
from .regularizers import jacobian_trace

#: Solver settings used unless overridden: accurate enough that numerical error is far
#: below every tolerance the book states.
SOLVER = dict(
    method="dopri5", rtol=1e-7, atol=1e-7, step_size=None, max_num_steps=100000
)


def _unpack(model):
    """(field, augment_dim) of a field, an ODEBlock or an ODENet."""
    if isinstance(model, ODEBlock):
        return model.field, model.augment_dim
    block = getattr(model, "odeblock", None)
    if isinstance(block, ODEBlock):
        return block.field, block.augment_dim
    if isinstance(model, nn.Module) and callable(
        getattr(model, "forward", None)
    ):
        return model, 0
    raise ValueError(
        f"expected a vector field module, an ODEBlock or an ODENet; got {type(model).__name__}"
    )


def _state_dim(field, x, augment_dim):
    """The state dimension D, from field.dim when the field declares it."""
    dim = getattr(field, "dim", None)
    if dim is None:
        return x.shape[-1] if x.dim() == 2 else None
    return dim


def _initial_state(model, x, name="x"):
    """field, h0 of shape (batch, D): x is (batch, D) or (batch, D - p) (then zero-augmented)."""
    field, p = _unpack(model)
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(
            f"{name} must be a torch.Tensor of shape (batch, dim); got "
            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    check_data(
        x, name
    )  # NaN/inf or an empty batch: named here, not as a solver give-up
    D = _state_dim(field, x, p)
    if x.shape[1] == D:
        return field, x
    if p and x.shape[1] == D - p:
        return field, augment(x, p)
    raise ValueError(
        f"{name} must have shape (batch, {D})"
        + (f" or (batch, {D - p})" if p else "")
        + f" to match the field; got {tuple(x.shape)}"
    )


def _block(field, dim, T, method, rtol, atol, step_size, max_num_steps):
    return ODEBlock(
        field,
        data_dim=dim,
        augment_dim=0,
        T=T,
        method=method,
        rtol=rtol,
        atol=atol,
        step_size=step_size,
        max_num_steps=max_num_steps,
    )


def _solve(field, h0, times, solver):
    """Solve with an ODEBlock built around ``field``; leaves field.nfe unchanged."""
    opts = dict(SOLVER, **solver)
    unknown = sorted(set(opts) - set(SOLVER))
    if unknown:
        raise ValueError(
            f"unknown solver option(s) {', '.join(unknown)}; known: {', '.join(SOLVER)}"
        )
    check_solver(opts["method"])
    T = float(abs(times[-1] - times[0])) or 1.0
    block = _block(
        field,
        h0.shape[1],
        T,
        opts["method"],
        opts["rtol"],
        opts["atol"],
        opts["step_size"],
        opts["max_num_steps"],
    )
    nfe = getattr(field, "nfe", None)
    try:
        return block.solve(h0, times)
    finally:
        if nfe is not None:
            field.nfe = nfe


def _times(times, T, dtype, device, start=0.0):
    if times is None:
        return torch.tensor([start, T], dtype=dtype, device=device)
    t = torch.as_tensor(times, dtype=dtype, device=device)
    if t.dim() != 1 or len(t) < 2:
        raise ValueError(
            f"times must be a 1-d sequence of at least 2 times; got shape {tuple(t.shape)}"
        )
    check_times(t)
    return t


def flow(model, x, T=1.0, times=None, **solver):
    """phi_T(x), or the trajectory phi_t(x) at ``times``.

    model : field, ODEBlock or ODENet (see the module docstring).
    x : (batch, D) states, or (batch, d) inputs of an augmented model (zeros appended).
    T : end time (> 0), used when ``times`` is None.
    times : optional 1-d increasing or decreasing times (the first is the start time).
    solver : method, rtol, atol, step_size, max_num_steps (defaults :data:`SOLVER`).
    Returns (batch, D), or (len(times), batch, D) when ``times`` is given.
    """
    check_positive("T", T)
    field, h0 = _initial_state(model, x)
    t = _times(times, T, h0.dtype, h0.device)
    out = _solve(field, h0, t, solver)
    return out if times is not None else out[-1]


def invert(model, z, T=1.0, **solver):
    """phi_T^{-1}(z): integrate the same field backwards from t = T to t = 0.

    z : (batch, D) end states. Returns (batch, D). The ODE is solved on the decreasing time
    grid [T, 0]; no inverse network is needed (Proposition 3).
    """
    check_positive("T", T)
    field, _ = _unpack(model)
    if not isinstance(z, torch.Tensor) or z.dim() != 2:
        raise ValueError("z must be a torch.Tensor of shape (batch, D)")
    D = _state_dim(field, z, 0)
    if z.shape[1] != D:
        raise ValueError(
            f"z must have shape (batch, {D}) (the full state, augmented dimensions "
            f"included); got {tuple(z.shape)}"
        )
    check_data(z, "z")
    t = torch.tensor([T, 0.0], dtype=z.dtype, device=z.device)
    return _solve(field, z, t, solver)[-1]


def inversion_error(model, x, T=1.0, **solver):
    """max_i ||phi_T^{-1}(phi_T(x_i)) - h0_i||_inf: how well the backward flow undoes the forward one.

    x : (batch, D) or (batch, d) (zero-augmented). Returns a Python float.
    """
    _, h0 = _initial_state(model, x)
    z = flow(model, x, T, **solver)
    back = invert(model, z, T, **solver)
    return (back - h0).abs().max().item()


class LiouvilleField(nn.Module):
    """Augmented field for Liouville's formula: state [h, l] of shape (batch, D + 1),
    d/dt h = f(h, t), d/dt l = tr df/dh (h, t). With l(0) = 0, l(T) = log det D phi_T(x).

    Wraps ``field`` (dimension D); ``dim`` is D + 1. Used by :func:`liouville_logdet`.
    """

    def __init__(self, field, dim):
        super().__init__()
        self.field = field
        self.dim = check_pos_int("dim", dim) + 1

    def forward(self, t, state):
        f, tr = jacobian_trace(lambda h: self.field(t, h), state[:, :-1])
        return torch.cat([f, tr[:, None]], dim=1)


def liouville_logdet(model, x, T=1.0, **solver):
    """log det D phi_T(x) by Liouville's formula, integrated alongside the state.

    d/dt log det D phi_t(x) = tr (df/dh)(phi_t(x), t), so the log-determinant is an integral of
    a trace along the trajectory, and det D phi_T(x) = exp(...) > 0 always.

    x : (batch, D) or (batch, d) (zero-augmented; the determinant is that of the flow in R^D).
    Returns (phi_T(x) of shape (batch, D), logdet of shape (batch,)).
    """
    check_positive("T", T)
    field, h0 = _initial_state(model, x)
    wrapper = LiouvilleField(field, h0.shape[1])
    state0 = torch.cat([h0.detach(), h0.new_zeros(h0.shape[0], 1)], dim=1)
    t = torch.tensor([0.0, T], dtype=h0.dtype, device=h0.device)
    nfe = getattr(field, "nfe", None)
    try:
        with torch.no_grad():
            out = _solve(wrapper, state0, t, solver)[-1]
    finally:
        if nfe is not None:
            field.nfe = nfe
    return out[:, :-1], out[:, -1]


def autograd_jacobian(model, x, T=1.0, **solver):
    """D phi_T at each point, by differentiating the numerical solve with autograd.

    x : (batch, D) or (batch, d). Returns (batch, D, D), one point per solve (the solver's
    step sizes then depend on that point alone).
    """
    field, h0 = _initial_state(model, x)
    jacs = []
    for h in h0.detach():

        def phi(v):
            return flow(field, v[None], T, **solver)[0]

        jacs.append(torch.autograd.functional.jacobian(phi, h))
    return torch.stack(jacs)


def autograd_jacobian_det(model, x, T=1.0, **solver):
    """det D phi_T(x) from :func:`autograd_jacobian`: (batch, D) or (batch, d) -> (batch,)."""
    return torch.linalg.det(autograd_jacobian(model, x, T, **solver))


class RotationField(CountingField):
    """Rigid rotation with angular speed ``omega`` in the plane of coordinates ``plane``:
    f(h, t) = omega * (-h_j, h_i) in coordinates (i, j), 0 elsewhere.

    Its flow rotates by the angle omega * t. With D = 2 (one data and one augmented
    dimension) and omega = pi it maps (x, 0) to (-x, 0) at T = 1: an untrained ANODE that
    represents g1d exactly, although det D phi_T = 1 > 0 (it is a rotation, not a reflection).
    Shapes: ``forward(t, h)`` takes h (batch, dim) and returns (batch, dim).
    """

    def __init__(self, dim=2, omega=math.pi, plane=(0, 1)):
        super().__init__()
        self.dim = check_pos_int("dim", dim)
        if self.dim < 2:
            raise ValueError(f"a rotation needs dim >= 2; got {dim}")
        if (
            isinstance(omega, bool)
            or not isinstance(omega, (int, float))
            or not math.isfinite(omega)
        ):
            raise ValueError(f"omega must be a finite number; got {omega!r}")
        self.omega = float(omega)
        i, j = (check_nonneg_int("plane index", k) for k in plane)
        if i == j or max(i, j) >= self.dim:
            raise ValueError(
                f"plane must be two different coordinates < dim={dim}; got {plane}"
            )
        self.plane = (i, j)

    def forward(self, t, h):
        self.nfe += 1
        i, j = self.plane
        out = torch.zeros_like(h)
        out[:, i] = -self.omega * h[:, j]
        out[:, j] = self.omega * h[:, i]
        return out


class AnnulusLiftField(CountingField):
    """An explicit ANODE field that separates the ball from the annulus in any dimension d.

    State (h, a) in R^(d+1): dh/dt = 0 and da/dt = -psi(||h||) / T, where
    psi(r) = clip((r1 + r2 - 2 r) / (r2 - r1), -1, 1) is 1 on the ball r <= r1, -1 for r >= r2
    and linear in between. The flow is the shear phi_t(x, a) = (x, a - t psi(||x||) / T), a
    homeomorphism of R^(d+1) (its inverse adds the same term), and phi_T(x, 0) has last
    coordinate exactly g(x) = -1 on the ball and +1 on the annulus: reading out a alone
    represents g with zero error, untrained. Autonomous and Lipschitz (constant 2 / (T (r2 - r1))).
    Shapes: ``forward(t, h)`` takes h (batch, d + 1) and returns (batch, d + 1).
    """

    def __init__(self, dim, r1=0.5, r2=1.0, T=1.0):
        super().__init__()
        self.data_dim = check_pos_int("dim", dim)
        self.dim = self.data_dim + 1
        if not (
            isinstance(r1, (int, float))
            and isinstance(r2, (int, float))
            and 0 < r1 < r2
        ):
            raise ValueError(
                f"need radii 0 < r1 < r2; got r1={r1!r}, r2={r2!r}"
            )
        if not (isinstance(T, (int, float)) and T > 0):
            raise ValueError(f"T must be a positive number; got {T!r}")
        self.r1, self.r2, self.T = float(r1), float(r2), float(T)

    def psi(self, r):
        """+1 on the ball, -1 outside radius r2, linear in between: r (batch,) -> (batch,)."""
        return ((self.r1 + self.r2 - 2 * r) / (self.r2 - self.r1)).clamp(
            -1.0, 1.0
        )

    def forward(self, t, h):
        self.nfe += 1
        r = h[:, : self.data_dim].norm(dim=1)
        lift = -self.psi(r) / self.T
        return torch.cat(
            [torch.zeros_like(h[:, : self.data_dim]), lift[:, None]], dim=1
        )


def annulus_lift_anode(dim, r1=0.5, r2=1.0, T=1.0, **solver):
    """The untrained ANODE of :class:`AnnulusLiftField`: an ``ODEBlock`` with one zero
    dimension appended; its output's last coordinate is g(x). x (batch, d) -> (batch, d + 1)."""
    from .ode import ODEBlock

    return ODEBlock(
        AnnulusLiftField(dim, r1, r2, T),
        data_dim=dim,
        augment_dim=1,
        T=T,
        **solver,
    )


def _isotonic(y):
    """Least-squares non-decreasing fit of a sequence (pool adjacent violators): list -> list."""
    sums, counts = [], []
    for v in y:
        sums.append(float(v))
        counts.append(1)
        while len(sums) > 1 and sums[-2] / counts[-2] > sums[-1] / counts[-1]:
            s, c = sums.pop(), counts.pop()
            sums[-1] += s
            counts[-1] += c
    return [s / c for s, c in zip(sums, counts) for _ in range(c)]


def monotone_fit_bound(x, y):
    """What any monotone function of a 1-d input can achieve on (x, y): a NODE in d = 1 with a
    linear readout is one (its flow preserves order, the readout is affine), so these bound it.

    x : (n,) or (n, 1) inputs; y : (n,) or (n, 1) targets in {-1, +1}.
    Returns (lowest MSE, highest sign accuracy) over non-decreasing and non-increasing
    functions: the MSE by isotonic regression, the accuracy by the best single threshold.
    """
    x = torch.as_tensor(x).reshape(-1)
    y = torch.as_tensor(y, dtype=torch.float64).reshape(-1)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"x and y must hold the same, positive number of points; got {len(x)} and {len(y)}"
        )
    ys = y[torch.argsort(x)].tolist()
    best_mse = min(
        sum((a - b) ** 2 for a, b in zip(seq, _isotonic(seq))) / len(seq)
        for seq in (ys, [-v for v in ys])
    )
    n, pos = len(ys), sum(v > 0 for v in ys)
    best_acc, left_neg, left_pos = 0, 0, 0
    for k in range(n + 1):  # threshold after the k-th smallest x
        if k:
            left_neg += ys[k - 1] < 0
            left_pos += ys[k - 1] > 0
        right_pos, right_neg = pos - left_pos, (n - pos) - left_neg
        best_acc = max(best_acc, left_neg + right_pos, left_pos + right_neg)
    return best_mse, best_acc / n


def order_changes(traj):
    """Do 1-d trajectories ever swap order? traj (len(times), batch, 1) or (len(times), batch).

    True when some pair of points is in a different order at some time than at t = 0 (ties
    count as a change): ODE solutions never do this; large Euler steps can.
    """
    traj = torch.as_tensor(traj).detach()
    if traj.dim() == 3:
        if traj.shape[2] != 1:
            raise ValueError(
                f"order_changes needs 1-d trajectories; got state dim {traj.shape[2]}"
            )
        traj = traj[..., 0]
    if traj.dim() != 2 or traj.shape[0] < 2:
        raise ValueError(
            f"traj must have shape (times >= 2, batch[, 1]); got {tuple(traj.shape)}"
        )
    diff0 = torch.sign(traj[0][:, None] - traj[0][None, :])
    diffs = torch.sign(traj[:, :, None] - traj[:, None, :])
    return bool((diffs != diff0).any())


@torch.no_grad()
def vector_field_on_grid(
    field, t=0.0, xlim=(-2.0, 2.0), ylim=(-2.0, 2.0), num=21, dims=(0, 1)
):
    """f(h, t) on a num x num grid of the plane ``dims`` (other coordinates 0).

    Returns X, Y, U, V as (num, num) tensors (U, V: the components along ``dims``).
    Leaves the field's NFE counter unchanged.
    """
    num = check_pos_int("num", num)
    D = getattr(field, "dim", None)
    if D is None:
        raise ValueError(
            "vector_field_on_grid needs a field with a .dim attribute"
        )
    xs, ys = torch.linspace(*xlim, num), torch.linspace(*ylim, num)
    Y, X = torch.meshgrid(ys, xs, indexing="ij")
    param = next(field.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    h = torch.zeros(num * num, D, dtype=dtype)
    h[:, dims[0]], h[:, dims[1]] = X.reshape(-1), Y.reshape(-1)
    nfe = getattr(field, "nfe", None)
    v = field(torch.tensor(float(t), dtype=dtype), h)
    if nfe is not None:
        field.nfe = nfe
    return (
        X,
        Y,
        v[:, dims[0]].reshape(num, num),
        v[:, dims[1]].reshape(num, num),
    )


def disk_grid(r3=1.5, num=101):
    """The points of a num x num grid over [-r3, r3]^2 with ||x|| <= r3: (n, 2), row-major."""
    check_positive("r3", r3)
    num = check_pos_int("num", num)
    g = grid_2d(r3, num)
    return g[g.norm(dim=1) <= r3]


@torch.no_grad()
def gap_analysis(model, r1=0.5, r2=1.0, r3=1.5, num=101, grid=None):
    """Push a dense grid of the disk ||x|| <= r3 through a trained NODE/ANODE with a readout.

    Regions: inner ball ||x|| <= r1 (label -1), gap r1 < ||x|| < r2 (no label, no training
    data), annulus r2 <= ||x|| <= r3 (label +1). A point's side is the sign of the model's
    output g(x) = L(phi_T(x)); "wrong" means positive for the ball, negative for the annulus.

    Proposition 2 predicts that, on a continuum, the set {g < 0} cannot contain the ball
    without crossing the annulus: the flow can only fit the training points by opening a
    channel *between* them, which a dense grid reveals.

    model : a model mapping (batch, 2) -> (batch, 1), e.g. a trained ``ODENet``.
    grid : optional (n, 2) points to use instead of :func:`disk_grid` (r3, num).
    Returns a dict with the grid ``x`` (n, 2), outputs ``g`` (n,), the boolean masks
    ``inner``, ``gap``, ``annulus`` and, per region, ``n_<region>``, ``negative_<region>``
    (points with g < 0), plus ``wrong_inner``, ``wrong_annulus`` and the fractions
    ``frac_wrong_inner``, ``frac_wrong_annulus``, ``frac_negative_gap``.
    """
    for name, r in (("r1", r1), ("r2", r2), ("r3", r3)):
        check_positive(name, r)
    if not r1 < r2 <= r3:
        raise ValueError(
            f"radii must satisfy 0 < r1 < r2 <= r3; got r1={r1}, r2={r2}, r3={r3}"
        )
    x = disk_grid(r3, num) if grid is None else check_batch(grid, 2, "grid")
    param = next(model.parameters(), None)
    if param is not None:
        x = x.to(param.dtype)
    was_training = model.training
    model.eval()
    g = torch.cat([model(xb).reshape(-1) for xb in torch.split(x, 2048)])
    model.train(was_training)
    from .nfe import reset_nfe

    reset_nfe(model)
    r = x.norm(dim=1)
    masks = {
        "inner": r <= r1,
        "gap": (r > r1) & (r < r2),
        "annulus": (r >= r2) & (r <= r3),
    }
    out = {"x": x, "g": g, **masks}
    for name, m in masks.items():
        out[f"n_{name}"] = int(m.sum())
        out[f"negative_{name}"] = int((m & (g < 0)).sum())
    out["wrong_inner"] = out["n_inner"] - out["negative_inner"]
    out["wrong_annulus"] = out["negative_annulus"]

    def frac(a, b):
        return a / b if b else math.nan

    out["frac_wrong_inner"] = frac(out["wrong_inner"], out["n_inner"])
    out["frac_wrong_annulus"] = frac(out["wrong_annulus"], out["n_annulus"])
    out["frac_negative_gap"] = frac(out["negative_gap"], out["n_gap"])
    return out


__all__ = [
    "SOLVER",
    "flow",
    "invert",
    "inversion_error",
    "LiouvilleField",
    "liouville_logdet",
    "autograd_jacobian",
    "autograd_jacobian_det",
    "RotationField",
    "order_changes",
    "vector_field_on_grid",
    "disk_grid",
    "gap_analysis",
]

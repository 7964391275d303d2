"""backend='lean' (anode_utils.dopri5) against torchdiffeq: same steps, same NFE, same solutions.

The lean dopri5 follows torchdiffeq's algorithm step for step, so on fixed inputs it must take
the same accepted and rejected steps: the first with a bit-identical step size (same initial
step selection), the next ones with step sizes equal up to rounding. States differ only by the
order of floating-point summation (~1e-7 relative); the error estimate is a sum that cancels
to far below the stages it sums, so its rounding, and with it the next step size, can differ
by up to ~1e-4 relative (more next to a jump in the field). Gradients differ by one documented
term: torchdiffeq also differentiates through its initial step-size heuristic, the lean solver
holds step sizes constant.
"""

import contextlib
import math

import numpy as np
import pytest
import torch
import torchdiffeq._impl.rk_common as rk_common
from torchdiffeq._impl.misc import _rms_norm, _select_initial_step

import anode_utils as au
from anode_utils import conv, dopri5
from anode_utils.training import train


class StepLog:
    """Record (kind, t0, dt) of every step callback of a field."""

    def __init__(self, field):
        self.field, self.steps = field, []

    def _make(self, kind):
        return lambda t0, y0, dt: self.steps.append(
            (kind, float(t0), float(dt))
        )

    def __enter__(self):
        self.field.callback_accept_step = self._make("accept")
        self.field.callback_reject_step = self._make("reject")
        return self

    def __exit__(self, *exc):
        del self.field.callback_accept_step
        del self.field.callback_reject_step


def assert_same_steps(steps, ref, rel=1e-3):
    """Same accepted/rejected sequence; the first step size equal to two float32 ulps (or to
    ``rel`` if smaller), the others and the step start times equal to ``rel`` (the controller
    sees error ratios equal up to rounding). The first step is bit-identical wherever torch's
    square root is correctly rounded; MKL's vector math, which torch may use for it, is not
    always (e.g. under MKL_CBWR=COMPATIBLE), and test_initial_step_is_torchdiffeqs checks the
    algorithm itself bit for bit."""
    assert [kind for kind, _, _ in steps] == [kind for kind, _, _ in ref]
    assert steps[0][:2] == ref[0][:2]
    assert abs(steps[0][2] - ref[0][2]) <= min(rel, 2.5e-7) * ref[0][2]
    for (_, t0, dt), (_, t0_ref, dt_ref) in zip(steps, ref):
        assert abs(dt - dt_ref) <= rel * abs(dt_ref) and abs(
            t0 - t0_ref
        ) <= rel * abs(dt_ref)


def _solve(block, backend, h0, times):
    """Solution, NFE and step log of one solve of ``block`` with ``backend``."""
    block.backend = backend
    block.field.nfe = 0
    with StepLog(block.field) as log:
        out = block.solve(h0, times)
    return out, block.field.nfe, log.steps


@contextlib.contextmanager
def constant_first_step():
    """torchdiffeq with its initial step size detached from autograd, as the lean solver has it."""
    original = rk_common._select_initial_step
    rk_common._select_initial_step = lambda *a, **k: original(*a, **k).detach()
    try:
        yield
    finally:
        rk_common._select_initial_step = original


def _toy(model_name, augment_dim, seed=0, **solver):
    cfg = au.make_config(model=model_name, augment_dim=augment_dim, seed=seed)
    (x, y), _ = au.make_data(cfg)
    model = au.make_model(cfg)
    for k, v in solver.items():
        setattr(model.odeblock, k, v)
    return model, x, y


def _image(time_dependent, seed=0):
    torch.manual_seed(seed)
    model = conv.ConvODENet(
        (1, 8, 8),
        num_filters=6,
        augment_dim=2,
        output_dim=3,
        time_dependent=time_dependent,
    )
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    return model, x, torch.tensor([0, 1, 2, 0, 1])


class JumpField(au.CountingField):
    """A linear field plus a forcing that jumps at t = 0.5: dopri5 rejects steps there."""

    def __init__(self, dim=2):
        super().__init__()
        self.dim = dim
        self.lin = torch.nn.Linear(dim, dim)

    def forward(self, t, h):
        self.nfe += 1
        return self.lin(h) + 3 * torch.tanh((t - 0.5) / 0.01)


def _jump():
    torch.manual_seed(0)
    model = au.ODENet(2, augment_dim=0)
    model.odeblock.field = JumpField()
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    return model, x, torch.ones(16, 1)


#: Agreement of states, relative to 1 + max |y|. Rounding-level for smooth fields; next to a
#: jump the solution depends on where the steps land, and step sizes agree to ~1e-4 only,
#: so there the states agree to the solver's tolerance (rtol = atol = 1e-3).
STATE_TOL = {"jump": 1e-3}


def _close(out, ref, case):
    return (out - ref).abs().max().item() < STATE_TOL.get(case, 1e-5) * (
        1 + ref.abs().max().item()
    )


CASES = {
    "node": lambda: _toy("node", 0),
    "anode": lambda: _toy("anode", 1),
    "node_seed3_tight": lambda: _toy("node", 0, seed=3, rtol=1e-6, atol=1e-6),
    "jump": _jump,
    "image_anode": lambda: _image(time_dependent=False),
    "image_anode_t": lambda: _image(time_dependent=True),
}


def _state(model, x):
    """The block and its augmented initial state for a toy or image model."""
    blk = model.odeblock
    if isinstance(blk, conv.ConvODEBlock):
        return blk, conv.augment_channels(x, blk.augment_dim)
    return blk, au.augment(x[:64], blk.augment_dim)


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_steps_nfe_and_solution(case):
    model, x, _ = CASES[case]()
    blk, h0 = _state(model, x)
    times = torch.tensor([0.0, blk.T])
    with torch.no_grad():
        ref, nfe_ref, steps_ref = _solve(blk, "torchdiffeq", h0, times)
        out, nfe, steps = _solve(blk, "lean", h0, times)
    assert_same_steps(steps, steps_ref)
    assert nfe == nfe_ref
    assert out.shape == ref.shape
    assert _close(out, ref, case)


@pytest.mark.parametrize("time_dependent", [False, True], ids=["no_t", "t"])
def test_channels_last_image_solves_take_the_same_steps(time_dependent):
    """Chapter 7 runs the lean solver on channels-last images and weights: the convolutions then
    take other kernels (other rounding), but the solve must take torchdiffeq's steps on the
    default layout and reach its solution to rounding."""
    model, x, _ = _image(time_dependent)
    blk, h0 = _state(model, x)
    times = torch.tensor([0.0, blk.T])
    with torch.no_grad():
        ref, nfe_ref, steps_ref = _solve(blk, "torchdiffeq", h0, times)
        model.to(memory_format=torch.channels_last)
        assert blk.field.conv2.weight.is_contiguous(
            memory_format=torch.channels_last
        )
        out, nfe, steps = _solve(
            blk,
            "lean",
            h0.contiguous(memory_format=torch.channels_last),
            times,
        )
    assert_same_steps(steps, steps_ref)
    assert nfe == nfe_ref
    assert _close(out, ref, "image")


def test_jump_case_rejects_steps():
    """The jump case exercises the controller's reject branch."""
    model, x, _ = _jump()
    blk, h0 = _state(model, x)
    with torch.no_grad():
        _, _, steps = _solve(blk, "lean", h0, torch.tensor([0.0, 1.0]))
    assert sum(kind == "reject" for kind, _, _ in steps) >= 5


@pytest.mark.parametrize(
    "times",
    [[0.0, 0.25, 0.5, 1.0], [1.0, 0.6, 0.0], [0.5, -0.5]],
    ids=["forward", "backward", "through_zero"],
)
@pytest.mark.parametrize("case", ["node", "anode", "jump", "image_anode_t"])
def test_trajectories_match(case, times):
    model, x, _ = CASES[case]()
    blk, h0 = _state(model, x)
    t = torch.tensor(times)
    with torch.no_grad():
        ref, nfe_ref, steps_ref = _solve(blk, "torchdiffeq", h0, t)
        out, nfe, steps = _solve(blk, "lean", h0, t)
    assert_same_steps(steps, steps_ref)
    assert nfe == nfe_ref
    assert out.shape == (len(times),) + tuple(h0.shape)
    assert torch.equal(out[0], h0)
    assert _close(out, ref, case)


@pytest.mark.parametrize("case", ["node", "anode", "jump", "image_anode_t"])
def test_gradients_match(case):
    model, x, y = CASES[case]()
    if isinstance(model.odeblock, conv.ConvODEBlock):
        loss_fn, xb, yb = torch.nn.CrossEntropyLoss(), x, y
    else:
        loss_fn, xb, yb = torch.nn.MSELoss(), x[:64], y[:64]

    def grad(backend):
        model.odeblock.backend = backend
        model.zero_grad(set_to_none=True)
        loss_fn(model(xb), yb).backward()
        return torch.cat([p.grad.reshape(-1) for p in model.parameters()])

    lean = grad("lean")
    with constant_first_step():
        fixed = grad("torchdiffeq")
    plain = grad("torchdiffeq")
    # the same gradient as torchdiffeq's at constant step sizes, up to rounding (and to the
    # rounding-sized differences of step sizes, larger around the jump) ...
    assert ((lean - fixed).norm() / fixed.norm()).item() < (
        1e-3 if case == "jump" else 1e-5
    )
    # ... and close to torchdiffeq's own, which also differentiates its first step size (next
    # to the jump that term is large: the solution depends on where the first step ends)
    assert ((lean - plain).norm() / plain.norm()).item() < (
        1e-1 if case == "jump" else 1e-2
    )


def test_initial_step_is_torchdiffeqs():
    """torchdiffeq's _select_initial_step, float32 and float64: bit for bit when its norm takes
    the correctly rounded square root, and within two ulps with its own norm, whose float32 sqrt
    MKL's vector math may round otherwise (it does under MKL_CBWR=COMPATIBLE)."""
    torch.manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        field = au.MLPField(3).to(dtype)
        T = dopri5._tableau(dtype).np

        def exact_rms(
            x,
        ):  # torchdiffeq's _rms_norm with a correctly rounded square root
            return torch.tensor(
                T(math.sqrt(x.abs().pow(2).mean().item())), dtype=dtype
            )

        for scale in (1e-7, 1e-3, 1.0, 30.0):
            y0 = scale * torch.randn(16, 3, dtype=dtype)
            with torch.no_grad():
                f0 = field(torch.tensor(0.0, dtype=dtype), y0)
                t0 = torch.tensor(0.25, dtype=torch.float64)
                tol = torch.tensor(1e-3, dtype=torch.float64)
                refs = [
                    _select_initial_step(
                        lambda t, y: field(t.to(dtype), y),
                        t0,
                        y0,
                        4,
                        tol,
                        tol,
                        norm,
                        f0=f0,
                    ).item()
                    for norm in (exact_rms, _rms_norm)
                ]
                ours = dopri5._initial_step(
                    lambda s, y: field(
                        torch.tensor(float(T(s)), dtype=dtype), y
                    ),
                    0.25,
                    y0,
                    f0,
                    y0.abs(),
                    1e-3,
                    1e-3,
                    T,
                )
            assert ours == refs[0], (dtype, scale)
            assert (
                abs(ours - refs[1]) <= 2 * float(np.finfo(T).eps) * refs[1]
            ), (dtype, scale)


def test_max_num_steps_raises_solver_error():
    model, x, _ = _toy("node", 0, max_num_steps=1, backend="lean")
    with pytest.raises(au.SolverError, match="max_num_steps"):
        model(x[:64])
    model.odeblock.backend = "torchdiffeq"
    with pytest.raises(au.SolverError, match="max_num_steps"):
        model(x[:64])


_STIFF_UNDER_O = """
import torch, anode_utils as au
class Stiff(torch.nn.Module):
    def forward(self, t, h):
        return -1e6 * h
blk = au.ODEBlock(Stiff(), 2, rtol=1e-12, atol=1e-12, backend={backend!r}, max_num_steps=200)
try:
    blk(torch.ones(4, 2, dtype=torch.float64))
except au.SolverError as err:
    print("SolverError:", err)
"""


@pytest.mark.parametrize("backend", ["torchdiffeq", "lean"])
def test_stiff_solve_under_python_O_raises_solver_error(backend):
    """torchdiffeq bounds its steps with assert statements, which python -O removes: the
    package counts evaluations itself, so a stiff solve still stops, with a SolverError."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-O", "-c", _STIFF_UNDER_O.format(backend=backend)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "SolverError: dopri5 gave up (max_num_steps exceeded"
    ), done.stdout


def test_non_finite_state_raises_solver_error():
    """A NaN state makes the step size NaN: the lean backend gives up with an underflow, named
    as a non-finite state (NaN inputs are refused before any solve, so solve directly)."""
    model, x, _ = _toy("node", 0, backend="lean")
    h0 = x[:8].clone()
    h0[0, 0] = float("nan")
    with pytest.raises(au.SolverError, match="underflow.*non-finite"):
        model.odeblock.solve(h0, torch.tensor([0.0, 1.0]))


def test_callbacks_and_cost_counter_work():
    from anode_utils.cost import training_step_cost

    model, x, y = _toy("anode", 1)
    counts = {}
    for backend in ("torchdiffeq", "lean"):
        model.odeblock.backend = backend
        c = training_step_cost(model, x[:64], y[:64])
        counts[backend] = (c["nfe_forward"], c["steps"])
    assert counts["lean"] == counts["torchdiffeq"]


def test_backend_validation():
    field = au.MLPField(2)
    with pytest.raises(ValueError, match="backend"):
        au.ODEBlock(field, 2, backend="fast")
    for settings in ({"method": "rk4", "step_size": 0.1}, {"adjoint": True}):
        blk = au.ODEBlock(field, 2, backend="lean", **settings)
        with pytest.raises(ValueError, match="backend='torchdiffeq'"):
            blk(torch.zeros(3, 2))
    net = au.ODENet(2, backend="lean")
    assert net.odeblock.backend == "lean" and "backend='lean'" in repr(net)
    assert (
        conv.preset("mnist", "anode", backend="lean").odeblock.backend
        == "lean"
    )
    assert (
        au.make_model(au.make_config(backend="lean")).odeblock.backend
        == "lean"
    )


def test_float64_and_batch_of_one():
    torch.manual_seed(1)
    field = au.MLPField(2).double()
    blk = au.ODEBlock(field, 2)
    h0 = torch.randn(1, 2, dtype=torch.float64)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    with torch.no_grad():
        ref, nfe_ref, steps_ref = _solve(blk, "torchdiffeq", h0, t)
        out, nfe, steps = _solve(blk, "lean", h0, t)
    assert_same_steps(steps, steps_ref, rel=1e-12)
    assert nfe == nfe_ref
    assert (out - ref).abs().max().item() < 1e-12


@pytest.mark.parametrize("model_name,augment_dim", [("node", 0), ("anode", 1)])
def test_training_nfe_histories_agree(model_name, augment_dim):
    """Two epochs of the toy configuration (64 iterations), lean vs torchdiffeq.

    The weights drift apart by rounding and by torchdiffeq's first-step-size gradient (~1e-4
    relative a step), so a step count could in principle change where a solve ends within
    rounding of another step boundary. Stated spread: at most 2 iterations with a different
    forward NFE and mean NFE equal to 0.1 (seeds differ by several NFE); losses equal to
    1e-2 (seeds differ by ~0.1). Observed on torch 2.14, one thread: identical NFE at every
    iteration and losses equal to 5e-4."""
    histories = {}
    for backend in ("torchdiffeq", "lean"):
        cfg = au.make_config(
            model=model_name,
            augment_dim=augment_dim,
            epochs=2,
            backend=backend,
        )
        (x, y), _ = au.make_data(cfg)
        model = au.make_model(cfg)
        histories[backend] = train(
            model,
            x,
            y,
            epochs=2,
            batch_size=cfg["batch_size"],
            lr=cfg["lr"],
            seed=cfg["seed"],
        )
    ref, lean = histories["torchdiffeq"], histories["lean"]
    assert ref.error is None and lean.error is None
    assert len(lean.nfe_forward) == len(ref.nfe_forward) == 64
    assert sum(a != b for a, b in zip(lean.nfe_forward, ref.nfe_forward)) <= 2
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    assert abs(mean(lean.nfe_forward) - mean(ref.nfe_forward)) <= 0.1
    assert lean.nfe_backward == ref.nfe_backward  # 0: no adjoint
    assert max(abs(a - b) for a, b in zip(lean.loss, ref.loss)) < 1e-2


def test_lean_dopri5_on_its_own():
    """odeint_dopri5 used directly: any tensor shape, plain function fields, exact linear ODE."""
    a = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    y0 = torch.tensor([[1.0, 0.0]])
    t = torch.linspace(0, 3, 7)
    out = dopri5.odeint_dopri5(lambda t, y: y @ a, y0, t, rtol=1e-6, atol=1e-8)
    exact = torch.stack([torch.cos(t), torch.sin(t)], dim=1)[:, None, :]
    assert (out - exact).abs().max().item() < 1e-4
    with pytest.raises(ValueError, match="strictly"):
        dopri5.odeint_dopri5(
            lambda t, y: y, y0, torch.tensor([0.0, 1.0, 0.5]), 1e-3, 1e-3
        )
    with pytest.raises(ValueError, match="float32 or float64"):
        dopri5.odeint_dopri5(
            lambda t, y: y, y0.half(), torch.tensor([0.0, 1.0]), 1e-3, 1e-3
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lean_end_state_path_is_the_solve_at_the_rounded_end_time(dtype):
    """forward() without times asks the backend for the end state only (no stack); it must
    give the state solve() gives at the end time as a tensor of x's dtype holds it, bit for
    bit, with the same gradients."""
    torch.manual_seed(0)
    blk = au.ODEBlock(au.MLPField(3).to(dtype), 2, 1, T=0.3, backend="lean")
    x = torch.randn(16, 2, dtype=dtype)
    fast = blk(x)
    (g_fast,) = torch.autograd.grad(
        fast.square().sum(), list(blk.parameters())[:1]
    )
    slow = blk.solve(
        au.ode.augment(x, 1), torch.tensor([0.0, 0.3], dtype=dtype)
    )[-1]
    (g_slow,) = torch.autograd.grad(
        slow.square().sum(), list(blk.parameters())[:1]
    )
    assert torch.equal(fast, slow) and torch.equal(g_fast, g_slow)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_lean_forward_refuses_non_finite_inputs_as_a_data_error(bad):
    model, x, _ = _toy("anode", 1, backend="lean")
    xb = x[:8].clone()
    xb[3, 1] = bad
    with pytest.raises(ValueError, match=r"x holds 1 non-finite value"):
        model(xb)

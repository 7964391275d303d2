"""Bad input gets a clear, early error: configs, data, non-finite losses and solver failures."""

import math

import pytest
import torch

import anode_utils as au
from anode_utils.experiments import DEFAULTS, FIELD_CHECKS

TINY = dict(num_inner=20, num_outer=40, epochs=1, batch_size=30)


# ----------------------------------------------------------------------------- configs


def test_every_config_field_is_checked():
    assert set(FIELD_CHECKS) == set(DEFAULTS)


@pytest.mark.parametrize("field", ["time_dependent", "adjoint", "readout"])
@pytest.mark.parametrize("value", ["false", "true", 0, 1, None])
def test_booleans_are_strict(field, value):
    with pytest.raises(ValueError, match=f"{field} must be true or false"):
        au.make_config(**{field: value})


def test_string_booleans_no_longer_train_the_wrong_model():
    with pytest.raises(
        ValueError, match=r"time_dependent must be true or false .*a string"
    ):
        au.run_toy(dict(TINY, time_dependent="false"))


@pytest.mark.parametrize(
    "bad, match",
    [
        (
            dict(hidden_dim="4"),
            r"hidden_dim must be a positive integer.*'4' \(a string",
        ),
        (dict(hidden_dim=0), "hidden_dim must be a positive integer"),
        (dict(lr="0.001"), r"lr must be a positive finite number.*a string"),
        (dict(lr=math.inf), "lr must be a positive finite number"),
        (dict(rtol=-1e-3), "rtol must be a positive finite number"),
        (dict(epochs=1.5), r"epochs must be a non-negative integer.*1\.5"),
        (dict(epochs=True), "epochs must be a non-negative integer"),
        (dict(batch_size=0), "batch_size must be a positive integer"),
        (
            dict(method="dopri6"),
            "method must be one of the torchdiffeq solvers.*'dopri6'",
        ),
        (dict(T=-1), "T must be a positive finite number; got -1"),
        (dict(T=math.nan), "T must be a positive finite number"),
        (
            dict(model="resnet", augment_dim="1"),
            "augment_dim must be a non-negative integer",
        ),
        (
            dict(model="resnet", augment_dim=1.0),
            "augment_dim must be a non-negative integer",
        ),
        (
            dict(model="anode", augment_dim=-1),
            "augment_dim must be a non-negative integer",
        ),
        (dict(num_layers=2.5), "num_layers must be a positive integer"),
        (dict(max_num_steps=0), "max_num_steps must be a positive integer"),
        (dict(step_size=0), "step_size must be a positive finite number"),
        (dict(step_size="0.1"), "step_size must be a positive finite number"),
        (dict(weight_decay=-1.0), "weight_decay must be a finite number >= 0"),
        (dict(kinetic="0.1"), "kinetic must be a finite number >= 0"),
        (dict(loss="cross_entropy"), "loss must be one of 'mse', 'huber'"),
        (dict(seed=-1), "seed must be a non-negative integer"),
        (dict(data_seed="0"), "data_seed must be a non-negative integer"),
        (dict(dim=2.0), "dim must be a positive integer"),
        (dict(num_inner=0), "num_inner must be a positive integer"),
        (dict(r1="0.5"), "r1 must be a positive finite number"),
        (dict(r1=1.2), "radii must satisfy r1 < r2 < r3"),
        (dict(task=3), "task must be one of"),
        (dict(end_time_jitter=1.0), "end_time_jitter must be smaller than T"),
    ],
)
def test_bad_field_values_name_the_field(bad, match):
    with pytest.raises(ValueError, match=match):
        au.make_config(**bad)


@pytest.mark.parametrize(
    "val_slice, match",
    [
        ("0,1", r"val_slice must be a pair \[start, stop\]"),
        ([0.0], r"val_slice must be a pair \[start, stop\]"),
        ([0.0, 1.0, 2.0], r"val_slice must be a pair \[start, stop\]"),
        ([1.0, 0.5], "val_slice must have start < stop"),
        ([0.0, "1"], r"val_slice\[1\] must be a finite number"),
        ([0.0, math.inf], r"val_slice\[1\] must be a finite number"),
        ([4.0, 5.0], "selects no points"),
    ],
)
def test_bad_val_slice(val_slice, match):
    with pytest.raises(ValueError, match=match):
        au.make_config(val_slice=val_slice)


def test_val_slice_needs_two_dimensional_data():
    with pytest.raises(
        ValueError, match="val_slice holds out an angular slice"
    ):
        au.make_config(task="g1d", val_slice=[0.0, 1.0])
    with pytest.raises(
        ValueError, match="val_slice holds out an angular slice"
    ):
        au.make_config(dim=1, val_slice=[0.0, 1.0])


def test_ordinary_values_still_pass():
    cfg = au.make_config(
        T=1,
        rtol=1e-3,
        lr=1,
        val_slice=[0, math.pi / 5],
        step_size=None,
        model="anode",
        augment_dim=1,
    )
    assert cfg["T"] == 1 and cfg["val_slice"] == [0, math.pi / 5]
    assert au.make_config(method="euler", step_size=0.5)["step_size"] == 0.5
    assert au.make_config(task="g1d", model="node", readout=False)["dim"] == 1


def test_val_slice_that_selects_no_points_is_named_before_training():
    # inside [-pi, pi], but the annulus has no point at angles in this hair-thin slice
    with pytest.raises(
        ValueError, match=r"val_slice \[0.0, 1e-09\] selects no points"
    ):
        au.run_toy(dict(TINY, val_slice=[0.0, 1e-9]))
    with pytest.raises(
        ValueError, match="val_slice .* leaves no training points"
    ):
        au.run_toy(dict(TINY, val_slice=[-math.pi, math.pi]))


def test_run_toy_refuses_outputs_that_do_not_match_the_targets():
    with pytest.raises(
        ValueError, match="readout=False makes the model output its 2 features"
    ):
        au.run_toy(dict(TINY, readout=False))


# ----------------------------------------------------------------------------- data


def _data(n=8):
    x, y = au.concentric_spheres(2, n // 2, n // 2)
    return x, y


@pytest.mark.parametrize(
    "model_fn",
    [
        lambda: au.ODENet(2),
        lambda: au.ODENet(2, method="euler"),
        lambda: au.ResNet(2, num_layers=2),
    ],
    ids=["dopri5", "euler", "resnet"],
)
@pytest.mark.parametrize("which", ["x", "y"])
def test_train_rejects_non_finite_data(model_fn, which):
    x, y = _data()
    data = {"x": x.clone(), "y": y.clone()}
    data[which][3, 0] = math.nan
    with pytest.raises(ValueError, match=f"^{which} holds 1 non-finite value"):
        au.train(model_fn(), data["x"], data["y"], epochs=1)
    data[which][3, 0] = math.inf
    with pytest.raises(ValueError, match=f"^{which} holds 1 non-finite value"):
        au.evaluate(model_fn(), data["x"], data["y"])


def test_train_and_evaluate_reject_empty_data():
    model = au.ODENet(2)
    x, y = torch.zeros(0, 2), torch.zeros(0, 1)
    with pytest.raises(ValueError, match=r"^x is empty \(shape \(0, 2\)\)"):
        au.train(model, x, y, epochs=1)
    with pytest.raises(ValueError, match=r"^x is empty"):
        au.evaluate(model, x, y)


def test_train_rejects_a_bad_validation_set():
    model = au.ODENet(2)
    x, y = _data()
    with pytest.raises(ValueError, match=r"val\[0\] \(x_val\) is empty"):
        au.train(model, x, y, epochs=1, val=(x[:0], y[:0]))
    with pytest.raises(
        ValueError, match=r"val\[1\] \(y_val\) holds 1 non-finite"
    ):
        au.train(
            model,
            x,
            y,
            epochs=1,
            val=(x[:2], torch.tensor([[1.0], [math.nan]])),
        )
    with pytest.raises(ValueError, match="val must be a pair"):
        au.train(model, x, y, epochs=1, val=x)


def test_dtype_other_than_the_parameters_is_named():
    model = au.ODENet(2)
    x, y = _data()
    with pytest.raises(
        ValueError,
        match=r"^x has dtype torch.float64 but the model's parameters are "
        r"torch.float32",
    ):
        au.train(model, x.double(), y, epochs=1)
    with pytest.raises(ValueError, match=r"^y has dtype torch.float64"):
        au.evaluate(model, x, y.double())
    with pytest.raises(ValueError, match="cross_entropy needs torch.long"):
        au.train(
            au.ODENet(2, output_dim=2),
            x,
            (y[:, 0] > 0).int(),
            loss="cross_entropy",
            epochs=1,
        )


def test_outputs_and_targets_of_other_shapes_are_refused():
    x, y = _data()
    with pytest.raises(
        ValueError, match=r"output has shape \(8, 1\) but y has shape \(8,\)"
    ):
        au.train(au.ODENet(2), x, y[:, 0], epochs=1)


@pytest.mark.parametrize(
    "model",
    [
        au.ODENet(2),
        au.ResNet(2, num_layers=2),
        au.variants.LearnedAugmentODENet(2),
        au.regularizers.RegularizedODENet(au.ODENet(2), kinetic=0.1),
    ],
    ids=["odenet", "resnet", "learned", "regularized"],
)
def test_forward_checks_its_input(model):
    with pytest.raises(ValueError, match="^x is empty"):
        model(torch.zeros(0, 2))
    with pytest.raises(ValueError, match="^x holds 1 non-finite value"):
        model(torch.tensor([[0.0, math.nan]]))
    with pytest.raises(ValueError, match="^x has dtype torch.float64"):
        model(torch.zeros(1, 2, dtype=torch.float64))


def test_odeblock_forward_checks_its_input():
    block = au.ODEBlock(au.MLPField(2), 2)
    with pytest.raises(ValueError, match="^x is empty"):
        block(torch.zeros(0, 2))
    with pytest.raises(ValueError, match="^x holds 2 non-finite value"):
        block(torch.full((1, 2), math.inf))


# ----------------------------------------------------------------------------- non-finite loss


def _poison(model, value=math.nan):
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model


@pytest.mark.parametrize(
    "model_fn",
    [
        lambda: au.ODENet(2, method="euler"),
        lambda: au.ODENet(2, method="rk4", step_size=0.5),
        lambda: au.ResNet(2, num_layers=2),
    ],
    ids=["euler", "rk4", "resnet"],
)
def test_non_finite_loss_stops_training_with_a_recorded_error(model_fn):
    model = _poison(model_fn())
    x, y = _data()
    with pytest.warns(
        RuntimeWarning,
        match="training stopped after 0 iterations: the loss became "
        "non-finite",
    ):
        h = au.train(model, x, y, epochs=2, batch_size=4)
    assert len(h) == 0 and "non-finite (nan) at iteration 1" in h.error


def test_loss_that_overflows_mid_training_stops_the_run():
    model = au.ResNet(2, num_layers=2)
    x, y = _data()

    def blow_up(m, history):  # after the second step the parameters overflow
        if len(history) == 2:
            _poison(m, math.inf)

    with pytest.warns(RuntimeWarning, match="the loss became non-finite"):
        h = au.train(model, x, y, epochs=3, batch_size=2, callback=blow_up)
    assert len(h) == 2 and "at iteration 3" in h.error and h.epoch_end == []


def test_run_toy_records_a_non_finite_loss(monkeypatch):
    from anode_utils import experiments

    real = experiments.make_model
    monkeypatch.setattr(
        experiments, "make_model", lambda cfg: _poison(real(cfg))
    )
    with pytest.warns(RuntimeWarning, match="non-finite"):
        r = au.run_toy(dict(TINY, model="resnet"))
    assert "non-finite" in r["history"]["error"] and r["final"] == {}


# ----------------------------------------------------------------------------- solver failures


def test_solver_failure_on_a_finite_state_keeps_the_stiffness_advice():
    model = au.ODENet(1, max_num_steps=2, rtol=1e-9, atol=1e-9)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(30)
    with pytest.raises(au.SolverError, match="too stiff for rtol=1e-09"):
        model(torch.ones(4, 1))


def test_solver_failure_on_non_finite_parameters_says_so():
    model = _poison(au.ODENet(2))
    with pytest.raises(
        au.SolverError, match=r"parameters are non-finite \(NaN/inf\)"
    ) as err:
        model(torch.ones(3, 2))
    assert "stiff" not in str(err.value)
    x, y = _data()
    with pytest.warns(RuntimeWarning, match="non-finite"):
        h = au.train(model, x, y, epochs=1)
    assert "non-finite" in h.error


def test_solver_failure_on_a_non_finite_initial_state_says_so():
    block = au.ODEBlock(au.MLPField(2), 2)
    with pytest.raises(
        au.SolverError,
        match=r"initial state holds non-finite values \(NaN/inf\)",
    ):
        block.solve(torch.tensor([[math.nan, 0.0]]), torch.tensor([0.0, 1.0]))


class _Overflow(au.CountingField):
    """dh/dt = h, but the derivative overflows to inf once h > 2 (at t = ln 2)."""

    dim = 1

    def forward(self, t, h):
        self.nfe += 1
        return torch.where(h > 2, torch.full_like(h, math.inf), h)


def test_solver_failure_when_the_state_becomes_non_finite_says_so():
    block = au.ODEBlock(_Overflow(), 1, T=2.0)
    with pytest.raises(
        au.SolverError,
        match=r"state became non-finite \(NaN/inf\) during the solve",
    ) as err:
        block(torch.ones(1, 1))
    assert "stiff" not in str(err.value)


def _stiff_adjoint_model():
    """Forward at rtol = atol = 1e-3 takes a few steps; the adjoint solve at 1e-12 needs more
    than the 10 steps allowed, so only the backward pass gives up."""
    torch.manual_seed(0)
    return au.ODENet(
        2,
        adjoint=True,
        adjoint_rtol=1e-12,
        adjoint_atol=1e-12,
        max_num_steps=10,
    )


def test_an_adjoint_solve_that_gives_up_in_backward_is_a_solver_error():
    model = _stiff_adjoint_model()
    loss = model(torch.ones(4, 2)).sum()  # the forward solve succeeds
    with pytest.raises(
        au.SolverError,
        match=r"backward \(adjoint\) solve gave up .*max_num_steps",
    ):
        with au.ode.backward_guard():
            loss.backward()
    with pytest.raises(
        ZeroDivisionError
    ):  # anything else passes through unchanged
        with au.ode.backward_guard():
            1 / 0


_STIFF_ADJOINT_UNDER_O = """
import torch, anode_utils as au
torch.manual_seed(0)
model = au.ODENet(2, adjoint=True, adjoint_rtol=1e-12, adjoint_atol=1e-12, max_num_steps=10)
loss = model(torch.ones(4, 2)).sum()
assert model.odeblock.field.__dict__.get("callback_step_adjoint") is None  # not left on the field
try:
    loss.backward()
except au.SolverError as err:
    print("SolverError:", err)
"""


def test_adjoint_backward_give_up_under_python_O_is_a_solver_error():
    """torchdiffeq bounds the adjoint's backward solve with an assert, which python -O removes:
    the package counts its steps (callback_step_adjoint), so it still stops, as a SolverError
    (raised by loss.backward() itself, no backward_guard needed)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-O", "-c", _STIFF_ADJOINT_UNDER_O],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "SolverError: the backward (adjoint) solve gave up "
        "(max_num_steps exceeded: 11 steps"
    ), done.stdout


def test_training_records_a_backward_give_up_and_stops():
    x, y = _data()
    with pytest.warns(
        RuntimeWarning,
        match=r"training stopped after 0 iterations: the backward",
    ):
        h = au.train(_stiff_adjoint_model(), x, y, epochs=1, batch_size=4)
    assert len(h) == 0 and "adjoint_rtol/adjoint_atol" in h.error


def test_parameters_that_overflow_at_the_last_step_are_caught():
    model = au.ResNet(2, num_layers=2)
    x, y = _data()

    def blow_up(
        m, history
    ):  # the last step of the only epoch leaves infinite weights
        if len(history) == 2:
            _poison(m, math.inf)

    with pytest.warns(
        RuntimeWarning,
        match=r"parameters became non-finite \(NaN/inf\) after iteration 2",
    ):
        h = au.train(model, x, y, epochs=1, batch_size=4, callback=blow_up)
    assert len(h) == 2 and "non-finite" in h.error

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
    with pytest.raises(ValueError, match=r"time_dependent must be true or false .*a string"):
        au.run_toy(dict(TINY, time_dependent="false"))


@pytest.mark.parametrize("bad, match", [
    (dict(hidden_dim="4"), r"hidden_dim must be a positive integer.*'4' \(a string"),
    (dict(hidden_dim=0), "hidden_dim must be a positive integer"),
    (dict(lr="0.001"), r"lr must be a positive finite number.*a string"),
    (dict(lr=math.inf), "lr must be a positive finite number"),
    (dict(rtol=-1e-3), "rtol must be a positive finite number"),
    (dict(epochs=1.5), r"epochs must be a non-negative integer.*1\.5"),
    (dict(epochs=True), "epochs must be a non-negative integer"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(method="dopri6"), "method must be one of the torchdiffeq solvers.*'dopri6'"),
    (dict(T=-1), "T must be a positive finite number; got -1"),
    (dict(T=math.nan), "T must be a positive finite number"),
    (dict(model="resnet", augment_dim="1"), "augment_dim must be a non-negative integer"),
    (dict(model="resnet", augment_dim=1.0), "augment_dim must be a non-negative integer"),
    (dict(model="anode", augment_dim=-1), "augment_dim must be a non-negative integer"),
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
])
def test_bad_field_values_name_the_field(bad, match):
    with pytest.raises(ValueError, match=match):
        au.make_config(**bad)


@pytest.mark.parametrize("val_slice, match", [
    ("0,1", r"val_slice must be a pair \[start, stop\]"),
    ([0.0], r"val_slice must be a pair \[start, stop\]"),
    ([0.0, 1.0, 2.0], r"val_slice must be a pair \[start, stop\]"),
    ([1.0, 0.5], "val_slice must have start < stop"),
    ([0.0, "1"], r"val_slice\[1\] must be a finite number"),
    ([0.0, math.inf], r"val_slice\[1\] must be a finite number"),
    ([4.0, 5.0], "selects no points"),
])
def test_bad_val_slice(val_slice, match):
    with pytest.raises(ValueError, match=match):
        au.make_config(val_slice=val_slice)


def test_val_slice_needs_two_dimensional_data():
    with pytest.raises(ValueError, match="val_slice holds out an angular slice"):
        au.make_config(task="g1d", val_slice=[0.0, 1.0])
    with pytest.raises(ValueError, match="val_slice holds out an angular slice"):
        au.make_config(dim=1, val_slice=[0.0, 1.0])


def test_ordinary_values_still_pass():
    cfg = au.make_config(T=1, rtol=1e-3, lr=1, val_slice=[0, math.pi / 5], step_size=None,
                         model="anode", augment_dim=1)
    assert cfg["T"] == 1 and cfg["val_slice"] == [0, math.pi / 5]
    assert au.make_config(method="euler", step_size=0.5)["step_size"] == 0.5
    assert au.make_config(task="g1d", model="node", readout=False)["dim"] == 1


def test_val_slice_that_selects_no_points_is_named_before_training():
    # inside [-pi, pi], but the annulus has no point at angles in this hair-thin slice
    with pytest.raises(ValueError, match=r"val_slice \[0.0, 1e-09\] selects no points"):
        au.run_toy(dict(TINY, val_slice=[0.0, 1e-9]))
    with pytest.raises(ValueError, match="val_slice .* leaves no training points"):
        au.run_toy(dict(TINY, val_slice=[-math.pi, math.pi]))


def test_run_toy_refuses_outputs_that_do_not_match_the_targets():
    with pytest.raises(ValueError, match="readout=False makes the model output its 2 features"):
        au.run_toy(dict(TINY, readout=False))

import math

import pytest
import torch

import anode_utils as au


@pytest.mark.parametrize("dim", [1, 2, 3, 10])
def test_concentric_spheres_geometry(dim):
    x, y = au.concentric_spheres(dim, 300, 500, 0.5, 1.0, 1.5, seed=3)
    assert x.shape == (800, dim) and y.shape == (800, 1)
    r = x.norm(dim=1)
    inner, outer = y[:, 0] == -1, y[:, 0] == 1
    assert inner.sum() == 300 and outer.sum() == 500
    assert r[inner].max() <= 0.5 + 1e-6
    assert r[outer].min() >= 1.0 - 1e-6 and r[outer].max() <= 1.5 + 1e-6


def test_ball_is_uniform_in_volume():
    x, _ = au.concentric_spheres(2, 20000, 10, seed=0)
    r = x[:20000].norm(dim=1)
    # uniform in a disk of radius 0.5: P(r <= 0.25) = 1/4
    assert abs((r <= 0.25).float().mean().item() - 0.25) < 0.02


def test_same_seed_same_data_other_seed_other_data():
    a = au.concentric_spheres(2, seed=1)
    b = au.concentric_spheres(2, seed=1)
    c = au.concentric_spheres(2, seed=2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_separable_spheres_leave_the_opening_empty():
    x, y = au.separable_spheres(2, 200, 2000, opening=math.pi / 2, seed=0)
    outer = x[y[:, 0] == 1]
    angle_from_minus_e1 = torch.acos(
        (-outer[:, 0] / outer.norm(dim=1)).clamp(-1, 1)
    )
    assert len(outer) == 2000
    assert angle_from_minus_e1.min() >= math.pi / 4 - 1e-4
    x1, y1 = au.separable_spheres(1, 50, 50, seed=0)
    assert (x1[y1[:, 0] == 1] >= 1.0).all()


def test_map_1d():
    x, y = au.map_1d("flip", 10)
    assert set(x[:, 0].tolist()) == {-1.0, 1.0}
    assert torch.equal(y, -x)
    x, y = au.map_1d("identity", 10)
    assert torch.equal(y, x)


def test_angular_split():
    x, y = au.concentric_spheres(2, 500, 1000, seed=0)
    (xt, yt), (xv, yv) = au.angular_split(x, y, 0.0, math.pi / 5)
    assert len(xt) + len(xv) == 1500
    a_val = torch.atan2(xv[:, 1], xv[:, 0])
    a_tr = torch.atan2(xt[:, 1], xt[:, 0])
    assert ((a_val >= 0) & (a_val <= math.pi / 5)).all()
    assert not ((a_tr >= 0) & (a_tr <= math.pi / 5)).any()
    assert 0.07 < len(xv) / 1500 < 0.13  # a tenth of the circle


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda: au.concentric_spheres(2, r1=1.0, r2=0.5, r3=1.5),
            "r1 < r2 < r3",
        ),
        (lambda: au.concentric_spheres(0), "dim"),
        (lambda: au.concentric_spheres(2, num_inner=-5), "num_inner"),
        (lambda: au.map_1d("swap"), "kind"),
        (
            lambda: au.angular_split(torch.zeros(5, 1), torch.zeros(5, 1)),
            "d >= 2",
        ),
        (lambda: au.separable_spheres(2, opening=7.0), "opening"),
    ],
)
def test_bad_data_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()

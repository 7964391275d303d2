"""The theory module: flows and inverses, Liouville = autograd determinants, the rotation
field, order preservation in 1-d, the gap analysis, and the 1-d NODE/ResNet contrast."""

import math

import pytest
import torch

import anode_utils as au
from anode_utils import theory as th

TIGHT = dict(rtol=1e-10, atol=1e-10)


def random_tanh_field(dim, seed, scale=3.0):
    torch.manual_seed(seed)
    field = au.MLPField(
        dim, hidden_dim=16, time_dependent=True, activation="tanh"
    ).double()
    with torch.no_grad():  # make the flow move points noticeably
        field.net[-1].weight.mul_(scale)
    return field


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_liouville_determinant_equals_autograd_determinant(dim, seed):
    field = random_tanh_field(dim, seed)
    x = torch.randn(6, dim, dtype=torch.float64)
    z, logdet = th.liouville_logdet(field, x, T=1.0, **TIGHT)
    det = th.autograd_jacobian_det(field, x, T=1.0, **TIGHT)
    assert z.shape == (6, dim) and logdet.shape == (6,) and det.shape == (6,)
    assert torch.allclose(z, th.flow(field, x, 1.0, **TIGHT), atol=1e-9)
    assert torch.allclose(logdet.exp(), det, rtol=1e-7, atol=0)
    assert (det > 0).all()
    assert not torch.allclose(
        det, torch.ones_like(det), atol=1e-2
    )  # a non-trivial check


def test_liouville_leaves_nfe_counter_alone():
    field = random_tanh_field(2, 0)
    field.nfe = 7
    th.liouville_logdet(field, torch.zeros(2, 2, dtype=torch.float64))
    th.flow(field, torch.zeros(2, 2, dtype=torch.float64))
    assert field.nfe == 7


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_backward_flow_inverts_forward_flow(dim):
    field = random_tanh_field(dim, 3)
    x = torch.randn(20, dim, dtype=torch.float64)
    z = th.flow(field, x, T=1.0, **TIGHT)
    assert (z - x).abs().max() > 0.1  # the flow moves points
    assert torch.allclose(th.invert(field, z, T=1.0, **TIGHT), x, atol=1e-8)
    assert th.inversion_error(field, x, T=1.0, **TIGHT) < 1e-8


def test_flow_trajectory_shapes_and_model_inputs():
    torch.manual_seed(0)
    model = au.ODENet(data_dim=2, augment_dim=1, hidden_dim=8)
    x = torch.randn(5, 2)
    traj = th.flow(model, x, times=torch.linspace(0, 1, 4))
    assert traj.shape == (4, 5, 3)
    assert torch.allclose(traj[0], au.augment(x, 1))
    assert torch.allclose(th.flow(model.odeblock, x), traj[-1], atol=1e-5)
    _, logdet = th.liouville_logdet(model, x)
    assert logdet.shape == (5,)


def test_rotation_field_maps_x_to_minus_x_with_positive_determinant():
    block = au.ODEBlock(th.RotationField(), data_dim=1, augment_dim=1, T=1.0)
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    z = th.flow(block, x, T=1.0, **TIGHT)
    assert torch.allclose(z[:, 0], -x[:, 0], atol=1e-8)
    assert torch.allclose(
        z[:, 1], torch.zeros(9, dtype=torch.float64), atol=1e-8
    )
    _, logdet = th.liouville_logdet(block, x, T=1.0, **TIGHT)
    assert torch.allclose(
        logdet, torch.zeros(9, dtype=torch.float64), atol=1e-10
    )  # det = 1 > 0
    det = th.autograd_jacobian_det(block, x[:3], T=1.0, **TIGHT)
    assert torch.allclose(det, torch.ones(3, dtype=torch.float64), atol=1e-7)


def test_order_changes():
    t = torch.linspace(0, 1, 5)
    parallel = torch.stack([t - 1, t + 1], dim=1)[..., None]
    crossing = torch.stack([-1 + 2 * t, 1 - 2 * t], dim=1)
    assert not th.order_changes(parallel)
    assert th.order_changes(crossing)


def test_euler_crosses_where_the_exact_flow_cannot():
    """h' = -5 h: exact solutions keep their order; Euler with dt = 0.5 flips the sign."""

    class Linear(au.CountingField):
        dim = 1

        def forward(self, t, h):
            return -5.0 * h

    x = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    times = torch.linspace(0, 1, 3, dtype=torch.float64)
    assert th.order_changes(th.flow(Linear(), x, times=times, method="euler"))
    assert not th.order_changes(
        th.flow(Linear(), x, times=torch.linspace(0, 1, 50), **TIGHT)
    )


def test_vector_field_on_grid_and_disk_grid():
    field = th.RotationField(omega=1.0)
    X, Y, U, V = th.vector_field_on_grid(field, num=5)
    assert X.shape == U.shape == (5, 5)
    assert torch.allclose(U, -Y) and torch.allclose(V, X)
    g = th.disk_grid(1.5, 11)
    assert g.shape[1] == 2 and (g.norm(dim=1) <= 1.5).all()


def test_gap_analysis_counts():
    class Radial(torch.nn.Module):  # g(x) = ||x|| - 0.75: the ideal classifier
        def forward(self, x):
            return x.norm(dim=1, keepdim=True) - 0.75

    out = th.gap_analysis(Radial(), num=61)
    assert out["wrong_inner"] == 0 and out["wrong_annulus"] == 0
    assert out["n_inner"] + out["n_gap"] + out["n_annulus"] == len(out["x"])
    assert 0 < out["frac_negative_gap"] < 1


def test_node_cannot_fit_g1d_but_resnet_can():
    node = au.run_toy(
        au.make_config(
            task="g1d", model="node", readout=False, epochs=25, lr=1e-2
        )
    )
    assert node["final"]["train_loss"] > 0.9
    # without a readout the blocks must move h down as well as up: no outer ReLU
    resnet = au.run_toy(
        au.make_config(
            task="g1d",
            model="resnet",
            num_layers=2,
            readout=False,
            out_relu=False,
            epochs=50,
            lr=1e-2,
        )
    )
    assert resnet["final"]["train_loss"] < 0.1


@pytest.mark.parametrize(
    "call",
    [
        lambda: th.flow(th.RotationField(), torch.zeros(3, 3)),
        lambda: th.flow(th.RotationField(), torch.zeros(3)),
        lambda: th.flow(th.RotationField(), torch.zeros(3, 2), T=0),
        lambda: th.flow(
            th.RotationField(), torch.zeros(3, 2), times=[0.0, 1.0, 0.5]
        ),
        lambda: th.flow(th.RotationField(), torch.zeros(3, 2), method="nope"),
        lambda: th.flow(th.RotationField(), torch.zeros(3, 2), tol=1e-3),
        lambda: th.invert(
            au.ODEBlock(th.RotationField(), 1, 1), torch.zeros(3, 1)
        ),
        lambda: th.RotationField(dim=1),
        lambda: th.RotationField(plane=(0, 0)),
        lambda: th.RotationField(omega=math.inf),
        lambda: th.order_changes(torch.zeros(1, 3)),
        lambda: th.gap_analysis(th.RotationField(), r1=1.0, r2=0.5),
        lambda: th.disk_grid(-1.0),
        lambda: th.flow("not a field", torch.zeros(3, 2)),
    ],
)
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize("dim", [1, 2, 3, 5])
def test_annulus_lift_anode_represents_g_exactly(dim):
    x, y = au.concentric_spheres(dim, 200, 300, seed=1)
    block = th.annulus_lift_anode(dim).double()
    z = block(x.double())
    assert torch.allclose(
        z[:, :dim], x.double()
    )  # the data coordinates do not move
    assert torch.allclose(
        z[:, -1:], y.double(), atol=1e-6
    )  # the lifted coordinate is g(x)


def test_annulus_lift_flow_inverts_and_preserves_volume():
    x, _ = au.concentric_spheres(2, 50, 50, seed=2)
    block = th.annulus_lift_anode(2, rtol=1e-8, atol=1e-8).double()
    assert th.inversion_error(block, x.double()) < 1e-6
    _, logdet = th.liouville_logdet(block, x.double(), rtol=1e-8, atol=1e-8)
    assert logdet.abs().max() < 1e-10  # a shear: divergence 0, det 1


def test_annulus_lift_field_checks_its_radii():
    with pytest.raises(ValueError, match="0 < r1 < r2"):
        th.AnnulusLiftField(2, r1=1.0, r2=0.5)


def test_monotone_fit_bound_of_three_blocks():
    # labels +1 (a points), -1 (b points), +1 (c points) along the line: the best monotone fit
    # pools two neighbouring blocks, MSE = min(4ab/(a+b), 4bc/(b+c)) / n
    a, b, c = 30, 50, 20
    x = torch.arange(a + b + c, dtype=torch.float64)
    y = torch.cat([torch.ones(a), -torch.ones(b), torch.ones(c)])
    mse, acc = th.monotone_fit_bound(x, y)
    assert mse == pytest.approx(
        min(4 * a * b / (a + b), 4 * b * c / (b + c)) / (a + b + c)
    )
    assert acc == pytest.approx((b + a) / (a + b + c))


def test_monotone_fit_bound_of_g_in_one_dimension_is_about_two_thirds():
    x, y = au.concentric_spheres(1, 1000, 2000, seed=0)
    mse, acc = th.monotone_fit_bound(x, y)
    assert 0.6 < mse < 0.7 and 0.6 < acc < 0.7
    sorted_y = y[torch.argsort(x[:, 0])]
    assert th.monotone_fit_bound(torch.arange(3000), sorted_y) == (mse, acc)

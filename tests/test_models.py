import math

import pytest
import torch

import anode_utils as au
from anode_utils.fields import MLPField


def test_augment_appends_exactly_p_zeros_and_keeps_data():
    x = torch.randn(7, 3)
    for p in (0, 1, 4):
        h = au.augment(x, p)
        assert h.shape == (7, 3 + p)
        assert torch.equal(h[:, :3], x)
        assert torch.count_nonzero(h[:, 3:]) == 0


def test_odeblock_trajectory_starts_at_augmented_input():
    model = au.ODENet(2, augment_dim=3)
    x = torch.randn(5, 2)
    traj = model.trajectory(x, torch.linspace(0, 1, 4))
    assert traj.shape == (4, 5, 5)
    assert torch.equal(traj[0], au.augment(x, 3))


@pytest.mark.parametrize(
    "d,p,time_dep", [(2, 0, True), (2, 1, True), (1, 5, False), (3, 2, True)]
)
def test_parameter_counts(d, p, time_dep):
    h = 32
    s = d + p
    field = (s + int(time_dep)) * h + h + h * h + h + h * s + s
    readout = s + 1
    assert (
        au.count_parameters(au.ODENet(d, 1, h, p, time_dep)) == field + readout
    )


@pytest.mark.parametrize("d,h,L", [(2, 32, 5), (1, 32, 5), (3, 16, 2)])
def test_resnet_parameter_count_and_layers(d, h, L):
    """The authors' block: Linear(d, h), ReLU, Linear(h, d), ReLU; a linear readout."""
    per_block = d * h + h + h * d + d
    assert au.count_parameters(au.ResNet(d, 1, h, L)) == L * per_block + d + 1
    assert au.ResNet(d, 1, h, L).trajectory(torch.zeros(3, d)).shape == (
        L + 1,
        3,
        d,
    )


def test_default_resnet_is_the_authors_and_smaller_than_the_node():
    """5 blocks of width 32: 813 weights in d = 2, fewer than the NODE's 1,253."""
    resnet, node = au.make_model(au.make_config(model="resnet")), au.ODENet(2)
    assert len(resnet.blocks) == 5 and au.count_parameters(resnet) == 813
    assert au.count_parameters(node) == 1253
    block = resnet.blocks[0].net
    assert [type(m).__name__ for m in block] == [
        "Linear",
        "ReLU",
        "Linear",
        "ReLU",
    ]
    h = torch.randn(4, 2)
    assert torch.equal(block(h), torch.relu(block[2](torch.relu(block[0](h)))))
    assert (
        resnet.blocks[0](None, h) >= 0
    ).all()  # the outer ReLU: residuals only push up
    free = au.ResNet(2, out_relu=False).blocks[0].net
    assert [type(m).__name__ for m in free] == ["Linear", "ReLU", "Linear"]


def test_shifted_sines_task():
    x, y = au.shifted_sines(2, 200, shift=1.4, noise=0.0, seed=3)
    assert x.shape == (400, 2) and y.shape == (400, 1)
    assert (y[:200] == -1).all() and (y[200:] == 1).all()
    s = torch.sin(torch.pi * x[:, :1].double()).float()
    assert torch.allclose(x[:, 1:] - s, 0.7 * y, atol=1e-5)
    x1, _ = au.shifted_sines(1, 200, noise=0.1, seed=3)
    assert x1.shape == (400, 1)
    assert au.shifted_sines(3, 10, seed=1)[0].shape == (20, 3)
    with pytest.raises(ValueError, match="num_per_curve"):
        au.shifted_sines(2, 0)
    with pytest.raises(ValueError, match="noise"):
        au.shifted_sines(2, 10, noise=-1)


def test_data_is_resampled_per_seed_unless_data_seed_is_fixed():
    cfgs = au.seed_configs(au.make_config(num_inner=20, num_outer=40), [0, 1])
    (x0, _), _ = au.make_data(cfgs[0])
    (x1, _), _ = au.make_data(cfgs[1])
    assert not torch.equal(x0, x1)
    fixed = au.seed_configs(
        au.make_config(num_inner=20, num_outer=40, data_seed=7), [0, 1]
    )
    assert torch.equal(
        au.make_data(fixed[0])[0][0], au.make_data(fixed[1])[0][0]
    )


def test_forward_nfe_of_dopri5_and_zero_backward_nfe_without_adjoint():
    model = au.ODENet(2, augment_dim=1)
    x = torch.randn(16, 2)
    out = model(x)
    nfe_f = au.read_and_reset_nfe(model)
    out.sum().backward()
    nfe_b = au.read_and_reset_nfe(model)
    assert (
        nfe_f >= 8 and nfe_f % 6 == 2
    )  # dopri5: 2 + 6 per (accepted or rejected) step
    assert nfe_b == 0


def test_adjoint_has_backward_nfe():
    model = au.ODENet(2, adjoint=True)
    out = model(torch.randn(16, 2))
    assert au.read_and_reset_nfe(model) > 0
    out.sum().backward()
    assert au.read_and_reset_nfe(model) > 0


@pytest.mark.parametrize("activation,tol", [("tanh", 1e-7), ("relu", 1e-4)])
def test_adjoint_and_direct_gradients_agree(activation, tol):
    # ReLU kinks make the vector field only Lipschitz, so the two gradients agree less closely
    x = torch.randn(
        32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    grads = []
    for adjoint in (False, True):
        torch.manual_seed(2)
        model = au.ODENet(
            2,
            augment_dim=1,
            adjoint=adjoint,
            rtol=1e-9,
            atol=1e-9,
            activation=activation,
        ).double()
        model(x).pow(2).mean().backward()
        grads.append(
            torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        )
    rel = (grads[0] - grads[1]).abs().max() / grads[0].abs().max()
    assert rel < tol


def test_fixed_step_solver_nfe_counts_steps():
    model = au.ODENet(1, method="euler", step_size=0.25)
    model(torch.zeros(3, 1))
    assert au.nfe(model) == 4
    model = au.ODENet(1, method="rk4", step_size=0.5)
    au.reset_nfe(model)
    model(torch.zeros(3, 1))
    assert au.nfe(model) == 8


def test_time_dependent_field_uses_time():
    field = MLPField(2, time_dependent=True)
    h = torch.randn(4, 2)
    assert not torch.allclose(
        field(torch.tensor(0.0), h), field(torch.tensor(1.0), h)
    )
    field = MLPField(2, time_dependent=False)
    assert torch.allclose(
        field(torch.tensor(0.0), h), field(torch.tensor(1.0), h)
    )


def test_readout_false_returns_features():
    model = au.ODENet(1, output_dim=1, readout=False)
    assert model(torch.zeros(2, 1)).shape == (2, 1)
    with pytest.raises(ValueError, match="output_dim"):
        au.ODENet(1, output_dim=1, augment_dim=1, readout=False)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(augment_dim=-1), "augment_dim"),
        (dict(augment_dim=1.5), "augment_dim"),
        (dict(augment_dim=True), "augment_dim"),
        (dict(method="rk45"), "method must be one of"),
        (dict(T=0.0), "T must be"),
        (dict(T=-1.0), "T must be"),
        (dict(rtol=0.0), "rtol"),
        (dict(atol=-1e-3), "atol"),
        (dict(T=math.inf), "T must be"),
        (dict(hidden_dim=0), "hidden_dim"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        au.ODENet(2, **kwargs)


def test_wrong_input_shape_raises_before_solving():
    model = au.ODENet(2)
    for bad in (torch.zeros(4, 3), torch.zeros(4), torch.zeros(2, 4, 2)):
        with pytest.raises(ValueError, match=r"shape \(batch, 2\)"):
            model(bad)
    assert au.nfe(model) == 0
    with pytest.raises(ValueError, match="data_dim"):
        au.ResNet(2)(torch.zeros(4, 1))


def test_solver_blow_up_is_reported_not_hung():
    model = au.ODENet(1, max_num_steps=3, rtol=1e-9, atol=1e-9)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(30)
    with pytest.raises(au.SolverError, match="max_num_steps"):
        model(torch.randn(8, 1))


@pytest.mark.parametrize(
    "activation,time_dependent,layers",
    [("relu", True, 2), ("softplus", False, 1), ("tanh", True, 3)],
)
def test_field_call_is_its_layers_map_bit_for_bit(
    activation, time_dependent, layers
):
    """MLPField.forward is ``net`` applied to [t, h]: the same values and gradients, and one NFE
    a call."""
    torch.manual_seed(0)
    field = MLPField(3, 16, layers, time_dependent, activation).double()
    h = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.3, dtype=torch.float64)
    out = field(t, h)
    assert field.nfe == 1
    inp = (
        torch.cat([t.reshape(1, 1).expand(9, 1), h], dim=1)
        if time_dependent
        else h
    )
    ref = field.net(inp)
    assert torch.equal(out, ref)
    params = list(field.parameters())
    g = torch.autograd.grad(out.sum(), [h] + params)
    g_ref = torch.autograd.grad(ref.sum(), [h] + params)
    assert all(torch.equal(a, b) for a, b in zip(g, g_ref))


@pytest.mark.parametrize("backend", ["lean", "torchdiffeq"])
def test_forward_hook_on_a_fields_inner_layer_runs_during_a_solve(backend):
    """The field calls its layers as modules, so hooks on them run at every evaluation."""
    torch.manual_seed(0)
    model = au.ODENet(2, augment_dim=1, backend=backend)
    calls = []
    handle = model.field.net[0].register_forward_hook(
        lambda m, args, out: calls.append(out.shape)
    )
    model(torch.randn(8, 2))
    handle.remove()
    assert len(calls) == model.field.nfe > 0 and calls[0] == (8, 32)


def test_spectral_norm_on_a_fields_layer_trains():
    """torch's spectral-norm parametrization works on a field's layer, and a training run takes
    steps with it (the parametrized weight is what the field uses)."""
    from torch.nn.utils.parametrizations import spectral_norm

    torch.manual_seed(0)
    model = au.ODENet(2, augment_dim=1)
    spectral_norm(model.field.net[0])
    x, y = au.concentric_spheres(2, 20, 40, seed=0)
    before = (
        model.field.net[0].parametrizations.weight.original.detach().clone()
    )
    hist = au.train(model, x, y, epochs=1, batch_size=30)
    assert (
        hist.error is None
        and len(hist) == 2
        and all(n > 0 for n in hist.nfe_forward)
    )
    assert not torch.equal(
        before, model.field.net[0].parametrizations.weight.original
    )
    sigma = torch.linalg.matrix_norm(model.field.net[0].weight.detach(), ord=2)
    assert sigma.item() == pytest.approx(1.0, rel=0.05)


def test_resnet_block_call_is_its_layers_map_bit_for_bit():
    torch.manual_seed(0)
    model = au.ResNet(2, 1, 16, num_layers=3)
    x = torch.randn(5, 2)
    ref = x
    for block in model.blocks:
        ref = ref + model.dt * block.net(ref)
    assert torch.equal(model.features(x), ref)
    assert au.read_and_reset_nfe(model) == 3


class _StackedResNet(au.ResNet):
    """The ResNet as first written: h + dt * f(h) at every layer, features = trajectory[-1]."""

    def features(self, x):
        h = au.augment(x, self.augment_dim)
        hs = [h]
        for block in self.blocks:
            h = h + self.dt * block.net(h)
            hs.append(h)
        return torch.stack(hs)[-1]


@pytest.mark.parametrize("T", [None, 2.0])
def test_resnet_forward_trains_as_the_stacked_form_bit_for_bit(T):
    """features() skips the stack of hidden states and, at dt = 1, the multiplication by 1.0:
    the same losses and weights as the plain form over a training run, and trajectory() still
    returns every hidden state."""
    (x, y), _ = au.make_data(au.make_config(num_inner=60, num_outer=120))
    torch.manual_seed(0)
    model = au.ResNet(2, 1, 16, num_layers=4, T=T)
    ref = _StackedResNet(2, 1, 16, num_layers=4, T=T)
    ref.load_state_dict(model.state_dict())
    hists = [au.train(m, x, y, epochs=2, batch_size=32) for m in (model, ref)]
    assert hists[0].loss == hists[1].loss
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), ref.state_dict().values())
    )
    traj = model.trajectory(x)
    assert traj.shape == (5, len(x), 2) and torch.equal(
        traj[-1], model.features(x)
    )


def test_read_and_reset_nfe_with_the_fields_found_once():
    """train() finds the counting fields once and passes them: the same counts, reset to 0."""
    from anode_utils.nfe import counting_fields

    model = au.ResNet(2, 1, 8, num_layers=4)
    fields = counting_fields(model)
    assert fields == list(model.blocks)
    model(torch.randn(3, 2))
    assert au.nfe(model) == 4
    assert au.read_and_reset_nfe(model, fields) == 4 and au.nfe(model) == 0
    model(torch.randn(3, 2))
    assert au.read_and_reset_nfe(model) == 4 and all(
        b.nfe == 0 for b in model.blocks
    )

import math

import pytest
import torch

import anode_utils as au
from anode_utils.regularizers import (
    RegularizedODENet,
    exact_trace,
    hutchinson_trace,
)
from anode_utils.variants import (
    LearnedAugmentODENet,
    SecondOrderODENet,
    matched_hidden_dim,
)


def test_learned_augmentation_with_zero_map_is_zero_augmentation():
    torch.manual_seed(0)
    learned = LearnedAugmentODENet(2, augment_dim=2)
    anode = au.ODENet(2, augment_dim=2)
    anode.odeblock.field.load_state_dict(learned.odeblock.field.state_dict())
    anode.readout.load_state_dict(learned.readout.state_dict())
    x = torch.randn(10, 2)
    assert torch.allclose(learned(x), anode(x), atol=1e-6)
    assert torch.equal(learned.trajectory(x, [0.0, 1.0])[0], au.augment(x, 2))


def test_second_order_dynamics_velocity_is_derivative_of_position():
    torch.manual_seed(0)
    model = SecondOrderODENet(2, rtol=1e-7, atol=1e-7)
    x = torch.randn(5, 2, dtype=torch.float64)
    model = model.double()
    times = torch.linspace(0, 1, 201, dtype=torch.float64)
    with torch.no_grad():
        z = model.trajectory(x, times)
    assert torch.equal(z[0, :, 2:], torch.zeros(5, 2, dtype=torch.float64))
    dh = (z[2:, :, :2] - z[:-2, :, :2]) / (2 * (times[1] - times[0]))
    assert torch.allclose(dh, z[1:-1, :, 2:], atol=1e-3)


def test_matched_hidden_dim_keeps_parameter_budget():
    target = au.count_parameters(au.ODENet(2, augment_dim=2, hidden_dim=32))
    h = matched_hidden_dim(
        lambda w: SecondOrderODENet(2, hidden_dim=w), target
    )
    assert au.count_parameters(SecondOrderODENet(2, hidden_dim=h)) <= target
    assert au.count_parameters(SecondOrderODENet(2, hidden_dim=h + 1)) > target
    with pytest.raises(ValueError, match="no hidden width"):
        matched_hidden_dim(lambda w: SecondOrderODENet(2, hidden_dim=w), 10)


def test_hutchinson_estimator_is_unbiased():
    torch.manual_seed(0)
    field = au.MLPField(3, time_dependent=False, activation="tanh").double()
    h = torch.randn(4, 3, dtype=torch.float64)
    exact = exact_trace(lambda z: field(torch.tensor(0.0), z), h)
    hh = h.repeat(20000, 1).requires_grad_(True)
    out = field(torch.tensor(0.0), hh)
    est = (
        hutchinson_trace(out, hh, torch.randn_like(hh))
        .reshape(20000, 4)
        .mean(0)
    )
    se = 4 * exact.abs().max() / math.sqrt(20000) + 1e-3
    assert torch.allclose(est, exact, atol=float(se))


def test_regularized_model_penalises_and_trains():
    torch.manual_seed(0)
    reg = RegularizedODENet(
        au.ODENet(2, augment_dim=1), kinetic=0.1, jacobian=0.1
    )
    x, y = au.concentric_spheres(2, 30, 60)
    out = reg(x)
    assert (
        out.shape == (90, 1)
        and reg.penalty is not None
        and reg.penalty.item() > 0
    )
    reg.eval()
    assert (
        torch.allclose(reg(x), reg.model(x), atol=1e-6) and reg.penalty is None
    )
    reg.train()
    h = au.train(reg, x, y, epochs=1, batch_size=30)
    assert len(h) == 3 and all(n > 0 for n in h.nfe_forward)
    # the penalty reaches the gradient: with a huge weight the field is pushed towards zero
    torch.manual_seed(0)
    strong = RegularizedODENet(au.ODENet(2, augment_dim=1), kinetic=100.0)
    before = (
        strong.model.field(torch.tensor(0.0), au.augment(x, 1))
        .pow(2)
        .mean()
        .item()
    )
    au.train(strong, x, y, epochs=20, batch_size=90, lr=1e-2)
    after = (
        strong.model.field(torch.tensor(0.0), au.augment(x, 1))
        .pow(2)
        .mean()
        .item()
    )
    assert after < 0.2 * before


def test_kinetic_penalty_is_integral_of_squared_speed():
    # a time-independent linear field f(h) = a h: ||f(h(t))||^2 = a^2 |x|^2 e^{2at}
    model = au.ODENet(1, time_dependent=False, rtol=1e-8, atol=1e-8)
    reg = RegularizedODENet(model, kinetic=1.0)
    a = 0.5
    with torch.no_grad():
        net = model.field.net
        for p in model.field.parameters():
            p.zero_()
        # relu(h) - relu(-h) = h: two hidden units, one for each sign
        net[0].weight[0, 0], net[0].weight[1, 0] = 1.0, -1.0
        net[2].weight[0, 0], net[2].weight[1, 1] = 1.0, 1.0
        net[4].weight[0, 0], net[4].weight[0, 1] = a, -a
    x = torch.tensor([[1.0]])
    reg(x)
    expected = a**2 * (math.exp(2 * a) - 1) / (2 * a)
    assert reg.penalty.item() == pytest.approx(expected, rel=1e-4)


def test_bad_regularizer_arguments():
    with pytest.raises(ValueError, match="kinetic"):
        RegularizedODENet(au.ODENet(2), kinetic=-1)
    with pytest.raises(ValueError, match="end_time_jitter"):
        RegularizedODENet(au.ODENet(2), end_time_jitter=1.5)


@pytest.mark.parametrize(
    "extra",
    [
        dict(model="learned_anode", augment_dim=1),
        dict(model="second_order"),
        dict(model="anode", augment_dim=1, kinetic=0.01, jacobian=0.01),
        dict(model="node", end_time_jitter=0.2),
    ],
)
def test_variants_run_from_configs(extra):
    r = au.run_toy(
        dict(num_inner=30, num_outer=60, epochs=1, batch_size=30, **extra)
    )
    assert len(r["history"]["loss"]) == 3 and r["final"]["train_loss"] > 0
    assert au.load_model(r) is not None


def test_regularisers_need_an_ode_model():
    with pytest.raises(ValueError, match="apply to model='node' or 'anode'"):
        au.make_config(model="resnet", kinetic=0.1)


def test_frobenius_estimator_matches_the_exact_jacobian_norm():
    """The Jacobian penalty's integrand ||eps^T df/dh||^2 is unbiased for ||df/dh||_F^2."""
    from anode_utils.regularizers import RegularizedField

    torch.manual_seed(0)
    field = au.MLPField(3, time_dependent=False, activation="tanh").double()
    h = torch.randn(1, 3, dtype=torch.float64)
    t = torch.tensor(0.0, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(
        lambda z: field(t, z[None])[0], h[0]
    )
    exact = jac.pow(2).sum().item()
    n = 20000
    reg = RegularizedField(field)
    reg.eps = torch.randn(
        n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    z = torch.cat(
        [h.repeat(n, 1), torch.zeros(n, 2, dtype=torch.float64)], dim=1
    )
    est = reg(t, z)[:, -1].detach()
    mean, se = est.mean().item(), est.std().item() / n**0.5
    assert abs(mean - exact) < 4 * se, (mean, exact, se)
    assert (
        se < 0.05 * exact
    )  # the check has power: the standard error is small against the value


def test_second_order_defaults_follow_norcliffe_et_al():
    torch.manual_seed(0)
    model = SecondOrderODENet(2)
    x = torch.randn(5, 2)
    assert torch.equal(
        model.initial_state(x)[:, 2:], torch.zeros(5, 2)
    )  # v(0) = W x + b starts at 0
    assert (
        model.velocity is not None and model.readout.in_features == 2
    )  # reads the position only
    old = SecondOrderODENet(2, initial_velocity="zero", readout="state")
    assert old.velocity is None and old.readout.in_features == 4
    with pytest.raises(ValueError, match="initial_velocity"):
        SecondOrderODENet(2, initial_velocity="random")
    with pytest.raises(ValueError, match="readout"):
        SecondOrderODENet(2, readout="velocity")


def test_regularizer_draws_from_its_generator_not_the_global_one():
    """End times and Hutchinson probes come from the generator the model is given: the same
    seed gives the same penalty, and torch's global generator is left as it was."""
    from anode_utils.regularizers import RegularizedODENet

    torch.manual_seed(0)
    base = au.ODENet(2, augment_dim=1)
    x = torch.randn(8, 2)
    penalties = []
    for _ in range(2):
        model = RegularizedODENet(
            base,
            kinetic=0.1,
            jacobian=0.1,
            end_time_jitter=0.3,
            generator=torch.Generator().manual_seed(5),
        )
        state = torch.get_rng_state()
        model(x)
        assert torch.equal(torch.get_rng_state(), state)
        penalties.append(model.penalty.item())
    assert penalties[0] == penalties[1]
    with pytest.raises(ValueError, match="generator"):
        RegularizedODENet(base, generator=5)


def test_make_model_leaves_the_global_generator_alone():
    """make_model builds its weights as after torch.manual_seed(seed), without reseeding the
    global generator; a regularised model's draws continue that seeded stream."""
    cfg = au.make_config(model="anode", augment_dim=1, jacobian=0.1, seed=3)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    model = au.make_model(cfg)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(3)
    twin = au.ODENet(2, augment_dim=1)
    expected = torch.rand(())
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.model.parameters(), twin.parameters())
    )
    assert torch.equal(torch.rand((), generator=model.generator), expected)

"""FlatAdam: torch's Adam update on one flat buffer."""
import copy

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

import anode_utils as au
from anode_utils.optim import FlatAdam


def _steps(model, opt, n=25, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        opt.zero_grad(set_to_none=True)
        for p in model.parameters():
            # gradients over many scales, with exact zeros, as training produces
            g = torch.randn(p.shape, generator=gen) * 10.0 ** torch.randint(-8, 3, p.shape, generator=gen)
            g[torch.rand(p.shape, generator=gen) < 0.1] = 0.0
            p.grad = g.to(p.dtype)
        opt.step()


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_flat_adam_is_torchs_adam_bit_for_bit(weight_decay, dtype):
    torch.manual_seed(0)
    model = au.ResNet(3, 2, 17, num_layers=3).to(dtype)   # odd sizes: vector loops' tails
    twin = copy.deepcopy(model)
    _steps(model, torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.8, 0.99), eps=1e-6,
                                   weight_decay=weight_decay, foreach=True))
    _steps(twin, FlatAdam(twin.parameters(), lr=3e-3, betas=(0.8, 0.99), eps=1e-6,
                          weight_decay=weight_decay))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))


def test_flat_adam_state_dict_round_trip_continues_the_same_run():
    torch.manual_seed(0)
    model = au.ODENet(2)
    opt = FlatAdam(model.parameters(), lr=1e-2)
    _steps(model, opt, n=5)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    _steps(model, opt, n=5, seed=1)
    resumed = au.ODENet(2)
    resumed.load_state_dict(saved_model)
    opt2 = FlatAdam(resumed.parameters(), lr=1e-2)
    opt2.load_state_dict(saved_opt)
    _steps(resumed, opt2, n=5, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), resumed.parameters()))


def test_flat_adam_refuses_a_changed_set_of_gradients():
    model = au.ODENet(2)
    opt = FlatAdam(model.parameters())
    _steps(model, opt, n=1)
    model.readout.weight.grad = None
    with pytest.raises(RuntimeError, match="use torch.optim.Adam"):
        opt.step()


def test_flat_adam_skips_parameters_that_never_get_gradients():
    model = au.ODENet(2)
    frozen = model.readout.bias.detach().clone()
    opt = FlatAdam(model.parameters(), lr=1e-1)
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        model(torch.randn(4, 2)).sum().backward()
        model.readout.bias.grad = None
        opt.step()
    assert torch.equal(model.readout.bias, frozen)


@pytest.mark.parametrize("kwargs", [dict(lr=0), dict(betas=(1.0, 0.9)), dict(weight_decay=-1)])
def test_flat_adam_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        FlatAdam(au.ODENet(2).parameters(), **kwargs)


def test_flat_adam_updates_the_parameters_in_one_buffer_in_place():
    torch.manual_seed(0)
    model = au.ResNet(3, 2, 17, num_layers=3)
    twin = copy.deepcopy(model)
    params = list(model.parameters())
    _steps(twin, torch.optim.Adam(twin.parameters(), lr=3e-3, foreach=True), n=3)
    _steps(model, FlatAdam(model.parameters(), lr=3e-3), n=3)
    # the same Parameter objects, now living in one storage, with torch's values
    assert all(p is q for p, q in zip(params, model.parameters()))
    assert len({p.untyped_storage().data_ptr() for p in params}) == 1
    assert all(torch.equal(a, b) for a, b in zip(twin.parameters(), model.parameters()))


@pytest.mark.parametrize("change", ["new storage", "strides", "transposed view", "load_state_dict"])
def test_flat_adam_follows_parameters_changed_between_steps(change):
    """Parameters given new storage or strides after FlatAdam moved them into its buffer (or
    overwritten in place) are updated as torch's Adam updates them."""
    torch.manual_seed(0)
    model = au.ResNet(3, 2, 17, num_layers=3)
    twin = copy.deepcopy(model)
    opts = [torch.optim.Adam(twin.parameters(), lr=3e-3, foreach=True),
            FlatAdam(model.parameters(), lr=3e-3)]
    other = au.ResNet(3, 2, 17, num_layers=3).state_dict()
    for m, opt in zip((twin, model), opts):
        _steps(m, opt, n=3)
        with torch.no_grad():
            for i, p in enumerate(m.parameters()):
                if change == "new storage":
                    p.data = p.data.clone()
                elif change == "strides" and p.dim() == 2:
                    p.data = p.data.t().contiguous().t()   # same values, transposed layout
                elif change == "transposed view" and p.dim() == 2 and p.shape[0] == p.shape[1]:
                    p.data = p.data.t()   # the same storage and address, other strides
            if change == "load_state_dict":
                m.load_state_dict(other)
        _steps(m, opt, n=3, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(twin.parameters(), model.parameters()))
    if change == "strides":   # the layout the caller chose is kept
        assert not model.blocks[0].net[0].weight.is_contiguous()


def test_flat_adam_keeps_channels_last_convolution_weights():
    from anode_utils import conv
    torch.manual_seed(0)
    model = conv.ConvODENet((1, 6, 6), 4, 1).to(memory_format=torch.channels_last)
    twin = copy.deepcopy(model)
    _steps(twin, torch.optim.Adam(twin.parameters(), lr=3e-3, foreach=True), n=3)
    _steps(model, FlatAdam(model.parameters(), lr=3e-3), n=3)
    assert all(torch.equal(a, b) for a, b in zip(twin.parameters(), model.parameters()))
    weights = [p for p in model.parameters() if p.dim() == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)


def test_flat_adam_zero_grad_either_way():
    model = au.ODENet(2)
    opt = FlatAdam(model.parameters())
    _steps(model, opt, n=1)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_flat_adam_runs_step_hooks_and_schedulers():
    """FlatAdam's step skips torch's profiler wrapper when no step hook is registered; with
    hooks (its own or global ones) it runs them as torch's optimizers do."""
    model = au.ODENet(2)
    opt = FlatAdam(model.parameters(), lr=1e-2)
    calls = []
    handles = [opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre")),
               opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post")),
               register_optimizer_step_pre_hook(
                   lambda o, args, kwargs: calls.append("global"))]
    try:
        _steps(model, opt, n=2)
    finally:
        for h in handles:
            h.remove()
    assert calls == ["global", "pre", "post"] * 2
    _steps(model, opt, n=1)
    assert len(calls) == 6
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    _steps(model, opt, n=1)
    scheduler.step()
    assert opt.param_groups[0]["lr"] == 5e-3


def test_flat_adam_builds_without_importing_dynamo_and_keeps_torchs_group_checks():
    """FlatAdam calls torch's add_param_group without its dynamo-disable wrapper, which imports
    torch._dynamo (about a second per process) on first use; torch's own checks still run."""
    import subprocess
    import sys
    code = ("import sys, torch; from anode_utils.optim import FlatAdam; "
            "FlatAdam([torch.nn.Parameter(torch.zeros(2))]); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    p, q = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))
    opt = FlatAdam([{"params": [p]}, {"params": [q], "lr": 1e-2}])
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-2]
    with pytest.raises(ValueError, match="more than one parameter group"):
        FlatAdam([{"params": [p]}, {"params": [p]}])

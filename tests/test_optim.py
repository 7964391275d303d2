"""FlatAdam: torch's Adam update on one flat buffer."""
import copy

import pytest
import torch

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

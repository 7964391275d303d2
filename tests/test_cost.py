import torch

import anode_utils as au
from anode_utils.cost import StepCounter, training_step_cost


def test_step_callbacks_match_solver_nfe():
    # dopri5 (FSAL): 2 evaluations to start, then 6 per accepted or rejected step
    torch.manual_seed(0)
    model = au.ODENet(2, rtol=1e-6, atol=1e-6)
    with torch.no_grad(), StepCounter(model.field) as steps:
        model(torch.randn(32, 2))
    c = steps.counts
    assert c["accept"] >= 1
    assert au.nfe(model) == 2 + 6 * (c["accept"] + c["reject"])
    assert not hasattr(model.field, "callback_accept_step")  # removed on exit


def test_adjoint_steps_are_counted_separately():
    torch.manual_seed(0)
    model = au.ODENet(2, adjoint=True)
    cost = training_step_cost(model, torch.randn(16, 2), torch.randn(16, 1))
    assert cost["steps"]["accept"] >= 1 and cost["steps"]["accept_adjoint"] >= 1
    assert cost["nfe_backward"] > 0


def test_adjoint_saves_less_memory_than_direct_backprop():
    x, y = torch.randn(64, 2), torch.randn(64, 1)
    costs = {}
    for adjoint in (False, True):
        torch.manual_seed(0)
        costs[adjoint] = training_step_cost(au.ODENet(2, adjoint=adjoint), x, y)
    assert costs[True]["saved_bytes"] < costs[False]["saved_bytes"]
    assert costs[False]["nfe_backward"] == 0

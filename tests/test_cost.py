import pytest
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
    assert (
        cost["steps"]["accept"] >= 1 and cost["steps"]["accept_adjoint"] >= 1
    )
    assert cost["nfe_backward"] > 0


def test_adjoint_saves_less_memory_than_direct_backprop():
    x, y = torch.randn(64, 2), torch.randn(64, 1)
    costs = {}
    for adjoint in (False, True):
        torch.manual_seed(0)
        costs[adjoint] = training_step_cost(
            au.ODENet(2, adjoint=adjoint), x, y
        )
    assert costs[True]["saved_bytes"] < costs[False]["saved_bytes"]
    assert costs[False]["nfe_backward"] == 0


def test_adjoint_gradient_error_shrinks_with_tolerance():
    torch.manual_seed(0)
    model = au.ODENet(
        2, augment_dim=1, rtol=1e-6, atol=1e-6, activation="tanh"
    )
    x, y = torch.randn(64, 2), torch.randn(64, 1)
    from anode_utils.cost import adjoint_gradient_error

    loose = adjoint_gradient_error(model, x, y, 1e-1, 1e-1)
    tight = adjoint_gradient_error(model, x, y, 1e-7, 1e-7)
    assert (
        tight["rel_error"] < loose["rel_error"] and tight["rel_error"] < 1e-3
    )
    assert tight["nfe_backward"] > loose["nfe_backward"]
    assert model.odeblock.adjoint is False  # settings restored


def test_solver_settings_restore_and_validate():
    from anode_utils.cost import evaluate_with_solver, solver_settings

    model = au.ODENet(2)
    x, y = au.concentric_spheres(2, 20, 20)
    r = evaluate_with_solver(model, x, y, method="euler", step_size=0.25)
    assert r["nfe"] == 4 and 0 <= r["accuracy"] <= 1
    assert model.odeblock.method == "dopri5"
    import pytest

    with pytest.raises(ValueError, match="method must be one of"):
        with solver_settings(model, method="rk45"):
            pass
    with pytest.raises(ValueError, match="unknown solver setting"):
        with solver_settings(model, tol=1e-3):
            pass


def test_saved_memory_counts_each_storage_once_and_skips_parameters():
    from anode_utils.cost import saved_tensor_bytes

    w = torch.nn.Parameter(torch.randn(100, 100))
    x = torch.randn(100, 100, requires_grad=True)
    with saved_tensor_bytes(exclude=[w]) as saved:
        y = (
            (x * x) @ w
        )  # x saved twice by the product (same storage), x*x and w by matmul
        y.sum().backward()
    assert (
        saved[0] == 2 * 100 * 100 * 4
    )  # x once, x*x once, the parameter w not at all


def test_evaluate_with_solver_per_batch_nfe():
    from anode_utils import cost

    torch.manual_seed(0)
    model = au.ODENet(2, hidden_dim=8)
    x, y = au.concentric_spheres(2, 50, 78, seed=0)
    whole = cost.evaluate_with_solver(model, x, y)
    batched = cost.evaluate_with_solver(model, x, y, batch_size=64)
    assert (
        len(batched["nfe_per_batch"]) == 2
        and batched["nfe"] == sum(batched["nfe_per_batch"]) / 2
    )
    assert batched["accuracy"] == pytest.approx(whole["accuracy"], abs=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        cost.evaluate_with_solver(model, x, y, batch_size=0)

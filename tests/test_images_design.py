"""Chapter 7's 14x14 design (issue 22): the readout-only baseline of the ``images`` command
(``--model readout``: the linear readout on the raw pixels, no ODE, NFE 0) and the
pre-registered read-outs and verdicts of :mod:`anode_utils.image_results`. Synthetic data
and made-up histories: seconds."""

import argparse
import math

import pytest
import torch
from test_images import write_synthetic_svhn

from anode_utils import cli_images, conv, image_results, images, verdicts
from anode_utils.__main__ import main as cli
from anode_utils.models import count_parameters

TINY = [
    "images",
    "--dataset",
    "svhn",
    "--img-size",
    "6",
    "--subset",
    "32",
    "--test-subset",
    "16",
    "--batch-size",
    "16",
    "--epochs",
    "2",
]


@pytest.fixture
def svhn(tmp_path, monkeypatch):
    root = write_synthetic_svhn(tmp_path / "data", 32, 16)
    monkeypatch.setenv(images.ENV_VAR, str(root))
    return tmp_path


def _args(*argv):
    parser = argparse.ArgumentParser()
    cli_images.add_arguments(parser)
    return parser.parse_args(list(argv))


# ----------------------------------------------------------------------------- the baseline


def test_readout_net_is_flatten_then_linear():
    torch.manual_seed(0)
    net = conv.ReadoutNet((1, 14, 14))
    x = torch.rand(5, 1, 14, 14)
    expected = x.reshape(5, -1) @ net.readout.weight.T + net.readout.bias
    assert torch.equal(net(x), expected)
    assert count_parameters(net) == 196 * 10 + 10
    with pytest.raises(ValueError, match="shape"):
        net(torch.rand(5, 1, 28, 28))


def test_readout_is_built_by_the_command_with_the_native_or_given_size():
    model = cli_images.build_model(
        cli_images.check_args(_args("--model", "readout", "--img-size", "14"))
    )
    assert isinstance(model, conv.ReadoutNet) and model.img_size == (1, 14, 14)
    model = cli_images.build_model(
        cli_images.check_args(
            _args("--model", "readout", "--dataset", "cifar10")
        )
    )
    assert model.img_size == (3, 32, 32)


@pytest.mark.parametrize("extra", [["--filters", "8"], ["--augment-dim", "2"]])
def test_readout_refuses_field_options(extra):
    with pytest.raises(ValueError, match="readout has no vector field"):
        cli_images.check_args(_args("--model", "readout", *extra))


def test_readout_run_writes_a_results_file_with_zero_nfe(svhn):
    out = svhn / "readout.json"
    cli(
        TINY
        + [
            "--model",
            "readout",
            "--backend",
            "lean",
            "--seeds",
            "0",
            "1",
            "--out",
            str(out),
        ]
    )
    res = image_results.load_image_results(out)
    assert res["experiment"]["model"] == "readout"
    assert res["experiment"]["augment_dim"] == 0
    assert res["experiment"]["filters"] is None
    assert res["num_parameters"] == 3 * 6 * 6 * 10 + 10
    assert [r["seed"] for r in res["runs"]] == [0, 1]
    for r in res["runs"]:
        assert r["status"] == "complete" and r["iterations"] == 4
        assert r["history"]["nfe_forward"] == [0, 0, 0, 0]
        assert r["history"]["nfe_backward"] == [0, 0, 0, 0]
        assert 0 <= r["test_accuracy"] <= 1
    metrics = image_results.seed_metrics(res)
    assert all(m["nfe"] == 0 for m in metrics.values())


# ----------------------------------------------------------------------------- read-outs


def fake(model, losses, nfes, accs, filters=32, p=0, epoch=10):
    """A results dict shaped like the command's: one run per (loss, nfe, acc) triple."""
    runs = []
    for s, (loss, nfe, acc) in enumerate(zip(losses, nfes, accs)):
        n = len(loss)
        runs.append(
            {
                "seed": s,
                "status": "complete",
                "iterations": n,
                "epochs_completed": n // epoch,
                "history": {
                    "loss": loss,
                    "nfe_forward": nfe,
                    "nfe_backward": [0] * n,
                    "accuracy": [0.5] * n,
                    "epoch_end": list(range(epoch, n + 1, epoch)),
                    "error": None,
                },
                "test_accuracy_per_epoch": [acc] * (n // epoch),
                "test_loss_per_epoch": [0.3] * (n // epoch),
                "test_accuracy": acc,
            }
        )
    return {
        "format": image_results.FORMAT,
        "experiment": {"model": model, "filters": filters, "augment_dim": p},
        "runs": runs,
    }


def test_iterations_to_loss_uses_full_trailing_windows():
    loss = [1.0] * 10 + [
        0.0
    ] * 10  # window 4: means reach 0.5 at the 12th iteration
    res = fake("node", [loss, [1.0] * 20], [list(range(20))] * 2, [0.9, 0.9])
    assert image_results.iterations_to_loss(res, 0.5, 4) == {0: 12, 1: None}
    # NFE over the same 4 iterations (9, 10, 11, 12 in 1-based counting: values 8..11)
    assert image_results.nfe_at_loss(res, 0.5, 4) == {0: 9.5, 1: None}
    # a single iteration below the level does not count before a full window
    early = fake("node", [[0.0] * 20], [[20] * 20], [1.0])
    assert image_results.iterations_to_loss(early, 0.5, 4) == {0: 4}


def _pair(node_it, anode_it, node_nfe, anode_nfe, node_acc, anode_acc, n=40):
    def loss(k):  # falls below 0.5 (mean over 4) at iteration k
        return [1.0] * min(k - 1, n) + [0.0] * max(0, n - k + 1)

    node = fake(
        "node",
        [loss(k) for k in node_it],
        [[f] * n for f in node_nfe],
        node_acc,
    )
    anode = fake(
        "anode",
        [loss(k) for k in anode_it],
        [[f] * n for f in anode_nfe],
        anode_acc,
        p=5,
    )
    return node, anode


def test_readout_verdicts_decide_with_the_one_rule():
    node, anode = _pair(
        [30, 31, 32],
        [20, 21, 22],
        [32, 33, 34],
        [26, 26.5, 27],
        [0.95, 0.951, 0.952],
        [0.96, 0.961, 0.962],
    )
    vs = image_results.readout_verdicts(node, anode, window=4, prefix="(a) ")
    assert [v.outcome for v in vs] == [verdicts.REPRODUCED] * 4
    assert all(v.claim.startswith("(a) the ANODE") for v in vs)
    # the other way round: not reproduced
    vs = image_results.readout_verdicts(anode, node, window=4)
    assert [v.outcome for v in vs] == [verdicts.NOT_REPRODUCED] * 4


def test_nfe_claims_at_the_floor_and_a_failed_baseline_are_inconclusive():
    node, anode = _pair(
        [30, 31, 32],
        [20, 21, 22],
        [20, 20, 20],
        [20, 20, 14],
        [0.95, 0.951, 0.952],
        [0.96, 0.961, 0.962],
    )
    vs = image_results.readout_verdicts(node, anode, window=4)
    assert [v.outcome for v in vs] == [
        verdicts.REPRODUCED,
        verdicts.INCONCLUSIVE,
        verdicts.INCONCLUSIVE,
        verdicts.REPRODUCED,
    ]
    assert vs[1].reason == vs[2].reason == image_results.FLOOR_REASON
    vs = image_results.readout_verdicts(
        node, anode, baseline_ok=False, window=4
    )
    assert all(v.outcome == verdicts.INCONCLUSIVE for v in vs)
    assert all(v.reason == image_results.BASELINE_REASON for v in vs)


def test_a_seed_that_never_reaches_the_level_makes_those_claims_inconclusive():
    node, anode = _pair(
        [30, 31, 99],
        [20, 21, 22],
        [32, 33, 34],
        [26, 26, 27],
        [0.95, 0.951, 0.952],
        [0.96, 0.961, 0.962],
    )
    vs = image_results.readout_verdicts(node, anode, window=4)
    assert vs[0].outcome == vs[1].outcome == verdicts.INCONCLUSIVE
    assert vs[0].reason == image_results.UNREACHED_REASON
    assert vs[2].outcome == vs[3].outcome == verdicts.REPRODUCED
    # no seed of one model at the level: still a verdict, inconclusive
    node, anode = _pair(
        [99, 99, 99],
        [20, 21, 22],
        [32, 33, 34],
        [26, 26, 27],
        [0.95, 0.951, 0.952],
        [0.96, 0.961, 0.962],
    )
    vs = image_results.readout_verdicts(node, anode, window=4)
    assert vs[0].outcome == vs[1].outcome == verdicts.INCONCLUSIVE


def test_baseline_verdicts_compare_each_ode_model_with_the_readout():
    node, anode = _pair(
        [30, 31, 32],
        [20, 21, 22],
        [32, 33, 34],
        [26, 26, 27],
        [0.95, 0.951, 0.952],
        [0.96, 0.961, 0.962],
    )
    base = fake(
        "readout",
        [[1.0] * 40] * 3,
        [[0] * 40] * 3,
        [0.90, 0.905, 0.91],
        filters=None,
    )
    vs = image_results.baseline_verdicts(node, anode, base)
    assert [v.outcome for v in vs] == [verdicts.REPRODUCED] * 2
    assert "NODE (32 filters, p = 0)" in vs[0].claim and "p = 5" in vs[1].claim
    high = fake(
        "readout", [[1.0] * 40] * 3, [[0] * 40] * 3, [0.99] * 3, filters=None
    )
    assert not any(
        v.reproduced
        for v in image_results.baseline_verdicts(node, anode, high)
    )


def test_design_verdicts_gate_each_design_on_its_baseline(monkeypatch):
    good = _pair(
        [30, 31, 32],
        [20, 21, 22],
        [32, 33, 34],
        [26, 26, 27],
        [0.95, 0.951, 0.952],
        [0.96, 0.961, 0.962],
    )
    files = {
        image_results.DESIGN["a"]["NODE"]: good[0],
        image_results.DESIGN["a"]["ANODE"]: good[1],
        image_results.DESIGN["b"]["NODE"]: good[0],
        image_results.DESIGN["b"]["ANODE"]: fake(
            "anode", [[1.0] * 40] * 3, [[26] * 40] * 3, [0.5] * 3, p=2
        ),
        image_results.DESIGN_BASELINE: fake(
            "readout",
            [[1.0] * 40] * 3,
            [[0] * 40] * 3,
            [0.9, 0.905, 0.91],
            filters=None,
        ),
    }
    monkeypatch.setattr(image_results, "load_image_results", files.__getitem__)
    vs = image_results.design_verdicts(window=4)
    assert len(vs) == 8 and all(isinstance(v, verdicts.Verdict) for v in vs)
    assert [v.claim[:4] for v in vs] == ["(a) "] * 4 + ["(b) "] * 4
    assert [v.outcome for v in vs[:4]] == [verdicts.REPRODUCED] * 4
    # (b)'s ANODE is below the baseline: its four claims are inconclusive
    assert all(
        v.outcome == verdicts.INCONCLUSIVE
        and v.reason == image_results.BASELINE_REASON
        for v in vs[4:]
    )
    assert (
        len(image_results.design_verdicts(include_baseline=True, window=4))
        == 12
    )


def test_shipped_design_files_give_eight_verdicts():
    from anode_utils.resources import available_results

    names = [image_results.DESIGN_BASELINE] + [
        d[m] for d in image_results.DESIGN.values() for m in ("NODE", "ANODE")
    ]
    shipped = available_results("images")
    if not all(f"images/{n}" in shipped for n in names):
        pytest.skip("the 14x14 design's results files are not all shipped")
    vs = image_results.design_verdicts()
    assert len(vs) == 8
    assert all(v.outcome in verdicts.OUTCOMES for v in vs)
    for n in names:
        res = image_results.load_image_results(n)
        assert len(res["runs"]) >= 3 and all(
            r["status"] == "complete" for r in res["runs"]
        )
        assert (
            res["experiment"]["img_size"] == 14
            and res["experiment"]["subset"] == 10000
        )
        assert not math.isnan(res["runs"][0]["train_seconds"])


def test_fig11_as_the_paper_draws_it_uses_training_accuracy_per_epoch():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from anode_utils import plots_images

    res = fake(
        "node", [[1.0] * 20] * 3, [[20] * 10 + [26] * 10] * 3, [0.9] * 3
    )
    for r in res["runs"]:
        r["history"]["accuracy"] = [0.5] * 10 + [0.7] * 10
    ax = plots_images.plot_training_accuracy_vs_nfe(res, "NODE")
    x, y = ax.lines[0].get_data()
    assert list(x) == [20, 26] and [round(v, 6) for v in y] == [0.5, 0.7]
    assert ax.get_ylabel().startswith("training accuracy")
    plt.close("all")

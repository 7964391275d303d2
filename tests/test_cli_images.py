"""``python -m anode_utils images``: option checks before any data loads, checkpoints refused
before any weights load, the results file format (written while training, merged by seed),
the loader and the Fig. 10 / 11 plots. Tiny synthetic SVHN at 6 x 6 pixels: seconds."""

import argparse
import io
import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from test_images import write_synthetic_svhn  # noqa: E402

from anode_utils import cli_images, conv, image_results, images, plots_images  # noqa: E402
from anode_utils.__main__ import main as cli  # noqa: E402
from anode_utils.models import count_parameters  # noqa: E402
from anode_utils.provenance import read_json  # noqa: E402

BASE = [
    "images",
    "--dataset",
    "svhn",
    "--model",
    "anode",
    "--filters",
    "4",
    "--augment-dim",
    "1",
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
    "--method",
    "rk4",
    "--step-size",
    "0.5",
    "--checkpoint-every",
    "1",
]


@pytest.fixture
def svhn(tmp_path, monkeypatch):
    monkeypatch.setenv(
        images.ENV_VAR, str(write_synthetic_svhn(tmp_path / "data", 32, 16))
    )
    return tmp_path


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """An empty data folder: loading anything raises DatasetNotFoundError (not a ValueError),
    so a ValueError proves the check ran before the data set loads."""
    monkeypatch.setenv(images.ENV_VAR, str(tmp_path / "empty"))
    return tmp_path


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def replace(args, option, *values):
    """BASE with ``option`` set to ``values`` (appended when absent)."""
    args = list(args)
    if option in args:
        i = args.index(option)
        n = 1
        while i + n < len(args) and not args[i + n].startswith("--"):
            n += 1
        del args[i : i + n]
    return args + [option, *values]


# ----------------------------------------------------------------------------- option checks

BAD_OPTIONS = [
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--lr", "0"], "--lr must be a positive finite number"),
    (["--lr", "nan"], "--lr must be a positive finite number"),
    (["--weight-decay", "-1"], "--weight-decay must be a finite number >= 0"),
    (["--tol", "-0.001"], "--tol must be a positive finite number"),
    (["--filters", "0"], "--filters must be a positive integer"),
    (["--augment-dim", "-1"], "--augment-dim must be a non-negative integer"),
    (["--seeds", "-1"], "--seeds must be a non-negative integer"),
    (["--seeds", "1", "1"], "--seeds must not repeat a seed"),
    (["--subset", "0"], "--subset must be a positive integer"),
    (["--test-subset", "0"], "--test-subset must be a positive integer"),
    (["--img-size", "0"], "--img-size must be a positive integer"),
    (
        ["--checkpoint-every", "0"],
        "--checkpoint-every must be a positive integer",
    ),
    (["--max-seconds", "0"], "--max-seconds must be a positive finite number"),
    (
        ["--max-seconds", "inf"],
        "--max-seconds must be a positive finite number",
    ),
    (["--max-iters", "0"], "--max-iters must be a positive integer"),
    (["--max-num-steps", "0"], "--max-num-steps must be a positive integer"),
    (["--step-size", "0"], "--step-size must be a positive finite number"),
    (["--method", "rk45"], "--method must be one of the torchdiffeq solvers"),
    (["--method", "dopri5"], "--step-size is for fixed-step solvers"),
    (
        ["--device", "tpu"],
        "--device must be 'auto', 'cpu', 'cuda' or 'cuda:N'",
    ),
    (["--model", "node"], "--model node means no augmentation"),
    (["--augment-dim", "0"], "--model anode needs --augment-dim > 0"),
    (
        ["--backend", "lean", "--adjoint"],
        "--backend lean implements dopri5 with backpropagation",
    ),
    (
        ["--backend", "lean", "--method", "rk4"],
        "--backend lean implements dopri5 with backpropagation",
    ),
]


@pytest.mark.parametrize(
    "change,message", BAD_OPTIONS, ids=[" ".join(c) for c, _ in BAD_OPTIONS]
)
def test_every_option_is_checked_before_the_data_loads(
    change, message, no_data
):
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        cli(replace(BASE, *change))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_says_so(no_data):
    with pytest.raises(
        ValueError, match="--device cuda: CUDA is not available"
    ):
        cli(replace(BASE, "--device", "cuda"))


def test_option_types_are_checked_in_run_config(no_data):
    for bad, message in (
        (dict(batch_size="256"), "--batch-size must be a positive integer"),
        (dict(backend="fast"), "--backend must be one of torchdiffeq, lean"),
        (dict(lr="fast"), "--lr must be a positive finite number"),
        (dict(seed=1.5), "--seeds must be a non-negative integer"),
        (dict(time_dependent="yes"), "--time-dependent must be True or False"),
        (dict(tf32=1), "--tf32 must be True or False"),
        (dict(modle="node"), "unknown options"),
    ):
        with pytest.raises(ValueError, match=message):
            cli_images.run_config(dict(dataset="svhn", **bad))


def test_an_unparsable_value_names_the_option(capsys):
    with pytest.raises(SystemExit):
        cli(replace(BASE, "--batch-size", "many"))
    assert "--batch-size" in capsys.readouterr().err


# ----------------------------------------------------------------------------- time input


def test_time_input_is_on_by_default_and_can_be_switched_off():
    parser = argparse.ArgumentParser()
    cli_images.add_arguments(parser)
    assert cli_images.build_model(parser.parse_args([])).field.time_dependent
    assert not cli_images.build_model(
        parser.parse_args(["--no-time-dependent"])
    ).field.time_dependent


def test_backend_switch_reaches_the_model_and_stays_out_of_the_experiment():
    """--backend picks the solver implementation; it takes the same steps (tests/
    test_solver_backend.py), so it does not tell one experiment or checkpoint from another."""
    parser = argparse.ArgumentParser()
    cli_images.add_arguments(parser)
    assert (
        cli_images.build_model(parser.parse_args([])).odeblock.backend
        == "torchdiffeq"
    )
    assert (
        cli_images.build_model(
            parser.parse_args(["--backend", "lean"])
        ).odeblock.backend
        == "lean"
    )
    assert (
        "backend"
        not in image_results.CHECKPOINT_KEYS + image_results.EXPERIMENT_KEYS
    )


@pytest.mark.parametrize(
    "dataset,model,expected",
    [
        ("mnist", "node", 85_316),
        ("mnist", "anode", 85_462),
        ("cifar10", "node", 173_611),
        ("cifar10", "anode", 172_452),
    ],
)
def test_parameter_counts_with_the_time_input(dataset, model, expected):
    """The presets (matched without a time input) with the authors' time channel: one more
    input channel to each of the three convolutions."""
    parser = argparse.ArgumentParser()
    cli_images.add_arguments(parser)
    args = parser.parse_args(["--dataset", dataset, "--model", model])
    assert count_parameters(cli_images.build_model(args)) == expected
    assert (
        count_parameters(conv.preset(dataset, model, time_dependent=True))
        == expected
    )


# ----------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint after one iteration of BASE (made once for the module)."""
    root = tmp_path_factory.mktemp("ckpt")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(
            images.ENV_VAR, str(write_synthetic_svhn(root / "data", 32, 16))
        )
        cli(BASE + ["--max-iters", "1", "--checkpoint", str(root / "run.pt")])
    return root / "run.pt"


@pytest.mark.parametrize(
    "change,option",
    [
        (["--filters", "5"], "--filters 4 there, 5 now"),
        (["--augment-dim", "2"], "--augment-dim 1 there, 2 now"),
        (["--no-time-dependent"], "--time-dependent True there, False now"),
        (["--adjoint"], "--adjoint False there, True now"),
        (["--tf32"], "--tf32 False there, True now"),
        (["--step-size", "0.25"], "--step-size 0.5 there, 0.25 now"),
        (["--max-num-steps", "50"], "--max-num-steps 1000 there, 50 now"),
        (["--img-size", "5"], "--img-size 6 there, 5 now"),
    ],
)
def test_a_checkpoint_of_other_options_is_refused_before_weights_or_data_load(
    change, option, checkpoint, no_data, monkeypatch
):
    loaded = []
    monkeypatch.setattr(
        cli_images, "load_checkpoint", lambda *a: loaded.append(a)
    )
    with pytest.raises(
        cli_images.CheckpointError,
        match=f"{checkpoint.name} was written with other "
        f"options: {option}.*another --checkpoint",
    ):
        cli(replace(BASE, *change) + ["--checkpoint", str(checkpoint)])
    assert not loaded


def test_a_garbage_checkpoint_names_the_file_and_what_to_do(no_data):
    bad = no_data / "garbage.pt"
    bad.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(cli_images.CheckpointError) as info:
        cli(BASE + ["--checkpoint", str(bad)])
    msg = str(info.value)
    assert (
        str(bad) in msg
        and "delete it" in msg
        and "another --checkpoint" in msg
    )
    assert "weights_only" not in msg
    torch.save(
        {"weights": torch.zeros(2)}, bad
    )  # a torch file, but not this command's
    with pytest.raises(
        cli_images.CheckpointError,
        match="does not hold a checkpoint.*delete it",
    ):
        cli(BASE + ["--checkpoint", str(bad)])
    with pytest.raises(cli_images.CheckpointError, match="is not a file"):
        cli(BASE + ["--checkpoint", str(no_data)])


# ----------------------------------------------------------------------------- results files


def test_results_file_format(svhn):
    out = svhn / "r.json"
    cli(BASE + ["--out", str(out), "--seeds", "3"])
    res = image_results.load_image_results(out)
    assert (
        res["format"] == "anode_utils.image-results/1" == image_results.FORMAT
    )
    assert (
        res["experiment"]["time_dependent"] is True
        and res["experiment"]["filters"] == 4
    )
    assert res["num_parameters"] == res["runs"][0]["num_parameters"] > 0
    prov = res["provenance"]
    assert {
        "command",
        "torch",
        "torchdiffeq",
        "cuda",
        "cudnn",
        "gpu",
        "precision",
    } <= set(prov)
    assert prov["precision"]["cudnn_allow_tf32"] is False
    assert prov["precision"]["float32_matmul_precision"] == "highest"
    (run,) = res["runs"]
    assert (
        run["seed"] == 3
        and run["status"] == "complete"
        and run["stopped_by"] is None
    )
    assert run["iterations"] == 4 and run["epochs_completed"] == 2
    h = run["history"]
    assert (
        len(h["loss"])
        == len(h["nfe_forward"])
        == len(h["nfe_backward"])
        == len(h["accuracy"])
        == 4
    )
    assert h["epoch_end"] == [2, 4] and h["error"] is None
    assert (
        len(run["test_accuracy_per_epoch"])
        == len(run["test_loss_per_epoch"])
        == 2
    )
    assert run["test_accuracy"] == run["test_accuracy_per_epoch"][-1]
    assert run["config"]["epochs"] == 2 and run["config"]["out"] == str(out)
    assert run["world_size"] == 1 and run["device"] == "cpu"
    assert not list(svhn.glob("*.tmp"))


def test_results_are_written_while_training(svhn, monkeypatch):
    writes = []
    real = image_results.write_run
    monkeypatch.setattr(
        image_results,
        "write_run",
        lambda path, exp, run, n: (
            writes.append(
                (run["status"], run["iterations"], run["epochs_completed"])
            )
            or real(path, exp, run, n)
        ),
    )
    cli(BASE + ["--out", str(svhn / "r.json"), "--checkpoint-every", "100"])
    assert ("running", 2, 1) in writes  # at the end of epoch 1
    assert writes[-1] == ("complete", 4, 2)


def test_max_seconds_and_max_iters_stop_then_evaluate_and_write(svhn):
    out = svhn / "r.json"
    cli(BASE + ["--out", str(out), "--max-seconds", "1e-9"])
    run = read_json(out)["runs"][0]
    assert (run["status"], run["stopped_by"], run["iterations"]) == (
        "stopped",
        "max_seconds",
        1,
    )
    assert run["test_accuracy"] is not None and run["epochs_completed"] == 0
    cli(BASE + ["--out", str(out), "--max-iters", "3"])
    run = read_json(out)["runs"][0]
    assert (run["status"], run["stopped_by"], run["iterations"]) == (
        "stopped",
        "max_iters",
        3,
    )
    assert run["test_accuracy"] is not None and run["epochs_completed"] == 1


def test_out_merges_other_seeds_and_refuses_another_experiment(svhn, capsys):
    out = svhn / "r.json"
    cli(BASE + ["--out", str(out), "--seeds", "0", "--max-iters", "2"])
    first = read_json(out)["runs"][0]
    cli(BASE + ["--out", str(out), "--seeds", "1", "--max-iters", "2"])
    assert "holds seeds [0]: kept" in capsys.readouterr().out
    res = read_json(out)
    assert [r["seed"] for r in res["runs"]] == [0, 1] and res["runs"][
        0
    ] == first
    before = out.read_bytes()
    with pytest.raises(
        ValueError,
        match=r"--out .*r\.json holds runs \(seeds \[0, 1\]\) of another "
        r"experiment \(--lr 0\.001 there, 0\.01 now\)",
    ):
        cli(BASE + ["--out", str(out), "--seeds", "2", "--lr", "0.01"])
    with pytest.raises(ValueError, match="--test-subset 16 there, 8 now"):
        cli(replace(BASE, "--test-subset", "8") + ["--out", str(out)])
    assert out.read_bytes() == before


def test_out_that_is_another_file_is_refused_and_left_alone(no_data):
    other = no_data / "toy.json"
    other.write_text(json.dumps({"format": "anode_utils.toy-results/1"}))
    with pytest.raises(
        ValueError, match="is not an image results file.*left alone"
    ):
        cli(BASE + ["--out", str(other)])
    other.write_text("{half a file")
    with pytest.raises(ValueError, match="not readable JSON.*another --out"):
        cli(BASE + ["--out", str(other)])
    assert other.read_text() == "{half a file"


def test_loader_takes_a_path_or_a_shipped_name(svhn, monkeypatch):
    out = svhn / "r.json"
    cli(BASE + ["--out", str(out), "--seeds", "0", "1", "--max-iters", "3"])
    res = image_results.load_image_results(str(out))
    assert [len(h) for h in image_results.image_histories(res)] == [3, 3]
    rows = image_results.summary(res)
    assert [r["seed"] for r in rows] == [0, 1] and rows[0][
        "nfe_forward_last_epoch"
    ] == 4 * 2
    with pytest.raises(
        FileNotFoundError, match="no results file 'images/no_such_run'"
    ):
        image_results.load_image_results("no_such_run")
    with pytest.raises(FileNotFoundError, match="no image results file at"):
        image_results.load_image_results(svhn / "missing.json")
    toy = svhn / "toy.json"
    toy.write_text(json.dumps({"format": "anode_utils.toy-results/1"}))
    with pytest.raises(ValueError, match="not an image results file"):
        image_results.load_image_results(toy)
    # a shipped name resolves inside the package's results/images/
    import anode_utils.resources as resources

    monkeypatch.setattr(
        resources,
        "results_path",
        lambda name: out if str(name) == "images/mine" else None,
    )
    assert image_results.load_image_results("mine") == res
    assert image_results.load_image_results("images/mine") == res


# ----------------------------------------------------------------------------- figures


def fake_results(model, seeds=(0, 1, 2), n=30, epochs=3, nfe0=14):
    """A results dict shaped like the command's, with made-up series (no training)."""
    runs = []
    for s in seeds:
        loss = [2.3 * math.exp(-i / 10) + 0.01 * s for i in range(n)]
        nfe = [nfe0 + 6 * (i // 10) + (s % 2) * 6 for i in range(n)]
        runs.append(
            {
                "seed": s,
                "status": "complete",
                "iterations": n,
                "epochs_completed": epochs,
                "history": {
                    "loss": loss,
                    "nfe_forward": nfe,
                    "nfe_backward": [0] * n,
                    "accuracy": [0.5] * n,
                    "epoch_end": [10, 20, 30],
                    "error": None,
                },
                "test_accuracy_per_epoch": [
                    0.9 + 0.02 * e + 0.001 * s for e in range(epochs)
                ],
                "test_loss_per_epoch": [0.3] * epochs,
                "test_accuracy": 0.95,
            }
        )
    return {
        "format": image_results.FORMAT,
        "experiment": {"model": model},
        "runs": runs,
    }


def test_fig10_and_fig11_draw_node_against_anode_with_bands():
    runs = {
        "NODE": fake_results("node", nfe0=20),
        "ANODE": fake_results("anode"),
    }
    axes = plots_images.plot_fig10(runs, window=5)
    assert [ax.get_xlabel() for ax in axes] == [
        "iteration",
        "iteration",
        "training loss",
    ]
    assert [ax.get_ylabel() for ax in axes] == [
        "training loss",
        "forward NFE",
        "forward NFE",
    ]
    assert (
        len(axes[0].lines) == 2 and len(axes[0].collections) == 2
    )  # a mean and a band per model
    assert len(axes[2].lines) == 2 * (1 + 3)  # mean + one thin line per seed
    ax = plots_images.plot_fig11(runs)
    assert (
        ax.get_xlabel().startswith("forward NFE")
        and ax.get_ylabel() == "test accuracy"
    )
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "NODE",
        "ANODE",
    ]
    pts = plots_images.accuracy_vs_nfe(runs["NODE"])
    assert pts[0] == ([20, 26, 32], pytest.approx([0.9, 0.92, 0.94]))
    buf = io.BytesIO()
    axes[0].figure.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


def test_figures_of_runs_cut_short_by_a_budget():
    short = fake_results("anode", seeds=(0,), n=4, epochs=0)
    for r in short["runs"]:
        r["history"]["epoch_end"], r["test_accuracy_per_epoch"] = [], []
    plots_images.plot_image_series(
        short, "nfe_forward", window=10
    )  # window wider than the run
    with pytest.raises(ValueError, match="no completed epoch"):
        plots_images.plot_accuracy_vs_nfe(short)


# ----------------------------------------------------------------------------- Section 5.2 claims


def test_seed_metrics_average_the_last_epoch_and_skip_unfinished_runs():
    res = fake_results("node", nfe0=20)
    res["runs"][2]["status"] = "stopped"
    m = image_results.seed_metrics(res)
    assert sorted(m) == [0, 1]
    assert (
        m[0]["nfe"] == 32 and m[1]["nfe"] == 38
    )  # iterations 20-29: nfe0 + 12 (+ 6 for odd seeds)
    assert m[0]["loss"] == pytest.approx(
        sum(2.3 * math.exp(-i / 10) for i in range(20, 30)) / 10
    )
    assert m[1]["test_accuracy"] == 0.95


def test_section52_claims_apply_the_two_standard_error_rule():
    node, anode = fake_results("node", nfe0=26), fake_results("anode", nfe0=14)
    for r in anode["runs"]:
        r["test_accuracy"] = 0.97 + 0.001 * r["seed"]
    rows = {
        r["metric"]: r for r in image_results.section52_claims(node, anode)
    }
    assert (
        rows["nfe"]["ok"] and rows["nfe"]["count"] == 3
    )  # 12 fewer evaluations, seed spread ~3.5
    assert (
        not rows["loss"]["ok"] and rows["loss"]["count"] == 0
    )  # identical losses: not lower
    assert rows["test_accuracy"]["ok"] and rows["test_accuracy"]["seeds"] == 3
    # a difference inside the seed noise is not a reproduction
    for r in anode["runs"]:
        r["test_accuracy"] = 0.95 + (0.02 if r["seed"] == 0 else -0.005)
    assert not {
        r["metric"]: r for r in image_results.section52_claims(node, anode)
    }["test_accuracy"]["ok"]
    anode["runs"] = anode["runs"][:1]
    with pytest.raises(ValueError, match="ANODE results hold 1 complete run"):
        image_results.section52_claims(node, anode)

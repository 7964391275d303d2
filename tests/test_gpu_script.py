"""scripts/gpu_paper_mnist.py at tiny scale on the CPU: the authors' MNIST pair (NODE 92 filters,
ANODE 64 + 5 channels, time input, dopri5) on a few dozen 6 x 6 images, two iterations each."""

import importlib.util
import os
import pathlib

import pytest
import torch

from anode_utils import image_results, precision

ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_mnist():
    env = os.environ.get("ANODE_DATA_DIR")
    data = pathlib.Path(env) if env else ROOT.parent / "shared" / "data"
    if not (data / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(
            f"no offline MNIST at {data}/MNIST/raw (set ANODE_DATA_DIR)"
        )
    return data


@pytest.fixture
def script():
    spec = importlib.util.spec_from_file_location(
        "gpu_paper_mnist", ROOT / "scripts" / "gpu_paper_mnist.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = precision.settings()
    yield module
    torch.backends.cudnn.allow_tf32 = before["cudnn_allow_tf32"]
    torch.backends.cuda.matmul.allow_tf32 = before["cuda_matmul_allow_tf32"]
    torch.set_float32_matmul_precision(before["float32_matmul_precision"])


TINY = [
    "--device",
    "cpu",
    "--jobs",
    "1",
    "--img-size",
    "6",
    "--subset",
    "64",
    "--test-subset",
    "32",
    "--batch-size",
    "16",
    "--max-iters",
    "2",
    "--reserve",
    "1",
]


def test_gpu_script_at_tiny_scale_writes_both_results_files(
    script, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("ANODE_DATA_DIR", str(shared_mnist()))
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    rc = script.main(
        TINY
        + [
            "--max-seconds",
            "60",
            "--out-dir",
            str(out),
            "--checkpoint-dir",
            str(ckpt),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    assert (
        "float32 matmul precision 'highest'" in text
        and "torchdiffeq" in text
        and "verified" in text
    )
    for model, filters, augment in (("node", 92, 0), ("anode", 64, 5)):
        res = image_results.load_image_results(out / f"mnist_{model}.json")
        exp = res["experiment"]
        assert (exp["filters"], exp["augment_dim"], exp["time_dependent"]) == (
            filters,
            augment,
            True,
        )
        assert (exp["method"], exp["tol"], exp["lr"], exp["tf32"]) == (
            "dopri5",
            0.001,
            0.001,
            False,
        )
        (run,) = res["runs"]
        assert (
            run["config"]["epochs"] == 20 and run["config"]["max_seconds"] > 0
        )
        assert (run["status"], run["iterations"]) == ("stopped", 2) and run[
            "test_accuracy"
        ] is not None
        assert (ckpt / f"mnist_{model}.seed0.pt").is_file()
    assert (
        "test accuracy"
        in text.split("# done")[0].rsplit("mnist_anode.json", 1)[1]
    )


def test_gpu_script_refuses_a_budget_it_cannot_keep(
    script, tmp_path, monkeypatch
):
    monkeypatch.setenv("ANODE_DATA_DIR", str(shared_mnist()))
    with pytest.raises(SystemExit, match="leaves .* s of training per run"):
        script.main(
            TINY
            + [
                "--max-seconds",
                "20",
                "--reserve",
                "30",
                "--out-dir",
                str(tmp_path),
            ]
        )
    with pytest.raises(SystemExit):
        script.main(TINY + ["--max-seconds", "0"])


def test_outputs_default_to_the_working_directory_not_the_package(
    script, tmp_path, monkeypatch
):
    """Results and checkpoints go under the working directory (an installed package's folder
    is site-packages); the commands the script runs get those relative paths."""
    monkeypatch.chdir(tmp_path)
    args = script.parse(TINY + ["--max-seconds", "60"])
    assert pathlib.Path(args.out_dir) == pathlib.Path("results", "images")
    assert pathlib.Path(args.checkpoint_dir) == pathlib.Path(
        "runs", "gpu_paper_mnist"
    )
    cmd = script.command(args, "anode", 0, 10.0)
    out = cmd[cmd.index("--out") + 1]
    assert pathlib.Path(out) == pathlib.Path(
        "results", "images", "mnist_anode.json"
    )
    assert "anode_utils" not in pathlib.Path(out).parts

"""The commands as a user meets them: an expected error (bad option, missing data set, a
checkpoint or results file it cannot use, a bad config) prints one ``error: ...`` line and
exits non-zero, with no Python traceback. Each case fails before any training starts."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]

# tiny settings: if a check were missing, training would still end in seconds
IMAGES = (
    "images --dataset svhn --model anode --filters 4 --augment-dim 1 "
    "--img-size 6 --subset 32 --test-subset 16 --batch-size 16 --epochs 1 "
    "--method rk4 --step-size 0.5 --device cpu"
).split()


def command(args, cwd, data_dir):
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        ANODE_DATA_DIR=str(data_dir),
        PYTHONPATH=os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    )
    return subprocess.run(
        [sys.executable, "-m", "anode_utils", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_clean_error(proc, *words):
    err = proc.stderr
    assert proc.returncode != 0, (proc.stdout, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], err


@pytest.fixture
def place(tmp_path):
    """A working folder and an empty data folder (ANODE_DATA_DIR: nothing downloads)."""
    (tmp_path / "data").mkdir()
    return tmp_path


def test_images_missing_data_set(place):
    proc = command(IMAGES, place, place / "data")
    assert_clean_error(proc, "SVHN not found", str(place / "data"))


@pytest.mark.parametrize(
    "option,value",
    [
        ("--batch-size", "0"),
        ("--epochs", "-1"),
        ("--lr", "-1"),
        ("--seeds", "-3"),
    ],
)
def test_images_bad_option_value(place, option, value):
    proc = command(IMAGES + [option, value], place, place / "data")
    assert_clean_error(proc, option)


def test_images_unparsable_option_is_a_usage_error(place):
    proc = command(IMAGES + ["--batch-size", "abc"], place, place / "data")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: argument --batch-size" in proc.stderr


def test_images_unreadable_checkpoint(place):
    (place / "run.pt").write_bytes(b"not a checkpoint")
    proc = command(IMAGES + ["--checkpoint", "run.pt"], place, place / "data")
    assert_clean_error(proc, "run.pt", "another --checkpoint")


def test_images_checkpoint_of_other_options(place):
    config = {
        "dataset": "svhn",
        "model": "anode",
        "filters": 4,
        "augment_dim": 1,
        "img_size": 6,
        "batch_size": 16,
        "method": "rk4",
        "step_size": 0.5,
        "lr": 0.01,
    }
    torch.save(
        {
            "model": {},
            "optimizer": {},
            "history": {},
            "rng": {},
            "config": config,
        },
        place / "run.pt",
    )
    proc = command(IMAGES + ["--checkpoint", "run.pt"], place, place / "data")
    assert_clean_error(proc, "run.pt was written with other options", "--lr")


def test_images_out_is_a_folder(place):
    (place / "results").mkdir()
    proc = command(IMAGES + ["--out", "results"], place, place / "data")
    assert_clean_error(proc, "--out results")


def test_images_out_of_another_format(place):
    (place / "res.json").write_text(json.dumps({"format": "something else"}))
    proc = command(IMAGES + ["--out", "res.json"], place, place / "data")
    assert_clean_error(proc, "--out res.json", "not an image results file")


def toy_config(place, **base):
    path = place / "config.json"
    path.write_text(
        json.dumps(
            {
                "base": {"epochs": 1, **base},
                "experiments": [{"name": "node", "config": {}}],
            }
        )
    )
    return str(path)


def test_toy_missing_config(place):
    proc = command(
        ["toy", "--config", "missing.json", "--out", "o.json"],
        place,
        place / "data",
    )
    assert_clean_error(proc, "missing.json")


def test_toy_bad_seeds(place):
    proc = command(
        [
            "toy",
            "--config",
            toy_config(place),
            *"--out o.json --seeds 5-2".split(),
        ],
        place,
        place / "data",
    )
    assert_clean_error(proc)


def test_toy_bad_config_field(place):
    proc = command(
        [
            "toy",
            "--config",
            toy_config(place, hidden_dim=-4),
            *"--out o.json --seeds 0".split(),
        ],
        place,
        place / "data",
    )
    assert_clean_error(proc, "hidden_dim")


def test_toy_bad_processes(place):
    proc = command(
        [
            "toy",
            "--config",
            toy_config(place),
            *"--out o.json --seeds 0 --processes 0".split(),
        ],
        place,
        place / "data",
    )
    assert_clean_error(proc, "--processes")

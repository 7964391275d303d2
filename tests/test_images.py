"""Image NODEs/ANODEs: paper presets, channel augmentation, offline data, checkpoint/resume, DDP."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from anode_utils import conv, images
from anode_utils.__main__ import main as cli
from anode_utils.models import count_parameters

ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_data():
    env = os.environ.get("ANODE_DATA_DIR")
    return pathlib.Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.mark.parametrize(
    "dataset,model,expected",
    [
        ("mnist", "node", 84_395),
        ("mnist", "anode", 84_816),
        ("cifar10", "node", 172_358),
        ("cifar10", "anode", 171_799),
        ("svhn", "node", 172_358),
        ("svhn", "anode", 171_799),
    ],
)
def test_paper_presets_are_parameter_matched(dataset, model, expected):
    assert count_parameters(conv.preset(dataset, model)) == expected


def test_channel_augmentation_shapes():
    x = torch.rand(3, 1, 8, 8)
    assert conv.augment_channels(x, 0) is x
    h = conv.augment_channels(x, 5)
    assert (
        h.shape == (3, 6, 8, 8)
        and torch.equal(h[:, :1], x)
        and not h[:, 1:].any()
    )
    net = conv.ConvODENet(
        (1, 8, 8), num_filters=4, augment_dim=5, time_dependent=True
    )
    assert net.features(x).shape == (3, 6, 8, 8)
    assert net(x).shape == (3, 10)
    assert net.readout.in_features == 6 * 8 * 8
    traj = net.odeblock(x, times=[0.0, 0.5, 1.0])
    assert traj.shape == (3, 3, 6, 8, 8) and torch.equal(traj[0], h)
    assert net.field.nfe > 0


def test_conv_errors_are_clear():
    net = conv.ConvODENet((1, 8, 8), num_filters=4, augment_dim=2)
    with pytest.raises(ValueError, match=r"shape \(batch, 1, height, width\)"):
        net(torch.rand(3, 3, 8, 8))
    with pytest.raises(ValueError, match="img_size"):
        conv.ConvODENet((8, 8), num_filters=4)
    with pytest.raises(ValueError, match="num_filters"):
        conv.ConvField(3, 0)
    with pytest.raises(ValueError, match="dataset"):
        conv.preset("imagenet", "node")


def test_mnist_from_the_offline_copy(monkeypatch):
    data = shared_data()
    if not (data / "MNIST" / "raw").is_dir():
        pytest.skip(
            f"no offline MNIST at {data}/MNIST/raw (set ANODE_DATA_DIR to the shared data folder)"
        )
    monkeypatch.setenv("ANODE_DATA_DIR", str(data))
    x, y = images.load_images("mnist", "test", subset=50, img_size=14)
    assert x.shape == (50, 1, 14, 14) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
    assert y.dtype == torch.int64 and y[:5].tolist() == [
        7,
        2,
        1,
        0,
        4,
    ]  # MNIST's first test labels


def test_cifar10_subset_from_the_offline_copy(monkeypatch):
    data = shared_data()
    if not (data / "cifar10-subset" / "cifar10_subset.npz").is_file():
        pytest.skip(f"no CIFAR-10 subset at {data}/cifar10-subset")
    monkeypatch.setenv("ANODE_DATA_DIR", str(data))
    x, y = images.load_images("cifar10", "train", subset=10)
    assert x.shape == (10, 3, 32, 32)
    assert y.tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert torch.allclose(
        x[0, :, 0, 0] * 255, torch.tensor([59.0, 62.0, 63.0])
    )


@pytest.mark.parametrize("name", images.DATASETS)
def test_missing_offline_data_says_where_to_put_it(
    name, tmp_path, monkeypatch
):
    monkeypatch.setenv("ANODE_DATA_DIR", str(tmp_path))
    with pytest.raises(
        images.DatasetNotFoundError,
        match=f"ANODE_DATA_DIR={tmp_path}.*Put the files",
    ):
        images.load_images(name)


def write_synthetic_svhn(root, n_train=64, n_test=32):
    """SVHN-shaped arrays in the official .mat layout: X (32, 32, 3, n) uint8, y (n, 1) in 1..10."""
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    (root / "SVHN").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        savemat(
            root / "SVHN" / f"{split}_32x32.mat",
            {
                "X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                "y": (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8),
            },
        )
    return root


def test_svhn_loader_on_synthetic_arrays(tmp_path, monkeypatch):
    monkeypatch.setenv("ANODE_DATA_DIR", str(write_synthetic_svhn(tmp_path)))
    x, y = images.load_images("svhn", "train")
    assert x.shape == (64, 3, 32, 32) and x.dtype == torch.float32
    assert (
        y.min() == 0 and y.max() == 9 and y[9] == 0
    )  # label 10 means digit 0
    xs, _ = images.load_images("svhn", "test", subset=5, img_size=8)
    assert xs.shape == (5, 3, 8, 8)
    with pytest.raises(ValueError, match="exceeds"):
        images.load_images("svhn", "test", subset=33)


TINY = [
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
    "48",
    "--batch-size",
    "16",
    "--epochs",
    "2",
    "--method",
    "rk4",
    "--step-size",
    "0.5",
    "--checkpoint-every",
    "2",
]


def test_checkpoint_resume_gives_an_identical_history(tmp_path, monkeypatch):
    monkeypatch.setenv("ANODE_DATA_DIR", str(write_synthetic_svhn(tmp_path)))
    a, b = tmp_path / "a", tmp_path / "b"
    cli(
        TINY
        + ["--checkpoint", str(a / "run.pt"), "--out", str(a / "run.json")]
    )
    # interrupted after 4 of 6 iterations (mid-epoch 2), then the same command resumes
    cli(TINY + ["--checkpoint", str(b / "run.pt"), "--max-iters", "4"])
    assert (
        len(torch.load(b / "run.pt", weights_only=True)["history"]["loss"])
        == 4
    )
    cli(
        TINY
        + ["--checkpoint", str(b / "run.pt"), "--out", str(b / "run.json")]
    )
    ra = images_json(a / "run.json")
    rb = images_json(b / "run.json")
    assert len(ra["history"]["loss"]) == 6 and ra["history"]["epoch_end"] == [
        3,
        6,
    ]
    assert ra["history"] == rb["history"]
    assert ra["test_accuracy"] == rb["test_accuracy"]
    sa = torch.load(a / "run.pt", weights_only=True)
    sb = torch.load(b / "run.pt", weights_only=True)
    assert all(
        torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"]
    )
    with pytest.raises(ValueError, match="--lr"):
        cli(TINY + ["--checkpoint", str(b / "run.pt"), "--lr", "0.1"])


def images_json(path):
    from anode_utils.provenance import read_json

    d = read_json(path)
    assert d["provenance"]["command"]
    return d["runs"][0]


def test_ddp_two_processes_match_one_process_on_the_global_batch(tmp_path):
    data = write_synthetic_svhn(tmp_path / "data")
    env = dict(os.environ, ANODE_DATA_DIR=str(data), OMP_NUM_THREADS="1")
    args = TINY + ["--max-iters", "3", "--checkpoint-every", "100"]
    one = subprocess.run(
        [
            sys.executable,
            "-m",
            "anode_utils",
            *args,
            "--checkpoint",
            str(tmp_path / "one.pt"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "anode_utils",
            *args,
            "--checkpoint",
            str(tmp_path / "two.pt"),
            "--out",
            str(tmp_path / "two.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    s1 = torch.load(tmp_path / "one.pt", weights_only=True)
    s2 = torch.load(tmp_path / "two.pt", weights_only=True)
    from anode_utils.provenance import read_json

    assert read_json(tmp_path / "two.json")["runs"][0]["world_size"] == 2
    for k in s1["model"]:
        assert torch.allclose(s1["model"][k], s2["model"][k], atol=1e-5), k
    assert np.allclose(s1["history"]["loss"], s2["history"]["loss"], atol=1e-5)


def mnist_copy(tmp_path, corrupt=None):
    """An MNIST/raw folder whose files link to the shared copy, except ``corrupt``: name -> bytes."""
    src = shared_data() / "MNIST" / "raw"
    if not (src / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no offline MNIST at {src}")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in src.glob("*.gz"):
        if f.name not in (corrupt or {}):
            (raw / f.name).symlink_to(f)
    for name, data in (corrupt or {}).items():
        (raw / name).write_bytes(data)
    return tmp_path, src


def test_truncated_mnist_gz_names_the_file_and_what_to_do(
    tmp_path, monkeypatch
):
    root, src = mnist_copy(
        tmp_path,
        {
            "t10k-labels-idx1-ubyte.gz": (
                shared_data() / "MNIST/raw/t10k-labels-idx1-ubyte.gz"
            ).read_bytes()[:3000]
        },
    )
    monkeypatch.setenv("ANODE_DATA_DIR", str(root))
    with pytest.raises(
        images.DatasetCorruptError,
        match=r"t10k-labels-idx1-ubyte\.gz is corrupt.*md5 .*expected ec29112d.*Delete it",
    ):
        images.load_images("mnist", "test", subset=5)


def test_uncompressed_mnist_with_a_wrong_header_or_length_is_refused(
    tmp_path, monkeypatch
):
    header = (2049).to_bytes(4, "big") + (10000).to_bytes(4, "big")
    for data, fragment in (
        (header + bytes(9999), "9999 data bytes"),
        (
            (2051).to_bytes(4, "big") + header[4:] + bytes(10000),
            "magic number 2051, expected 2049",
        ),
        (b"garbage!", "no IDX header"),
    ):
        sub = tmp_path / str(len(data))
        root, _ = mnist_copy(
            sub, {"t10k-labels-idx1-ubyte": data}
        )  # read before the .gz
        monkeypatch.setenv("ANODE_DATA_DIR", str(root))
        with pytest.raises(
            images.DatasetCorruptError,
            match=f"t10k-labels-idx1-ubyte is corrupt.*{fragment}",
        ):
            images.load_images("mnist", "test")


def test_a_file_that_is_not_gzip_names_the_file(tmp_path):
    bad = tmp_path / "some-idx1-ubyte.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(
        images.DatasetCorruptError,
        match="some-idx1-ubyte.gz is corrupt.*BadGzipFile",
    ):
        images.read_mnist_file(bad)


def test_mnist_md5_is_computed_once_per_file(tmp_path, monkeypatch):
    root, _ = mnist_copy(tmp_path)
    monkeypatch.setenv("ANODE_DATA_DIR", str(root))
    images.load_images("mnist", "test", subset=2)
    calls = []
    real = images.hashlib.md5
    monkeypatch.setattr(
        images.hashlib, "md5", lambda *a: calls.append(a) or real(*a)
    )
    images.load_images("mnist", "test", subset=2)
    assert calls == []

"""Image data sets (MNIST, CIFAR-10, SVHN) as in-memory tensors.

Where the files come from is set by ONE environment variable, ``ANODE_DATA_DIR``:

- set: an offline copy in torchvision's layout; nothing is downloaded.
  MNIST: ``$ANODE_DATA_DIR/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``;
  CIFAR-10: ``$ANODE_DATA_DIR/cifar-10-batches-py/`` (the full torchvision copy) or else the
  subset ``$ANODE_DATA_DIR/cifar10-subset/cifar10_subset.npz`` (x_train, y_train, x_test,
  y_test; uint8, HWC images);
  SVHN: ``$ANODE_DATA_DIR/SVHN/{train,test}_32x32.mat`` (the official .mat files).
- unset: torchvision downloads the data sets to ``~/.cache/anode_utils/data`` (same layout).

Images are returned as float32 tensors in [0, 1] of shape (n, c, height, width) and labels as
int64 tensors of shape (n,), so batches are tensor slices (see :func:`anode_utils.data.batches`)
instead of a per-sample DataLoader.
"""
import gzip
import os
import pathlib

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import check_choice, check_pos_int

DATASETS = ("mnist", "cifar10", "svhn")
SPLITS = ("train", "test")
ENV_VAR = "ANODE_DATA_DIR"
DEFAULT_ROOT = pathlib.Path.home() / ".cache" / "anode_utils" / "data"


class DatasetNotFoundError(FileNotFoundError):
    """A data set is not where the offline layout says it should be (see the module docstring)."""


def data_root():
    """(root, offline): ``$ANODE_DATA_DIR`` (offline) if set, else the download cache."""
    env = os.environ.get(ENV_VAR)
    if env:
        return pathlib.Path(env).expanduser(), True
    return DEFAULT_ROOT, False


def _missing(name, root, expected):
    return DatasetNotFoundError(
        f"{name} not found offline: {ENV_VAR}={root} is set, so nothing is downloaded. Put the files "
        f"at {expected} (torchvision's layout), or unset {ENV_VAR} to let torchvision download "
        f"them to {DEFAULT_ROOT}.")


def _read_idx(path):
    """An MNIST idx file (optionally gzipped) as a uint8 tensor."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return torch.from_numpy(arr.copy()).reshape(shape)


def _mnist(root, split, offline):
    raw = root / "MNIST" / "raw"
    prefix = "train" if split == "train" else "t10k"
    found = []
    for stem in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
        path = next((p for p in (raw / stem, raw / f"{stem}.gz") if p.is_file()), None)
        found.append(path)
    if None not in found:  # read in place: never writes into the (possibly shared) data folder
        return _read_idx(found[0]).unsqueeze(1), _read_idx(found[1]).long()
    if offline:
        raise _missing("MNIST", root, f"{raw}/{prefix}-images-idx3-ubyte.gz and "
                                      f"{prefix}-labels-idx1-ubyte.gz")
    from torchvision.datasets import MNIST
    ds = MNIST(root, train=split == "train", download=True)
    return ds.data.unsqueeze(1), ds.targets.long()


def _cifar10(root, split, offline):
    npz = root / "cifar10-subset" / "cifar10_subset.npz"
    if (root / "cifar-10-batches-py").is_dir() or not offline:
        from torchvision.datasets import CIFAR10
        ds = CIFAR10(root, train=split == "train", download=not offline)
        return torch.from_numpy(ds.data).permute(0, 3, 1, 2), torch.tensor(ds.targets).long()
    if not npz.is_file():
        raise _missing("CIFAR-10", root, f"{root / 'cifar-10-batches-py'} (full copy) or {npz} (subset)")
    with np.load(npz) as f:  # the real subset: 4,000 train / 1,000 test images
        x, y = f[f"x_{split}"], f[f"y_{split}"]
    return torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(y.astype(np.int64))


def _svhn(root, split, offline):
    mat = root / "SVHN" / f"{split}_32x32.mat"
    if mat.is_file():
        try:
            from scipy.io import loadmat
        except ImportError as err:  # pragma: no cover
            raise ImportError("reading SVHN's .mat files needs scipy: pip install scipy") from err
        d = loadmat(mat)
        x = torch.from_numpy(np.ascontiguousarray(d["X"].transpose(3, 2, 0, 1)))  # (32,32,3,n) -> (n,3,32,32)
        y = torch.from_numpy(d["y"].astype(np.int64).reshape(-1) % 10)             # label 10 is digit 0
        return x, y
    if offline:
        raise _missing("SVHN", root, str(mat))
    from torchvision.datasets import SVHN
    ds = SVHN(root / "SVHN", split=split, download=True)
    return torch.from_numpy(ds.data), torch.from_numpy(ds.labels.astype(np.int64))


LOADERS = {"mnist": _mnist, "cifar10": _cifar10, "svhn": _svhn}


def to_float_images(x, img_size=None):
    """uint8 (n, c, h, w) -> float32 in [0, 1], optionally resized to img_size x img_size
    (area averaging when shrinking, e.g. MNIST 28 -> 14)."""
    if x.dim() != 4:
        raise ValueError(f"images must have shape (n, channels, height, width); got {tuple(x.shape)}")
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if img_size is not None:
        s = check_pos_int("img_size", img_size)
        if (s, s) != tuple(x.shape[2:]):
            shrink = s <= min(x.shape[2:])
            x = F.interpolate(x, size=(s, s), mode="area" if shrink else "bilinear",
                              **({} if shrink else {"align_corners": False}))
    return x.contiguous()


def load_images(name, split="train", subset=None, img_size=None, device=None):
    """A data set as in-memory tensors: x (n, c, s, s) float32 in [0, 1], y (n,) int64 in 0..9.

    name : 'mnist', 'cifar10' or 'svhn'; split : 'train' or 'test'
    subset : keep the first ``subset`` images (a fixed, reproducible choice)
    img_size : resize to img_size x img_size (default: the native 28 or 32)
    device : move both tensors there (e.g. 'cuda': then batches never leave the GPU)

    Raises :class:`DatasetNotFoundError` when ``ANODE_DATA_DIR`` is set and the files are
    missing (the message says where to put them).
    """
    check_choice("name", name, DATASETS)
    check_choice("split", split, SPLITS)
    root, offline = data_root()
    x, y = LOADERS[name](root, split, offline)
    if subset is not None:
        subset = check_pos_int("subset", subset)
        if subset > len(x):
            raise ValueError(f"subset={subset} exceeds the {len(x)} {split} images of {name} "
                             f"found under {root}")
        x, y = x[:subset], y[:subset]
    x = to_float_images(x, img_size)
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y


__all__ = ["DATASETS", "DatasetNotFoundError", "data_root", "load_images", "to_float_images"]

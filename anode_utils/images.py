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
import hashlib
import os
import pathlib
import zlib

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


class DatasetCorruptError(ValueError):
    """A data set file is there but truncated, corrupted or not the official file (the
    message names the file and what to do)."""


#: The four MNIST files: md5 of the official .gz (torchvision's ``MNIST.resources``), the IDX
#: magic number (2051 images, 2049 labels) and the shape the file must hold.
MNIST_FILES = {
    "train-images-idx3-ubyte": (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        2051,
        (60000, 28, 28),
    ),
    "train-labels-idx1-ubyte": (
        "d53e105ee54ea40749a09fcbcd1e9432",
        2049,
        (60000,),
    ),
    "t10k-images-idx3-ubyte": (
        "9fb629c4189551a2d022fa330f9573f3",
        2051,
        (10000, 28, 28),
    ),
    "t10k-labels-idx1-ubyte": (
        "ec29112dd5afa0611ce80d1b7f02629c",
        2049,
        (10000,),
    ),
}
_MD5_OK = (
    set()
)  # (path, size, mtime_ns) of files already checked in this process


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
        f"them to {DEFAULT_ROOT}."
    )


def _download(name, root, make):
    """Build a torchvision data set that may download; a failed download (offline, no
    ``ANODE_DATA_DIR``) raises :class:`DatasetNotFoundError` naming the folder and the variable."""
    try:
        return make()
    except (
        RuntimeError,
        OSError,
    ) as err:  # urllib's errors are OSErrors; torchvision re-raises
        # them as RuntimeError("Error downloading ...:\nTried ..., got:\n<the reason>")
        reason = [
            line.strip() for line in str(err).splitlines() if line.strip()
        ] or ["?"]
        raise DatasetNotFoundError(
            f"{name} is not in {root} and could not be downloaded ({reason[-1]}). Set {ENV_VAR} to a "
            f"folder holding an offline copy (see anode_utils.images for the layout), or "
            f"download it when online."
        ) from err


def _corrupt(path, what):
    return DatasetCorruptError(
        f"{path} is corrupt or not the official MNIST file ({what}). Delete it and copy a good "
        f"one there (torchvision's layout; see {ENV_VAR}), or unset {ENV_VAR} to let torchvision "
        f"download MNIST to {DEFAULT_ROOT}."
    )


def _check_md5(path, expected):
    """md5 of a .gz against torchvision's; each file is hashed once per process (~30 ms for
    the 10 MB training images) unless it changes on disk."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _MD5_OK:
        return
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    if digest != expected:
        raise _corrupt(path, f"md5 {digest}, expected {expected}")
    _MD5_OK.add(key)


def _read_idx(path, magic=None, shape=None):
    """An MNIST IDX file (optionally gzipped) as a uint8 tensor, checked: magic number
    (``magic``: 2051 images, 2049 labels), header shape (``shape``) and data length. Any
    problem raises :class:`DatasetCorruptError` naming the file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (
        EOFError,
        OSError,
        zlib.error,
    ) as err:  # truncated or not gzip (BadGzipFile is an OSError)
        raise _corrupt(path, f"{type(err).__name__}: {err}") from None
    if (
        len(data) < 4
        or data[:2] != b"\0\0"
        or data[2] != 8
        or not 1 <= data[3] <= 3
    ):
        raise _corrupt(path, "no IDX header of unsigned bytes")
    found_magic, ndim = int.from_bytes(data[:4], "big"), data[3]
    if magic is not None and found_magic != magic:
        raise _corrupt(
            path, f"IDX magic number {found_magic}, expected {magic}"
        )
    if len(data) < 4 + 4 * ndim:
        raise _corrupt(path, "the IDX header is cut short")
    dims = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    if shape is not None and dims != tuple(shape):
        raise _corrupt(path, f"header shape {dims}, expected {tuple(shape)}")
    size = int(np.prod(dims))
    if len(data) - 4 - 4 * ndim != size:
        raise _corrupt(
            path,
            f"{len(data) - 4 - 4 * ndim} data bytes for shape {dims}, expected {size}",
        )
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return torch.from_numpy(arr.copy()).reshape(dims)


def read_mnist_file(path):
    """One MNIST file, verified: md5 of an official ``.gz`` (when its name is one of
    :data:`MNIST_FILES`), then the IDX magic number, shape and length. Returns uint8
    (n, 28, 28) images or (n,) labels; raises :class:`DatasetCorruptError` naming the file."""
    path = pathlib.Path(path)
    stem = path.name[:-3] if path.suffix == ".gz" else path.name
    md5, magic, shape = MNIST_FILES.get(stem, (None, None, None))
    if md5 is not None and path.suffix == ".gz":
        _check_md5(path, md5)
    return _read_idx(path, magic, shape)


def _mnist(root, split, offline):
    raw = root / "MNIST" / "raw"
    prefix = "train" if split == "train" else "t10k"
    found = []
    for stem in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
        path = next(
            (p for p in (raw / stem, raw / f"{stem}.gz") if p.is_file()), None
        )
        found.append(path)
    if (
        None not in found
    ):  # read in place: never writes into the (possibly shared) data folder
        return read_mnist_file(found[0]).unsqueeze(1), read_mnist_file(
            found[1]
        ).long()
    if offline:
        raise _missing(
            "MNIST",
            root,
            f"{raw}/{prefix}-images-idx3-ubyte.gz and "
            f"{prefix}-labels-idx1-ubyte.gz",
        )
    from torchvision.datasets import MNIST

    ds = _download(
        "MNIST",
        root,
        lambda: MNIST(root, train=split == "train", download=True),
    )
    return ds.data.unsqueeze(1), ds.targets.long()


def _cifar10(root, split, offline):
    npz = root / "cifar10-subset" / "cifar10_subset.npz"
    if (root / "cifar-10-batches-py").is_dir() or not offline:
        from torchvision.datasets import CIFAR10

        ds = _download(
            "CIFAR-10",
            root,
            lambda: CIFAR10(
                root, train=split == "train", download=not offline
            ),
        )
        return torch.from_numpy(ds.data).permute(0, 3, 1, 2), torch.tensor(
            ds.targets
        ).long()
    if not npz.is_file():
        raise _missing(
            "CIFAR-10",
            root,
            f"{root / 'cifar-10-batches-py'} (full copy) or {npz} (subset)",
        )
    with np.load(npz) as f:  # the real subset: 4,000 train / 1,000 test images
        x, y = f[f"x_{split}"], f[f"y_{split}"]
    return torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(
        y.astype(np.int64)
    )


def _svhn(root, split, offline):
    mat = root / "SVHN" / f"{split}_32x32.mat"
    if mat.is_file():
        try:
            from scipy.io import loadmat
        except ImportError as err:  # pragma: no cover
            raise ImportError(
                "reading SVHN's .mat files needs scipy: pip install scipy"
            ) from err
        d = loadmat(mat)
        x = torch.from_numpy(
            np.ascontiguousarray(d["X"].transpose(3, 2, 0, 1))
        )  # (32,32,3,n) -> (n,3,32,32)
        y = torch.from_numpy(
            d["y"].astype(np.int64).reshape(-1) % 10
        )  # label 10 is digit 0
        return x, y
    if offline:
        raise _missing("SVHN", root, str(mat))
    from torchvision.datasets import SVHN

    ds = _download(
        "SVHN",
        root / "SVHN",
        lambda: SVHN(root / "SVHN", split=split, download=True),
    )
    return torch.from_numpy(ds.data), torch.from_numpy(
        ds.labels.astype(np.int64)
    )


LOADERS = {"mnist": _mnist, "cifar10": _cifar10, "svhn": _svhn}


def to_float_images(x, img_size=None):
    """uint8 (n, c, h, w) -> float32 in [0, 1], optionally resized to img_size x img_size
    (area averaging when shrinking, e.g. MNIST 28 -> 14)."""
    if x.dim() != 4:
        raise ValueError(
            f"images must have shape (n, channels, height, width); got {tuple(x.shape)}"
        )
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if img_size is not None:
        s = check_pos_int("img_size", img_size)
        if (s, s) != tuple(x.shape[2:]):
            shrink = s <= min(x.shape[2:])
            x = F.interpolate(
                x,
                size=(s, s),
                mode="area" if shrink else "bilinear",
                **({} if shrink else {"align_corners": False}),
            )
    return x.contiguous()


def load_images(name, split="train", subset=None, img_size=None, device=None):
    """A data set as in-memory tensors: x (n, c, s, s) float32 in [0, 1], y (n,) int64 in 0..9.

    name : 'mnist', 'cifar10' or 'svhn'; split : 'train' or 'test'
    subset : keep the first ``subset`` images (a fixed, reproducible choice)
    img_size : resize to img_size x img_size (default: the native 28 or 32)
    device : move both tensors there (e.g. 'cuda': then batches never leave the GPU)

    Raises :class:`DatasetNotFoundError` when ``ANODE_DATA_DIR`` is set and the files are
    missing (the message says where to put them), and :class:`DatasetCorruptError` naming the
    file when an MNIST file is truncated or not the official one (md5, IDX header, length).
    """
    check_choice("name", name, DATASETS)
    check_choice("split", split, SPLITS)
    if subset is not None:
        subset = check_pos_int("subset", subset)
    if img_size is not None:
        check_pos_int("img_size", img_size)
    root, offline = data_root()
    x, y = LOADERS[name](root, split, offline)
    if subset is not None:
        if subset > len(x):
            raise ValueError(
                f"subset={subset} exceeds the {len(x)} {split} images of {name} "
                f"found under {root}"
            )
        x, y = x[:subset], y[:subset]
    x = to_float_images(x, img_size)
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y


__all__ = [
    "DATASETS",
    "DatasetCorruptError",
    "DatasetNotFoundError",
    "MNIST_FILES",
    "data_root",
    "load_images",
    "read_mnist_file",
    "to_float_images",
]

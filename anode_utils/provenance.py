"""Where a results file came from: the command, package versions, hardware, GPU numerics and date."""

import datetime
import os
import pathlib
import platform
import sys

import torch

# results-file I/O lives in results_io; these names stay importable from here
from .results_io import read_json, write_json, write_text_atomic  # noqa: F401


def hardware():
    """A short description of the machine: CPU model and cores, and the GPU if one is used."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count()
    desc = f"{cpu}, {cores} cores"
    if torch.cuda.is_available():
        desc += f"; GPU: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return desc


def _version(dist):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # pragma: no cover - not installed as a distribution
        return None


def gpu():
    """Name, compute capability and memory of the current CUDA device, or None without one."""
    if not torch.cuda.is_available():
        return None
    i = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(i)
    return {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1),
        "count": torch.cuda.device_count(),
    }


def provenance(argv=None):
    """A dict to store beside results: exact command, versions (torch, torchdiffeq, the CUDA
    torch was built for, cuDNN), hardware, GPU, float32/TF32 precision settings, UTC date."""
    from . import __version__
    from .precision import settings

    argv = sys.argv if argv is None else argv
    cudnn = (
        torch.backends.cudnn.version()
        if torch.backends.cudnn.is_available()
        else None
    )
    return {
        "command": " ".join(["python -m anode_utils", *argv[1:]])
        if argv and argv[0].endswith("__main__.py")
        else " ".join(argv),
        "anode_utils": __version__,
        "torch": torch.__version__,
        "torchdiffeq": _version("torchdiffeq"),
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "python": platform.python_version(),
        "hardware": hardware(),
        "gpu": gpu(),
        "precision": settings(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
    }

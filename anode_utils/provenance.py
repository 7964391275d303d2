"""Where a results file came from: the command, package version, hardware and date."""
import datetime
import json
import os
import pathlib
import platform
import sys

import torch


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


def provenance(argv=None):
    """A dict to store beside results: exact command, versions, hardware, UTC date."""
    from . import __version__
    argv = sys.argv if argv is None else argv
    return {
        "command": " ".join(["python -m anode_utils", *argv[1:]]) if argv and argv[0].endswith("__main__.py")
        else " ".join(argv),
        "anode_utils": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "hardware": hardware(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_json(path, obj):
    """Write atomically (temp file + rename), so an interrupted run never leaves half a file."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def read_json(path):
    return json.loads(pathlib.Path(path).read_text())

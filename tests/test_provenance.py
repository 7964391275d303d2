import pytest
import torch

import anode_utils as au
from anode_utils.provenance import provenance
from anode_utils.results_io import read_json, round_sig, write_json


def test_provenance_names_command_versions_hardware_and_date():
    p = provenance(["anode_utils/__main__.py", "toy", "--seeds", "0-3"])
    assert p["command"] == "python -m anode_utils toy --seeds 0-3"
    assert p["anode_utils"] == au.__version__
    assert p["hardware"] and "cores" in p["hardware"]
    assert p["date"].endswith("UTC")


def test_write_json_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / "sub" / "r.json"
    write_json(path, {"a": [1, 2]})
    assert read_json(path) == {"a": [1, 2]}
    assert not list(path.parent.glob("*.tmp"))


def test_write_json_removes_its_temporary_file_when_the_write_fails(
    tmp_path, monkeypatch
):
    from anode_utils import results_io

    monkeypatch.setattr(
        results_io.os,
        "replace",
        lambda a, b: (_ for _ in ()).throw(OSError("disk full")),
    )
    with pytest.raises(OSError, match="disk full"):
        results_io.write_json(tmp_path / "r.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_read_json_names_a_damaged_file_and_says_what_to_do(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"a": [1, 2')
    with pytest.raises(
        ValueError,
        match=r"r.json is not valid JSON \(.* at line 1, column \d+\); it is "
        r"damaged or was cut short: delete it, or pass another path",
    ):
        read_json(path)
    with pytest.raises(ValueError, match="cut short: rerun it"):
        read_json(path, "rerun it")


def test_provenance_records_solver_library_gpu_and_precision():
    from anode_utils import precision

    p = provenance(["x"])
    assert p["torchdiffeq"] and "cuda" in p and "cudnn" in p and "gpu" in p
    prec = p["precision"]
    assert set(prec) >= {
        "cudnn_allow_tf32",
        "cuda_matmul_allow_tf32",
        "float32_matmul_precision",
    }
    before = precision.settings()
    try:
        s = precision.configure(tf32=False)
        assert (s["cudnn_allow_tf32"], s["cuda_matmul_allow_tf32"]) == (
            False,
            False,
        )
        assert s["float32_matmul_precision"] == "highest"
        assert provenance(["x"])["precision"]["cudnn_allow_tf32"] is False
        s = precision.configure(tf32=True)
        assert s["cudnn_allow_tf32"] and s["cuda_matmul_allow_tf32"]
    finally:
        torch.backends.cudnn.allow_tf32 = before["cudnn_allow_tf32"]
        torch.backends.cuda.matmul.allow_tf32 = before[
            "cuda_matmul_allow_tf32"
        ]
        torch.set_float32_matmul_precision(before["float32_matmul_precision"])


def test_round_sig_rounds_floats_everywhere_and_leaves_other_values():
    x = {
        "a": [1.234567, float("nan"), 3],
        "b": (True, None, "s"),
        "c": 2.0000049,
    }
    assert round_sig(x) == {
        "a": [1.2346, None, 3],
        "b": [True, None, "s"],
        "c": 2.0,
    }


def test_library_modules_do_not_import_the_commands():
    """A library module must not import a command-line module (results I/O lives in
    results_io and toy_results)."""
    import subprocess
    import sys

    code = (
        "import sys, anode_utils, anode_utils.image_results, anode_utils.toy_results; "
        "print(sorted(m for m in sys.modules if m.startswith('anode_utils.cli')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"

import pytest
import torch

import anode_utils as au
from anode_utils.provenance import provenance, read_json, write_json


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


def test_write_json_removes_its_temporary_file_when_the_write_fails(tmp_path, monkeypatch):
    from anode_utils import provenance as prov
    monkeypatch.setattr(prov.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        prov.write_json(tmp_path / "r.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_read_json_names_a_damaged_file_and_says_what_to_do(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"a": [1, 2')
    with pytest.raises(ValueError, match=r"r.json is not valid JSON \(.* at line 1, column \d+\); it is "
                                         r"damaged or was cut short: delete it, or pass another path"):
        read_json(path)
    with pytest.raises(ValueError, match="cut short: rerun it"):
        read_json(path, "rerun it")
def test_provenance_records_solver_library_gpu_and_precision():
    from anode_utils import precision
    p = provenance(["x"])
    assert p["torchdiffeq"] and "cuda" in p and "cudnn" in p and "gpu" in p
    prec = p["precision"]
    assert set(prec) >= {"cudnn_allow_tf32", "cuda_matmul_allow_tf32", "float32_matmul_precision"}
    before = precision.settings()
    try:
        s = precision.configure(tf32=False)
        assert (s["cudnn_allow_tf32"], s["cuda_matmul_allow_tf32"]) == (False, False)
        assert s["float32_matmul_precision"] == "highest"
        assert provenance(["x"])["precision"]["cudnn_allow_tf32"] is False
        s = precision.configure(tf32=True)
        assert s["cudnn_allow_tf32"] and s["cuda_matmul_allow_tf32"]
    finally:
        torch.backends.cudnn.allow_tf32 = before["cudnn_allow_tf32"]
        torch.backends.cuda.matmul.allow_tf32 = before["cuda_matmul_allow_tf32"]
        torch.set_float32_matmul_precision(before["float32_matmul_precision"])

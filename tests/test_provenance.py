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

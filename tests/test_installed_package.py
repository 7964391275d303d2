"""The paper-scale figures reach readers who only `pip install` the package (Colab).

Builds a wheel, installs it into an empty folder, and executes the paper-scale cells of the
chapters that read results files (tagged ``paper-scale``, plus the chapter's set-up cells) in
another empty folder, with the package imported from the wheel, never from this checkout.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTERS = [
    "04_annulus_experiments",
    "05_augmented_node",
    "06_generalization",
    "07_images",
    "claims",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = (
        tmp / "src"
    )  # build from a copy: setuptools writes build/ and *.egg-info next to the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "anode_utils",
        src / "anode_utils",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp / "dist").glob("anode_utils-*.whl"))
    site = tmp / "site"
    inst = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        capture_output=True,
        text=True,
    )
    assert inst.returncode == 0, inst.stderr[-2000:]
    return site


def paper_scale_notebook(name):
    """The chapter reduced to its set-up cells and its paper-scale cells, plus a cell that says
    where anode_utils was imported from."""
    nb = json.loads((ROOT / "book" / f"{name}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    keep = code[:2] + [
        c
        for c in code[2:]
        if "paper-scale" in c.get("metadata", {}).get("tags", [])
    ]
    where = {
        "cell_type": "code",
        "execution_count": None,
        "id": "whereisau",
        "metadata": {},
        "outputs": [],
        "source": "import anode_utils\nprint('anode_utils from', anode_utils.__file__)",
    }
    nb["cells"] = [keep[0], keep[1], where] + keep[2:]
    return nb, keep[2:]


def stream_text(cell):
    return "".join(
        "".join(o.get("text", ""))
        for o in cell.get("outputs", [])
        if o["output_type"] == "stream"
    )


def has_png(cell):
    return any(
        "image/png" in o.get("data", {}) for o in cell.get("outputs", [])
    )


@pytest.mark.parametrize("name", CHAPTERS)
def test_paper_scale_cells_run_from_installed_wheel(site, tmp_path, name):
    nb, stored = paper_scale_notebook(name)
    assert stored, f"{name}: no cell is tagged paper-scale"
    path = (
        tmp_path / f"{name}.ipynb"
    )  # an empty folder: no results/, no checkout nearby
    path.write_text(json.dumps(nb))
    env = dict(os.environ, PYTHONPATH=str(site))
    run = subprocess.run(
        [sys.executable, "-m", "jupyter", "execute", "--inplace", path.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    executed = json.loads(path.read_text())["cells"]
    where = stream_text(executed[2])
    assert str(site) in where and str(ROOT) not in where, where
    for new, old in zip(executed[3:], stored):
        assert stream_text(new) == stream_text(old), (
            f"{name}: a paper-scale cell printed something else"
        )
        assert has_png(new) == has_png(old), (
            f"{name}: a paper-scale figure is missing"
        )
    assert any(has_png(c) or stream_text(c) for c in executed[3:])

"""The paper-scale results files shipped inside the package.

They are package data (``anode_utils/results/``), so ``pip install`` brings them along: a
chapter opened in Colab, or run from any folder, reads the same files as a clone does.
"""

import pathlib
from importlib import resources

#: Where the shipped results live in a checkout (the CLI writes here when regenerating them).
RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


def results_path(name):
    """Path of a shipped results file: ``'annulus_d2'`` -> ``.../anode_utils/results/annulus_d2.json``;
    ``'images/mnist'`` -> ``.../results/images/mnist.json``; ``'configs/annulus_d2'`` for a config.

    A name that is already a path to an existing file is returned unchanged, so callers can
    pass either a shipped name or a file of their own.
    """
    p = pathlib.Path(name)
    if p.suffix == ".json" and p.is_file():
        return p
    ref = resources.files("anode_utils").joinpath(
        "results", *p.with_suffix(".json").parts
    )
    path = pathlib.Path(str(ref))
    if not path.is_file():
        raise FileNotFoundError(
            f"no results file {name!r} in the package (looked at {path}); shipped: "
            f"{', '.join(available_results()) or 'none'}. Pass a path to your own file instead."
        )
    return path


def available_results(folder=""):
    """Names of the shipped results files (in ``folder``, e.g. ``'images'``)."""
    base = pathlib.Path(
        str(resources.files("anode_utils").joinpath("results", folder))
    )
    if not base.is_dir():
        return []
    return sorted(
        str((pathlib.Path(folder) / p.stem).as_posix())
        for p in base.glob("*.json")
    )

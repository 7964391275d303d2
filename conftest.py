"""pytest options that depend on what a run collects.

`pytest` alone (the README's test command) collects `tests/` and `book/` (testpaths): the
chapters are then re-executed by nbval and compared with their stored outputs, on two
pytest-xdist workers with each chapter kept whole on one worker (`--dist loadfile`: its cells
run in order). The same happens whenever a path under `book/` is named (`pytest book`,
`pytest book/01_neural_odes.ipynb`). `pytest tests/test_x.py` runs just that file: no nbval,
no workers.

Options given on the command line win: `-n 0` (or `-p no:xdist`) runs the chapters in one
process, `--nbval-lax` replaces `--nbval`.
"""

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent
BOOK = ROOT / "book"
SANITIZE = ROOT / "nbval_sanitize.cfg"


def _collects_book(config):
    for arg in config.args:
        path = pathlib.Path(str(arg).split("::")[0])
        path = (config.invocation_params.dir / path).resolve()
        if path == BOOK or BOOK in path.parents or path in BOOK.parents:
            return True
    return False


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config):
    opt = config.option
    worker = hasattr(config, "workerinput")
    if _collects_book(config) and hasattr(opt, "nbval"):
        if not (opt.nbval or opt.nbval_lax):
            opt.nbval = True
        opt.nbval_current_env = True
        if opt.nbval_sanitize_with is None:
            opt.nbval_sanitize_with = str(SANITIZE)
        if not worker and getattr(opt, "numprocesses", False) is None:
            opt.numprocesses = 2
            if opt.dist == "no":
                opt.dist = "loadfile"
    return (yield)

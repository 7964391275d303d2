"""Command line: ``python -m anode_utils <command> ...`` for runs too long for a chapter.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args)``.
"""

import argparse
import importlib
import sys

COMMANDS = {
    "toy": (
        "anode_utils.cli_toy",
        "toy experiments (annulus, g1d) at paper scale, resumable",
    ),
    "images": (
        "anode_utils.cli_images",
        "image ANODEs (MNIST, CIFAR-10, SVHN), checkpointed",
    ),
}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m anode_utils", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, (modname, help_) in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(modname)
        except ModuleNotFoundError as err:
            if err.name != modname:
                raise
            continue  # command not installed in this version
        modules[name].add_arguments(
            sub.add_parser(name, help=help_, description=help_)
        )
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


def cli(argv=None):
    """:func:`main` as a program: an error the command expects (bad input, missing data, a
    checkpoint it cannot resume; marked ``expected_by_command``) is one ``error: ...`` line on
    stderr and exit status 1, as the ``toy`` command prints its own; anything else is a bug and
    keeps its traceback."""
    try:
        return main(argv)
    except Exception as err:
        if getattr(err, "expected_by_command", False):
            sys.exit(f"error: {err}")
        raise


if __name__ == "__main__":
    sys.exit(cli())

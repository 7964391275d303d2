"""Command line: ``python -m anode_utils <command> ...`` for runs too long for a chapter.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args)``.
"""
import argparse
import importlib
import sys

COMMANDS = {
    "toy": ("anode_utils.cli_toy", "toy experiments (annulus, g1d) at paper scale, resumable"),
    "images": ("anode_utils.cli_images", "image ANODEs (MNIST, CIFAR-10, SVHN), checkpointed"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m anode_utils", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, (modname, help_) in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(modname)
        except ModuleNotFoundError as err:
            if err.name != modname:
                raise
            continue  # command not installed in this version
        modules[name].add_arguments(sub.add_parser(name, help=help_, description=help_))
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())

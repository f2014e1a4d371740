"""The ``lue-spie`` command line: thin over the package.

Each step module registers its own sub-command through a ``register_cli(subparsers)``
function (it adds a parser and sets ``func``), so the CLI grows with the package::

    lue-spie info                      versions, devices
    lue-spie data synth|fluxnet ...    tidy tables (lue_spie.data.cli)
    lue-spie calibrate ...             site calibration (lue_spie.calibrate)
    lue-spie extrapolate ...           the methods under cross-validation (lue_spie.extrapolate)
    lue-spie importance --results ...  feature importance of SPIE (lue_spie.importance.step)
    lue-spie payoff --results ...      when SPIE pays off: a sweep over two dials (lue_spie.payoff)
    lue-spie book --profile ...        papermill + Jupyter Book (lue_spie.book)
    lue-spie course --profile ... --out DIR   student and teacher copies (lue_spie.teaching.course)
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lue_spie import __version__

# Modules that contribute sub-commands, in the order they appear in --help.
_COMMAND_MODULES = ("lue_spie.data.cli", "lue_spie.calibrate.cli", "lue_spie.extrapolate.cli",
                    "lue_spie.assess.cli", "lue_spie.importance.cli", "lue_spie.payoff.cli",
                    "lue_spie.book.cli", "lue_spie.teaching.cli")


def _info(args: argparse.Namespace) -> int:
    import torch

    from lue_spie import __version__
    from lue_spie.store import git_commit, package_versions

    print(f"lue-spie {__version__} (git {git_commit()})")
    for name, version in package_versions().items():
        print(f"  {name:14s} {version}")
    print(f"  cuda available: {torch.cuda.is_available()}"
          + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every registered sub-command)."""
    parser = argparse.ArgumentParser(
        prog="lue-spie",
        description="SPIE companion: LUE model, calibration, parameter extrapolation, book.",
    )
    parser.add_argument("--version", action="version", version=f"lue-spie {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="show versions and available devices")
    info.set_defaults(func=_info)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lue-spie`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as err:
        # Bad input: one clear line, no traceback.
        print(f"lue-spie {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

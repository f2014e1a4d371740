"""The ``lue-spie`` command line: thin over the package.

Each step module registers its own sub-command through a ``register_cli(subparsers)``
function (it adds a parser and sets ``func``), so the CLI grows with the package::

    lue-spie info                      versions, devices
    lue-spie data synth|fluxnet ...    tidy tables (lue_spie.data.cli)
    lue-spie calibrate ...             site calibration (lue_spie.calibrate)
    lue-spie extrapolate ...           the methods under cross-validation (lue_spie.extrapolate)
    lue-spie importance --results ...  feature importance of SPIE (lue_spie.importance.step)
    lue-spie maps --results ...        maps of a virtual continent (lue_spie.maps.step)
    lue-spie payoff --results ...      when SPIE pays off: a sweep over two dials (lue_spie.payoff)
    lue-spie book --profile ...        papermill + Jupyter Book (lue_spie.book)
    lue-spie course --profile ... --out DIR   student and teacher copies (lue_spie.teaching.course)

One rule for every command (:func:`main`): an error the user can cause is one line naming the
file, column, parameter or path and what to do, with exit status 2 when the command cannot
run as given and 1 when data or results stop it (:mod:`lue_spie.errors`); a traceback only
with ``--debug`` (or ``LUE_SPIE_DEBUG=1``). The folders a command writes
(:func:`lue_spie.options.output_folders`) are checked before it runs, and after a failure
they keep their finished results but no temporary file or empty folder of the run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import typing
from pathlib import Path

from lue_spie import __version__, options, store
from lue_spie.errors import DATA, USAGE, LueSpieError

# Modules that contribute sub-commands, in the order they appear in --help.
_COMMAND_MODULES = ("lue_spie.data.cli", "lue_spie.calibrate.cli", "lue_spie.extrapolate.cli",
                    "lue_spie.assess.cli", "lue_spie.importance.cli", "lue_spie.maps.cli",
                    "lue_spie.payoff.cli", "lue_spie.book.cli", "lue_spie.teaching.cli")


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


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line: the command, the problem, where the help is."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(USAGE, f"{self.prog}: error: {message} (`{self.prog} --help` lists the "
                         "options)\n")


def _add_debug(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--debug`` on a parser and every sub-command below it (given anywhere it works)."""
    parser.add_argument("--debug", action="store_true",
                        default=False if top else argparse.SUPPRESS,
                        help="show the traceback of an error (also: LUE_SPIE_DEBUG=1)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_debug(sub, top=False)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every registered sub-command)."""
    parser = _Parser(
        prog="lue-spie",
        description="SPIE companion: LUE model, calibration, parameter extrapolation, book.",
    )
    parser.add_argument("--version", action="version", version=f"lue-spie {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="show versions and available devices")
    info.set_defaults(func=_info)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register_cli(sub)
    _add_debug(parser, top=True)
    return parser


def _one_line(err: BaseException) -> tuple[int, str]:
    """The exit status and the one-line message of an error (see the module docstring)."""
    if isinstance(err, LueSpieError):
        code, text = err.exit_code, str(err)
    elif isinstance(err, KeyError):
        code = USAGE
        text = str(err.args[0]) if len(err.args) == 1 else str(err)
    elif isinstance(err, OSError) and err.errno is not None and str(err).startswith("[Errno"):
        # The system's own message ("[Errno 2] No such file or directory: 'x'"): name the
        # path first, as every other line does.
        code = USAGE if isinstance(err, FileNotFoundError | NotADirectoryError |
                                   FileExistsError | IsADirectoryError) else DATA
        text = store.explain_os_error(err)
    elif isinstance(err, ValueError | FileNotFoundError):
        code, text = USAGE, str(err)
    elif isinstance(err, OSError):
        code, text = DATA, str(err)
    else:
        code = DATA
        text = (f"internal error ({type(err).__name__}: {err}); run the command again with "
                "--debug for the traceback, and please report it")
    return code, " ".join(text.split())


def _command(args: argparse.Namespace) -> str:
    """The command's name as typed (``calibrate``, ``data synth``)."""
    return " ".join(str(v) for v in (args.command, getattr(args, "data_command", None))
                    if v)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lue-spie`` console script (see the module docstring for its
    rule on errors)."""
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False)) or \
        os.environ.get("LUE_SPIE_DEBUG", "").strip() not in ("", "0")
    places: dict[str, Path] = {}
    before: dict[Path, frozenset[Path]] = {}
    rc = 1
    try:
        places = options.declared_output_folders(args)
        for option, folder in places.items():
            store.check_output_folder(folder, option)
            before[folder] = store.folders_under(folder)
        rc = int(args.func(args) or 0)
        return rc
    except KeyboardInterrupt:
        if debug:
            raise
        rc = 130
        print(f"lue-spie {_command(args)}: interrupted; run the same command again to resume "
              "(finished results are kept)", file=sys.stderr)
        return rc
    except Exception as err:
        if debug:
            raise
        rc, text = _one_line(err)
        print(f"lue-spie {_command(args)}: error: {text}", file=sys.stderr)
        return rc
    finally:
        if rc != 0:
            for folder, existed in before.items():
                store.tidy_output_folder(folder, keep=existed)


if __name__ == "__main__":
    sys.exit(main())

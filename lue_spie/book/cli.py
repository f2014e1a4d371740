"""``lue-spie book``: run the chapters with papermill and build the Jupyter Book."""

from __future__ import annotations

import argparse
import sys

from lue_spie.book.execute import BookError, parse_overrides
from lue_spie.book.pipeline import run_pipeline
from lue_spie.book.profiles import PROFILES, get_profile
from lue_spie.execution import ExecutionSettings, add_execution_arguments

__all__ = ["register_cli"]


def _knobs(profile: str) -> int:
    """Print every knob of a profile: name, value, description."""
    for name, knob in get_profile(profile).knobs().items():
        print(f"{name:28s} {knob.value!r:24s} {knob.doc}")
    return 0


def _cli(args: argparse.Namespace) -> int:
    if getattr(args, "knobs", False):
        return _knobs(args.profile)
    overrides = parse_overrides(args.parameters)
    workers, scheduler = getattr(args, "workers", 0), getattr(args, "scheduler", None)
    if workers or scheduler is not None:
        # Validated here, so that a bad value is one line before any chapter runs.
        execution = ExecutionSettings(workers=workers, scheduler=scheduler)
        overrides.update({"workers": execution.workers, "scheduler": execution.scheduler})
    try:
        publish = get_profile(args.profile).publish.with_overrides(**{
            name: getattr(args, name, None)
            for name in ("repository_url", "branch", "binderhub_url", "jupyterhub_url")})
    except ValueError as err:
        print(f"lue-spie book: error: {err}", file=sys.stderr)
        return 2
    try:
        run_pipeline(
            args.profile, overrides=overrides, build_dir=args.build_dir,
            results=args.results, only=args.only, with_html=not args.no_build,
            source_root=args.source, publish=publish,
        )
    except BookError as err:
        print(f"lue-spie book: error: {err}", file=sys.stderr)
        return 1
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``book`` sub-command to the ``lue-spie`` command line."""
    profiles = "\n".join(
        f"  {prof.name:6s} {prof.description}\n"
        f"         data_n_sites {prof.data.n_sites}, data_n_years {prof.data.n_years}, "
        f"calibrate_max_gen {prof.calibrate.max_gen}, calibrate_restarts "
        f"{prof.calibrate.restarts}, workers {prof.execution.workers}"
        for prof in PROFILES.values())
    p = subparsers.add_parser(
        "book", help="run the chapter notebooks with papermill and build the Jupyter Book",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the chapter notebooks in order with papermill (parameters from a\n"
                    "profile, -p overrides), then build the Jupyter Book from the executed\n"
                    "copies with warnings as errors and check the HTML.",
        epilog=f"profiles:\n{profiles}\n\nexamples:\n  lue-spie book --profile ci -p "
               "data_n_sites 12 -p seed 7 --results results/small --build-dir build/small\n"
               "  lue-spie book --profile paper --workers 2     # chapters' units on a "
               "local Dask cluster",
    )
    p.add_argument("--profile", default="ci", choices=sorted(PROFILES),
                   help="which parameter set to run (default: ci)")
    p.add_argument("-p", "--parameter", dest="parameters", nargs=2, action="append",
                   metavar=("NAME", "VALUE"),
                   help="override a knob of the profile (VALUE parsed as YAML and checked "
                        "against the knob's type); repeatable; the knobs: `lue-spie book "
                        "--knobs`")
    p.add_argument("--build-dir", default=None,
                   help="build folder (default: build/book/PROFILE)")
    p.add_argument("--results", default=None,
                   help="results folder shared by the chapters (default: results/PROFILE)")
    p.add_argument("--only", default=None, metavar="NOTEBOOK",
                   help="run only this chapter (e.g. 03 or 03_calibration); the others' "
                        "executed copies in the build folder are reused")
    p.add_argument("--knobs", action="store_true",
                   help="list the profile's knobs (the chapters' parameters) and exit")
    p.add_argument("--no-build", action="store_true",
                   help="run the notebooks but do not build the book")
    add_execution_arguments(p, what="the chapters' independent units (site chunks, method x "
                            "fold)", where="each chapter's kernel")
    pub = p.add_argument_group(
        "publishing", "a published book names its repository: repository and issue buttons, "
        "and on every chapter page launch buttons (Binder; JupyterHub when a hub is named); "
        "without --repository-url the book is offline and has none")
    pub.add_argument("--repository-url", default=None, metavar="URL",
                     help="the repository the book is published from "
                          "(https://github.com/OWNER/NAME)")
    pub.add_argument("--branch", default=None,
                     help="the branch launched chapters open (default: main)")
    pub.add_argument("--binderhub-url", default=None, metavar="URL",
                     help="BinderHub building binder/ (default: https://mybinder.org; "
                          "'' for none)")
    pub.add_argument("--jupyterhub-url", default=None, metavar="URL",
                     help="a JupyterHub with nbgitpuller for a JupyterHub button")
    p.add_argument("--source", default=None,
                   help="folder with _toc.yml, _config.yml, book/ and notebooks/ "
                        "(default: found from the working directory)")
    p.set_defaults(func=_cli)

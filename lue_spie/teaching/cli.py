"""The ``lue-spie course`` command: make a course from a built book, or check that the
chapters follow the exercise convention (``--check``)."""

from __future__ import annotations

import argparse
import sys

from lue_spie.teaching.convention import ConventionError, lint_sources
from lue_spie.teaching.course import make_course

__all__ = [
    "register_cli",
]


def _cli(args: argparse.Namespace) -> int:
    if args.check:
        problems = lint_sources(args.source)
        for p in problems:
            print(p)
        print(f"lue-spie course --check: {len(problems)} problem(s)")
        return 1 if problems else 0
    if not args.out:
        print("lue-spie course: error: --out DIR is required (or --check)", file=sys.stderr)
        return 2
    try:
        res = make_course(args.profile, args.out, build_dir=args.build_dir,
                          results=args.results, link_results=args.link_results,
                          force=args.force, source_root=args.source)
    except (ConventionError, FileExistsError) as err:
        print(f"lue-spie course: error: {err}", file=sys.stderr)
        return 1
    for note in res.notes:
        print(f"note: {note}")
    n_ex = sum(len(c.exercises) for c in res.chapters)
    print(f"lue-spie course: {len(res.chapters)} chapters, {n_ex} exercises -> {res.out}/ "
          "(student/ to hand out, teacher/ with the solutions, course.md)")
    print(f"open it with: jupyter lab {res.out}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``course`` sub-command to the ``lue-spie`` command line."""
    from lue_spie.book.profiles import PROFILES

    p = subparsers.add_parser(
        "course", help="student and teacher copies of the chapters, and a course page",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Make a course from a built book: every chapter without its solutions\n"
                    "(student/) and with them (teacher/), each with the results folder of\n"
                    "the build beside it, and a course page (goals, time, exercises).",
        epilog="example:\n  lue-spie book --profile ci\n"
               "  lue-spie course --profile ci --out build/course/ci\n"
               "  jupyter lab build/course/ci\n\n"
               "check that the chapters follow the exercise convention:\n"
               "  lue-spie course --check",
    )
    p.add_argument("--profile", default="ci", choices=sorted(PROFILES),
                   help="the book profile whose build to use (default: ci)")
    p.add_argument("--out", default=None, help="the course folder to write")
    p.add_argument("--build-dir", default=None,
                   help="the book build (default: build/book/PROFILE)")
    p.add_argument("--results", default=None,
                   help="the build's results folder (default: from its pipeline.json, else "
                        "results/PROFILE)")
    p.add_argument("--link-results", action="store_true",
                   help="link the results folder instead of copying it (the notebooks then "
                        "read and write the build's results)")
    p.add_argument("--force", action="store_true",
                   help="replace a course already in --out")
    p.add_argument("--check", action="store_true",
                   help="only check that the chapter notebooks follow the exercise "
                        "convention (no build needed)")
    p.add_argument("--source", default=None,
                   help="folder with _toc.yml and notebooks/ (default: found from the "
                        "working directory)")
    p.set_defaults(func=_cli)


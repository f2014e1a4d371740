"""``lue-spie payoff``: when does SPIE pay off? A sweep over two dials of the virtual world."""

from __future__ import annotations

import argparse
import shlex
import sys

from lue_spie import options
from lue_spie.execution import add_execution_arguments, execution_from_args
from lue_spie.payoff.settings import PayoffSettings

__all__ = ["register_cli"]


def _cli(args: argparse.Namespace) -> int:
    import torch

    from lue_spie.layout import Layout
    from lue_spie.payoff.step import publish, run

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = options.from_args(PayoffSettings, args, exclude=("run",), run=True)
    layout = Layout(args.results)
    res = run(layout, settings, execution_from_args(args), device=args.device,
              log=(lambda *_: None) if args.quiet else print)
    t = res.table
    print(f"{len(t['point'].unique())} point(s) ({len(res.ran)} run now, {len(res.kept)} kept) "
          f"in {layout.payoff.folder}")
    wide = t.pivot_table(index=["x", "y"], columns="method", values="share_positive")
    print("share of sites with a positive daily NSE:\n" + (100 * wide).round(0).to_string())
    if args.publish:
        command = "lue-spie " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        path = publish(layout, command)
        print(f"published to {path} (with its provenance beside it)")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``payoff`` sub-command."""
    p = subparsers.add_parser(
        "payoff", help="when does SPIE pay off: a sweep over two dials of the virtual world",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate a virtual FLUXNET at every point of a grid over two dials (or "
                    "groups of dials) of a world, calibrate it, cross-validate SPIE and a few "
                    "baselines, and score them (share of sites with a positive held-out daily "
                    "NSE, median daily NSE) beside the true parameters. Each point is one unit "
                    "(--workers N runs them on Dask workers); a rerun keeps the finished "
                    "points. The table (parquet with provenance, CSV), the figure and the "
                    "record go to RESULTS/payoff.",
        epilog="examples:\n  lue-spie payoff --results results/sweep --workers 2\n"
               "  lue-spie payoff --results results/tiny --n-sites 16 --n-years 1 "
               "--x-factors 0,1 --y-factors 0,1 --spie-epochs 100")
    p.add_argument("--results", required=True, help="results folder (the sweep goes to "
                                                    "RESULTS/payoff)")
    options.add_arguments(p, PayoffSettings, exclude=("run",))
    p.add_argument("--device", default="cpu", help="device of CMA-ES and SPIE (default cpu)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads in this process (default 1; 0 = torch's default)")
    add_execution_arguments(p, what="the points", where="this process")
    p.add_argument("--publish", action="store_true",
                   help="copy the table to the package's published sweep (which the demo "
                        "book shows), with the command, commit and date")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cli)

"""``lue-spie calibrate``: site calibration of a dataset folder (the step of chapter 3).

Its options are the fields of :class:`~lue_spie.calibrate.settings.CalibrationSettings`
(``max_gen`` is ``--max-gen``, with the same default and description), plus the folders,
the site and year selection and where the work runs.
"""

from __future__ import annotations

import argparse
import sys

from lue_spie import options
from lue_spie.calibrate.chunks import CHUNK_SITES
from lue_spie.calibrate.settings import CalibrationSettings
from lue_spie.calibrate.step import run
from lue_spie.data.io import years_argument
from lue_spie.execution import add_execution_arguments, apply_threads, execution_from_args
from lue_spie.layout import Layout

__all__ = ["register_cli"]


def _cli(args: argparse.Namespace) -> int:
    # torch as asked (default 1); the fused kernel on the cores this process may use.
    apply_threads(torch_threads=args.threads or None)
    years = sorted({y for part in args.years for y in part}) if args.years else None
    settings = options.from_args(CalibrationSettings, args)
    execution = execution_from_args(args)
    layout = Layout(data_dir=args.data, calibration_dir=args.out)
    try:
        paths = run(layout, settings, execution, sites=args.sites, years=years,
                    checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
                    chunk_sites=args.chunk_sites)
    except KeyboardInterrupt:
        out = layout.calibration
        where = (f"{out.chunks_dir} (finished chunks are kept)" if execution.distributed
                 else f"the last checkpoint in {out.checkpoint_dir}")
        print(f"lue-spie calibrate: interrupted; run the same command again to resume from "
              f"{where}", file=sys.stderr)
        return 130
    for k, p in paths.items():
        print(f"  wrote {k}: {p}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``calibrate`` sub-command."""
    p = subparsers.add_parser(
        "calibrate", help="site calibration with CMA-ES (writes the calibration table, "
        "GPP_calib and the convergence record)",
        description="Calibrate the 13 LUE parameters at each site with CMA-ES on the cost "
        "1 - NSE + constraints (SPEC section 2). Resumes from its checkpoint when present. "
        "With --workers N or --scheduler ADDRESS the sites are calibrated in chunks on a Dask "
        "cluster (finished chunks are kept by a rerun); the results are identical.")
    p.add_argument("--data", required=True, help="dataset folder (lue-spie data ...)")
    p.add_argument("--out", required=True, help="results folder of the calibration")
    p.add_argument("--sites", nargs="+", default=None, help="site ids (default: all)")
    p.add_argument("--years", nargs="+", type=years_argument, default=None,
                   help="years, e.g. 2010-2012, 2010,2012 or 2010 2011 (default: all)")
    options.add_arguments(p, CalibrationSettings)
    p.add_argument("--checkpoint-every", type=int, default=10,
                   help="generations between checkpoints (default 10)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1; 0 = torch's default; raise it on a "
                   "large machine); on a Dask cluster: threads of each worker's units")
    add_execution_arguments(p)
    p.add_argument("--chunk-sites", type=int, default=None, metavar="N",
                   help=f"sites per unit on a Dask cluster (default {CHUNK_SITES})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cli)

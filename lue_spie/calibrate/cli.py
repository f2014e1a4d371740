"""``lue-spie calibrate``: site calibration of a dataset folder (the step of chapter 3)."""

from __future__ import annotations

import argparse
import sys

import torch

from lue_spie.calibrate.api import run_site_calibration
from lue_spie.calibrate.settings import CalibrationSettings
from lue_spie.cost import W_IDEAL, W_NONIDEAL
from lue_spie.data.io import years_argument
from lue_spie.execution import add_execution_arguments, execution_from_args

__all__ = ["register_cli"]


def _cli(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    years = sorted({y for part in args.years for y in part}) if args.years else None
    settings = CalibrationSettings(
        seed=args.seed, popsize=args.popsize, max_gen=args.max_gen, tolfun=args.tolfun,
        tolx=args.tolx, restarts=args.restarts, w_ideal=args.w_ideal,
        w_nonideal=args.w_nonideal, dtype=args.dtype, device=args.device,
        chunk_rows=args.chunk_rows)
    execution = execution_from_args(args)
    try:
        paths = run_site_calibration(
            args.data, args.out, settings, sites=args.sites, years=years,
            checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
            execution=execution, chunk_sites=args.chunk_sites)
    except KeyboardInterrupt:
        where = (f"{args.out}/chunks (finished chunks are kept)" if execution.distributed
                 else f"the last checkpoint in {args.out}/checkpoint")
        print(f"lue-spie calibrate: interrupted; run the same command again to resume from "
              f"{where}", file=sys.stderr)
        return 130
    for k, p in paths.items():
        print(f"  wrote {k}: {p}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``calibrate`` sub-command."""
    d = CalibrationSettings()
    p = subparsers.add_parser(
        "calibrate", help="site calibration with CMA-ES (writes calibration.parquet, "
        "gpp_calib.parquet, convergence.parquet)",
        description="Calibrate the 13 LUE parameters at each site with CMA-ES on the cost "
        "1 - NSE + constraints (SPEC section 2). Resumes from OUT/checkpoint when present. "
        "With --workers N or --scheduler ADDRESS the sites are calibrated in chunks on a Dask "
        "cluster (finished chunks in OUT/chunks are kept by a rerun); the results are "
        "identical.")
    p.add_argument("--data", required=True, help="dataset folder (site_day.parquet, "
                   "sites.parquet)")
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--sites", nargs="+", default=None, help="site ids (default: all)")
    p.add_argument("--years", nargs="+", type=years_argument, default=None,
                   help="years, e.g. 2010-2012, 2010,2012 or 2010 2011 (default: all)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--dtype", default=d.dtype, choices=("float64", "float32"))
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--max-gen", type=int, default=d.max_gen,
                   help="most generations per site (default %(default)s)")
    p.add_argument("--popsize", type=int, default=d.popsize,
                   help="population size (default: pycma's 4 + 3 ln n)")
    p.add_argument("--restarts", type=int, default=d.restarts,
                   help="IPOP restarts per site (default %(default)s)")
    p.add_argument("--tolfun", type=float, default=d.tolfun)
    p.add_argument("--tolx", type=float, default=d.tolx)
    p.add_argument("--w-ideal", type=float, default=W_IDEAL)
    p.add_argument("--w-nonideal", type=float, default=W_NONIDEAL)
    p.add_argument("--chunk-rows", type=int, default=d.chunk_rows,
                   help="most sites per model call (memory)")
    p.add_argument("--checkpoint-every", type=int, default=10)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on the 2-core reference machine two "
                   "threads were no faster for 196 sites and several times slower for one "
                   "site; 0 = torch's default; raise it on a large machine); on a Dask "
                   "cluster: threads of each worker's units")
    add_execution_arguments(p)
    p.add_argument("--chunk-sites", type=int, default=None, metavar="N",
                   help="sites per unit on a Dask cluster (default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cli)

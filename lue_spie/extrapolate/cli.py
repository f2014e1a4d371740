"""``lue-spie extrapolate``: every method of the comparison under cross-validation."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from lue_spie.data.io import years_argument
from lue_spie.execution import add_execution_arguments, execution_from_args
from lue_spie.extrapolate.settings import ExtrapolationSettings
from lue_spie.extrapolate.step import run
from lue_spie.layout import Layout
from lue_spie.methods.base import paper_order

__all__ = ["register_cli", "parse_method_params"]


def parse_method_params(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``METHOD.NAME=VALUE`` items -> {method: {name: value}}; VALUE is read as YAML.

    A dotted name sets a field of a settings object: ``OPT-All.settings.max_gen=200``.

    Raises:
        ValueError: for an item not of that form.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or not method or not name:
            raise ValueError(f"--param {item!r}: expected METHOD.NAME=VALUE, e.g. "
                             "sRF.n_estimators=200 or OPT-All.settings.max_gen=200")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as err:
            raise ValueError(f"--param {item!r}: not a valid YAML value ({err})") from None
        target = out.setdefault(method, {})
        *parents, leaf = name.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = value
    return out


def _cli(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    years = sorted({y for part in args.years for y in part}) if args.years else None
    settings = ExtrapolationSettings(
        methods=tuple(args.methods) if args.methods else None, n_folds=args.folds,
        seed=args.seed, years=tuple(years) if years else None,
        sites=tuple(args.sites) if args.sites else None,
        method_params=parse_method_params(args.param), batch_folds=not args.no_batch_folds)
    try:
        layout = Layout(data_dir=args.data, calibration_dir=args.calib,
                        extrapolation_dir=args.out)
        result = run(layout, settings, execution_from_args(args), progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"lue-spie extrapolate: interrupted; run the same command again to resume "
              f"(finished folds in {args.out} are kept)", file=sys.stderr)
        return 130
    s = result.summary
    med = s.groupby("method", sort=False)["nse"].median()
    print(f"{len(result.ran)} unit(s) run, {len(result.skipped)} (method, fold) result(s) "
          f"reused; held-out median daily NSE:")
    for name, value in med.items():
        print(f"  {name:10s} {value:7.3f}")
    print(f"results in {result.out}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``extrapolate`` sub-command."""
    p = subparsers.add_parser(
        "extrapolate", help="run the parameter-extrapolation methods under cross-validation",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fit every method on the training folds and predict the held-out sites "
                    "(paper section 2.2). Resumable: a rerun skips (method, fold) results "
                    "whose settings and data match. With --workers N or --scheduler ADDRESS "
                    "the units run on a Dask cluster; the results are identical.",
        epilog="methods: " + ", ".join(paper_order()) + "\n\nexample:\n  lue-spie extrapolate "
               "--data results/ci/data --calib results/ci/calibration --methods PFTmean sRF "
               "--folds 10 --out results/ci/extrapolation --param sRF.n_estimators=200")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--calib", default=None,
                   help="site-calibration folder (lue-spie calibrate --out); needed by the "
                        "methods that learn from calibrated vectors (all but OPT-All, "
                        "OPT-PFT, SPIE and the P-model)")
    p.add_argument("--out", required=True, help="extrapolation results folder")
    p.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                   help="methods to run (default: all, in the paper's order)")
    p.add_argument("--folds", type=int, default=10, help="number of folds (default 10)")
    p.add_argument("--sites", nargs="+", default=None, metavar="ID",
                   help="sites of the cross-validation (default: all sites of --data)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the methods")
    p.add_argument("--years", nargs="+", type=years_argument, default=None,
                   help="years to use, e.g. 2010-2012 (default: all)")
    p.add_argument("--param", action="append", default=None, metavar="METHOD.NAME=VALUE",
                   help="a method's hyperparameter (VALUE read as YAML); repeatable")
    p.add_argument("--no-batch-folds", action="store_true",
                   help="run every method fold after fold (default: OPT-All, OPT-PFT, SPIE "
                        "and the P-model run all their folds in one call; on a Dask cluster "
                        "OPT-All and OPT-PFT spread their folds, and this option splits the "
                        "others' folds too)")
    add_execution_arguments(p)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1; 0 = torch's default); on a Dask "
                        "cluster: threads of each worker's units")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cli)

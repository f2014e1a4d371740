"""``lue-spie assess``: every table and figure of the assessment from a results folder.

Its options are the fields of :class:`~lue_spie.assess.settings.AssessSettings` (``n_groups``
is ``--n-groups``, ``twin`` is ``--twin`` / ``--no-twin``), plus the folders, the method and
year selection and whether to draw the figures.
"""

from __future__ import annotations

import argparse
import time

from lue_spie import options
from lue_spie.assess.settings import AssessSettings
from lue_spie.assess.step import run
from lue_spie.data.io import years_argument
from lue_spie.layout import Layout

__all__ = ["register_cli"]

_SELECTION = ("years", "methods", "scales", "min_points")


def _cli(args: argparse.Namespace) -> int:
    years = sorted({y for part in args.years for y in part}) if args.years else None
    settings = options.from_args(AssessSettings, args, exclude=_SELECTION,
                                 years=tuple(years) if years else None,
                                 methods=tuple(args.methods) if args.methods else None)
    layout = Layout(args.results, assessment_dir=args.out)
    t0 = time.perf_counter()
    a, written = run(layout, settings, with_figures=args.figures,
                     log=(lambda *_: None) if args.quiet else print)
    seconds = time.perf_counter() - t0
    h = a.headline
    print(f"assessed {len(a.inputs.methods)} method(s) on {a.inputs.sites.shape[0]} sites, "
          f"years {a.inputs.years[0]}-{a.inputs.years[-1]}:")
    print(f"  {'method':10s} {'NSE>0':>9s} {'median NSE':>10s} {'spatial NSE':>11s} {'P':>5s}")
    for _, r in h.iterrows():
        share = f"{r['n_positive_NSE']:.0f}/{r['n_evaluated']:.0f}" \
            if r["n_evaluated"] == r["n_evaluated"] else "n/a"
        p = "-" if r["P"] != r["P"] else f"{r['P']:.2f}"  # NaN: not in P (site-calib)
        print(f"  {r['method']:10s} {share:>9s} {r['median_NSE']:10.3f} "
              f"{r['spatial_NSE']:11.3f} {p:>5s}")
    if a.focus is not None:
        note = "" if a.focus == "SPIE" else " (SPIE not found: the best method by positive NSE)"
        print(f"parameter figures for {a.focus}{note}")
    n_tables = sum(1 for name in written if not name.startswith("figures/"))
    print(f"{n_tables} tables and {len(written) - n_tables} figures in {args.out} "
          f"({layout.assessment.record.name} lists them) in {seconds:.1f} s")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``assess`` sub-command."""
    p = subparsers.add_parser(
        "assess", help="assess every method of a results folder (tables and figures)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read RESULTS/data, RESULTS/calibration and RESULTS/extrapolation and write "
                    "the paper's assessment (section 3): GPP skill at four time scales, spatial "
                    "and per-type skill, the model likelihood P, parameters against calibrated "
                    "(and, on virtual FLUXNET, true) values and the equifinality test. Tables "
                    "as parquet (with provenance) and CSV, figures as PNG and SVG.",
        epilog="example:\n  lue-spie assess --results results/ci --out results/ci/assessment")
    p.add_argument("--results", required=True, help="results folder (data/, calibration/, "
                                                     "extrapolation/)")
    p.add_argument("--out", required=True, help="folder for the tables and figures")
    p.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                   help="methods to assess (default: all found; site-calib is the calibration)")
    p.add_argument("--years", nargs="+", type=years_argument, default=None,
                   help="years to assess (default: those every method predicts)")
    options.add_arguments(p, AssessSettings, exclude=_SELECTION)
    p.add_argument("--figures", action=argparse.BooleanOptionalAction, default=True,
                   help="draw the figures (--no-figures: tables only)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cli)

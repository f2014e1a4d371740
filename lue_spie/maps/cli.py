"""``lue-spie maps``: parameter and GPP maps of a virtual continent, against its truth."""

from __future__ import annotations

import argparse
import sys

from lue_spie import options
from lue_spie.execution import add_execution_arguments, execution_from_args
from lue_spie.layout import Layout
from lue_spie.maps.settings import MapsSettings

__all__ = ["register_cli"]

#: Settings given as several values on the command line (``--methods SPIE sRF``).
_LISTS = ("methods",)


def _cli(args: argparse.Namespace) -> int:
    import torch

    from lue_spie.layout import MapsTable
    from lue_spie.maps.step import run

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = options.from_args(MapsSettings, args, exclude=_LISTS,
                                 methods=tuple(args.methods))
    layout = Layout(args.results, maps_dir=args.out)
    try:
        res = run(layout, settings, execution_from_args(args), progress=not args.no_progress,
                  with_figures=args.figures, log=(lambda *_: None) if args.quiet else print)
    except KeyboardInterrupt:
        print(f"lue-spie maps: interrupted; run the same command again to resume (finished "
              f"chunks in {layout.maps.chunks_dir} are kept)", file=sys.stderr)
        return 130
    d = res.continent.describe()
    rate = res.cell_days_per_second()
    print(f"{d['land_cells']} land cells x {len(res.dates)} days; {len(res.ran)} chunk(s) run"
          + (f" ({rate:,.0f} cell-days per second)" if res.ran else "")
          + f", {len(res.skipped)} reused")
    print("RMSE of mean annual GPP against the truth [gC m-2 yr-1]:")
    for _, r in res.tables[MapsTable.GPP_SKILL].iterrows():
        print(f"  {r['method']:10s} {r['rmse']:8.1f}  (bias {r['bias']:+.1f}, R2 {r['r2']:.2f})")
    towers = res.tables[MapsTable.TOWERS]
    inside = float(res.cells["inside"].mean()) if len(res.cells) else float("nan")
    print(f"area of applicability of the {len(towers)} towers: {inside:.0%} of the land cells "
          f"(dissimilarity <= {res.threshold:.2f})")
    print(f"store: {res.store}; tables, figures and {layout.maps.RECORD} in {res.out}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``maps`` sub-command."""
    p = subparsers.add_parser(
        "maps", help="parameter and GPP maps of a virtual continent, against its truth",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Draw a virtual continent from the generator of the towers' virtual "
                    "FLUXNET (same world), predict the 13 parameters of every land cell with "
                    "SPIE (its fold networks averaged) and baselines (refitted on all towers, "
                    "or their fold vectors averaged), run the LUE model per chunk and write "
                    "daily GPP and the parameters of every method and of the truth into a CF "
                    "Zarr store; then the map-wide errors, the towers' area of applicability "
                    "and the error by distance to the towers. Resumable per chunk; with "
                    "--workers N or --scheduler ADDRESS the chunks run on a Dask cluster (the "
                    "results are the same).",
        epilog="example:\n  lue-spie maps --results results/ci --resolution 2.5 --chunk 8")
    p.add_argument("--results", required=True,
                   help="results folder (data/, calibration/ and extrapolation/ of the book)")
    p.add_argument("--out", default=None, help="maps folder (default: RESULTS/maps)")
    options.add_arguments(p, MapsSettings, exclude=_LISTS)
    p.add_argument("--methods", nargs="+", default=list(MapsSettings().methods),
                   metavar="NAME", help=options.field_docs(MapsSettings)["methods"])
    add_execution_arguments(p, what="the chunks")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1; 0 = torch's default)")
    p.add_argument("--figures", action=argparse.BooleanOptionalAction, default=True,
                   help="draw the figures (--no-figures: store and tables only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cli)
    # The maps folder (default RESULTS/maps) is checked before any work (lue_spie.cli.main).
    options.output_folders(p, lambda a: {"--out": a.out or
                                         Layout(a.results, maps_dir=a.out).maps.folder})

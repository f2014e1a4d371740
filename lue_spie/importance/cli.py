"""``lue-spie importance``: feature importance of the SPIE networks (paper section 2.4)."""

from __future__ import annotations

import argparse

from lue_spie import options
from lue_spie.importance.settings import ALL, COMBINED, ImportanceSettings
from lue_spie.layout import Layout

__all__ = ["register_cli"]

#: Settings given as several values on the command line (``--folds 0 1``).
_LISTS = ("pd_percentiles", "folds")


def _cli(args: argparse.Namespace) -> int:
    import torch

    from lue_spie.importance.step import run
    from lue_spie.layout import ImportanceFiles, ImportanceTable

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = options.from_args(ImportanceSettings, args, exclude=_LISTS,
                                 pd_percentiles=tuple(args.pd_percentiles),
                                 folds=tuple(args.folds) if args.folds else None)
    layout = Layout(args.results, importance_dir=args.out)
    out = layout.importance.folder
    res, written = run(layout, settings, with_figures=args.figures,
                       log=(lambda *_: None) if args.quiet else print)
    classes = res.by_class[res.by_class["parameter"] == ALL].sort_values("mean",
                                                                         ascending=False)
    print(f"importance of {len(res.feature_names)} features for 13 parameters, "
          f"{res.shap_check.shape[0]} fold(s), {res.timings['total']:.1f} s; by class "
          "(mean normalised importance, all parameters):")
    for _, r in classes.iterrows():
        print(f"  {r['feature_class']:8s} {r['mean']:.3f}  ({r['n_features']} features)")
    top = res.importance[res.importance["parameter"] == ALL].nlargest(5, COMBINED)
    print("top features: " + ", ".join(f"{f} ({v:.2f})" for f, v in
                                        zip(top["feature"], top[COMBINED], strict=True)))
    if res.driver_summary is not None:
        s = res.driver_summary[res.driver_summary["method"] == COMBINED]
        print(f"true drivers (virtual FLUXNET): mean precision@k {s['precision_at_k'].mean():.2f}"
              f", mean AUC against the features that drive nothing {s['auc'].mean():.2f}")
    n_tables = sum(1 for name in written if name in set(ImportanceTable))
    print(f"{n_tables} tables and {len(written) - n_tables} figures in {out} "
          f"({ImportanceFiles.RECORD} lists them)")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``importance`` sub-command."""
    d = ImportanceSettings()
    p = subparsers.add_parser(
        "importance", help="feature importance of the SPIE networks (SHAP, LRP, PD; Figure 8)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Explain every fold's SPIE network (RESULTS/extrapolation/SPIE) on its "
                    "training sites (RESULTS/data) with SHAP (shap's DeepExplainer), LRP "
                    "(captum, epsilon rule) and partial dependence (scikit-learn), per "
                    "parameter and overall; normalise, average the three and the folds, "
                    "aggregate by feature class, and on virtual FLUXNET compare with the true "
                    "drivers. Tables as parquet (with provenance) and CSV, figures (Figure 8 "
                    "and the per-feature views) as PNG and SVG.",
        epilog="example:\n  lue-spie importance --results results/ci --out "
               "results/ci/importance")
    p.add_argument("--results", required=True,
                   help="results folder (data/ and extrapolation/SPIE/ with the networks)")
    p.add_argument("--out", default=None,
                   help="folder for the tables and figures (default: RESULTS/importance)")
    options.add_arguments(p, ImportanceSettings, exclude=_LISTS)
    p.add_argument("--pd-percentiles", type=float, nargs=2, default=d.pd_percentiles,
                   metavar=("LOW", "HIGH"),
                   help=options.field_docs(ImportanceSettings)["pd_percentiles"] + " (default "
                        f"{' '.join(str(q) for q in d.pd_percentiles)})")
    p.add_argument("--folds", type=int, nargs="+", default=d.folds, metavar="K",
                   help=options.field_docs(ImportanceSettings)["folds"])
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1; 0 = torch's default)")
    p.add_argument("--figures", action=argparse.BooleanOptionalAction, default=True,
                   help="draw the figures (--no-figures: tables only)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cli)
    options.output_folders(p, lambda a: {"--out": a.out or
                                         Layout(a.results).importance.folder})

"""The ``lue-spie importance`` step: feature importance of the SPIE networks (Figure 8).

Which site features drive the parameters that SPIE predicts (paper section 2.4)?
:func:`run` reads a results folder (every fold's SPIE network,
:mod:`~lue_spie.importance.networks`, and the dataset they were trained on) and runs
:func:`feature_importance`: each fold's network explained on its training sites by SHAP, LRP
and partial dependence (:mod:`~lue_spie.importance.folds`,
:mod:`~lue_spie.importance.attribution`), the importances normalised, combined, averaged over
the folds and aggregated by feature class (:mod:`~lue_spie.importance.aggregate`) and, on the
virtual FLUXNET, compared with the generator's true drivers (:mod:`~lue_spie.importance.truth`).
:func:`write_importance` writes the tables (parquet with provenance, CSV), the figures (PNG,
SVG) and the record of the run (the tables' names: :class:`lue_spie.layout.ImportanceTable`;
the figures': the constants at the top of this module).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lue_spie import store
from lue_spie.importance.aggregate import class_importance, fold_means, method_agreement
from lue_spie.importance.folds import fold_tables, torch_threads
from lue_spie.importance.networks import networks_dir, spie_networks
from lue_spie.importance.settings import METHODS, ImportanceSettings
from lue_spie.importance.truth import driver_recovery, truth_correlation
from lue_spie.layout import ImportanceFiles, ImportanceTable, Layout

__all__ = [
    "FIGURE8",
    "FEATURES_FIGURE",
    "HEATMAP_FIGURE",
    "ImportanceResult",
    "feature_importance",
    "run",
    "write_importance",
]

# The step's tables are named by :class:`lue_spie.layout.ImportanceTable`; its figures are:
#: Figure 8: importance by feature class.
FIGURE8 = "figure8_importance_by_class"
#: Figure of the most important features overall.
FEATURES_FIGURE = "importance_features"
#: Figure of the most important features against the parameters.
HEATMAP_FIGURE = "importance_heatmap"


@dataclasses.dataclass
class ImportanceResult:
    """The whole analysis (:func:`feature_importance`).

    Attributes:
        folds: Long table: ``fold, method, parameter, feature, feature_class, raw,
            normalised`` (method also ``combined``; parameter also ``all``).
        importance: Fold means per ``parameter, feature``: ``feature_class``, one column per
            method and ``combined``, ``combined_sd`` (across folds), ``rank`` (1 = most
            important by ``combined`` within the parameter), ``n_folds``.
        by_class: :func:`~lue_spie.importance.aggregate.class_importance` of
            :attr:`importance`.
        agreement: :func:`~lue_spie.importance.aggregate.method_agreement` of
            :attr:`importance`.
        pd_curves: ``fold, parameter, feature, z, value, pd``: the PD curves (``z`` the
            z-scored grid, ``value`` the same in the feature's units).
        shap_check: Per fold: sites explained, background sites, the largest additivity
            error, seconds per method.
        drivers, driver_summary: :func:`~lue_spie.importance.truth.driver_recovery` (None
            without the truth).
        settings: The settings.
        feature_names: The 77 inputs.
        timings: Seconds per phase.
    """

    folds: pd.DataFrame
    importance: pd.DataFrame
    by_class: pd.DataFrame
    agreement: pd.DataFrame
    pd_curves: pd.DataFrame
    shap_check: pd.DataFrame
    drivers: pd.DataFrame | None
    driver_summary: pd.DataFrame | None
    settings: ImportanceSettings
    feature_names: tuple[str, ...]
    timings: dict[str, float]

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by file stem."""
        T = ImportanceTable
        out = {T.IMPORTANCE: self.importance, T.BY_CLASS: self.by_class,
               T.METHOD_AGREEMENT: self.agreement, T.FOLDS: self.folds,
               T.PD_CURVES: self.pd_curves, T.SHAP_CHECK: self.shap_check}
        if self.drivers is not None:
            out[T.DRIVERS] = self.drivers
            out[T.DRIVER_SUMMARY] = self.driver_summary
        return out

    def figures(self) -> dict[str, Any]:
        """Every figure by file stem (Figure 8 first)."""
        from lue_spie import plots

        return {FIGURE8: plots.importance_by_class(self.by_class),
                FEATURES_FIGURE: plots.importance_features(self.importance),
                HEATMAP_FIGURE: plots.importance_heatmap(self.importance)}


def feature_importance(nets: Any, sites: pd.DataFrame,
                       settings: ImportanceSettings | None = None, *,
                       truth_meta: Mapping[str, Any] | None = None,
                       truth_r: pd.Series | None = None,
                       progress: Callable[[str], Any] | None = None) -> ImportanceResult:
    """SHAP, LRP and PD importances of every fold's network, normalised and aggregated.

    Args:
        nets: :class:`~lue_spie.methods.spie.SPIENetworks` (or a folder / file for
            :func:`~lue_spie.methods.spie.load_networks`).
        sites: The sites table of the dataset the networks were trained on (raw features,
            ``site``, ``PFT``, ``koeppen``).
        settings: :class:`~lue_spie.importance.settings.ImportanceSettings`.
        truth_meta: The generator's ``truth.json`` (virtual FLUXNET): adds the driver tables.
        truth_r: Per parameter, the correlation of SPIE's held-out predictions with the truth
            (:func:`~lue_spie.importance.truth.truth_correlation`), shown beside the driver summary.
        progress: Called with one line per fold.

    Raises:
        ValueError: when a fold's training sites are not in ``sites`` or the networks'
            features are not this dataset's
            (:func:`~lue_spie.importance.attribution.check_design`).
    """
    from lue_spie.methods.spie import SPIENetworks, load_networks

    t_all = time.perf_counter()
    s = settings or ImportanceSettings()
    if not isinstance(nets, SPIENetworks):
        nets = load_networks(nets)
    folds = list(nets.folds) if s.folds is None else list(s.folds)
    unknown = sorted(set(folds) - set(nets.folds))
    if unknown:
        raise ValueError(f"importance: no network of fold(s) {unknown}; folds: {nets.folds}")
    if "site" not in sites.columns:
        raise ValueError("importance: the sites table has no column 'site'")
    table = sites.assign(site=sites["site"].astype(str)).set_index("site", drop=False)
    names = tuple(str(c) for c in nets.feature_names)

    rows, curves, checks = [], [], []
    with torch_threads(1):
        for k in folds:
            fold_rows, fold_curves, check = fold_tables(nets, k, table, s)
            rows.append(fold_rows)
            curves.append(fold_curves)
            checks.append(check)
            if progress is not None:
                progress(f"fold {k}: {check['n_sites']} sites explained; "
                         + ", ".join(f"{m} {check['seconds_' + m]:.1f} s" for m in METHODS))
    folds_table = pd.concat(rows, ignore_index=True)
    importance = fold_means(folds_table)
    by_class = class_importance(importance)
    drivers = summary = None
    if truth_meta is not None:
        drivers, summary = driver_recovery(importance, truth_meta, sites=sites,
                                           truth_r=truth_r)
    t_total = time.perf_counter() - t_all
    shap_check = pd.DataFrame(checks)
    timings = {m: float(shap_check[f"seconds_{m}"].sum()) for m in METHODS}
    timings["total"] = t_total
    return ImportanceResult(
        folds=folds_table, importance=importance, by_class=by_class,
        agreement=method_agreement(importance),
        pd_curves=pd.concat(curves, ignore_index=True), shap_check=shap_check,
        drivers=drivers, driver_summary=summary, settings=s, feature_names=names,
        timings=timings)


def run(layout: Layout | str | Path, settings: ImportanceSettings | None = None, *,
        with_figures: bool = True, log: Callable[[str], Any] = lambda *_: None
        ) -> tuple[ImportanceResult, dict[str, list[Path]]]:
    """The ``lue-spie importance`` step: read a results folder, analyse, write.

    Reads SPIE's networks (its folder of ``layout.extrapolation``) and the dataset
    (``layout.data``: the sites table; on virtual FLUXNET the truth), runs
    :func:`feature_importance` and writes every table (parquet with provenance, CSV), figure
    (PNG, SVG) and the record into ``layout.importance``.

    Raises:
        FileNotFoundError: when SPIE has not run (no networks) or the dataset is missing;
            the message names what to run.
    """
    from lue_spie.data.io import load_dataset

    layout = layout if isinstance(layout, Layout) else Layout(Path(layout))
    results = Path(layout.root)
    out = Path(layout.importance.folder)
    if not results.is_dir():
        raise FileNotFoundError(f"results folder {results} not found (from the working "
                                f"directory {Path.cwd()})")
    data = layout.data
    data_dir = Path(data.folder)
    if not data.sites.is_file():
        raise FileNotFoundError(f"{data_dir}: no dataset ({data.sites.name}); the networks' "
                                "sites and features come from it (the data chapter writes it)")
    spie = networks_dir(layout)
    net_dir = Path(spie.folder)
    t0 = time.perf_counter()
    nets = spie_networks(layout)
    dataset = load_dataset(data_dir)
    truth_r = None
    params_file = spie.params
    if dataset.truth is not None and params_file.is_file():
        truth_r = truth_correlation(store.read_parquet(params_file), dataset.truth,
                                    dataset.sites)
    t_read = time.perf_counter() - t0
    log(f"importance: {len(nets)} fold network(s) of {net_dir}; dataset {data_dir}")
    res = feature_importance(nets, dataset.sites, settings, truth_meta=dataset.truth_meta,
                             truth_r=truth_r, progress=log)
    res.timings["read"] = t_read
    inputs = {f.name: f for f in sorted(spie.networks())}
    inputs[data.sites.name] = data.sites
    for f in (data.truth, data.truth_meta):
        if f.is_file():
            inputs[f.name] = f
    written = write_importance(res, out, inputs=inputs, figures=with_figures, log=log)
    return res, written


def write_importance(res: ImportanceResult, out: str | Path, *,
                     inputs: Mapping[str, str | Path] | None = None, figures: bool = True,
                     formats: Sequence[str] = ("png", "svg"),
                     log: Callable[[str], Any] = lambda *_: None) -> dict[str, list[Path]]:
    """Write the tables (parquet + provenance, CSV), the figures and ``importance.json``.

    Returns:
        File stem -> the files written for it.
    """
    files = ImportanceFiles(Path(out))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {**res.settings.to_dict(), "methods": list(METHODS),
                "n_features": len(res.feature_names),
                "folds": sorted(int(k) for k in res.folds["fold"].unique())}
    written: dict[str, list[Path]] = {}
    t0 = time.perf_counter()
    for name, table in res.tables().items():
        prov = store.make_provenance(f"importance.{name}", settings=settings,
                                     inputs=inputs, seed=res.settings.seed)
        written[name] = store.write_table(table, out, name, prov)
    res.timings["write_tables"] = time.perf_counter() - t0
    if figures:
        from lue_spie.plots import save_figure

        t0 = time.perf_counter()
        fig_dir = files.figures_dir
        fig_dir.mkdir(exist_ok=True)
        for name, fig in res.figures().items():
            written[name] = save_figure(fig, fig_dir / name, formats)
            log(f"  figure {name}")
        res.timings["write_figures"] = time.perf_counter() - t0
    record = store.make_provenance("importance", settings=settings, inputs=inputs,
                                   seed=res.settings.seed)
    record["timings_s"] = dict(res.timings)
    record["files"] = {p.relative_to(out).as_posix(): store.sha256_file(p)
                       for ps in written.values() for p in ps}
    store.atomic_write_json(files.record, record)
    return written

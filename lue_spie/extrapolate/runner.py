"""The cross-validated comparison: every method on every fold, resumable, in one call.

:func:`run_extrapolation` reads a dataset folder and a site-calibration folder, makes (or
reads) the ten-fold split (:mod:`lue_spie.extrapolate.cv`), plans the units of work (one per
method; a
method that batches folds runs them together, others fold after fold; see
:mod:`lue_spie.extrapolate.units`), skips the (method, fold) pairs whose files already carry
the same key, runs the rest with a progress bar (in this process, or on a Dask cluster through
:mod:`lue_spie.execution`), and finally gathers each method's folds into
``OUT/<method>/params.parquet`` and ``OUT/<method>/gpp.parquet`` plus one
``OUT/summary.parquet`` (method, fold, site, daily NSE, note) for a quick look.

Results layout (``OUT`` is the extrapolation folder, ``RESULTS/extrapolation`` in the book)::

    OUT/folds.parquet                      the split (site -> fold), with provenance
    OUT/<method>/fold<k>.params.parquet    predicted vectors and cost terms of fold k
    OUT/<method>/fold<k>.gpp.parquet       daily GPP_sim of fold k's held-out sites
    OUT/<method>/params.parquet, gpp.parquet   all folds of the method
    OUT/summary.parquet                    every method, fold and held-out site

On a Dask cluster (``execution`` with workers or a scheduler) every unit is one task and the
:class:`~lue_spie.methods.SiteData` goes to each worker once. There, methods run one task per
(method, fold), so that the folds of OPT-All and OPT-PFT spread over the workers (their
vectors are the same as in one batched run: each unit is seeded from its own name), except the
methods in :data:`STACKED_ON_CLUSTER` (SPIE, whose folds train as one stacked network), which
stay one task for all folds unless ``batch_folds`` is False.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lue_spie import store
from lue_spie.data.io import SITE_DAY_FILE, SITES_FILE, load_dataset
from lue_spie.execution import ExecutionSettings, Executor
from lue_spie.extrapolate.cv import FOLDS_FILE, FoldSplit, make_folds, read_folds, write_folds
from lue_spie.extrapolate.units import (
    UnitSpec,
    execute_unit,
    method_dir,
    unit_done,
    unit_paths,
)
from lue_spie.methods.base import SiteData, get_method, method_class, registered_methods

__all__ = [
    "ExtrapolationSettings",
    "ExtrapolationResult",
    "plan_units",
    "run_extrapolation",
    "read_method_results",
    "CALIBRATION_FILE",
    "STACKED_ON_CLUSTER",
]

#: The site-calibration table inside a calibration results folder.
CALIBRATION_FILE = "calibration.parquet"
#: Methods that keep all their folds in one task on a Dask cluster (a stacked training of
#: every fold at once pays off more than spreading its folds; ``batch_folds=False`` splits
#: them too). Every other method runs one task per (method, fold) there.
STACKED_ON_CLUSTER: tuple[str, ...] = ("SPIE",)


@dataclasses.dataclass(frozen=True)
class ExtrapolationSettings:
    """What to run.

    Attributes:
        methods: Method names (paper names; default: every registered method in the paper's
            order).
        n_folds: Number of folds (paper: 10).
        seed: Seed of the split and of every method (each method's own ``seed``/settings
            unless given in ``method_params``).
        years: Years to use (default: all).
        sites: Sites of the cross-validation (default: every site of the dataset); the
            folds split these sites only.
        method_params: Method name -> hyperparameters (keyword arguments of its class).
        batch_folds: Let methods that can (OPT-All, OPT-PFT, SPIE) run all their folds in one
            call; False runs every method fold after fold. On a Dask cluster only the methods
            of :data:`STACKED_ON_CLUSTER` batch their folds (the others spread them over the
            workers). The results are the same either way.
    """

    methods: tuple[str, ...] | None = None
    n_folds: int = 10
    seed: int = 0
    years: tuple[int, ...] | None = None
    sites: tuple[str, ...] | None = None
    method_params: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    batch_folds: bool = True

    def method_names(self) -> list[str]:
        """The methods to run, checked against the registry."""
        names = list(self.methods) if self.methods else list(registered_methods())
        for n in names:
            method_class(n)  # a clear error for an unknown name
        unknown = sorted(set(self.method_params) - set(names))
        if unknown:
            raise ValueError(f"method_params for method(s) {unknown} that are not run "
                             f"(methods: {names})")
        return names


@dataclasses.dataclass
class ExtrapolationResult:
    """What :func:`run_extrapolation` did.

    Attributes:
        out: The extrapolation folder.
        split: The fold split.
        ran: Units run in this call (labels) and their wall time in seconds.
        skipped: (method, fold) pairs whose results were already there.
        summary: ``OUT/summary.parquet`` as a table.
    """

    out: Path
    split: FoldSplit
    ran: dict[str, float]
    skipped: list[tuple[str, int]]
    summary: pd.DataFrame


def _checksum_files(paths: Sequence[Path]) -> dict[str, str | None]:
    return {p.name: store.sha256_file(p) if p.is_file() else None for p in paths}


def _split(data: SiteData, out: Path, n_folds: int, seed: int, log: Callable,
           sites: Sequence[str] | None = None) -> FoldSplit:
    """The split of ``out`` when it matches the data and settings, else a new one."""
    table = data.dataset.sites
    if sites is not None:
        table = table[table["site"].isin(data.check_sites(sites, "sites"))]
    fresh = make_folds(table, n_folds, seed)
    path = out / FOLDS_FILE
    if path.is_file():
        old = read_folds(out)
        if old.checksum() == fresh.checksum():
            return old
        log(f"note: {path} holds a split of other sites or settings; writing a new one "
            "(results of the old split no longer match and will be redone)")
    write_folds(fresh, out)
    return fresh


def plan_units(settings: ExtrapolationSettings, split: FoldSplit, out: str | Path,
               context: Mapping[str, Any], *, cluster: bool = False) -> list[UnitSpec]:
    """The units to run: one per method with all folds when it batches folds, else one per
    (method, fold). On a ``cluster`` only the methods of :data:`STACKED_ON_CLUSTER` batch
    their folds."""
    units = []
    folds = [(k, tuple(tr), tuple(te)) for k, tr, te in split.folds()]
    for name in settings.method_names():
        params = dict(settings.method_params.get(name, {}))
        params = _seeded(get_method(name, **params), settings.seed, params)
        method = get_method(name, **params)
        batched = settings.batch_folds and hasattr(method, "fit_predict_folds") and (
            not cluster or name in STACKED_ON_CLUSTER)
        groups = [tuple(folds)] if batched else [(f,) for f in folds]
        units += [UnitSpec(method=name, params=params, folds=g, out=str(out),
                           context=dict(context)) for g in groups]
    return units


def _seeded(method: Any, seed: int, params: dict[str, Any]) -> dict[str, Any]:
    """The method's hyperparameters with the run's seed where the method has one."""
    current = method.get_params()
    if "seed" in current and "seed" not in params:
        params["seed"] = int(seed)
    settings = current.get("settings")
    if isinstance(settings, Mapping):
        given = params.get("settings") or {}
        given = dataclasses.asdict(given) if dataclasses.is_dataclass(given) else dict(given)
        params["settings"] = {**settings, **({"seed": int(seed)} if "seed" in settings
                                              and "seed" not in given else {}), **given}
    return params


def run_extrapolation(
    data_dir: str | Path,
    calib_dir: str | Path | None,
    out: str | Path,
    settings: ExtrapolationSettings | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], Any] = print,
    execution: ExecutionSettings | None = None,
) -> ExtrapolationResult:
    """Run the cross-validated comparison (see the module docstring).

    Args:
        data_dir: Dataset folder.
        calib_dir: Site-calibration results folder (``calibration.parquet``); needed by the
            methods that learn from calibrated vectors.
        out: Extrapolation results folder.
        settings: What to run (default :class:`ExtrapolationSettings()`).
        progress: Show a progress bar over units.
        log: Where progress lines go.
        execution: Where the units run (default: in this process; see
            :class:`~lue_spie.execution.ExecutionSettings`); the results are the same.

    Raises:
        TooFewSites: when the dataset has fewer sites than folds (one line).
        ValueError, KeyError, FileNotFoundError: bad input, naming it.
    """
    settings = settings or ExtrapolationSettings()
    execution = execution or ExecutionSettings()
    names = settings.method_names()
    data_dir, out = Path(data_dir), Path(out)
    dataset = load_dataset(data_dir)
    calibration = None
    cal_path = None
    needs_cal = [n for n in names if method_class(n).uses_calibration]
    if calib_dir is not None:
        cal_path = Path(calib_dir) / CALIBRATION_FILE
        calibration = store.read_parquet(cal_path)
    elif needs_cal:
        raise ValueError(f"methods {needs_cal} learn from site-calibrated vectors: give the "
                         "calibration folder (--calib DIR)")
    data = SiteData(dataset, calibration, years=settings.years)
    out.mkdir(parents=True, exist_ok=True)
    split = _split(data, out, settings.n_folds, settings.seed, log, settings.sites)
    context = {"data": _checksum_files([data_dir / SITE_DAY_FILE, data_dir / SITES_FILE]),
               "calibration": store.sha256_file(cal_path) if cal_path else None,
               "years": list(settings.years) if settings.years else None,
               "split": split.checksum()}
    # On a cluster the units get an absolute folder: workers need not share our directory.
    units = plan_units(settings, split, out.resolve() if execution.distributed else out,
                       context, cluster=execution.distributed)
    skipped = [(u.method, k) for u in units for k, _, _ in u.folds if unit_done(u, k)]
    todo = [u for u in units if any(not unit_done(u, k) for k, _, _ in u.folds)]
    if skipped:
        log(f"{len(skipped)} (method, fold) result(s) already in {out} with the same settings "
            "and data: skipped")
    seconds: dict[str, float] = {}
    if todo:
        with Executor(execution, log=log) as ex:
            ex.check_paths(out)
            shared = ex.share(data)
            for i, t in ex.map(_run_unit, todo, shared=shared, labels=[u.label for u in todo],
                               desc="extrapolate", name="extrapolate-unit", progress=progress):
                seconds[todo[i].label] = t
    ran = {u.label: seconds[u.label] for u in todo}  # in the plan's order
    for name in names:  # each unit removed its own work folder; now their empty parent
        with contextlib.suppress(OSError):
            (method_dir(out, name) / "work").rmdir()
    summary = _gather(out, names, split, context)
    return ExtrapolationResult(out=out, split=split, ran=ran, skipped=skipped, summary=summary)


def _run_unit(spec: UnitSpec, data: SiteData) -> float:
    """One unit (in this process or on a worker); its wall time in seconds."""
    t0 = time.perf_counter()
    execute_unit(spec, data)
    return time.perf_counter() - t0


def _gather(out: Path, names: Sequence[str], split: FoldSplit,
            context: Mapping[str, Any]) -> pd.DataFrame:
    """Each method's folds into one params and one GPP table; the summary of all methods."""
    rows = []
    for name in names:
        params, gpp = [], []
        for k in range(split.n_folds):
            paths = unit_paths(out, name, k)
            params.append(store.read_parquet(paths["params"]))
            gpp.append(store.read_parquet(paths["gpp"]))
        p = pd.concat(params, ignore_index=True).sort_values("site", kind="stable")
        g = pd.concat(gpp, ignore_index=True).sort_values(["site", "date"], kind="stable")
        prov = store.make_provenance(f"extrapolate.{name}", settings={
            "method": name, "n_folds": split.n_folds, **dict(context)})
        d = method_dir(out, name)
        store.write_parquet(p.reset_index(drop=True), d / "params.parquet", prov)
        store.write_parquet(g.reset_index(drop=True), d / "gpp.parquet", prov)
        rows.append(p.assign(method=name)[["method", "fold", "site", "nse", "note"]])
    # Methods run by earlier calls on the same split, data and calibration (e.g. the other
    # method chapters of the book) belong to the summary too; stale ones do not.
    keys = ("data", "calibration", "years", "split")
    for params_file in sorted(out.glob("*/params.parquet")):
        settings = store.read_provenance(params_file).get("settings", {})
        name = settings.get("method")
        if name in names or name is None:
            continue
        if all(settings.get(k) == context.get(k) for k in keys):
            p = store.read_parquet(params_file)
            rows.append(p.assign(method=name)[["method", "fold", "site", "nse", "note"]])
    order = {m: i for i, m in enumerate(registered_methods())}
    summary = pd.concat(rows, ignore_index=True)
    summary = summary.sort_values(["method", "fold", "site"], kind="stable",
                                  key=lambda c: c.map(order).fillna(len(order))
                                  if c.name == "method" else c).reset_index(drop=True)
    store.write_parquet(summary, out / "summary.parquet",
                        store.make_provenance("extrapolate.summary", settings=dict(context)))
    return summary


def read_method_results(out: str | Path, method: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(params, gpp)`` of one method from an extrapolation folder.

    Raises:
        FileNotFoundError: naming the file and the command that writes it.
    """
    d = method_dir(out, method)
    try:
        return (store.read_parquet(d / "params.parquet"), store.read_parquet(d / "gpp.parquet"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{d}: no results of method {method}; run `lue-spie "
                                f"extrapolate --methods {method} --out {out}` first") from None

"""Planning and running the units of the cross-validation, and gathering their results.

:func:`plan_units` turns the settings and the split into units of work (a method on one or
more folds, by the method's ``folds`` keyword: see :data:`lue_spie.methods.base.FOLDS`);
:func:`run_units` runs those not done yet with a progress bar, in this process or on a Dask
cluster (:mod:`lue_spie.execution`), sending the :class:`~lue_spie.methods.SiteData` to each
worker once; :func:`gather` joins each method's folds into one parameter table and one GPP
table and writes the summary of every method, fold and held-out site. The step that does all
of it for a results folder is :mod:`lue_spie.extrapolate.step`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lue_spie import store
from lue_spie.execution import ExecutionSettings, Executor
from lue_spie.extrapolate.cv import FoldSplit
from lue_spie.extrapolate.settings import ExtrapolationSettings
from lue_spie.extrapolate.units import UnitSpec, execute_unit
from lue_spie.layout import ExtrapolationFiles
from lue_spie.methods.base import SiteData, get_method, method_class, registered_methods

__all__ = ["plan_units", "run_units", "gather"]


def plan_units(settings: ExtrapolationSettings, split: FoldSplit, out: str | Path,
               context: Mapping[str, Any], *, cluster: bool = False) -> list[UnitSpec]:
    """The units to run, by each method's ``folds`` keyword: one unit with all folds for a
    ``"stacked"`` or ``"independent"`` method, and for a ``"batched"`` one in this process
    (not on a ``cluster``, where its folds spread over the workers); else one unit per
    (method, fold). ``settings.batch_folds=False`` makes every unit one fold."""
    units = []
    folds = [(k, tuple(tr), tuple(te)) for k, tr, te in split.folds()]
    for name in settings.method_names():
        params = dict(settings.method_params.get(name, {}))
        params = _seeded(get_method(name, **params), settings.seed, params)
        # Every hyperparameter, defaults included: the unit's key and its provenance then say
        # what ran, and a change of a default in the code runs the method again.
        params = get_method(name, **params).get_params()
        mode = method_class(name).folds
        batched = settings.batch_folds and (mode in ("stacked", "independent")
                                            or (mode == "batched" and not cluster))
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


def run_units(units: Sequence[UnitSpec], data: SiteData, execution: ExecutionSettings,
              out: ExtrapolationFiles, *, progress: bool = True,
              log: Callable[[str], Any] = print) -> dict[str, float]:
    """Run ``units`` (in this process or on the cluster of ``execution``); unit label ->
    wall time in seconds, in the plan's order."""
    seconds: dict[str, float] = {}
    if units:
        with Executor(execution, log=log) as ex:
            ex.check_paths(Path(out.folder))
            shared = ex.share(data)
            for i, t in ex.map(_run_unit, list(units), shared=shared,
                               labels=[u.label for u in units], desc="extrapolate",
                               name="extrapolate-unit", progress=progress):
                seconds[units[i].label] = t
    return {u.label: seconds[u.label] for u in units}


def _run_unit(spec: UnitSpec, data: SiteData) -> float:
    """One unit (in this process or on a worker); its wall time in seconds."""
    t0 = time.perf_counter()
    execute_unit(spec, data)
    return time.perf_counter() - t0


def gather(out: ExtrapolationFiles, names: Sequence[str], split: FoldSplit,
           context: Mapping[str, Any]) -> pd.DataFrame:
    """Each method's folds into one params and one GPP table; the summary of all methods."""
    rows = []
    for name in names:
        files = out.method(name)
        params, gpp = [], []
        for k in range(split.n_folds):
            params.append(store.read_parquet(files.fold_params(k)))
            gpp.append(store.read_parquet(files.fold_gpp(k)))
        p = pd.concat(params, ignore_index=True).sort_values("site", kind="stable")
        g = pd.concat(gpp, ignore_index=True).sort_values(["site", "date"], kind="stable")
        prov = store.make_provenance(f"extrapolate.{name}", settings={
            "method": name, "n_folds": split.n_folds, **dict(context)})
        store.write_parquet(p.reset_index(drop=True), files.params, prov)
        store.write_parquet(g.reset_index(drop=True), files.gpp, prov)
        rows.append(p.assign(method=name)[["method", "fold", "site", "nse", "note"]])
    # Methods run by earlier calls on the same split, data and calibration (e.g. the other
    # method chapters of the book) belong to the summary too; stale ones do not.
    keys = ("data", "calibration", "years", "split")
    for files in out.method_folders():
        settings = store.read_provenance(files.params).get("settings", {})
        name = settings.get("method")
        if name in names or name is None:
            continue
        if all(settings.get(k) == context.get(k) for k in keys):
            p = store.read_parquet(files.params)
            rows.append(p.assign(method=name)[["method", "fold", "site", "nse", "note"]])
    order = {m: i for i, m in enumerate(registered_methods())}
    summary = pd.concat(rows, ignore_index=True)
    summary = summary.sort_values(["method", "fold", "site"], kind="stable",
                                  key=lambda c: c.map(order).fillna(len(order))
                                  if c.name == "method" else c).reset_index(drop=True)
    store.write_parquet(summary, out.summary,
                        store.make_provenance("extrapolate.summary", settings=dict(context)))
    return summary

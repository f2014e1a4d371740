"""The importance analysis against the truth of the virtual FLUXNET (chapter 11).

The generator of the virtual FLUXNET (:mod:`lue_spie.data.virtual`) makes every parameter
a function of a few named features plus a PFT effect and records these drivers in
``truth.json``. This module compares them with the importance ranking of
:func:`lue_spie.importance.step.feature_importance` (its ``importance`` table):

* :func:`true_drivers`: each parameter's driver variables. A categorical variable (PFT, the
  Koeppen type) counts as one variable whose importance is that of its most important
  one-hot column; PFT counts as a driver of a parameter only when the parameter's base value
  differs between PFTs (``truth.json`` lists it for every parameter).
* :func:`driver_recovery`: per parameter and attribution method, the rank of every true
  driver among the variables, precision@k (k = number of true drivers) and the probability
  that a true driver outranks a variable that drives no parameter at all (an AUC), with the
  best-ranked other variable and how strongly it correlates with the drivers across sites
  (a proxy explains a high rank).
* :func:`driver_ranks`: the driver ranks in one line per parameter.
* :func:`truth_correlation`: how well SPIE's held-out predictions follow the truth (the
  network can only point at the drivers of a parameter it has learnt).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from lue_spie.data.features import CONTINUOUS_FEATURES, FEATURE_CLASSES
from lue_spie.importance.settings import COMBINED, METHODS, ONE_HOT_GROUPS
from lue_spie.params import PARAMETERS, lag_mask

__all__ = ["DriverSet", "ONE_HOT_GROUPS", "true_drivers", "driver_recovery", "driver_ranks",
           "truth_correlation"]

#: The importance columns compared, in order: the three methods and their average.
METHOD_COLUMNS: tuple[str, ...] = (*METHODS, COMBINED)
_GROUP_OF: dict[str, str] = {c: g for g in ONE_HOT_GROUPS for c in FEATURE_CLASSES[g]}


@dataclasses.dataclass(frozen=True)
class DriverSet:
    """The true drivers of one parameter, as variables of the driver comparison.

    Attributes:
        variables: The driver variables: continuous feature names and ``"PFT"`` when the
            parameter's base value differs between PFTs.
        listed: The drivers as ``truth.json`` lists them.
    """

    variables: tuple[str, ...]
    listed: tuple[str, ...]


def true_drivers(truth_meta: Mapping[str, Any]) -> dict[str, DriverSet]:
    """Each parameter's true driver variables from the generator's ``truth.json``.

    ``"PFT"`` (listed for every parameter) counts only when ``base_by_PFT`` holds more than
    one value; without ``base_by_PFT`` it counts as listed.

    Raises:
        ValueError: when ``truth_meta`` has no ``parameters`` entry for a parameter.
    """
    params = truth_meta.get("parameters") if isinstance(truth_meta, Mapping) else None
    if not isinstance(params, Mapping):
        raise ValueError("importance: truth.json has no 'parameters' mapping")
    out = {}
    for p in PARAMETERS:
        if p not in params or "drivers" not in params[p]:
            raise ValueError(f"importance: truth.json lacks the drivers of parameter {p!r}")
        listed = tuple(str(d) for d in params[p]["drivers"])
        base = params[p].get("base_by_PFT")
        variables = []
        for d in listed:
            if d in ONE_HOT_GROUPS:
                if base is None or len({round(float(v), 12) for v in base.values()}) > 1:
                    variables.append(d)
            else:
                variables.append(d)
        out[p] = DriverSet(tuple(variables), listed)
    return out


def _variables(importance: pd.DataFrame, column: str, parameter: str) -> pd.Series:
    """One parameter's importances by variable: continuous features as they are, each one-hot
    group as one variable (its most important column)."""
    sub = importance[importance["parameter"] == parameter].set_index("feature")[column]
    var = pd.Series([_GROUP_OF.get(f, f) for f in sub.index], index=sub.index)
    return sub.groupby(var, sort=False).max()


def _pessimistic_rank(values: pd.Series) -> pd.Series:
    """Rank 1 = largest; ties share the worst rank (a driver tied with others is not above
    them)."""
    return values.rank(ascending=False, method="max")


def driver_recovery(importance: pd.DataFrame, truth_meta: Mapping[str, Any], *,
                    sites: pd.DataFrame | None = None,
                    truth_r: pd.Series | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The true drivers against the importance ranking, per parameter and method.

    Variables: the continuous features and one variable per one-hot group (PFT, Clim) with
    the importance of its most important column. Ranks are pessimistic (tied variables share
    the worst rank).

    Args:
        importance: :attr:`lue_spie.importance.step.ImportanceResult.importance`.
        truth_meta: The generator's ``truth.json``.
        sites: The sites table (raw features): adds the largest absolute Spearman correlation across
            sites between the best-ranked other variable and the parameter's continuous
            drivers (a proxy explains a high rank).
        truth_r: Per parameter, r between SPIE's predictions and the truth (shown as is;
            NaN without it).

    Returns:
        ``(drivers, summary)``. ``drivers``: ``parameter, method, driver, rank, importance,
        n_variables``. ``summary``: ``parameter, method, k, hits, precision_at_k, auc,
        drivers, top_k, missed, best_other, best_other_rank, best_other_r, r_truth``.
        ``auc`` is the share of (driver, variable driving no parameter) pairs in which the
        driver ranks higher (ties count half).
    """
    drivers = true_drivers(truth_meta)
    used = {v for d in drivers.values() for v in d.variables}
    rows, summ = [], []
    methods = [m for m in METHOD_COLUMNS if m in importance.columns]
    for p in PARAMETERS:
        d = drivers[p]
        for m in methods:
            imp = _variables(importance, m, p)
            if imp.isna().all():
                continue
            imp = imp.fillna(0.0)
            rank = _pessimistic_rank(imp)
            n_var = len(imp)
            for v in d.variables:
                rows.append({"parameter": p, "method": m, "driver": v,
                             "rank": int(rank[v]) if v in rank else np.nan,
                             "importance": float(imp[v]) if v in imp else np.nan,
                             "n_variables": n_var})
            k = len(d.variables)
            # Top k with ties broken against the drivers (pessimistic).
            order = sorted(imp.index, key=lambda v: (-imp[v], v in d.variables))
            top = order[:k]
            hits = sum(v in d.variables for v in top)
            nothing = [v for v in imp.index if v not in used]
            drv = [v for v in d.variables if v in imp.index]
            if drv and nothing:
                a = imp[drv].to_numpy()[:, None]
                b = imp[nothing].to_numpy()[None, :]
                auc = float(((a > b) + 0.5 * (a == b)).mean())
            else:
                auc = np.nan
            others = [v for v in order if v not in d.variables]
            best = others[0] if others else None
            r = np.nan
            if sites is not None and best in CONTINUOUS_FEATURES and best in sites.columns:
                cont = [v for v in d.variables if v in CONTINUOUS_FEATURES
                        and v in sites.columns]
                if cont:
                    corr = sites[[best, *cont]].astype(float).corr(method="spearman")
                    r = float(corr.loc[best, cont].abs().max())
            row = {"parameter": p, "method": m, "k": k, "hits": hits,
                   "precision_at_k": hits / k if k else np.nan, "auc": auc,
                   "drivers": ", ".join(d.variables), "top_k": ", ".join(top),
                   "missed": ", ".join(v for v in d.variables if v not in top),
                   "best_other": best,
                   "best_other_rank": int(rank[best]) if best is not None else np.nan,
                   "best_other_r": r}
            row["r_truth"] = float(truth_r.get(p, np.nan)) if truth_r is not None else np.nan
            summ.append(row)
    return pd.DataFrame(rows), pd.DataFrame(summ)


def driver_ranks(drivers: pd.DataFrame) -> pd.DataFrame:
    """The driver table in one line per parameter: ``"AI1 3, VIF1 44, ..."`` per method.

    Args:
        drivers: The ``drivers`` table of :func:`driver_recovery`.

    Returns:
        A table whose index is the parameters (in order), with one column per method;
        each cell lists the true drivers with their ranks among the variables.
    """
    methods = [m for m in METHOD_COLUMNS if m in set(drivers["method"])]
    out = {}
    for (p, m), g in drivers.groupby(["parameter", "method"], sort=False):
        out.setdefault(p, {})[m] = ", ".join(
            f"{d} {'-' if pd.isna(r) else int(r)}" for d, r in zip(g["driver"], g["rank"],
                                                                     strict=True))
    table = pd.DataFrame.from_dict(out, orient="index")
    return table.reindex(index=[p for p in PARAMETERS if p in out], columns=methods)


def truth_correlation(predictions: pd.DataFrame, truth: pd.DataFrame,
                      sites: pd.DataFrame) -> pd.Series:
    """Per parameter, Pearson's r between predicted and true values over the sites where the
    parameter is free (lag mask); NaN with fewer than 3 such sites or no spread."""
    pred = predictions.assign(site=predictions["site"].astype(str)).set_index("site")
    tru = truth.assign(site=truth["site"].astype(str)).set_index("site")
    common = [s for s in pred.index if s in tru.index]
    kg = sites.assign(site=sites["site"].astype(str)).set_index("site").loc[common, "koeppen"]
    free = np.asarray(lag_mask([str(k) for k in kg]), dtype=bool)
    out = {}
    for j, p in enumerate(PARAMETERS):
        a = pred.loc[common, p].to_numpy(dtype=float)[free[:, j]]
        b = tru.loc[common, p].to_numpy(dtype=float)[free[:, j]]
        ok = np.isfinite(a) & np.isfinite(b)
        a, b = a[ok], b[ok]
        out[p] = float(np.corrcoef(a, b)[0, 1]) if len(a) >= 3 and a.std() > 0 and \
            b.std() > 0 else np.nan
    return pd.Series(out, name="r_truth")

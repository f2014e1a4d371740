"""How wrong a map is, and where it may be trusted: errors against the truth, and the towers'
area of applicability.

**Errors** (:func:`gpp_skill`, :func:`parameter_skill`): over the land cells, each method's
mean annual GPP and parameters against the truth of the virtual world, weighted by the cells'
areas (a latitude-longitude cell shrinks towards the poles): RMSE, bias and the squared
correlation; a parameter only where it is free (the lag mask) and with its RMSE also as a
share of its range. Which parameters are worth mapping at all (:func:`identifiable`): those
the site calibration recovers at the towers (R2 of the calibrated against the true values at
least ``identifiable_r2``); a parameter that GPP does not constrain at a tower cannot be
expected on a map.

**Area of applicability** (:class:`Applicability`), after Meyer & Pebesma (2021): a cell's
*dissimilarity index* is the distance from its features to the nearest tower's, in the space
of the continuous site features z-scored with the towers' statistics, divided by the mean
distance between towers. The towers' own dissimilarity is measured the same way in the
cross-validation (each tower against the towers outside its fold), and a cell lies inside
the area of applicability when its index does not exceed the towers' upper whisker (third
quartile plus 1.5 interquartile ranges, at most their largest value). The features are not
weighted (Meyer & Pebesma weight them by a model's variable importance; the chapter's
exercise does). :func:`error_by_distance` bins the cells by their index and gives each
method's error per bin: how the error grows away from the towers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from lue_spie.data.features import CONTINUOUS_FEATURES, feature_matrix
from lue_spie.maps.settings import TRUTH
from lue_spie.parameter_skill import recovery_scores
from lue_spie.params import BOUNDS, PARAMETERS, lag_mask

__all__ = ["DAYS_PER_YEAR", "Applicability", "identifiable", "gpp_skill", "parameter_skill",
           "error_by_distance", "error_table", "inside_outside", "column", "annual"]

#: Days per year of the mean annual GPP (a mean daily rate times this).
DAYS_PER_YEAR = 365.25


def column(method: str, quantity: str) -> str:
    """The cells table's column of ``quantity`` (a parameter or ``gpp_mean``) for ``method``
    (or the truth)."""
    return f"{quantity}__{method}"


def annual(mean_daily: np.ndarray | pd.Series) -> np.ndarray | pd.Series:
    """Mean annual GPP [gC m-2 yr-1] from GPP averaged over the record [gC m-2 d-1]."""
    return mean_daily * DAYS_PER_YEAR


class Applicability:
    """The towers in feature space, and each cell's dissimilarity to them (see the module
    docstring).

    Args:
        towers: The towers' sites table (``site``, ``PFT``, ``koeppen`` and the features).
        folds: Site -> fold of the cross-validation (None: each tower against all others).

    Attributes:
        stats: The towers' mean and std of every continuous feature.
        mean_distance: The mean distance between two towers.
        training: Each tower's dissimilarity (against the towers outside its fold).
        threshold: The largest dissimilarity inside the area of applicability.
    """

    def __init__(self, towers: pd.DataFrame, folds: Mapping[str, int] | None = None) -> None:
        X, self.stats = feature_matrix(towers.reset_index(drop=True))
        self.sites = [str(s) for s in X.index]
        self._X = X[list(CONTINUOUS_FEATURES)].to_numpy(np.float64)
        n = len(self._X)
        if n < 2:
            raise ValueError("maps: the area of applicability needs at least two towers")
        diff = self._X[:, None, :] - self._X[None, :, :]
        dist = np.sqrt((diff ** 2).sum(axis=-1))
        self.mean_distance = float(dist[np.triu_indices(n, 1)].mean())
        fold = np.array([folds.get(s, i) if folds is not None else i
                         for i, s in enumerate(self.sites)])
        other = fold[:, None] != fold[None, :]
        nearest = np.where(other, dist, np.inf).min(axis=1)
        self.training = nearest / self.mean_distance
        q1, q3 = np.quantile(self.training, [0.25, 0.75])
        self.threshold = float(min(q3 + 1.5 * (q3 - q1), self.training.max()))
        self._tree = cKDTree(self._X)

    def dissimilarity(self, cells: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(index, nearest tower)`` of each cell (a sites table with the features)."""
        X, _ = feature_matrix(cells.reset_index(drop=True), continuous_stats=self.stats)
        d, i = self._tree.query(X[list(CONTINUOUS_FEATURES)].to_numpy(np.float64))
        return d / self.mean_distance, np.asarray(self.sites, dtype=object)[i]

    def table(self) -> pd.DataFrame:
        """The towers' own dissimilarity (``site``, ``dissimilarity``, ``inside``)."""
        return pd.DataFrame({"site": self.sites, "dissimilarity": self.training,
                             "inside": self.training <= self.threshold})


def identifiable(truth: pd.DataFrame, calibration: pd.DataFrame, koeppen: pd.Series,
                 min_r2: float) -> pd.DataFrame:
    """Per parameter: how well the site calibration recovers the truth at the towers
    (:func:`lue_spie.parameter_skill.recovery_scores`) and whether that makes it identifiable
    (``R2 >= min_r2``; a parameter free at fewer than three towers is not)."""
    scores = recovery_scores(truth, calibration, koeppen=koeppen)
    out = scores[["sites", "R2", "NSE"]].copy()
    out["identifiable"] = (out["sites"] >= 3) & (out["R2"].fillna(0.0) >= min_r2)
    return out.reset_index()


def _weighted(err: np.ndarray, ref: np.ndarray, est: np.ndarray,
              w: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(err) & np.isfinite(w)
    err, ref, est, w = err[ok], ref[ok], est[ok], w[ok]
    if not len(err) or w.sum() <= 0:
        return {"rmse": np.nan, "bias": np.nan, "r2": np.nan, "n_cells": 0}
    w = w / w.sum()
    mr, me = (w * ref).sum(), (w * est).sum()
    cov = (w * (ref - mr) * (est - me)).sum()
    var = (w * (ref - mr) ** 2).sum() * (w * (est - me) ** 2).sum()
    return {"rmse": float(np.sqrt((w * err ** 2).sum())), "bias": float((w * err).sum()),
            "r2": float(cov * cov / var) if var > 0 else np.nan, "n_cells": int(len(err))}


def gpp_skill(cells: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Each method's mean annual GPP against the truth over the land cells, area-weighted.

    Returns:
        One row per method: ``method``, ``rmse``, ``bias`` [gC m-2 yr-1], ``r2``,
        ``relative_rmse`` (RMSE over the truth's area-weighted mean), ``n_cells``.
    """
    truth = annual(cells[column(TRUTH, "gpp_mean")].to_numpy(np.float64))
    w = cells["cell_area"].to_numpy(np.float64)
    mean_truth = float((w * truth).sum() / w.sum())
    rows = []
    for m in methods:
        est = annual(cells[column(m, "gpp_mean")].to_numpy(np.float64))
        s = _weighted(est - truth, truth, est, w)
        rows.append({"method": m, **s, "relative_rmse": s["rmse"] / mean_truth})
    return pd.DataFrame(rows, columns=["method", "rmse", "bias", "r2", "relative_rmse",
                                       "n_cells"])


def parameter_skill(cells: pd.DataFrame, methods: Sequence[str],
                    identifiable_table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each method's parameters against the truth, per parameter, where it is free.

    Returns:
        One row per method and parameter: ``method``, ``parameter``, ``rmse`` (its units),
        ``rmse_per_range``, ``bias``, ``r2``, ``n_cells``, ``identifiable`` (from
        ``identifiable_table``; NaN without it).
    """
    free = lag_mask(list(cells["koeppen"]))
    w = cells["cell_area"].to_numpy(np.float64)
    ident = (identifiable_table.set_index("parameter")["identifiable"]
             if identifiable_table is not None else None)
    rows = []
    for m in methods:
        for j, p in enumerate(PARAMETERS):
            ref = cells[column(TRUTH, p)].to_numpy(np.float64)
            est = cells[column(m, p)].to_numpy(np.float64)
            err = np.where(free[:, j], est - ref, np.nan)
            s = _weighted(err, ref, est, w)
            rows.append({"method": m, "parameter": p, **s,
                         "rmse_per_range": s["rmse"] / (BOUNDS[j, 1] - BOUNDS[j, 0]),
                         "identifiable": bool(ident[p]) if ident is not None else np.nan})
    return pd.DataFrame(rows, columns=["method", "parameter", "rmse", "rmse_per_range", "bias",
                                       "r2", "n_cells", "identifiable"])


def error_by_distance(cells: pd.DataFrame, methods: Sequence[str], bins: int,
                      threshold: float) -> pd.DataFrame:
    """Each method's error of mean annual GPP in bins of the dissimilarity to the towers.

    The bins hold equal numbers of cells (quantiles of the index).

    Returns:
        One row per bin and method: ``bin``, ``method``, ``n_cells``, ``di_low``,
        ``di_high``, ``di_median``, ``inside_share`` (share of the bin's cells inside the
        area of applicability), ``rmse`` (area-weighted), ``median_abs_error``,
        ``q25_abs_error``, ``q75_abs_error`` [gC m-2 yr-1].
    """
    di = cells["dissimilarity"].to_numpy(np.float64)
    edges = np.unique(np.quantile(di, np.linspace(0.0, 1.0, bins + 1)))
    which = np.clip(np.searchsorted(edges, di, side="right") - 1, 0, len(edges) - 2)
    truth = annual(cells[column(TRUTH, "gpp_mean")].to_numpy(np.float64))
    w = cells["cell_area"].to_numpy(np.float64)
    rows = []
    for b in range(len(edges) - 1):
        sel = which == b
        for m in methods:
            err = annual(cells[column(m, "gpp_mean")].to_numpy(np.float64))[sel] - truth[sel]
            a = np.abs(err)
            rows.append({"bin": b, "method": m, "n_cells": int(sel.sum()),
                         "di_low": float(edges[b]), "di_high": float(edges[b + 1]),
                         "di_median": float(np.median(di[sel])),
                         "inside_share": float((di[sel] <= threshold).mean()),
                         "rmse": _weighted(err, truth[sel], truth[sel] + err, w[sel])["rmse"],
                         "median_abs_error": float(np.median(a)),
                         "q25_abs_error": float(np.quantile(a, 0.25)),
                         "q75_abs_error": float(np.quantile(a, 0.75))})
    return pd.DataFrame(rows)


def error_table(gpp: pd.DataFrame, parameters: pd.DataFrame, *,
                only_identifiable: bool = True) -> pd.DataFrame:
    """The map-wide errors side by side: one row per method, the RMSE of mean annual GPP
    [gC m-2 yr-1] and of each (identifiable) parameter in its units.

    Args:
        gpp: :func:`gpp_skill`.
        parameters: :func:`parameter_skill`.
        only_identifiable: Keep only the parameters marked identifiable (all when none is
            marked, or the mark is missing).
    """
    p = parameters
    if only_identifiable and p["identifiable"].notna().any() \
            and p["identifiable"].astype(bool).any():
        p = p[p["identifiable"].astype(bool)]
    wide = p.pivot(index="method", columns="parameter", values="rmse")
    wide = wide[[c for c in PARAMETERS if c in wide.columns]]
    wide.columns = [f"RMSE {c}" for c in wide.columns]
    out = gpp.set_index("method")[["rmse"]].rename(
        columns={"rmse": "RMSE GPP [gC m-2 yr-1]"}).join(wide)
    return out.reindex(list(gpp["method"]))


def inside_outside(cells: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Each method's area-weighted RMSE of mean annual GPP inside and outside the area of
    applicability [gC m-2 yr-1], with the numbers of cells (NaN where a side is empty)."""
    truth = annual(cells[column(TRUTH, "gpp_mean")].to_numpy(np.float64))
    w = cells["cell_area"].to_numpy(np.float64)
    inside = cells["inside"].to_numpy(bool)
    rows = []
    for m in methods:
        err = annual(cells[column(m, "gpp_mean")].to_numpy(np.float64)) - truth
        row = {"method": m}
        for label, sel in (("inside", inside), ("outside", ~inside)):
            s = _weighted(err[sel], truth[sel], truth[sel] + err[sel], w[sel])
            row[f"rmse_{label}"] = s["rmse"]
            row[f"n_{label}"] = s["n_cells"]
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", "rmse_inside", "n_inside", "rmse_outside",
                                       "n_outside"])

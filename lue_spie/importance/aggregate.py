"""Normalising and aggregating the importances of the three methods.

:func:`normalise` scales one fold's importances per method and parameter; the overall
importance of a feature (:func:`overall_importance`) is its mean over the parameters;
:func:`fold_means` averages the folds into the ``importance`` table, :func:`class_importance`
aggregates it by feature class (Figure 8) and :func:`method_agreement` says how far the three
methods agree.

Decisions (the paper leaves them open; the book's methods-decisions page repeats them):

* **Normalisation and averaging.** Per fold, method and parameter the importances are divided
  by their maximum over the features (so each lies in [0, 1] and 0 stays 0); the three
  methods' normalised values are averaged (``combined``); then folds are averaged. The
  overall row (``parameter == "all"``) of a method is the mean of its normalised
  per-parameter values (every parameter counts equally; not renormalised, so the overall
  values sit on the scale of the per-parameter ones and a feature important for every
  parameter comes near 1).
* **Feature classes.** The classes differ in size (11 PFT, 14 Clim, 21 BioClim, 11 VIF,
  3 NPdep, 17 Soil columns). The class importance of Figure 8 is the **mean** over the
  class's features: a sum grows with the number of columns, so 21 BioClim columns of modest
  importance would outrank three strong NPdep ones merely by count; the mean says how much a
  feature of the class matters. The table also gives the sum and the maximum (does the class
  hold one strong feature?).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from lue_spie.importance.settings import ALL, COMBINED, METHODS
from lue_spie.params import PARAMETERS

__all__ = ["normalise", "overall_importance", "fold_means", "class_importance",
           "method_agreement"]


def normalise(raw: np.ndarray) -> np.ndarray:
    """Divide by the maximum over the last axis (features): values in [0, 1], 0 stays 0.

    A row whose maximum is 0 stays 0; a NaN row (no free site) stays NaN.
    """
    raw = np.asarray(raw, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row: stays NaN
        top = np.nanmax(raw, axis=-1, keepdims=True) if raw.size else raw
        out = np.where(top > 0, raw / np.where(top > 0, top, 1.0), 0.0)
    return np.where(np.isnan(raw), np.nan, out)


def overall_importance(norm: np.ndarray) -> np.ndarray:
    """``(..., outputs, features)`` normalised -> ``(..., features)``: the mean over the
    outputs with a value (every parameter counts equally)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN output column
        mean = np.nanmean(norm, axis=-2)
    return np.nan_to_num(mean, nan=0.0)


def fold_means(folds_table: pd.DataFrame) -> pd.DataFrame:
    """Fold means of the normalised importances: one row per parameter and feature."""
    g = folds_table.groupby(["parameter", "feature", "method"], sort=False)["normalised"]
    wide = g.mean().unstack("method")
    sd = folds_table[folds_table["method"] == COMBINED].groupby(
        ["parameter", "feature"], sort=False)["normalised"].std(ddof=1)
    n = folds_table[folds_table["method"] == COMBINED].groupby(
        ["parameter", "feature"], sort=False)["normalised"].count()
    out = wide[[*METHODS, COMBINED]].copy()
    out["combined_sd"] = sd
    out["n_folds"] = n
    out = out.reset_index()
    classes = folds_table.drop_duplicates("feature").set_index("feature")["feature_class"]
    out.insert(2, "feature_class", out["feature"].map(classes))
    order = {p: i for i, p in enumerate((*PARAMETERS, ALL))}
    feat_order = {f: i for i, f in enumerate(classes.index)}
    out = out.sort_values(["parameter", "feature"], key=lambda c: c.map(
        order if c.name == "parameter" else feat_order)).reset_index(drop=True)
    out["rank"] = out.groupby("parameter")[COMBINED].rank(ascending=False, method="min")
    out["rank"] = out["rank"].astype("Int64")
    return out


def class_importance(importance: pd.DataFrame) -> pd.DataFrame:
    """Importance by feature class: per parameter and class, the mean, sum and maximum of the
    combined importance over the class's features, and the mean per method.

    Returns:
        ``parameter, feature_class, n_features, mean, sum, max, SHAP, LRP, PD, rank``
        (rank 1 = the class with the largest mean within the parameter).
    """
    g = importance.groupby(["parameter", "feature_class"], sort=False)
    out = g[COMBINED].agg(["count", "mean", "sum", "max"]).rename(
        columns={"count": "n_features"})
    for m in METHODS:
        out[m] = g[m].mean()
    out = out.reset_index()
    out["rank"] = out.groupby("parameter")["mean"].rank(ascending=False, method="min")
    out["rank"] = out["rank"].astype("Int64")
    return out


def method_agreement(importance: pd.DataFrame) -> pd.DataFrame:
    """How far the three methods agree: per parameter, Spearman's rank correlation of the
    features' importances between each pair of methods, and the overlap of their top-10
    features.

    Returns:
        ``parameter, pair, spearman, top10_overlap`` (overlap: shared features among the two
        methods' ten most important, 0-10).
    """
    rows = []
    for p, sub in importance.groupby("parameter", sort=False):
        for i, a in enumerate(METHODS):
            for b in METHODS[i + 1:]:
                x, y = sub[a].astype(float), sub[b].astype(float)
                ok = x.notna() & y.notna()
                rho = float(x[ok].corr(y[ok], method="spearman")) if ok.sum() > 2 else np.nan
                top_a = set(sub.loc[ok].nlargest(10, a)["feature"])
                top_b = set(sub.loc[ok].nlargest(10, b)["feature"])
                rows.append({"parameter": p, "pair": f"{a}-{b}", "spearman": rho,
                             "top10_overlap": len(top_a & top_b)})
    return pd.DataFrame(rows)

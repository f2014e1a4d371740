"""How close parameter vectors are to a reference: bound hits, recovery, per-parameter skill.

Paper section 2.3.4 compares predicted with calibrated parameters one parameter at a time;
on the virtual FLUXNET the true parameters are known as well. This module holds those
comparisons (GPP skill lives in :mod:`lue_spie.assess.gpp`):

- :data:`EDGE_TOLERANCE`, :func:`edge_flags_scaled`, :func:`edge_flags`: a value within 1 %
  of the parameter's range from a bound is "edge-hitting" (the calibration table's
  ``edge_*`` flags, the assessment's bound shares and Figure 6 use the same rule);
- :func:`free_mask`: where each parameter is free (the lag mask of each site's climate);
- :func:`edge_share`: share of sites whose calibrated value of each parameter lies on a
  bound; :func:`edge_shares`: the same for every method of a long table;
- :func:`recovery_scores`: per parameter, NSE, R2 and NRMSE of estimated against reference
  values across sites, and the median absolute error as a share of the range, over the sites
  where the parameter is free (the lag mask fixes ``alpha_T``/``alpha_W`` elsewhere).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lue_spie.metrics import nse, r2
from lue_spie.params import BOUNDS, LOWER, PARAMETERS, lag_mask

__all__ = ["EDGE_TOLERANCE", "edge_flags_scaled", "edge_flags", "free_mask", "edge_share",
           "edge_shares", "check_params", "recovery_scores"]

#: A value within this fraction of the range from a bound is "edge-hitting".
EDGE_TOLERANCE = 0.01

_WIDTH = BOUNDS[:, 1] - BOUNDS[:, 0]


def check_params(table: pd.DataFrame, what: str, *, long: bool = False) -> None:
    """Raise a one-line error when ``table`` lacks ``site`` (``method`` when ``long``) or a
    parameter column."""
    need = (["method"] if long else []) + ["site", *PARAMETERS]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; expected {need}")


def edge_flags_scaled(scaled: np.ndarray, free: np.ndarray,
                      tolerance: float = EDGE_TOLERANCE) -> np.ndarray:
    """True where a free parameter lies within ``tolerance`` of a bound, in the ``[0, 1]``
    scaled space of the search."""
    near = (scaled <= tolerance) | (scaled >= 1.0 - tolerance)
    return near & free


def edge_flags(values: np.ndarray, free: np.ndarray,
               tolerance: float = EDGE_TOLERANCE) -> np.ndarray:
    """``(sites, 13)`` True where a free parameter lies within ``tolerance`` x range of a bound."""
    v = np.asarray(values, dtype=np.float64)
    return edge_flags_scaled((v - LOWER) / _WIDTH, free, tolerance)


def free_mask(sites: Sequence[str], koeppen: pd.Series) -> np.ndarray:
    """``(sites, 13)`` True where the parameter is free at the site (the lag mask).

    Raises:
        ValueError: naming sites without a Koeppen type.
    """
    codes = pd.Series(koeppen).reindex([str(s) for s in sites])
    if codes.isna().any():
        raise ValueError(f"no Koeppen type for site(s) {list(codes[codes.isna()].index[:10])}")
    if len(codes) == 0:
        return np.zeros((0, len(PARAMETERS)), dtype=bool)
    return lag_mask(list(codes.astype(str)))


def edge_shares(params: pd.DataFrame, koeppen: pd.Series, *,
                tolerance: float = EDGE_TOLERANCE) -> pd.DataFrame:
    """Share of sites at a bound, per method and parameter (free sites only).

    Args:
        params: ``method, site`` + the 13 parameters.
        koeppen: Koeppen type by site.
        tolerance: Fraction of the range counted as "on a bound".

    Returns:
        One row per method and parameter: ``method``, ``parameter``, ``n_free``, ``n_edge``,
        ``n_lower``, ``n_upper``, ``share`` (NaN where the parameter is free nowhere).
    """
    check_params(params, "edge_shares", long=True)
    rows = []
    for method, t in params.groupby("method", sort=False):
        v = t[list(PARAMETERS)].to_numpy(np.float64)
        free = free_mask(t["site"], koeppen)
        scaled = (v - LOWER) / _WIDTH
        lower = (scaled <= tolerance) & free
        upper = (scaled >= 1.0 - tolerance) & free
        n_free = free.sum(axis=0)
        for j, p in enumerate(PARAMETERS):
            n_edge = int(lower[:, j].sum() + upper[:, j].sum())
            rows.append({"method": str(method), "parameter": p, "n_free": int(n_free[j]),
                         "n_edge": n_edge, "n_lower": int(lower[:, j].sum()),
                         "n_upper": int(upper[:, j].sum()),
                         "share": n_edge / n_free[j] if n_free[j] else np.nan})
    return pd.DataFrame(rows, columns=["method", "parameter", "n_free", "n_edge", "n_lower",
                                       "n_upper", "share"])


def edge_share(table: pd.DataFrame) -> pd.Series:
    """Share of sites whose calibrated value of each parameter lies on a bound.

    Only sites where the parameter is free count (the lag mask fixes ``alpha_T`` and
    ``alpha_W`` at 0 elsewhere); a parameter free nowhere gives NaN.

    Args:
        table: A calibration table (``status``, ``koeppen``, ``edge_<param>`` columns).

    Returns:
        A Series indexed by parameter name.
    """
    ok = table[table["status"] == "ok"]
    free = lag_mask(list(ok["koeppen"])) if len(ok) else np.zeros((0, len(PARAMETERS)), bool)
    out = {}
    for j, p in enumerate(PARAMETERS):
        n_free = int(free[:, j].sum())
        out[p] = float(ok[f"edge_{p}"].to_numpy(bool)[free[:, j]].sum() / n_free) \
            if n_free else float("nan")
    return pd.Series(out, name="share at a bound")


def recovery_scores(reference: pd.DataFrame, estimate: pd.DataFrame, *,
                    koeppen: pd.Series | None = None) -> pd.DataFrame:
    """Per parameter: how well ``estimate`` reproduces ``reference`` across sites.

    Args:
        reference: ``site`` + the 13 parameters (e.g. the virtual truth, or site-calibrated
            vectors).
        estimate: ``site`` + the 13 parameters (+ ``status``: only ``"ok"`` rows count, +
            ``koeppen`` unless given).
        koeppen: Koeppen type by site, when ``estimate`` has no ``koeppen`` column.

    Returns:
        A table indexed by parameter with ``sites``, ``NSE``, ``R2`` (of the estimate
        against the reference), ``RMSE / range`` and ``median |error| / range``; only sites
        where the parameter is free count. The paper's NRMSE divides by the mean, which is
        negative for kappa and kW and near 0 for the lags, so the RMSE is divided by the
        parameter's range (its bounds) instead.
    """
    est = estimate[estimate["status"] == "ok"] if "status" in estimate.columns else estimate
    m = reference.merge(est, on="site", suffixes=("_ref", ""))
    codes = m["koeppen"] if "koeppen" in m.columns else m["site"].map(koeppen)
    if codes.isna().any():
        raise ValueError("recovery_scores: no Koeppen type for some sites; pass koeppen=")
    free = lag_mask(list(codes)) if len(m) else np.zeros((0, len(PARAMETERS)), bool)
    rows = []
    for j, p in enumerate(PARAMETERS):
        t = m[f"{p}_ref"].to_numpy(float)[free[:, j]]
        e = m[p].to_numpy(float)[free[:, j]]
        width = BOUNDS[j, 1] - BOUNDS[j, 0]
        rows.append({"parameter": p, "sites": int(len(t)),
                     "NSE": nse(t, e) if len(t) else np.nan,
                     "R2": r2(t, e) if len(t) else np.nan,
                     "RMSE / range": float(np.sqrt(np.mean((e - t) ** 2)) / width)
                     if len(t) else np.nan,
                     "median |error| / range": float(np.median(np.abs(e - t)) / width)
                     if len(t) else np.nan})
    return pd.DataFrame(rows).set_index("parameter")

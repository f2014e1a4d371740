"""How close parameter vectors are to a reference: bound hits, recovery, per-parameter skill.

Paper section 2.3.4 compares predicted with calibrated parameters one parameter at a time;
on the virtual FLUXNET the true parameters are known as well. This module holds those
comparisons (GPP skill lives in :mod:`lue_spie.assess.gpp`):

- :func:`edge_share`: share of sites whose value of each parameter lies on a bound;
- :func:`recovery_scores`: per parameter, NSE, R2 and NRMSE of estimated against reference
  values across sites, and the median absolute error as a share of the range, over the sites
  where the parameter is free (the lag mask fixes ``alpha_T``/``alpha_W`` elsewhere).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lue_spie.metrics import nrmse, nse, r2
from lue_spie.params import BOUNDS, PARAMETERS, lag_mask

__all__ = ["edge_share", "recovery_scores"]


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
        A table indexed by parameter with ``sites``, ``NSE``, ``R2``, ``NRMSE`` (of the
        estimate against the reference) and ``median |error| / range``; only sites where the
        parameter is free count.
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
                     "NRMSE": nrmse(t, e) if len(t) else np.nan,
                     "median |error| / range": float(np.median(np.abs(e - t)) / width)
                     if len(t) else np.nan})
    return pd.DataFrame(rows).set_index("parameter")

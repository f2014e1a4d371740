"""Figures of the calibration chapter (3): convergence, fits, bound hits, recovery."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lue_spie.params import BOUNDS, PARAMETER_TABLE, PARAMETERS, UNITS
from lue_spie.plots._style import _COLORS, _fig, _styled

__all__ = ["convergence", "obs_vs_calib", "nse_distribution", "edge_hitting", "parameter_recovery"]


@_styled
def convergence(history: pd.DataFrame, *, sites: Sequence[str] | None = None,
                x: str = "generation", y: str = "best_cost") -> Figure:
    """CMA-ES convergence: the best cost so far against the generation, one line per site."""
    fig, ax = _fig(size=(6.5, 3.6))
    chosen = list(sites) if sites is not None else list(dict.fromkeys(history["site"]))
    for k, s in enumerate(chosen):
        h = history[history["site"] == s].sort_values(x)
        ax.plot(h[x], h[y], color=_COLORS[k % len(_COLORS)], lw=1.2, label=s)
    ax.set_yscale("log")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(f"{y.replace('_', ' ')} [-] (log)")
    ax.legend(ncols=2)
    return fig


@_styled
def obs_vs_calib(
    dates: pd.DatetimeIndex | np.ndarray,
    GPP_obs: np.ndarray,
    GPP_calib: np.ndarray,
    sites: Sequence[str],
    *,
    good: np.ndarray | None = None,
    nse: Sequence[float] | None = None,
) -> Figure:
    """GPP_obs and GPP_calib over time for a few sites (arrays of shape (sites, days))."""
    n = len(sites)
    fig, axes = _fig(n, 1, size=(10.0, 1.7 * n + 0.5), sharex=True)
    for i, a in enumerate(np.atleast_1d(axes)):
        obs = np.asarray(GPP_obs[i], float)
        m = np.isfinite(obs) if good is None else (np.asarray(good[i], bool) & np.isfinite(obs))
        a.plot(np.asarray(dates)[m], obs[m], ".", ms=2.0, color="0.3", label="GPP_obs")
        a.plot(dates, GPP_calib[i], color=_COLORS[0], lw=0.9, label="GPP_calib")
        title = sites[i] + (f" (NSE {nse[i]:.2f})" if nse is not None else "")
        a.set_title(title, loc="left")
        a.set_ylabel("GPP")
    np.atleast_1d(axes)[0].legend(loc="upper right", ncols=2)
    return fig


@_styled
def nse_distribution(nse: pd.Series | np.ndarray, *, by: pd.Series | None = None) -> Figure:
    """Distribution of the site NSE: a histogram, and a strip per group when ``by`` is given."""
    values = np.asarray(nse, dtype=float)
    ncols = 2 if by is not None else 1
    fig, axes = _fig(1, ncols, size=(4.5 * ncols + 1.0, 3.2))
    axes = np.atleast_1d(axes)
    lo = min(0.0, float(np.nanmin(values)))
    axes[0].hist(values, bins=np.linspace(lo, 1.0, 21), color=_COLORS[0])
    axes[0].axvline(float(np.nanmedian(values)), color="k", ls="--", lw=1,
                    label=f"median {np.nanmedian(values):.2f}")
    axes[0].set_xlabel("site NSE [-]")
    axes[0].set_ylabel("sites")
    axes[0].legend(loc="upper left")
    if by is not None:
        groups = sorted(pd.unique(np.asarray(by)))
        for k, g in enumerate(groups):
            v = values[np.asarray(by) == g]
            axes[1].plot(v, np.full(v.shape, k), "o", ms=4, alpha=0.7,
                         color=_COLORS[k % len(_COLORS)])
        axes[1].set_yticks(range(len(groups)), groups)
        axes[1].set_xlabel("site NSE [-]")
    return fig


@_styled
def edge_hitting(share: pd.Series) -> Figure:
    """Share of sites whose calibrated value of each parameter lies on a bound (bars).

    Args:
        share: Parameter name -> fraction of (free) sites at a bound.
    """
    fig, ax = _fig(size=(7.0, 3.0))
    names = [p for p in PARAMETERS if p in share.index]
    ax.bar(names, [share[p] for p in names], color=_COLORS[3])
    ax.set_ylabel("share of sites at a bound")
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", rotation=45)
    return fig


@_styled
def parameter_recovery(truth: pd.DataFrame, calibrated: pd.DataFrame) -> Figure:
    """Calibrated against true parameter values, one panel per parameter (13 panels).

    Args:
        truth: ``site`` + the 13 parameters (true values).
        calibrated: A calibration table: ``site``, ``koeppen`` and the 13 parameters (rows
            whose ``status`` is not ``"ok"`` are left out). Parameters fixed by the lag mask
            at a site are left out of that site's points.
    """
    from lue_spie.params import lag_mask

    cal = calibrated[calibrated["status"] == "ok"] if "status" in calibrated else calibrated
    m = truth.merge(cal, on="site", suffixes=("_true", ""))
    free = lag_mask(list(m["koeppen"])) if len(m) else np.zeros((0, len(PARAMETERS)), bool)
    fig, axes = _fig(3, 5, size=(12.0, 7.2))
    axes = axes.ravel()
    for i, (p, info) in enumerate(zip(PARAMETERS, PARAMETER_TABLE, strict=True)):
        a = axes[i]
        t = m[f"{p}_true"].to_numpy(float)[free[:, i]]
        e = m[p].to_numpy(float)[free[:, i]]
        lo, hi = BOUNDS[i]
        if len(t):  # zoom on the values (kappa's live in a sliver of its range), within bounds
            pad = 0.05 * (hi - lo)
            lo = max(lo, float(min(t.min(), e.min())) - pad)
            hi = min(hi, float(max(t.max(), e.max())) + pad)
        a.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls="--")
        a.plot(t, e, "o", ms=3.5, alpha=0.75, color=_COLORS[0])
        a.set_xlim(lo, hi)
        a.set_ylim(lo, hi)
        a.locator_params(nbins=4)
        a.ticklabel_format(axis="both", style="sci", scilimits=(-2, 4), useMathText=True)
        unit = UNITS[p]
        a.set_title(f"${info.symbol}$" + (f" [{unit}]" if unit != "-" else ""), fontsize=9)
        if len(t) == 0:
            a.text(0.5, 0.5, "fixed at 0\nat every site", ha="center", va="center",
                   transform=a.transAxes)
    for a in axes[len(PARAMETERS):]:
        a.set_axis_off()
    fig.supxlabel("true value")
    fig.supylabel("calibrated value")
    return fig

"""Figures of the book: every chapter notebook draws through these functions.

Each function takes data (tables, arrays, parameter vectors) and returns a matplotlib
:class:`~matplotlib.figure.Figure`; none reads or writes files, and none fits anything: the
numbers come from the package's computing modules (the model, the data layer, calibration).
Where a figure needs model curves (the sensitivity functions across their drivers) it calls
:mod:`lue_spie.model` for them, so there is one implementation of the equations.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from lue_spie.params import BOUNDS, PARAMETER_TABLE, PARAMETERS, UNITS

__all__ = [
    "STYLE",
    "as_vector",
    "sensitivity_curves",
    "lag_effect",
    "site_gpp",
    "sensitivity_timeseries",
    "site_overview",
    "site_forcing",
    "qc_overview",
    "feature_class_sizes",
    "convergence",
    "obs_vs_calib",
    "nse_distribution",
    "edge_hitting",
    "parameter_recovery",
]

#: Matplotlib settings of every figure (small, legible PNGs for the book).
STYLE: dict[str, Any] = {
    "figure.dpi": 96,
    "savefig.dpi": 96,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
}

_COLORS = matplotlib.colormaps["tab10"].colors


def _styled(func: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw the figure under :data:`STYLE` without changing the caller's matplotlib settings."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with plt.rc_context(STYLE):
            return func(*args, **kwargs)

    return wrapper


def _fig(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float], **kw: Any):
    # A Figure outside pyplot: nothing is left open in pyplot's registry, and a notebook shows
    # exactly the figure it displays (no second copy from the inline backend's auto-show).
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(nrows, ncols, **kw)


def as_vector(params: Mapping[str, float] | Sequence[float] | np.ndarray) -> np.ndarray:
    """A parameter vector (13,) in :data:`~lue_spie.params.PARAMETERS` order.

    Accepts a mapping name -> value (all 13 names), a pandas Series or a sequence of 13.

    Raises:
        KeyError: for a mapping that lacks a parameter.
        ValueError: for a sequence that is not of length 13.
    """
    if isinstance(params, Mapping | pd.Series):
        missing = [p for p in PARAMETERS if p not in params]
        if missing:
            raise KeyError(f"parameter vector lacks {missing}")
        return np.array([float(params[p]) for p in PARAMETERS])
    v = np.asarray(params, dtype=np.float64)
    if v.shape != (len(PARAMETERS),):
        raise ValueError(f"parameter vector: expected {len(PARAMETERS)} values, got {v.shape}")
    return v


def _t(x: np.ndarray | float) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


# ------------------------------------------------------------------------------ chapter 1: model
@_styled
def sensitivity_curves(
    param_sets: Mapping[str, Mapping[str, float] | Sequence[float] | np.ndarray],
    *,
    ca: float = 400.0,
    apar_max: float = 20.0,
) -> Figure:
    """The sensitivity functions across their drivers, one line per parameter vector.

    Six panels: fT against the (lagged) temperature, the VPD factor of fVPD against VPD at
    ``ca``, the CO2 factor of fVPD against ca, fW against the (lagged) relative soil moisture,
    fL against APAR and fCI against the cloudiness index.

    Args:
        param_sets: Label -> parameter vector (mapping or 13 values).
        ca: Atmospheric CO2 [ppm] for the VPD panel.
        apar_max: Upper end of the APAR axis [MJ m-2 d-1].
    """
    from lue_spie import model

    T = np.linspace(-10.0, 40.0, 201)
    VPD = np.linspace(0.0, 4500.0, 201)
    CA = np.linspace(300.0, 800.0, 201)
    W = np.linspace(0.0, 1.0, 201)
    APAR = np.linspace(0.0, apar_max, 201)
    CI = np.linspace(0.0, 1.0, 201)
    fig, axes = _fig(2, 3, size=(10.0, 5.6))
    ax = axes.ravel()
    for k, (label, params) in enumerate(param_sets.items()):
        p = dict(zip(PARAMETERS, as_vector(params), strict=True))
        c = _COLORS[k % len(_COLORS)]
        fT = model.f_T(_t(T), _t(p["Topt"]), _t(p["kT"])).numpy()
        vpd_part, _ = model.f_VPD(_t(VPD), _t(ca), _t(p["kappa"]), _t(p["Ca0"]),
                                  _t(p["Ckappa"]), _t(p["Cm"]))
        _, co2_part = model.f_VPD(_t(np.zeros_like(CA)), _t(CA), _t(p["kappa"]), _t(p["Ca0"]),
                                  _t(p["Ckappa"]), _t(p["Cm"]))
        fW = model.f_W(_t(W), _t(p["kW"]), _t(p["WI"])).numpy()
        fL = model.f_L(_t(APAR), _t(p["gamma"])).numpy()
        fCI = model.f_CI(_t(CI), _t(p["mu"])).numpy()
        ax[0].plot(T, fT, color=c, label=label)
        ax[1].plot(VPD, vpd_part.numpy(), color=c)
        ax[2].plot(CA, co2_part.numpy(), color=c)
        ax[3].plot(W, fW, color=c)
        ax[4].plot(APAR, fL, color=c)
        ax[5].plot(CI, fCI, color=c)
    titles = [
        ("fT", "Tf [degC]"), (f"fVPD, VPD factor (ca = {ca:g} ppm)", "VPD [Pa]"),
        ("fVPD, CO2 factor", "ca [ppm]"), ("fW", "Wf [-]"), ("fL", "APAR [MJ m-2 d-1]"),
        ("fCI", "CI [-]"),
    ]
    for a, (title, xlabel) in zip(ax, titles, strict=True):
        a.set_title(title)
        a.set_xlabel(xlabel)
    for a in ax[[0, 1, 3, 4, 5]]:
        a.set_ylim(-0.02, 1.05)
    ax[2].axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax[0].legend(loc="lower center")
    return fig


@_styled
def lag_effect(
    dates: pd.DatetimeIndex | np.ndarray,
    x: np.ndarray,
    filtered: Mapping[str, np.ndarray],
    *,
    label: str,
) -> Figure:
    """A driver and its lagged versions (one line per lag coefficient)."""
    fig, ax = _fig(size=(10.0, 2.8))
    ax.plot(dates, x, color="0.6", lw=0.7, label=f"{label} (daily)")
    for k, (name, y) in enumerate(filtered.items()):
        ax.plot(dates, y, color=_COLORS[k % len(_COLORS)], lw=1.2, label=name)
    ax.set_ylabel(label)
    ax.legend(ncols=len(filtered) + 1, loc="upper left")
    return fig


@_styled
def site_gpp(
    dates: pd.DatetimeIndex | np.ndarray,
    GPP_obs: np.ndarray,
    simulated: Mapping[str, np.ndarray],
    *,
    good: np.ndarray | None = None,
    title: str = "",
) -> Figure:
    """GPP of one site: observations and simulations over time, and simulated vs observed.

    Args:
        dates: Daily dates.
        GPP_obs: Observed GPP [gC m-2 d-1] (NaN where missing).
        simulated: Label -> simulated GPP on the same days.
        good: Good-quality days (only these are drawn as observations in the scatter).
        title: Figure title.
    """
    fig = Figure(figsize=(10.0, 3.2), layout="constrained")
    gs = fig.add_gridspec(1, 4)
    ax = fig.add_subplot(gs[0, :3])
    sc = fig.add_subplot(gs[0, 3])
    obs = np.asarray(GPP_obs, dtype=float)
    mask = np.isfinite(obs) if good is None else (np.asarray(good, bool) & np.isfinite(obs))
    ax.plot(np.asarray(dates)[mask], obs[mask], ".", ms=2.5, color="0.3", label="GPP_obs")
    top = np.nanmax(obs[mask]) if mask.any() else 1.0
    for k, (label, sim) in enumerate(simulated.items()):
        c = _COLORS[k % len(_COLORS)]
        ax.plot(dates, sim, color=c, lw=1.0, label=label)
        sc.plot(obs[mask], np.asarray(sim)[mask], ".", ms=2.0, alpha=0.5, color=c)
        top = max(top, float(np.nanmax(sim)))
    sc.plot([0, top], [0, top], color="0.4", lw=0.8, ls="--")
    sc.set_xlabel("GPP_obs")
    sc.set_ylabel("simulated")
    ax.set_ylabel("GPP [gC m-2 d-1]")
    ax.legend(loc="upper left", ncols=len(simulated) + 1)
    if title:
        ax.set_title(title)
    return fig


@_styled
def sensitivity_timeseries(
    dates: pd.DatetimeIndex | np.ndarray, outputs: Mapping[str, np.ndarray]
) -> Figure:
    """The five sensitivity functions of one site over time (one panel each)."""
    names = [k for k in ("fT", "fVPD", "fW", "fL", "fCI") if k in outputs]
    fig, axes = _fig(len(names), 1, size=(10.0, 1.3 * len(names) + 0.6), sharex=True)
    for k, (a, name) in enumerate(zip(np.atleast_1d(axes), names, strict=True)):
        a.plot(dates, outputs[name], color=_COLORS[k], lw=0.9)
        a.set_ylabel(name)
        a.set_ylim(0, max(1.05, float(np.nanmax(outputs[name])) * 1.05))
    return fig


# ------------------------------------------------------------------------------- chapter 2: data
@_styled
def site_overview(sites: pd.DataFrame) -> Figure:
    """Where the sites are and what climate they have.

    Left: latitude against longitude, coloured by PFT. Right: mean annual temperature (BIO1)
    against annual precipitation (BIO12), coloured by Koeppen main group.
    """
    fig, (a, b) = _fig(1, 2, size=(10.0, 3.8))
    pft_colors = matplotlib.colormaps["tab20"].colors
    for k, (pft, g) in enumerate(sites.groupby("PFT")):
        a.scatter(g["lon"], g["lat"], s=18, color=pft_colors[k % len(pft_colors)], label=pft)
    a.set_xlim(-180, 180)
    a.set_ylim(-90, 90)
    a.set_xlabel("longitude [deg]")
    a.set_ylabel("latitude [deg]")
    a.set_title("sites by PFT")
    a.legend(ncols=2, fontsize=7, loc="lower left")
    for k, (grp, g) in enumerate(sites.groupby("koeppen_main")):
        b.scatter(g["BIO12"], g["BIO1"], s=18, color=_COLORS[k % len(_COLORS)], label=grp)
    b.set_xlabel("annual precipitation BIO12 [mm]")
    b.set_ylabel("mean annual temperature BIO1 [degC]")
    b.set_title("climate by Koeppen main group")
    b.legend(title="Koeppen", loc="lower right")
    return fig


@_styled
def site_forcing(site_day: pd.DataFrame, site: str) -> Figure:
    """The daily forcing and GPP_obs of one site, one panel per variable."""
    d = site_day[site_day["site"] == site]
    if d.empty:
        raise KeyError(f"site {site!r} is not in the site-day table")
    cols = [("T", "T [degC]"), ("VPD", "VPD [Pa]"), ("PAR", "PAR [MJ m-2 d-1]"),
            ("W", "W [-]"), ("FAPAR", "FAPAR [-]"), ("CI", "CI [-]"), ("CO2", "CO2 [ppm]"),
            ("GPP_obs", "GPP_obs [gC m-2 d-1]")]
    fig, axes = _fig(len(cols), 1, size=(10.0, 1.05 * len(cols) + 0.6), sharex=True)
    for k, (a, (col, label)) in enumerate(zip(axes, cols, strict=True)):
        a.plot(d["date"], d[col], lw=0.7, color=_COLORS[k % len(_COLORS)])
        a.set_ylabel(label, rotation=0, ha="right", va="center")
    axes[0].set_title(f"site {site}")
    return fig


@_styled
def qc_overview(site_day: pd.DataFrame, qc_columns: Sequence[str], *, threshold: float = 0.8,
                max_sites: int = 40) -> Figure:
    """Share of days per site on which each QC fraction exceeds ``threshold`` (a heat map)."""
    sites = list(dict.fromkeys(site_day["site"]))[:max_sites]
    d = site_day[site_day["site"].isin(sites)]
    share = d.groupby("site", sort=False)[list(qc_columns)].agg(
        lambda s: float((s > threshold).mean()))
    share = share.loc[sites]
    fig, ax = _fig(size=(10.0, 0.18 * len(sites) + 1.4))
    im = ax.imshow(share.to_numpy().T, aspect="auto", vmin=0, vmax=1, cmap="viridis")
    ax.set_yticks(range(len(qc_columns)), qc_columns)
    ax.set_xticks(range(len(sites)), sites, rotation=90, fontsize=6)
    ax.grid(False)
    fig.colorbar(im, ax=ax, label=f"share of days with QC > {threshold:g}")
    return fig


@_styled
def feature_class_sizes(feature_classes: Mapping[str, Sequence[str]]) -> Figure:
    """How many features each class holds (horizontal bars)."""
    fig, ax = _fig(size=(6.0, 2.6))
    names = list(feature_classes)
    counts = [len(feature_classes[n]) for n in names]
    ax.barh(names, counts, color=_COLORS[0])
    for y, c in enumerate(counts):
        ax.text(c + 0.3, y, str(c), va="center")
    ax.set_xlabel("number of features")
    ax.invert_yaxis()
    return fig


# ------------------------------------------------------------------------ chapter 3: calibration
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

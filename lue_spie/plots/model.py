"""Figures of the model chapter (1): sensitivity functions, lags, one site's GPP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lue_spie.params import PARAMETERS
from lue_spie.plots._style import _COLORS, _fig, _styled, _t, as_vector

__all__ = ["sensitivity_curves", "lag_effect", "site_gpp", "sensitivity_timeseries"]


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

"""Figures of the maps chapter (12): the continent, parameter, GPP and error maps, and the
error by distance to the towers.

The map functions take the store of :mod:`lue_spie.maps` as an ``xarray.Dataset`` (with its
``source`` coordinate: the truth and the methods; CF flags and units) and draw with
``pcolormesh`` on latitude and longitude; the error-by-distance figure takes its table.
Nothing is computed here beyond selecting and converting mean daily GPP to mean annual GPP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from lue_spie.params import PARAMETERS
from lue_spie.plots._style import _COLORS, _fig, _styled, param_label
from lue_spie.plots.methods import METHOD_COLORS

__all__ = ["continent_map", "parameter_maps", "gpp_maps", "gpp_error_maps",
           "dissimilarity_map", "error_by_distance", "DAYS_PER_YEAR"]

#: Days per year of a mean annual GPP (as :data:`lue_spie.maps.skill.DAYS_PER_YEAR`).
DAYS_PER_YEAR = 365.25
_TRUTH = "truth"


def _methods(ds: Any, methods: Sequence[str] | None, *, truth: bool) -> list[str]:
    have = [str(m) for m in ds["source"].values]
    wanted = [m for m in have if m != _TRUTH] if methods is None else list(methods)
    unknown = [m for m in wanted if m not in have]
    if unknown:
        raise ValueError(f"maps: method(s) {unknown} are not in the store; it holds {have}")
    return ([_TRUTH] if truth and _TRUTH in have else []) + [m for m in wanted if m != _TRUTH]


def _aspect(ax: Any, lat: np.ndarray) -> None:
    ax.set_aspect(1.0 / np.cos(np.radians(float(np.mean(lat)))))
    ax.grid(False)


def _mesh(ax: Any, ds: Any, values: np.ndarray, **kw: Any) -> Any:
    lon, lat = ds["lon"].values, ds["lat"].values
    m = ax.pcolormesh(lon, lat, np.ma.masked_invalid(values), shading="nearest",
                      rasterized=True, **kw)
    _aspect(ax, lat)
    return m


def _categories(ds: Any, name: str) -> tuple[np.ndarray, list[str]]:
    attrs = ds[name].attrs
    labels = str(attrs["flag_meanings"]).split()
    values = ds[name].values.astype(float)
    values[values < 0] = np.nan
    return values, labels


def _categorical(ax: Any, fig: Figure, ds: Any, name: str, title: str) -> None:
    values, labels = _categories(ds, name)
    present = sorted({int(v) for v in values[np.isfinite(values)]})
    cmap = ListedColormap([matplotlib.colormaps["tab20"](i % 20) for i in range(len(labels))])
    norm = BoundaryNorm(np.arange(len(labels) + 1) - 0.5, len(labels))
    m = _mesh(ax, ds, values, cmap=cmap, norm=norm)
    bar = fig.colorbar(m, ax=ax, ticks=present, shrink=0.9)
    bar.ax.set_yticklabels([labels[i] for i in present], fontsize=6.5)
    ax.set_title(title)


@_styled
def continent_map(ds: Any) -> Figure:
    """The continent: elevation, Koeppen-Geiger types and PFTs of the land cells."""
    fig, axes = _fig(1, 3, size=(12.5, 4.6))
    land = ds["land_mask"].values == 1
    elev = np.where(land, ds["elevation"].values, np.nan)
    m = _mesh(axes[0], ds, elev, cmap="terrain", vmin=-300.0)
    fig.colorbar(m, ax=axes[0], shrink=0.9, label="elevation [m]")
    axes[0].set_title("relief")
    _categorical(axes[1], fig, ds, "koeppen", "Koeppen-Geiger type")
    _categorical(axes[2], fig, ds, "pft", "plant functional type")
    for ax in axes:
        ax.set_xlabel("longitude [degrees east]")
    axes[0].set_ylabel("latitude [degrees north]")
    return fig


@_styled
def parameter_maps(ds: Any, parameters: Sequence[str] = ("eps_max", "Topt", "WI"),
                   methods: Sequence[str] | None = None) -> Figure:
    """One row per parameter, one column per source (the truth, then the methods), one
    colour scale per row (the truth's 2nd to 98th percentile)."""
    unknown = [p for p in parameters if p not in PARAMETERS]
    if unknown:
        raise ValueError(f"parameter_maps: unknown parameter(s) {unknown}")
    cols = _methods(ds, methods, truth=True)
    fig, axes = _fig(len(parameters), len(cols), size=(2.6 * len(cols) + 0.8,
                                                       2.4 * len(parameters) + 0.3),
                     squeeze=False)
    for i, p in enumerate(parameters):
        data = ds[p].sel(source=cols).values
        ref = data[0][np.isfinite(data[0])]
        lo, hi = (np.quantile(ref, [0.02, 0.98]) if len(ref) else (0.0, 1.0))
        if hi <= lo:
            lo, hi = lo - 1e-9, hi + 1e-9
        for j, m in enumerate(cols):
            mesh = _mesh(axes[i, j], ds, data[j], cmap="viridis", vmin=lo, vmax=hi)
            axes[i, j].set_title(m if i == 0 else "")
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        fig.colorbar(mesh, ax=axes[i, :].tolist(), shrink=0.85,
                     label=param_label(p, unit=True))
    return fig


def _annual(ds: Any, cols: Sequence[str]) -> np.ndarray:
    return ds["gpp_mean"].sel(source=list(cols)).values * DAYS_PER_YEAR


@_styled
def gpp_maps(ds: Any, methods: Sequence[str] | None = None) -> Figure:
    """Mean annual GPP of the truth and each method (one colour scale)."""
    cols = _methods(ds, methods, truth=True)
    data = _annual(ds, cols)
    hi = float(np.nanquantile(data[0], 0.99))
    fig, axes = _fig(1, len(cols), size=(2.6 * len(cols) + 0.8, 3.0), squeeze=False)
    for j, m in enumerate(cols):
        mesh = _mesh(axes[0, j], ds, data[j], cmap="YlGn", vmin=0.0, vmax=hi)
        axes[0, j].set_title(m)
        axes[0, j].set_xticks([])
        axes[0, j].set_yticks([])
    fig.colorbar(mesh, ax=axes[0, :].tolist(), shrink=0.85,
                 label="mean annual GPP [gC m$^{-2}$ yr$^{-1}$]")
    return fig


@_styled
def gpp_error_maps(ds: Any, methods: Sequence[str] | None = None) -> Figure:
    """Each method's mean annual GPP minus the truth's (one symmetric colour scale)."""
    cols = _methods(ds, methods, truth=False)
    truth = _annual(ds, [_TRUTH])[0]
    err = _annual(ds, cols) - truth[None]
    lim = float(np.nanquantile(np.abs(err), 0.98)) or 1.0
    fig, axes = _fig(1, len(cols), size=(2.6 * len(cols) + 0.8, 3.0), squeeze=False)
    for j, m in enumerate(cols):
        mesh = _mesh(axes[0, j], ds, err[j], cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[0, j].set_title(f"{m} - truth")
        axes[0, j].set_xticks([])
        axes[0, j].set_yticks([])
    fig.colorbar(mesh, ax=axes[0, :].tolist(), shrink=0.85,
                 label="error of mean annual GPP [gC m$^{-2}$ yr$^{-1}$]")
    return fig


@_styled
def dissimilarity_map(ds: Any) -> Figure:
    """The dissimilarity to the towers, with the edge of the area of applicability."""
    fig, ax = _fig(1, 1, size=(5.6, 4.6))
    di = ds["dissimilarity"].values
    m = _mesh(ax, ds, di, cmap="magma_r", vmin=0.0,
              vmax=float(np.nanquantile(di, 0.98)) if np.isfinite(di).any() else 1.0)
    fig.colorbar(m, ax=ax, shrink=0.9, label="dissimilarity index")
    aoa = ds["area_of_applicability"].values
    if np.isfinite(aoa).any() and np.nanmin(aoa) < 0.5 < np.nanmax(aoa):
        ax.contour(ds["lon"].values, ds["lat"].values, np.nan_to_num(aoa, nan=1.0), [0.5],
                   colors="0.1", linewidths=0.8)
    ax.set_title("distance to the towers in feature space\n(line: edge of the area of "
                 "applicability)")
    ax.set_xlabel("longitude [degrees east]")
    ax.set_ylabel("latitude [degrees north]")
    return fig


@_styled
def error_by_distance(table: pd.DataFrame, threshold: float | None = None) -> Figure:
    """Each method's absolute error of mean annual GPP against the dissimilarity to the
    towers (median and quartiles per bin of equally many cells), with the edge of the area of
    applicability."""
    need = ["method", "bin", "di_median", "median_abs_error", "q25_abs_error",
            "q75_abs_error", "rmse"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"error_by_distance: the table lacks column(s) {missing}; pass the "
                         "table that lue_spie.maps writes (error_by_distance)")
    fig, axes = _fig(1, 2, size=(10.0, 3.8))
    for k, (m, t) in enumerate(table.groupby("method", sort=False)):
        t = t.sort_values("bin")
        color = METHOD_COLORS.get(str(m), _COLORS[k % len(_COLORS)])
        x = t["di_median"].to_numpy()
        axes[0].plot(x, t["median_abs_error"], "o-", color=color, label=str(m), ms=3)
        axes[0].fill_between(x, t["q25_abs_error"], t["q75_abs_error"], color=color,
                             alpha=0.15, lw=0)
        axes[1].plot(x, t["rmse"], "o-", color=color, label=str(m), ms=3)
    for ax in axes:
        if threshold is not None:
            ax.axvline(threshold, color="0.3", ls="--", lw=0.8)
        ax.set_xlabel("dissimilarity to the nearest tower (bin median)")
        ax.set_ylim(bottom=0)
    axes[0].set_ylabel("|error| of mean annual GPP\n[gC m$^{-2}$ yr$^{-1}$] (median, IQR)")
    axes[1].set_ylabel("RMSE of mean annual GPP\n[gC m$^{-2}$ yr$^{-1}$]")
    axes[1].legend(loc="upper left")
    if threshold is not None:
        axes[0].text(threshold, axes[0].get_ylim()[1], " edge of the area\n of applicability",
                     va="top", fontsize=7, color="0.3")
    return fig

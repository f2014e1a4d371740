"""Figures of the data chapter (2): sites, forcing, quality flags, feature classes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from lue_spie.constants import QC_GOOD_DAY
from lue_spie.plots._style import _COLORS, _fig, _styled

__all__ = ["site_overview", "site_forcing", "qc_overview", "feature_class_sizes"]


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
def qc_overview(site_day: pd.DataFrame, qc_columns: Sequence[str], *,
                threshold: float = QC_GOOD_DAY, max_sites: int = 40) -> Figure:
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

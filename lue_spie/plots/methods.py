"""Figures of the method chapters (4-7): the split, predicted parameters, held-out GPP.

Every function takes the tables of :mod:`lue_spie.extrapolate.views` (or arrays) and returns
a Figure; none reads files or computes more than what it draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lue_spie.params import BOUNDS, PARAMETERS, UNITS
from lue_spie.plots._style import _COLORS, _fig, _styled, param_label

__all__ = [
    "fold_composition",
    "seasonal_cycles",
    "predicted_vs_reference",
    "recovery_heatmap",
    "spread_heatmap",
    "heldout_gpp",
    "nse_by_method",
    "pooled_vectors",
    "group_vectors",
    "pmodel_acclimation",
    "gpp_by_temperature",
]

#: Colour of the site-calibrated reference in every figure (grey: the ceiling, not a method).
_REFERENCE_COLOR = "0.45"
_REFERENCE = "site calibration"
#: The true parameters of a virtual FLUXNET as a reference row (the SPIE chapter).
_TRUTH = "true parameters"
_TRUTH_COLOR = "0.1"


def _method_colors() -> dict[str, object]:
    """One colour per method of the paper, the same in every figure and chapter.

    tab10 without its grey (grey is the site-calibrated reference), then three dark shades of
    tab20b for the last three methods.
    """
    from lue_spie.methods.base import paper_order

    tab20b = matplotlib.colormaps["tab20b"].colors
    palette = [c for i, c in enumerate(_COLORS) if i != 7] + [tab20b[0], tab20b[8], tab20b[12]]
    return dict(zip(paper_order(), palette, strict=False))


#: Method name -> colour (:func:`_method_colors`).
METHOD_COLORS: dict[str, object] = _method_colors()


def _color(label: str, k: int) -> object:
    """The references in grey (site calibration) and black (the virtual FLUXNET's true
    parameters), a known method in its own colour, anything else by position."""
    if label == _REFERENCE:
        return _REFERENCE_COLOR
    if label == _TRUTH:
        return _TRUTH_COLOR
    return METHOD_COLORS.get(label, _COLORS[k % len(_COLORS)])


@_styled
def fold_composition(by_pft: pd.DataFrame, by_climate: pd.DataFrame) -> Figure:
    """Held-out sites per fold, stacked by PFT (left) and by Koeppen main group (right).

    Args:
        by_pft, by_climate: Fold x type count tables
            (:func:`lue_spie.extrapolate.views.fold_composition`).
    """
    fig, axes = _fig(1, 2, size=(10.0, 3.4), sharey=True)
    for ax, table, title in ((axes[0], by_pft, "PFT"), (axes[1], by_climate,
                                                         "Koeppen main group")):
        bottom = np.zeros(len(table))
        colors = _COLORS if table.shape[1] <= len(_COLORS) else \
            matplotlib.colormaps["tab20"].colors
        for k, col in enumerate(table.columns):
            ax.bar(table.index, table[col], bottom=bottom, color=colors[k % len(colors)],
                   label=str(col), edgecolor="white", linewidth=0.5)
            bottom += table[col].to_numpy()
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("fold")
        ax.set_xticks(list(table.index))
        ax.set_title(title, loc="left")
        ax.legend(ncols=2 if table.shape[1] > 6 else 1, fontsize=7, loc="upper left",
                  bbox_to_anchor=(1.0, 1.0))
    axes[0].set_ylabel("held-out sites")
    return fig


_CYCLE_LABELS = {"T": "T [degC]", "P": "log(1 + P) [log mm d-1]", "SW_IN": "SW_IN [W m-2]",
                 "NDVI": "NDVI [-]"}


@_styled
def seasonal_cycles(cycles: Mapping[str, pd.DataFrame],
                    pairs: Sequence[tuple[str, str, float]]) -> Figure:
    """The seasonal cycles Sitesim compares, for target sites and their donors.

    Args:
        cycles: Variable -> table indexed by site with 365 columns
            (:func:`lue_spie.extrapolate.views.seasonal_cycles`).
        pairs: ``(target, donor, D)`` per row of panels.
    """
    variables = list(cycles)
    n = len(pairs)
    fig, axes = _fig(n, len(variables), size=(11.0, 2.3 * n + 0.4), squeeze=False)
    doy = np.arange(1, 366)
    for i, (target, donor, d) in enumerate(pairs):
        for j, v in enumerate(variables):
            a = axes[i, j]
            a.plot(doy, cycles[v].loc[target].to_numpy(), color=_COLORS[0], lw=1.4,
                   label=f"target {target}")
            a.plot(doy, cycles[v].loc[donor].to_numpy(), color=_COLORS[1], lw=1.4, ls="--",
                   label=f"donor {donor}")
            if i == 0:
                a.set_title(_CYCLE_LABELS.get(v, v), fontsize=9)
        axes[i, 0].legend(loc="best", fontsize=7, title=f"D = {d:.2f}", title_fontsize=7)
    fig.supxlabel("day of year (cycles of southern-hemisphere sites shifted by 182 days)",
                  fontsize=9)
    return fig


@_styled
def predicted_vs_reference(comparison: pd.DataFrame, *, reference: str = "calibrated",
                           methods: Sequence[str] | None = None) -> Figure:
    """Predicted against reference value of each parameter (13 panels, one colour per method).

    Args:
        comparison: :func:`lue_spie.extrapolate.views.parameter_comparison`.
        reference: ``"calibrated"`` (site-calibrated value) or ``"true"`` (virtual truth).
        methods: Methods to draw (default: all in the table).
    """
    if reference not in ("calibrated", "true"):
        raise ValueError(f"predicted_vs_reference: reference must be 'calibrated' or 'true', "
                         f"got {reference!r}")
    methods = list(methods) if methods is not None else list(
        dict.fromkeys(comparison["method"]))
    fig, axes = _fig(3, 5, size=(12.0, 7.4))
    axes = axes.ravel()
    for i, p in enumerate(PARAMETERS):
        a = axes[i]
        sub = comparison[(comparison["parameter"] == p)
                         & comparison["method"].isin(methods)].dropna(subset=[reference])
        lo, hi = BOUNDS[i]
        if len(sub):  # zoom on the values, within the bounds
            vals = np.concatenate([sub[reference].to_numpy(float),
                                   sub["predicted"].to_numpy(float)])
            pad = 0.05 * (hi - lo)
            lo, hi = max(lo, float(vals.min()) - pad), min(hi, float(vals.max()) + pad)
        a.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls="--")
        for k, m in enumerate(methods):
            s = sub[sub["method"] == m]
            a.plot(s[reference], s["predicted"], "o", ms=3.0, alpha=0.6, color=_color(m, k),
                   label=m if i == 0 else None)
        a.set_xlim(lo, hi)
        a.set_ylim(lo, hi)
        a.locator_params(nbins=4)
        a.ticklabel_format(axis="both", style="sci", scilimits=(-2, 4), useMathText=True)
        unit = UNITS[p]
        a.set_title(param_label(p) + (f" [{unit}]" if unit != "-" else ""), fontsize=9)
        if len(sub) == 0:
            a.text(0.5, 0.5, "fixed at 0\nat every site", ha="center", va="center",
                   transform=a.transAxes)
    for a in axes[len(PARAMETERS):]:
        a.set_axis_off()
    handles, labels = axes[0].get_legend_handles_labels()
    axes[-1].legend(handles, labels, loc="center", markerscale=2)
    fig.supxlabel("site-calibrated value" if reference == "calibrated" else "true value")
    fig.supylabel("predicted value (held out)")
    return fig


def _short(v: float) -> str:
    """A number that fits a heat-map cell: 0.12, -4.7, -63, -6e+03."""
    a = abs(v)
    return f"{v:.2f}" if a < 10 else f"{v:.1f}" if a < 100 else f"{v:.0f}" if a < 1000 \
        else f"{v:.0e}"


def _heatmap(ax, table: pd.DataFrame, *, vmin: float, vmax: float, cmap: str) -> object:
    values = table.to_numpy(float)
    im = ax.imshow(np.clip(values, vmin, vmax), cmap=cmap, vmin=vmin, vmax=vmax,
                   aspect="auto")
    ax.set_xticks(range(table.shape[1]), [param_label(c) if c in PARAMETERS else str(c)
                                          for c in table.columns])
    ax.set_yticks(range(table.shape[0]), [str(i) for i in table.index])
    ax.grid(False)
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            red, green, blue, _ = im.cmap(im.norm(np.clip(v, vmin, vmax)))
            light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5  # perceived luminance
            ax.text(c, r, _short(v), ha="center", va="center", fontsize=7,
                    color="black" if light else "white")
        else:
            ax.text(c, r, "-", ha="center", va="center", fontsize=7, color="0.5")
    return im


#: Colour scale of each recovery score: (low, high, colour map); the error share is reversed
#: so that, as for the others, blue is good.
_SCORE_SCALES: dict[str, tuple[float, float, str]] = {
    "NSE": (-1.0, 1.0, "RdBu"), "R2": (0.0, 1.0, "Blues"),
    "NRMSE": (0.0, 1.0, "RdBu_r"), "median |error| / range": (0.0, 0.5, "RdBu_r"),
}


@_styled
def recovery_heatmap(overview: pd.DataFrame, *, metric: str = "median |error| / range",
                     references: Sequence[str] | None = None) -> Figure:
    """Per method and parameter, a recovery score as a colour (clipped to the scale).

    One row per method and reference (``"sRF vs truth"``), one column per parameter.

    Args:
        overview: :func:`lue_spie.extrapolate.views.recovery_overview`.
        metric: A score column: ``"median |error| / range"`` (default; 0 is perfect, 0.5
            means half the parameter's range off), ``"NSE"``, ``"R2"`` or ``"NRMSE"``.
        references: Which references to show (default: those in the table).
    """
    if metric not in _SCORE_SCALES:
        raise ValueError(f"recovery_heatmap: metric must be one of {list(_SCORE_SCALES)}, "
                         f"got {metric!r}")
    refs = list(references) if references is not None else list(
        dict.fromkeys(overview["reference"]))
    rows = []
    for ref in refs:
        sub = overview[overview["reference"] == ref]
        for m in dict.fromkeys(sub["method"]):
            s = sub[sub["method"] == m].set_index("parameter")[metric]
            rows.append(s.rename(f"{m} vs {ref}"))
    table = pd.DataFrame(rows).reindex(columns=list(PARAMETERS))
    lo, hi, cmap = _SCORE_SCALES[metric]
    fig, ax = _fig(size=(10.5, 0.38 * len(table) + 1.4))
    im = _heatmap(ax, table, vmin=lo, vmax=hi, cmap=cmap)
    fig.colorbar(im, ax=ax, label=f"{metric}\n(held-out sites; colour clipped)", shrink=0.9)
    return fig


@_styled
def spread_heatmap(ratio: pd.DataFrame) -> Figure:
    """Spread of predicted over spread of calibrated values, per method and parameter.

    Args:
        ratio: :func:`lue_spie.extrapolate.views.spread_ratio`.
    """
    fig, ax = _fig(size=(10.5, 0.38 * len(ratio) + 1.4))
    im = _heatmap(ax, ratio, vmin=0.0, vmax=1.5, cmap="PuOr")
    fig.colorbar(im, ax=ax, label="std predicted / std calibrated", shrink=0.9)
    return fig


@_styled
def heldout_gpp(
    dates: pd.DatetimeIndex | np.ndarray,
    GPP_obs: np.ndarray,
    sims: Mapping[str, np.ndarray],
    sites: Sequence[str],
    *,
    good: np.ndarray | None = None,
    nse: Mapping[str, Sequence[float]] | None = None,
) -> Figure:
    """GPP_obs and held-out GPP of several methods over time, one panel per site.

    Args:
        dates: The days.
        GPP_obs: ``(sites, days)``.
        sims: Label -> ``(sites, days)`` simulated GPP (``"site calibration"`` drawn in grey).
        sites: Site ids (panel titles).
        good: Good-day mask ``(sites, days)``: only good observations are drawn.
        nse: Label -> NSE per site, written in the panel titles.
    """
    n = len(sites)
    fig, axes = _fig(n, 1, size=(10.0, 1.8 * n + 0.6), sharex=True, squeeze=False)
    axes = axes[:, 0]
    for i, a in enumerate(axes):
        obs = np.asarray(GPP_obs[i], float)
        m = np.isfinite(obs) if good is None else (np.asarray(good[i], bool) & np.isfinite(obs))
        a.plot(np.asarray(dates)[m], obs[m], ".", ms=2.0, color="0.2", label="GPP_obs")
        for k, (label, sim) in enumerate(sims.items()):
            a.plot(dates, sim[i], color=_color(label, k), lw=0.9,
                   ls="--" if label == _REFERENCE else "-", label=label)
        title = sites[i]
        if nse:
            title += ": NSE " + ", ".join(f"{lab} {v[i]:.2f}" for lab, v in nse.items())
        a.set_title(title, loc="left", fontsize=8)
        a.set_ylabel("GPP")
    axes[0].legend(loc="upper right", ncols=len(sims) + 1, fontsize=7)
    fig.supylabel("gC m-2 d-1", fontsize=8)
    return fig


@_styled
def nse_by_method(nse_table: pd.DataFrame, *, lower: float = -1.0) -> Figure:
    """Held-out daily NSE per method: a box per method and the sites as dots.

    NSE values below ``lower`` are drawn at ``lower`` (marked with a triangle), so that a few
    very poor sites do not squeeze the scale.

    Args:
        nse_table: :func:`lue_spie.extrapolate.views.heldout_nse` (``method, site, nse``).
        lower: Where the axis is cut.
    """
    methods = list(dict.fromkeys(nse_table["method"]))
    fig, ax = _fig(size=(7.5, 0.45 * len(methods) + 1.4))
    rng = np.random.default_rng(0)  # jitter only
    for k, m in enumerate(methods):
        v = nse_table.loc[nse_table["method"] == m, "nse"].dropna().to_numpy(float)
        y = len(methods) - 1 - k
        if len(v) == 0:
            continue
        c = _color(m, k)
        ax.boxplot(np.maximum(v, lower), positions=[y], orientation="horizontal",
                   widths=0.6, showfliers=False, medianprops={"color": "k"},
                   boxprops={"color": c}, whiskerprops={"color": c}, capprops={"color": c})
        jitter = rng.uniform(-0.18, 0.18, len(v))
        inside = v >= lower
        ax.plot(v[inside], y + jitter[inside], "o", ms=2.5, alpha=0.5, color=c)
        ax.plot(np.full((~inside).sum(), lower), y + jitter[~inside], "<", ms=4, color=c)
        ax.text(1.02, y, f"{np.median(v):.2f}", va="center", fontsize=7,
                transform=ax.get_yaxis_transform())
    ax.set_yticks(range(len(methods)), methods[::-1])
    ax.set_xlim(lower - 0.05, 1.0)
    ax.set_xlabel("held-out daily NSE [-] (right: median)")
    ax.axvline(0.0, color="0.6", lw=0.8)
    return fig


@_styled
def pooled_vectors(vectors: pd.DataFrame, calibrated: pd.DataFrame, *,
                   label: str = "OPT-All") -> Figure:
    """One pooled vector per fold against the spread of the site-calibrated vectors.

    Parameters in the [0, 1]-scaled space (0 the lower, 1 the upper bound): boxes for the
    calibrated values across sites, dots for the pooled vector of each fold.

    Args:
        vectors: :func:`lue_spie.extrapolate.views.pooled_vectors` (scaled).
        calibrated: Scaled calibrated parameters, one row per site, NaN where not free
            (:func:`lue_spie.extrapolate.views.scaled_parameters`).
        label: Name of the pooled method in the legend.
    """
    fig, ax = _fig(size=(9.0, 3.6))
    x = np.arange(len(PARAMETERS))
    data = [calibrated[p].dropna().to_numpy(float) for p in PARAMETERS]
    ax.boxplot([d if len(d) else [np.nan] for d in data], positions=x, widths=0.6,
               showfliers=True, flierprops={"markersize": 2, "markeredgecolor": "0.6"},
               medianprops={"color": _REFERENCE_COLOR},
               boxprops={"color": _REFERENCE_COLOR}, whiskerprops={"color": _REFERENCE_COLOR},
               capprops={"color": _REFERENCE_COLOR})
    rng = np.random.default_rng(0)
    for j, p in enumerate(PARAMETERS):
        v = vectors[p].dropna().to_numpy(float)
        ax.plot(j + rng.uniform(-0.12, 0.12, len(v)), v, "o", ms=4, color=_color(label, 0),
                alpha=0.8, label=f"{label}, one vector per fold" if j == 0 else None)
    ax.plot([], [], "s", color=_REFERENCE_COLOR, label="site-calibrated vectors (box)")
    ax.set_xticks(x, [param_label(p) for p in PARAMETERS])
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("scaled value (0 lower, 1 upper bound)")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, 1.16), ncols=2)
    return fig


@_styled
def group_vectors(vectors: pd.DataFrame) -> Figure:
    """The mean over folds of each group's pooled vector (scaled), one row per group.

    Args:
        vectors: :func:`lue_spie.extrapolate.views.pooled_vectors` with ``by`` set.
    """
    table = vectors.groupby("group")[list(PARAMETERS)].mean()
    fig, ax = _fig(size=(10.0, 0.36 * len(table) + 1.4))
    im = _heatmap(ax, table, vmin=0.0, vmax=1.0, cmap="viridis")
    fig.colorbar(im, ax=ax, label="scaled value (mean over folds)", shrink=0.9)
    return fig


@_styled
def pmodel_acclimation(table: pd.DataFrame, *, days: int | None = 730) -> Figure:
    """The P-model at one site: acclimated against daily optimal xi, Vcmax25 and GPP.

    Args:
        table: :func:`lue_spie.extrapolate.views.pmodel_acclimation`.
        days: Show the first ``days`` days (None: all), so the lag stays visible.
    """
    table = table.iloc[:days] if days else table
    fig, axes = _fig(4, 1, size=(10.0, 7.6), sharex=True)
    d = table["date"]
    axes[0].plot(d, table["T"], color=_COLORS[3], lw=0.8, label="T [degC]")
    twin = axes[0].twinx()
    twin.plot(d, table["VPD"] / 1000.0, color=_COLORS[0], lw=0.6, alpha=0.7)
    twin.set_ylabel("VPD [kPa]", color=_COLORS[0])
    twin.grid(False)
    axes[0].set_ylabel("T [degC]", color=_COLORS[3])
    for a, var, unit in ((axes[1], "xi", "Pa$^{0.5}$"),
                         (axes[2], "vcmax25", "umol m-2 s-1"),
                         (axes[3], "GPP", "gC m-2 d-1")):
        a.plot(d, table[f"{var}_optimal"], color="0.6", lw=0.7, label="daily optimum")
        a.plot(d, table[f"{var}_acclimated"], color=_COLORS[2], lw=1.3, label="acclimated")
        name = {"xi": r"$\xi$", "vcmax25": r"$V_{cmax25}$", "GPP": "GPP"}[var]
        a.set_ylabel(f"{name} [{unit}]")
    axes[1].legend(loc="upper right", ncols=2)
    return fig


@_styled
def gpp_by_temperature(table: pd.DataFrame) -> Figure:
    """Mean GPP of good days per temperature bin: observed and each model.

    Args:
        table: :func:`lue_spie.extrapolate.views.gpp_by_temperature`.
    """
    fig, (ax, ax_days) = _fig(2, 1, size=(7.0, 4.8), sharex=True,
                              gridspec_kw={"height_ratios": [3, 1]})
    ax.plot(table["T"], table["GPP_obs"], "o-", color="0.2", ms=3, label="GPP_obs")
    labels = [c for c in table.columns if c not in ("T", "days", "GPP_obs")]
    for k, c in enumerate(labels):
        ax.plot(table["T"], table[c], color=_color(c, k), lw=1.4,
                ls="--" if c == _REFERENCE else "-", label=c)
    ax.axvline(0.0, color="0.6", lw=0.8)
    ax.set_ylabel("mean GPP [gC m-2 d-1]")
    ax.legend()
    width = float(np.median(np.diff(table["T"]))) if len(table) > 1 else 1.0
    ax_days.bar(table["T"], table["days"], width=0.9 * width, color="0.7")
    ax_days.set_ylabel("good days")
    ax_days.set_xlabel("air temperature [degC] (bin centre)")
    return fig

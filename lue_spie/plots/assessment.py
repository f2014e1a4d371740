"""Figures of the assessment and parameter chapters (9 and 10): the paper's Figures 2-7.

One function per paper figure, each taking the tables of :mod:`lue_spie.assess.gpp`,
:mod:`lue_spie.assess.likelihood` and :mod:`lue_spie.assess.parameters` and returning a Figure:

- :func:`nse_heatmap` (Figure 2): NSE of every method at every site, four time scales;
- :func:`spatial_skill` (Figure 3): NSE, R2, NRMSE of site-mean GPP across sites;
- :func:`nse_by_type` (Figure 4): site daily NSE per PFT and per climate group;
- :func:`likelihood` (Figure 5): average model likelihood P, and P per metric and scale;
- :func:`parameter_densities` (Figure 6): densities of calibrated and predicted parameters
  with the shares of sites on a bound;
- :func:`nse_vs_param_diff` (Figure 7): NSE loss against the relative parameter difference;

and three more for the book: :func:`spatial_scatter` (site means, the data behind Figure 3),
:func:`parameter_skill_heatmap` (per-parameter skill against calibrated or true values) and
:func:`twin_comparison` (GPP skill against distance to the truth, with and without the
generator's structural error).

Colours are colour-blind safe: methods are coloured by family (seaborn's "colorblind"
palette, :data:`FAMILY_COLORS`), skill maps use viridis/cividis, and a diverging map only
where the sign matters (PuOr, legible for the common colour-vision deficiencies).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy import stats

from lue_spie.metrics import MIN_POINTS
from lue_spie.params import BOUNDS, PARAMETER_TABLE, PARAMETERS
from lue_spie.plots._style import _fig, _styled, param_label
from lue_spie.timescales import SCALES

__all__ = [
    "FAMILY_COLORS",
    "method_colors",
    "nse_heatmap",
    "spatial_skill",
    "spatial_scatter",
    "nse_by_type",
    "likelihood",
    "parameter_densities",
    "nse_vs_param_diff",
    "parameter_skill_heatmap",
    "twin_comparison",
]

_CB = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4",
       "#949494", "#ece133", "#56b4e9")  # seaborn "colorblind"

#: Colour of each method family (and of the site-calibration reference).
FAMILY_COLORS: dict[str, str] = {
    "reference": _CB[7], "grouping": _CB[0], "similarity": _CB[9], "optimisation": _CB[2],
    "regression": _CB[4], "spie": _CB[3], "pmodel": _CB[5], "other": _CB[6],
}
_FAMILY_LABELS = {"reference": "site calibration", "grouping": "clustering",
                  "similarity": "similarity", "optimisation": "optimisation",
                  "regression": "regression", "spie": "SPIE", "pmodel": "P-model",
                  "other": "other"}
_UNIT_GPP = "gC m-2 d-1"
_LABELS = {"NSE": "NSE [-]", "R2": "R$^2$ [-]", "NRMSE": "NRMSE [-]"}


def _family(method: str) -> str:
    if method == "site-calib":
        return "reference"
    from lue_spie.methods.base import method_class

    try:
        return method_class(method).family
    except KeyError:
        return "spie" if method == "SPIE" else "other"


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """Method -> colour of its family (:data:`FAMILY_COLORS`)."""
    return {m: FAMILY_COLORS[_family(m)] for m in methods}


def _family_legend(ax, methods: Sequence[str], **kw) -> None:
    fams = list(dict.fromkeys(_family(m) for m in methods))
    ax.legend(handles=[Patch(color=FAMILY_COLORS[f], label=_FAMILY_LABELS[f]) for f in fams],
              **kw)


# ------------------------------------------------------------------------------- Figure 2
@_styled
def nse_heatmap(site_scores: pd.DataFrame, *, metric: str = "NSE",
                scales: Sequence[str] = SCALES, methods: Sequence[str] | None = None,
                sort_methods: bool = True) -> Figure:
    """Skill of every method at every site, one heat map per time scale (paper Figure 2).

    Methods are rows, sites columns. Within each panel the sites are sorted by the number of
    methods with a positive value (then by their median); sites left out at that scale (fewer
    than 4 good points) sit at the right, behind a dashed line. Negative NSE is white, as in
    the paper; the count of sites with positive NSE of each method is written at the right.

    Args:
        site_scores: The table of :func:`lue_spie.assess.gpp.site_scores`.
        metric: ``NSE`` (paper), or ``R2`` / ``NRMSE`` (then no white cut-off).
        scales: Time scales, one panel each.
        methods: Methods (rows) to show, in this order (default: all, in table order).
        sort_methods: Order the rows by the count of positive daily NSE (the paper sorts the
            methods so); the same order in every panel.
    """
    s = site_scores[site_scores["scale"].isin(scales)]
    names = list(methods) if methods is not None else list(pd.unique(s["method"]))
    if sort_methods and metric == "NSE":
        base = s[s["scale"] == (scales[0] if "daily" not in scales else "daily")]
        count = (base.assign(pos=base["NSE"] > 0).groupby("method")["pos"].sum()
                 .reindex(names).fillna(0))
        names = sorted(names, key=lambda m: -count[m])
    n_m = len(names)
    fig, axes = _fig(len(scales), 1, size=(10.0, len(scales) * (0.15 * n_m + 0.75) + 0.6),
                     squeeze=False)
    cmap = matplotlib.colormaps["viridis" if metric != "NRMSE" else "viridis_r"]
    cmap = cmap.with_extremes(bad="0.82", under="white" if metric == "NSE" else None)
    lo, hi = (0.0, 1.0) if metric in ("NSE", "R2") else (0.0, None)
    image = None
    for ax, scale in zip(axes[:, 0], scales, strict=True):
        t = s[s["scale"] == scale]
        wide = t.pivot(index="method", columns="site", values=metric).reindex(names)
        positive = (wide > 0).sum(axis=0) if metric == "NSE" else wide.notna().sum(axis=0)
        evaluated = wide.notna().any(axis=0)
        order = pd.DataFrame({"pos": positive, "med": wide.median(axis=0),
                              "ev": evaluated}).sort_values(["ev", "pos", "med"],
                                                            ascending=False)
        wide = wide[order.index]
        values = wide.to_numpy(np.float64)
        if metric == "NSE":
            values = np.where(values < 0, -1.0, values)  # below vmin: drawn white
        vmax = hi if hi is not None else float(np.nanquantile(values, 0.95)) \
            if np.isfinite(values).any() else 1.0
        image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap=cmap, vmin=lo,
                          vmax=vmax, interpolation="nearest")
        n_ev = int(evaluated.sum())
        n_out = wide.shape[1] - n_ev
        title = scale
        if n_out:
            ax.axvline(n_ev - 0.5, color="0.3", ls="--", lw=1.0)
            title += (f": {n_out} of {wide.shape[1]} sites left out (right of the dashed line:"
                      f" fewer than {MIN_POINTS} good points or no prediction)")
        ax.set_title(title, loc="left", fontsize=8.5)
        if n_ev == 0:
            ax.text(0.5, 0.5, f"no site has {MIN_POINTS} good {scale} points: nothing to compare "
                    "at this scale", transform=ax.transAxes, ha="center", va="center")
        ax.set_yticks(range(n_m), names)
        ax.set_xticks([])
        ax.grid(False)
        right = ax.secondary_yaxis("right")
        npos = (wide > 0).sum(axis=1) if metric == "NSE" else wide.notna().sum(axis=1)
        nev = wide.notna().sum(axis=1)
        right.set_yticks(range(n_m), [f"{int(a)}/{int(b)}" for a, b in
                                      zip(npos, nev, strict=True)])
        right.tick_params(length=0, labelsize=7)
    axes[-1, 0].set_xlabel("sites, sorted by the number of methods with positive "
                           f"{metric} (right: sites with {metric} > 0 / sites evaluated)"
                           if metric == "NSE" else "sites")
    if image is not None:
        cb = fig.colorbar(image, ax=axes[:, 0].tolist(), shrink=0.6,
                          extend="min" if metric == "NSE" else "neither")
        cb.set_label(_LABELS.get(metric, metric) + (" (white: < 0)" if metric == "NSE"
                                                    else ""))
    return fig


# ------------------------------------------------------------------------------- Figure 3
@_styled
def spatial_skill(metrics: pd.DataFrame) -> Figure:
    """NSE, R2 and NRMSE between site-mean GPP_obs and GPP_sim across sites (Figure 3).

    Args:
        metrics: :attr:`lue_spie.assess.gpp.SpatialScores.metrics` (``method``, ``n_sites``,
            ``NSE``, ``R2``, ``NRMSE``). Bars are sorted by NSE, as in the paper.
    """
    t = metrics.sort_values("NSE", ascending=False, na_position="last").reset_index(drop=True)
    colors = method_colors(t["method"])
    fig, axes = _fig(1, 3, size=(10.0, 0.28 * len(t) + 1.4), sharey=True)
    y = np.arange(len(t))
    nse_lo = -1.5
    for ax, k in zip(axes, ("NSE", "R2", "NRMSE"), strict=True):
        v = t[k].to_numpy(np.float64)
        shown = np.where(np.isfinite(v), v, 0.0)
        if k == "NSE":
            shown = np.maximum(shown, nse_lo)
        ax.barh(y, shown, color=[colors[m] for m in t["method"]])
        for i, (a, b) in enumerate(zip(v, shown, strict=True)):
            label = f"{a:.2f}" if np.isfinite(a) else "n/a"
            if np.isfinite(a) and b != a:  # off scale: the value inside the bar
                ax.text(-0.03, i, f"{label} (off scale)", va="center", ha="right", fontsize=7,
                        color="white")
            else:
                ax.text(b, i, f" {label} ", va="center", ha="left" if b >= 0 else "right",
                        fontsize=7)
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_xlabel(_LABELS[k])
        ax.grid(axis="y", visible=False)
    axes[0].set_yticks(y, t["method"])
    axes[0].invert_yaxis()
    axes[0].set_xlim(nse_lo if np.nanmin(t["NSE"].to_numpy(float), initial=0.0) < 0 else 0,
                     1.15)
    axes[1].set_xlim(0, 1.15)
    axes[2].set_xlim(0, max(0.5, float(np.nanmax(t["NRMSE"].to_numpy(float), initial=0.0))
                            * 1.25))
    fams = list(dict.fromkeys(_family(m) for m in t["method"]))
    fig.legend(handles=[Patch(color=FAMILY_COLORS[f], label=_FAMILY_LABELS[f]) for f in fams],
               loc="outside lower center", ncols=len(fams), fontsize=7)
    fig.suptitle(f"site-mean GPP across {int(t['n_sites'].max())} sites", fontsize=9)
    return fig


@_styled
def spatial_scatter(site_means: pd.DataFrame, methods: Sequence[str], *,
                    ncols: int = 4) -> Figure:
    """Site-mean GPP_sim against GPP_obs, one panel per method (the points of Figure 3).

    Args:
        site_means: :attr:`lue_spie.assess.gpp.SpatialScores.site_means`.
        methods: Methods to show, one panel each.
        ncols: Panels per row.
    """
    methods = list(methods)
    nrows = -(-len(methods) // ncols)
    fig, axes = _fig(nrows, ncols, size=(2.5 * ncols, 2.4 * nrows + 0.4), squeeze=False,
                     sharex=True, sharey=True)
    t = site_means.dropna(subset=["GPP_obs", "GPP_sim"])
    hi = float(np.nanmax(t[["GPP_obs", "GPP_sim"]].to_numpy())) * 1.05 if len(t) else 1.0
    colors = method_colors(methods)
    for ax, m in zip(axes.ravel(), methods, strict=False):
        d = t[t["method"] == m]
        ax.plot([0, hi], [0, hi], color="0.5", lw=0.8, ls="--")
        ax.plot(d["GPP_obs"], d["GPP_sim"], "o", ms=3.5, alpha=0.8, color=colors[m])
        ax.set_title(m, fontsize=8)
        ax.set_xlim(0, hi)
        ax.set_ylim(0, hi)
    for ax in axes.ravel()[len(methods):]:
        ax.set_axis_off()
    fig.supxlabel(f"site-mean GPP_obs [{_UNIT_GPP}]")
    fig.supylabel(f"site-mean GPP_sim [{_UNIT_GPP}]")
    return fig


# ------------------------------------------------------------------------------- Figure 4
@_styled
def nse_by_type(values: pd.DataFrame, *, metric: str = "NSE", floor: float = -3.0,
                ncols: int = 4, min_sites: int = 1) -> Figure:
    """Site metric per method for all sites, each PFT and each climate group (Figure 4).

    Boxes show the quartiles and the median (line), the cross the mean; whiskers reach 1.5
    interquartile ranges. As in the paper, the area below ``floor`` is not shown (the
    number of sites below it is written in the panel). Methods are sorted by their median
    across all sites.

    Args:
        values: :attr:`lue_spie.assess.gpp.TypeDistributions.values` (``method``, ``site``,
            ``PFT``, ``koeppen_main`` and the metric).
        metric: The metric column.
        floor: Lowest value shown (paper: -3 for NSE).
        ncols: Panels per row.
        min_sites: Types with fewer sites are not drawn.
    """
    order = (values.groupby("method")[metric].median().sort_values(ascending=False).index
             .tolist())
    colors = method_colors(order)
    panels: list[tuple[str, pd.DataFrame]] = [("all sites", values)]
    for by, label in (("PFT", "PFT"), ("koeppen_main", "climate")):
        for g in sorted(values[by].dropna().unique()):
            sub = values[values[by] == g]
            if sub["site"].nunique() >= min_sites:
                panels.append((f"{label} {g}", sub))
    nrows = -(-len(panels) // ncols)
    fig, axes = _fig(nrows, ncols, size=(10.0, nrows * (0.17 * len(order) + 0.9) + 0.5),
                     squeeze=False, sharey=True)
    y = np.arange(len(order))
    for ax, (title, sub) in zip(axes.ravel(), panels, strict=False):
        data = [sub.loc[sub["method"] == m, metric].dropna().to_numpy() for m in order]
        keep = [i for i, d in enumerate(data) if len(d)]
        if keep:
            bp = ax.boxplot([data[i] for i in keep], positions=y[keep], orientation="horizontal",
                            widths=0.65, patch_artist=True, showfliers=False, showmeans=True,
                            meanprops={"marker": "x", "markeredgecolor": "k",
                                       "markersize": 4},
                            medianprops={"color": "k", "lw": 1.2})
            for patch, i in zip(bp["boxes"], keep, strict=True):
                patch.set_facecolor(colors[order[i]])
                patch.set_alpha(0.85)
        below = sum(int((d < floor).sum()) for d in data)
        ax.set_xlim(floor, 1.0 if metric != "NRMSE" else None)
        ax.axvline(0, color="0.4", lw=0.7, ls=":")
        n = sub["site"].nunique()
        ax.set_title(f"{title} ({n} site{'s' if n != 1 else ''})", fontsize=8, loc="left")
        if below:
            ax.text(0.02, 0.02, f"{below} below {floor:g}", transform=ax.transAxes,
                    fontsize=6, color="0.3")
        ax.grid(axis="y", visible=False)
    for ax in axes.ravel()[len(panels):]:
        ax.set_axis_off()
    axes[0, 0].set_yticks(y, order, fontsize=7)
    axes[0, 0].invert_yaxis()
    fig.supxlabel(f"site daily {_LABELS.get(metric, metric)}")
    return fig


# ------------------------------------------------------------------------------- Figure 5
@_styled
def likelihood(P: pd.DataFrame, average: pd.DataFrame) -> Figure:
    """Average model likelihood P per method, and P per metric and time scale (Figure 5).

    Args:
        P: :attr:`lue_spie.assess.likelihood.Likelihood.P` (``metric, scale, method, P``).
        average: :attr:`lue_spie.assess.likelihood.Likelihood.average` (``method, P, rank``).
    """
    avg = average.sort_values("P", ascending=False).reset_index(drop=True)
    methods = avg["method"].tolist()
    pairs = list(dict.fromkeys(P["metric"] + "\n" + P["scale"]))
    wide = (P.assign(pair=P["metric"] + "\n" + P["scale"])
            .pivot(index="method", columns="pair", values="P").reindex(index=methods,
                                                                        columns=pairs))
    fig, (a, b) = _fig(1, 2, size=(10.0, 0.3 * len(methods) + 1.6),
                       gridspec_kw={"width_ratios": [1.0, 2.3]})
    colors = method_colors(methods)
    y = np.arange(len(methods))
    a.barh(y, avg["P"], color=[colors[m] for m in methods])
    for i, v in enumerate(avg["P"]):
        a.text(v, i, f" {v:.2f}", va="center", fontsize=7)
    a.set_yticks(y, methods)
    a.invert_yaxis()
    a.set_xlim(0, max(1.0, float(avg["P"].max()) * 1.15))
    a.set_xlabel("average P [-]")
    a.grid(axis="y", visible=False)
    im = b.imshow(wide.to_numpy(np.float64), aspect="auto", cmap="cividis", vmin=0, vmax=1)
    for i in range(wide.shape[0]):
        for j in range(wide.shape[1]):
            v = wide.iat[i, j]
            if np.isfinite(v):
                b.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6.5,
                       color="white" if v < 0.55 else "black")
    b.set_xticks(range(len(pairs)), pairs, fontsize=7)
    b.set_yticks(y, methods)
    b.grid(False)
    b.set_title("P per metric and time scale", fontsize=9, loc="left")
    fig.colorbar(im, ax=b, shrink=0.8, label="P [-]")
    return fig


# ------------------------------------------------------------------------------- Figure 6
def _reflected_kde(x: np.ndarray, lo: float, hi: float, grid: np.ndarray) -> np.ndarray | None:
    """Gaussian KDE with reflection at both bounds (mass stays inside [lo, hi]); None when the
    values have no spread."""
    x = x[np.isfinite(x)]
    if len(x) < 2 or np.ptp(x) <= 1e-12 * (hi - lo):
        return None
    kde = stats.gaussian_kde(x)
    # Reflection: the mirrored points' density at g is the original density at 2 lo - g.
    dens = kde(grid) + kde(2 * lo - grid) + kde(2 * hi - grid)
    return dens


@_styled
def parameter_densities(params: pd.DataFrame, koeppen: pd.Series,
                        methods: Sequence[str] = ("site-calib", "SPIE"), *,
                        edges: pd.DataFrame | None = None) -> Figure:
    """Densities of each parameter over sites for two or more methods (paper Figure 6).

    Kernel densities (Gaussian, Scott's bandwidth, reflected at the bounds so that mass on a
    bound shows as a peak at the edge) over the parameter's whole allowed range; a method
    whose values do not vary (one value for all sites) is drawn as a vertical line. Only
    sites where the parameter is free count. The panel titles give the share of sites on a
    bound per method.

    Args:
        params: ``method, site`` + the 13 parameters.
        koeppen: Koeppen type by site.
        methods: Methods to overlay (paper: site-calib and SPIE).
        edges: :func:`lue_spie.parameter_skill.edge_shares` (computed when None).
    """
    from lue_spie.parameter_skill import edge_shares, free_mask

    methods = [m for m in methods if m in set(params["method"])]
    if not methods:
        raise ValueError("parameter_densities: none of the methods has parameter vectors")
    t = params[params["method"].isin(methods)]
    if edges is None:
        edges = edge_shares(t, koeppen)
    share = edges.set_index(["method", "parameter"])["share"]
    colors = dict(zip(methods, ("0.35", _CB[3], _CB[0], _CB[2], _CB[4]), strict=False))
    fig, axes = _fig(3, 5, size=(12.0, 7.0))
    axes = axes.ravel()
    for j, p in enumerate(PARAMETERS):
        ax = axes[j]
        lo, hi = BOUNDS[j]
        grid = np.linspace(lo, hi, 300)
        shares = []
        for m in methods:
            d = t[t["method"] == m]
            free = free_mask(d["site"], koeppen)[:, j]
            x = d[p].to_numpy(np.float64)[free]
            if len(x) == 0:
                continue
            e = share.get((m, p), np.nan)
            shares.append(f"{e:.0%}" if np.isfinite(e) else "n/a")
            dens = _reflected_kde(x, lo, hi, grid)
            if dens is None:
                ax.axvline(float(np.nanmean(x)), color=colors[m], lw=1.6)
            else:
                ax.fill_between(grid, dens, color=colors[m], alpha=0.25, lw=0)
                ax.plot(grid, dens, color=colors[m], lw=1.3)
            ax.plot(x, np.zeros_like(x), "|", color=colors[m], ms=6, alpha=0.7)
        ax.set_xlim(lo, hi)
        ax.set_ylim(bottom=0)
        ax.set_yticks([])
        ax.locator_params(axis="x", nbins=4)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 4), useMathText=True)
        ax.set_xlabel(param_label(p, unit=True), fontsize=8)
        if shares:
            ax.set_title("on a bound: " + " / ".join(shares), fontsize=7.5)
        else:
            ax.text(0.5, 0.5, "fixed at 0\nat every site", ha="center", va="center",
                    transform=ax.transAxes)
    for ax in axes[len(PARAMETERS):]:
        ax.set_axis_off()
    handles = [Patch(color=colors[m], alpha=0.6, label=m) for m in methods]
    axes[len(PARAMETERS)].legend(handles=handles, loc="center", title="share of sites on a "
                                 "bound,\nin this order", fontsize=8, title_fontsize=8)
    fig.supylabel("density over sites (ticks: sites)")
    return fig


# ------------------------------------------------------------------------------- Figure 7
@_styled
def nse_vs_param_diff(eq) -> Figure:
    """Site NSE loss against relative parameter difference, with its fit (paper Figure 7).

    Args:
        eq: An :class:`lue_spie.assess.parameters.Equifinality`.
    """
    fig, ax = _fig(size=(5.6, 4.2))
    t = eq.sites
    ax.plot(t["param_diff"], t["dNSE"], "o", ms=4.5, alpha=0.75, color=_CB[0],
            label=f"sites ({eq.n})")
    if np.isfinite(eq.slope):
        x = np.linspace(float(t["param_diff"].min()), float(t["param_diff"].max()), 50)
        ax.plot(x, eq.intercept + eq.slope * x, color=_CB[3], lw=1.8,
                label="least-squares line")
    text = (f"r = {eq.r:.2f} (p = {eq.p_value:.2g})\nSpearman {eq.spearman:.2f}"
            if np.isfinite(eq.r) else "r undefined")
    ax.text(0.97, 0.97, text, transform=ax.transAxes, ha="right", va="top", fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "0.7", "alpha": 0.9})
    ax.axhline(0, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel(f"relative parameter difference D ({eq.method} vs {eq.reference}) [-]")
    ax.set_ylabel(f"NSE$_{{{eq.reference}}}$ - NSE$_{{{eq.method}}}$, {eq.scale} [-]")
    ax.legend(loc="upper left")
    return fig


# --------------------------------------------------------------------------------- extras
@_styled
def parameter_skill_heatmap(skill: pd.DataFrame, *, value: str = "NSE",
                            title: str | None = None) -> Figure:
    """Per-parameter skill of each method against a reference (methods x parameters).

    Args:
        skill: :func:`lue_spie.assess.parameters.parameter_skill`.
        value: ``NSE`` or ``R2`` (diverging / sequential map), or
            ``median |error| / range`` (sequential, smaller is better).
        title: Panel title.
    """
    methods = list(pd.unique(skill["method"]))
    wide = skill.pivot(index="method", columns="parameter", values=value).reindex(
        index=methods, columns=list(PARAMETERS))
    v = wide.to_numpy(np.float64)
    fig, ax = _fig(size=(10.0, 0.32 * len(methods) + 1.5))
    if value == "NSE":
        im = ax.imshow(np.clip(v, -1, 1), aspect="auto", cmap="PuOr", vmin=-1, vmax=1)
        label = "NSE [-] (clipped to [-1, 1])"
    elif value == "R2":
        im = ax.imshow(v, aspect="auto", cmap="cividis", vmin=0, vmax=1)
        label = "R$^2$ [-]"
    else:
        im = ax.imshow(v, aspect="auto", cmap="cividis_r", vmin=0,
                       vmax=max(0.05, float(np.nanmax(v))) if np.isfinite(v).any() else 1)
        label = f"{value} [-]"
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            if np.isfinite(v[i, j]):
                txt = f"{v[i, j]:.2f}" if abs(v[i, j]) < 10 else f"{v[i, j]:.0f}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=6, color="k",
                        bbox={"facecolor": "white", "alpha": 0.55, "lw": 0, "pad": 0.6})
    ax.set_xticks(range(len(PARAMETERS)),
                  [f"${PARAMETER_TABLE[k].symbol}$" for k in range(len(PARAMETERS))])
    ax.set_yticks(range(len(methods)), methods)
    ax.grid(False)
    if title:
        ax.set_title(title, loc="left", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.85, label=label)
    return fig


@_styled
def twin_comparison(table: pd.DataFrame, *, x: str = "mean distance / range",
                    y: str = "median_NSE") -> Figure:
    """GPP skill against distance to the true parameters, one panel per world.

    Args:
        table: One row per world and method: ``world`` (e.g. "without structural error"),
            ``method``, and the columns ``x`` and ``y``.
        x: Parameter distance column (smaller is closer to the truth).
        y: GPP skill column (larger is better).
    """
    worlds = list(pd.unique(table["world"]))
    fig, axes = _fig(1, len(worlds), size=(5.0 * len(worlds), 4.0), squeeze=False,
                     sharex=True, sharey=True)
    colors = method_colors(table["method"].unique())
    for ax, w in zip(axes[0], worlds, strict=True):
        d = table[table["world"] == w]
        for _, r in d.iterrows():
            ax.plot(r[x], r[y], "o", ms=7, color=colors[r["method"]])
            ax.annotate(r["method"], (r[x], r[y]), textcoords="offset points", xytext=(4, 3),
                        fontsize=7)
        ax.set_title(w, loc="left", fontsize=9)
        ax.set_xlabel("mean over parameters of median |p - p$_{true}$| / range [-]")
    axes[0, 0].set_ylabel(f"{y.replace('_', ' ')} (daily GPP) [-]")
    return fig


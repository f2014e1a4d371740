"""When does SPIE pay off: the figure of the sweep over two dials of the virtual world."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lue_spie.plots._style import _fig, _styled
from lue_spie.plots.assessment import method_colors

__all__ = ["payoff_sweep"]

_REFERENCE = ("truth", "site-calib", "noise ceiling")
_MARKERS = {"SPIE": "o", "PFTmean": "s", "OPT-PFT": "^", "sRF": "D", "OPT-All": "v",
            "mRF": "P", "Sitesim": "X"}


def _label(dial: str) -> str:
    return dial.replace("_", " ")


@_styled
def payoff_sweep(table: pd.DataFrame) -> Figure:
    """SPIE against the baselines over a grid of two dials (the pay-off sweep).

    One column per value of the second dial (``y``). Top row: each method's share of sites
    with a positive held-out daily NSE along the first dial (``x``), the true parameters'
    share dashed (the ceiling no method can pass in that world) and site calibration's
    (in sample) dotted. Bottom row: SPIE's margin over the best baseline at each point in
    the share of positive sites (bars, percentage points), with the best baseline's name and
    SPIE's margin over the best median daily NSE written at each bar.

    Args:
        table: The sweep's table (:func:`lue_spie.payoff.sweep_table`): columns ``x_dial``,
            ``x``, ``y_dial``, ``y``, ``method``, ``share_positive``, ``median_nse``.

    Raises:
        ValueError: for a table without SPIE or without a baseline.
    """
    methods = list(dict.fromkeys(table["method"]))
    if "SPIE" not in methods:
        raise ValueError("payoff_sweep: the table has no rows of SPIE")
    baselines = [m for m in methods if m not in (*_REFERENCE, "SPIE")]
    if not baselines:
        raise ValueError("payoff_sweep: the table has no baseline besides SPIE")
    ys = sorted(table["y"].unique())
    xs = sorted(table["x"].unique())
    x_dial, y_dial = table["x_dial"].iloc[0], table["y_dial"].iloc[0]
    fig, axes = _fig(2, len(ys), size=(3.2 * len(ys) + 0.6, 6.0), sharex=True,
                     sharey="row", squeeze=False)
    colors = method_colors([m for m in methods if m not in _REFERENCE])
    for j, y in enumerate(ys):
        d = table[table["y"] == y]
        top, bottom = axes[0, j], axes[1, j]
        for m in methods:
            r = d[d["method"] == m].sort_values("x")
            if m == "truth":
                top.plot(r["x"], 100 * r["share_positive"], "k--", lw=1.2,
                         label="true parameters")
            elif m == "noise ceiling":
                continue
            elif m == "site-calib":
                top.plot(r["x"], 100 * r["share_positive"], ":", color="0.45", lw=1.2,
                         label="site calibration (in sample)")
            else:
                top.plot(r["x"], 100 * r["share_positive"], marker=_MARKERS.get(m, "o"),
                         color=colors[m], lw=2.0 if m == "SPIE" else 1.0, ms=4, label=m)
        top.set_title(f"{_label(y_dial)} x {y:g}")
        top.set_ylim(-3, 103)
        margins, nse_margins, best_names = [], [], []
        for x in xs:
            dx = d[d["x"] == x].set_index("method")
            base = dx.loc[baselines]
            best = base["share_positive"].idxmax()
            best_names.append(best)
            margins.append(100 * (dx.loc["SPIE", "share_positive"]
                                  - base.loc[best, "share_positive"]))
            nse_margins.append(dx.loc["SPIE", "median_nse"] - base["median_nse"].max())
        xs_arr = np.asarray(xs, dtype=float)
        width = 0.5 * (np.min(np.diff(xs_arr)) if len(xs_arr) > 1 else 1.0)
        bottom.bar(xs_arr, margins, width=width,
                   color=["tab:green" if v > 0 else "tab:red" for v in margins], alpha=0.7)
        bottom.axhline(0, color="0.3", lw=0.8)
        for x, v, dn, name in zip(xs_arr, margins, nse_margins, best_names, strict=True):
            bottom.annotate(f"vs {name}\n\u0394NSE {dn:+.2f}", (x, v),
                            xytext=(0, 3 if v >= 0 else -3), textcoords="offset points",
                            ha="center", va="bottom" if v >= 0 else "top", fontsize=6.5)
        lim = max(10.0, 1.35 * max(abs(v) for v in margins))
        bottom.set_ylim(-lim, lim)
        bottom.set_xlabel(f"{_label(x_dial)} (factor)")
    axes[0, 0].set_ylabel("sites with daily NSE > 0 [%]")
    axes[1, 0].set_ylabel("SPIE - best baseline\n[%-points of sites]")
    handles, labels = axes[0, -1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4),
               fontsize=7)
    fig.suptitle("When does SPIE pay off? Held-out skill along two dials of the virtual world")
    return fig

"""Figures of the SPIE chapter (8): the idea as a flowchart and the training curves.

The flowchart is drawn with matplotlib boxes and arrows (no graph layout package is needed,
and the book's Sphinx configuration has no mermaid extension). The training-curve figure
takes the curves table that SPIE writes beside its fold results
(:func:`lue_spie.methods.spie.read_curves`) and draws it; nothing is computed here beyond
selecting rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from lue_spie.plots._style import _COLORS, _fig, _styled

__all__ = ["spie_flowchart", "training_curves"]

# Box colours of the flowchart, by role.
_ROLE_COLORS: dict[str, str] = {
    "data": "#dbe9f6",  # inputs read from the dataset
    "learnt": "#fde3c8",  # what gradient steps change
    "fixed": "#e8e8e8",  # fixed transformations (no weights)
    "loss": "#f8d0d0",  # the cost
}


def _box(ax, xy: tuple[float, float], text: str, role: str, *, w: float = 0.2,
         h: float = 0.13) -> tuple[float, float, float, float]:
    x, y = xy
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                boxstyle="round,pad=0.008,rounding_size=0.015",
                                fc=_ROLE_COLORS[role], ec="0.3", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=8, wrap=True)
    return x - w / 2, x + w / 2, y - h / 2, y + h / 2


def _arrow(ax, a: tuple[float, float], b: tuple[float, float], *, style: str = "-|>",
           color: str = "0.2", ls: str = "-", rad: float = 0.0, label: str | None = None,
           label_at: tuple[float, float] | None = None) -> None:
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=10, color=color,
                                 lw=1.0, ls=ls, connectionstyle=f"arc3,rad={rad}"))
    if label:
        x, y = label_at or ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        ax.text(x, y, label, ha="center", va="center", fontsize=7, color=color,
                bbox={"fc": "white", "ec": "none", "pad": 0.5})


@_styled
def spie_flowchart() -> Figure:
    """SPIE's training loop as boxes and arrows (the idea of the paper's Figure 1, redrawn).

    Top row, left to right, the forward pass of one mini-batch of training sites: site
    features -> z-scores -> the network -> the mapping into the bounds and the lag mask ->
    the LUE model with the sites' forcing -> GPP_sim, compared with GPP_obs in the
    calibration cost. The bottom arrow is the backward pass: the gradient of the cost flows
    through the model and the mapping into the network's weights (Adam). Site-calibrated
    parameters appear nowhere in the loop.
    """
    fig, ax = _fig(size=(10.0, 3.6))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_axis_off()
    ax.grid(False)
    y = 0.66
    xs = [0.07, 0.215, 0.37, 0.525, 0.68, 0.835]
    texts = [
        ("site features\n(PFT, climate,\nvegetation, soil)", "data"),
        ("z-scores\n(training sites'\nmean and sd)", "fixed"),
        ("MLP\n2 x 16 ReLU,\ndropout", "learnt"),
        ("bounds mapping\n+ lag mask\n-> 13 parameters", "fixed"),
        ("LUE model\n(daily, whole\nrecord)", "fixed"),
        ("calibration cost\n1 - NSE\n+ constraints", "loss"),
    ]
    boxes = [_box(ax, (x, y), t, role, w=0.12, h=0.27) for x, (t, role) in zip(xs, texts,
                                                                                strict=True)]
    for (_, r0, _, _), (l1, _, _, _) in zip(boxes[:-1], boxes[1:], strict=True):
        _arrow(ax, (r0, y), (l1, y))
    # Forcing into the model, GPP_obs into the cost.
    _box(ax, (0.68, 0.93), "forcing: T, VPD, PAR,\nFAPAR, CO2, W, CI", "data", w=0.14, h=0.12)
    _arrow(ax, (0.68, 0.87), (0.68, boxes[4][3]))
    _box(ax, (0.835, 0.93), "GPP_obs\n(good days)", "data", w=0.1, h=0.12)
    _arrow(ax, (0.835, 0.87), (0.835, boxes[5][3]))
    ax.text(0.7575, y + 0.02, "GPP_sim", ha="center", va="bottom", fontsize=7)
    # Backward pass.
    _arrow(ax, (0.835, boxes[5][2]), (0.37, boxes[2][2]), color="#b2182b", ls="--", rad=-0.3,
           label="gradient of the cost, back through the model and the mapping:\n"
                 "one Adam step on the network's weights per mini-batch",
           label_at=(0.6, 0.33))
    # What never enters.
    _box(ax, (0.11, 0.3), "site-calibrated parameters:\nnot used anywhere", "fixed",
         w=0.19, h=0.13)
    ax.text(0.5, 0.02, "every fold of the cross-validation has its own network, trained at the "
            "same time on its training sites; the held-out sites only get a prediction",
            ha="center", va="bottom", fontsize=7.5, style="italic")
    handles = [FancyBboxPatch((0, 0), 1, 1, fc=c, ec="0.3") for c in _ROLE_COLORS.values()]
    ax.legend(handles, ["data", "learnt (weights)", "fixed (no weights)", "cost"],
              loc="upper left", bbox_to_anchor=(0.0, 1.04), fontsize=7, ncols=2,
              handlelength=1.2)
    return fig


@_styled
def training_curves(curves: pd.DataFrame, *, value: str = "cost",
                    summary: pd.DataFrame | None = None, cost_tol: float | None = None,
                    folds: Sequence[int] | None = None, ncols: int = 5) -> Figure:
    """SPIE's training curves, one panel per fold.

    Args:
        curves: The curves table (``fold, epoch, split, cost, ...``): ``split`` is
            ``"minibatch"`` (every epoch: mean mini-batch cost, with dropout),
            ``"train"`` and ``"validation"`` (every ``eval_every`` epochs, without dropout).
        value: ``"cost"`` (log axis) or ``"nse_median"`` (median daily NSE of the sites;
            the mini-batch rows have none).
        summary: Per fold ``fold, best_epoch`` (optional): the kept weights, marked.
        cost_tol: The paper's stopping threshold, drawn as a line when given.
        folds: Folds to draw (default: all).
        ncols: Panels per row.
    """
    if value not in ("cost", "nse_median"):
        raise ValueError(f"training_curves: value must be 'cost' or 'nse_median', got {value!r}")
    folds = list(folds) if folds is not None else sorted(curves["fold"].unique())
    nrows = int(np.ceil(len(folds) / ncols))
    fig, axes = _fig(nrows, min(ncols, len(folds)), size=(2.3 * min(ncols, len(folds)),
                                                          1.9 * nrows + 0.5),
                     sharex=True, sharey=True, squeeze=False)
    styles: Mapping[str, dict] = {
        "minibatch": {"color": "0.65", "lw": 0.6, "label": "mini-batches (dropout)"},
        "train": {"color": _COLORS[0], "lw": 1.2, "label": "training sites"},
        "validation": {"color": _COLORS[1], "lw": 1.2, "label": "validation sites"},
    }
    best = summary.set_index("fold")["best_epoch"] if summary is not None else None
    for a, k in zip(axes.ravel(), folds, strict=False):
        c = curves[curves["fold"] == k]
        for split, st in styles.items():
            s = c[c["split"] == split].sort_values("epoch").dropna(subset=[value])
            if len(s):
                a.plot(s["epoch"], s[value], **st)
        if cost_tol is not None and value == "cost":
            a.axhline(cost_tol, color="k", lw=0.6, ls=":")
        if best is not None and k in best.index:
            a.axvline(best[k], color=_COLORS[3], lw=0.7, ls="--")
        if value == "cost":
            a.set_yscale("log")
        a.set_title(f"fold {k}", fontsize=8)
    for a in axes.ravel()[len(folds):]:
        a.set_axis_off()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if cost_tol is not None and value == "cost":
        handles.append(Line2D([], [], color="k", lw=0.6, ls=":"))
        labels.append(f"stop below {cost_tol:g}")
    if best is not None:
        handles.append(Line2D([], [], color=_COLORS[3], lw=0.7, ls="--"))
        labels.append("kept weights")
    fig.legend(handles, labels, loc="outside upper center", ncols=len(labels), fontsize=7)
    fig.supxlabel("epoch", fontsize=8)
    fig.supylabel("cost (mean over sites)" if value == "cost" else "median daily NSE",
                  fontsize=8)
    return fig

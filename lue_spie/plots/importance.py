"""Figures of the feature-importance chapter (11): Figure 8 and the per-feature views.

The tables come from :mod:`lue_spie.importance.step` (``importance``, ``importance_by_class``,
``pd_curves``); nothing is computed here beyond selecting and sorting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from lue_spie.data.features import FEATURE_CLASSES
from lue_spie.params import PARAMETERS
from lue_spie.plots._style import _COLORS, _fig, _styled, param_label

__all__ = ["importance_by_class", "importance_features", "importance_heatmap",
           "partial_dependence_curves"]

#: The attribution methods and their markers (the combined value is the bar).
_METHODS: tuple[str, ...] = ("SHAP", "LRP", "PD")
_MARKERS: dict[str, str] = {"SHAP": "o", "LRP": "s", "PD": "^"}
#: One colour per feature class, the same in every figure.
CLASS_COLORS: dict[str, object] = {c: _COLORS[i % len(_COLORS)]
                                   for i, c in enumerate(FEATURE_CLASSES)}


def _label(name: str) -> str:
    return param_label(name) if name in PARAMETERS else str(name)


def _check(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what}: the table lacks column(s) {missing}; pass the table that "
                         "lue_spie.importance.step writes")


def _cell_text(ax, values: np.ndarray, im) -> None:
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            red, green, blue, _ = im.cmap(im.norm(v))
            light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6.5,
                    color="black" if light else "white")
        else:
            ax.text(c, r, "-", ha="center", va="center", fontsize=7, color="0.5")


@_styled
def importance_by_class(by_class: pd.DataFrame, *, stat: str = "mean") -> Figure:
    """Figure 8: importance by feature class, overall (left) and per parameter (right).

    Left: the classes sorted by their overall importance (bars: the average of the three
    normalised methods; markers: each method alone, ``stat="mean"`` only). Right: the same
    statistic per parameter as a heat map (columns: the 13 parameters, then all).

    Args:
        by_class: :func:`lue_spie.importance.step.class_importance` (the table
            ``importance_by_class``).
        stat: ``"mean"`` (the figure of the book), ``"sum"`` or ``"max"`` over the class's
            features.
    """
    _check(by_class, ["parameter", "feature_class", stat], "importance_by_class")
    overall = by_class[by_class["parameter"] == "all"].set_index("feature_class")
    if overall.empty:
        raise ValueError("importance_by_class: no overall rows (parameter 'all')")
    order = overall[stat].sort_values(ascending=False).index.tolist()
    fig, (ax, hm) = _fig(1, 2, size=(11.0, 3.4), width_ratios=[1.0, 2.3])
    y = np.arange(len(order))
    ax.barh(y, overall.loc[order, stat], color=[CLASS_COLORS.get(c, "0.5") for c in order],
            alpha=0.85)
    handles = [Patch(color="0.6", label="average of the three")]  # neutral: bars vary
    if stat == "mean":
        for m in _METHODS:
            if m in overall.columns:
                handles += ax.plot(overall.loc[order, m], y, _MARKERS[m], ms=4.5, color="k",
                                   mfc="white" if m != "SHAP" else "k", label=m)
    ax.set_yticks(y, order)
    ax.invert_yaxis()
    ax.set_xlabel(f"normalised importance, {stat} over the class [-]")
    ax.set_title("all parameters", loc="left")
    ax.legend(handles=handles, loc="lower right", fontsize=7)
    params = [p for p in (*PARAMETERS, "all") if p in set(by_class["parameter"])]
    wide = by_class.pivot(index="feature_class", columns="parameter", values=stat)
    wide = wide.reindex(index=order, columns=params)
    values = wide.to_numpy(float)
    vmax = np.nanmax(values) if np.isfinite(values).any() else 1.0
    im = hm.imshow(values, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
    hm.set_xticks(range(len(params)), [_label(p) for p in params])
    hm.set_yticks(range(len(order)), order)
    hm.grid(False)
    if "all" in params:
        hm.axvline(len(params) - 1.5, color="white", lw=2)
    _cell_text(hm, values, im)
    hm.set_title(f"per parameter ({stat} over the class)", loc="left")
    fig.colorbar(im, ax=hm, shrink=0.9, label="importance [-]")
    return fig


@_styled
def importance_features(importance: pd.DataFrame, *, parameter: str = "all",
                        top: int = 15, mark: Sequence[str] = ()) -> Figure:
    """The ``top`` features of one parameter (or overall): bars = the combined importance
    (with its standard deviation across folds), markers = each method, colour = class.

    Args:
        importance: The table ``importance`` of :mod:`lue_spie.importance.step`.
        parameter: A parameter name or ``"all"``.
        top: How many features to show.
        mark: Features to mark with a star (e.g. the true drivers of the parameter; a
            one-hot group name such as ``"PFT"`` marks all its columns).
    """
    _check(importance, ["parameter", "feature", "feature_class", "combined"],
           "importance_features")
    sub = importance[importance["parameter"] == parameter]
    if sub.empty:
        raise ValueError(f"importance_features: no rows for parameter {parameter!r}; "
                         f"parameters: {sorted(set(importance['parameter']))}")
    sub = sub.sort_values("combined", ascending=False).head(int(top))
    fig, ax = _fig(size=(6.5, 0.25 * len(sub) + 1.3))
    y = np.arange(len(sub))
    err = sub["combined_sd"].to_numpy(float) if "combined_sd" in sub else None
    ax.barh(y, sub["combined"], xerr=err, color=[CLASS_COLORS.get(c, "0.5")
                                                 for c in sub["feature_class"]],
            alpha=0.85, error_kw={"lw": 0.8, "capsize": 2, "ecolor": "0.3"})
    for m in _METHODS:
        if m in sub.columns:
            ax.plot(sub[m], y, _MARKERS[m], ms=4, color="k",
                    mfc="white" if m != "SHAP" else "k", label=m)
    marked = set(mark)
    labels = [f"{f} *" if f in marked or (f.split("_")[0] in marked and f.split("_")[0]
                                          in ("PFT", "Clim")) else f
              for f in sub["feature"]]
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("normalised importance [-] (bar: average of the three, line: sd over folds)"
                  + ("\n* marked features" if marked else ""))
    title = "all parameters" if parameter == "all" else _label(parameter)
    ax.set_title(title, loc="left")
    handles = [ax.plot([], [], "s", color=CLASS_COLORS[c], label=c)[0]
               for c in dict.fromkeys(sub["feature_class"]) if c in CLASS_COLORS]
    ax.legend(handles=ax.get_legend_handles_labels()[0][:len(_METHODS)] + handles,
              loc="lower right", fontsize=7, ncols=2)
    return fig


@_styled
def importance_heatmap(importance: pd.DataFrame, *, top: int = 20,
                       method: str = "combined") -> Figure:
    """The ``top`` features overall (rows, by the overall importance) against the parameters
    (columns): the detailed view behind Figure 8 (the paper's Figure S8).

    Args:
        importance: The table ``importance`` of :mod:`lue_spie.importance.step`.
        top: How many features.
        method: ``"combined"``, ``"SHAP"``, ``"LRP"`` or ``"PD"``.
    """
    _check(importance, ["parameter", "feature", method], "importance_heatmap")
    overall = importance[importance["parameter"] == "all"].sort_values(method,
                                                                       ascending=False)
    feats = overall["feature"].head(int(top)).tolist()
    params = [p for p in (*PARAMETERS, "all") if p in set(importance["parameter"])]
    wide = importance.pivot(index="feature", columns="parameter", values=method)
    wide = wide.reindex(index=feats, columns=params)
    values = wide.to_numpy(float)
    fig, ax = _fig(size=(9.0, 0.24 * len(feats) + 1.4))
    im = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(params)), [_label(p) for p in params])
    classes = overall.set_index("feature")["feature_class"]
    ax.set_yticks(range(len(feats)), feats)
    for tick, f in zip(ax.get_yticklabels(), feats, strict=True):
        tick.set_color(CLASS_COLORS.get(classes.get(f), "k"))
    ax.grid(False)
    _cell_text(ax, values, im)
    fig.colorbar(im, ax=ax, shrink=0.8, label=f"{method} importance [-]")
    return fig


@_styled
def partial_dependence_curves(pd_curves: pd.DataFrame, parameter: str,
                              features: Sequence[str]) -> Figure:
    """PD curves of one parameter's raw network output on a few features, one line per fold,
    against the feature in its own units.

    Args:
        pd_curves: The table ``pd_curves`` of :mod:`lue_spie.importance.step`.
        parameter: The parameter.
        features: The features (one panel each).
    """
    _check(pd_curves, ["fold", "parameter", "feature", "value", "pd"],
           "partial_dependence_curves")
    feats = list(features)
    if not feats:
        raise ValueError("partial_dependence_curves: give at least one feature")
    fig, axes = _fig(1, len(feats), size=(3.0 * len(feats) + 0.6, 2.8), sharey=True,
                     squeeze=False)
    sub = pd_curves[pd_curves["parameter"] == parameter]
    for ax, f in zip(axes[0], feats, strict=True):
        d = sub[sub["feature"] == f]
        if d.empty:
            raise ValueError(f"partial_dependence_curves: no curve of {parameter!r} on {f!r}")
        for k, (fold, g) in enumerate(d.groupby("fold", sort=True)):
            g = g.sort_values("value")
            ax.plot(g["value"], g["pd"], "-o" if len(g) <= 2 else "-", ms=3, lw=1,
                    color=_COLORS[k % len(_COLORS)], alpha=0.8, label=f"fold {fold}")
        ax.set_xlabel(f)
    axes[0][0].set_ylabel(f"PD of the raw output for {_label(parameter)}")
    if len(sub["fold"].unique()) <= 10:
        axes[0][-1].legend(fontsize=6, ncols=2)
    return fig

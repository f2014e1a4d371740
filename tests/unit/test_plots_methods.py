"""Figures of the method chapters (lue_spie.plots.methods): each draws what it is given."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from lue_spie import plots
from lue_spie.methods.base import paper_order
from lue_spie.params import PARAMETERS
from lue_spie.plots.methods import METHOD_COLORS


def _comparison() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for m in ("PFTmean", "Sitesim"):
        for p in PARAMETERS[:11]:  # no lag free anywhere: their panels say so
            v = rng.uniform(0.2, 0.8, 5)
            rows.append(pd.DataFrame({"method": m, "site": list("ABCDE"), "fold": 0,
                                      "parameter": p, "predicted": v, "calibrated": v,
                                      "true": v}))
    return pd.concat(rows, ignore_index=True)


def test_every_method_has_its_own_colour_and_the_reference_is_grey():
    assert set(paper_order()) <= set(METHOD_COLORS)
    assert len(set(METHOD_COLORS.values())) == len(METHOD_COLORS)
    assert (0.5, 0.5, 0.5) not in [tuple(round(x, 1) for x in c) for c in
                                   METHOD_COLORS.values()]


def test_predicted_vs_reference_draws_one_panel_per_parameter():
    fig = plots.predicted_vs_reference(_comparison(), reference="true")
    assert isinstance(fig, Figure)
    panels = [a for a in fig.axes if a.axison]
    assert len(panels) == len(PARAMETERS)
    texts = [t.get_text() for a in panels for t in a.texts]
    assert texts.count("fixed at 0\nat every site") == 2  # the two lags
    with pytest.raises(ValueError, match="reference"):
        plots.predicted_vs_reference(_comparison(), reference="truth")


def test_heatmaps_label_every_cell():
    overview = pd.DataFrame({"reference": "truth", "method": ["mRF"] * len(PARAMETERS),
                             "parameter": list(PARAMETERS),
                             "NSE": np.linspace(-6000, 1, len(PARAMETERS)),
                             "median |error| / range": np.linspace(0, 0.6, len(PARAMETERS))})
    fig = plots.recovery_heatmap(overview, metric="NSE")
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert len(labels) == len(PARAMETERS) and labels[0] == "-6e+03"
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["mRF vs truth"]
    plots.recovery_heatmap(overview)  # the default metric
    with pytest.raises(ValueError, match="metric"):
        plots.recovery_heatmap(overview, metric="bias")
    ratio = pd.DataFrame([[1.0] * len(PARAMETERS)], index=["sRF"], columns=list(PARAMETERS))
    assert len(plots.spread_heatmap(ratio).axes[0].texts) == len(PARAMETERS)


def test_nse_and_gpp_figures():
    nse = pd.DataFrame({"method": ["site calibration"] * 3 + ["PFTmean"] * 3,
                        "site": list("ABCABC"), "nse": [0.9, 0.8, 0.95, 0.5, -3.0, 0.2]})
    fig = plots.nse_by_method(nse)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["PFTmean",
                                                                     "site calibration"]
    dates = pd.date_range("2005-01-01", periods=30)
    obs = np.ones((2, 30))
    fig = plots.heldout_gpp(dates, obs, {"site calibration": obs, "mRF": obs * 1.1},
                            ["A", "B"], good=obs > 0, nse={"mRF": [0.5, 0.6]})
    assert len(fig.axes) == 2 and "mRF 0.60" in fig.axes[1].get_title(loc="left")


def test_split_cycles_and_pooled_figures():
    by = pd.DataFrame({"ENF": [2, 1], "GRA": [0, 2]}, index=pd.Index([0, 1], name="fold"))
    assert len(plots.fold_composition(by, by).axes) == 2
    cyc = {v: pd.DataFrame(np.random.default_rng(1).normal(size=(2, 365)), index=["A", "B"],
                           columns=range(1, 366)) for v in ("T", "P", "SW_IN", "NDVI")}
    assert len(plots.seasonal_cycles(cyc, [("A", "B", 0.5)]).axes) == 4
    vectors = pd.DataFrame([[k, "all", 2, *np.full(len(PARAMETERS), 0.5)] for k in range(3)],
                           columns=["fold", "group", "n_held_out", *PARAMETERS])
    cal = pd.DataFrame(np.random.default_rng(2).uniform(size=(10, len(PARAMETERS))),
                       columns=list(PARAMETERS))
    assert isinstance(plots.pooled_vectors(vectors, cal), Figure)
    assert len(plots.group_vectors(vectors).axes[0].texts) == len(PARAMETERS)


def test_pmodel_figures():
    n = 800
    t = pd.DataFrame({"date": pd.date_range("2005-01-01", periods=n), "T": np.zeros(n),
                      "VPD": np.full(n, 500.0), "soil_stress": np.ones(n),
                      **{f"{v}_{k}": np.ones(n) for v in ("xi", "vcmax25", "GPP")
                         for k in ("acclimated", "optimal")}})
    fig = plots.pmodel_acclimation(t)
    assert len(fig.axes[1].lines[0].get_xdata()) == 730  # the first two years
    bins = pd.DataFrame({"T": [-1.0, 1.0], "days": [5, 7], "GPP_obs": [0.1, 0.5],
                         "P-model": [0.2, 0.6]})
    fig = plots.gpp_by_temperature(bins)
    assert [h.get_label() for h in fig.axes[0].lines[:2]] == ["GPP_obs", "P-model"]

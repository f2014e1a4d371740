"""Site scores at four time scales, positive-NSE counts, spatial scores and per-type NSE."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import r2_score

from lue_spie.assess.gpp import assess_gpp, by_site_type, score_summary, site_scores, spatial_scores
from lue_spie.data.schema import QC_COLUMNS
from lue_spie.metrics import nrmse, nse, r2
from lue_spie.timescales import GPPGrid, all_scales


def make_grid(n_sites: int = 5, seed: int = 0) -> GPPGrid:
    """One year of daily GPP at ``n_sites`` sites; method "good" (small noise) covers every
    site, method "fold" (large noise) only sites 0 and 1; site 4 has 3 good days only."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2021-01-01", "2021-12-31")
    doy = dates.day_of_year.to_numpy()
    level = np.linspace(2.0, 8.0, n_sites)[:, None]
    obs = level * (1 + 0.8 * np.sin(2 * np.pi * (doy - 100) / 365)) \
        + rng.normal(0, 0.3, (n_sites, len(dates)))
    obs[1, 50:60] = np.nan
    sim = np.stack([obs + rng.normal(0, 0.5, obs.shape), obs + rng.normal(0, 6.0, obs.shape)])
    sim[:, 1, 50:60] = 1.0  # predictions on days without observation do not count
    sim[1, 2:] = np.nan
    qc = np.ones((len(QC_COLUMNS), n_sites, len(dates)))
    qc[0, 4, 3:] = 0.5
    qc[-1, 0, 100:130] = 0.0  # a month of gap-filled GPP at site 0
    return GPPGrid(("good", "fold"), tuple(f"S{i}" for i in range(n_sites)), dates, obs, sim, qc)


def test_site_scores_values_and_left_out():
    grid = make_grid()
    scores = site_scores(all_scales(grid))
    assert list(scores.columns) == ["method", "site", "scale", "n_points", "covered",
                                    "left_out", "NSE", "R2", "NRMSE"]
    assert len(scores) == 2 * 5 * 4
    assert list(scores["method"].unique()) == ["good", "fold"]
    assert list(scores["scale"].unique()) == ["daily", "weekly", "monthly", "yearly"]
    daily = scores[(scores["scale"] == "daily")].set_index(["method", "site"])
    good = grid.good
    o, s = grid.GPP_obs[0][good[0]], grid.GPP_sim[0, 0][good[0]]
    assert daily.loc[("good", "S0"), "n_points"] == good[0].sum() == 365 - 30
    assert daily.loc[("good", "S0"), "NSE"] == pytest.approx(r2_score(o, s), rel=1e-12)
    assert daily.loc[("good", "S0"), "R2"] == pytest.approx(np.corrcoef(o, s)[0, 1] ** 2)
    assert daily.loc[("good", "S0"), "NRMSE"] == pytest.approx(nrmse(o, s))
    assert daily.loc[("good", "S4"), "n_points"] == 3
    assert daily.loc[("good", "S4"), "left_out"] and np.isnan(daily.loc[("good", "S4"), "NSE"])
    assert not daily.loc[("fold", "S3"), "covered"]
    assert not daily.loc[("fold", "S3"), "left_out"]  # not covered is not "left out"
    # One year: the yearly scale leaves every covered site out.
    yearly = scores[scores["scale"] == "yearly"]
    assert yearly["left_out"].sum() == yearly["covered"].sum() == 7
    assert yearly["NSE"].isna().all()


def test_score_summary_counts_positive_nse():
    scores = site_scores(all_scales(make_grid()))
    summary = score_summary(scores).set_index(["method", "scale"])
    assert list(summary.columns) == ["n_sites", "n_left_out", "n_evaluated", "n_positive_NSE",
                                     "share_positive_NSE", "median_NSE", "median_R2",
                                     "median_NRMSE"]
    row = summary.loc[("good", "daily")]
    assert (row["n_sites"], row["n_left_out"], row["n_evaluated"]) == (5, 1, 4)
    assert row["n_positive_NSE"] == 4 and row["share_positive_NSE"] == 1.0
    row = summary.loc[("fold", "daily")]
    assert (row["n_sites"], row["n_evaluated"], row["n_positive_NSE"]) == (2, 2, 0)
    assert row["share_positive_NSE"] == 0.0
    assert np.isnan(summary.loc[("good", "yearly"), "share_positive_NSE"])
    direct = scores[(scores["method"] == "good") & (scores["scale"] == "weekly")]
    assert summary.loc[("good", "weekly"), "median_NSE"] == pytest.approx(direct["NSE"].median())


def test_spatial_scores():
    grid = make_grid()
    spatial = spatial_scores(grid)
    means = spatial.site_means.set_index(["method", "site"])
    good = grid.good
    for i in range(4):
        assert means.loc[("good", f"S{i}"), "GPP_obs"] == pytest.approx(
            grid.GPP_obs[i][good[i]].mean())
        assert means.loc[("good", f"S{i}"), "GPP_sim"] == pytest.approx(
            grid.GPP_sim[0, i][good[i]].mean())
    assert np.isnan(means.loc[("good", "S4"), "GPP_obs"])  # 3 good days < 4
    o = means.loc["good", "GPP_obs"].to_numpy()[:4]
    s = means.loc["good", "GPP_sim"].to_numpy()[:4]
    row = spatial.metrics.set_index("method").loc["good"]
    assert row["n_sites"] == 4
    assert row["NSE"] == pytest.approx(nse(o, s))
    assert row["R2"] == pytest.approx(r2(o, s))
    assert row["NRMSE"] == pytest.approx(nrmse(o, s))
    # "fold" predicts two sites: too few for spatial metrics.
    row = spatial.metrics.set_index("method").loc["fold"]
    assert row["n_sites"] == 2 and np.isnan(row["NSE"])


def test_by_site_type():
    scores = site_scores(all_scales(make_grid()))
    sites = pd.DataFrame({"site": [f"S{i}" for i in range(5)],
                          "PFT": ["ENF", "ENF", "GRA", "GRA", "CRO"],
                          "koeppen": ["Dfb", "Cfb", "Cfb", "BSk", "Dfc"]})
    dist = by_site_type(scores, sites)
    assert (dist.metric, dist.scale) == ("NSE", "daily")
    assert list(dist.values.columns) == ["method", "site", "PFT", "koeppen_main", "NSE"]
    assert len(dist.values) == 4 + 2  # S4 left out; "fold" covers S0, S1
    summary = dist.summary.set_index(["method", "by", "group"])
    assert list(dist.summary["by"].unique()) == ["PFT", "koeppen_main"]
    row = summary.loc[("good", "PFT", "ENF")]
    daily = scores[(scores["scale"] == "daily") & (scores["method"] == "good")]
    enf = daily[daily["site"].isin(["S0", "S1"])]["NSE"]
    assert row["n_sites"] == 2 and row["median"] == pytest.approx(enf.median())
    assert row["q25"] == pytest.approx(enf.quantile(0.25))
    assert summary.loc[("good", "koeppen_main", "C"), "n_sites"] == 2
    assert summary.loc[("fold", "PFT", "ENF"), "share_positive"] == 0.0
    assert ("good", "PFT", "CRO") not in summary.index
    with pytest.raises(ValueError, match="sites table"):
        by_site_type(scores, sites.iloc[:2])
    with pytest.raises(ValueError, match="metric"):
        by_site_type(scores, sites, metric="KGE")


def test_assess_gpp_bundle():
    grid = make_grid()
    sites = pd.DataFrame({"site": list(grid.sites), "PFT": ["ENF"] * 5,
                          "koeppen_main": ["D"] * 5})
    out = assess_gpp(grid, sites)
    assert set(out.scales) == {"daily", "weekly", "monthly", "yearly"}
    assert len(out.summary) == 2 * 4
    assert out.by_type is not None and out.by_type.summary["group"].tolist() == \
        ["ENF", "ENF", "D", "D"]
    assert assess_gpp(grid).by_type is None

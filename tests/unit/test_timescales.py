"""Daily grid and QC-aware weekly, monthly, yearly means: hand-computed cases, the calendar
rules, the input contract, and agreement with an independent pandas groupby."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lue_spie.data.io import good_days
from lue_spie.data.schema import QC_COLUMNS
from lue_spie.data.virtual import make_tables
from lue_spie.timescales import (
    DAILY_QC_MIN,
    PERIOD_QC_MIN,
    GPPGrid,
    aggregate,
    all_scales,
    gpp_grid,
)


def site_day(site: str, start: str, end: str, gpp=None) -> pd.DataFrame:
    dates = pd.date_range(start, end, freq="D")
    table = pd.DataFrame({"site": site, "date": dates,
                          "GPP_obs": np.arange(1.0, len(dates) + 1) if gpp is None else gpp})
    for c in QC_COLUMNS:
        table[c] = 1.0
    return table


def predictions(obs: pd.DataFrame, method: str, offset: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({"method": method, "site": obs["site"], "date": obs["date"],
                         "GPP_sim": obs["GPP_obs"].fillna(100.0) + offset})


def test_thresholds():
    assert DAILY_QC_MIN == 0.8
    assert PERIOD_QC_MIN == {"weekly": 0.7, "monthly": 0.7, "yearly": 0.5}


def test_weekly_hand_computed():
    # Four ISO weeks, Monday 2021-01-04 to Sunday 2021-01-31; GPP_obs = 1..28.
    obs = site_day("S1", "2021-01-04", "2021-01-31")
    obs.loc[7:9, "T_QC"] = 0.5              # week 2: T_QC mean (4 + 1.5) / 7 = 0.786 -> good
    obs.loc[14:16, "GPP_obs"] = np.nan      # week 3: 4 observed days; GPP_QC counts 0 there
    obs.loc[21:27, "VPD_QC"] = 0.6          # week 4: VPD_QC mean 0.6 -> not good
    pred_a = predictions(obs, "A", 1.0)
    pred_b = predictions(obs, "B", -1.0)
    pred_b.loc[1, "GPP_sim"] = np.nan       # B misses day 2 -> B's week 1 is NaN
    grid = gpp_grid(obs, pd.concat([pred_a, pred_b]))
    assert grid.methods == ("A", "B")
    # Daily good: not on the low-T days, the missing days nor in week 4.
    expect_daily = np.ones(28, dtype=bool)
    expect_daily[[7, 8, 9, 14, 15, 16]] = False
    expect_daily[21:] = False
    np.testing.assert_array_equal(grid.good[0], expect_daily)

    w = aggregate(grid, "weekly")
    assert list(w.periods) == list(pd.date_range("2021-01-04", periods=4, freq="7D"))
    np.testing.assert_array_equal(w.n_days[0], [7, 7, 4, 7])
    np.testing.assert_allclose(w.GPP_obs[0], [4.0, 11.0, 19.5, 25.0])
    np.testing.assert_allclose(w.GPP_sim[0, 0], [5.0, 12.0, 20.5, 26.0])
    assert np.isnan(w.GPP_sim[1, 0, 0])
    np.testing.assert_allclose(w.GPP_sim[1, 0, 1:], [10.0, 18.5, 24.0])
    np.testing.assert_array_equal(w.good[0], [True, True, False, False])
    t = QC_COLUMNS.index("T_QC")
    g = QC_COLUMNS.index("GPP_QC")
    assert w.qc_mean[t, 0, 1] == pytest.approx(5.5 / 7)
    assert w.qc_mean[g, 0, 2] == pytest.approx(4 / 7)
    np.testing.assert_array_equal(w.years, [2021])
    np.testing.assert_array_equal(w.year_index, [0, 0, 0, 0])


def test_monthly_and_yearly_use_calendar_days():
    tables = [
        site_day("S1", "2020-01-01", "2020-02-20"),    # Feb: 20/29 days -> not good
        site_day("S2", "2020-01-10", "2020-01-31"),    # Jan: 22/31 = 0.710 -> good
        site_day("S3", "2020-01-11", "2020-01-31"),    # Jan: 21/31 = 0.677 -> not good
        site_day("S4", "2020-07-01", "2021-12-31"),    # 2020: 184/366 = 0.503 -> good
        site_day("S5", "2020-07-03", "2021-12-31"),    # 2020: 182/366 = 0.497 -> not good
    ]
    obs = pd.concat(tables, ignore_index=True)
    grid = gpp_grid(obs, predictions(obs, "A"))
    m = aggregate(grid, "monthly")
    assert m.periods[0] == pd.Timestamp("2020-01-01")
    assert list(m.good[:3, 0]) == [True, True, False]
    assert list(m.good[:1, 1]) == [False]
    assert m.qc_mean[0, 0, 1] == pytest.approx(20 / 29)
    y = aggregate(grid, "yearly")
    assert list(y.periods) == [pd.Timestamp("2020-01-01"), pd.Timestamp("2021-01-01")]
    np.testing.assert_array_equal(y.good[3:], [[True, True], [False, True]])
    assert y.qc_mean[0, 3, 0] == pytest.approx(184 / 366)
    assert not y.good[0].any()  # 51 days of 2020
    np.testing.assert_array_equal(y.n_days[3], [184, 365])


def test_iso_weeks_belong_to_the_year_of_their_thursday():
    obs = site_day("S1", "2020-12-28", "2021-01-17")
    grid = gpp_grid(obs, predictions(obs, "A"))
    w = aggregate(grid, "weekly")
    assert list(w.periods) == list(pd.to_datetime(["2020-12-28", "2021-01-04", "2021-01-11"]))
    np.testing.assert_array_equal(w.years, [2020, 2021])
    np.testing.assert_array_equal(w.year_index, [0, 1, 1])  # Thu 2020-12-31 is in 2020
    np.testing.assert_array_equal(w.year_starts, [0, 1])
    # A grid starting on a Wednesday: the first week has 5 of 7 days (QC mean 0.714: good).
    obs = site_day("S1", "2021-01-06", "2021-01-31")
    w = aggregate(gpp_grid(obs, predictions(obs, "A")), "weekly")
    assert w.periods[0] == pd.Timestamp("2021-01-04")
    assert w.n_days[0, 0] == 5 and w.good[0, 0]
    obs = site_day("S1", "2021-01-07", "2021-01-31")  # 4 of 7 days: not good
    w = aggregate(gpp_grid(obs, predictions(obs, "A")), "weekly")
    assert not w.good[0, 0]


def test_daily_scale_is_the_grid():
    obs = site_day("S1", "2021-01-04", "2021-01-31")
    obs.loc[3, "W_QC"] = 0.8  # not above 0.8
    grid = gpp_grid(obs, predictions(obs, "A"))
    d = aggregate(grid, "daily")
    assert d.GPP_obs is grid.GPP_obs and d.GPP_sim is grid.GPP_sim
    assert not d.good[0, 3] and d.good[0, 4]
    assert d.threshold == DAILY_QC_MIN


def test_daily_good_matches_io_good_days():
    v = make_tables(3, 1, 0)
    grid = gpp_grid(v.site_day, predictions(v.site_day, "A"))
    assert grid.good.sum() == good_days(v.site_day).sum()
    s = pd.Categorical(v.site_day["site"], categories=list(grid.sites)).codes
    d = (v.site_day["date"] - grid.dates[0]).dt.days.to_numpy()
    np.testing.assert_array_equal(grid.good[s, d], good_days(v.site_day).to_numpy())


def _reference(obs: pd.DataFrame, pred: pd.DataFrame, scale: str) -> pd.DataFrame:
    """Independent pandas groupby version of the period means and QC rule."""
    df = obs.merge(pred[["site", "date", "GPP_sim"]], on=["site", "date"], how="left")
    df = df.copy()
    has = df["GPP_obs"].notna()
    df.loc[~has, "GPP_QC"] = 0.0
    if scale == "weekly":
        df["period"] = df["date"] - pd.to_timedelta(df["date"].dt.day_of_week, unit="D")
        length = pd.Series(7.0, index=df.index)
    elif scale == "monthly":
        df["period"] = df["date"].dt.to_period("M").dt.to_timestamp()
        length = df["date"].dt.days_in_month.astype(float)
    else:
        df["period"] = df["date"].dt.to_period("Y").dt.to_timestamp()
        length = np.where(df["date"].dt.is_leap_year, 366.0, 365.0)
    df["length"] = length
    obs_days = df[has]
    means = obs_days.groupby(["site", "period"]).agg(
        GPP_obs=("GPP_obs", "mean"),
        GPP_sim=("GPP_sim", lambda x: x.mean() if x.notna().all() else np.nan),
        n_days=("GPP_obs", "size"))
    qc = df.groupby(["site", "period"]).agg(**{c: (c, "sum") for c in QC_COLUMNS},
                                            length=("length", "first"))
    qc_mean = qc[list(QC_COLUMNS)].div(qc["length"], axis=0)
    out = means.join(qc_mean, how="left")
    out["good"] = (out[list(QC_COLUMNS)] > PERIOD_QC_MIN[scale]).all(axis=1)
    return out


@pytest.mark.parametrize("scale", ["weekly", "monthly", "yearly"])
def test_aggregate_matches_pandas_groupby(scale):
    v = make_tables(4, 2, 3)
    obs = v.site_day[["site", "date", "GPP_obs", *QC_COLUMNS]]
    obs = obs[~((obs["site"] == obs["site"].iloc[0]) & (obs["date"] < "2005-03-17"))]  # late start
    rng = np.random.default_rng(0)
    pred = predictions(obs, "A", 0.0)
    pred["GPP_sim"] += rng.normal(0, 1, len(pred))
    pred.loc[pred.index[rng.choice(len(pred), 40, replace=False)], "GPP_sim"] = np.nan
    grid = gpp_grid(obs, pred)
    got = aggregate(grid, scale).to_frame().set_index(["site", "period"])
    ref = _reference(obs, pred, scale)
    ref = ref.loc[got.index]
    assert len(got) == len(ref)
    np.testing.assert_allclose(got["GPP_obs"], ref["GPP_obs"], rtol=1e-12)
    np.testing.assert_allclose(got["GPP_sim"], ref["GPP_sim"], rtol=1e-12)
    assert got["GPP_sim"].isna().sum() > 0
    np.testing.assert_array_equal(got["n_days"], ref["n_days"])
    np.testing.assert_array_equal(got["good"], ref["good"])
    assert 0 < got["good"].sum() < len(got) or scale == "yearly"


def test_gpp_grid_contract():
    obs = pd.concat([site_day("S1", "2021-01-01", "2021-01-10"),
                     site_day("S2", "2021-01-05", "2021-01-20")], ignore_index=True)
    p1 = predictions(obs[obs["site"] == "S2"], "fold-2")  # covers S2 only
    p2 = predictions(obs, "all")
    extra = pd.DataFrame({"method": "all", "site": ["S1", "S1"],
                          "date": pd.to_datetime(["2021-01-15", "2022-01-01"]),
                          "GPP_sim": [1.0, 1.0]})  # outside S1's record
    pred = pd.concat([p2, extra, p1], ignore_index=True)
    pred["date"] = pred["date"].dt.strftime("%Y-%m-%d")  # string dates are parsed
    grid = gpp_grid(obs, pred, methods=["fold-2", "all"])
    assert grid.methods == ("fold-2", "all")
    assert grid.sites == ("S1", "S2")
    assert len(grid.dates) == 20 and grid.n_dropped == 2
    assert np.isnan(grid.GPP_sim[0, 0]).all()
    assert np.isfinite(grid.GPP_sim[0, 1, 4:]).all() and np.isnan(grid.GPP_sim[0, 1, :4]).all()
    assert np.isnan(grid.GPP_obs[0, 10:]).all()
    assert (grid.qc[:, 0, 10:] == 0).all()
    assert grid.select(["all"]).GPP_sim.shape == (1, 2, 20)
    sub = gpp_grid(obs, pred, sites=["S2"])
    assert sub.sites == ("S2",) and len(sub.dates) == 16

    with pytest.raises(ValueError, match="lacks column"):
        gpp_grid(obs.drop(columns="GPP_QC"), pred)
    with pytest.raises(ValueError, match="lacks column"):
        gpp_grid(obs, pred.rename(columns={"GPP_sim": "GPP"}))
    with pytest.raises(ValueError, match="duplicate"):
        gpp_grid(obs, pd.concat([p2, p2.iloc[:1]]))
    with pytest.raises(ValueError, match="duplicate"):
        gpp_grid(pd.concat([obs, obs.iloc[:1]]), p2)
    with pytest.raises(ValueError, match="S9"):
        gpp_grid(obs, pd.concat([p2, p2.iloc[:1].assign(site="S9")]))
    with pytest.raises(ValueError, match="nope"):
        gpp_grid(obs, p2, methods=["nope"])
    with pytest.raises(ValueError, match="date"):
        gpp_grid(obs, p2.assign(date="not a date"))
    with pytest.raises(ValueError, match="shape"):
        GPPGrid(("A",), grid.sites, grid.dates, grid.GPP_obs, grid.GPP_sim, grid.qc)
    with pytest.raises(ValueError, match="time scale"):
        aggregate(grid, "hourly")


def test_all_scales_and_to_frame():
    obs = site_day("S1", "2021-01-04", "2021-03-31")
    grid = gpp_grid(obs, pd.concat([predictions(obs, "A"), predictions(obs, "B", 2.0)]))
    scales = all_scales(grid)
    assert list(scales) == ["daily", "weekly", "monthly", "yearly"]
    frame = scales["monthly"].to_frame()
    assert list(frame.columns) == ["method", "site", "period", "year", "GPP_obs", "GPP_sim",
                                   "good", "n_days"]
    assert len(frame) == 2 * 3
    np.testing.assert_allclose(frame["GPP_sim"] - frame["GPP_obs"], [1, 1, 1, 2, 2, 2])
    assert len(scales["yearly"].to_frame(good_only=True)) == 0  # 87 days of 2021

"""Site features: WorldClim BIO definitions on hand-computed cases, aridity, VIF, climatology
and the z-scored design matrix (lue_spie.data.features)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lue_spie.data import features as F
from lue_spie.data import schema

# A constructed 12-month climate (January first) whose BIO values were computed by hand:
TAVG = np.array([0, 2, 5, 10, 15, 20, 25, 24, 18, 12, 6, 1], dtype=float)
TMAX = TAVG + 5.0
TMIN = TAVG - 5.0
PREC = np.array([50, 40, 30, 20, 10, 5, 0, 5, 20, 60, 80, 70], dtype=float)
# Quarter sums of PREC by starting month: JFM 120, FMA 90, MAM 60, AMJ 35, MJJ 15, JJA 10,
# JAS 25, ASO 85, SON 160, OND 210 (wettest), NDJ 200, DJF 160. Quarter means of TAVG: JJA 23
# (warmest), DJF 1 (coldest, wraps over the year end), OND 19/3, JJA also the driest quarter.
EXPECTED_BIO = {
    "BIO1": 138 / 12,                    # 11.5
    "BIO2": 10.0,
    "BIO3": 100 * 10 / 35,               # BIO2 / BIO7
    "BIO4": 100 * np.sqrt(873 / 11),     # sum of squared deviations 873, n - 1 = 11
    "BIO5": 30.0,                        # max TMAX (July)
    "BIO6": -5.0,                        # min TMIN (January)
    "BIO7": 35.0,
    "BIO8": 19 / 3,                      # mean TAVG of OND, the wettest quarter
    "BIO9": 23.0,                        # mean TAVG of JJA, the driest quarter
    "BIO10": 23.0,                       # warmest quarter JJA
    "BIO11": 1.0,                        # coldest quarter DJF
    "BIO12": 390.0,
    "BIO13": 80.0,
    "BIO14": 0.0,
    "BIO15": 100 * np.sqrt(8175 / 11) / 33.5,   # CV of PREC + 1 (mean 33.5)
    "BIO16": 210.0,
    "BIO17": 10.0,
    "BIO18": 10.0,                       # precipitation of JJA (warmest quarter)
    "BIO19": 160.0,                      # precipitation of DJF (coldest quarter)
}


def test_bioclim_hand_computed():
    bio = F.bioclim(TAVG, TMIN, TMAX, PREC)
    assert bio.shape == (19,)
    for i, name in enumerate(F.BIO_NAMES):
        assert bio[i] == pytest.approx(EXPECTED_BIO[name], abs=1e-9), name


def test_bioclim_vectorised_and_southern_shift():
    # Shifting the calendar by six months (a southern site) moves quarters but keeps the
    # quarter-based values; batching gives the same as one at a time.
    shift = lambda a: np.roll(a, 6)  # noqa: E731
    batch = F.bioclim(np.stack([TAVG, shift(TAVG)]), np.stack([TMIN, shift(TMIN)]),
                      np.stack([TMAX, shift(TMAX)]), np.stack([PREC, shift(PREC)]))
    assert batch.shape == (2, 19)
    np.testing.assert_allclose(batch[0], batch[1], atol=1e-12)
    np.testing.assert_allclose(batch[0], F.bioclim(TAVG, TMIN, TMAX, PREC))


def test_bioclim_rejects_wrong_month_axis():
    with pytest.raises(ValueError, match="12 months"):
        F.bioclim(TAVG[:11], TMIN, TMAX, PREC)


def test_aridity():
    ai = F.aridity(np.full(12, 50.0), np.full(12, 100.0))
    assert ai[0] == pytest.approx(0.5)     # AI1 = 600 / 1200
    assert ai[1] == pytest.approx(1200.0)  # AI2 = annual PET
    assert np.isnan(F.aridity(np.ones(12), np.zeros(12))[0])


def test_feature_classes_cover_schema():
    names = [c for cols in F.FEATURE_CLASSES.values() for c in cols]
    assert len(names) == len(set(names)) == len(F.FEATURE_NAMES) == 11 + 14 + 52
    assert set(F.CONTINUOUS_FEATURES) == set(schema.FEATURE_COLUMNS)
    assert F.FEATURE_CLASSES["BioClim"][-2:] == ("AI1", "AI2")
    assert len(F.FEATURE_CLASSES["Soil"]) == 17
    assert F.feature_class_of("PFT_ENF") == "PFT"
    assert F.feature_class_of("soil_clay") == "Soil"
    with pytest.raises(KeyError):
        F.feature_class_of("nope")


def _sites(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "site": [f"S{i:02d}" for i in range(n)],
        "PFT": [schema.PFTS[i % 11] for i in range(n)],
        "koeppen": [schema.KOEPPEN_TYPES[i % 14] for i in range(n)],
    })
    for j, c in enumerate(F.CONTINUOUS_FEATURES):
        df[c] = rng.normal(j, 1.0 + j % 3, n)
    return df


def test_feature_matrix_onehot_and_zscore_from_rows():
    sites = _sites(30)
    X, stats = F.feature_matrix(sites)
    assert list(X.columns) == list(F.FEATURE_NAMES)
    assert list(X.index) == list(sites["site"])
    assert X.loc["S03", "PFT_EBF"] == 1.0 and X.loc["S03", F.PFT_ONEHOT].sum() == 1.0
    assert X.loc["S03", "Clim_BSk"] == 1.0 and X.loc["S03", F.CLIM_ONEHOT].sum() == 1.0
    z = X[list(F.CONTINUOUS_FEATURES)].to_numpy()
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0, ddof=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(stats["mean"], sites[list(F.CONTINUOUS_FEATURES)].mean())


def test_feature_matrix_uses_given_stats_only():
    train, test = _sites(30, seed=1), _sites(5, seed=2)
    _, stats = F.feature_matrix(train)
    Xt, used = F.feature_matrix(test, continuous_stats=stats)
    pd.testing.assert_frame_equal(used, stats)
    c = "BIO12"
    expected = (test[c] - train[c].mean()) / train[c].std(ddof=1)
    np.testing.assert_allclose(Xt[c].to_numpy(), expected.to_numpy())
    # The held-out rows' own statistics would give something else.
    own, _ = F.feature_matrix(test)
    assert not np.allclose(own[c].to_numpy(), Xt[c].to_numpy())


def test_feature_matrix_nan_and_constant_rules():
    sites = _sites(6)
    sites.loc[2, "VIF3"] = np.nan
    sites["Pdep"] = 0.7                      # constant: std 0 -> 1, becomes x - mean = 0
    sites["soil_cn"] = np.nan                # all missing: mean NaN -> 0 after z-scoring
    X, stats = F.feature_matrix(sites)
    assert X.loc["S02", "VIF3"] == 0.0
    np.testing.assert_allclose(X["Pdep"], 0.0, atol=1e-12)
    assert (X["soil_cn"] == 0.0).all()
    assert np.isfinite(X.to_numpy()).all()
    stats.loc["BIO1", "std"] = 0.0
    X2, _ = F.feature_matrix(sites, continuous_stats=stats)
    np.testing.assert_allclose(X2["BIO1"], sites["BIO1"] - stats.loc["BIO1", "mean"])


def test_feature_matrix_errors():
    sites = _sites(3)
    sites.loc[0, "PFT"] = "TREE"
    with pytest.raises(ValueError, match="PFT.*TREE"):
        F.feature_matrix(sites)
    with pytest.raises(KeyError, match="soil_clay"):
        F.feature_matrix(_sites(3).drop(columns="soil_clay"))
    with pytest.raises(ValueError, match="continuous_stats"):
        F.feature_matrix(_sites(3), continuous_stats=pd.DataFrame({"mean": [0.0]}, index=["x"]))


def _series(years: range, value) -> pd.DataFrame:
    dates = pd.date_range(f"{years[0]}-01-01", f"{years[-1]}-12-31", freq="D")
    rows = []
    for site in ("A", "B"):
        doy = F.day_of_year_365(dates).astype(float)
        rows.append(pd.DataFrame({"site": site, "date": dates, **value(site, dates, doy)}))
    return pd.concat(rows, ignore_index=True)


def test_day_of_year_365():
    d = pd.to_datetime(["2004-02-28", "2004-02-29", "2004-03-01", "2004-12-31", "2005-12-31"])
    assert list(F.day_of_year_365(d)) == [59, 59, 60, 365, 365]


def test_climatology_recovers_cycle_and_log():
    def value(site, dates, doy):
        x = 10.0 + 5.0 * np.sin(2 * np.pi * doy / 365.0) + (site == "B")
        return {"T": x, "P": np.full(len(dates), 3.0)}

    sd = _series(range(2004, 2007), value)
    sd.loc[sd["date"].dt.day_of_year == 100, "T"] = np.nan   # a day of year never observed
    clim = F.climatology(sd, ["T", "P"], log=("P",))
    assert list(clim["T"].index) == ["A", "B"] and clim["T"].shape == (2, 365)
    doy = np.arange(1, 366)
    truth = 10.0 + 5.0 * np.sin(2 * np.pi * doy / 365.0)
    # Day 59 mixes 28 and 29 February; day 100 is interpolated from its neighbours.
    np.testing.assert_allclose(clim["T"].loc["A"].to_numpy(), truth, atol=0.05)
    np.testing.assert_allclose(clim["T"].loc["B"].to_numpy(), truth + 1.0, atol=0.05)
    np.testing.assert_allclose(clim["P"].to_numpy(), np.log1p(3.0))
    smooth = F.climatology(sd, ["T"], smooth_days=31)["T"].loc["A"].to_numpy()
    assert smooth.max() < truth.max() and abs(smooth.mean() - truth.mean()) < 1e-9
    with pytest.raises(ValueError, match="log"):
        F.climatology(sd, ["T"], log=("P",))


def test_vegetation_index_features_constructed():
    def value(site, dates, doy):
        years = dates.year.to_numpy() - 2004
        peak = 200.0 if site == "A" else 5.0      # B peaks around New Year
        ndvi = 0.5 + 0.3 * np.cos(2 * np.pi * (doy - peak) / 365.0) + 0.01 * years
        fapar = 0.4 + 0.3 * np.cos(2 * np.pi * (doy - peak) / 365.0)
        return {"NDVI": ndvi, "FAPAR": fapar}

    sd = _series(range(2004, 2008), value)
    vif = F.vegetation_index_features(sd)
    a = vif.loc["A"]
    assert a["VIF1"] == pytest.approx(0.515, abs=2e-3)      # 0.5 + mean trend offset 0.015
    assert a["VIF2"] == pytest.approx(0.815, abs=5e-3)      # smoothing lowers the peak a bit
    assert a["VIF3"] == pytest.approx(0.215, abs=5e-3)
    assert a["VIF4"] == pytest.approx(0.6, abs=1e-2)
    assert a["VIF6"] == pytest.approx(0.4, abs=2e-3)
    assert a["VIF7"] == pytest.approx(0.03, abs=2e-3)       # annual means 0.5 .. 0.53
    assert a["VIF8"] == pytest.approx(0.7, abs=5e-3)
    assert a["VIF9"] == pytest.approx(365 / 2, abs=4)       # half the year above half amplitude
    assert a["VIF10"] == pytest.approx(200, abs=2)
    assert a["VIF11"] == pytest.approx(0.01, abs=1e-3)
    b = vif.loc["B"]
    assert min(b["VIF10"], 366 - b["VIF10"]) < 10           # circular mean near New Year


def test_site_features_from_generated_data_match_sites_table():
    from lue_spie.data.virtual import make_tables

    site_day, sites, _, _ = make_tables(14, 1, seed=3)
    recomputed = F.site_features_from_site_day(site_day)
    cols = list(F.BIO_NAMES + F.ARIDITY_NAMES + F.VIF_NAMES)
    np.testing.assert_allclose(recomputed[cols].to_numpy(),
                               sites.set_index("site").loc[recomputed.index, cols].to_numpy())

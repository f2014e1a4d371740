"""Virtual FLUXNET (lue_spie.data.virtual): determinism, schema, realism and the known truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from lue_spie.data import schema
from lue_spie.data.features import DAYS_IN_MONTH, monthly_climate
from lue_spie.data.virtual import (
    COVERAGE,
    GENERATOR_ID,
    KOEPPEN_BY_PFT,
    NOISE,
    TRUTH,
    generate,
    make_tables,
    truth_parameters,
)
from lue_spie.model import FORCING_KEYS, simulate
from lue_spie.params import LOWER, PARAMETERS, UPPER, lag_mask


@pytest.fixture(scope="module")
def vf():
    return make_tables(24, 2, seed=0)


@pytest.fixture(scope="module")
def vf_many():
    """More sites, one year: for statistics over sites (hemispheres, climate consistency)."""
    return make_tables(60, 1, seed=5)


def _grid(site_day: pd.DataFrame, column: str, n_sites: int) -> np.ndarray:
    return site_day[column].to_numpy().reshape(n_sites, -1)


def _simulate_truth(vf) -> np.ndarray:
    n = len(vf.sites)
    forcing = {k: torch.tensor(_grid(vf.site_day, k, n)) for k in FORCING_KEYS}
    params = torch.tensor(vf.truth[list(PARAMETERS)].to_numpy())
    return simulate(forcing, params)["GPP"].numpy()


# ------------------------------------------------------------------ determinism and schema
def test_deterministic_tables(vf):
    again = make_tables(24, 2, seed=0)
    pd.testing.assert_frame_equal(vf.site_day, again.site_day)
    pd.testing.assert_frame_equal(vf.sites, again.sites)
    pd.testing.assert_frame_equal(vf.truth, again.truth)
    assert vf.truth_meta == again.truth_meta
    other = make_tables(24, 2, seed=1)
    assert not np.allclose(vf.site_day["T"].to_numpy(), other.site_day["T"].to_numpy())
    assert not vf.truth[list(PARAMETERS)].equals(other.truth[list(PARAMETERS)])


def test_generate_writes_byte_identical_files(tmp_path):
    a = generate(14, 1, seed=2, out=tmp_path / "a")
    b = generate(14, 1, seed=2, out=tmp_path / "b")
    for name in ("site_day.parquet", "sites.parquet", "truth.parquet", "truth.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for name in ("site_day", "sites", "truth"):
        assert (a / f"{name}.provenance.json").exists()
    from lue_spie.data.io import load_dataset

    ds = load_dataset(a)
    assert len(ds.sites) == 14 and ds.truth is not None and ds.truth_meta["seed"] == 2


def test_schema_valid_and_complete(vf):
    schema.validate_site_day(vf.site_day)
    schema.validate_sites(vf.sites)
    assert list(vf.site_day.columns) == list(schema.SITE_DAY_COLUMN_NAMES)
    assert list(vf.sites.columns) == list(schema.SITES_COLUMN_NAMES)
    assert len(vf.site_day) == 24 * 730                       # 2005-2006
    forcing = vf.site_day[list(schema.FORCING_COLUMNS + schema.EXTRA_COLUMNS)]
    assert not forcing.isna().any().any()                     # gap-filled like FLUXNET _F
    assert not vf.sites[list(schema.FEATURE_COLUMNS)].isna().any().any()
    assert (vf.sites["source"] == "virtual").all()
    assert list(vf.truth.columns) == ["site", *PARAMETERS]
    assert list(vf.truth["site"]) == list(vf.sites["site"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_sites"):
        make_tables(0, 1)
    with pytest.raises(ValueError, match="n_years"):
        make_tables(5, 0)
    with pytest.raises(ValueError, match="seed"):
        make_tables(5, 1, seed=-1)


# ------------------------------------------------------------------ sites
@pytest.mark.parametrize("n_sites", [14, 24])
def test_coverage_of_pfts_and_koeppen(n_sites, vf):
    sites = vf.sites if n_sites == 24 else make_tables(n_sites, 1, seed=7).sites
    assert set(sites["PFT"]) == set(schema.PFTS)
    assert set(sites["koeppen"]) == set(schema.KOEPPEN_TYPES)


def test_coverage_below_14():
    sites = make_tables(11, 1, seed=0).sites
    assert set(sites["PFT"]) == set(schema.PFTS)
    assert len(make_tables(3, 1, seed=0).sites) == 3


def test_pairs_compatible_and_latitudes(vf_many):
    s = vf_many.sites
    for k, p in zip(s["koeppen"], s["PFT"], strict=True):
        assert k in KOEPPEN_BY_PFT[p], (k, p)
    assert all(k in KOEPPEN_BY_PFT[p] for k, p in COVERAGE)
    alat = s["lat"].abs()
    main = s["koeppen_main"]
    assert (alat[main == "A"] < 20).all()
    assert ((alat[main == "B"] >= 15) & (alat[main == "B"] <= 48)).all()
    assert ((alat[main == "C"] >= 24) & (alat[main == "C"] <= 56)).all()
    assert (s.loc[main == "D", "lat"] >= 40).all()
    e = s[main == "E"]
    enf = e["PFT"] == "ENF"
    # Arctic tundra, alpine tundra (> 3000 m) or, for evergreen needleleaf forest, subalpine
    # forest (1400-2200 m at 44-50 degrees, like CH-Dav) rather than arctic.
    assert ((e.loc[~enf, "lat"] >= 55) | (e.loc[~enf, "elevation"] > 3000)).all()
    assert e.loc[enf, "lat"].between(44, 50).all() and e.loc[enf, "elevation"].between(
        1400, 2200).all()
    assert enf.any()
    assert (s["lat"] < 0).any()
    assert set(s.loc[s["lat"] < 0, "koeppen_main"]) <= {"A", "B", "C"}
    # FLUXNET-like shares: ENF and GRA the commonest classes.
    counts = s["PFT"].value_counts()
    assert counts.index[0] == "ENF" and counts["GRA"] >= counts["DBF"]


def test_climate_consistent_with_koeppen(vf_many):
    """Main group recomputed from the generated climate (Peel et al. 2007 rules) mostly agrees."""
    s = vf_many.sites.set_index("site")
    m = monthly_climate(vf_many.site_day, ("T", "P"))
    T = m["T"].to_numpy()
    P = m["P"].to_numpy() * DAYS_IN_MONTH
    south = (s.loc[m["T"].index, "lat"] < 0).to_numpy()[:, None]
    months = np.arange(1, 13)
    summer = np.where(south, np.isin(months, [10, 11, 12, 1, 2, 3]),
                      np.isin(months, [4, 5, 6, 7, 8, 9]))
    mat, map_ = T.mean(1), P.sum(1)
    ps = (P * summer).sum(1)
    pth = np.where(ps >= 0.7 * map_, 2 * mat + 28,
                   np.where(map_ - ps >= 0.7 * map_, 2 * mat, 2 * mat + 14))
    group = np.where(T.max(1) < 10, "E", np.where(map_ < 10 * pth, "B", np.where(
        T.min(1) >= 18, "A", np.where(T.min(1) > 0, "C", "D"))))
    agree = np.mean(group == s.loc[m["T"].index, "koeppen_main"].to_numpy())
    assert agree >= 0.8


# ------------------------------------------------------------------ forcing realism
def test_ranges_of_forcing(vf):
    sd = vf.site_day
    for c in ("CI", "W", "FAPAR"):
        assert sd[c].between(0.0, 1.0).all(), c
    lit = sd["SW_IN_POT"] > 0
    np.testing.assert_allclose(sd.loc[lit, "CI"],
                               np.clip(1 - sd.loc[lit, "SW_IN"] / sd.loc[lit, "SW_IN_POT"], 0, 1))
    assert (sd.loc[~lit, "CI"] == 1.0).all()                 # polar night
    np.testing.assert_allclose(sd["PAR"], 0.48 * 0.0864 * sd["SW_IN"])
    assert (sd["TMIN"] <= sd["T"]).all() and (sd["T"] <= sd["TMAX"]).all()
    assert (sd["VPD"] >= 0).all() and (sd["P"] >= 0).all()
    assert sd["W"].std() > 0.05 and sd["W"].min() < 0.3 and sd["W"].max() > 0.95
    dry_days = (sd["P"] == 0).mean()
    assert 0.3 < dry_days < 0.9


def test_vpd_from_the_temperature_cycle_and_a_dew_point_below_tmin(vf):
    # VPD = mean es over the day's TMIN-TMAX cycle - ea, with the dew point at or below TMIN.
    from lue_spie.data.virtual.weather import _es_daily_cycle

    sd = vf.site_day
    ea = _es_daily_cycle(sd["T"].to_numpy(), (sd["TMAX"] - sd["TMIN"]).to_numpy()) \
        - sd["VPD"].to_numpy()
    assert (ea > 0).all()
    x = np.log(ea / 610.94)
    dew_point = 243.04 * x / (17.625 - x)                    # Magnus inverted
    assert (dew_point <= sd["TMIN"].to_numpy() + 1e-9).all()
    # Not a function of the mean temperature alone: at equal T, VPD spreads widely.
    warm = sd[sd["T"].between(15.0, 16.0)]
    assert warm["VPD"].quantile(0.9) > 2.0 * warm["VPD"].quantile(0.1)


def test_slow_weather_and_episodes():
    vf = make_tables(24, 4, seed=3)
    sd = vf.site_day
    from lue_spie.data import realism

    code, ids = realism._site_codes(sd, vf.sites)
    day = realism.calendar_day(sd["date"])
    x = sd["T"].to_numpy()
    anom = (x - realism._smoothed_cycle(code, day, x, len(ids))[code, day]).reshape(24, -1)
    # A persistent component: synoptic AR(1) 0.7 alone would leave 0.7**10 = 0.03 at 10 days.
    lag10 = np.median([np.corrcoef(a[10:], a[:-10])[0, 1] for a in anom])
    assert lag10 > 0.12
    # Year-to-year anomalies of the annual mean temperature.
    years = sd["date"].dt.year.to_numpy().reshape(24, -1)[0]
    annual = pd.DataFrame(anom.T).groupby(years).mean()
    assert annual.std().median() > 0.4
    assert 0.005 < vf.truth_meta["world"]["episode_days_share"] < 0.1


def test_subalpine_evergreen_forest_and_crops():
    vf = make_tables(120, 2, seed=1)
    s = vf.sites.set_index("site")
    world = vf.truth_meta["world"]
    mean_T = vf.site_day.groupby("site")["T"].mean()
    enf_e = s.index[(s["PFT"] == "ENF") & (s["koeppen_main"] == "E")]
    assert len(enf_e) and set(enf_e) == set(world["subalpine_sites"])
    assert mean_T[enf_e].between(-1.0, 7.0).all()                  # not arctic
    c4 = world["c4_sites"]
    assert c4 and (s.loc[c4, "PFT"] == "CRO").all()
    assert set(world["irrigated_sites"]) <= set(s.index[s["PFT"] == "CRO"])
    peak = vf.site_day.groupby("site")["GPP_obs"].quantile(0.98)
    c3 = s.index[(s["PFT"] == "CRO") & ~s.index.isin(c4)]
    assert peak[c4].median() > peak[c3].median() + 2.0              # C4 peaks stand out
    assert vf.truth_meta["parameters"]["eps_max"]["c4_site_term"]["shift"] > 0


def test_co2_rises_about_2ppm_per_year():
    sd = make_tables(14, 4, seed=0).site_day
    annual = sd.groupby(sd["date"].dt.year)["CO2"].mean()
    steps = np.diff(annual.to_numpy())
    assert annual.iloc[0] == pytest.approx(379.5, abs=2.0)
    assert (steps > 1.5).all() and (steps < 2.7).all()


def _peak_month(site_day: pd.DataFrame, column: str) -> pd.Series:
    m = monthly_climate(site_day, (column,))[column]
    return pd.Series(np.argmax(m.to_numpy(), axis=1) + 1, index=m.index)


def test_seasonal_phase_by_hemisphere(vf_many):
    s = vf_many.sites.set_index("site")
    south = s["lat"] < 0
    assert south.sum() >= 3
    peak_T = _peak_month(vf_many.site_day, "T")
    extra_tropical = s["koeppen_main"] != "A"                # tropical cycles are tiny
    # One year of weather: a heat episode may move a site's warmest month to September.
    assert peak_T[~south & extra_tropical].isin([6, 7, 8]).mean() >= 0.9
    assert peak_T[~south & extra_tropical].isin([6, 7, 8, 9]).all()
    assert peak_T[south & extra_tropical].isin([12, 1, 2, 3]).all()
    assert (south & extra_tropical).sum() >= 2
    # GPP of temperature-limited (not summer-dry, not tropical/arid) sites peaks in summer.
    seasonal = s["koeppen"].isin(["Cfa", "Cfb", "Cwa", "Dfb", "Dfc", "ET"])
    peak_gpp = _peak_month(vf_many.site_day, "GPP_obs")
    assert peak_gpp[seasonal & ~south].isin([5, 6, 7, 8, 9]).mean() >= 0.9
    assert peak_gpp[seasonal & south].isin([11, 12, 1, 2, 3]).mean() >= 0.9 or not (
        seasonal & south).any()
    # Summer-dry Mediterranean sites are greener in spring than in late summer.
    med = s.index[s["koeppen"].isin(["Csa"]) & ~south]
    if len(med):
        m = monthly_climate(vf_many.site_day, ("FAPAR",))["FAPAR"].loc[med]
        assert (m[4] > m[8]).mean() >= 0.7


def test_gpp_plausible_by_pft():
    site_day, sites, _, _ = make_tables(48, 2, seed=11)
    mean = site_day.groupby("site")["GPP_obs"].mean()
    by_pft = mean.groupby(sites.set_index("site")["PFT"]).mean()
    # Hyper-arid sites (aridity index < 0.05, e.g. 40 mm of rain in a dry pair of years) may
    # average below 0.1 gC m-2 d-1, but not to nothing.
    hyper_arid = (sites.set_index("site")["AI1"] < 0.05).reindex(mean.index)
    assert mean[~hyper_arid].between(0.1, 10.0).all()
    assert mean[hyper_arid].between(0.03, 1.0).all()
    plausible = {"EBF": (2.5, 9.0), "DBF": (2.0, 6.0), "ENF": (1.5, 5.0), "MF": (2.0, 5.5),
                 "CRO": (1.5, 6.0), "GRA": (0.8, 4.5), "WET": (0.8, 4.5), "SAV": (1.0, 4.5),
                 "WSA": (0.8, 4.5), "CSH": (0.5, 3.5), "OSH": (0.1, 2.0)}
    for pft, (lo, hi) in plausible.items():
        assert lo <= by_pft[pft] <= hi, (pft, by_pft[pft])
    # Daily values: a realistic upper tail, negatives only from noise at low GPP.
    assert site_day["GPP_obs"].quantile(0.999) < 25.0
    assert (site_day["GPP_obs"] < -1.0).mean() < 0.01


def test_good_days_fraction_and_qc(vf):
    sd = vf.site_day
    qc = sd[list(schema.QC_COLUMNS)]
    good = (qc > 0.8).all(axis=1) & sd["GPP_obs"].notna()
    assert 0.85 <= good.mean() <= 0.95
    assert 0.005 < sd["GPP_obs"].isna().mean() < 0.06
    np.testing.assert_allclose(qc.to_numpy() * 48, np.round(qc.to_numpy() * 48))  # half-hours
    assert (sd.loc[sd["GPP_obs"].isna(), "GPP_QC"] == 0).all()
    # Missing GPP comes in blocks: runs longer than one day exist.
    miss = sd["GPP_obs"].isna().to_numpy()
    assert (miss[1:] & miss[:-1]).sum() > 0.3 * miss.sum()


# ------------------------------------------------------------------ features
def test_soil_and_deposition_correlations(vf_many):
    s = vf_many.sites
    np.testing.assert_allclose(s[["soil_sand", "soil_silt", "soil_clay"]].sum(axis=1), 100.0)
    np.testing.assert_allclose(s["soil_cn"], s["soil_soc"] / s["soil_nitrogen"])
    log_ai = np.log(s["AI1"])
    assert np.corrcoef(log_ai, s["soil_sand"])[0, 1] < -0.3      # drier: sandier
    assert np.corrcoef(log_ai, s["soil_phh2o"])[0, 1] < -0.5     # drier: more alkaline
    cro = s["PFT"] == "CRO"
    assert s.loc[cro, "NdepNHX"].median() > s.loc[s["koeppen_main"] == "E", "NdepNHX"].median()
    assert s["whc"].between(15, 600).all()


def test_bioclim_features_follow_the_forcing(vf):
    sd, s = vf.site_day, vf.sites.set_index("site")
    mean_T = sd.groupby("site")["T"].mean()
    np.testing.assert_allclose(s.loc[mean_T.index, "BIO1"], mean_T, atol=0.3)
    annual_P = sd.groupby("site")["P"].mean() * 365.25
    # BIO12 sums monthly totals (mean daily P x days in month): equal up to the weighting.
    np.testing.assert_allclose(s.loc[annual_P.index, "BIO12"], annual_P, rtol=3e-3)
    assert (s["AI1"] > 0).all()


# ------------------------------------------------------------------ truth
def test_truth_inside_bounds_with_lag_mask(vf):
    theta = vf.truth[list(PARAMETERS)].to_numpy()
    assert (theta >= LOWER).all() and (theta <= UPPER).all()
    mask = lag_mask(list(vf.sites["koeppen"]))
    assert (theta[~mask] == 0).all()
    assert (theta[mask[:, PARAMETERS.index("alpha_T")], PARAMETERS.index("alpha_T")] > 0).all()
    for j, name in enumerate(PARAMETERS):
        free = theta[mask[:, j], j]
        assert (free >= TRUTH[name].lo).all() and (free <= TRUTH[name].hi).all(), name
        assert np.std(free) > 0 or len(free) < 2, name       # parameters vary over sites


def test_truth_is_the_documented_function(vf):
    # Without the site term the truth is a deterministic function of PFT and features; the
    # site term only adds a modest spread.
    explained = truth_parameters(vf.sites)
    theta = vf.truth[list(PARAMETERS)].to_numpy()
    mask = lag_mask(list(vf.sites["koeppen"]))
    for j, name in enumerate(PARAMETERS):
        x, y = explained[mask[:, j], j], theta[mask[:, j], j]
        if len(x) > 4 and np.std(x) > 0:
            assert np.corrcoef(x, y)[0, 1] > 0.6, name


def test_truth_meta(vf):
    meta = vf.truth_meta
    json.dumps(meta)
    assert meta["seed"] == 0 and meta["n_sites"] == 24 and meta["n_years"] == 2
    assert meta["generator_version"]
    # The id by which the twin recognises a virtual FLUXNET keeps its first value, so folders
    # written before the generator moved to lue_spie.data.virtual stay valid.
    assert meta["generator"] == GENERATOR_ID == "lue_spie.data.synthetic"
    assert meta["structural_error"]["enabled"] is False
    assert meta["noise"]["a"] == NOISE["a"]
    for name in PARAMETERS:
        p = meta["parameters"][name]
        assert p["drivers"][0] == "PFT" and len(p["drivers"]) >= 2
        assert name in p["formula"] and p["site_sd"] > 0
        for feature in p["drivers"][1:]:
            assert feature in schema.FEATURE_COLUMNS


def test_truth_and_model_reproduce_gpp_obs(vf):
    gpp = _simulate_truth(vf)
    obs = _grid(vf.site_day, "GPP_obs", len(vf.sites))
    ok = np.isfinite(obs)
    g = np.clip(gpp, 0, None)
    # Documented noise model: multiplicative persistent + yearly error and white noise.
    sd = np.sqrt((NOISE["a"] + NOISE["b"] * g) ** 2
                 + (NOISE["persistent_sd"] ** 2 + NOISE["yearly_sd"] ** 2) * g**2)
    z = ((obs - gpp) / sd)[ok]
    assert abs(z.mean()) < 0.05
    assert z.std() == pytest.approx(1.0, abs=0.05)
    # The multiplicative error is persistent: relative residuals are autocorrelated from one
    # day to the next (white noise alone would give 0).
    rel = np.where(ok & (gpp > 2.0), (obs - gpp) / np.maximum(gpp, 2.0), np.nan)
    a, b = rel[:, 1:].ravel(), rel[:, :-1].ravel()
    both = np.isfinite(a) & np.isfinite(b)
    assert np.corrcoef(a[both], b[both])[0, 1] > 0.15


def test_structural_error_changes_gpp():
    vf = make_tables(24, 2, seed=4, structural_error=True)
    assert vf.truth_meta["structural_error"]["enabled"] is True
    plain = make_tables(24, 2, seed=4)
    pd.testing.assert_frame_equal(plain.truth, vf.truth)      # same truth, different GPP
    pd.testing.assert_frame_equal(plain.site_day.drop(columns="GPP_obs"),
                                  vf.site_day.drop(columns="GPP_obs"))
    # Same noise draws, so the ratio of the two GPP_obs is the structural factor (blurred
    # by the additive noise): its heat/drought triggers fire at most sites, on weeks of days.
    a = _grid(plain.site_day, "GPP_obs", 24)
    b = _grid(vf.site_day, "GPP_obs", 24)
    ok = np.isfinite(a) & (a > 2.0)
    ratio = np.where(ok, b / np.where(ok, a, 1.0), np.nan)
    assert np.nanmean(ratio < 0.9) > 0.08
    assert (np.nanmean(ratio < 0.8, axis=1) > 0.01).mean() >= 0.6


def test_truth_obeys_the_ideal_conditions_constraint(vf):
    # The virtual world satisfies the calibration's ecological constraint (every sensitivity
    # function reaches 1 within 1e-5), so the cost does not pull calibration off the truth.
    from lue_spie.cost import ideal_constraint

    theta = torch.tensor(vf.truth[list(PARAMETERS)].to_numpy())
    terms = ideal_constraint(theta, return_terms=True)
    assert float(terms["C_ideal"].max()) <= 1.0001e-5
    assert float(terms["fW"].max()) <= 1.0001e-5


def test_output_path_that_is_a_file_fails_early(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    calls = []
    import lue_spie.data.virtual.generator as synthetic

    monkeypatch.setattr(synthetic, "make_tables", lambda *a, **k: calls.append(1))
    with pytest.raises(ValueError, match="afile: exists and is a file"):
        generate(3, 1, out=a_file)
    with pytest.raises(ValueError, match="a parent of"):
        generate(3, 1, out=a_file / "sub")
    assert not calls                                      # failed before generating
    from lue_spie.cli import main

    assert main(["data", "synth", "--sites", "3", "--years", "1", "--out", str(a_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "exists and is a file" in err and "Traceback" not in err

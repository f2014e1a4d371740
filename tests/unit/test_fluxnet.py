"""Real FLUXNET reader: conversions, decisions, malformed input, and the real sites."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lue_spie.data import fluxnet, io, schema

ROOT = Path(__file__).resolve().parents[2]
# ../shared/fluxnet beside the repository; LUE_SPIE_SHARED_FLUXNET points elsewhere (e.g. from
# a git worktree that does not sit beside it).
SHARED_FLUXNET = Path(os.environ.get("LUE_SPIE_SHARED_FLUXNET",
                                     ROOT.parent / "shared" / "fluxnet"))
needs_shared = pytest.mark.skipif(not SHARED_FLUXNET.is_dir(), reason="../shared/fluxnet absent")

SITE = "DE-Tst"
FLUX_NAME = f"FLX_{SITE}_FLUXNET2015_FULLSET_DD_2008-2009_1-4.csv"


def flux_frame(start="2008-01-01", n_days=731, seed=0, swc=True, co2_gap=True) -> pd.DataFrame:
    """A plausible FULLSET_DD table in FLUXNET units (strings as in a CSV)."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=n_days)
    season = np.sin(2 * np.pi * (dates.day_of_year.to_numpy() - 110) / 365)
    df = pd.DataFrame({"TIMESTAMP": dates.strftime("%Y%m%d")})
    df["TA_F"] = 9 + 10 * season + rng.normal(0, 2, n_days)
    df["SW_IN_F"] = np.clip(150 + 110 * season + rng.normal(0, 30, n_days), 5, None)
    df["LW_IN_F"] = 300 + 30 * season
    df["VPD_F"] = np.clip(4 + 4 * season + rng.normal(0, 1, n_days), 0, None)   # hPa
    df["PA_F"] = 95.0
    df["P_F"] = rng.exponential(2.5, n_days)
    df["CO2_F_MDS"] = 390 + rng.normal(0, 3, n_days)
    if co2_gap:
        df.loc[:99, "CO2_F_MDS"] = -9999
    df["PPFD_IN"] = df["SW_IN_F"] * 2.1
    df.loc[200:209, "PPFD_IN"] = -9999
    df["GPP_NT_VUT_REF"] = np.clip(5 + 5 * season + rng.normal(0, 1, n_days), -1, None)
    df["NEE_VUT_REF_QC"] = rng.uniform(0.5, 1, n_days)
    if swc:
        df["SWC_F_MDS_1"] = 25 + 5 * np.cos(2 * np.pi * dates.day_of_year.to_numpy() / 365)
        df["SWC_F_MDS_1_QC"] = 1.0
    return df


def write_inputs(tmp_path, flux=None, fapar=None, sites=None, name=FLUX_NAME):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    flux = flux_frame() if flux is None else flux
    flux.to_csv(src / name, index=False)
    if fapar is None:
        dates = pd.date_range("2008-03-01", "2009-12-31")
        fapar = pd.DataFrame({"SITE_ID": SITE, "date": dates.strftime("%Y-%m-%d"),
                              "FAPAR": 0.5 + 0.3 * np.sin(np.arange(len(dates)) / 58.0)})
        fapar["FAPAR_MODIS_obs"] = np.where(np.arange(len(dates)) % 4 == 0, fapar["FAPAR"], np.nan)
    fapar_path = tmp_path / "fapar.csv"
    fapar.to_csv(fapar_path, index=False)
    if sites is None:
        sites = pd.DataFrame({"SITE_ID": [SITE], "lon": [10.0], "lat": [50.0], "elv": [500.0],
                              "classid": ["ENF"], "koeppen_code": ["Dfb"], "whc": [150.0]})
    sites_path = tmp_path / "sites.csv"
    sites.to_csv(sites_path, index=False)
    return src, fapar_path, sites_path


def read(tmp_path, **kw):
    src, fapar, sites = write_inputs(tmp_path, **{k: kw.pop(k) for k in list(kw)
                                                  if k in ("flux", "fapar", "sites", "name")})
    return fluxnet.read_fluxnet_dataset(src, fapar, sites, **kw)


# --------------------------------------------------------------------------------------------
# Conversions and decisions
# --------------------------------------------------------------------------------------------

def test_conversions_on_a_small_file(tmp_path):
    flux = flux_frame()
    t = read(tmp_path, flux=flux)
    sd = t.site_day
    schema.validate_site_day(sd)
    schema.validate_sites(t.sites)
    # Intersection with the FAPAR coverage (2008-03-01 .. 2009-12-31).
    assert sd["date"].min() == pd.Timestamp("2008-03-01") and len(sd) == 671
    raw = flux.set_index(pd.to_datetime(flux["TIMESTAMP"], format="%Y%m%d")).loc[sd["date"]]
    np.testing.assert_allclose(sd["VPD"], raw["VPD_F"].to_numpy() * 100)
    np.testing.assert_allclose(sd["T"], raw["TA_F"].to_numpy())
    np.testing.assert_allclose(sd["PAR"], 0.48 * raw["SW_IN_F"].to_numpy() * 0.0864)
    np.testing.assert_allclose(sd["GPP_obs"], raw["GPP_NT_VUT_REF"].to_numpy())
    np.testing.assert_allclose(sd["GPP_QC"], raw["NEE_VUT_REF_QC"].to_numpy())
    pot = fluxnet.solar.sw_in_pot(50.0, sd["date"].dt.day_of_year.to_numpy())
    np.testing.assert_allclose(sd["SW_IN_POT"], pot)
    np.testing.assert_allclose(sd["CI"], np.clip(1 - sd["SW_IN"] / pot, 0, 1))
    # PPFD: measured where present, estimated from SW_IN on the 10 missing days.
    est = sd["date"].isin(pd.date_range("2008-07-19", periods=10))
    np.testing.assert_allclose(sd.loc[est, "PPFD"], sd.loc[est, "SW_IN"] * 0.48 * 4.57)
    # FAPAR QC: 1 on retrieval days, 0.85 on interpolated days.
    assert set(np.unique(sd["FAPAR_QC"])) == {fluxnet.FAPAR_INTERPOLATED_QC, 1.0}
    # NDVI from FAPAR (Myneni & Williams 1994).
    np.testing.assert_allclose(sd["NDVI"], (sd["FAPAR"] + 0.1426) / 1.1638)
    assert sd["TMIN"].isna().all()
    st = t.sites.iloc[0]
    assert (st["PFT"], st["koeppen"], st["koeppen_main"], st["source"]) == ("ENF", "Dfb", "D",
                                                                           "fluxnet")
    assert (st["first_year"], st["last_year"]) == (2008, 2009)
    # Without a feature table: BioClim/aridity/VIF from the record, soil and deposition NaN.
    assert st["BIO1"] == pytest.approx(sd["T"].mean(), abs=1.0) and np.isnan(st["soil_clay"])
    assert np.isnan(st["NdepNHX"])
    notes = " | ".join(t.notes[SITE])
    assert "TA_F_QC absent" in notes and "SW_IN_POT absent" in notes


def test_co2_filled_from_the_annual_record(tmp_path):
    flux = flux_frame(start="2007-12-01", n_days=500)
    dates = pd.date_range("2007-12-01", "2008-12-31")
    fapar = pd.DataFrame({"SITE_ID": SITE, "date": dates.strftime("%Y-%m-%d"), "FAPAR": 0.5})
    with pytest.warns(fluxnet.TruncatedFileWarning, match="start on 2007-12-01 and stop on "
                                                          "2009-04-13"):
        t = read(tmp_path, flux=flux, fapar=fapar,
                 name=FLUX_NAME.replace("2008-2009", "2007-2009"))
    sd = t.site_day
    filled = sd["date"] < pd.Timestamp("2008-03-10")       # the first 100 days had -9999
    assert filled.sum() == 100
    assert np.allclose(sd.loc[filled & (sd.date.dt.year == 2007), "CO2"], 384.02)
    assert np.allclose(sd.loc[filled & (sd.date.dt.year == 2008), "CO2"], 385.83)
    assert (sd.loc[filled, "CO2_QC"] == fluxnet.CO2_FILLED_QC).all()
    assert (sd.loc[~filled, "CO2_QC"] == 1.0).all()
    assert (sd["FAPAR_QC"] == 1.0).all()       # no FAPAR_MODIS_obs column: all retrievals


def test_annual_co2_table():
    np.testing.assert_allclose(fluxnet.annual_co2([1990, 2010, 2024]), [354.45, 390.10, 424.61])
    assert np.all(np.diff(fluxnet.annual_co2(range(1980, 2026))) > 0)
    with pytest.raises(ValueError, match="year 1975 outside"):
        fluxnet.annual_co2([1975])


def test_w_from_swc_scaled_by_site_range(tmp_path):
    t = read(tmp_path)
    sd = t.site_day
    assert sd["W"].between(0, 1).all() and sd["W"].max() > 0.95 and sd["W"].min() < 0.05
    assert (sd["W_QC"] == 1.0).all()
    assert any("W from SWC_F_MDS_1" in n for n in t.notes[SITE])


def test_w_from_bucket_when_swc_missing(tmp_path):
    t = read(tmp_path, flux=flux_frame(swc=False))
    sd = t.site_day
    assert sd["W"].between(0, 1).all() and sd["W"].std() > 0.01
    assert (sd["W_QC"] == fluxnet.W_BUCKET_QC).all()
    assert any("soil-water bucket" in n and "Priestley-Taylor" in n for n in t.notes[SITE])


def test_sparse_swc_switches_the_whole_site_to_the_bucket(tmp_path):
    flux = flux_frame()
    flux.loc[:400, "SWC_F_MDS_1"] = -9999
    t = read(tmp_path, flux=flux)
    assert (t.site_day["W_QC"] == fluxnet.W_BUCKET_QC).all()


def test_qc_columns_used_when_present(tmp_path):
    flux = flux_frame()
    flux["TA_F_QC"] = 0.5
    flux["VPD_F_QC"] = 0.9
    t = read(tmp_path, flux=flux)
    assert (t.site_day["T_QC"] == 0.5).all() and (t.site_day["VPD_QC"] == 0.9).all()
    assert not any("TA_F_QC absent" in n for n in t.notes[SITE])
    assert not io.good_days(t.site_day).any()      # T_QC 0.5 < 0.8 everywhere


def test_years_and_site_ids(tmp_path):
    t = read(tmp_path, years=[2009], site_ids=[SITE])
    assert (t.site_day["date"].dt.year == 2009).all() and len(t.site_day) == 365
    assert (t.sites["first_year"].iloc[0], t.sites["last_year"].iloc[0]) == (2009, 2009)
    with pytest.raises(ValueError, match=r"no FULLSET_DD file for site\(s\) \['XX-Non'\]"):
        read(tmp_path, site_ids=["XX-Non"])
    with pytest.raises(ValueError, match=r"no days in years \[2015\]"):
        read(tmp_path, years=[2015])


def test_features_and_ndvi_tables(tmp_path):
    src, fapar, sites = write_inputs(tmp_path)
    feats = tmp_path / "features.csv"
    pd.DataFrame({"SITE_ID": [SITE], "BIO1": [8.5], "soil_clay": [22.0]}).to_csv(feats,
                                                                                 index=False)
    ndvi = tmp_path / "ndvi.csv"
    pd.DataFrame({"SITE_ID": SITE, "date": ["2009-06-01", "2009-06-02"],
                  "NDVI": [0.7, 0.71]}).to_csv(ndvi, index=False)
    t = fluxnet.read_fluxnet_dataset(src, fapar, sites, features=feats, ndvi=ndvi)
    assert t.sites["BIO1"].iloc[0] == 8.5 and t.sites["soil_clay"].iloc[0] == 22.0
    assert np.isnan(t.sites["BIO2"].iloc[0])
    sd = t.site_day.set_index("date")
    assert sd.loc["2009-06-02", "NDVI"] == 0.71 and np.isnan(sd.loc["2009-06-03", "NDVI"])
    pd.DataFrame({"SITE_ID": [SITE], "BIO_1": [1.0]}).to_csv(feats, index=False)
    with pytest.raises(ValueError, match=r"features.csv: unknown feature column\(s\) \['BIO_1'\]"):
        fluxnet.read_fluxnet_dataset(src, fapar, sites, features=feats)


def test_features_missing_from_the_table_come_from_the_record(tmp_path):
    src, fapar, sites = write_inputs(tmp_path)
    feats = tmp_path / "features.csv"
    pd.DataFrame({"SITE_ID": [SITE], "BIO1": [8.5]}).to_csv(feats, index=False)
    t = fluxnet.read_fluxnet_dataset(src, fapar, sites, features=feats)
    row = t.sites.iloc[0]
    sd = t.site_day
    assert row["BIO1"] == 8.5                            # the table wins
    # BIO12 (annual precipitation) from the record: mean daily P times 365 days, roughly
    # (monthly means times days per month), and VIF/aridity features are filled too.
    assert row["BIO12"] == pytest.approx(sd["P"].mean() * 365.0, rel=0.1)
    assert np.isfinite(row["AI1"]) and np.isfinite(row["VIF1"])
    assert np.isnan(row["BIO2"])                          # needs TMIN/TMAX, absent in FULLSET_DD
    assert np.isnan(row["soil_clay"])                     # not computable from the record
    assert any("computed from the flux record" in n for n in t.notes[SITE])
    off = fluxnet.read_fluxnet_dataset(src, fapar, sites, features=feats, record_features=False)
    assert np.isnan(off.sites.iloc[0]["BIO12"]) and np.isnan(off.sites.iloc[0]["VIF1"])


def test_build_writes_a_loadable_folder_with_provenance(tmp_path):
    src, fapar, sites = write_inputs(tmp_path)
    out = fluxnet.build_fluxnet_dataset(src, fapar, sites, tmp_path / "out", years=[2009])
    ds = io.load_dataset(out)
    assert len(ds.site_day) == 365 and ds.truth is None
    prov = json.loads((out / "site_day.provenance.json").read_text())
    assert prov["step"] == "data.fluxnet"
    assert SITE in prov["settings"]["notes"]
    assert prov["inputs"]["fapar"]["sha256"]
    fb = io.to_forcing(ds.site_day)
    assert fb.forcing["T"].shape == (1, 365)


def test_cli_fluxnet_and_errors(tmp_path, capsys):
    from lue_spie.cli import main

    src, fapar, sites = write_inputs(tmp_path)
    rc = main(["data", "fluxnet", "--src", str(src), "--fapar", str(fapar), "--sites",
               str(sites), "--years", "2009-2009", "--out", str(tmp_path / "o")])
    assert rc == 0 and (tmp_path / "o" / "site_day.parquet").is_file()
    assert "365 site-days" in capsys.readouterr().out
    rc = main(["data", "check", str(tmp_path / "o")])
    assert rc == 0
    rc = main(["data", "fluxnet", "--src", str(tmp_path / "nope"), "--fapar", str(fapar),
               "--sites", str(sites), "--out", str(tmp_path / "o2")])
    assert rc == 2 and "FLUXNET source folder not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "fluxnet", "--src", str(src), "--fapar", str(fapar), "--sites",
              str(sites), "--years", "2012-2010", "--out", str(tmp_path / "o3")])


def test_cli_parse_years():
    from lue_spie.data.io import parse_years

    assert parse_years("2010-2012") == [2010, 2011, 2012]
    assert parse_years("2011") == [2011]


# --------------------------------------------------------------------------------------------
# Malformed input: clear errors, nothing written
# --------------------------------------------------------------------------------------------

def _fails(tmp_path, match, **inputs):
    src, fapar, sites = write_inputs(tmp_path, **inputs)
    out = tmp_path / "out"
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        fluxnet.build_fluxnet_dataset(src, fapar, sites, out)
    assert not out.exists()


def test_missing_column(tmp_path):
    _fails(tmp_path, rf"{FLUX_NAME}: FLUXNET file lacks required column\(s\) \['VPD_F'\]",
           flux=flux_frame().drop(columns=["VPD_F"]))


def test_vpd_in_pa_detected(tmp_path):
    flux = flux_frame()
    flux["VPD_F"] = flux["VPD_F"] * 100
    _fails(tmp_path, r"column 'VPD_F': 99th percentile .* looks like Pa", flux=flux)


def test_temperature_in_kelvin_detected(tmp_path):
    flux = flux_frame()
    flux["TA_F"] = flux["TA_F"] + 273.15
    _fails(tmp_path, r"column 'TA_F': median .* looks like Kelvin", flux=flux)


def test_pressure_in_hpa_detected(tmp_path):
    flux = flux_frame()
    flux["PA_F"] = 950.0
    _fails(tmp_path, r"column 'PA_F': median 950.0 looks like hPa", flux=flux)


def test_all_missing_gpp(tmp_path):
    flux = flux_frame()
    flux["GPP_NT_VUT_REF"] = -9999
    _fails(tmp_path, r"column 'GPP_NT_VUT_REF': all values missing", flux=flux)


def test_dates_out_of_order(tmp_path):
    flux = flux_frame()
    flux.iloc[[10, 11]] = flux.iloc[[11, 10]].to_numpy()
    # Rows 10 and 11 (file lines 12 and 13) swapped: line 13 goes back in time.
    _fails(tmp_path, r"column 'TIMESTAMP': dates out of order at line 13 "
                     r"\(2008-01-11 after 2008-01-12\)", flux=flux)


def test_duplicate_days(tmp_path):
    flux = flux_frame()
    flux = pd.concat([flux.iloc[:50], flux.iloc[49:]], ignore_index=True)
    _fails(tmp_path, r"column 'TIMESTAMP': duplicate day 2008-02-19 at line 52", flux=flux)


def test_non_numeric_cell(tmp_path):
    flux = flux_frame().astype({"TA_F": object})
    flux.loc[5, "TA_F"] = "12,5"
    _fails(tmp_path, r"column 'TA_F': non-numeric value '12,5' at line 7", flux=flux)


def test_bad_timestamp(tmp_path):
    flux = flux_frame()
    flux.loc[3, "TIMESTAMP"] = "2008-01-04"
    _fails(tmp_path, r"column 'TIMESTAMP': cannot read date '2008-01-04' at line 5 "
                     r"\(expected YYYYMMDD\)", flux=flux)


def test_fapar_in_percent(tmp_path):
    dates = pd.date_range("2008-01-01", "2008-12-31")
    fapar = pd.DataFrame({"SITE_ID": SITE, "date": dates.strftime("%Y-%m-%d"), "FAPAR": 55.0})
    _fails(tmp_path, r"fapar.csv: column 'FAPAR': values up to 55 look like percent", fapar=fapar)


def test_fapar_duplicate_day(tmp_path):
    fapar = pd.DataFrame({"SITE_ID": SITE, "date": ["2008-05-01", "2008-05-01"], "FAPAR": 0.5})
    _fails(tmp_path, r"fapar.csv: column 'date': duplicate day 2008-05-01", fapar=fapar)


def test_fapar_not_overlapping(tmp_path):
    fapar = pd.DataFrame({"SITE_ID": SITE, "date": ["2012-05-01"], "FAPAR": 0.5})
    _fails(tmp_path, r"FAPAR dates of site DE-Tst .* do not overlap", fapar=fapar)


def test_site_without_fapar_error_or_skip(tmp_path):
    fapar = pd.DataFrame({"SITE_ID": "XX-Oth", "date": ["2008-05-01"], "FAPAR": 0.5})
    _fails(tmp_path, r"no FAPAR for site\(s\) \['DE-Tst'\]; FAPAR is required", fapar=fapar)
    with pytest.raises(ValueError, match="none of the selected sites has FAPAR"):
        read(tmp_path, fapar=fapar, missing_fapar="skip")


def test_site_table_errors(tmp_path):
    base = {"SITE_ID": [SITE], "lon": [10.0], "lat": [50.0], "elv": [500.0], "classid": ["ENF"],
            "koeppen_code": ["Dfb"], "whc": [150.0]}
    _fails(tmp_path, r"sites.csv: column 'classid': IGBP class 'SNO'",
           sites=pd.DataFrame({**base, "classid": ["SNO"]}))
    _fails(tmp_path, r"sites.csv: column 'koeppen_code': 'Dfx'",
           sites=pd.DataFrame({**base, "koeppen_code": ["Dfx"]}))
    _fails(tmp_path, r"sites.csv: column 'lat': 1 values outside",
           sites=pd.DataFrame({**base, "lat": [123.0]}))
    _fails(tmp_path, r"sites.csv: column 'whc': missing value",
           sites=pd.DataFrame({**base, "whc": [np.nan]}))
    _fails(tmp_path, r"sites.csv: no row for site\(s\) \['DE-Tst'\]",
           sites=pd.DataFrame({**base, "SITE_ID": ["XX-Oth"]}))
    _fails(tmp_path, r"sites.csv: site table lacks required column\(s\) \['whc'\]",
           sites=pd.DataFrame(base).drop(columns=["whc"]))


def test_two_files_for_one_site(tmp_path):
    src, fapar, sites = write_inputs(tmp_path)
    flux_frame().to_csv(src / FLUX_NAME.replace("1-4", "1-3"), index=False)
    with pytest.raises(ValueError, match="two FULLSET_DD files for site DE-Tst"):
        fluxnet.read_fluxnet_dataset(src, fapar, sites)


def test_no_fullset_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no FLUXNET2015 FULLSET daily files"):
        fluxnet.find_fluxnet_files(tmp_path / "empty")


# --------------------------------------------------------------------------------------------
# Real sites (../shared/fluxnet)
# --------------------------------------------------------------------------------------------

@pytest.mark.realdata
@needs_shared
def test_ch_lae_end_to_end_with_the_model():
    import torch

    from lue_spie.model import simulate
    from lue_spie.params import ILLUSTRATIVE, PARAMETERS

    t = fluxnet.read_fluxnet_dataset(
        SHARED_FLUXNET, SHARED_FLUXNET / "fapar_CH-Lae_MCD15A3H_2010-2012.csv",
        SHARED_FLUXNET / "sites.csv", site_ids=["CH-Lae"], years=[2010, 2011, 2012])
    sd = t.site_day
    assert len(sd) == 1096
    assert 3.0 < sd["GPP_obs"].mean() < 8.0
    assert (sd["VPD"].max() > 500) and sd["T"].between(-20, 35).all()
    assert t.sites.iloc[0]["PFT"] == "MF" and t.sites.iloc[0]["koeppen"] == "Cfb"
    # Features from the record: BIO1 is the mean of the monthly mean temperatures.
    assert t.sites.iloc[0]["BIO1"] == pytest.approx(sd["T"].mean(), abs=0.3)
    assert 5.0 < t.sites.iloc[0]["BIO1"] < 12.0 and 600 < t.sites.iloc[0]["BIO12"] < 1600
    fb = io.to_forcing(sd)
    assert fb.good.sum() > 800
    params = torch.tensor([ILLUSTRATIVE[p] for p in PARAMETERS], dtype=torch.float64)
    gpp = simulate(fb.forcing, params)["GPP"]
    assert gpp.shape == (1, 1096) and torch.isfinite(gpp).all()
    assert 1.0 < float(gpp.mean()) < 8.0
    good = fb.good[0]
    r = np.corrcoef(gpp[0][good].numpy(), fb.GPP_obs[0][good].numpy())[0, 1]
    assert r > 0.5                                      # the seasonal cycle is captured


@pytest.mark.realdata
@needs_shared
def test_ch_dav_without_fapar_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"no FAPAR for site\(s\) \['CH-Dav'\]; FAPAR is "
                                         r"required"):
        fluxnet.build_fluxnet_dataset(
            SHARED_FLUXNET, SHARED_FLUXNET / "fapar_CH-Lae_MCD15A3H_2010-2012.csv",
            SHARED_FLUXNET / "sites.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # With --missing-fapar skip, CH-Dav is left out and recorded.
    t = fluxnet.read_fluxnet_dataset(
        SHARED_FLUXNET, SHARED_FLUXNET / "fapar_CH-Lae_MCD15A3H_2010-2012.csv",
        SHARED_FLUXNET / "sites.csv", missing_fapar="skip")
    assert t.sites["site"].tolist() == ["CH-Lae"]
    assert t.notes["CH-Dav"] == ["skipped: no FAPAR in the FAPAR table"]


@pytest.mark.realdata
@needs_shared
def test_ch_dav_flux_file_reads_with_the_bucket_before_soil_moisture():
    # CH-Dav has no SWC before 2006 and no PPFD before 2005: W comes from the bucket.
    table, notes = fluxnet.read_fluxnet_site(
        SHARED_FLUXNET / "FLX_CH-Dav_FLUXNET2015_FULLSET_DD_1997-2014_1-3.csv", site="CH-Dav",
        lat=46.8153, elevation=1639.0, whc=171.5)
    assert len(table) == 6574
    assert table["W"].between(0, 1).all() and (table["W_QC"] == fluxnet.W_BUCKET_QC).all()
    assert any("soil-water bucket" in n for n in notes)
    assert table["PPFD"].notna().all() and table["CO2"].notna().all()
    # With 2007-2014 only, SWC covers the record and is used.
    table, notes = fluxnet.read_fluxnet_site(
        SHARED_FLUXNET / "FLX_CH-Dav_FLUXNET2015_FULLSET_DD_1997-2014_1-3.csv", site="CH-Dav",
        lat=46.8153, elevation=1639.0, whc=171.5, years=range(2007, 2015))
    assert any("W from SWC_F_MDS_1" in n for n in notes)


def test_unsorted_fapar_table_is_fine_and_errors_give_file_lines(tmp_path):
    dates = pd.date_range("2008-01-01", "2009-12-31")
    fapar = pd.DataFrame({"SITE_ID": SITE, "date": dates.strftime("%Y-%m-%d"), "FAPAR": 0.5})
    shuffled = fapar.sample(frac=1.0, random_state=0).reset_index(drop=True)
    t = read(tmp_path, fapar=shuffled)
    assert len(t.site_day) == 731
    bad = shuffled.astype({"FAPAR": object})
    bad.loc[7, "FAPAR"] = "n/a?"
    _fails(tmp_path, r"fapar.csv: column 'FAPAR': non-numeric value 'n/a\?' at line 9",
           fapar=bad)


def test_gpp_outliers_missing_but_wrong_units_fail(tmp_path):
    flux = flux_frame()
    flux.loc[[300, 301], "GPP_NT_VUT_REF"] = [55.0, -30.0]
    t = read(tmp_path, flux=flux)
    day = pd.Timestamp("2008-01-01") + pd.Timedelta(days=300)
    assert np.isnan(t.site_day.set_index("date").loc[day, "GPP_obs"])
    assert t.site_day.set_index("date").loc[day, "GPP_QC"] == 0.0
    assert any("outside [-10, 40]" in n and "2 days" in n for n in t.notes[SITE])
    flux = flux_frame()
    flux["GPP_NT_VUT_REF"] = flux["GPP_NT_VUT_REF"] * 12          # e.g. summed, not a mean
    _fails(tmp_path, r"column 'GPP_NT_VUT_REF': \d+ values outside the plausible range",
           flux=flux)


@pytest.mark.parametrize("swc", [True, False])
def test_w_does_not_depend_on_the_years_asked_for(tmp_path, swc):
    flux = flux_frame(swc=swc)
    if swc:   # a drier first year: percentiles over one year alone would differ
        flux.loc[flux.index < 365, "SWC_F_MDS_1"] *= 0.6
    whole = read(tmp_path, flux=flux).site_day.set_index("date")
    one = read(tmp_path, flux=flux, years=[2009]).site_day.set_index("date")
    np.testing.assert_allclose(one["W"], whole.loc[one.index, "W"])


# --------------------------------------------------------------------------------------------
# Files cut off mid-record
# --------------------------------------------------------------------------------------------

def test_truncated_file_is_read_with_a_warning_naming_file_and_years(tmp_path):
    # The name says 2007-2012, the rows stop in mid 2008 (an interrupted download).
    name = FLUX_NAME.replace("2008-2009", "2007-2012")
    flux = flux_frame(start="2007-01-01", n_days=547)            # 2007-01-01 .. 2008-06-30
    src = tmp_path / "src"
    src.mkdir()
    flux.to_csv(src / name, index=False)
    with pytest.warns(fluxnet.TruncatedFileWarning) as rec:
        table, notes = fluxnet.read_fluxnet_site(src / name, site=SITE, lat=50.0,
                                                 elevation=500.0, whc=150.0)
    msg = str(rec[0].message)
    assert name in msg and "2007-2012" in msg and "2008-06-30" in msg
    assert "missing years 2009-2012" in msg
    assert len(table) == 547 and table["date"].max() == pd.Timestamp("2008-06-30")
    assert any("missing years 2009-2012" in n for n in notes)
    # Through the dataset reader too (and its notes land in the provenance).
    dates = pd.date_range("2007-01-01", "2008-06-30")
    fapar = pd.DataFrame({"SITE_ID": SITE, "date": dates.strftime("%Y-%m-%d"), "FAPAR": 0.5})
    with pytest.warns(fluxnet.TruncatedFileWarning, match="missing years 2009-2012"):
        t = read(tmp_path, flux=flux, fapar=fapar, name=name)
    assert any("cut off" in n for n in t.notes[SITE])
    # Only part of the last year missing: still a warning, without whole missing years.
    part = flux_frame(start="2008-01-01", n_days=600)            # to 2009-08-22
    part.to_csv(src / FLUX_NAME, index=False)
    with pytest.warns(fluxnet.TruncatedFileWarning, match="part of a year"):
        fluxnet.read_fluxnet_site(src / FLUX_NAME, site=SITE, lat=50.0, elevation=500.0,
                                  whc=150.0)


def test_complete_file_gives_no_truncation_warning(tmp_path):
    src, _, _ = write_inputs(tmp_path)                  # 2008-01-01 .. 2009-12-31, as named
    with warnings.catch_warnings():
        warnings.simplefilter("error", fluxnet.TruncatedFileWarning)
        fluxnet.read_fluxnet_site(src / FLUX_NAME, site=SITE, lat=50.0, elevation=500.0,
                                  whc=150.0)
    assert fluxnet.check_file_years(tmp_path / "other_name.csv",
                                     pd.DatetimeIndex(["2008-01-01"])) is None


@pytest.mark.realdata
@needs_shared
def test_truncated_copy_of_a_real_file_warns(tmp_path):
    real = SHARED_FLUXNET / "FLX_CH-Lae_FLUXNET2015_FULLSET_DD_2004-2014_1-4.csv"
    lines = real.read_text().splitlines(keepends=True)
    stop = next(i for i, line in enumerate(lines) if line.startswith("20080701"))
    cut = tmp_path / real.name
    cut.write_text("".join(lines[:stop]))                      # header + 2004-01-01..2008-06-30
    with pytest.warns(fluxnet.TruncatedFileWarning) as rec:
        table, _ = fluxnet.read_fluxnet_site(cut, site="CH-Lae", lat=47.4781, elevation=689.0,
                                             whc=292.5)
    msg = str(rec[0].message)
    assert real.name in msg and "2004-2014" in msg and "missing years 2009-2014" in msg
    assert table["date"].max() == pd.Timestamp("2008-06-30")
    # The complete file reads without it.
    with warnings.catch_warnings():
        warnings.simplefilter("error", fluxnet.TruncatedFileWarning)
        fluxnet.read_fluxnet_site(real, site="CH-Lae", lat=47.4781, elevation=689.0, whc=292.5)

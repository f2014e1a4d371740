"""Dataset folders (write/load), good_days and to_forcing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_data_schema import make_site_day, make_sites

from lue_spie import store
from lue_spie.data import io, schema
from lue_spie.params import PARAMETERS


def _prov():
    return store.make_provenance("test")


def _dataset(n_sites=2, n_days=10):
    sd = make_site_day(n_sites, n_days)
    st = make_sites(n_sites)
    return sd, st


def test_public_api_reexported():
    import lue_spie.data as data

    for name in ("load_dataset", "to_forcing", "ForcingBatch", "Dataset", "good_days",
                 "validate_site_day", "validate_sites", "PFTS", "KOEPPEN_TYPES",
                 "FORCING_COLUMNS", "QC_COLUMNS", "load_manifest", "read_fluxnet_dataset",
                 "as_forcing_batch", "parse_years", "DataSettings"):
        assert getattr(data, name) is not None
    with pytest.raises(AttributeError):
        data.nonexistent  # noqa: B018


def test_write_and_load_roundtrip(tmp_path):
    sd, st = _dataset()
    truth = pd.DataFrame({"site": st["site"]})
    for p in PARAMETERS:
        truth[p] = 1.0
    out = io.write_dataset(tmp_path / "ds", sd, st, provenance=_prov(), truth=truth,
                           truth_meta={"seed": 3})
    for name in ("site_day.parquet", "sites.parquet", "truth.parquet", "truth.json",
                 "site_day.provenance.json", "sites.provenance.json"):
        assert (out / name).is_file(), name
    ds = io.load_dataset(out)
    assert str(ds.site_day["date"].dtype) == "datetime64[ns]"
    pd.testing.assert_frame_equal(ds.site_day, sd)
    pd.testing.assert_frame_equal(ds.sites, st)
    assert ds.truth_meta == {"seed": 3}
    assert ds.site_ids == ["S0", "S1"]
    prov = store.read_provenance(out / "site_day.parquet")
    assert prov["output"]["rows"] == len(sd)


def test_nothing_written_when_invalid(tmp_path):
    sd, st = _dataset()
    sd.loc[0, "W"] = 3.0
    with pytest.raises(ValueError, match="column 'W'"):
        io.write_dataset(tmp_path / "ds", sd, st, provenance=_prov())
    assert not (tmp_path / "ds").exists()
    sd, st = _dataset()
    bad_truth = pd.DataFrame({"site": st["site"], "eps_max": 1.0})
    with pytest.raises(ValueError, match=r"missing column\(s\)"):
        io.write_dataset(tmp_path / "ds", sd, st, provenance=_prov(), truth=bad_truth)
    assert not (tmp_path / "ds").exists()


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such dataset folder"):
        io.load_dataset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="site_day.parquet: missing"):
        io.load_dataset(tmp_path / "empty")
    sd, st = _dataset(2)
    io.write_dataset(tmp_path / "ds", sd, st, provenance=_prov())
    # A site table that lacks a site of the site-day table.
    store.write_parquet(st.iloc[:1], tmp_path / "ds" / "sites.parquet")
    with pytest.raises(ValueError,
                       match=r"site_day has sites missing from the sites table: \['S1'\]"):
        io.load_dataset(tmp_path / "ds")
    # A malformed table names the file.
    bad = sd.copy()
    bad.loc[0, "FAPAR"] = 1.5
    store.write_parquet(bad, tmp_path / "ds" / "site_day.parquet")
    with pytest.raises(ValueError, match=r"ds/site_day.parquet: column 'FAPAR'"):
        io.load_dataset(tmp_path / "ds")
    store.write_parquet(sd, tmp_path / "ds" / "site_day.parquet")
    store.write_parquet(st, tmp_path / "ds" / "sites.parquet")
    (tmp_path / "ds" / "truth.json").write_text("{not json")
    with pytest.raises(ValueError, match="truth.json: not valid JSON"):
        io.load_dataset(tmp_path / "ds")


def test_good_days():
    sd = make_site_day(1, 6)
    sd.loc[1, "GPP_obs"] = np.nan
    sd.loc[2, "T_QC"] = 0.8          # not > 0.8
    sd.loc[3, "FAPAR_QC"] = 0.81
    good = io.good_days(sd)
    assert good.dtype == bool
    assert good.tolist() == [True, False, False, True, True, True]
    assert io.good_days(sd, threshold=0.9).tolist() == [True, False, False, False, True, True]
    with pytest.raises(ValueError, match="GPP_QC"):
        io.good_days(sd.drop(columns=["GPP_QC"]))


def test_fill_gaps_linear_then_nearest():
    x = np.array([[np.nan, 1.0, np.nan, 3.0, np.nan, np.nan],
                  [np.nan] * 6,
                  [2.0, 2.0, 2.0, 2.0, 2.0, 2.0]])
    y = io.fill_gaps(x)
    np.testing.assert_allclose(y[0], [1, 1, 2, 3, 3, 3])
    assert np.isnan(y[1]).all()
    np.testing.assert_array_equal(y[2], x[2])
    assert np.isnan(x[0, 0])  # input untouched


def test_to_forcing_shapes_and_values():
    sd = make_site_day(3, 20)
    fb = io.to_forcing(sd, dtype=torch.float32)
    assert fb.sites == ["S0", "S1", "S2"]
    assert fb.n_sites == 3 and fb.n_days == 20
    assert isinstance(fb.dates, pd.DatetimeIndex) and fb.dates[0] == pd.Timestamp("2010-01-01")
    assert set(fb.forcing) == set(schema.FORCING_COLUMNS)
    for v in fb.forcing.values():
        assert v.shape == (3, 20) and v.dtype == torch.float32
    np.testing.assert_allclose(fb.forcing["T"][1].numpy(),
                               sd.loc[sd.site == "S1", "T"].to_numpy(), rtol=1e-6)
    assert fb.GPP_obs.shape == (3, 20) and fb.good.dtype == torch.bool
    assert set(fb.extra) == set(io.EXTRA_KEYS)
    assert torch.isnan(fb.extra["TMIN"]).all()  # never reported: stays NaN
    assert bool(fb.in_record.all())
    assert set(fb.qc) == set(schema.QC_COLUMNS)


def test_to_forcing_gap_filling_and_good_mask():
    sd = make_site_day(1, 10)
    sd.loc[[0, 4, 5, 9], "T"] = np.nan
    sd.loc[4, "GPP_obs"] = np.nan
    sd.loc[6, "W_QC"] = 0.5
    fb = io.to_forcing(sd)
    T = sd["T"].to_numpy()
    got = fb.forcing["T"][0].numpy()
    assert got[0] == T[1] and got[9] == T[8]          # nearest at the ends
    np.testing.assert_allclose(got[4:6], T[3] + (T[6] - T[3]) * np.array([1, 2]) / 3)
    assert not torch.isnan(fb.forcing["T"]).any()
    assert torch.isnan(fb.GPP_obs[0, 4]) and not torch.isnan(fb.GPP_obs[0, 5])
    assert fb.good[0].tolist() == [True] * 4 + [False, True, False] + [True] * 3


def test_to_forcing_pads_sites_with_different_records():
    a = make_site_day(1, 10, start="2010-01-01")
    b = make_site_day(1, 5, start="2010-01-04")
    b["site"] = "S1"
    sd = schema.coerce_site_day(pd.concat([a, b]))
    fb = io.to_forcing(sd)
    assert fb.n_days == 10
    rec = fb.in_record[1].tolist()
    assert rec == [False] * 3 + [True] * 5 + [False] * 2
    w = fb.forcing["W"][1].numpy()
    bw = b["W"].to_numpy()
    np.testing.assert_allclose(w[:3], bw[0])
    np.testing.assert_allclose(w[8:], bw[-1])
    assert torch.isnan(fb.GPP_obs[1, :3]).all() and not fb.good[1, :3].any()
    assert fb.qc["GPP_QC"][1, 0] == 0.0


def test_to_forcing_subsetting():
    sd = make_site_day(3, 800, start="2010-01-01")
    fb = io.to_forcing(sd, sites=["S2", "S0"], years=[2011])
    assert fb.sites == ["S2", "S0"]
    assert fb.dates[0] == pd.Timestamp("2011-01-01") and fb.dates[-1] == pd.Timestamp("2011-12-31")
    ref = sd[(sd.site == "S2") & (sd.date.dt.year == 2011)]["PAR"].to_numpy()
    np.testing.assert_allclose(fb.forcing["PAR"][0].numpy(), ref)


def test_to_forcing_errors():
    sd = make_site_day(2, 10)
    with pytest.raises(ValueError, match=r"unknown site id\(s\) \['XX'\]"):
        io.to_forcing(sd, sites=["S0", "XX"])
    with pytest.raises(ValueError, match="duplicate site id"):
        io.to_forcing(sd, sites=["S0", "S0"])
    with pytest.raises(ValueError, match=r"no days in years \[1999\]"):
        io.to_forcing(sd, years=[1999])
    sd.loc[sd.site == "S1", "FAPAR"] = np.nan
    with pytest.raises(ValueError, match=r"forcing 'FAPAR' has no values at site\(s\) \['S1'\]"):
        io.to_forcing(sd)
    with pytest.raises(ValueError, match="lacks column"):
        io.to_forcing(sd.drop(columns=["CI"]))


def test_to_forcing_large_batch_is_complete():
    sd = make_site_day(40, 400)
    sd.loc[sd.index[::5], "VPD"] = np.nan
    fb = io.to_forcing(sd)
    assert fb.forcing["VPD"].shape == (40, 400)
    assert not torch.isnan(fb.forcing["VPD"]).any()
    assert int(fb.good.sum()) == int(io.good_days(sd).sum())


def test_truth_json_written_verbatim(tmp_path):
    sd, st = _dataset()
    io.write_dataset(tmp_path / "d", sd, st, provenance=_prov(), truth_meta={"a": [1, 2]})
    assert json.loads((tmp_path / "d" / "truth.json").read_text()) == {"a": [1, 2]}


def test_rewriting_a_folder_drops_a_stale_truth(tmp_path):
    sd, st = _dataset()
    truth = pd.DataFrame({"site": st["site"], **{p: 1.0 for p in PARAMETERS}})
    io.write_dataset(tmp_path / "d", sd, st, provenance=_prov(), truth=truth,
                     truth_meta={"seed": 1})
    io.write_dataset(tmp_path / "d", sd, st, provenance=_prov())
    ds = io.load_dataset(tmp_path / "d")
    assert ds.truth is None and ds.truth_meta is None
    assert not (tmp_path / "d" / "truth.provenance.json").exists()


def test_to_forcing_rejects_duplicate_days():
    sd = make_site_day(1, 5)
    dup = pd.concat([sd, sd.iloc[[2]]], ignore_index=True)
    with pytest.raises(ValueError, match="1 duplicate"):
        io.to_forcing(dup)


def test_qc_columns_may_not_be_missing():
    sd = make_site_day(1, 5)
    sd.loc[2, "W_QC"] = np.nan
    with pytest.raises(ValueError, match="column 'W_QC': 1 missing values"):
        schema.validate_site_day(sd)


# --------------------------------------------------------------------------------------------
# ForcingBatch knows its sites' types; one year parser; one way in for every step
# --------------------------------------------------------------------------------------------

def test_forcing_batch_carries_types_and_selects_sites(tmp_path):
    from lue_spie.data import virtual

    ds = io.load_dataset(virtual.generate(6, 1, 0, tmp_path / "vf"))
    fb = ds.forcing_batch()
    info = ds.sites.set_index("site")
    assert fb.pft == info.loc[fb.sites, "PFT"].tolist()
    assert fb.koeppen == info.loc[fb.sites, "koeppen"].tolist()
    pick = [fb.sites[4], fb.sites[1]]
    sub = fb.select(pick)
    assert sub.sites == pick and sub.pft == [fb.pft[4], fb.pft[1]]
    assert torch.equal(sub.forcing["T"][0], fb.forcing["T"][4])
    assert torch.equal(sub.good[1], fb.good[1])
    with pytest.raises(KeyError, match="not in the forcing batch"):
        fb.select(["nope"])
    f32 = sub.to(dtype=torch.float32)
    assert f32.forcing["T"].dtype == torch.float32 and f32.good.dtype == torch.bool
    # as_forcing_batch: a Dataset, a batch, or a batch-like object with koeppen= given.
    again = io.as_forcing_batch(ds, sites=pick)
    assert again.sites == pick and again.koeppen == sub.koeppen
    bare = io.ForcingBatch(sites=fb.sites, dates=fb.dates, forcing=fb.forcing,
                           GPP_obs=fb.GPP_obs, good=fb.good)
    with pytest.raises(ValueError, match="no Koeppen types"):
        io.as_forcing_batch(bare).require_types()
    typed = io.as_forcing_batch(bare, sites=pick, koeppen=dict(zip(fb.sites, fb.koeppen,
                                                                   strict=True)))
    assert typed.koeppen == sub.koeppen
    with pytest.raises(ValueError, match="years= selects from a Dataset"):
        io.as_forcing_batch(bare, years=[2005])


@pytest.mark.parametrize("spec, years", [
    ("2010-2012", [2010, 2011, 2012]),
    ("2011", [2011]),
    ("2010,2012", [2010, 2012]),
    (["2005-2006", "2010"], [2005, 2006, 2010]),
    ([2012, 2010, 2012], [2010, 2012]),
    (2007, [2007]),
    (None, None),
])
def test_parse_years_accepts_every_form(spec, years):
    assert io.parse_years(spec) == years


@pytest.mark.parametrize("spec", ["2012-2010", "twenty", "2010-", ",", []])
def test_parse_years_rejects_bad_input(spec):
    with pytest.raises(ValueError, match="years"):
        io.parse_years(spec)

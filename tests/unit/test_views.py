"""Views of extrapolation results (lue_spie.extrapolate.views): known answers.

Unit tests build small prediction tables by hand; the tests at the end run a tiny
cross-validation (14 virtual sites, one year, 5 folds, fast methods) once per module.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lue_spie import calibrate, extrapolate, store
from lue_spie.calibrate import CalibrationSettings
from lue_spie.data import load_dataset, virtual
from lue_spie.extrapolate import ExtrapolationSettings, views
from lue_spie.extrapolate.cv import read_folds
from lue_spie.layout import Layout
from lue_spie.methods.similarity import seasonal_vectors
from lue_spie.params import LOWER, PARAMETERS, UPPER, index, to_scaled

MID = (LOWER + UPPER) / 2


# ------------------------------------------------------------------------ hand-made tables
def _sites() -> pd.DataFrame:
    # A: temperate (no lag), B: continental (alpha_T free), C: arid (alpha_W free)
    return pd.DataFrame({"site": ["A", "B", "C", "D"], "koeppen": ["Cfb", "Dfb", "BSk", "Cfa"],
                         "PFT": ["ENF", "ENF", "GRA", "GRA"], "lat": [50.0, 55.0, 40.0, -30.0]})


def _vectors(values: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = [{"site": s, **dict(zip(PARAMETERS, v, strict=True))} for s, v in values.items()]
    return pd.DataFrame(rows)


def _masked(v: np.ndarray, koeppen: str) -> np.ndarray:
    from lue_spie.params import lag_mask

    return np.where(lag_mask([koeppen])[0], v, 0.0)


def _calibration() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    sites = _sites()
    vals = {s: _masked(LOWER + rng.uniform(0.1, 0.9, len(PARAMETERS)) * (UPPER - LOWER), k)
            for s, k in zip(sites["site"], sites["koeppen"], strict=True)}
    cal = _vectors(vals)
    cal["status"] = "ok"
    cal["koeppen"] = sites["koeppen"]
    cal["nse"] = [0.9, 0.8, 0.7, 0.6]
    return cal


def _predictions(method: str, params: pd.DataFrame, notes=None, nse=None) -> pd.DataFrame:
    p = params[["site", *PARAMETERS]].copy()
    p.insert(0, "method", method)
    p.insert(2, "fold", range(len(p)))
    p["note"] = notes if notes is not None else ""
    p["nse"] = nse if nse is not None else 0.5
    return p


def test_perfect_predictions_recover_calibration_and_truth():
    cal = _calibration()
    pred = _predictions("Copy", cal)
    over = views.recovery_overview(pred, cal, _sites(), truth=cal)
    copy = over[over["method"] == "Copy"]
    assert set(copy["reference"]) == {"calibrated", "truth"}
    assert np.allclose(copy["median |error| / range"], 0.0)
    # Site calibration itself is scored against the truth only.
    sc = over[over["method"] == views.SITE_CALIBRATION]
    assert set(sc["reference"]) == {"truth"} and np.allclose(sc["median |error| / range"], 0)
    # alpha_T is free only at B (Dfb), alpha_W only at C (BSk).
    n = copy[copy["reference"] == "calibrated"].set_index("parameter")["sites"]
    assert n["alpha_T"] == 1 and n["alpha_W"] == 1 and n["eps_max"] == 4


def test_parameter_comparison_lists_free_parameters_only():
    cal = _calibration()
    pred = _predictions("Copy", cal)
    comp = views.parameter_comparison(pred, cal, _sites())
    assert set(comp.loc[comp["parameter"] == "alpha_T", "site"]) == {"B"}
    assert set(comp.loc[comp["parameter"] == "alpha_W", "site"]) == {"C"}
    assert len(comp) == 4 * 11 + 2
    assert np.allclose(comp["predicted"], comp["calibrated"]) and comp["true"].isna().all()
    # A GPP method (no parameters) is left out.
    gpp_method = _predictions("P-model", cal.assign(**{p: np.nan for p in PARAMETERS}))
    both = views.parameter_comparison(pd.concat([pred, gpp_method]), cal, _sites())
    assert set(both["method"]) == {"Copy"}


def test_spread_ratio_is_one_for_copies_and_zero_for_constants():
    cal = _calibration()
    const = cal.copy()
    for p in PARAMETERS:
        const[p] = MID[index(p)]
    pred = pd.concat([_predictions("Copy", cal), _predictions("Const", const)])
    ratio = views.spread_ratio(pred, cal, _sites())
    assert np.allclose(ratio.loc["Copy", ["eps_max", "Topt", "kW"]], 1.0)
    assert np.allclose(ratio.loc["Const", ["eps_max", "Topt", "kW"]], 0.0)


def test_pooled_vectors_recover_the_fold_vector_and_skip_fallbacks():
    sites = _sites()
    v = MID.copy()
    v[index("alpha_T")] = 0.7
    v[index("alpha_W")] = 0.3
    held = {s: _masked(v, k) for s, k in zip(sites["site"], sites["koeppen"], strict=True)}
    pred = _predictions("OPT-All", _vectors(held),
                        notes=["", "", "", "fallback: no training site"])
    pred["fold"] = [0, 0, 0, 1]
    got = views.pooled_vectors(pred, "OPT-All", sites)
    assert list(got["fold"]) == [0]  # fold 1 held only a fallback prediction
    row = got.iloc[0]
    scaled = to_scaled(v)
    assert row["n_held_out"] == 3
    assert np.allclose(row[list(PARAMETERS)].to_numpy(float), scaled)
    # A lag free at none of a fold's held-out sites is unknown (NaN), not 0.
    only_a = pred[pred["site"] == "A"]
    lags = views.pooled_vectors(only_a, "OPT-All", sites).iloc[0]
    assert np.isnan(lags["alpha_T"]) and np.isnan(lags["alpha_W"])
    by_pft = views.pooled_vectors(pred, "OPT-All", sites, by="PFT")
    assert sorted(by_pft["group"]) == ["ENF", "GRA"]


def test_fallbacks_are_counted_per_method():
    cal = _calibration()
    pred = pd.concat([
        _predictions("PFTmean", cal, notes=["", "fallback: no training site of PFT X", "",
                                            "fallback: no training site of PFT Y"]),
        _predictions("mRF", cal)])
    counts = views.fallback_counts(pred)
    assert list(counts.index) == ["PFTmean", "mRF"]
    assert counts.loc["PFTmean", "fallbacks"] == 2 and counts.loc["mRF", "fallbacks"] == 0
    assert counts.loc["PFTmean", "sites"] == "B, D"
    assert counts.loc["PFTmean", "share"] == pytest.approx(0.5)
    assert list(views.fallbacks(pred)["site"]) == ["B", "D"]


def test_sitesim_donors_are_read_from_the_notes():
    cal = _calibration()
    pred = _predictions("Sitesim", cal, notes=[
        "donor B (D = 0.812)", "donor A (D = -1.250)", "donor D (D = 0.100)",
        "donor A (D = 0.050); fallback: no training site of PFT GRA"])
    d = views.sitesim_donors(pred)
    assert list(d["donor"]) == ["B", "A", "D", "A"]
    assert np.allclose(d["D"], [0.812, -1.25, 0.1, 0.05])
    assert list(d["fallback"]) == [False, False, False, True]
    bad = _predictions("Sitesim", cal, notes=["no donor here", "", "", ""])
    with pytest.raises(ValueError, match="name no donor"):
        views.sitesim_donors(bad)


def test_heldout_nse_adds_site_calibration_first_and_summary_counts():
    cal = _calibration()
    pred = pd.concat([_predictions("mRF", cal, nse=[0.5, -0.5, 0.2, 0.1]),
                      _predictions("PFTmean", cal, nse=[0.1, 0.2, 0.3, 0.4])])
    t = views.heldout_nse(pred, cal)
    assert list(dict.fromkeys(t["method"])) == [views.SITE_CALIBRATION, "PFTmean", "mRF"]
    s = views.nse_summary(t)
    assert s.loc["mRF", "median"] == pytest.approx(0.15)
    assert s.loc["mRF", "share NSE > 0"] == pytest.approx(0.75)
    assert s.loc[views.SITE_CALIBRATION, "sites"] == 4


def test_load_predictions_names_a_missing_method(tmp_path):
    with pytest.raises(FileNotFoundError, match="no extrapolation results"):
        views.load_predictions(tmp_path)
    with pytest.raises(FileNotFoundError, match="PFTmean"):
        views.load_predictions(tmp_path, ["PFTmean"])


# ------------------------------------------------------------- a tiny cross-validated run
FAST = ("PFTmean", "Climmean", "Sitesim", "mRF", "P-model")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("views")
    virtual.generate(14, 1, 3, root / "data")
    calibrate.run(Layout(root), CalibrationSettings(max_gen=20, device="cpu"),
                  log=lambda *_: None)
    extrapolate.run(Layout(root, extrapolation_dir=root / "ex"),
                    ExtrapolationSettings(methods=FAST, n_folds=5, seed=1), progress=False,
                    log=lambda *_: None)
    return root


def test_split_views_follow_the_split(run):
    split = read_folds(run / "ex")
    cov = views.fold_coverage(split)
    assert cov["held_out"].sum() == 14 and (cov["training"] == 14 - cov["held_out"]).all()
    assert cov["PFT rule ok"].all() and cov["main group rule ok"].all()
    comp = views.fold_composition(split, "PFT")
    assert comp.to_numpy().sum() == 14 and list(comp.index) == list(range(5))
    with pytest.raises(KeyError, match="not a column"):
        views.fold_composition(split, "biome")


def test_fallbacks_are_exactly_the_single_type_sites(run):
    split = read_folds(run / "ex")
    pred = views.load_predictions(run / "ex")
    assert views.available_methods(run / "ex") == list(FAST)
    counts = views.fallback_counts(pred)
    single = split.table.set_index("site")["single_type"]
    alone_pft = sorted(single.index[single.str.contains("PFT")])
    alone_clim = sorted(single.index[single.str.contains("main group")])
    assert counts.loc["PFTmean", "fallbacks"] == len(alone_pft)
    assert counts.loc["Climmean", "fallbacks"] == len(alone_clim)
    assert counts.loc["mRF", "fallbacks"] == 0 and counts.loc["P-model", "fallbacks"] == 0
    fb = views.fallbacks(pred)
    assert sorted(fb.loc[fb["method"] == "PFTmean", "site"]) == alone_pft


def test_sitesim_donor_is_a_training_site_of_the_same_pft(run):
    split = read_folds(run / "ex").table.set_index("site")
    donors = views.sitesim_donors(views.load_predictions(run / "ex", ["Sitesim"]))
    for _, r in donors.iterrows():
        assert split.at[r["donor"], "fold"] != r["fold"]  # never from the held-out fold
        if not r["fallback"]:
            assert split.at[r["donor"], "PFT"] == split.at[r["site"], "PFT"]
        assert r["D"] <= 1.0


def test_seasonal_cycles_are_the_vectors_sitesim_compares(run):
    ds = load_dataset(run / "data")
    sites = list(ds.sites["site"][:3])
    got = views.seasonal_cycles(ds, sites)
    ref = seasonal_vectors(ds.site_day, ds.sites.set_index("site")["lat"])
    assert set(got) == {"T", "P", "SW_IN", "NDVI"}
    for v, table in got.items():
        assert table.shape == (3, 365) and list(table.index) == sites
        np.testing.assert_allclose(table.to_numpy(), ref[v].loc[sites].to_numpy())
    with pytest.raises(KeyError, match="no days"):
        views.seasonal_cycles(ds, ["nowhere"])


def test_heldout_gpp_lines_up_observations_and_methods(run):
    ds = load_dataset(run / "data")
    pred = views.load_predictions(run / "ex")
    shown = list(ds.sites["site"][:2])
    g = views.heldout_gpp(ds, run / "ex", ["PFTmean", "P-model"], shown,
                          calibration_dir=run / "calibration")
    assert list(g.sims) == [views.SITE_CALIBRATION, "PFTmean", "P-model"]
    for arr in (g.obs, g.good, *g.sims.values()):
        assert arr.shape == (2, len(g.dates))
    want = pred[pred["method"] == "P-model"].set_index("site").loc[shown, "nse"]
    assert np.allclose(g.nse["P-model"], want)
    gpp = store.read_parquet(run / "ex" / "PFTmean" / "gpp.parquet")
    first = gpp[(gpp["site"] == shown[0])].set_index("date")["GPP_sim"]
    np.testing.assert_allclose(g.sims["PFTmean"][0], first.reindex(g.dates).to_numpy())


def test_gpp_by_temperature_bins_good_days(run):
    ds = load_dataset(run / "data")
    obs = ds.site_day[["site", "date", "GPP_obs"]].rename(columns={"GPP_obs": "same"})
    t = views.gpp_by_temperature(ds, {"same": obs}, bins=(-40, 0, 10, 50))
    # A "model" equal to the observations has the observations' bin means.
    np.testing.assert_allclose(t["same"], t["GPP_obs"])
    assert list(t.columns) == ["T", "days", "GPP_obs", "same"]
    batch = ds.forcing_batch()
    assert t["days"].sum() == int(batch.good.sum())
    with pytest.raises(ValueError, match="one value column"):
        views.gpp_by_temperature(ds, {"bad": ds.site_day[["site", "date", "T", "W"]]})


def test_pmodel_acclimation_smooths_the_daily_optimum(run):
    ds = load_dataset(run / "data")
    site = ds.sites["site"].iloc[0]
    t = views.pmodel_acclimation(ds, site)
    assert len(t) == 365 and (t["GPP_acclimated"] >= 0).all()
    # The running mean damps day-to-day changes of the traits.
    for v in ("xi", "vcmax25"):
        assert np.nanstd(np.diff(t[f"{v}_acclimated"])) < np.nanstd(np.diff(t[f"{v}_optimal"]))
    # A memory of one day is no memory: the realised traits are the daily optima.
    no_memory = views.pmodel_acclimation(ds, site, window_days=1.0)
    np.testing.assert_allclose(no_memory["xi_acclimated"], no_memory["xi_optimal"],
                               rtol=1e-6)


def test_unit_seconds_reads_the_fold_records(run):
    secs = views.unit_seconds(run / "ex", ["PFTmean", "mRF"])
    assert list(secs["folds"]) == [5, 5] and (secs["seconds"] > 0).all()
    with pytest.raises(FileNotFoundError, match="OPT-All"):
        views.unit_seconds(run / "ex", ["OPT-All"])


def test_results_of_an_older_split_are_left_out(run, tmp_path):
    import shutil

    out = tmp_path / "ex"
    shutil.copytree(run / "ex", out)
    # Another seed draws another split: only the method run again belongs to it.
    extrapolate.run(Layout(run, extrapolation_dir=out),
                    ExtrapolationSettings(methods=("PFTmean",), n_folds=5, seed=7),
                    progress=False, log=lambda *_: None)
    assert views.available_methods(out) == ["PFTmean"]
    assert set(views.load_predictions(out)["method"]) == {"PFTmean"}
    with pytest.raises(ValueError, match="another split"):
        views.load_predictions(out, ["PFTmean", "mRF"])

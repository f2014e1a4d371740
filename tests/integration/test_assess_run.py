"""A results folder read back, assessed, and written by `lue-spie assess` (integration).

One small results folder (14 virtual sites x 2 years, a short site calibration, three fast
methods under five-fold cross-validation) is built once for the module.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from lue_spie import calibrate, extrapolate, store
from lue_spie.assess import step as assess_step
from lue_spie.assess.assessment import assess_results, focus_method
from lue_spie.assess.inputs import SITE_CALIB, find_methods, load_results, method_order
from lue_spie.assess.settings import AssessSettings
from lue_spie.calibrate import CalibrationSettings
from lue_spie.cli import main
from lue_spie.data import virtual
from lue_spie.extrapolate import ExtrapolationSettings
from lue_spie.layout import AssessmentFiles, Layout
from lue_spie.params import PARAMETERS
from lue_spie.timescales import gpp_grid

pytestmark = pytest.mark.integration

ASSESSMENT_FILE = AssessmentFiles.RECORD


def run_assessment(results, out, settings, *, figures):
    return assess_step.run(Layout(results, assessment_dir=out), settings, with_figures=figures)

FAST = ("PFTmean", "mRF", "P-model")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("assess")
    virtual.generate(14, 2, 5, root / "data")
    calibrate.run(Layout(root), CalibrationSettings(max_gen=30, device="cpu"),
                  log=lambda *_: None)
    extrapolate.run(Layout(root), ExtrapolationSettings(methods=FAST, n_folds=5, seed=1),
                    progress=False, log=lambda *_: None)
    return root


def test_method_order_puts_site_calib_first_then_the_paper():
    assert method_order(["mRF", "zeta", "SPIE", "site-calib", "PFTmean", "alpha"]) == \
        ["site-calib", "PFTmean", "mRF", "SPIE", "alpha", "zeta"]


def test_load_results_finds_every_method(results):
    inp = load_results(results)
    assert inp.methods == (SITE_CALIB, *FAST)
    assert inp.param_methods == (SITE_CALIB, "PFTmean", "mRF")  # the P-model predicts GPP
    assert inp.years == (2005, 2006)
    assert list(inp.predictions.columns) == ["method", "site", "date", "GPP_sim"]
    n_days = inp.site_day.groupby("site").size()
    for m in inp.methods:
        p = inp.predictions[inp.predictions["method"] == m]
        assert p.groupby("site", observed=True).size().reindex(n_days.index).eq(n_days).all()
    cal = store.read_parquet(results / "calibration" / "gpp_calib.parquet")
    calib = inp.predictions[inp.predictions["method"] == SITE_CALIB]
    np.testing.assert_array_equal(calib["GPP_sim"].to_numpy(), cal["GPP_calib"].to_numpy())
    mrf = store.read_parquet(results / "extrapolation" / "mRF" / "params.parquet")
    got = inp.method_params("mRF").set_index("site")
    pd.testing.assert_frame_equal(got, mrf.set_index("site")[list(PARAMETERS)])
    with pytest.raises(KeyError, match="P-model.*no parameter vectors"):
        inp.method_params("P-model")
    grid = gpp_grid(inp.site_day, inp.predictions, methods=inp.methods)
    assert grid.GPP_sim.shape[:2] == (4, 14) and np.isfinite(grid.GPP_sim).all()
    assert inp.folds is not None and set(inp.folds) == set(range(5))


def test_load_results_selects_methods_and_years(results):
    inp = load_results(results, methods=["mRF"], years=[2006])
    assert inp.methods == (SITE_CALIB, "mRF")
    assert set(inp.site_day["date"].dt.year) == {2006}
    assert set(inp.predictions["date"].dt.year) == {2006}
    with pytest.raises(ValueError, match=r"no results of method\(s\) \['SPIE'\]"):
        load_results(results, methods=["SPIE"])


def test_incomplete_or_stale_results_are_named(results, tmp_path):
    copy = tmp_path / "r"
    shutil.copytree(results, copy)
    # A method whose folds were never gathered is not listed.
    (copy / "extrapolation" / "PFTmean" / "gpp.parquet").unlink()
    assert list(find_methods(copy / "extrapolation")) == ["mRF", "P-model"]
    # Results of other data are refused, naming the method and the fix.
    virtual.generate(14, 2, 6, copy / "data")
    with pytest.raises(ValueError, match="site calibration was computed from other data"):
        load_results(copy)
    shutil.rmtree(copy / "calibration")
    with pytest.raises(ValueError, match="results of mRF were computed from other data.*"
                                         "lue-spie extrapolate --methods mRF"):
        load_results(copy)
    with pytest.raises(FileNotFoundError, match="no dataset"):
        load_results(tmp_path / "nothing")


def test_assessment_tables_are_consistent(results):
    a = assess_results(results, AssessSettings(n_groups=20, seed=3))
    h = a.headline.set_index("method")
    assert list(h.index) == [SITE_CALIB, *FAST]
    daily = a.gpp.site_scores[a.gpp.site_scores["scale"] == "daily"]
    for m in h.index:
        nse = daily.loc[daily["method"] == m, "NSE"].dropna()
        assert h.at[m, "n_positive_NSE"] == (nse > 0).sum()
        assert h.at[m, "share_positive_NSE"] == pytest.approx((nse > 0).mean())
        assert h.at[m, "median_NSE"] == pytest.approx(nse.median())
    # P: site-calib does not compete by default; each pair's P sums to 1 over the methods.
    assert set(a.likelihood.average["method"]) == set(FAST)
    assert np.isnan(h.at[SITE_CALIB, "P"])
    assert a.likelihood.P.groupby(["metric", "scale"])["P"].sum().to_numpy() == \
        pytest.approx(1.0)
    with_calib = assess_results(results, AssessSettings(n_groups=20, p_with_calib=True))
    assert SITE_CALIB in set(with_calib.likelihood.average["method"])
    # Without SPIE the parameter figures follow the best parameter method by positive NSE.
    s = a.gpp.summary[a.gpp.summary["scale"] == "daily"].set_index("method")
    best = max(["PFTmean", "mRF"], key=lambda m: (s.at[m, "share_positive_NSE"],
                                                  s.at[m, "median_NSE"]))
    assert a.focus == best == focus_method(a.inputs, a.gpp.summary)
    assert focus_method(a.inputs, a.gpp.summary, "mRF") == "mRF"
    with pytest.raises(ValueError, match="P-model.*no parameter vectors"):
        focus_method(a.inputs, a.gpp.summary, "P-model")
    # Parameter skill: every parameter method against site-calib, against the truth too.
    assert set(a.skill_calib["method"]) == {"PFTmean", "mRF"}
    assert set(a.skill_truth["method"]) == {SITE_CALIB, "PFTmean", "mRF"}
    assert h["truth_distance"].notna().sum() == 3 and np.isnan(h.at["P-model",
                                                                     "truth_distance"])
    assert a.equifinality.method == a.focus and a.equifinality.n == 14
    assert set(a.equifinality_all["method"]) == {"PFTmean", "mRF"}
    eq = a.equifinality.sites.set_index("site")
    cal = daily[daily["method"] == SITE_CALIB].set_index("site")["NSE"]
    np.testing.assert_allclose(eq["NSE_ref"], cal.loc[eq.index])


def test_cli_writes_every_table_and_figure_with_provenance(results, tmp_path, capsys):
    out = tmp_path / "assessment"
    rc = main(["assess", "--results", str(results), "--out", str(out), "--n-groups", "20",
               "--quiet"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "site-calib" in printed and "mRF" in printed and "18 tables and 11 figures" in printed
    record = json.loads((out / ASSESSMENT_FILE).read_text())
    tables = ["headline", "site_scores", "score_summary", "spatial_metrics",
              "spatial_site_means", "nse_by_type", "nse_by_type_summary", "likelihood_P",
              "likelihood_average", "likelihood_table", "likelihood_groups",
              "likelihood_members", "params", "edge_shares", "parameter_skill_calib",
              "parameter_skill_truth", "equifinality_summary", "equifinality_sites"]
    figures = ["fig2_nse_sites", "figS1_r2_sites", "figS2_nrmse_sites", "fig3_spatial",
               "fig3_spatial_sites", "fig4_nse_by_type", "fig5_likelihood",
               "fig6_param_densities", "fig7_nse_vs_param_diff", "param_skill_calib",
               "param_distance_truth"]
    for name in tables:
        t = store.read_parquet(out / f"{name}.parquet")
        pd.testing.assert_frame_equal(pd.read_csv(out / f"{name}.csv").iloc[:0],
                                      pd.read_csv(out / f"{name}.csv").iloc[:0])
        assert len(pd.read_csv(out / f"{name}.csv")) == len(t), name
        prov = store.read_provenance(out / f"{name}.parquet")
        assert prov["step"] == f"assess.{name}" and prov["settings"]["n_groups"] == 20
        assert "calibration/calibration.parquet" in prov["settings"]["inputs"]
        assert record["files"][f"{name}.parquet"] == store.sha256_file(out / f"{name}.parquet")
    for name in figures:
        for ext in ("png", "svg"):
            path = out / "figures" / f"{name}.{ext}"
            assert path.is_file() and path.stat().st_size > 1000, path
            assert record["files"][f"figures/{name}.{ext}"] == store.sha256_file(path)
    assert (out / "figures" / "fig2_nse_sites.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (out / "figures" / "fig6_param_densities.svg").read_bytes()[:500]
    # No path of the machine in the records.
    text = (out / ASSESSMENT_FILE).read_text() + \
        store.provenance_path(out / "headline.parquet").read_text()
    assert str(results) not in text and str(tmp_path) not in text
    # Same inputs, same seed: the same tables.
    again = tmp_path / "again"
    run_assessment(results, again, AssessSettings(n_groups=20), figures=False)
    for name in tables:
        pd.testing.assert_frame_equal(store.read_parquet(out / f"{name}.parquet"),
                                      store.read_parquet(again / f"{name}.parquet"))


def test_cli_reports_bad_input_in_one_line(results, tmp_path, capsys):
    for argv, message in (
        (["--results", str(tmp_path / "none")], "no dataset"),
        (["--results", str(results), "--methods", "SPIE"], "no results of method(s)"),
        (["--results", str(results), "--focus", "P-model"], "no parameter vectors"),
    ):
        rc = main(["assess", "--out", str(tmp_path / "o"), "--no-figures", "--quiet",
                   "--n-groups", "5", *argv])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1


def test_structural_twin_flips_only_the_switch_and_reuses_the_settings(results, tmp_path):
    from lue_spie.assess.twin import has_twin, run_twin
    from lue_spie.data.io import load_dataset

    main = tmp_path / "main"
    shutil.copytree(results, main)
    assert not has_twin(main)
    out = run_twin(main, methods=["mRF", "SPIE"], log=lambda *_: None)
    assert out == main / "twin" and has_twin(main)
    main_data, twin_data = load_dataset(main / "data"), load_dataset(out / "data")
    assert twin_data.truth_meta["structural_error"]["enabled"] is True
    assert main_data.truth_meta["structural_error"]["enabled"] is False
    pd.testing.assert_frame_equal(main_data.truth, twin_data.truth)
    pd.testing.assert_frame_equal(main_data.sites, twin_data.sites)
    same = [c for c in main_data.site_day.columns if c != "GPP_obs"]
    pd.testing.assert_frame_equal(main_data.site_day[same], twin_data.site_day[same])
    assert not np.allclose(main_data.site_day["GPP_obs"], twin_data.site_day["GPP_obs"],
                           equal_nan=True)
    cal = store.read_provenance(out / "calibration" / "calibration.parquet")["settings"]
    assert cal["max_gen"] == 30
    assert list(find_methods(out / "extrapolation")) == ["mRF"]  # SPIE was not in the main run
    main_folds = store.read_parquet(main / "extrapolation" / "folds.parquet")
    pd.testing.assert_frame_equal(main_folds, store.read_parquet(out / "extrapolation" /
                                                                 "folds.parquet"))
    fold0 = "extrapolation/mRF/fold0.params.parquet"
    assert store.read_provenance(out / fold0)["settings"]["params"] == \
        store.read_provenance(main / fold0)["settings"]["params"]
    # A rerun finds everything done and rewrites nothing of the extrapolation.
    stamp = (out / fold0).stat().st_mtime_ns
    run_twin(main, methods=["mRF"], log=lambda *_: None)
    assert (out / fold0).stat().st_mtime_ns == stamp
    # The assessment compares the two worlds on the methods both hold.
    a, written = run_assessment(main, tmp_path / "assessment", AssessSettings(n_groups=10),
                                figures=False)
    worlds = store.read_parquet(tmp_path / "assessment" / "twin_worlds.parquet")
    assert list(worlds["world"].unique()) == ["without structural error", "with structural error"]
    assert set(worlds["method"]) == {SITE_CALIB, "mRF"}
    assert worlds["mean distance / range"].notna().all()
    agree = a.agreement
    assert list(agree["n_methods"]) == [1, 1] and agree["spearman"].isna().all()
    assert list(agree["best_gpp"]) == ["mRF", "mRF"]
    assert "twin_agreement" in written and "twin_worlds" in written
    figs = assess_step.figures(a)
    assert "twin_worlds" in figs
    off, off_written = run_assessment(main, tmp_path / "off",
                                      AssessSettings(n_groups=10, twin=False), figures=False)
    assert off.worlds is None and "twin_worlds" not in off.tables()
    assert "twin_worlds" not in off_written


def test_the_twin_runs_its_units_where_the_chapter_says(results, tmp_path, monkeypatch):
    # `lue-spie book --workers N` reaches the twin: its calibration and methods get the
    # chapter's execution settings (the twin is the paper profile's longest stage).
    from lue_spie.assess import twin as twin_module
    from lue_spie.execution import ExecutionSettings

    main = tmp_path / "main"
    shutil.copytree(results, main)
    seen = {}
    monkeypatch.setattr(twin_module.calibrate, "run", lambda layout, settings, execution, **k:
                        seen.setdefault("calibration", execution))
    monkeypatch.setattr(twin_module.extrapolate, "run", lambda layout, settings, execution, **k:
                        seen.setdefault("methods", execution))
    cluster = ExecutionSettings(workers=2)
    twin_module.run_twin(main, methods=["mRF"], log=lambda *_: None, execution=cluster)
    assert seen == {"calibration": cluster, "methods": cluster}


def test_the_twin_needs_the_generator(results, tmp_path):
    from lue_spie.assess.twin import run_twin

    copy = tmp_path / "real"
    shutil.copytree(results, copy)
    (copy / "data" / "truth.json").unlink()
    with pytest.raises(ValueError, match="not a virtual FLUXNET"):
        run_twin(copy, log=lambda *_: None)

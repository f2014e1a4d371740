"""The cross-validated runs: outputs, resume, and clear errors (lue_spie.extrapolate)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from lue_spie import calibrate, extrapolate, store
from lue_spie.calibrate import CalibrationSettings
from lue_spie.cli import main
from lue_spie.data import virtual
from lue_spie.errors import DataError
from lue_spie.extrapolate import ExtrapolationSettings, unit_paths
from lue_spie.extrapolate.cli import parse_method_params
from lue_spie.layout import Layout
from lue_spie.params import PARAMETERS

FAST = ("PFTmean", "Climmed", "Sitesim", "mRF", "P-model")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("extrap")
    data = virtual.generate(14, 1, 2, root / "data")
    calibrate.run(Layout(data_dir=data, calibration_dir=root / "calibration"),
                  CalibrationSettings(max_gen=30, device="cpu"), log=lambda *_: None)
    return root


def _run(small, out, **kw):
    settings = ExtrapolationSettings(**{"methods": FAST, "n_folds": 5, "seed": 1, **kw})
    return extrapolate.run(Layout(small, extrapolation_dir=out), settings, progress=False,
                           log=lambda *_: None)


def test_every_held_out_site_gets_a_prediction_from_every_method(small, tmp_path):
    res = _run(small, tmp_path / "ex")
    sites = sorted(res.split.sites)
    assert set(res.summary["method"]) == set(FAST)
    for method in FAST:
        params = store.read_parquet(tmp_path / "ex" / method / "params.parquet")
        gpp = store.read_parquet(tmp_path / "ex" / method / "gpp.parquet")
        assert sorted(params["site"]) == sites  # each site once, from its own fold
        fold_of = res.split.table.set_index("site")["fold"]
        assert (params.set_index("site")["fold"] == fold_of.loc[params["site"]]).all()
        assert set(gpp["site"]) == set(sites) and list(gpp.columns) == ["site", "date",
                                                                         "GPP_sim"]
        assert gpp["GPP_sim"].notna().all()
        if method != "P-model":
            assert params[list(PARAMETERS)].notna().all().all()
            assert {"cost", "nse", "C_ideal", "C_nonideal"} <= set(params.columns)
    prov = store.read_provenance(unit_paths(tmp_path / "ex", "mRF", 0)["params"])
    assert prov["settings"]["method"] == "mRF" and prov["settings"]["params"]["seed"] == 1
    assert (tmp_path / "ex" / "folds.parquet").is_file()


def test_a_rerun_skips_finished_units_and_redoes_the_rest(small, tmp_path):
    out = tmp_path / "ex"
    first = _run(small, out)
    again = _run(small, out)
    assert again.ran == {} and len(again.skipped) == len(FAST) * 5
    pd.testing.assert_frame_equal(first.summary, again.summary)
    # A lost fold file is redone alone; a changed hyperparameter redoes that method only.
    unit_paths(out, "Sitesim", 3)["params"].unlink()
    third = _run(small, out)
    assert list(third.ran) == ["Sitesim fold 3"]
    pd.testing.assert_frame_equal(first.summary, third.summary)
    fourth = _run(small, out, method_params={"mRF": {"n_estimators": 20}})
    assert sorted(fourth.ran) == [f"mRF fold {k}" for k in range(5)]


def test_results_are_the_same_for_the_same_seed(small, tmp_path):
    a = _run(small, tmp_path / "a").summary
    b = _run(small, tmp_path / "b").summary
    pd.testing.assert_frame_equal(a, b)


def test_cli_runs_and_reports_bad_input_in_one_line(small, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["extrapolate", "--data", str(small / "data"), "--calib",
                 str(small / "calibration"), "--out", str(out), "--methods", "PFTmean",
                 "--folds", "5", "--no-progress"]) == 0
    assert "PFTmean" in capsys.readouterr().out
    for argv, message in (
        (["--methods", "PFTmode"], "unknown method 'PFTmode'"),
        (["--folds", "40"], "14 site(s) cannot be split into 40 folds"),
        (["--param", "sRF.n_trees=3", "--methods", "sRF"], "hyperparameters are"),
        (["--param", "oops"], "expected METHOD.NAME=VALUE"),
    ):
        rc = main(["extrapolate", "--data", str(small / "data"), "--calib",
                   str(small / "calibration"), "--out", str(tmp_path / "bad"),
                   "--no-progress", *argv])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1
    # Methods that learn from calibrated vectors need the calibration folder.
    rc = main(["extrapolate", "--data", str(small / "data"), "--out", str(tmp_path / "bad"),
               "--methods", "sRF", "--no-progress"])
    assert rc == 2 and "--calib" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_a_calibration_of_other_sites_is_refused(small, tmp_path):
    cal = store.read_parquet(small / "calibration" / "calibration.parquet")
    other = tmp_path / "cal"
    store.write_parquet(cal.assign(site="X-" + cal["site"]), other / "calibration.parquet")
    with pytest.raises(ValueError, match="not in the dataset"):
        extrapolate.run(Layout(small, calibration_dir=other, extrapolation_dir=tmp_path / "ex"),
                        ExtrapolationSettings(methods=("PFTmean",), n_folds=5), progress=False)


def test_method_params_parse_nested_settings():
    got = parse_method_params(["OPT-All.settings.max_gen=200", "sRF.n_estimators=50",
                               "OPT-All.settings.popsize=8"])
    assert got == {"OPT-All": {"settings": {"max_gen": 200, "popsize": 8}},
                   "sRF": {"n_estimators": 50}}


def test_summary_holds_every_method_of_the_split_and_sites_select(small, tmp_path):
    # The method chapters run their methods in separate calls into one folder: the summary
    # gathers every method on the same split, data and calibration.
    out = tmp_path / "ex"
    _run(small, out, methods=("PFTmean",))
    second = _run(small, out, methods=("Climmed",))
    assert list(dict.fromkeys(second.summary["method"])) == ["Climmed", "PFTmean"][::-1]
    sub = sorted(second.split.sites)[:10]
    picked = extrapolate.run(Layout(small, extrapolation_dir=tmp_path / "sub"),
                             ExtrapolationSettings(methods=("PFTmean",), n_folds=5,
                                                   sites=tuple(sub)),
                             progress=False, log=lambda *_: None)
    assert sorted(picked.split.sites) == sub and sorted(picked.summary["site"]) == sub


def test_a_damaged_fold_file_is_recomputed_and_said(small, tmp_path):
    out = tmp_path / "ex"
    settings = ExtrapolationSettings(methods=("PFTmean",), n_folds=5, seed=1)
    layout = Layout(small, extrapolation_dir=out)
    extrapolate.run(layout, settings, progress=False, log=lambda *_: None)
    params3, gpp1 = unit_paths(out, "PFTmean", 3)["params"], unit_paths(out, "PFTmean", 1)["gpp"]
    good = {p: p.read_bytes() for p in (params3, gpp1, out / "folds.parquet")}
    params3.write_bytes(good[params3][:-40])  # cut short
    store.provenance_path(gpp1).write_text("{", encoding="utf-8")  # an invalid record
    (out / "folds.parquet").write_bytes(good[out / "folds.parquet"][:100])
    notes: list[str] = []
    again = extrapolate.run(layout, settings, progress=False, log=notes.append)
    assert sorted(again.ran) == ["PFTmean fold 1", "PFTmean fold 3"]
    assert "recomputed fold 3 of PFTmean: its params file was unreadable (its checksum " \
           "differs from the one recorded when it was written (changed or damaged since))" \
        in notes
    assert "recomputed fold 1 of PFTmean: its gpp file was unreadable (its provenance record " \
           "fold1.gpp.provenance.json is unreadable)" in notes
    assert any(n.startswith(f"recomputed the split in {out / 'folds.parquet'}") for n in notes)
    assert {p: p.read_bytes() for p in good} == good  # the same results, bit for bit


def test_a_calibration_of_another_dataset_is_refused_before_any_work(small, tmp_path):
    other = virtual.generate(14, 1, 9, tmp_path / "other")
    layout = Layout(data_dir=other, calibration_dir=small / "calibration",
                    extrapolation_dir=tmp_path / "ex")
    with pytest.raises(DataError, match=r"calibration.parquet: the site calibration was "
                                        r"computed from other data than .*other"):
        extrapolate.run(layout, ExtrapolationSettings(methods=("PFTmean",), n_folds=5),
                        progress=False, log=lambda *_: None)
    assert not (tmp_path / "ex").exists()

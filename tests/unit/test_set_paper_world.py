"""benchmarks/set_paper_world.py: the procedure that sets the paper world never sees SPIE."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lue_spie import store
from lue_spie.book.profiles import Profile
from lue_spie.calibrate import CalibrationSettings
from lue_spie.data.virtual.worlds import WORLDS
from lue_spie.extrapolate import ExtrapolationSettings
from lue_spie.methods.base import paper_order

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "set_paper_world.py"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def procedure():
    spec = importlib.util.spec_from_file_location("set_paper_world", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_profile() -> Profile:
    opt = {"max_gen": 2, "restarts": 0, "dtype": "float64"}
    return Profile(
        name="tiny", description="a procedure test",
        # enough generations for calibrated vectors that fit (failed fits feed no method)
        calibrate=CalibrationSettings(max_gen=40, restarts=0, dtype="float64"),
        extrapolate=ExtrapolationSettings(n_folds=3, method_params={
            "OPT-All": {"settings": dict(opt)}, "OPT-PFT": {"settings": dict(opt)},
            "sRF": {"n_estimators": 5}, "mRF": {"n_estimators": 5},
            "mNN": {"max_iter": 5}}))


def test_the_ten_parameter_baselines_and_never_spie(procedure):
    assert procedure.BASELINES == tuple(m for m in paper_order()
                                        if m not in ("SPIE", "P-model"))
    assert len(procedure.BASELINES) == 10
    with pytest.raises(ValueError, match="must not run or read SPIE"):
        procedure._settings(_tiny_profile(), ["PFTmean", "SPIE"], "cpu")


def test_the_factor_multiplies_the_parameters_spread_of_the_literature_world(procedure):
    lit = WORLDS["literature"]
    assert procedure.world_at(1.0).dials() == lit.dials()
    two = procedure.world_at(2.0)
    for d in ("feature_spread", "within_pft", "site_spread"):
        assert getattr(two, d) == pytest.approx(2 * getattr(lit, d))
    for d in ("fapar_offset_sd", "fapar_gain_sd", "gpp_scale_sd", "partition_sd",
              "record_min_share", "gap_share"):  # measured: kept
        assert getattr(two, d) == getattr(lit, d)
    # the paper world is the procedure's world at the chosen factor
    from lue_spie.data.virtual.worlds import PAPER_FACTOR

    assert procedure.world_at(PAPER_FACTOR).dials() == WORLDS["paper"].dials()


def test_search_brackets_then_bisects_to_the_smallest_factor_that_meets(procedure):
    seen = []

    def run(k):
        seen.append(k)
        return {"k": k, "met": k >= 2.6}

    k, records = procedure.search(run, k_start=1.0, k_max=8.0, tries=3)
    assert seen[:3] == [1.0, 2.0, 4.0] and len(records) == 6
    assert 2.6 <= k <= 3.0 and all(r["met"] for r in records if r["k"] >= k)
    none, _ = procedure.search(lambda k: {"k": k, "met": False}, k_start=1.0, k_max=2.0,
                               tries=2)
    assert none is None


def test_a_try_whose_calibration_falls_below_the_ceiling_is_an_upper_bound(procedure):
    seen = []

    def run(k):  # too easy below 2.6, met up to 3.2, calibration off the ceiling above
        seen.append(k)
        return {"k": k, "met": 2.6 <= k <= 3.2, "calib_ok": k <= 3.2}

    k, _ = procedure.search(run, k_start=2.0, k_max=8.0, tries=2)
    assert seen == [2.0, 4.0, 3.0, 2.5] and k == 3.0
    none, _ = procedure.search(lambda k: {"k": k, "met": False, "calib_ok": k < 1.5},
                               k_start=1.0, k_max=8.0, tries=2)
    assert none is None


def test_a_try_never_runs_spie_nor_reads_its_files(procedure, tmp_path, monkeypatch):
    from lue_spie.methods.spie.method import SPIE

    def booby_trap(*args, **kwargs):
        raise AssertionError("the dial-setting procedure used SPIE")

    for name in ("__init__", "fit", "predict", "fit_predict", "fit_predict_folds"):
        monkeypatch.setattr(SPIE, name, booby_trap)
    read: list[str] = []
    for name in ("read_parquet", "read_provenance"):
        original = getattr(store, name)

        def recording(path, *args, _original=original, **kwargs):
            read.append(str(path))
            return _original(path, *args, **kwargs)

        monkeypatch.setattr(store, name, recording)
    monkeypatch.setattr(procedure, "CALIB_LEVEL", -float("inf"))  # every try runs all ten
    record = procedure.try_world(1.0, tmp_path / "k1", n_sites=24, n_years=1, seed=3,
                                 profile=_tiny_profile(), target=1.0, log=lambda s: None)
    assert set(record["baselines"]) == set(procedure.BASELINES)
    assert record["met"] in (True, False) and 0 <= record["max_share"] <= 1
    assert read and not [p for p in read if "SPIE" in p]
    assert not (tmp_path / "k1" / "extrapolation" / "SPIE").exists()


def test_a_folder_with_spie_results_is_refused_before_anything_is_read(procedure, tmp_path):
    spie = tmp_path / "k1" / "extrapolation" / "SPIE"
    spie.mkdir(parents=True)
    (spie / "params.parquet").write_text("booby trap")
    with pytest.raises(ValueError, match="SPIE"):
        procedure.try_world(1.0, tmp_path / "k1", n_sites=14, n_years=1, seed=3,
                            profile=_tiny_profile(), log=lambda s: None)

"""Unit tests of benchmarks/bench_methods.py's argument handling (nothing is run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from lue_spie.book.profiles import PROFILES
from lue_spie.methods.base import paper_order

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_methods.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_methods", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_baselines_are_the_paper_order_without_spie(bench):
    assert bench.BASELINES == tuple(m for m in paper_order() if m != "SPIE")
    assert len(bench.BASELINES) == 11


def test_defaults_paper_profile_196_by_10(bench):
    args = bench.build_parser().parse_args([])
    assert (args.profile, args.sites, args.years, args.folds) == ("paper", 196, 10, 10)
    assert args.methods == list(bench.BASELINES)
    assert args.data is None and args.calib is None


@pytest.mark.parametrize("name", ["demo", "paper"])
def test_method_params_follow_the_profile(bench, name):
    p = PROFILES[name]
    params = bench.method_params(p, "cpu")
    knobs = p.knobs()
    for m, slug in (("OPT-All", "opt_all"), ("OPT-PFT", "opt_pft")):
        assert params[m]["settings"] == {"max_gen": knobs[f"{slug}_max_gen"].value,
                                         "restarts": knobs[f"{slug}_restarts"].value,
                                         "dtype": knobs[f"{slug}_dtype"].value,
                                         "device": "cpu"}
    assert params["sRF"] == {"n_estimators": knobs["srf_n_estimators"].value}
    assert params["mRF"] == {"n_estimators": knobs["mrf_n_estimators"].value}
    assert params["P-model"] == {"settings": {"window_days": knobs["p_model_window_days"].value}}
    assert set(params) <= set(bench.BASELINES)


def test_profile_choice_is_checked(bench):
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(["--profile", "ci2"])


def test_bad_combinations_return_2(bench, capsys):
    assert bench.main(["--methods", "PFTmean", "NoSuch"]) == 2
    assert "NoSuch" in capsys.readouterr().err
    assert bench.main(["--calib", "somewhere"]) == 2
    assert "--data" in capsys.readouterr().err


def test_skill_counts_missing_nse_as_not_positive(bench):
    s = pd.DataFrame({"nse": [0.5, -0.2, float("nan"), 0.9], "note": ["", None, "", "fb"]})
    k = bench.skill(s)
    assert k["sites"] == 4 and k["sites_without_nse"] == 1
    assert k["nse_median"] == pytest.approx(0.5)
    assert k["share_nse_positive"] == pytest.approx(0.5)
    assert k["sites_with_note"] == 1

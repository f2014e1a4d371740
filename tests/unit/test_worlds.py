"""The virtual FLUXNET's worlds (lue_spie.data.virtual.worlds): dials, registry, their effects."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lue_spie.data import schema
from lue_spie.data.settings import DataSettings
from lue_spie.data.sources import get_source
from lue_spie.data.virtual import make_tables
from lue_spie.data.virtual.truth import WITHIN_PFT, Interaction
from lue_spie.data.virtual.worlds import (
    ALL_DIALS,
    DIALS,
    GROUPS,
    NEUTRAL,
    WORLDS,
    World,
    get_world,
    world_from_dict,
)
from lue_spie.params import PARAMETERS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smooth():
    return make_tables(16, 2, seed=4)


@pytest.fixture(scope="module")
def hard():
    world = World("hard", within_pft=3.0, site_spread=2.0, fapar_offset_sd=0.1,
                  fapar_gain_sd=0.2, gpp_scale_sd=0.1, partition_sd=0.1, record_min_share=0.2,
                  gap_share=0.25)
    return make_tables(16, 2, seed=4, world=world)


def _grid(vf, column: str) -> np.ndarray:
    return vf.site_day[column].to_numpy().reshape(len(vf.sites), -1)


# ------------------------------------------------------------------------------ the registry
def test_named_worlds_and_the_default():
    assert {"smooth", "literature", "paper"} <= set(WORLDS)
    assert get_world(None) is WORLDS["smooth"]
    assert get_world("paper") is WORLDS["paper"]
    with pytest.raises(ValueError, match=r"world 'nope': expected one of \['smooth'"):
        get_world("nope")


def test_the_smooth_world_has_every_dial_neutral():
    assert WORLDS["smooth"].dials() == NEUTRAL
    assert set(NEUTRAL) == set(ALL_DIALS) == {d.name for d in DIALS}


def test_an_all_neutral_world_writes_the_smooth_tables(smooth):
    other = make_tables(16, 2, seed=4, world=World("renamed"))
    for a, b in ((smooth.site_day, other.site_day), (smooth.sites, other.sites),
                 (smooth.truth, other.truth)):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_a_world_round_trips_through_its_dict():
    w = WORLDS["paper"]
    assert world_from_dict(json.loads(json.dumps(w.to_dict()))) == w
    assert get_world(w.to_dict()) == w
    with pytest.raises(ValueError, match="unknown field"):
        world_from_dict({**w.to_dict(), "nope": 1})


@pytest.mark.parametrize("field,value", [("gap_share", 0.9), ("fapar_offset_sd", -0.1),
                                         ("within_pft", float("nan")), ("site_spread", "x")])
def test_bad_dials_fail_in_one_line_naming_the_dial(field, value):
    with pytest.raises(ValueError, match=rf"^World\.{field} = .*: expected a number in"):
        World("bad", **{field: value})


def test_scaled_moves_dials_from_their_neutral_value_and_clips():
    lit = WORLDS["literature"]
    assert lit.scaled("all", 0.0).dials() == NEUTRAL
    assert lit.scaled("all", 1.0).dials() == lit.dials()
    twice = lit.scaled("observation", 2.0)
    assert twice.fapar_offset_sd == pytest.approx(2 * lit.fapar_offset_sd)
    assert twice.within_pft == lit.within_pft  # outside the group: unchanged
    far = lit.scaled("identifiability", 10.0)
    assert far.record_min_share == 0.05 and far.gap_share == 0.45
    assert set(GROUPS["equifinality"]) == set(GROUPS["observation"]) | set(
        GROUPS["identifiability"])
    with pytest.raises(ValueError, match="expected dials"):
        lit.scaled("nope", 1.0)


def test_the_paper_world_is_the_literature_world_with_its_parameters_spread_multiplied():
    from lue_spie.data.virtual.worlds import LITERATURE, PAPER_FACTOR

    paper = WORLDS["paper"]
    assert PAPER_FACTOR > 1.0
    assert paper.dials() == LITERATURE.multiplied("parameters", PAPER_FACTOR).dials()
    for d in (*GROUPS["observation"], *GROUPS["identifiability"]):  # measured: kept
        assert getattr(paper, d) == getattr(LITERATURE, d)
    assert paper.within_pft / paper.site_spread == pytest.approx(
        LITERATURE.within_pft / LITERATURE.site_spread)
    with pytest.raises(ValueError, match="factor"):
        LITERATURE.multiplied("parameters", -1.0)


def test_every_dial_cites_a_reference_of_the_book():
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    keys = set(re.findall(r"^@\w+\{([^,\s]+),", bib, re.M))
    for d in DIALS:
        assert d.citations and set(d.citations) <= keys, d.name
        assert d.mechanism and d.anchor and d.group in ("parameters", "observation",
                                                        "identifiability")


def test_data_settings_and_the_source_take_a_world(tmp_path):
    assert DataSettings().world == "smooth"
    with pytest.raises(ValueError, match=r"DataSettings\.world = 'nope': expected one of"):
        DataSettings(world="nope")
    out = get_source("virtual", n_sites=14, n_years=1, seed=1, world="paper").write(tmp_path)
    meta = json.loads((out / "truth.json").read_text())
    assert meta["difficulty"]["name"] == "paper"
    prov = json.loads((out / "site_day.provenance.json").read_text())
    assert prov["settings"]["world"]["name"] == "paper"


def test_the_command_line_offers_the_worlds(tmp_path, capsys):
    from lue_spie.cli import main

    assert main(["data", "synth", "--sites", "14", "--years", "1", "--world", "literature",
                 "--out", str(tmp_path / "d")]) == 0
    assert "world literature" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["data", "synth", "--world", "nope", "--out", str(tmp_path / "e")])


# ------------------------------------------------------------------------------ the effects
def test_weather_and_sites_do_not_depend_on_the_world(smooth, hard):
    for col in ("T", "VPD", "SW_IN", "P", "W", "NDVI", "CO2"):
        np.testing.assert_array_equal(smooth.site_day[col], hard.site_day[col])
    pd.testing.assert_series_equal(smooth.sites["PFT"], hard.sites["PFT"])


def test_the_fapar_product_is_biased_and_the_canopy_is_not(smooth, hard):
    obs = hard.truth_meta["world"]["site_observation"]
    a, b = _grid(smooth, "FAPAR"), _grid(hard, "FAPAR")
    assert not np.allclose(a, b)
    # product = mean + gain (true - mean) + offset, before clipping: check where not clipped
    gain, offset = np.array(obs["fapar_gain"]), np.array(obs["fapar_offset"])
    expect = a.mean(1, keepdims=True) + gain[:, None] * (a - a.mean(1, keepdims=True)) \
        + offset[:, None]
    inside = (expect > 0.02) & (expect < 0.96)
    np.testing.assert_allclose(b[inside], expect[inside], rtol=0, atol=1e-5)  # 6 digits kept
    assert np.std(offset) > 0.03 and np.all(np.isfinite(b))


def test_within_pft_terms_and_their_record(smooth, hard):
    assert not np.allclose(smooth.truth[list(PARAMETERS)], hard.truth[list(PARAMETERS)])
    params = hard.truth_meta["parameters"]
    for name, terms in WITHIN_PFT.items():
        assert "within_pft_terms" in params[name]
        feats = {f for t in terms for f in (t.features if isinstance(t, Interaction)
                                            else (t.feature,))}
        assert feats <= set(params[name]["drivers"])
        assert feats <= set(schema.FEATURE_COLUMNS)
    assert "within_pft_terms" not in smooth.truth_meta["parameters"]["eps_max"]
    assert hard.truth_meta["parameters"]["eps_max"]["site_sd"] == pytest.approx(
        2 * smooth.truth_meta["parameters"]["eps_max"]["site_sd"])


def test_records_are_shortened_in_whole_years_and_gaps_added(smooth, hard):
    obs = hard.truth_meta["world"]["site_observation"]
    years = np.array(obs["record_years"])
    assert years.min() >= 1 and years.max() <= 2 and (years < 2).any()
    gpp = _grid(hard, "GPP_obs")
    dates = pd.DatetimeIndex(hard.site_day["date"].iloc[:gpp.shape[1]])
    for i, (first, n) in enumerate(zip(obs["record_first_year"], years, strict=True)):
        outside = (dates.year < first) | (dates.year >= first + n)
        assert np.isnan(gpp[i, outside]).all()
        assert (_grid(hard, "GPP_QC")[i, outside] == 0).all()
    good = lambda vf: (_grid(vf, "GPP_QC") > 0.8).mean()  # noqa: E731
    assert good(hard) < good(smooth) - 0.1


def test_flux_biases_are_recorded_and_the_tables_valid(hard):
    obs = hard.truth_meta["world"]["site_observation"]
    assert len(obs["gpp_scale"]) == len(hard.sites) and min(obs["gpp_scale"]) > 0
    assert np.std(obs["partition_share"]) > 0
    schema.validate_site_day(hard.site_day, "hard")
    assert hard.truth_meta["difficulty"]["name"] == "hard"


def test_dial_table_and_indicators(smooth, hard):
    from lue_spie.data.virtual.worlds import dial_table, world_indicators

    rows = dial_table("literature")
    assert [r["dial"] for r in rows] == list(ALL_DIALS)
    assert all(r["this world"] == r["literature"] for r in rows)
    ind = {name: world_indicators(vf.truth, vf.sites, vf.site_day,
                                  vf.truth_meta["world"]["c4_sites"])
           for name, vf in (("smooth", smooth), ("hard", hard))}
    assert ind["hard"]["eps_max_pft_r2"] < ind["smooth"]["eps_max_pft_r2"]
    assert ind["hard"]["good_day_share"] < ind["smooth"]["good_day_share"]
    assert 0 < ind["smooth"]["eps_max_cv_c3"] < 1 and ind["smooth"]["topt_sd"] > 0


def test_the_introduction_sentences_name_the_world():
    from lue_spie.data.virtual.worlds import world_sentences

    for name in ("smooth", "paper", "literature"):
        s = world_sentences(name)
        assert f"`{name}`" in s["world_sentence"] and s["world_levels"]
    assert "measured" in world_sentences("paper")["world_levels"]
    assert world_sentences(None) == world_sentences("smooth")

"""The pay-off sweep (lue_spie.payoff): settings, the grid, the table, the figure, a tiny run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lue_spie import store
from lue_spie.data.virtual.worlds import WORLDS
from lue_spie.layout import Layout, PayoffFiles
from lue_spie.payoff import PayoffSettings, publish, read_published, run, sweep_table
from lue_spie.payoff.step import point_key

pytestmark = pytest.mark.usefixtures("one_thread")


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for y in (0.0, 1.0):
        for x in (0.0, 0.5, 1.0):
            for m in ("truth", "site-calib", "PFTmean", "OPT-PFT", "sRF", "SPIE"):
                rows.append({"point": f"p{x}_{y}", "x_dial": "heterogeneity", "x": x,
                             "y_dial": "equifinality", "y": y, "method": m, "n_sites": 20,
                             "share_positive": rng.uniform(0.2, 1.0),
                             "median_nse": rng.uniform(-0.5, 0.9)})
    return pd.DataFrame(rows)


def test_settings_check_their_values_in_one_line():
    with pytest.raises(ValueError, match=r"world 'nope'"):
        PayoffSettings(world="nope")
    with pytest.raises(ValueError, match="expected dials"):
        PayoffSettings(x_dial="nope")
    with pytest.raises(ValueError, match=r"PayoffSettings\.methods = .*expected SPIE"):
        PayoffSettings(methods=("PFTmean", "sRF"))
    with pytest.raises(ValueError, match=r"PayoffSettings\.x_factors = .*numbers >= 0"):
        PayoffSettings(x_factors=(-1.0,))
    with pytest.raises(ValueError, match=r"PayoffSettings\.n_sites = 3: expected an int >= 14"):
        PayoffSettings(n_sites=3)
    with pytest.raises(KeyError):
        PayoffSettings(methods=("SPIE", "NoSuch"))


def test_the_grid_scales_the_base_world():
    # the literature world as base: twice its biases stay inside the dials' valid ranges
    # (the paper world's are clipped there)
    s = PayoffSettings(world="literature", x_factors=(0.0, 1.0), y_factors=(0.0, 2.0))
    points = s.points()
    assert [(p.x, p.y) for p in points] == [(0.0, 0.0), (1.0, 0.0), (0.0, 2.0), (1.0, 2.0)]
    base = WORLDS["literature"]
    origin = points[0].world
    assert origin.within_pft == 0 and origin.fapar_offset_sd == 0 and origin.gap_share == 0
    assert origin.site_spread == base.site_spread  # outside both dials: the base world's
    assert points[1].world.within_pft == base.within_pft
    assert points[3].world.fapar_offset_sd == pytest.approx(2 * base.fapar_offset_sd)
    assert len({p.label for p in points}) == 4
    keys = {point_key(s_spec) for s_spec in (
        _spec(s, p) for p in points)}
    assert len(keys) == 4


def _spec(s, p):
    from lue_spie.payoff.points import PointSpec

    return PointSpec(p.world, s.n_sites, s.n_years, s.seed, s.calibration(), s.extrapolation())


def test_the_figure_draws_every_point():
    from lue_spie.plots import payoff_sweep

    fig = payoff_sweep(_table())
    assert len(fig.axes) >= 4
    with pytest.raises(ValueError, match="no rows of SPIE"):
        payoff_sweep(_table().query("method != 'SPIE'"))


def test_publish_and_read_back_with_provenance(tmp_path):
    layout = Layout(tmp_path / "r")
    files = layout.payoff
    with pytest.raises(FileNotFoundError, match="no sweep table"):
        publish(layout, "lue-spie payoff ...", out=tmp_path / "pub" / "sweep.csv")
    files.folder.mkdir(parents=True)
    store.write_parquet(_table(), files.scores, store.make_provenance("payoff",
                                                                      settings={"a": 1}))
    out = publish(layout, "lue-spie payoff --results r", out=tmp_path / "pub" / "sweep.csv")
    table, prov = read_published(out)
    assert prov["command"] == "lue-spie payoff --results r" and prov["settings"] == {"a": 1}
    assert "git_commit" in prov and prov["created"]
    pd.testing.assert_frame_equal(table, _table(), check_dtype=False)
    out.write_text(out.read_text() + "\n1,2\n")
    with pytest.raises(ValueError, match="checksum"):
        read_published(out)
    with pytest.raises(FileNotFoundError, match="no published pay-off sweep"):
        read_published(tmp_path / "nothing.csv")


def test_the_published_sweep_is_readable_when_shipped():
    if not PayoffFiles.published().is_file():
        pytest.skip("no sweep published yet")
    table, prov = read_published()
    assert {"SPIE", "truth"} <= set(table["method"]) and prov["command"].startswith("lue-spie")
    assert prov["git_commit"] and prov["created"]


@pytest.mark.slow
def test_a_tiny_sweep_runs_resumes_and_draws(tmp_path):
    s = PayoffSettings(n_sites=16, n_years=1, x_factors=(0.0, 1.0), y_factors=(1.0,),
                       methods=("PFTmean", "SPIE"), n_folds=3, calibrate_max_gen=40,
                       spie_epochs=2, dtype="float64")
    layout = Layout(tmp_path / "r")
    res = run(layout, s, progress=False, log=lambda *_: None)
    assert sorted(res.ran) == sorted(p.label for p in s.points()) and not res.kept
    t = res.table
    assert set(t["method"]) == {"truth", "noise ceiling", "site-calib", "PFTmean", "SPIE"}
    # A site whose calibration failed (flagged, never ok) may leave a method without a
    # prediction there; the truth is scored at every site.
    assert set(t["x"]) == {0.0, 1.0} and (t["n_sites"] <= 16).all()
    assert (t.loc[t["method"] == "truth", "n_sites"] == 16).all()
    assert layout.payoff.figure.is_file() and layout.payoff.scores_csv.is_file()
    record = json.loads(layout.payoff.record.read_text())
    assert record["points"] == [p.label for p in s.points()]
    again = run(layout, s, progress=False, log=lambda *_: None)
    assert not again.ran and sorted(again.kept) == sorted(res.ran)
    pd.testing.assert_frame_equal(again.table, t)
    with pytest.raises(ValueError, match="nothing to run"):
        run(layout, PayoffSettings(run=False))
    assert sweep_table(s, {}).empty

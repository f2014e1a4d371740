"""The maps of a virtual continent (lue_spie.maps, lue-spie maps).

Unit tests of the parts (the geography, the adapter to the generator, the predictors, the
skill measures) and one small run of the step on a tiny results folder: 16 towers x 2 years,
hand-made SPIE fold networks, the truth as the site calibration (a stand-in for calibrated
vectors that keeps the fixture fast), OPT-PFT fold predictions made from known vectors.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from lue_spie import store
from lue_spie.data import virtual
from lue_spie.data.features import FEATURE_NAMES, feature_matrix
from lue_spie.data.io import load_dataset
from lue_spie.data.virtual.worlds import get_world
from lue_spie.extrapolate.cv import make_folds, write_folds
from lue_spie.layout import ExtrapolationFiles, Layout, MapsTable
from lue_spie.maps import geography, predictors, product, skill, world
from lue_spie.maps.settings import TRUTH, MapsSettings
from lue_spie.maps.step import run
from lue_spie.methods.spie import FoldNetwork, make_mapping
from lue_spie.params import LOWER, PARAMETERS, UPPER, lag_mask

GRID = geography.Grid(0.0, 70.0, -25.0, 50.0, 5.0)


# ----------------------------------------------------------------------------- geography
def test_random_fields_depend_on_the_position_only_and_are_smooth():
    rf = geography.RandomFields(3, 10.0)
    lat = np.array([10.0, 40.0, 40.5, 60.0])
    lon = np.array([0.0, 20.0, 20.0, -10.0])
    one = rf.field("climate", lat, lon)
    # The same point gives the same value whatever else is evaluated with it.
    assert one[1] == pytest.approx(rf.field("climate", lat[1:2], lon[1:2])[0], abs=1e-12)
    # Neighbours (0.5 degrees, ~55 km) resemble each other, far points do not.
    a = np.linspace(5, 65, 400)
    near = np.corrcoef(rf.field("climate", a, np.zeros_like(a)),
                       rf.field("climate", a + 0.5, np.zeros_like(a)))[0, 1]
    assert near > 0.9
    lat2, lon2 = np.meshgrid(np.linspace(0, 70, 60), np.linspace(-25, 50, 60), indexing="ij")
    values = rf.field("climate", lat2, lon2)
    assert 0.5 < values.std() < 1.5 and abs(values.mean()) < 0.5
    # Another field of the family is another field.
    other = rf.field("climate", lat2, lon2, index=1)
    assert abs(np.corrcoef(values.ravel(), other.ravel())[0, 1]) < 0.5


def test_grid_rejects_a_box_that_is_not_a_multiple_of_the_resolution():
    with pytest.raises(ValueError, match="multiple of the resolution"):
        geography.Grid(0.0, 70.0, -25.0, 50.0, 3.0)
    with pytest.raises(ValueError, match="resolution must be > 0"):
        geography.Grid(0.0, 70.0, -25.0, 50.0, 0.0)


def test_the_continent_holds_every_type_with_compatible_pfts():
    c = geography.make_continent(geography.Grid(0.0, 70.0, -25.0, 50.0, 1.0), 42)
    types = geography.describe_types(c)
    assert all(n > 0 for n in types.values()), types
    # Every PFT is one the generator puts on that climate type.
    for pft, k in zip(c.cells["PFT"], c.cells["koeppen"], strict=True):
        assert world.KOEPPEN_BY_PFT[pft].get(k, 0.0) > 0.0, (pft, k)
    # Arctic tundra has no needleleaf forest; subalpine ET forests are in the mountains.
    et_enf = c.cells[(c.cells["koeppen"] == "ET") & (c.cells["PFT"] == "ENF")]
    assert (et_enf["elevation"] >= 1200.0).all() and et_enf["subalpine"].all()
    # The same seed draws the same continent; another seed another one.
    again = geography.make_continent(c.grid, 42)
    assert again.cells.equals(c.cells)
    other = geography.make_continent(c.grid, 43)
    assert not np.array_equal(other.land, c.land)


def test_a_coarse_and_a_fine_grid_draw_one_continent():
    coarse = geography.make_continent(geography.Grid(0.0, 70.0, -25.0, 50.0, 2.5), 7)
    fine = geography.make_continent(geography.Grid(0.0, 70.0, -25.0, 50.0, 0.5), 7)
    # The fine cell at the centre of each coarse cell (2.5 = 5 x 0.5: the fine cells 2 and 3
    # of five straddle it) agrees on land or sea nearly everywhere.
    r = np.arange(coarse.grid.shape[0]) * 5 + 2
    c = np.arange(coarse.grid.shape[1]) * 5 + 2
    agree = (fine.land[np.ix_(r, c)] == coarse.land).mean()
    assert agree > 0.9


# ------------------------------------------------------------------------------ the adapter
def test_field_draws_serve_in_order_and_refuse_a_changed_generator():
    fields = np.arange(12.0).reshape(3, 4)
    d = world.FieldDraws(fields, "x")
    assert np.array_equal(d.standard_normal((3, 2)), fields[:, :2])
    corr = d.multivariate_normal([1.0, 0.0], [[1.0, 0.0], [0.0, 4.0]], size=3)
    assert np.allclose(corr, np.stack([1.0 + fields[:, 2], 2.0 * fields[:, 3]], axis=1))
    d.finish()
    with pytest.raises(ValueError, match="draws more than"):
        d.standard_normal(3)
    unused = world.FieldDraws(fields, "y")
    unused.standard_normal(3)
    with pytest.raises(ValueError, match="used 1 of 4"):
        unused.finish()
    with pytest.raises(ValueError, match="asked for 2 rows"):
        world.FieldDraws(fields, "z").standard_normal((2, 1))


def test_row_streams_draw_each_row_from_its_own_generator():
    gens = [np.random.default_rng(i) for i in range(3)]
    rows = world.RowStreams(gens)
    got = rows.standard_normal((3, 5))
    for i in range(3):
        assert np.array_equal(got[i], np.random.default_rng(i).standard_normal(5))
    assert rows.uniform(0.0, 0.25, (3, 2)).shape == (3, 2)
    with pytest.raises(ValueError, match="4 rows asked for"):
        rows.standard_normal((4, 2))
    with pytest.raises(ValueError, match="scalar parameters"):
        rows.normal(np.zeros(3), 1.0, size=(3,))
    with pytest.raises(AttributeError, match="no draw 'choice'"):
        rows.choice(3)


def test_cells_are_the_same_whatever_chunk_makes_them():
    c = geography.make_continent(GRID, 5)
    cells = c.cells.iloc[:6]
    fields = c.stage_fields(cells)
    dates = pd.date_range("2005-01-01", "2006-12-31")
    whole = world.generate_cells(cells, fields, dates, 5)
    part = world.generate_cells(cells.iloc[2:5], {k: v[2:5] for k, v in fields.items()}, dates,
                                5)
    assert np.array_equal(part.truth, whole.truth[2:5])
    for k in ("T", "W", "FAPAR", "VPD"):
        assert np.array_equal(part.forcing[k], whole.forcing[k][2:5]), k
    assert np.all(whole.truth >= LOWER) and np.all(whole.truth <= UPPER)
    masked = ~lag_mask(list(cells["koeppen"]))
    assert np.all(whole.truth[masked] == 0.0)
    assert np.isfinite(whole.sites[["BIO1", "BIO12", "AI1", "VIF1", "soil_clay",
                                    "NdepNHX"]].to_numpy(float)).all()


def test_check_world_names_what_does_not_fit():
    meta = {"generator": world.GENERATOR_ID, "generator_version": world.GENERATOR_VERSION}
    # A dataset that records no world was made in the smooth one.
    assert world.check_world("smooth", meta) == get_world("smooth")
    assert world.check_world("", meta).name == "smooth"
    paper = {**meta, "difficulty": get_world("paper").to_dict()}
    assert world.check_world("", paper) == get_world("paper")
    assert world.check_world("paper", paper) == get_world("paper")
    with pytest.raises(ValueError, match="made in the world 'smooth'.*give world='smooth'"):
        world.check_world("paper", meta)
    with pytest.raises(ValueError, match="made in the world 'paper'"):
        world.check_world("smooth", paper)
    # Dials as the dataset recorded them, not as the name reads today.
    custom = {**meta, "difficulty": get_world("paper").replace(site_spread=0.5).to_dict()}
    assert world.check_world("paper", custom).site_spread == 0.5
    with pytest.raises(ValueError, match="no truth.json"):
        world.check_world("smooth", None)
    with pytest.raises(ValueError, match="generator version"):
        world.check_world("smooth", {**meta, "generator_version": "0.0.1"})
    with pytest.raises(ValueError, match="'difficulty' of type str"):
        world.check_world("", {**meta, "difficulty": "paper"})


def test_cells_of_the_paper_world_get_its_dials():
    """The paper world's cells: the same climate and canopy as the smooth world's, a wider
    truth, and a biased fAPAR product for the methods while the truth keeps the canopy's."""
    c = geography.make_continent(GRID, 5)
    cells = c.cells.iloc[:8]
    fields = c.stage_fields(cells)
    dates = pd.date_range("2005-01-01", "2005-12-31")
    smooth = world.generate_cells(cells, fields, dates, 5)
    paper_world = get_world("paper")
    paper = world.generate_cells(cells, fields, dates, 5, world=paper_world)
    assert smooth.true_fapar is None and smooth.truth_forcing() is smooth.forcing
    for k in ("T", "W", "VPD", "PAR"):
        assert np.array_equal(paper.forcing[k], smooth.forcing[k]), k
    # The canopy is the smooth world's; the product is mean + gain (true - mean) + offset,
    # with the offset and log gain from the cells' fapar_product fields.
    assert np.array_equal(paper.true_fapar, smooth.forcing["FAPAR"])
    z = fields["fapar_product"]
    true = paper.true_fapar
    mean = true.mean(axis=1, keepdims=True)
    expected = np.clip(mean + np.exp(paper_world.fapar_gain_sd * z[:, 1:2]) * (true - mean)
                       + paper_world.fapar_offset_sd * z[:, 0:1], 0.01, 0.97)
    assert np.allclose(paper.forcing["FAPAR"], expected)
    assert not np.allclose(paper.forcing["FAPAR"], true)
    assert np.array_equal(paper.truth_forcing()["FAPAR"], true)
    # The truth is the generator's function of the world's dials.
    e = world._site_terms(world.FieldDraws(fields["site_terms"], "site_terms"),
                          cells["c4"].to_numpy(), paper_world.site_spread)
    theta = world.truth_parameters(paper.sites, e, feature_spread=paper_world.feature_spread,
                                   within_pft=paper_world.within_pft)
    assert np.array_equal(paper.truth, theta)
    assert not np.allclose(paper.truth, smooth.truth)
    assert np.all(paper.truth >= LOWER) and np.all(paper.truth <= UPPER)


# ---------------------------------------------------------------------------- predictors
def test_fold_vectors_recover_and_average_the_group_vectors():
    sites = pd.DataFrame({"site": ["a", "b", "c", "d"], "PFT": ["ENF", "ENF", "GRA", "GRA"],
                          "koeppen": ["Dfb", "Cfb", "Dfb", "BSk"]})
    v = {("ENF", 0): np.arange(13.0) + 1, ("ENF", 1): np.arange(13.0) + 3,
         ("GRA", 0): np.full(13, 0.5), ("GRA", 1): np.full(13, 0.7)}
    rows = []
    for site, pft, kg, fold in (("a", "ENF", "Dfb", 0), ("b", "ENF", "Cfb", 1),
                                ("c", "GRA", "Dfb", 1), ("d", "GRA", "BSk", 0)):
        p = np.where(lag_mask([kg])[0], v[(pft, fold)], 0.0)
        rows.append({"site": site, "fold": fold, **dict(zip(PARAMETERS, p, strict=True)),
                     "note": ""})
    vectors, fallback = predictors.fold_vectors(pd.DataFrame(rows), sites, "PFT")
    j_t, j_w = PARAMETERS.index("alpha_T"), PARAMETERS.index("alpha_W")
    enf = vectors["ENF"]
    assert enf[0] == pytest.approx(2.0)  # (1 + 3) / 2
    assert enf[j_t] == pytest.approx(v[("ENF", 0)][j_t])  # free only at the Dfb tower
    assert np.isnan(enf[j_w])  # free at no ENF tower
    assert vectors["GRA"][j_w] == pytest.approx(0.5)  # the BSk tower, fold 0
    assert fallback.shape == (13,)
    bad = pd.DataFrame(rows + [{**rows[0], "site": "b", "fold": 0, "eps_max": 9.0}])
    with pytest.raises(ValueError, match="different vectors"):
        predictors.fold_vectors(bad, sites, "PFT", "OPT-PFT")


def test_methods_that_cannot_be_mapped_say_why():
    with pytest.raises(ValueError, match="Sitesim cannot be mapped"):
        predictors.check_methods(["Sitesim"])
    with pytest.raises(ValueError, match="P-model cannot be mapped"):
        predictors.check_methods(["P-model"])
    with pytest.raises(KeyError):
        predictors.check_methods(["nonsense"])
    assert predictors.check_methods(["SPIE", "OPT-All", "mRF"]) == ["SPIE", "OPT-All", "mRF"]


# -------------------------------------------------------------------------------- skill
def _cells(n=40, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(1.0, 5.0, n)
    cells = pd.DataFrame({"koeppen": rng.choice(["Dfb", "Cfb", "BSk"], n),
                          "cell_area": rng.uniform(1.0, 3.0, n),
                          "dissimilarity": rng.uniform(0.0, 2.0, n)})
    cells["inside"] = cells["dissimilarity"] <= 1.0
    cells[skill.column(TRUTH, "gpp_mean")] = truth
    cells[skill.column("A", "gpp_mean")] = truth + 0.1
    cells[skill.column("B", "gpp_mean")] = truth + rng.normal(0.0, 1.0, n)
    for j, p in enumerate(PARAMETERS):
        base = rng.uniform(LOWER[j], UPPER[j], n)
        cells[skill.column(TRUTH, p)] = base
        cells[skill.column("A", p)] = base
        cells[skill.column("B", p)] = base + 0.01 * (UPPER[j] - LOWER[j])
    return cells


def test_gpp_skill_is_the_area_weighted_error_of_mean_annual_gpp():
    cells = _cells()
    table = skill.gpp_skill(cells, ["A", "B"]).set_index("method")
    assert table.loc["A", "rmse"] == pytest.approx(0.1 * skill.DAYS_PER_YEAR)
    assert table.loc["A", "bias"] == pytest.approx(0.1 * skill.DAYS_PER_YEAR)
    w = cells["cell_area"] / cells["cell_area"].sum()
    err = (cells["gpp_mean__B"] - cells["gpp_mean__truth"]) * skill.DAYS_PER_YEAR
    assert table.loc["B", "rmse"] == pytest.approx(float(np.sqrt((w * err ** 2).sum())))
    io = skill.inside_outside(cells, ["A"]).iloc[0]
    assert io["n_inside"] + io["n_outside"] == len(cells)
    assert io["rmse_inside"] == pytest.approx(0.1 * skill.DAYS_PER_YEAR)


def test_parameter_skill_counts_a_lag_only_where_it_is_free():
    cells = _cells()
    table = skill.parameter_skill(cells, ["A", "B"])
    a = table[table["method"] == "A"].set_index("parameter")
    assert (a["rmse"] == 0.0).all()
    b = table[table["method"] == "B"].set_index("parameter")
    assert b["rmse_per_range"].to_numpy() == pytest.approx(np.full(13, 0.01))
    free = lag_mask(list(cells["koeppen"]))
    assert b.loc["alpha_T", "n_cells"] == int(free[:, PARAMETERS.index("alpha_T")].sum())
    wide = skill.error_table(skill.gpp_skill(cells, ["A", "B"]), table)
    assert list(wide.index) == ["A", "B"] and wide.shape[1] == 14


def test_error_by_distance_bins_hold_equal_numbers_of_cells():
    cells = _cells(n=50)
    table = skill.error_by_distance(cells, ["A", "B"], 5, threshold=1.0)
    per_bin = table[table["method"] == "A"]
    assert per_bin["n_cells"].sum() == 50 and per_bin["n_cells"].nunique() == 1
    assert per_bin["median_abs_error"].to_numpy() == pytest.approx(
        np.full(5, 0.1 * skill.DAYS_PER_YEAR))
    assert (np.diff(per_bin["di_median"]) > 0).all()


# -------------------------------------------------------------------- a small run of the step
def _network_layers(seed):
    g = torch.Generator().manual_seed(seed)
    sizes = [len(FEATURE_NAMES), 16, 16, 13]
    return [{"weight": 0.1 * torch.randn(a, b, generator=g, dtype=torch.float64),
             "bias": torch.zeros(b, dtype=torch.float64)}
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)]


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    """RESULTS with data (16 towers x 2 years), a calibration (the truth), the split, SPIE's
    two fold networks and OPT-PFT's fold predictions."""
    results = tmp_path_factory.mktemp("maps_results")
    virtual.generate(16, 2, 3, results / "data")
    ds = load_dataset(results / "data")
    layout = Layout(results)
    cal = ds.truth.assign(status="ok")
    store.write_parquet(cal, layout.calibration.table)
    split = make_folds(ds.sites, 2, seed=0)
    out = ExtrapolationFiles(results / "extrapolation")
    write_folds(split, out)
    spie = out.method("SPIE").folder
    opt_rows = []
    for k, train, test in split.folds():
        _, stats = feature_matrix(ds.sites.set_index("site").loc[train].reset_index())
        arch = {"n_features": len(FEATURE_NAMES), "hidden": [16, 16], "n_outputs": 13,
                "activation": "relu", "dropout_input": 0.0, "dropout_hidden": 0.0}
        FoldNetwork(fold=k, layers=_network_layers(k), architecture=arch,
                    mapping=make_mapping("log"), feature_names=tuple(FEATURE_NAMES),
                    feature_stats=stats, sites={"train": list(train), "validation": [],
                                                "test": list(test), "excluded": []},
                    training={}, settings={}).save(spie)
        info = ds.sites.set_index("site")
        for s in test:
            vec = ds.truth.set_index("site").loc[
                ds.sites[ds.sites["PFT"] == info.loc[s, "PFT"]]["site"],
                list(PARAMETERS)].mean().to_numpy() * (1.0 + 0.01 * k)
            vec = np.where(lag_mask([info.loc[s, "koeppen"]])[0], vec, 0.0)
            opt_rows.append({"site": s, "fold": k, **dict(zip(PARAMETERS, vec, strict=True)),
                             "note": ""})
    store.write_parquet(pd.DataFrame(opt_rows), out.method("OPT-PFT").params)
    return results


def test_maps_step_writes_a_cf_store_tables_and_resumes(towers):
    import cf_xarray  # noqa: F401
    import xarray as xr

    layout = Layout(towers)
    s = MapsSettings(resolution=5.0, chunk=4, seed=1, methods=("SPIE", "PFTmean", "OPT-PFT",
                                                                "sRF"))
    res = run(layout, s, progress=False, with_figures=False, log=None)
    n_land = len(res.continent.cells)
    assert len(res.cells) == n_land and res.ran and not res.skipped
    assert res.cells["site"].is_unique

    ds = xr.open_zarr(layout.maps.store)
    gpp = ds.cf[product.GPP_STANDARD_NAME]
    assert gpp.name == "gpp" and gpp.attrs["units"] == product.GPP_UNITS
    assert [ds.cf[k].name for k in ("latitude", "longitude", "time")] == ["lat", "lon", "time"]
    assert list(ds["source"].values) == [TRUTH, "SPIE", "PFTmean", "OPT-PFT", "sRF"]
    assert ds.attrs["Conventions"].startswith("CF-")
    assert gpp.sizes["time"] == len(res.dates) == 730
    # The store holds what the cells table holds, NaN at sea.
    c = res.cells.iloc[0]
    at = ds.sel(lat=c["lat"], lon=c["lon"])
    assert float(at["Topt"].sel(source="SPIE")) == pytest.approx(c["Topt__SPIE"], rel=1e-6)
    daily = at["gpp"].sel(source=TRUTH).values
    assert float(daily.mean()) == pytest.approx(c["gpp_mean__truth"], rel=1e-5)
    land = ds["land_mask"].values == 1
    assert np.isnan(ds["gpp_mean"].sel(source=TRUTH).values[~land]).all()
    assert np.isfinite(ds["gpp_mean"].sel(source=TRUTH).values[land]).all()

    # Tables: the skill of each method and the towers' own dissimilarity.
    assert set(res.tables) == {MapsTable.IDENTIFIABLE, MapsTable.GPP_SKILL,
                               MapsTable.PARAMETER_SKILL, MapsTable.DISTANCE, MapsTable.TOWERS}
    assert list(res.tables[MapsTable.GPP_SKILL]["method"]) == list(s.methods)
    # The truth as calibration: every parameter free at enough towers is identifiable.
    ident = res.tables[MapsTable.IDENTIFIABLE].set_index("parameter")
    assert ident.loc["Topt", "identifiable"]
    record = json.loads(layout.maps.record.read_text())
    assert record["chunks"]["ran"] == len(res.ran) and record["continent"]["land_cells"] == n_land

    # A rerun skips every chunk and gives the same tables.
    again = run(layout, s, progress=False, with_figures=False, log=None)
    assert not again.ran and len(again.skipped) == len(res.ran)
    pd.testing.assert_frame_equal(again.cells, res.cells)
    # A damaged chunk table (cut short) is not trusted: that chunk, and only it, is made again.
    gpp_before = xr.open_zarr(layout.maps.store)["gpp_mean"].values.copy()
    damaged = layout.maps.chunk_table(*res.ran[0]["chunk"])
    damaged.write_bytes(damaged.read_bytes()[:200])
    lines: list[str] = []
    repaired = run(layout, s, progress=False, with_figures=False, log=lines.append)
    assert [r["chunk"] for r in repaired.ran] == [res.ran[0]["chunk"]]
    assert any(line.startswith(f"maps: chunk {res.ran[0]['chunk'][0]}-") and damaged.name
               in line for line in lines), lines
    pd.testing.assert_frame_equal(repaired.cells, res.cells)
    gpp_again = xr.open_zarr(layout.maps.store)["gpp_mean"].values
    assert np.array_equal(gpp_again, gpp_before, equal_nan=True)
    # Other settings make the store anew.
    other = run(layout, MapsSettings(resolution=5.0, chunk=4, seed=2, methods=("PFTmean",)),
                progress=False, with_figures=False, log=None)
    assert other.ran and list(xr.open_zarr(layout.maps.store)["source"].values) == [
        TRUTH, "PFTmean"]


def test_maps_step_refuses_a_dataset_of_real_sites(tmp_path, towers):
    import shutil

    shutil.copytree(towers / "data", tmp_path / "data")
    (tmp_path / "data" / "truth.json").unlink()
    with pytest.raises(ValueError, match="no truth.json"):
        run(Layout(tmp_path), MapsSettings(resolution=5.0, methods=("PFTmean",)),
            progress=False, with_figures=False, log=None)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        MapsSettings(chunk=0)
    with pytest.raises(ValueError, match="distinct method names"):
        MapsSettings(methods=("SPIE", "SPIE"))
    with pytest.raises(ValueError, match="identifiable_r2"):
        MapsSettings(identifiable_r2=2.0)

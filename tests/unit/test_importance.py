"""Feature importance of the SPIE networks (lue_spie.importance, lue-spie importance).

Unit tests on small hand-made networks with known answers (additivity, analytic PD, ignored
inputs); an integration test on a constructed results folder: a virtual FLUXNET (24 sites x 2
years) and fold networks whose outputs depend on each parameter's true drivers only, so all
three methods must rank exactly those drivers on top and give every other feature zero.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lue_spie import importance as imp
from lue_spie.data import load_dataset, virtual
from lue_spie.data.features import FEATURE_CLASSES, FEATURE_NAMES, PFT_ONEHOT, feature_matrix
from lue_spie.extrapolate.cv import make_folds
from lue_spie.layout import ImportanceFiles, Layout
from lue_spie.methods.spie import FoldNetwork, load_networks, make_mapping
from lue_spie.methods.spie.network import sequential_from_layers
from lue_spie.params import PARAMETERS

pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp(sizes, *, seed=0, dropout=0.1, zero_rows=(), bias=0.1) -> nn.Sequential:
    """A random MLP as SPIE saves it (dropout modules, eval mode); input rows in
    ``zero_rows`` have zero weights (the network ignores those inputs)."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        w = torch.randn(a, b, generator=g, dtype=torch.float64) / a ** 0.5
        layers.append({"weight": w, "bias": torch.full((b,), bias, dtype=torch.float64)})
    for j in zero_rows:
        layers[0]["weight"][j] = 0.0
    return sequential_from_layers(layers, dropout, dropout)


def _data(n, F, seed=1):
    return np.random.default_rng(seed).normal(size=(n, F))


# ------------------------------------------------------------------------------------ SHAP
def test_shap_shapes_additivity_and_equal_to_plain_deep_explainer():
    net = _mlp([6, 5, 4, 3])
    bg, x = _data(12, 6, 1), _data(9, 6, 2)
    res = imp.shap_attributions(net, bg, x, chunk=4)  # three chunks (4, 4, 1)
    assert res.values.shape == (9, 6, 3) and res.expected.shape == (3,)
    with torch.no_grad():
        out = net(torch.tensor(x)).numpy()
        expected = net(torch.tensor(bg)).numpy().mean(axis=0)
    # Each site's values add up to its output minus the mean output over the background.
    np.testing.assert_allclose(res.values.sum(axis=1), out - expected, atol=1e-10)
    np.testing.assert_allclose(res.expected, expected, atol=1e-12)
    assert res.max_additivity_error < 1e-10
    # The batched call gives exactly what shap's plain DeepExplainer gives site by site.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap

        plain = shap.DeepExplainer(net, torch.tensor(bg)).shap_values(torch.tensor(x),
                                                                      check_additivity=True)
    np.testing.assert_allclose(res.values, np.asarray(plain), atol=1e-12)


def test_shap_refuses_wrong_inputs_and_a_network_in_training_mode():
    net = _mlp([4, 3, 2])
    with pytest.raises(ValueError, match=r"shape \(rows, 4\)"):
        imp.shap_attributions(net, _data(5, 3), _data(5, 4))
    with pytest.raises(ValueError, match="non-finite"):
        imp.shap_attributions(net, _data(5, 4), np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="training mode"):
        imp.shap_attributions(net.train(), _data(5, 4), _data(5, 4))
    with pytest.raises(TypeError, match="unsupported module Sigmoid"):
        imp.shap_attributions(nn.Sequential(nn.Linear(4, 2), nn.Sigmoid()).eval(),
                              _data(5, 4), _data(5, 4))


# ------------------------------------------------------------------------------------- LRP
def test_lrp_shapes_conservation_and_the_network_left_untouched():
    net = _mlp([6, 5, 4, 3], bias=0.0)
    x = _data(7, 6)
    rel = imp.lrp_attributions(net, x)
    assert rel.shape == (7, 6, 3)
    with torch.no_grad():
        out = net(torch.tensor(x)).numpy()
    # Without biases LRP-epsilon (small epsilon) conserves relevance: it sums to the output.
    np.testing.assert_allclose(rel.sum(axis=1), out, atol=1e-6)
    # ... and, for a ReLU network, equals gradient x input.
    xt = torch.tensor(x, requires_grad=True)
    for k in range(3):
        grad, = torch.autograd.grad(net(xt)[:, k].sum(), xt)
        np.testing.assert_allclose(rel[:, :, k], (grad * xt).detach().numpy(), atol=1e-6)
    assert not any(hasattr(m, "rule") for m in net)  # fresh copies: the input net is clean


# -------------------------------------------------------------------------------------- PD
def test_pd_importance_matches_the_analytic_values_of_a_linear_network():
    F, K = 4, 2
    rng = np.random.default_rng(3)
    W = rng.normal(size=(F, K))
    # ReLU(x + 100) = x + 100 on the data: the network is linear, u = (x + 100) W + b.
    net = sequential_from_layers([
        {"weight": torch.eye(F, dtype=torch.float64),
         "bias": torch.full((F,), 100.0, dtype=torch.float64)},
        {"weight": torch.tensor(W), "bias": torch.zeros(K, dtype=torch.float64)}], 0.0, 0.0)
    X = rng.normal(size=(40, F))
    X[:, 0] = rng.integers(0, 2, 40)  # a one-hot style column
    res = imp.pd_importance(net, X, categorical=[True, False, False, False], grid=10)
    assert res.importance.shape == (F, K)
    np.testing.assert_allclose(res.grids[0], [0.0, 1.0])
    np.testing.assert_allclose(res.importance[0], np.abs(W[0]) / 4.0, rtol=1e-10)
    for j in range(1, F):
        lo, hi = np.quantile(X[:, j], [0.05, 0.95], method="hazen")
        assert res.grids[j][0] == pytest.approx(lo, abs=0.1) and len(res.grids[j]) == 10
        np.testing.assert_allclose(res.importance[j], np.abs(W[j]) * res.grids[j].std(ddof=1),
                                   rtol=1e-10)
    # The rows of an output restrict its average; an output without rows is NaN.
    rows = np.ones((40, K), dtype=bool)
    rows[:, 1] = False
    masked = imp.pd_importance(net, X, categorical=[True, False, False, False], grid=10,
                               rows=rows)
    np.testing.assert_allclose(masked.importance[:, 0], res.importance[:, 0])
    assert np.isnan(masked.importance[:, 1]).all()


def test_pd_grid_falls_back_to_the_full_range_when_percentiles_coincide():
    net = _mlp([2, 3, 1])
    X = np.zeros((100, 2))
    X[:, 1] = _data(100, 1)[:, 0]
    X[0, 0], X[1, 0] = -3.0, 3.0  # 98 zeros: the 5th and 95th percentiles are both 0
    res = imp.pd_importance(net, X, categorical=[False, False], grid=3)
    np.testing.assert_allclose(res.grids[0], [-3.0, 0.0, 3.0])
    assert np.isfinite(res.importance).all()


# ------------------------------------------------------------------ ignored inputs, zeros
def test_an_ignored_feature_gets_zero_importance_under_all_three():
    F = 8
    net = _mlp([F, 6, 5, len(PARAMETERS)], zero_rows=(2, 5))
    X = pd.DataFrame(_data(30, F), columns=[f"x{i}" for i in range(F)],
                     index=[f"s{i}" for i in range(30)])
    X["x7"] = np.repeat([0.0, 1.0], 15)  # a one-hot style column ...
    ex = imp.explain_fold(net, X, ["Cfb"] * 30, feature_names=list(X.columns))
    K = len(PARAMETERS)
    assert ex.raw.shape == (3, K, F) and ex.shap.values.shape == (30, F, K)
    assert ex.lrp.shape == (30, F, K) and ex.free.shape == (30, K)
    lags = [PARAMETERS.index("alpha_T"), PARAMETERS.index("alpha_W")]
    assert np.isnan(ex.raw[:, lags]).all()  # no D, E or B site: the lags are never used
    used = [k for k in range(K) if k not in lags]
    for m in range(3):
        assert (ex.raw[m][used][:, [2, 5]] == 0).all(), imp.METHODS[m]
        assert (ex.raw[m][used][:, [0, 1, 3, 4, 6, 7]] > 0).all(), imp.METHODS[m]
    with pytest.raises(ValueError, match="has 3 outputs"):
        imp.explain_fold(_mlp([F, 4, 3]), X, ["Cfb"] * 30, feature_names=list(X.columns))
    norm = imp.normalise(ex.raw)
    assert np.nanmax(norm) == 1.0 and (norm[:, used][..., [2, 5]] == 0).all()


def test_lag_parameters_are_explained_where_they_are_free():
    net = _mlp([4, 5, len(PARAMETERS)])
    X = pd.DataFrame(_data(6, 4), columns=list("abcd"), index=list("uvwxyz"))
    # No B site: alpha_W is never free; alpha_T is free at the two D sites only.
    ex = imp.explain_fold(net, X, ["Cfb", "Cfb", "Dfb", "Dfc", "Af", "Af"],
                          feature_names=list("abcd"))
    iT, iW = PARAMETERS.index("alpha_T"), PARAMETERS.index("alpha_W")
    assert np.isnan(ex.raw[:, iW]).all() and np.isfinite(ex.raw[:, iT]).all()
    np.testing.assert_allclose(ex.raw[0, iT], np.abs(ex.shap.values[2:4, :, iT]).mean(axis=0))


def test_normalise_keeps_zero_and_nan():
    raw = np.array([[0.0, 2.0, 1.0], [0.0, 0.0, 0.0], [np.nan, np.nan, np.nan]])
    got = imp.normalise(raw)
    np.testing.assert_allclose(got[0], [0.0, 1.0, 0.5])
    assert (got[1] == 0).all() and np.isnan(got[2]).all()


def test_settings_are_checked():
    with pytest.raises(ValueError, match="pd_grid"):
        imp.ImportanceSettings(pd_grid=1)
    with pytest.raises(ValueError, match="background"):
        imp.ImportanceSettings(background=0)
    with pytest.raises(ValueError, match="pd_percentiles"):
        imp.ImportanceSettings(pd_percentiles=(0.9, 0.1))
    assert json.dumps(imp.ImportanceSettings(folds=[1, 2]).to_dict())


# ------------------------------------------------------------------------------ the truth
def test_true_drivers_read_truth_json_and_drop_a_pft_that_changes_nothing():
    from lue_spie.data.virtual.generator import _truth_meta

    meta = _truth_meta(0, 24, 2, 2005, False)
    d = imp.true_drivers(meta)
    assert d["Topt"].variables == ("PFT", "BIO1", "BIO5")
    assert d["Ca0"].variables == ("BIO1",) and d["Ca0"].listed == ("PFT", "BIO1")
    with pytest.raises(ValueError, match="drivers of parameter 'mu'"):
        bad = json.loads(json.dumps(meta))
        del bad["parameters"]["mu"]["drivers"]
        imp.true_drivers(bad)


def test_class_importance_mean_sum_and_max():
    rows = []
    for cls, cols in FEATURE_CLASSES.items():
        for i, f in enumerate(cols):
            rows.append({"parameter": "all", "feature": f, "feature_class": cls,
                         "SHAP": 0.1, "LRP": 0.2, "PD": 0.3, "combined": 0.2 + (i == 0)})
    got = imp.class_importance(pd.DataFrame(rows)).set_index("feature_class")
    soil = got.loc["Soil"]
    assert soil["n_features"] == 17 and soil["max"] == pytest.approx(1.2)
    assert soil["sum"] == pytest.approx(0.2 * 17 + 1)
    assert soil["mean"] == pytest.approx((0.2 * 17 + 1) / 17)
    assert got.loc["NPdep", "rank"] == 1  # the smallest class has the largest mean


# --------------------------------------------------- a constructed results folder (integration)
def _truth_layers(drivers: dict[str, tuple[str, ...]], names, seed=0):
    """Weights of a network whose output p depends on the features ``drivers[p]`` only:
    two hidden units per parameter in each layer, connected within the parameter."""
    g = torch.Generator().manual_seed(seed)
    P, F = len(PARAMETERS), len(names)
    H = 2 * P
    W1 = torch.zeros(F, H, dtype=torch.float64)
    W2 = torch.zeros(H, H, dtype=torch.float64)
    W3 = torch.zeros(H, P, dtype=torch.float64)
    for p, name in enumerate(PARAMETERS):
        units = [2 * p, 2 * p + 1]
        for f in drivers[name]:
            j = names.index(f)
            W1[j, units] = 0.5 + torch.rand(2, generator=g, dtype=torch.float64)
        W2[units[0], units] = torch.tensor([1.0, 0.6], dtype=torch.float64)
        W2[units[1], units] = torch.tensor([-0.3, 0.8], dtype=torch.float64)
        W3[units, p] = torch.tensor([1.0, -0.7], dtype=torch.float64)
    return [{"weight": W1, "bias": torch.full((H,), 3.0, dtype=torch.float64)},
            {"weight": W2, "bias": torch.full((H,), 0.5, dtype=torch.float64)},
            {"weight": W3, "bias": torch.zeros(P, dtype=torch.float64)}]


def _save_networks(dataset, folder, *, drivers, names=FEATURE_NAMES, layers=None,
                   n_folds=2, seed=0):
    split = make_folds(dataset.sites, n_folds, seed=seed)
    for k, train, test in split.folds():
        _, stats = feature_matrix(dataset.sites.set_index("site").loc[train].reset_index())
        arch = {"n_features": len(names), "hidden": [26, 26], "n_outputs": 13,
                "activation": "relu", "dropout_input": 0.1, "dropout_hidden": 0.1}
        FoldNetwork(fold=k, layers=layers or _truth_layers(drivers, list(names), seed=k),
                    architecture=arch, mapping=make_mapping("log"),
                    feature_names=tuple(names), feature_stats=stats,
                    sites={"train": list(train), "validation": [], "test": list(test),
                           "excluded": []},
                    training={}, settings={}).save(folder)


def _driver_features(meta) -> dict[str, tuple[str, ...]]:
    out = {}
    for p, d in imp.true_drivers(meta).items():
        feats = [v for v in d.variables if v != "PFT"]
        out[p] = tuple(feats) + (PFT_ONEHOT if "PFT" in d.variables else ())
    return out


@pytest.fixture(scope="module")
def truth_results(tmp_path_factory):
    """RESULTS/data (24 sites x 2 years) and RESULTS/extrapolation/SPIE with networks that
    use each parameter's true drivers and nothing else."""
    results = tmp_path_factory.mktemp("results")
    virtual.generate(24, 2, 5, results / "data")
    ds = load_dataset(results / "data")
    _save_networks(ds, results / "extrapolation" / "SPIE", drivers=_driver_features(
        ds.truth_meta))
    return results


def test_all_three_methods_rank_the_true_drivers_on_top(truth_results, tmp_path):
    res, written = imp.run(Layout(truth_results, importance_dir=tmp_path / "imp"),
                           imp.ImportanceSettings(pd_grid=8), with_figures=False)
    ds = load_dataset(truth_results / "data")
    drivers = _driver_features(ds.truth_meta)
    # Per parameter and method: the drivers have positive importance, the rest exactly 0.
    for p in PARAMETERS:
        sub = res.importance[res.importance["parameter"] == p].set_index("feature")
        present = [f for f in drivers[p] if f not in PFT_ONEHOT]
        others = [f for f in FEATURE_NAMES if f not in drivers[p]]
        for m in (*imp.METHODS, imp.COMBINED):
            assert (sub.loc[present, m] > 0).all(), (p, m)
            assert (sub.loc[others, m] == 0).all(), (p, m)
            assert sub.loc[list(PFT_ONEHOT), m].max() > 0 or not any(
                f in PFT_ONEHOT for f in drivers[p]), (p, m)
    # The truth table says so: precision@k = 1 and AUC = 1 everywhere.
    s = res.driver_summary
    assert set(s["method"]) == {*imp.METHODS, imp.COMBINED}
    assert len(s) == 4 * len(PARAMETERS)
    assert (s["precision_at_k"] == 1).all() and (s["auc"] == 1).all()
    assert (s["missed"] == "").all()
    compact = imp.driver_ranks(res.drivers)
    assert list(compact.index) == list(PARAMETERS)
    assert compact.loc["Topt", "SHAP"] in ("PFT 1, BIO1 2, BIO5 3", "PFT 1, BIO1 3, BIO5 2",
                                          "PFT 2, BIO1 1, BIO5 3", "PFT 2, BIO1 3, BIO5 1",
                                          "PFT 3, BIO1 1, BIO5 2", "PFT 3, BIO1 2, BIO5 1")
    d = res.drivers
    assert (d.groupby(["parameter", "method"])["rank"].max()
            == d.groupby(["parameter", "method"])["rank"].count()).all()
    # Shapes and bookkeeping.
    assert res.folds["fold"].nunique() == 2
    assert len(res.importance) == (len(PARAMETERS) + 1) * len(FEATURE_NAMES)
    assert (res.shap_check["max_additivity_error"] < 1e-8).all()
    assert set(res.by_class["parameter"]) == {*PARAMETERS, imp.ALL}
    agree = res.agreement
    assert set(agree["pair"]) == {"SHAP-LRP", "SHAP-PD", "LRP-PD"}
    assert len(agree) == 3 * (len(PARAMETERS) + 1)
    assert (agree["top10_overlap"].between(0, 10)).all()
    assert set(written) == {"importance", "importance_by_class", "method_agreement",
                            "importance_folds",
                            "pd_curves", "shap_check", "drivers", "driver_summary"}
    for stem, paths in written.items():
        assert [p.suffix for p in paths] == [".parquet", ".csv"], stem
        prov = json.loads(paths[0].with_name(f"{stem}.provenance.json").read_text())
        assert prov["settings"]["pd_grid"] == 8 and "fold0.network.pt" in prov["inputs"]
    record = json.loads(ImportanceFiles(tmp_path / "imp").record.read_text())
    assert "importance.parquet" in record["files"] and record["timings_s"]["total"] > 0


def test_same_seed_same_results_and_background_subsample(truth_results, tmp_path):
    s = imp.ImportanceSettings(background=5, pd_grid=5, seed=3)
    nets = load_networks(truth_results / "extrapolation" / "SPIE")
    sites = load_dataset(truth_results / "data").sites
    a = imp.feature_importance(nets, sites, s)
    b = imp.feature_importance(nets, sites, s)
    pd.testing.assert_frame_equal(a.importance, b.importance)
    assert (a.shap_check["n_background"] == 5).all()
    c = imp.feature_importance(nets, sites, imp.ImportanceSettings(background=5, pd_grid=5,
                                                                   seed=4))
    assert not np.allclose(a.folds["raw"].fillna(0), c.folds["raw"].fillna(0))


def test_chapter_helpers(truth_results):
    nets = load_networks(truth_results / "extrapolation" / "SPIE")
    sites = load_dataset(truth_results / "data").sites
    d = imp.describe_networks(nets)
    assert list(d["fold"]) == [0, 1] and (d["train"] + d["held_out"] == len(sites)).all()
    ex = imp.shap_example(nets, sites, fold=1, parameter="Topt", n=2)
    assert len(ex) == 2 and (ex["difference"].abs() < 1e-10).all()
    assert ex["largest contributions"].str.contains("BIO1|BIO5|PFT_").all()
    with pytest.raises(ValueError, match="unknown parameter"):
        imp.shap_example(nets, sites, fold=1, parameter="T_opt")


def test_figures_and_cli(truth_results, tmp_path):
    from lue_spie.cli import main

    out = tmp_path / "cli"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the book shows warnings as errors
        assert main(["importance", "--results", str(truth_results), "--out", str(out),
                     "--pd-grid", "5", "--folds", "1", "--quiet"]) == 0
    figs = sorted(p.name for p in (out / "figures").iterdir())
    assert figs == sorted(f"{n}.{e}" for n in ("figure8_importance_by_class",
                                               "importance_features", "importance_heatmap")
                          for e in ("png", "svg"))
    table = pd.read_parquet(out / "importance.parquet")
    assert set(pd.read_parquet(out / "importance_folds.parquet")["fold"]) == {1}
    assert pd.read_csv(out / "importance.csv").shape == table.shape


def test_plots_draw_without_warnings(truth_results):
    from lue_spie import plots

    res = imp.feature_importance(load_networks(truth_results / "extrapolation" / "SPIE"),
                                 load_dataset(truth_results / "data").sites,
                                 imp.ImportanceSettings(pd_grid=4, folds=(0,)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for stat in imp.CLASS_STATS:
            plots.importance_by_class(res.by_class, stat=stat)
        fig = plots.importance_features(res.importance, parameter="Topt", top=5,
                                        mark=["BIO1", "BIO5", "PFT"])
        labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        assert "BIO1 *" in labels and any(t.startswith("PFT_") and t.endswith(" *")
                                          for t in labels)
        plots.importance_heatmap(res.importance, method="SHAP")
        fig = plots.partial_dependence_curves(res.pd_curves, "Topt", ["BIO1", "PFT_ENF"])
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="no rows for parameter 'x'"):
        plots.importance_features(res.importance, parameter="x")
    with pytest.raises(ValueError, match="lacks column"):
        plots.importance_by_class(res.importance)


# ------------------------------------------------------------------------------ clear errors
def test_no_networks_is_a_clear_error(truth_results, tmp_path):
    (tmp_path / "data").symlink_to(truth_results / "data")
    with pytest.raises(FileNotFoundError, match="no trained SPIE networks.*run SPIE first"):
        imp.run(tmp_path)
    with pytest.raises(FileNotFoundError, match="no trained SPIE networks.*SPIE chapter"):
        imp.spie_networks(tmp_path)
    assert imp.spie_networks(truth_results).folds == [0, 1]
    with pytest.raises(FileNotFoundError, match="nowhere not found"):
        imp.run(tmp_path / "nowhere")
    (tmp_path / "nodata" / "extrapolation").mkdir(parents=True)
    (tmp_path / "nodata" / "extrapolation" / "SPIE").symlink_to(
        truth_results / "extrapolation" / "SPIE")
    with pytest.raises(FileNotFoundError, match="no dataset"):
        imp.run(tmp_path / "nodata")


def test_networks_and_feature_table_that_do_not_match_are_a_clear_error(truth_results,
                                                                        tmp_path):
    ds = load_dataset(truth_results / "data")
    fewer = tuple(f for f in FEATURE_NAMES if f != "soil_clay")
    res = tmp_path / "res"
    (res / "extrapolation").mkdir(parents=True)
    (res / "data").symlink_to(truth_results / "data")
    drivers = {p: tuple(f for f in fs if f != "soil_clay")
               for p, fs in _driver_features(ds.truth_meta).items()}
    _save_networks(ds, res / "extrapolation" / "SPIE", drivers=drivers, names=fewer)
    with pytest.raises(ValueError, match=r"feature table \(77 columns\) does not match the "
                                         r"networks' features \(76\).*unexpected \['soil_clay'"):
        imp.run(res)
    # Renamed feature, same count.
    X = pd.DataFrame(np.zeros((3, 4)), columns=list("abcd"))
    with pytest.raises(ValueError, match=r"missing \['e'\], unexpected \['d'\]"):
        imp.check_design(X, list("abce"), None)
    with pytest.raises(ValueError, match="another order"):
        imp.check_design(X, list("bacd"), None)
    # A network whose first layer has another number of inputs than its feature names.
    with pytest.raises(ValueError, match="has 5 inputs but names 4 features"):
        imp.check_design(X, list("abcd"), _mlp([5, 3, 2]))
    # Networks trained on sites this dataset does not hold.
    nets = load_networks(truth_results / "extrapolation" / "SPIE")
    renamed = ds.sites.assign(site=[f"X-{i}" for i in range(len(ds.sites))])
    with pytest.raises(ValueError, match="trained on site.*sites table lacks"):
        imp.feature_importance(nets, renamed)

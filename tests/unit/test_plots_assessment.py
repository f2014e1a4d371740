"""The assessment figures (lue_spie.plots.assessment) draw from small tables without error."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from lue_spie import plots
from lue_spie.assess.gpp import assess_gpp
from lue_spie.assess.likelihood import model_likelihood
from lue_spie.assess.parameters import equifinality, parameter_skill
from lue_spie.data.schema import QC_COLUMNS
from lue_spie.parameter_skill import edge_shares
from lue_spie.params import LOWER, PARAMETERS, UPPER, index
from lue_spie.plots.assessment import _reflected_kde
from lue_spie.timescales import GPPGrid

matplotlib.use("Agg")

METHODS = ("site-calib", "PFTmean", "mRF", "SPIE", "P-model")


@pytest.fixture(scope="module")
def small():
    """Five methods at six sites over two years, with noise growing along the methods."""
    rng = np.random.default_rng(1)
    dates = pd.date_range("2010-01-01", "2011-12-31")
    doy = dates.day_of_year.to_numpy()
    n_s = 6
    obs = np.linspace(2, 7, n_s)[:, None] * (1 + 0.7 * np.sin(2 * np.pi * (doy - 100) / 365))
    obs = obs + rng.normal(0, 0.3, obs.shape)
    sim = np.stack([obs + rng.normal(0, sd, obs.shape) for sd in (0.3, 1.0, 2.0, 1.5, 4.0)])
    qc = np.ones((len(QC_COLUMNS), n_s, len(dates)))
    qc[0, 5, 20:] = 0.0  # site 5 has 20 good days: left out at the coarser scales
    sites = tuple(f"S{i}" for i in range(n_s))
    grid = GPPGrid(METHODS, sites, dates, obs, sim, qc)
    site_table = pd.DataFrame({"site": sites, "PFT": ["ENF", "ENF", "GRA", "GRA", "CRO", "CRO"],
                               "koeppen": ["Dfb", "Dfc", "BSk", "Cfb", "Cfa", "BWh"]})
    gpp = assess_gpp(grid, site_table)
    koeppen = site_table.set_index("site")["koeppen"]
    mid = (LOWER + UPPER) / 2
    params = []
    for k, m in enumerate(METHODS[:4]):
        v = np.tile(mid, (n_s, 1)) + rng.normal(0, 0.1, (n_s, 13)) * (UPPER - LOWER) * (k + 1)
        v = np.clip(v, LOWER, UPPER)
        params.append(pd.DataFrame(v, columns=list(PARAMETERS)).assign(site=sites, method=m))
    params = pd.concat(params, ignore_index=True)
    params.loc[params["method"] == "PFTmean", "Topt"] = 20.0  # no spread: a vertical line
    params.loc[params["method"] == "site-calib", "kT"] = UPPER[index("kT")]  # all on a bound
    return grid, gpp, params, koeppen


def _check(fig):
    assert isinstance(fig, Figure)
    fig.savefig(__import__("io").BytesIO(), format="png", dpi=40)


def test_figures_2_to_5_draw(small):
    grid, gpp, _, _ = small
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would be an error block in the book
        _check(plots.nse_heatmap(gpp.site_scores))
        _check(plots.nse_heatmap(gpp.site_scores, metric="NRMSE", scales=("daily", "monthly")))
        _check(plots.spatial_skill(gpp.spatial.metrics))
        _check(plots.spatial_scatter(gpp.spatial.site_means, METHODS))
        _check(plots.nse_by_type(gpp.by_type.values))
        lk = model_likelihood(grid.select(METHODS[1:]), n_groups=10, seed=0)
        _check(plots.likelihood(lk.P, lk.average))


def test_heatmap_orders_methods_and_counts_positive_sites(small):
    _, gpp, _, _ = small
    fig = plots.nse_heatmap(gpp.site_scores, scales=("daily", "yearly"))
    panels = {a.get_title(loc="left").split(":")[0]: a for a in fig.axes
              if a.get_title(loc="left")}
    daily, yearly = panels["daily"], panels["yearly"]
    rows = [t.get_text() for t in daily.get_yticklabels()]
    d = gpp.site_scores[gpp.site_scores["scale"] == "daily"]
    count = d.assign(p=d["NSE"] > 0).groupby("method")["p"].sum()
    assert [count[m] for m in rows] == sorted(count, reverse=True)
    assert rows[0] == "site-calib"
    # Two years: no site has four yearly points, and the panel says so.
    assert any("nothing to compare" in t.get_text() for t in yearly.texts)
    assert "6 of 6 sites left out" in yearly.get_title(loc="left")


def test_figures_6_and_7_and_extras_draw(small):
    _, gpp, params, koeppen = small
    edges = edge_shares(params, koeppen)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plots.parameter_densities(params, koeppen, ["site-calib", "PFTmean"], edges=edges)
        _check(fig)
        titles = [a.get_title() for a in fig.axes]
        assert titles[index("kT")] == "on a bound: 100% / " + \
            f"{edges.set_index(['method', 'parameter']).at[('PFTmean', 'kT'), 'share']:.0%}"
        eq = equifinality(gpp.site_scores, params, koeppen, "SPIE")
        _check(plots.nse_vs_param_diff(eq))
        ref = params[params["method"] == "site-calib"]
        skill = parameter_skill(params, ref, koeppen, methods=["PFTmean", "mRF", "SPIE"])
        for value in ("NSE", "R2", "median |error| / range"):
            _check(plots.parameter_skill_heatmap(skill, value=value, title="t"))
        table = pd.DataFrame({"world": ["a", "a", "b", "b"], "method": ["mRF", "SPIE"] * 2,
                              "mean distance / range": [0.1, 0.2, 0.15, 0.1],
                              "median_NSE": [0.5, 0.7, 0.4, 0.6]})
        _check(plots.twin_comparison(table))
    with pytest.raises(ValueError, match="none of the methods"):
        plots.parameter_densities(params, koeppen, ["P-model"])


def test_reflected_kde_keeps_its_mass_inside_the_bounds():
    grid = np.linspace(0.0, 1.0, 2001)
    x = np.array([0.0, 0.0, 0.01, 0.05, 0.3, 0.5])  # piled on the lower bound
    dens = _reflected_kde(x, 0.0, 1.0, grid)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=2e-3)
    assert dens[0] == dens.max()  # the pile shows at the edge
    assert _reflected_kde(np.array([0.4, 0.4, 0.4]), 0.0, 1.0, grid) is None
    assert _reflected_kde(np.array([0.4]), 0.0, 1.0, grid) is None


def test_method_colors_follow_the_families():
    colors = plots.method_colors(["site-calib", "PFTmean", "Climmed", "SPIE", "mRF", "other"])
    assert colors["PFTmean"] == colors["Climmed"] == plots.FAMILY_COLORS["grouping"]
    assert colors["SPIE"] == plots.FAMILY_COLORS["spie"]
    assert colors["site-calib"] == plots.FAMILY_COLORS["reference"]
    assert colors["other"] == plots.FAMILY_COLORS["other"]
    assert len(set(plots.FAMILY_COLORS.values())) == len(plots.FAMILY_COLORS)

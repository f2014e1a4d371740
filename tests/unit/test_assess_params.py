"""Parameters and equifinality on constructed cases with known answers
(lue_spie.assess.parameters)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lue_spie.assess.parameters import (
    equifinality,
    equifinality_summary,
    mean_distance,
    parameter_skill,
    parameter_spread,
    relative_parameter_difference,
)
from lue_spie.parameter_skill import edge_flags, edge_shares, free_mask
from lue_spie.params import BOUNDS, LOWER, PARAMETERS, UPPER, index

MID = (LOWER + UPPER) / 2
WIDTH = UPPER - LOWER
# Koeppen types: C (no lag free), D (alpha_T free), B (alpha_W free).
KOEPPEN = pd.Series({"S1": "Cfb", "S2": "Dfb", "S3": "BSk", "S4": "Cfa", "S5": "Dfc"})


def frame(values: np.ndarray, sites=None, method: str | None = None) -> pd.DataFrame:
    sites = list(sites if sites is not None else KOEPPEN.index[: len(values)])
    t = pd.DataFrame(np.asarray(values, float), columns=list(PARAMETERS))
    t.insert(0, "site", sites)
    if method is not None:
        t.insert(0, "method", method)
    return t


def test_free_mask_follows_the_lag_rule():
    free = free_mask(["S1", "S2", "S3"], KOEPPEN)
    aT, aW = index("alpha_T"), index("alpha_W")
    assert free[:, :aT].all()
    assert list(free[:, aT]) == [False, True, False]
    assert list(free[:, aW]) == [False, False, True]
    with pytest.raises(ValueError, match="no Koeppen type.*X9"):
        free_mask(["S1", "X9"], KOEPPEN)


def test_edge_flags_and_shares_count_free_sites_only():
    v = np.tile(MID, (5, 1))
    v[0, 0] = LOWER[0]  # eps_max on the lower bound at S1
    v[1, 0] = UPPER[0] - 0.005 * WIDTH[0]  # within 1 % of the upper bound at S2
    v[2, 0] = LOWER[0] + 0.02 * WIDTH[0]  # 2 % away: not on a bound
    v[:, index("alpha_T")] = 0.0  # on the lower bound everywhere, free only at D sites
    free = free_mask(KOEPPEN.index, KOEPPEN)
    flags = edge_flags(v, free)
    assert list(flags[:, 0]) == [True, True, False, False, False]
    assert list(flags[:, index("alpha_T")]) == [False, True, False, False, True]
    shares = edge_shares(frame(v, method="M"), KOEPPEN).set_index("parameter")
    assert shares.at["eps_max", "share"] == pytest.approx(2 / 5)
    assert (shares.at["eps_max", "n_lower"], shares.at["eps_max", "n_upper"]) == (1, 1)
    assert shares.at["alpha_T", "n_free"] == 2 and shares.at["alpha_T", "share"] == 1.0
    assert shares.at["alpha_W", "n_free"] == 1 and shares.at["alpha_W", "share"] == 0.0
    assert shares.at["Topt", "share"] == 0.0
    # A parameter free nowhere has no share.
    only_c = edge_shares(frame(v[[0, 3]], sites=["S1", "S4"], method="M"), KOEPPEN)
    assert np.isnan(only_c.set_index("parameter").at["alpha_T", "share"])


def test_relative_parameter_difference_by_hand():
    a = np.tile(MID, (3, 1))
    b = a.copy()
    b[0, 0] += 0.5 * WIDTH[0]  # S1 (C): 11 free parameters, one differs by half its range
    b[1, :] = LOWER  # S2 (D): 12 free, all differ
    b[1, index("alpha_W")] = 0.0
    a[1, index("alpha_W")] = 0.0
    a[2, index("alpha_T")] = 0.0
    b[2, index("alpha_T")] = 0.9  # S3 (B): alpha_T is fixed there, its difference is ignored
    d = relative_parameter_difference(frame(a), frame(b), KOEPPEN)
    assert list(d.index) == ["S1", "S2", "S3"]
    assert d["S1"] == pytest.approx(0.5 / 11)
    assert d["S2"] == pytest.approx(0.5)  # every free value half a range away
    assert d["S3"] == pytest.approx(0.0)
    # Symmetric, zero for identical vectors, only common sites.
    d2 = relative_parameter_difference(frame(b), frame(a), KOEPPEN)
    pd.testing.assert_series_equal(d, d2)
    assert relative_parameter_difference(frame(a), frame(a[:2]), KOEPPEN).tolist() == [0, 0]


def test_parameter_skill_perfect_constant_and_known_nse():
    rng = np.random.default_rng(0)
    sites = [f"S{i}" for i in range(40)]
    koeppen = pd.Series("Cfb", index=sites)
    ref = LOWER + WIDTH * rng.uniform(0.2, 0.8, (40, 13))
    perfect = frame(ref, sites, "perfect")
    constant = frame(np.tile(ref.mean(axis=0), (40, 1)), sites, "mean")
    params = pd.concat([perfect, constant], ignore_index=True)
    skill = parameter_skill(params, frame(ref, sites), koeppen)
    assert list(skill.columns) == ["method", "parameter", "sites", "NSE", "R2", "RMSE / range",
                                   "median |error| / range"]
    p = skill[skill["method"] == "perfect"].set_index("parameter")
    m = skill[skill["method"] == "mean"].set_index("parameter")
    free = [q for q in PARAMETERS if q not in ("alpha_T", "alpha_W")]
    assert np.allclose(p.loc[free, "NSE"], 1.0) and np.allclose(p.loc[free, "RMSE / range"], 0.0)
    assert np.allclose(p.loc[free, "median |error| / range"], 0.0)
    # Predicting the reference mean at every site: NSE exactly 0 (the definition).
    assert np.allclose(m.loc[free, "NSE"], 0.0, atol=1e-12)
    assert (p.loc[["alpha_T", "alpha_W"], "sites"] == 0).all()
    assert p.loc[["alpha_T", "alpha_W"], "NSE"].isna().all()
    dist = mean_distance(skill)
    assert dist["perfect"] == pytest.approx(0.0)
    assert dist["mean"] > 0.05
    with pytest.raises(ValueError, match="no parameter vectors of method 'other'"):
        parameter_skill(params, frame(ref, sites), koeppen, methods=["other"])


def _scores(nse_ref: np.ndarray, nse_m: np.ndarray, sites) -> pd.DataFrame:
    rows = [{"method": "site-calib", "site": s, "scale": "daily", "NSE": a}
            for s, a in zip(sites, nse_ref, strict=True)]
    rows += [{"method": "M", "site": s, "scale": "daily", "NSE": b}
             for s, b in zip(sites, nse_m, strict=True)]
    return pd.DataFrame(rows)


def test_equifinality_recovers_a_planted_linear_relation():
    rng = np.random.default_rng(3)
    n = 30
    sites = [f"S{i}" for i in range(n)]
    koeppen = pd.Series("Cfb", index=sites)
    calib = np.tile(MID, (n, 1))
    shift = rng.uniform(0.0, 0.4, n)  # every free parameter moved by shift * range
    pred = calib + shift[:, None] * WIDTH
    pred[:, [index("alpha_T"), index("alpha_W")]] = 0.0
    calib[:, [index("alpha_T"), index("alpha_W")]] = 0.0
    nse_ref = np.full(n, 0.9)
    nse_m = 0.9 - (0.1 + 2.0 * shift)  # dNSE = 0.1 + 2 D exactly
    params = pd.concat([frame(calib, sites, "site-calib"), frame(pred, sites, "M")])
    eq = equifinality(_scores(nse_ref, nse_m, sites), params, koeppen, "M")
    assert eq.n == n and eq.r == pytest.approx(1.0) and eq.spearman == pytest.approx(1.0)
    assert eq.slope == pytest.approx(2.0) and eq.intercept == pytest.approx(0.1)
    assert eq.p_value < 1e-10
    np.testing.assert_allclose(eq.sites["param_diff"], shift)
    np.testing.assert_allclose(eq.sites["dNSE"], 0.1 + 2.0 * shift)
    # Unrelated: NSE loss drawn independently of the parameter difference -> r near 0.
    nse_u = 0.9 - rng.uniform(0, 0.5, n)
    eq_u = equifinality(_scores(nse_ref, nse_u, sites), params, koeppen, "M")
    assert abs(eq_u.r) < 0.5 and eq_u.p_value > 0.01
    # Sites without a defined NSE drop out; fewer than 3 leaves r undefined.
    nse_nan = nse_m.copy()
    nse_nan[2:] = np.nan
    eq_few = equifinality(_scores(nse_ref, nse_nan, sites), params, koeppen, "M")
    assert eq_few.n == 2 and np.isnan(eq_few.r)
    summary = equifinality_summary(_scores(nse_ref, nse_m, sites), params, koeppen)
    assert list(summary["method"]) == ["M"] and summary.loc[0, "r"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no parameter vectors of 'SPIE'"):
        equifinality(_scores(nse_ref, nse_m, sites), params, koeppen, "SPIE")


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="missing column.*method"):
        edge_shares(frame(np.tile(MID, (2, 1))), KOEPPEN)
    bad = frame(np.tile(MID, (2, 1))).drop(columns="Topt")
    with pytest.raises(ValueError, match="Topt"):
        relative_parameter_difference(bad, frame(np.tile(MID, (2, 1))), KOEPPEN)
    assert BOUNDS.shape == (13, 2)


def test_parameter_spread_by_hand():
    v = np.tile(MID, (4, 1))
    v[:, 0] = LOWER[0] + WIDTH[0] * np.array([0.1, 0.2, 0.3, 0.4])
    sites = ["S1", "S2", "S4", "S3"]  # C, D, C, B
    t = parameter_spread(frame(v, sites, "M"), KOEPPEN).set_index("parameter")
    assert t.at["eps_max", "std / range"] == pytest.approx(np.std([0.1, 0.2, 0.3, 0.4], ddof=1))
    assert t.at["eps_max", "iqr / range"] == pytest.approx(0.325 - 0.175)
    assert t.at["Topt", "std / range"] == 0.0
    # alpha_T free only at S2 and alpha_W only at S3: one site each, no spread defined.
    assert t.at["alpha_T", "n_free"] == 1 and np.isnan(t.at["alpha_T", "std / range"])


def test_ranking_agreement_on_constructed_worlds():
    from types import SimpleNamespace

    from lue_spie.assess.twin import compare_worlds, ranking_agreement

    def world(nse, dist):
        methods = ("site-calib", "A", "B", "C", "D")
        return SimpleNamespace(
            inputs=SimpleNamespace(methods=methods),
            headline=pd.DataFrame({"method": methods, "share_positive_NSE": 0.5,
                                   "median_NSE": nse, "truth_distance": dist}))

    # Without structural error the better simulators are closer to the truth; with it the
    # order of distances is reversed.
    clean = world([0.95, 0.8, 0.6, 0.4, 0.2], [0.01, 0.1, 0.2, 0.3, 0.4])
    wrong = world([0.9, 0.8, 0.6, 0.4, 0.2], [0.3, 0.4, 0.3, 0.2, 0.1])
    t = compare_worlds({False: clean, True: wrong})
    assert list(t[t["world"] == "with structural error"]["rank_truth"]) == [3, 5, 3, 2, 1]
    a = ranking_agreement(t).set_index("world")
    assert a.at["without structural error", "spearman"] == pytest.approx(1.0)
    assert a.at["with structural error", "spearman"] == pytest.approx(-1.0)
    assert a.at["with structural error", "best_gpp"] == "A"
    assert a.at["with structural error", "closest_to_truth"] == "D"
    assert (a["n_methods"] == 4).all()  # site-calib left out
    # Only the reference in both worlds: nothing to rank, an empty table with its columns.
    only = t[t["method"] == "site-calib"]
    assert list(ranking_agreement(only).columns) == ["world", "n_methods", "spearman",
                                                     "p_value", "best_gpp", "closest_to_truth"]


def test_twin_methods_refuses_a_string(tmp_path):
    from lue_spie.assess.twin import twin_methods

    with pytest.raises(ValueError, match="expected a list of method names.*-y"):
        twin_methods(tmp_path, "[mRF, SPIE]")
    assert twin_methods(tmp_path, ["mRF"]) == []  # no extrapolation folder: nothing to rerun

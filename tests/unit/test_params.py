"""Unit tests of lue_spie.params: the table, transforms, bounds checks and the lag mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lue_spie import params as P


def test_names_order_and_bounds():
    assert P.PARAMETERS == ("eps_max", "Topt", "kT", "kappa", "Ca0", "Ckappa", "Cm", "kW",
                            "WI", "gamma", "mu", "alpha_T", "alpha_W")
    assert P.BOUNDS.shape == (13, 2)
    assert np.all(P.BOUNDS[:, 0] < P.BOUNDS[:, 1])
    assert P.BOUNDS[P.index("kappa")].tolist() == [-0.1, -0.0001]
    assert P.BOUNDS[P.index("Cm")].tolist() == [100.0, 4000.0]
    assert P.UNITS["kappa"] == "Pa-1"
    with pytest.raises(ValueError):
        P.BOUNDS[0, 0] = 1.0  # read-only: the single source of truth cannot be edited


def test_index_unknown_name():
    with pytest.raises(KeyError, match="unknown parameter 'eps'"):
        P.index("eps")


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_scaled_round_trip(backend):
    rng = np.random.default_rng(1)
    x = P.from_scaled(rng.uniform(size=(50, 13)))
    if backend == "torch":
        x = torch.as_tensor(x)
    s = P.to_scaled(x)
    assert type(s) is type(x)
    assert float(s.min()) >= 0.0 and float(s.max()) <= 1.0
    back = P.from_scaled(s)
    np.testing.assert_allclose(np.asarray(back), np.asarray(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(P.to_scaled(P.BOUNDS.T.copy())),
                               [[0.0] * 13, [1.0] * 13])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_unconstrained_round_trip_and_inside_bounds(backend):
    rng = np.random.default_rng(2)
    x = P.from_scaled(rng.uniform(0.01, 0.99, size=(40, 13)))
    if backend == "torch":
        x = torch.as_tensor(x)
    u = P.to_unconstrained(x)
    np.testing.assert_allclose(np.asarray(P.from_unconstrained(u)), np.asarray(x), rtol=1e-9,
                               atol=1e-12)
    # Any unconstrained value maps inside the bounds, even extreme ones.
    wild = rng.normal(0.0, 30.0, size=(100, 13))
    if backend == "torch":
        wild = torch.as_tensor(wild)
    phys = np.asarray(P.from_unconstrained(wild))
    assert np.all(phys >= P.LOWER) and np.all(phys <= P.UPPER)
    P.check_params(phys)
    # Values on a bound stay finite in the unconstrained space.
    assert np.all(np.isfinite(np.asarray(P.to_unconstrained(P.BOUNDS.T.copy()))))


def test_check_params_errors():
    good = np.tile(P.BOUNDS.mean(axis=1), (3, 1))
    P.check_params(good)
    with pytest.raises(ValueError, match=r"last axis .* 13 parameters"):
        P.check_params(good[:, :12])
    bad = good.copy()
    bad[1, P.index("Topt")] = np.nan
    with pytest.raises(ValueError, match="'Topt' is nan"):
        P.check_params(bad)
    bad = good.copy()
    bad[2, P.index("kappa")] = 0.01
    with pytest.raises(ValueError, match=r"'kappa' = 0.01 \(row 2\) is outside its bounds"):
        P.check_params(bad)
    # Round-off slack on the bounds is accepted.
    edge = good.copy()
    edge[0, P.index("alpha_T")] = -1e-9
    P.check_params(edge)


def test_koeppen_main_group():
    assert P.koeppen_main_group("Dfb") == "D"
    assert P.koeppen_main_group("ET") == "E"
    assert P.koeppen_main_group(["BSk", "cfb", "A"]) == ["B", "C", "A"]
    for bad in ("", "Xfb", "9"):
        with pytest.raises(ValueError, match="Koeppen code"):
            P.koeppen_main_group(bad)


def test_lag_mask_rule():
    iT, iW = P.index("alpha_T"), P.index("alpha_W")
    codes = ["Af", "BSk", "BWh", "Cfb", "Dfb", "Dfc", "ET"]
    m = P.lag_mask(codes)
    assert m.shape == (7, 13) and m.dtype == bool
    assert m[:, iT].tolist() == [False, False, False, False, True, True, True]
    assert m[:, iW].tolist() == [False, True, True, False, False, False, False]
    others = np.delete(m, [iT, iW], axis=1)
    assert others.all()
    assert P.lag_mask("BSh").shape == (13,)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_apply_lag_mask(backend):
    x = np.tile(P.BOUNDS.mean(axis=1), (2, 1))
    m = P.lag_mask(["Cfb", "Dfb"])
    if backend == "torch":
        x = torch.tensor(x, requires_grad=True)
    y = P.apply_lag_mask(x, m)
    yn = y.detach().numpy() if backend == "torch" else y
    assert yn[0, P.index("alpha_T")] == 0.0 and yn[0, P.index("alpha_W")] == 0.0
    assert yn[1, P.index("alpha_T")] == pytest.approx(0.45)
    assert yn[1, P.index("alpha_W")] == 0.0
    np.testing.assert_array_equal(np.delete(yn, [11, 12], axis=1),
                                  np.delete(np.asarray(x.detach() if backend == "torch" else x),
                                            [11, 12], axis=1))
    if backend == "torch":
        y.sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), m.astype(float))


def test_log_scaled_round_trip_and_kappa_decades():
    from lue_spie.params import from_log_scaled, to_log_scaled

    rng = np.random.default_rng(0)
    x = P.LOWER + rng.uniform(0.01, 0.99, (50, P.N_PARAMS)) * (P.UPPER - P.LOWER)
    k = P.PARAMETERS.index("kappa")
    x[:, k] = -np.exp(rng.uniform(np.log(1e-4), np.log(0.1), 50))
    s = to_log_scaled(x, ("kappa",))
    np.testing.assert_allclose(from_log_scaled(s, ("kappa",)), x, rtol=1e-12)
    assert ((s >= 0) & (s <= 1)).all()
    # Each decade of kappa gets a third of the range (bounds -0.1 ... -1e-4).
    one_decade = to_log_scaled(np.where(np.arange(P.N_PARAMS) == k, -1e-3, x[0]), ("kappa",))
    assert one_decade[k] == pytest.approx(2 / 3)
    # Without log parameters it is to_scaled.
    np.testing.assert_allclose(to_log_scaled(x, ()), P.to_scaled(x))
    with pytest.raises(ValueError, match="unknown parameter 'kapa'"):
        to_log_scaled(x, ("kapa",))
    with pytest.raises(ValueError, match="two bounds of one sign"):
        to_log_scaled(x, ("alpha_T",))

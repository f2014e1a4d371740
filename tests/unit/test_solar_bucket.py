"""Potential radiation from solar geometry, and the soil-water bucket with its PET."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lue_spie.data import bucket, solar


def test_sw_in_pot_matches_fao56_example_8():
    # FAO-56 example 8: 20 deg S, 3 September (J = 246): Ra = 32.2 MJ m-2 d-1 with
    # Gsc = 0.0820 MJ m-2 min-1 (1366.7 W m-2); scale to our solar constant.
    ra_mj = solar.sw_in_pot(-20.0, 246) * solar.W_TO_MJ_PER_DAY
    expected = 32.2 * solar.SOLAR_CONSTANT / (0.0820 * 1e6 / 60)
    assert ra_mj == pytest.approx(expected, rel=5e-3)


def test_sw_in_pot_geometry():
    doy = np.arange(1, 366)
    eq = solar.sw_in_pot(0.0, doy)
    assert 380 < eq.min() < eq.max() < 450            # equator: always ~S0/pi
    assert solar.sw_in_pot(80.0, 1) == 0.0            # polar night
    assert solar.sw_in_pot(80.0, 172) > solar.sw_in_pot(0.0, 172)  # polar day beats equator
    north = solar.sw_in_pot(47.5, doy)
    assert 165 <= north.argmax() + 1 <= 180                  # June solstice
    assert north.argmin() + 1 >= 350 or north.argmin() + 1 <= 5  # December solstice
    # Hemispheres mirror with half a year shift (up to the orbit's eccentricity, ~7 %).
    south = solar.sw_in_pot(-47.5, (doy + 182) % 365 + 1)
    np.testing.assert_allclose(north, south, rtol=0.08, atol=5)
    assert solar.sw_in_pot(np.array([[0.0], [45.0]]), np.array([1, 100, 200])).shape == (2, 3)


def test_sw_in_pot_dates_and_errors():
    dates = pd.date_range("2010-01-01", periods=3)
    np.testing.assert_allclose(solar.sw_in_pot_dates(46.8, dates), solar.sw_in_pot(46.8, [1, 2, 3]))
    with pytest.raises(ValueError, match="latitude"):
        solar.sw_in_pot(95.0, 10)
    with pytest.raises(ValueError, match="day of year"):
        solar.sw_in_pot(10.0, 0)


def test_cloudiness_index():
    ci = solar.cloudiness_index(np.array([0.0, 100.0, 300.0, np.nan, 10.0]),
                                np.array([200.0, 200.0, 200.0, 200.0, 0.0]))
    np.testing.assert_allclose(ci[:3], [1.0, 0.5, 0.0])
    assert np.isnan(ci[3]) and ci[4] == 1.0


def test_bucket_dries_without_rain_and_fills_with_rain():
    days = 120
    P = np.zeros(days)
    PET = np.full(days, 4.0)
    W = bucket.bucket_W(P, PET, whc=100.0, W0=1.0)
    assert W.shape == (days,)
    assert np.all(np.diff(W) <= 0) and W[-1] < 0.1 and W.min() >= 0
    # At the potential rate while W > 0.75: 4 mm/d of 100 mm.
    assert W[0] == pytest.approx(0.96)
    W = bucket.bucket_W(np.full(days, 50.0), PET, whc=100.0, W0=0.0)
    # Day 2: ET = 4 * 0.5 / 0.75 = 2.67 mm from a half-full bucket.
    assert W[0] == pytest.approx(0.5) and W[1] == pytest.approx((100 - 8 / 3) / 100)
    assert np.all(W[2:] == 1.0)


def test_bucket_water_balance():
    rng = np.random.default_rng(0)
    P = rng.exponential(2.0, 365)
    PET = np.full(365, 2.5)
    whc = 150.0
    W = bucket.bucket_W(P, PET, whc, W0=0.5)
    S = np.concatenate([[0.5 * whc], W * whc])
    et = PET * np.minimum(1.0, S[:-1] / whc / bucket.BETA_CRITICAL)
    runoff_or_deficit = S[:-1] + P - et - S[1:]
    assert np.all(runoff_or_deficit >= -1e-9)            # storage never gains more than P - ET
    full = W < 1.0
    np.testing.assert_allclose(runoff_or_deficit[full & (S[1:] > 0)], 0.0, atol=1e-9)


def test_bucket_vectorised_over_sites_and_spinup():
    rng = np.random.default_rng(1)
    P = rng.exponential(2.0, (3, 400))
    PET = rng.uniform(0, 5, (3, 400))
    whc = np.array([50.0, 150.0, 300.0])
    W = bucket.bucket_W(P, PET, whc)
    for i in range(3):
        np.testing.assert_allclose(W[i], bucket.bucket_W(P[i], PET[i], whc[i]))
    assert ((W >= 0) & (W <= 1)).all()
    # Spin-up starts from the state after the first year, not from a full bucket.
    spun = bucket.bucket_W(P[0], PET[0], 50.0)
    first = bucket.bucket_W(P[0, :365], PET[0, :365], 50.0, W0=1.0)
    again = bucket.bucket_W(P[0], PET[0], 50.0, W0=first[-1])
    np.testing.assert_allclose(spun, again)


def test_bucket_errors():
    with pytest.raises(ValueError, match="shape"):
        bucket.bucket_W(np.zeros(3), np.zeros(4), 100.0)
    with pytest.raises(ValueError, match="P has 1 NaN"):
        bucket.bucket_W(np.array([1.0, np.nan]), np.zeros(2), 100.0)
    with pytest.raises(ValueError, match="PET has negative"):
        bucket.bucket_W(np.zeros(2), np.array([1.0, -1.0]), 100.0)
    with pytest.raises(ValueError, match="whc"):
        bucket.bucket_W(np.zeros(2), np.zeros(2), 0.0)
    with pytest.raises(ValueError, match="W0"):
        bucket.bucket_W(np.zeros(2), np.zeros(2), 10.0, W0=1.5)


def test_pet_formulas():
    # Priestley-Taylor at 20 degC, sea level, Rn = 10 MJ m-2 d-1:
    # Delta = 0.1447 kPa/K, gamma = 0.0674 kPa/K -> 1.26 * 0.682 * 10 / 2.45 = 3.51 mm d-1.
    assert bucket.priestley_taylor_pet(10.0, 20.0, 101.3) == pytest.approx(3.51, abs=0.02)
    assert bucket.priestley_taylor_pet(-5.0, 20.0) == 0.0
    # Makkink: 0.61 * 0.682 * 20 / 2.45 - 0.12 = 3.28 mm d-1.
    assert bucket.makkink_pet(20.0, 20.0, 101.3) == pytest.approx(3.28, abs=0.02)
    sw = np.array([250.0, 30.0])
    T = np.array([20.0, -5.0])
    with_lw = bucket.pet(sw, T, 95.0, LW_IN=np.array([350.0, 250.0]))
    without = bucket.pet(sw, T, 95.0)
    assert (with_lw >= 0).all() and (without >= 0).all()
    assert with_lw[0] > with_lw[1] and without[0] > without[1]
    assert np.isnan(bucket.pet(np.array([np.nan]), np.array([10.0]))).all()

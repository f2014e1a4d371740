"""Potential (extraterrestrial) shortwave radiation from latitude and day of year.

FLUXNET's ``SW_IN_POT`` is the top-of-atmosphere shortwave irradiance on a horizontal surface.
Its daily mean follows from solar geometry alone (FAO-56, Allen et al. 1998, eq. 21-25)::

    Ra = (S0 / pi) * dr * (ws * sin(phi) * sin(delta) + cos(phi) * cos(delta) * sin(ws))

with the solar constant ``S0`` = 1361 W m-2 (Kopp & Lean 2011), the inverse relative Earth-Sun
distance ``dr = 1 + 0.033 cos(2 pi J / 365)``, the declination
``delta = 0.409 sin(2 pi J / 365 - 1.39)`` and the sunset hour angle
``ws = arccos(-tan(phi) tan(delta))`` (clipped for polar day and night). The result is the daily
mean in W m-2 (multiply by 0.0864 for MJ m-2 d-1). It agrees with FLUXNET2015's half-hourly
SW_IN_POT averaged to days within about 1 %.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lue_spie.constants import W_M2_TO_MJ_D

#: Solar constant [W m-2] (Kopp & Lean 2011, total solar irradiance at solar minimum).
SOLAR_CONSTANT = 1361.0

#: W m-2 (daily mean) -> MJ m-2 d-1 (:data:`lue_spie.constants.W_M2_TO_MJ_D`).
W_TO_MJ_PER_DAY = W_M2_TO_MJ_D


def declination(doy: np.ndarray | float) -> np.ndarray:
    """Solar declination [rad] for day of year ``doy`` (1..366), FAO-56 eq. 24."""
    return 0.409 * np.sin(2.0 * np.pi * np.asarray(doy, dtype=float) / 365.0 - 1.39)


def sw_in_pot(lat: np.ndarray | float, doy: np.ndarray | float) -> np.ndarray:
    """Daily mean extraterrestrial shortwave irradiance on a horizontal surface [W m-2].

    Args:
        lat: Latitude in degrees north (-90..90); broadcasts against ``doy``.
        doy: Day of year, 1..366.

    Returns:
        Array of the broadcast shape, >= 0 (0 during polar night).

    Raises:
        ValueError: for a latitude outside [-90, 90] or a day of year outside [1, 366].
    """
    lat = np.asarray(lat, dtype=float)
    doy = np.asarray(doy, dtype=float)
    if np.any(np.abs(lat) > 90.0) or np.any(np.isnan(lat)):
        raise ValueError(f"sw_in_pot: latitude must be in [-90, 90] degrees, got {lat}")
    if np.any((doy < 1) | (doy > 366)) or np.any(np.isnan(doy)):
        raise ValueError("sw_in_pot: day of year must be in [1, 366]")
    phi = np.deg2rad(lat)
    delta = declination(doy)
    dr = 1.0 + 0.033 * np.cos(2.0 * np.pi * doy / 365.0)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(delta), -1.0, 1.0))
    ra = (SOLAR_CONSTANT / np.pi) * dr * (
        ws * np.sin(phi) * np.sin(delta) + np.cos(phi) * np.cos(delta) * np.sin(ws)
    )
    return np.maximum(ra, 0.0)


def sw_in_pot_dates(lat: float, dates: pd.DatetimeIndex | pd.Series | np.ndarray) -> np.ndarray:
    """:func:`sw_in_pot` for one latitude and a sequence of dates [W m-2]."""
    doy = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates))).day_of_year.to_numpy()
    return sw_in_pot(lat, doy)


def cloudiness_index(sw_in: np.ndarray, sw_in_pot_: np.ndarray) -> np.ndarray:
    """CI = 1 - SW_IN / SW_IN_POT clipped to [0, 1]; NaN where either is missing.

    Where SW_IN_POT is 0 (polar night) CI is 1 (no light reaches the surface).
    """
    sw_in = np.asarray(sw_in, dtype=float)
    pot = np.asarray(sw_in_pot_, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ci = 1.0 - sw_in / pot
    ci = np.where(pot > 0, ci, 1.0)
    ci = np.where(np.isnan(sw_in) | np.isnan(pot), np.nan, ci)
    return np.clip(ci, 0.0, 1.0)

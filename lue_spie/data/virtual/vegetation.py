"""The virtual FLUXNET's vegetation: FAPAR phenology by PFT and NDVI from FAPAR.

:func:`_phenology` gives each site a daily FAPAR by its PFT (:data:`PHENOLOGY`): evergreen
high and flat, green through mild winters; deciduous timed by smoothed temperature; grasses,
savannas and shrubs by smoothed soil water; C3 crops cut in July, C4 crops (:data:`C4_CROP`,
:data:`lue_spie.data.virtual.sites.CROPS`) sown late, dense and cut in September.
:func:`_ndvi` derives NDVI from FAPAR (Myneni & Williams 1994 linear relation inverted)
with noise and cloud contamination. The PFT's rooting depth, which sets the soil-water
bucket's capacity (:mod:`lue_spie.data.virtual.soil_water`), is part of :class:`Phenology`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

from lue_spie.data.virtual.series import _ar1, _ema

__all__ = ["Phenology", "PHENOLOGY", "C4_CROP"]


@dataclass(frozen=True)
class Phenology:
    """FAPAR phenology of a PFT: ``FAPAR = fmin + (fmax - fmin) * gT * gW * gH``.

    ``gT = sigmoid((Ts - T_thr)/2)`` with Ts the ~2-week smoothed temperature (green-up and
    senescence timed by temperature), ``gW = sigmoid((Ws - W_thr)/0.08)`` with Ws the ~3-week
    smoothed soil water (water-driven greenness), ``gH = sigmoid((harvest - day)/5)`` within
    each growing season (crops: the canopy is cut on the ``harvest`` day of the year, north-
    equivalent, jittered by a week from year to year; with a ``sowing`` day the next crop
    emerges after it, ``gH = min(1, sigmoid((harvest - day)/5) + sigmoid((day - sowing)/5))``,
    winter cereals); ``None`` switches a factor off.
    Water-limited PFTs have their ``fmax`` scaled down at arid sites.
    """

    fmin: float
    fmax: float
    T_thr: float | None
    W_thr: float | None
    arid_scaling: bool
    root_depth: float
    harvest: float | None = None
    sowing: float | None = None


#: FAPAR phenology and rooting depth [m] by PFT. MF's winter floor (0.45) is its evergreen
#: share (IGBP mixed forest: neither type above 60 % of the cover); CRO is a C3 crop
#: harvested in July and sown again in mid October (winter cereals), see :data:`C4_CROP` for
#: maize.
PHENOLOGY: dict[str, Phenology] = {
    "ENF": Phenology(0.55, 0.80, -1.0, 0.08, False, 1.2),
    "EBF": Phenology(0.82, 0.94, None, 0.10, False, 1.5),
    "DBF": Phenology(0.12, 0.88, 9.0, 0.08, False, 1.2),
    "MF": Phenology(0.40, 0.90, 7.0, 0.08, False, 1.2),
    "CRO": Phenology(0.10, 0.84, 8.0, 0.20, False, 1.0, 205.0, 285.0),
    "GRA": Phenology(0.10, 0.78, 5.0, 0.20, True, 0.7),
    "SAV": Phenology(0.12, 0.62, 5.0, 0.18, True, 1.5),
    "WSA": Phenology(0.20, 0.70, 5.0, 0.18, True, 1.5),
    "OSH": Phenology(0.10, 0.42, 3.0, 0.10, True, 0.8),
    "CSH": Phenology(0.22, 0.58, 5.0, 0.14, True, 1.2),
    "WET": Phenology(0.12, 0.74, 6.0, None, False, 0.6),
}
#: Phenology of a C4 crop (maize, sorghum): sown late (green-up at a smoothed temperature of
#: 15 degC), a dense canopy (peak FAPAR 0.94), cut in mid September.
C4_CROP = Phenology(0.06, 0.94, 13.0, None, False, 1.2, 258.0)


def _phenology(rng: np.random.Generator, sites: pd.DataFrame, T: np.ndarray, W: np.ndarray,
               AI1: np.ndarray, dates: pd.DatetimeIndex) -> np.ndarray:
    """Daily FAPAR (sites, days) by :class:`Phenology` from the temperature ``T``, the soil
    water ``W`` and the aridity index ``AI1`` (which scales ``fmax`` of water-limited PFTs),
    with each site's ``fmin``/``fmax`` jittered, a harvest day jittered from year to year
    and persistent (AR(1)) noise."""
    n, D = T.shape
    c4 = sites["c4"].to_numpy()
    ph = [C4_CROP if is_c4 else PHENOLOGY[p] for p, is_c4 in zip(sites["PFT"], c4, strict=True)]
    fmin = np.array([p.fmin for p in ph]) * np.exp(0.10 * rng.standard_normal(n))
    fmax = np.array([p.fmax for p in ph]) + 0.04 * rng.standard_normal(n)
    arid = np.array([p.arid_scaling for p in ph])
    fmax = np.where(arid, fmax * (0.6 + 0.45 * np.tanh(AI1 / 0.4)), fmax)
    fmax = np.clip(fmax, 0.2, 0.96)
    fmin = np.clip(fmin, 0.03, fmax - 0.05)
    Ts = _ema(T, 14.0)
    Ws = _ema(W, 21.0)
    # Day of the year, north-equivalent (southern sites shifted by half a year), and a harvest
    # date jittered by a week from year to year.
    south = sites["lat"].to_numpy() < 0
    doy = dates.day_of_year.to_numpy().astype(np.float64)
    day = np.where(south[:, None], (doy[None, :] + 182.0) % 365.25, doy[None, :])
    years = dates.year.to_numpy() - dates.year[0]
    jitter = 7.0 * rng.standard_normal((n, int(years[-1]) + 1))[:, years]
    g = np.ones((n, D))
    for i, p in enumerate(ph):
        if p.T_thr is not None:
            g[i] *= expit((Ts[i] - p.T_thr) / 2.0)
        if p.W_thr is not None:
            g[i] *= expit((Ws[i] - p.W_thr) / 0.08)
        if p.harvest is not None:
            # Cut on the harvest day (north-equivalent); bare until sown again (winter
            # cereals: green in autumn where it is warm enough).
            cut = expit((p.harvest + jitter[i] - day[i]) / 5.0)
            if p.sowing is not None:
                cut = cut + expit((day[i] - p.sowing - jitter[i]) / 5.0)
            g[i] *= np.clip(cut, 0.0, 1.0)
    fapar = fmin[:, None] + (fmax - fmin)[:, None] * g
    fapar = fapar + 0.025 * _ar1(rng, (n, D), 0.9)
    return np.clip(fapar, 0.01, 0.97)


def _ndvi(rng: np.random.Generator, fapar: np.ndarray, cloud: np.ndarray) -> np.ndarray:
    """NDVI (sites, days) from FAPAR by the inverted linear relation of Myneni & Williams
    (1994), with noise and, on some cloudy days, a cloud-contaminated (lower) value."""
    n_sites, n_days = fapar.shape
    ndvi = (fapar + 0.1426) / 1.1638 + 0.02 * rng.standard_normal((n_sites, n_days))
    contaminated = rng.random((n_sites, n_days)) < 0.04 * cloud
    ndvi = np.where(contaminated, ndvi - rng.uniform(0.0, 0.25, (n_sites, n_days)), ndvi)
    return np.clip(ndvi, -0.1, 0.95)

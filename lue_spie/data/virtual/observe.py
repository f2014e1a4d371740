"""How the virtual FLUXNET is observed: GPP_obs from the truth, its errors, QC and gaps.

**GPP_obs** = LUE model (:func:`lue_spie.model.simulate` with the truth, :func:`_gpp_lue`)
x the optional structural error, observed with a persistent (AR(1), 15-day e-folding, sd
0.10) and a site-year (sd 0.06) multiplicative error and heteroscedastic Gaussian noise with
sd ``0.3 + 0.1 * GPP`` [gC m-2 d-1] (:data:`NOISE`, :func:`_observe`). The structural error
(``structural_error=True``, :func:`_structural_factor`) adds two processes the LUE model
lacks (:data:`STRUCTURAL_ERROR`): a heat/drought legacy (GPP depressed for weeks after days
that are hot or dry *for the site*, i.e. relative to its own mean seasonal cycle of TMAX and
W, a memory no lag parameter can express; it fires in every climate during the episodes)
and a photosynthetic-capacity lag behind canopy greenness (spring capacity lags green-up,
autumn capacity outlasts it). With it, the true parameters' median daily NSE drops by about
0.15 and site calibration's by about 0.04 (24 sites x 4 years).

**QC and gaps** (:func:`_qc`): QC fractions are multiples of 1/48 (half-hours); blocks of
gap-filled (low-QC) days for each input, GPP blocks missing entirely (NaN), isolated low-QC
days (more in cold winters), cloud-contaminated FAPAR days; about 10 % of days fail the
good-quality rule (every QC > 0.8 and GPP_obs present).

**A world's observation dials** (:class:`lue_spie.data.virtual.worlds.World`; none of them
acts in the smooth world): the fAPAR product a site's model is given differs from its
canopy's true fAPAR by a persistent offset and a gain of the seasonal amplitude
(:func:`_fapar_product`); GPP_obs carries a persistent site scale and a respiration-shaped
partitioning error before the noise (:func:`_flux_bias`); records are shortened and extra
gap-filled blocks added (:func:`_records`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import uniform_filter1d

from lue_spie.data.virtual.series import _ar1, _ema

__all__ = ["NOISE", "STRUCTURAL_ERROR", "GAP_BLOCK_DAYS", "PARTITION_Q10"]

#: Observation error of GPP_obs: GPP_obs = GPP x (1 + e_p + e_y) + N(0, a + b GPP), with GPP
#: the noise-free value, e_p a persistent (AR(1), e-folding ``persistent_tau`` days)
#: multiplicative error of sd ``persistent_sd`` (footprint, energy-balance and partitioning
#: errors last for weeks) and e_y a site-year multiplicative error of sd ``yearly_sd`` (annual
#: sums of eddy covariance carry a systematic uncertainty of several percent: u* filtering,
#: instrument changes); the Gaussian part is the random error of daily sums.
NOISE: dict[str, float] = {"a": 0.3, "b": 0.1, "persistent_sd": 0.10, "persistent_tau": 15.0,
                           "yearly_sd": 0.06}

#: The structural error: processes of the "true" ecosystem that the LUE model lacks.
STRUCTURAL_ERROR: dict[str, Any] = {
    "legacy": {
        "description": "heat/drought legacy: GPP x (1 - depth * m), m = exponential memory "
                       "(time constant tau days) of daily stress s = clip(heat + dry, 0, 1); "
                       "heat = clip((TMAX - max(T_heat, TMAX_clim + heat_excess))/heat_width, "
                       "0, 1), dry = clip((W_clim - W - dry_excess)/dry_width, 0, 1), with "
                       "TMAX_clim and W_clim the site's mean seasonal cycles (31-day smoothed "
                       "calendar-day means): stress is relative to what the site is used to",
        "depth": 0.6, "tau": 40.0, "T_heat": 22.0, "heat_excess": 2.0, "heat_width": 4.0,
        "dry_excess": 0.05, "dry_width": 0.2,
    },
    "capacity_lag": {
        "description": "photosynthetic capacity lags canopy greenness: GPP x clip(FAPAR_c / "
                       "FAPAR, lo, hi), FAPAR_c = exponential smoothing of FAPAR (time constant "
                       "tau days)",
        "tau": 15.0, "lo": 0.5, "hi": 1.15,
    },
}


def _gpp_lue(f: Mapping[str, np.ndarray], params: np.ndarray) -> np.ndarray:
    """Noise-free GPP (sites, days) of the LUE model with the true parameters ``params``
    (sites, 13) on the forcing ``f``, in float64."""
    import torch

    from lue_spie.model import FORCING_KEYS, simulate

    forcing = {k: torch.as_tensor(np.ascontiguousarray(f[k]), dtype=torch.float64)
               for k in FORCING_KEYS}
    with torch.no_grad():
        out = simulate(forcing, torch.as_tensor(params, dtype=torch.float64))
    return out["GPP"].numpy()


def _climatology(x: np.ndarray, dates: pd.DatetimeIndex, smooth: int = 31) -> np.ndarray:
    """Each site's mean seasonal cycle of ``x`` (sites, days) on its own days: calendar-day
    means over the years (29 February with 28 February), smoothed by a centred circular
    running mean of ``smooth`` days."""
    doy = dates.day_of_year.to_numpy() - 1
    day = doy - (dates.is_leap_year & (doy >= 59))
    onehot = np.zeros((len(dates), 365))
    onehot[np.arange(len(dates)), day] = 1.0
    counts = onehot.sum(axis=0)
    clim = (x @ onehot) / np.maximum(counts, 1.0)
    have = counts > 0
    num = uniform_filter1d(np.where(have, clim, 0.0), smooth, axis=1, mode="wrap")
    den = uniform_filter1d(have.astype(np.float64), smooth, mode="wrap")
    return (num / np.maximum(den, 1e-12))[:, day]


def _structural_factor(f: Mapping[str, np.ndarray], dates: pd.DatetimeIndex) -> np.ndarray:
    """The factor (sites, days) by which the structural error (:data:`STRUCTURAL_ERROR`)
    multiplies GPP: the heat/drought legacy times the capacity lag."""
    leg = STRUCTURAL_ERROR["legacy"]
    TMAX_clim = _climatology(f["TMAX"], dates)
    W_clim = _climatology(f["W"], dates)
    heat = np.clip((f["TMAX"] - np.maximum(leg["T_heat"], TMAX_clim + leg["heat_excess"]))
                   / leg["heat_width"], 0.0, 1.0)
    dry = np.clip((W_clim - f["W"] - leg["dry_excess"]) / leg["dry_width"], 0.0, 1.0)
    memory = _ema(np.clip(heat + dry, 0.0, 1.0), leg["tau"])
    cap = STRUCTURAL_ERROR["capacity_lag"]
    fapar_c = _ema(f["FAPAR"], cap["tau"])
    capacity = np.clip(fapar_c / f["FAPAR"], cap["lo"], cap["hi"])
    return (1.0 - leg["depth"] * memory) * capacity


def _observe(rng: np.random.Generator, rng_err: np.random.Generator, gpp: np.ndarray,
             dates: pd.DatetimeIndex) -> np.ndarray:
    """GPP_obs from the noise-free GPP by :data:`NOISE` (persistent and yearly multiplicative
    error, then heteroscedastic Gaussian noise)."""
    n, D = gpp.shape
    persistent = NOISE["persistent_sd"] * _ar1(rng_err, (n, D),
                                               math.exp(-1.0 / NOISE["persistent_tau"]))
    years = dates.year.to_numpy() - dates.year[0]
    yearly = NOISE["yearly_sd"] * rng_err.standard_normal((n, int(years[-1]) + 1))[:, years]
    sd = NOISE["a"] + NOISE["b"] * np.clip(gpp, 0.0, None)
    return gpp * (1.0 + persistent + yearly) + sd * rng.standard_normal(gpp.shape)



def _blocks(rng: np.random.Generator, shape: tuple[int, int], rate: float,
            mean_len: float) -> np.ndarray:
    """Boolean mask of gap blocks: starts at ``rate`` per day, geometric lengths."""
    n_sites, n_days = shape
    starts = rng.random(shape) < rate
    lengths = rng.geometric(1.0 / mean_len, size=shape)
    s, d = np.nonzero(starts)
    diff = np.zeros((n_sites, n_days + 1), dtype=np.int64)
    np.add.at(diff, (s, d), 1)
    np.add.at(diff, (s, np.minimum(d + lengths[s, d], n_days)), -1)
    return np.cumsum(diff[:, :n_days], axis=1) > 0


def _half_hours(q: np.ndarray) -> np.ndarray:
    """Round QC fractions to multiples of 1/48 (measured half-hours of the day)."""
    return np.round(np.clip(q, 0.0, 1.0) * 48.0) / 48.0



def _qc(rng: np.random.Generator, shape: tuple[int, int], T: np.ndarray,
        cloud: np.ndarray) -> dict[str, np.ndarray]:
    """QC fractions for the inputs and GPP, and the mask of missing GPP days."""
    def base() -> np.ndarray:
        q = np.where(rng.random(shape) < 0.8, 1.0, rng.uniform(0.85, 1.0, shape))
        return q

    def gapfilled(mask: np.ndarray) -> np.ndarray:
        return np.where(mask, rng.uniform(0.0, 0.75, shape), 1.0)

    qc = {}
    for name, rate, length in (("T_QC", 0.0012, 4.0), ("VPD_QC", 0.0012, 4.0),
                               ("SW_IN_QC", 0.0012, 4.0), ("CO2_QC", 0.002, 5.0),
                               ("W_QC", 0.0015, 6.0)):
        qc[name] = _half_hours(np.minimum(base(), gapfilled(_blocks(rng, shape, rate, length))))
    # FAPAR: cloud-contaminated retrievals on some overcast days.
    bad_fapar = (rng.random(shape) < 0.05 * np.clip(cloud - 0.5, 0.0, None) / 0.5)
    qc["FAPAR_QC"] = _half_hours(np.where(bad_fapar, rng.uniform(0.2, 0.8, shape), 1.0))
    # GPP: missing blocks, gap-filled blocks, isolated low-QC days (more in cold winters).
    missing = _blocks(rng, shape, 0.005, 5.0)
    filled = _blocks(rng, shape, 0.008, 3.0)
    p_iso = 0.012 + 0.03 * (T < -5.0)
    iso = rng.random(shape) < p_iso
    q = np.minimum(base(), gapfilled(filled))
    q = np.where(iso, np.minimum(q, rng.uniform(0.3, 0.8, shape)), q)
    qc["GPP_QC"] = _half_hours(np.where(missing, 0.0, q))
    qc["_missing"] = missing
    return qc


#: Mean length [d] of the extra gap-filled blocks of a world's ``gap_share``.
GAP_BLOCK_DAYS = 7.0
#: Temperature sensitivity of the respiration-shaped partitioning error (``partition_sd``):
#: the error grows by this factor per 10 K above the site's mean temperature.
PARTITION_Q10 = 2.0


def _fapar_product(rng: np.random.Generator, fapar: np.ndarray, offset_sd: float,
                   gain_sd: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A satellite fAPAR product (sites, days) from the canopy's true fAPAR: each site's
    product is ``mean + gain x (true - mean) + offset`` with ``mean`` the site's mean true
    fAPAR, ``log(gain) ~ N(0, gain_sd)`` and ``offset ~ N(0, offset_sd)``, clipped to the
    generator's FAPAR range; returns the product and the site values (``fapar_offset``,
    ``fapar_gain``)."""
    n = fapar.shape[0]
    z = rng.standard_normal((n, 2))
    offset = offset_sd * z[:, 0]
    gain = np.exp(gain_sd * z[:, 1])
    mean = fapar.mean(axis=1, keepdims=True)
    product = mean + gain[:, None] * (fapar - mean) + offset[:, None]
    return np.clip(product, 0.01, 0.97), {"fapar_offset": offset, "fapar_gain": gain}


def _flux_bias(rng: np.random.Generator, gpp: np.ndarray, T: np.ndarray, scale_sd: float,
               partition_sd: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """GPP (sites, days) as a site's flux processing delivers it, before the random errors:
    ``GPP x scale + c x mean(GPP) x Q10^((T - mean T)/10)`` with ``log(scale) ~ N(0,
    scale_sd)`` (energy-balance closure, partitioning level) and ``c ~ N(0, partition_sd)``
    (respiration extrapolated with a wrong temperature sensitivity, :data:`PARTITION_Q10`);
    returns it and the site values (``gpp_scale``, ``partition_share``)."""
    n = gpp.shape[0]
    z = rng.standard_normal((n, 2))
    scale = np.exp(scale_sd * z[:, 0])
    share = partition_sd * z[:, 1]
    mean_gpp = np.clip(gpp, 0.0, None).mean(axis=1, keepdims=True)
    shape = PARTITION_Q10 ** ((T - T.mean(axis=1, keepdims=True)) / 10.0)
    out = gpp * scale[:, None] + share[:, None] * mean_gpp * shape
    return out, {"gpp_scale": scale, "partition_share": share}


def _records(rng: np.random.Generator, dates: pd.DatetimeIndex, n_sites: int,
             min_share: float, gap_share: float) -> tuple[np.ndarray, np.ndarray,
                                                           dict[str, np.ndarray]]:
    """A world's record lengths and extra gaps: ``(missing, gapfilled, record)`` with
    ``missing`` (sites, days) True outside each site's record (a contiguous span of whole
    years, ``round(U(min_share, 1) x years)`` of them and at least one, at a random start)
    and ``gapfilled`` True on the extra gap-filled blocks (mean length
    :data:`GAP_BLOCK_DAYS`; a site's share of such days drawn uniformly in ``[0, 2 x
    gap_share]``); ``record`` holds each site's first year and number of years."""
    years = dates.year.to_numpy()
    first, n_years = int(years[0]), int(years[-1] - years[0] + 1)
    u = rng.random((n_sites, 3))
    length = np.maximum(1, np.rint((min_share + (1.0 - min_share) * u[:, 0]) * n_years))
    length = np.minimum(length, n_years).astype(int)
    start = first + np.floor(u[:, 1] * (n_years - length + 1)).astype(int)
    inside = (years[None, :] >= start[:, None]) & (years[None, :] < (start + length)[:, None])
    share = 2.0 * gap_share * u[:, 2]
    rate = share / (GAP_BLOCK_DAYS * np.maximum(1.0 - share, 1e-6))
    starts = rng.random((n_sites, len(dates))) < rate[:, None]
    lengths = rng.geometric(1.0 / GAP_BLOCK_DAYS, size=(n_sites, len(dates)))
    s, d = np.nonzero(starts)
    diff = np.zeros((n_sites, len(dates) + 1), dtype=np.int64)
    np.add.at(diff, (s, d), 1)
    np.add.at(diff, (s, np.minimum(d + lengths[s, d], len(dates))), -1)
    gapfilled = np.cumsum(diff[:, :len(dates)], axis=1) > 0
    return ~inside, gapfilled, {"record_first_year": start, "record_years": length,
                                "gap_share": share}

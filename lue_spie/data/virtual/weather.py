"""The virtual FLUXNET's daily weather: the forcing besides soil water and vegetation.

:func:`_forcing` builds every site's daily series at once, vectorised over sites (no Python
loop over site-days; the episodes loop over events only), from the site's climate settings
(:func:`lue_spie.data.virtual.sites._site_climate`):

- *Slow weather.* Besides the synoptic AR(1) weather, temperature, cloudiness and humidity
  each have a persistent component (AR(1) with an e-folding of ``slow_tau`` = 20 days),
  temperature, cloudiness and precipitation have year-to-year anomalies, and each site has
  multi-week heat and drought episodes (:func:`_episodes`: about 0.6 per year, 2-6 weeks, in
  the warm season, in the dry season in the tropics) that warm by 1.2 x the site's
  temperature sd, suppress rain, clear the sky and dry the air (:data:`WEATHER`).
- *Temperature*: annual cycle by climate (phase flipped in the south), synoptic (AR(1) 0.7)
  + slow anomalies with an sd 20 % larger in winter than in summer outside the tropics,
  yearly anomalies, episodes, clear days warmer in summer and cooler in winter; TMIN/TMAX
  from a diurnal range that shrinks under clouds.
- *Precipitation*: wet-day occurrence from a thresholded latent series (synoptic AR(1) + the
  slow cloudiness), gamma amounts, seasonality by climate (summer rain, winter rain in Cs,
  monsoon in w, even in f), yearly anomalies; *cloudiness* a logistic-normal daily series
  (synoptic, slow, yearly, wetter days cloudier, episodes clear), so that the day-to-day
  spread of CI matches real sites (CH-Lae: sd of CI anomalies 0.21); SW_IN = transmissivity
  x (1 - 0.85 cloud) x SW_IN_POT (:func:`lue_spie.data.solar.sw_in_pot`), CI = 1 -
  SW_IN/SW_IN_POT, PAR = 0.48 x 0.0864 x SW_IN, PPFD = 0.48 x 4.57 x SW_IN.
- *VPD from the daily temperature cycle and the vapour pressure* (not from the mean
  temperature): the actual vapour pressure is es at the dew point, which lies ``K`` below
  TMIN (FAO-56 annex 6, Tdew ~ Tmin - K0): K has a seasonal cycle by climate (deep summer
  drying in Cs: 9 K in Csa summers, 2 K in winters), synoptic and slow (persistent humidity)
  anomalies, is larger under clear skies and in episodes and smaller on wet days and over
  irrigated crops in their season (:data:`lue_spie.data.virtual.sites.CROPS`); warm air
  masses are relatively dry (the dew point follows only 60 % of the weather's temperature
  anomaly). VPD = the daily mean of es over a sinusoidal cycle between TMIN and TMAX minus
  the actual vapour pressure (:func:`_es_daily_cycle`), as FLUXNET's daily VPD_F averages
  half-hours; es by Magnus over water.
- PA from elevation, CO2 rising 2.1 ppm/yr from 378.5 ppm in 2005 with a hemispheric
  seasonal cycle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit, ndtr

from lue_spie.data.solar import cloudiness_index, sw_in_pot
from lue_spie.data.virtual.series import _ar1, _ema
from lue_spie.data.virtual.sites import CROPS, _irrigation_season, _site_climate

__all__ = ["WEATHER"]

#: Weather beyond the seasonal cycle and day-to-day AR(1) noise.
WEATHER: dict[str, Any] = {
    "description": "slow (weeks) AR(1) components of temperature, cloudiness and humidity "
                   "(e-folding slow_tau days); year-to-year anomalies of temperature [K], "
                   "cloudiness [-] and precipitation (lognormal factor, sd of its log); heat "
                   "and drought episodes (rate per site-year, length in days, peak intensity) "
                   "that warm by episode_heat x T_sd, suppress rain by episode_dry, clear the "
                   "sky by episode_clear and dry the air by episode_dry_air K of dew point; "
                   "T_slow_share: share of the temperature anomaly variance in the slow "
                   "component; T_sd_winter: relative increase of the temperature sd towards "
                   "winter (decrease towards summer); DTR_season: relative swing of the "
                   "diurnal range towards summer and towards winter (short days); cloudiness "
                   "logit anomalies cloud_fast_sd, cloud_slow_sd, +cloud_wet on wet days; "
                   "dew point below TMIN: synoptic and slow anomalies K_fast_sd, K_slow_sd [K] "
                   "(times 1 + K_anom_rel x mean offset), K_cloud K per unit of clearing, "
                   "K_wet K lower on wet days; the dew point follows the fraction "
                   "dewpoint_follow of the weather's temperature anomaly",
    "slow_tau": 20.0, "T_slow_share": 0.4, "T_sd_winter": 0.2, "DTR_season": [0.1, 0.3],
    "yearly_T_sd": 0.6, "yearly_cloud_sd": 0.15, "yearly_P_sd": 0.3,
    "cloud_fast_sd": 1.6, "cloud_slow_sd": 0.6, "cloud_wet": 1.0,
    "episodes": {"rate": 0.6, "length": [14, 42], "peak": [0.5, 1.0]},
    "episode_heat": 1.2, "episode_dry": 0.9, "episode_clear": 1.5, "episode_dry_air": 3.0,
    "K_fast_sd": 1.4, "K_slow_sd": 1.4, "K_anom_rel": 0.1, "K_cloud": 4.0, "K_wet": 1.0,
    "dewpoint_follow": 0.6,
}


def _es(T: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure [Pa] (Magnus form, Alduchov & Eskridge 1996)."""
    return 610.94 * np.exp(17.625 * T / (T + 243.04))



def _episodes(rng: np.random.Generator, weight: np.ndarray, n_years: int) -> np.ndarray:
    """Heat and drought episodes: intensity in [0, 1] per site-day.

    Each site has ``Poisson(rate x years)`` episodes (:data:`WEATHER` ``episodes``) starting on
    days drawn with probability proportional to ``weight`` (the warm or dry season), lasting
    ``L`` days (uniform in ``length``) with a ``sin^2`` rise and fall and a peak intensity
    uniform in ``peak``; overlapping episodes add up to at most 1.
    """
    ep = WEATHER["episodes"]
    n, D = weight.shape
    out = np.zeros((n, D))
    counts = rng.poisson(ep["rate"] * n_years, size=n)
    for i in range(n):
        if counts[i] == 0:
            continue
        p = weight[i] / weight[i].sum()
        starts = rng.choice(D, size=counts[i], p=p)
        lengths = rng.integers(ep["length"][0], ep["length"][1] + 1, size=counts[i])
        peaks = rng.uniform(ep["peak"][0], ep["peak"][1], size=counts[i])
        for s, L, a in zip(starts, lengths, peaks, strict=True):
            t = np.arange(min(L, D - s))
            out[i, s:s + len(t)] += a * np.sin(np.pi * (t + 0.5) / L) ** 2
    return np.clip(out, 0.0, 1.0)


def _yearly(rng: np.random.Generator, n: int, years: np.ndarray, sd: float,
            tau: float) -> np.ndarray:
    """Year-to-year anomalies (one N(0, sd) value per site-year), softened at the new year by
    a forward-backward exponential smoothing of time constant ``tau`` days."""
    year_idx = years - years[0]
    steps = sd * rng.standard_normal((n, int(year_idx[-1]) + 1))[:, year_idx]
    fwd = _ema(steps, tau)
    return _ema(fwd[:, ::-1], tau)[:, ::-1]


def _es_daily_cycle(T: np.ndarray, DTR: np.ndarray, nodes: int = 6) -> np.ndarray:
    """Mean saturation vapour pressure [Pa] over a sinusoidal daily temperature cycle
    ``T + DTR/2 cos(theta)`` (midpoint rule in theta, exact to high order for this periodic
    integrand): the daily mean of es, larger than es(T) because es is convex."""
    out = np.zeros_like(T)
    for k in range(nodes):
        out += _es(T + 0.5 * DTR * math.cos(math.pi * (k + 0.5) / nodes))
    return out / nodes


def _forcing(rngs: Mapping[str, np.random.Generator], sites: pd.DataFrame,
             dates: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """The daily weather of every site (see the module docstring).

    Returns:
        ``(sites, days)`` arrays: the site-day columns T, TMIN, TMAX, VPD, P, SW_IN,
        SW_IN_POT, CI, PAR, PPFD, PA, CO2, and for the later stages the cloudiness
        (``cloud``), the heat/drought episode intensity (``episodes``) and the seasonal
        phase (``season``, +1 at the warm peak).
    """
    n, D = len(sites), len(dates)
    clim = _site_climate(rngs["climate"], sites)
    lat = sites["lat"].to_numpy()
    south = (lat < 0)[:, None]
    doy = dates.day_of_year.to_numpy()[None, :].astype(np.float64)
    years = dates.year.to_numpy()
    n_years = int(years[-1] - years[0] + 1)
    col = lambda v: np.asarray(v, dtype=np.float64)[:, None]  # noqa: E731
    W_ = WEATHER

    # Seasonal phase: warm-season peak around 19 July in the north, 18 January in the south.
    peak = np.where(south, 200.0 - 182.6, 200.0)
    season = np.cos(2.0 * np.pi * (doy - peak) / 365.25)  # +1 at the warm peak
    phase = np.where(col(clim["P_phase"]) > 0.25, -season, season)
    shape_P = 1.0 + col(clim["P_amp"]) * phase            # relative rain by season

    # Slow weather: a persistent (weeks) component of each variable, year-to-year anomalies,
    # and heat/drought episodes in the warm (extra-tropics) or dry (tropics) season.
    rs = rngs["slow"]
    phi_slow = math.exp(-1.0 / W_["slow_tau"])
    slow_T = _ar1(rs, (n, D), phi_slow)
    slow_cloud = _ar1(rs, (n, D), phi_slow)
    slow_hum = _ar1(rs, (n, D), phi_slow)
    tropical = (sites["koeppen_main"].to_numpy() == "A")[:, None]
    ep_weight = np.where(tropical, np.clip(1.0 - shape_P, 0.0, None) + 0.05,
                         np.clip(season + 0.3, 0.0, None) + 1e-3)
    ep_weight = np.broadcast_to(ep_weight, (n, D))
    epi = _episodes(rngs["episodes"], ep_weight, n_years)
    ry = rngs["yearly"]
    year_T = _yearly(ry, n, years, W_["yearly_T_sd"], 20.0)
    year_cloud = _yearly(ry, n, years, W_["yearly_cloud_sd"], 20.0)

    # Precipitation: seasonal mean, wet-day occurrence from a thresholded latent series that
    # follows the slow cloudiness, gamma amounts, yearly anomalies, suppressed in episodes.
    rp = rngs["precip"]
    year_idx = years - years[0]
    year_factor = np.exp(W_["yearly_P_sd"] * rp.standard_normal((n, n_years))
                         - 0.5 * W_["yearly_P_sd"] ** 2)
    P_mean = col(clim["P_ann"]) / 365.25 * shape_P * year_factor[:, year_idx]
    p_wet = np.clip(col(clim["wet_p"]) * shape_P**0.7, 0.01, 0.85)
    latent = math.sqrt(0.7) * _ar1(rp, (n, D), 0.45) + math.sqrt(0.3) * slow_cloud
    wet = ndtr(latent) < p_wet * (1.0 - W_["episode_dry"] * epi)
    k_gamma = 0.75
    amount = rp.gamma(k_gamma, 1.0, size=(n, D)) * (P_mean / p_wet) / k_gamma
    P = np.where(wet, amount, 0.0)

    # Cloudiness and radiation.
    rc = rngs["cloud"]
    cloud_season = np.clip(col(clim["cloud"]) * (1.0 + 0.25 * (shape_P - 1.0)), 0.02, 0.95)
    cloud = expit(logit(cloud_season) + W_["cloud_fast_sd"] * _ar1(rc, (n, D), 0.5)
                  + W_["cloud_slow_sd"] * slow_cloud + year_cloud + W_["cloud_wet"] * wet
                  - W_["episode_clear"] * epi)
    pot = sw_in_pot(lat[:, None], doy)
    tau_clear = 0.74 + 0.00004 * np.clip(col(sites["elevation"].to_numpy()), 0, None)
    SW_IN = pot * tau_clear * (1.0 - 0.85 * cloud)
    CI = cloudiness_index(SW_IN, pot)

    # Temperature: annual cycle + synoptic AR(1) + slow weather + yearly anomaly + heat
    # episodes + clear days warmer in summer, cooler in winter.
    rw = rngs["weather"]
    w_slow = W_["T_slow_share"]
    T_sd = col(clim["T_sd"]) * (1.0 - np.where(tropical, 0.0, W_["T_sd_winter"]) * season)
    T_weather = (T_sd * (math.sqrt(1.0 - w_slow) * _ar1(rw, (n, D), 0.7)
                         + math.sqrt(w_slow) * slow_T)
                 + year_T + W_["episode_heat"] * col(clim["T_sd"]) * epi)
    T = (col(clim["T_mean"]) + col(clim["T_amp"]) * season + T_weather
         + 2.0 * (col(clim["cloud"]) - cloud) * season)
    DTR = np.clip(col(clim["DTR"]) * (1.3 - 0.6 * cloud)
                  * (1.0 + np.where(tropical, 0.0, np.where(season > 0, W_["DTR_season"][0],
                                                            W_["DTR_season"][1])) * season)
                  * np.exp(0.08 * rw.standard_normal((n, D))), 1.0, 25.0)
    TMAX = T + 0.5 * DTR
    TMIN = T - 0.5 * DTR

    # Humidity: the dew point lies K below TMIN (FAO-56 annex 6), K seasonal by climate with
    # synoptic and slow anomalies, larger under clear skies and in episodes, smaller on wet
    # days; VPD = daily mean of es over the temperature cycle - actual vapour pressure.
    rh = rngs["humidity"]
    K_mid = 0.5 * (col(clim["K_warm"]) + col(clim["K_cold"]))
    K_half = 0.5 * (col(clim["K_warm"]) - col(clim["K_cold"]))
    K_scale = 1.0 + W_["K_anom_rel"] * K_mid
    K = (K_mid + K_half * season
         + K_scale * (W_["K_fast_sd"] * _ar1(rh, (n, D), 0.6) + W_["K_slow_sd"] * slow_hum)
         + W_["K_cloud"] * (col(clim["cloud"]) - cloud) - W_["K_wet"] * wet
         + W_["episode_dry_air"] * K_scale * epi)
    K = np.clip(K, 0.0, None) * np.where(_irrigation_season(sites, dates), CROPS["humid_air"],
                                         1.0)
    # Air masses warmer than usual are relatively drier: the dew point follows the weather's
    # temperature anomaly only by the fraction dewpoint_follow.
    Td = np.minimum(TMIN - K - (1.0 - W_["dewpoint_follow"]) * T_weather, TMIN)
    ea = _es(Td)
    VPD = np.clip(_es_daily_cycle(T, DTR) - ea, 0.0, None)

    # Air pressure from elevation (barometric formula) with weather.
    elev = col(sites["elevation"].to_numpy())
    PA0 = 101.325 * (1.0 - 2.25577e-5 * elev) ** 5.25588
    PA = PA0 + 0.5 * (PA0 / 101.325) * _ar1(rh, (n, D), 0.8)

    # CO2: trend + hemispheric seasonal cycle + local variability.
    ry2 = rngs["co2"]
    t_dec = (dates.year.to_numpy() + (dates.day_of_year.to_numpy() - 0.5) / 365.25)[None, :]
    seas_co2 = np.where(south, 0.6, 3.2) * np.cos(2.0 * np.pi * (doy - np.where(south, 300.0,
                                                                                  125.0)) / 365.25)
    CO2 = (378.5 + 2.1 * (t_dec - 2005.0) + seas_co2 + ry2.normal(0.0, 1.0, (n, 1))
           + 1.5 * _ar1(ry2, (n, D), 0.6))

    PAR = 0.48 * 0.0864 * SW_IN
    PPFD = 0.48 * 4.57 * SW_IN
    return {"T": T, "TMIN": TMIN, "TMAX": TMAX, "VPD": VPD, "P": P, "SW_IN": SW_IN,
            "SW_IN_POT": pot, "CI": CI, "PAR": PAR, "PPFD": PPFD, "PA": PA, "CO2": CO2,
            "cloud": cloud, "episodes": epi, "season": season}

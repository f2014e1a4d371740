"""The virtual FLUXNET's sites: who they are, where they are, and their climates.

:func:`_draw_sites` places ``n_sites`` sites over the 11 PFTs in FLUXNET2015-like shares
(:data:`PFT_SHARES`), each with a Koeppen-Geiger type compatible with its PFT
(:data:`KOEPPEN_BY_PFT`) and a latitude inside the type's band (:data:`CLIMATES`), a few in
the southern hemisphere (A, B, C types; their seasons are flipped). Coverage rule: the first
14 sites drawn are the pairs of :data:`COVERAGE`, which hold every Koeppen type once and
every PFT at least once, so **with n_sites >= 14 every PFT and every Koeppen type occurs**;
with 11 <= n_sites < 14 every PFT occurs but only n_sites of the 14 types; with fewer than
11 sites, only the first n_sites pairs of :data:`COVERAGE`. The remaining sites are allotted
to PFTs by largest remainder on the shares (net of the coverage sites) and draw their
Koeppen type from :data:`KOEPPEN_BY_PFT`. Site ids are ``VF-001`` ...; which site is which
pair is shuffled by the seed.

Mountain sites: evergreen needleleaf forests of Koeppen E are subalpine (:data:`SUBALPINE`:
44-50 degrees, 1400-2200 m, mean T about 3 degC, like CH-Dav), not arctic; other ET sites are
arctic or (30 %, :data:`ET_HIGHLAND_P`) alpine tundra above 3200 m.

Crops (:data:`CROPS`): some CRO sites grow a C4 crop, and some are irrigated;
:func:`_irrigation_season` gives their irrigated days. Neither is a site feature, as in the
paper.

:func:`_site_climate` jitters each site's climate template (:class:`Climate`) by latitude,
elevation and a random draw; the daily weather (:mod:`lue_spie.data.virtual.weather`) is
built from these settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PFT_SHARES", "KOEPPEN_BY_PFT", "COVERAGE", "Climate", "CLIMATES", "ET_HIGHLAND_P",
           "SUBALPINE", "SUBALPINE_ELEVATION", "CROPS"]
#: FLUXNET2015-like shares of the 11 PFTs (site counts of the 212 Tier-1/2 sites, rounded).
PFT_SHARES: dict[str, float] = {
    "ENF": 0.22, "GRA": 0.18, "DBF": 0.12, "CRO": 0.10, "WET": 0.09, "EBF": 0.07,
    "OSH": 0.06, "MF": 0.05, "SAV": 0.04, "WSA": 0.04, "CSH": 0.03,
}

#: Koeppen types compatible with each PFT, with weights (where such sites actually are).
KOEPPEN_BY_PFT: dict[str, dict[str, float]] = {
    "ENF": {"Dfb": 0.25, "Dfc": 0.25, "Cfb": 0.14, "Csb": 0.10, "ET": 0.08, "Csa": 0.06,
            "BSk": 0.06, "Cfa": 0.06},
    "GRA": {"Cfb": 0.20, "BSk": 0.20, "Dfb": 0.14, "Csa": 0.10, "Cfa": 0.10, "Aw": 0.05,
            "ET": 0.06, "Cwa": 0.05, "Dfc": 0.05, "BWk": 0.05},
    "DBF": {"Cfa": 0.30, "Cfb": 0.30, "Dfb": 0.30, "Cwa": 0.05, "Csa": 0.05},
    "CRO": {"Cfa": 0.30, "Cfb": 0.25, "Dfb": 0.20, "Csa": 0.10, "BSk": 0.10, "Cwa": 0.05},
    "EBF": {"Af": 0.35, "Aw": 0.20, "Cfa": 0.15, "Csa": 0.15, "Cfb": 0.10, "Csb": 0.05},
    "OSH": {"BWh": 0.20, "BWk": 0.20, "BSk": 0.20, "ET": 0.20, "Dfc": 0.10, "BSh": 0.10},
    "SAV": {"Aw": 0.50, "BSh": 0.35, "Csa": 0.15},
    "WET": {"Dfc": 0.30, "Dfb": 0.25, "ET": 0.15, "Cfb": 0.15, "Cfa": 0.15},
    "WSA": {"Aw": 0.35, "BSh": 0.25, "Csa": 0.30, "Cwa": 0.10},
    "MF": {"Dfb": 0.40, "Cfb": 0.35, "Dfc": 0.15, "Cfa": 0.10},
    "CSH": {"Csa": 0.50, "BSk": 0.20, "Csb": 0.15, "BSh": 0.15},
}

#: The first sites drawn, (Koeppen, PFT): every Koeppen type once; the first 11 cover every
#: PFT; every pair is compatible (it appears in KOEPPEN_BY_PFT).
COVERAGE: tuple[tuple[str, str], ...] = (
    ("Af", "EBF"), ("Aw", "SAV"), ("BSh", "WSA"), ("BSk", "GRA"), ("BWh", "OSH"),
    ("Cfa", "DBF"), ("Cfb", "MF"), ("Csa", "CSH"), ("Cwa", "CRO"), ("Dfb", "WET"),
    ("Dfc", "ENF"), ("BWk", "OSH"), ("Csb", "ENF"), ("ET", "GRA"),
)



@dataclass(frozen=True)
class Climate:
    """Climate template of a Koeppen type (site values are jittered around it).

    Attributes:
        lat: Absolute latitude band (min, max) in degrees.
        south: Probability of a southern-hemisphere site.
        T_mean: Annual mean temperature [degC] at the band centre, near sea level.
        T_amp: Half the annual range of the daily mean temperature cycle [K].
        T_sd: Standard deviation of the daily temperature anomalies of the synoptic and
            slow (weeks) weather together [K]; year-to-year anomalies and heat episodes add
            to it.
        P_ann: Annual precipitation [mm].
        P_amp: Relative amplitude of the precipitation seasonal cycle (0 = even).
        P_phase: 0 = rain peaks with the warm season, 0.5 = in the cold season (Cs).
        wet_p: Mean probability of a wet day.
        K_warm: Dew point below the daily minimum temperature in the warm season [K]
            (FAO-56 annex 6: Tdew ~ Tmin - K0, K0 ~ 0 in humid, 2-4 K and more in dry air).
        K_cold: The same in the cold season [K].
        cloud: Median cloudiness of a dry day [0-1] (the centre of the logistic-normal daily
            cloudiness; wet days are cloudier).
        DTR: Mean diurnal temperature range [K].
    """

    lat: tuple[float, float]
    south: float
    T_mean: float
    T_amp: float
    T_sd: float
    P_ann: float
    P_amp: float
    P_phase: float
    wet_p: float
    K_warm: float
    K_cold: float
    cloud: float
    DTR: float


#: Climate templates of the 14 Koeppen types (``ET`` is arctic tundra; see
#: :data:`ET_HIGHLAND_P` and :data:`SUBALPINE` for its mountain variants).
CLIMATES: dict[str, Climate] = {
    "Af": Climate((0, 10), 0.45, 26.0, 0.8, 0.9, 2600, 0.25, 0.0, 0.60, 0.2, 0.2, 0.35, 7.5),
    "Aw": Climate((6, 18), 0.45, 25.0, 2.5, 1.1, 1200, 0.95, 0.0, 0.35, 1.0, 6.0, 0.35, 11.0),
    "BSh": Climate((15, 30), 0.35, 23.0, 6.0, 2.0, 450, 0.90, 0.0, 0.15, 5.0, 8.0, 0.20, 14.0),
    "BSk": Climate((35, 48), 0.20, 10.0, 12.0, 3.5, 290, 0.40, 0.0, 0.22, 6.0, 2.5, 0.30, 13.0),
    "BWh": Climate((20, 32), 0.30, 24.0, 8.0, 2.0, 100, 0.50, 0.0, 0.05, 12.0, 8.0, 0.10, 16.0),
    "BWk": Climate((36, 46), 0.20, 11.0, 12.0, 3.5, 170, 0.30, 0.0, 0.10, 10.0, 4.0, 0.18, 15.0),
    "Cfa": Climate((26, 38), 0.25, 16.0, 9.0, 3.5, 1200, 0.30, 0.0, 0.33, 1.8, 1.0, 0.38, 10.0),
    "Cfb": Climate((42, 56), 0.25, 9.5, 7.5, 4.1, 900, 0.15, 0.5, 0.45, 2.0, 0.3, 0.32, 8.0),
    "Csa": Climate((32, 42), 0.25, 16.0, 8.0, 2.4, 550, 0.95, 0.5, 0.22, 9.0, 2.0, 0.22, 12.0),
    "Csb": Climate((38, 46), 0.25, 12.0, 5.5, 2.3, 900, 0.90, 0.5, 0.30, 6.0, 1.5, 0.28, 11.0),
    "Cwa": Climate((24, 36), 0.10, 16.0, 11.0, 2.8, 950, 0.90, 0.0, 0.30, 1.2, 5.0, 0.36, 10.0),
    "Dfb": Climate((44, 58), 0.00, 5.5, 12.5, 4.0, 650, 0.40, 0.0, 0.35, 0.6, 0.3, 0.42, 10.0),
    "Dfc": Climate((56, 68), 0.00, -1.0, 15.0, 4.3, 500, 0.45, 0.0, 0.38, 0.5, 0.3, 0.48, 9.0),
    "ET": Climate((62, 74), 0.00, -7.0, 12.0, 3.5, 330, 0.45, 0.0, 0.35, 1.0, 0.5, 0.55, 7.0),
}
#: Probability that a non-forest ET site is a high-elevation site at lower latitude (alpine
#: tundra, e.g. the Tibetan plateau sites): 28-42 degrees, 3200-4700 m.
ET_HIGHLAND_P = 0.3
#: Evergreen needleleaf forest of Koeppen E is subalpine, not arctic (FLUXNET's ENF sites of
#: type ET are mountain forests near the tree line such as CH-Dav, 1639 m): this template
#: replaces the arctic one for them. ``T_mean`` is the value at the site (no lapse-rate
#: correction), latitude band and elevation range below.
SUBALPINE = Climate((44, 50), 0.0, 3.0, 7.5, 3.9, 1000, 0.30, 0.0, 0.45, 1.5, 3.0, 0.40, 9.0)
SUBALPINE_ELEVATION = (1400.0, 2200.0)

#: Crop world (not in the site features, as in the paper): the share of CRO sites with a C4
#: crop where C4 crops are grown (hot-summer Koeppen types), and the shares that are
#: irrigated (C4 crops: all in dry B and Cs climates, else ``irrigated_c4``; C3 crops of B and
#: Cs climates: ``irrigated_c3_dry``). In the irrigation ``season`` (north-equivalent days of
#: the year) the bucket gets the day's deficit PET - P on top of rain
#: (:func:`lue_spie.data.virtual.soil_water._irrigation`),
#: while P stays the measured rain, as in FLUXNET, and the air over the transpiring canopy is
#: moister (the dew point's offset below TMIN times ``humid_air``).
CROPS: dict[str, Any] = {
    "c4_share": 0.45, "c4_koeppen": ("Cfa", "BSk", "Cwa", "Csa"),
    "irrigated_c4": 0.6, "irrigated_c3_dry": 0.5,
    "season_c3": (70.0, 205.0), "season_c4": (130.0, 258.0), "humid_air": 0.3,
}


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total`` in proportion to ``weights`` (Hamilton's method:
    floors of the quotas, then one more for the largest remainders; ties by position)."""
    if total <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    if w.sum() <= 0:
        w = np.ones_like(w)
    quota = w / w.sum() * total
    n = np.floor(quota).astype(np.int64)
    rest = total - int(n.sum())
    order = np.lexsort((np.arange(len(w)), -(quota - n)))  # largest remainder, stable
    n[order[:rest]] += 1
    return n


def _draw_sites(rng: np.random.Generator, n_sites: int,
                rng_crops: np.random.Generator) -> pd.DataFrame:
    """The sites table of the world (see the module docstring): ``site, PFT, koeppen,
    koeppen_main, lat, lon, elevation`` and the regimes ``highland, subalpine, c4,
    irrigated``; the crop regimes come from the stream ``rng_crops``."""
    pfts = list(PFT_SHARES)
    pairs: list[tuple[str, str]] = list(COVERAGE[:n_sites])
    if n_sites > len(COVERAGE):
        have = np.array([sum(p == pft for _, p in pairs) for pft in pfts], dtype=np.float64)
        share = np.array([PFT_SHARES[p] for p in pfts])
        deficit = np.clip(share * n_sites - have, 0.0, None)
        counts = _largest_remainder(deficit, n_sites - len(pairs))
        for pft, c in zip(pfts, counts, strict=True):
            kg = list(KOEPPEN_BY_PFT[pft])
            w = np.array([KOEPPEN_BY_PFT[pft][k] for k in kg])
            for k in rng.choice(len(kg), size=int(c), p=w / w.sum()):
                pairs.append((kg[k], pft))
    order = rng.permutation(n_sites)
    pairs = [pairs[i] for i in order]
    koeppen = np.array([k for k, _ in pairs], dtype=object)
    pft = np.array([p for _, p in pairs], dtype=object)

    lat = np.empty(n_sites)
    elev = np.empty(n_sites)
    highland = np.zeros(n_sites, dtype=bool)
    subalpine = (koeppen == "ET") & (pft == "ENF")
    u = rng.random((n_sites, 4))
    for i, k in enumerate(koeppen):
        c = SUBALPINE if subalpine[i] else CLIMATES[k]
        lo, hi = c.lat
        a = lo + (hi - lo) * u[i, 0]
        south = u[i, 1] < c.south
        if k == "ET" and not subalpine[i] and u[i, 2] < ET_HIGHLAND_P:
            highland[i] = True
            a = 28.0 + 14.0 * u[i, 0]
        lat[i] = -a if south else a
        if highland[i]:
            elev[i] = 3200.0 + 1500.0 * u[i, 3]
        elif subalpine[i]:
            e0, e1 = SUBALPINE_ELEVATION
            elev[i] = e0 + (e1 - e0) * u[i, 3]
        else:
            elev[i] = float(np.clip(np.exp(math.log(250.0) + 1.0 * (u[i, 3] - 0.5) * 3.0),
                                    2.0, 2600.0))
    # Crops: C4 share where C4 crops grow, irrigation (drawn from their own stream).
    uc = rng_crops.random((n_sites, 2))
    cro = pft == "CRO"
    c4 = cro & np.isin(koeppen, CROPS["c4_koeppen"]) & (uc[:, 0] < CROPS["c4_share"])
    dry = np.array([k[0] == "B" or k.startswith("Cs") for k in koeppen], dtype=bool)
    irrigated = (c4 & (dry | (uc[:, 1] < CROPS["irrigated_c4"]))) | (
        cro & ~c4 & dry & (uc[:, 1] < CROPS["irrigated_c3_dry"]))
    width = max(3, len(str(n_sites)))
    ids = [f"VF-{i + 1:0{width}d}" for i in range(n_sites)]
    lon = np.round(rng.uniform(-179.9, 179.9, n_sites), 4)
    return pd.DataFrame({
        "site": ids, "PFT": pft, "koeppen": koeppen,
        "koeppen_main": [k[0] for k in koeppen], "lat": np.round(lat, 4), "lon": lon,
        "elevation": np.round(elev, 1), "highland": highland, "subalpine": subalpine,
        "c4": c4, "irrigated": irrigated,
    })


_CLIMATE_FIELDS = ("T_mean", "T_amp", "T_sd", "P_ann", "P_amp", "P_phase", "wet_p", "K_warm",
                   "K_cold", "cloud", "DTR")


def _site_climate(rng: np.random.Generator, sites: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-site climate settings: template values, latitude/elevation effects, jitter."""
    n = len(sites)
    subalpine = sites["subalpine"].to_numpy()
    templates = [SUBALPINE if s else CLIMATES[k] for k, s in zip(sites["koeppen"], subalpine,
                                                                  strict=True)]
    tpl = {f: np.array([getattr(c, f) for c in templates]) for f in _CLIMATE_FIELDS}
    band_mid = np.array([np.mean(c.lat) for c in templates])
    alat = np.abs(sites["lat"].to_numpy())
    mountain = sites["highland"].to_numpy() | subalpine
    elev = sites["elevation"].to_numpy()
    j = rng.standard_normal((n, 9))
    T_mean = (tpl["T_mean"] - np.where(mountain, 0.0, 0.45 * (alat - band_mid))
              - np.where(mountain, 0.0, 0.004 * (elev - 250.0))
              + np.where(subalpine, 0.8, 1.2) * j[:, 0])
    T_amp = np.clip(tpl["T_amp"] * np.exp(0.12 * j[:, 1])
                    * np.where(sites["highland"].to_numpy(), 0.75, 1.0), 0.3, None)
    P_ann = tpl["P_ann"] * np.exp(0.25 * np.clip(j[:, 2], -2.0, 2.0))
    P_amp = np.clip(tpl["P_amp"] + 0.08 * j[:, 3], 0.0, 0.97)
    wet_p = np.clip(tpl["wet_p"] * np.exp(0.12 * j[:, 4]), 0.02, 0.8)
    dryness = np.exp(0.2 * j[:, 5])
    K_warm = tpl["K_warm"] * dryness
    K_cold = tpl["K_cold"] * dryness
    cloud = np.clip(tpl["cloud"] + 0.05 * j[:, 6], 0.05, 0.85)
    DTR = np.clip(tpl["DTR"] + 1.0 * j[:, 7], 4.0, 20.0)
    T_sd = tpl["T_sd"] * np.exp(0.08 * j[:, 8])
    return {"T_mean": T_mean, "T_amp": T_amp, "T_sd": T_sd, "P_ann": P_ann,
            "P_amp": P_amp, "P_phase": tpl["P_phase"], "wet_p": wet_p, "K_warm": K_warm,
            "K_cold": K_cold, "cloud": cloud, "DTR": DTR}


def _irrigation_season(sites: pd.DataFrame, dates: pd.DatetimeIndex) -> np.ndarray:
    """(sites, days) True on the irrigated days (:data:`CROPS` seasons) of irrigated sites."""
    south = sites["lat"].to_numpy() < 0
    doy = dates.day_of_year.to_numpy().astype(np.float64)
    day = np.where(south[:, None], (doy[None, :] + 182.0) % 365.25, doy[None, :])
    c4 = sites["c4"].to_numpy()[:, None]
    lo = np.where(c4, CROPS["season_c4"][0], CROPS["season_c3"][0])
    hi = np.where(c4, CROPS["season_c4"][1], CROPS["season_c3"][1])
    return sites["irrigated"].to_numpy()[:, None] & (day >= lo) & (day < hi)

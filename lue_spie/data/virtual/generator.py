"""Virtual FLUXNET: the project's embedded, deterministic default data (SPEC section 6).

:func:`make_tables` builds, and :func:`generate` writes, a dataset with exactly the schema of
the real FLUXNET path (:mod:`lue_spie.data.schema`), plus the known truth:

1. **Sites.** ``n_sites`` sites over the 11 PFTs in FLUXNET2015-like shares
   (:data:`PFT_SHARES`), each with a Koeppen-Geiger type compatible with its PFT
   (:data:`KOEPPEN_BY_PFT`) and a latitude inside the type's band (:data:`CLIMATES`), a few
   in the southern hemisphere (A, B, C types; their seasons are flipped). Coverage rule:
   the first 14 sites drawn are the pairs of :data:`COVERAGE`, which hold every Koeppen type
   once and every PFT at least once, so **with n_sites >= 14 every PFT and every Koeppen type
   occurs**; with 11 <= n_sites < 14 every PFT occurs but only n_sites of the 14 types; with
   fewer than 11 sites, only the first n_sites pairs of :data:`COVERAGE`. The remaining sites
   are allotted to PFTs by largest remainder on the shares (net of the coverage sites) and
   draw their Koeppen type from :data:`KOEPPEN_BY_PFT`. Site ids are ``VF-001`` ...; which
   site is which pair is shuffled by the seed.
2. **Daily forcing** (generator 2.0), vectorised over sites (no Python loop over site-days;
   the soil-water bucket loops over days only, the episodes over events):

   - *Slow weather.* Besides the synoptic AR(1) weather, temperature, cloudiness and humidity
     each have a persistent component (AR(1) with an e-folding of ``slow_tau`` = 20 days),
     temperature, cloudiness and precipitation have year-to-year anomalies, and each site has
     multi-week heat and drought episodes (:func:`_episodes`: about 0.6 per year, 2-6 weeks,
     in the warm season, in the dry season in the tropics) that warm by 1.2 x the site's
     temperature sd, suppress rain, clear the sky and dry the air (:data:`WEATHER`).
   - *Temperature*: annual cycle by climate (phase flipped in the south), synoptic (AR(1)
     0.7) + slow anomalies with an sd 20 % larger in winter than in summer outside the
     tropics, yearly anomalies, episodes, clear days warmer in summer and cooler in winter;
     TMIN/TMAX from a diurnal range that shrinks under clouds.
   - *Precipitation*: wet-day occurrence from a thresholded latent series (synoptic AR(1) +
     the slow cloudiness), gamma amounts, seasonality by climate (summer rain, winter rain in
     Cs, monsoon in w, even in f), yearly anomalies; *cloudiness* a logistic-normal daily
     series (synoptic, slow, yearly, wetter days cloudier, episodes clear), so that the day-
     to-day spread of CI matches real sites (CH-Lae: sd of CI anomalies 0.21); SW_IN =
     transmissivity x (1 - 0.85 cloud) x SW_IN_POT (:func:`lue_spie.data.solar.sw_in_pot`),
     CI = 1 - SW_IN/SW_IN_POT, PAR = 0.48 x 0.0864 x SW_IN, PPFD = 0.48 x 4.57 x SW_IN.
   - *VPD from the daily temperature cycle and the vapour pressure* (not from the mean
     temperature): the actual vapour pressure is es at the dew point, which lies ``K`` below
     TMIN (FAO-56 annex 6, Tdew ~ Tmin - K0): K has a seasonal cycle by climate (deep summer
     drying in Cs: 9 K in Csa summers, 2 K in winters), synoptic and slow (persistent humidity)
     anomalies, is larger under clear skies and in episodes and smaller on wet days; warm air
     masses are relatively dry (the dew point follows only 60 % of the weather's temperature
     anomaly). VPD = the daily mean of es over a sinusoidal cycle between TMIN and TMAX minus
     the actual vapour pressure (:func:`_es_daily_cycle`), as FLUXNET's daily VPD_F averages
     half-hours; es by Magnus over water.
   - PA from elevation, CO2 rising 2.1 ppm/yr from 378.5 ppm in 2005 with a hemispheric
     seasonal cycle, W from the project's soil-water bucket
     (:func:`lue_spie.data.bucket.bucket_W`, PET by :func:`lue_spie.data.bucket.pet`) with
     the site's water-holding capacity (irrigated crops get the day's deficit on top of rain
     in their season; P stays the measured rain), FAPAR phenology by PFT (:data:`PHENOLOGY`:
     evergreen high and flat, green through mild winters; deciduous timed by smoothed
     temperature; grasses/savannas/shrubs by smoothed soil water; C3 crops cut in July, C4
     crops (:data:`C4_CROP`, :data:`CROPS`) sown late, dense and cut in September) and NDVI
     from FAPAR (Myneni & Williams 1994 linear relation inverted) with noise and cloud
     contamination.
   - *Sites*: evergreen needleleaf forests of Koeppen E are subalpine (:data:`SUBALPINE`:
     44-50 degrees, 1400-2200 m, mean T about 3 degC, like CH-Dav), not arctic; other ET sites
     are arctic or (30 %) alpine tundra above 3200 m.
3. **Site features** computed from that forcing where the real ones are computed from
   climate and satellite series (BIO1-19, AI1-2, VIF1-11 by
   :func:`lue_spie.data.features.site_features_from_site_day`), and drawn with realistic
   correlations where they are not: the 17 soil properties (texture from aridity, SOC from
   temperature and moisture, pH from aridity, derived ones consistent) and N/P deposition
   (by region, PFT and hemisphere). The site's bucket capacity ``whc`` follows from soil
   texture, coarse fragments and a PFT rooting depth. Computed features describe the
   generated record, so they (and through them the truth) depend on ``n_years`` too; with a
   single year VIF7 is 0 and VIF11 (a trend) is NaN at every site.
4. **The truth.** Each of the 13 parameters is ``lo + (hi - lo) * sigmoid(eta)`` with
   ``eta = logit((base_PFT - lo)/(hi - lo)) + sum_k c_k tanh((g_k(x_k) - m_k)/s_k) + e``: a
   smooth nonlinear function of a few named features plus a PFT effect plus an unexplained
   site term ``e ~ N(0, site_sd)`` (:data:`TRUTH`). The inner range ``[lo, hi]`` lies inside
   the paper's bounds, so no parameter is pinned to an edge (kappa's inner range is close to
   its upper bound -0.0001 by nature of the bounds). The lag mask is applied: alpha_T only at
   D/E sites, alpha_W only at B sites. Two changes of generator 2.0, for magnitudes the world
   alone cannot give. (a) kappa's PFT bases are 0.6 times those of 1.x (e.g. -0.0003 Pa-1
   instead of -0.0005; EBF -0.00025 instead of -0.0007): they had been set for a world whose
   VPD was two to three times too small; with realistic VPD (summer means of 600-1000 Pa)
   they cut GPP by 40-50 % and every PFT's annual GPP fell 10-35 % below 1.1.0's (and below
   FLUXNET's levels), tropical EBF to 4-5 gC m-2 d-1 where FLUXNET's sites have 7-10. The
   new bases keep fVPD at a typical summer VPD near its 1.x value. (b) C4 crop sites have an
   unexplained eps_max site term +1.2 (:data:`C4_SITE_TERM`: the C4 pathway, which no site
   feature reveals).
5. **GPP_obs** = LUE model (:func:`lue_spie.model.simulate` with the truth) x the optional
   structural error, observed with a persistent (AR(1), 15-day e-folding, sd 0.10) and a
   site-year (sd 0.06) multiplicative error and heteroscedastic Gaussian noise with sd
   ``0.3 + 0.1 * GPP`` [gC m-2 d-1] (:data:`NOISE`). The structural error
   (``structural_error=True``) adds two processes the LUE model lacks
   (:data:`STRUCTURAL_ERROR`): a heat/drought legacy (GPP depressed for weeks after days
   that are hot or dry *for the site*, i.e. relative to its own mean seasonal cycle of TMAX
   and W, a memory no lag parameter can express; it fires in every climate during the
   episodes) and a photosynthetic-capacity lag behind canopy greenness (spring capacity lags
   green-up, autumn capacity outlasts it). With it, the true parameters' median daily NSE
   drops by about 0.15 and site calibration's by about 0.04 (24 sites x 4 years).
6. **QC and gaps**: QC fractions are multiples of 1/48 (half-hours); blocks of gap-filled
   (low-QC) days for each input, GPP blocks missing entirely (NaN), isolated low-QC days
   (more in cold winters), cloud-contaminated FAPAR days; about 10 % of days fail the
   good-quality rule (every QC > 0.8 and GPP_obs present).

7. **How real** (:mod:`lue_spie.data.realism`, default 196 sites x 10 years, seed 0, class
   medians against the real sites of the shipped reference): MF of Koeppen C against CH-Lae
   (real / 2.0.0 / 1.1.0): VPD anomaly sd 268 / 259 / 103 Pa, VPD seasonal range 615 / 615 /
   279 Pa, GPP anomaly sd 2.49 / 1.81 / 1.43, year-to-year sd 0.54 / 0.49 / 0.16, corr(GPP, T)
   0.66 / 0.75 / 0.87; subalpine ENF of Koeppen E against CH-Dav: 216 / 175 / 32 Pa, 307 /
   411 / 44 Pa, 1.42 / 1.52 / 1.02, 0.29 / 0.40 / 0.15, 0.76 / 0.82 / 0.79, mean T 3.5 / 3.5
   / -8.0 degC. Mediterranean Cs sites spend a median 8 % of their days above 2000 Pa (0.1 %
   in 1.1.0). Known miss: boreal ENF of Koeppen D have a VPD seasonal range of about 570 Pa,
   1.8 x CH-Dav's, because their summers are warmer than CH-Dav's subalpine ones (tests/
   test_realism.py lists it).

Everything is drawn from ``numpy.random.default_rng`` streams seeded by
``SeedSequence([seed, n_sites, n_years, stream])``, so equal ``(n_sites, n_years, seed,
start_year, structural_error)`` give byte-identical parquet files; timestamps live only in
the ``*.provenance.json`` files.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import uniform_filter1d
from scipy.signal import lfilter
from scipy.special import expit, logit, ndtr

from lue_spie.data import schema
from lue_spie.data.bucket import bucket_W, pet
from lue_spie.data.features import site_features_from_site_day
from lue_spie.data.solar import cloudiness_index, sw_in_pot
from lue_spie.params import LOWER, N_PARAMS, PARAMETERS, UPPER, lag_mask

__all__ = [
    "GENERATOR_VERSION",
    "PFT_SHARES",
    "KOEPPEN_BY_PFT",
    "COVERAGE",
    "CLIMATES",
    "PHENOLOGY",
    "TRUTH",
    "NOISE",
    "STRUCTURAL_ERROR",
    "VirtualFluxnet",
    "make_tables",
    "generate",
    "truth_parameters",
]

GENERATOR_VERSION = "2.0.0"

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
#: :data:`ET_HIGHLAND` and :data:`SUBALPINE` for its mountain variants).
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
#: Crop world (not in the site features, as in the paper): the share of CRO sites with a C4
#: crop where C4 crops are grown (hot-summer Koeppen types), and the shares that are
#: irrigated (C4 crops: all in dry B and Cs climates, else ``irrigated_c4``; C3 crops of B and
#: Cs climates: ``irrigated_c3_dry``). In the irrigation ``season`` (north-equivalent days of
#: the year) the bucket gets the day's deficit PET - P on top of rain (:func:`_irrigation`),
#: while P stays the measured rain, as in FLUXNET, and the air over the transpiring canopy is
#: moister (the dew point's offset below TMIN times ``humid_air``).
CROPS: dict[str, Any] = {
    "c4_share": 0.45, "c4_koeppen": ("Cfa", "BSk", "Cwa", "Csa"),
    "irrigated_c4": 0.6, "irrigated_c3_dry": 0.5,
    "season_c3": (70.0, 205.0), "season_c4": (130.0, 258.0), "humid_air": 0.3,
}


# --------------------------------------------------------------------------------------------
# The truth: parameters as functions of features
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Term:
    """One driver term ``coef * tanh((g(feature) - center) / scale)``, g = identity or log."""

    feature: str
    transform: str  # "lin" or "log"
    center: float
    scale: float
    coef: float


@dataclass(frozen=True)
class TruthSpec:
    """How one parameter depends on the features.

    ``value = lo + (hi - lo) * sigmoid(eta)``,
    ``eta = logit((base[PFT] - lo) / (hi - lo)) + sum(terms) + N(0, site_sd)``.
    """

    lo: float
    hi: float
    base: Mapping[str, float]  # per PFT; key "*" = every PFT not listed
    terms: tuple[Term, ...]
    site_sd: float
    story: str

    def base_of(self, pft: str) -> float:
        return self.base.get(pft, self.base["*"])


def _T(feature: str, transform: str, center: float, scale: float, coef: float) -> Term:
    return Term(feature, transform, center, scale, coef)


_LOG08 = math.log(0.8)
#: The known truth of the virtual FLUXNET (physical units; see :class:`TruthSpec`).
TRUTH: dict[str, TruthSpec] = {
    "eps_max": TruthSpec(
        0.6, 4.5,
        {"CRO": 3.3, "DBF": 3.1, "MF": 2.7, "ENF": 2.5, "EBF": 3.2, "GRA": 2.8, "WET": 2.3,
         "SAV": 2.4, "WSA": 2.6, "CSH": 2.4, "OSH": 1.9, "*": 2.5},
        (_T("AI1", "log", _LOG08, 1.0, 0.35), _T("VIF1", "lin", 0.55, 0.15, 0.30),
         _T("soil_nitrogen", "log", math.log(2.0), 0.7, 0.20),
         _T("NdepNHX", "log", math.log(4.0), 0.8, 0.15)),
        0.15, "PFT, moisture (AI1), greenness (VIF1), soil N and NHx deposition"),
    "Topt": TruthSpec(
        6.0, 34.0, {"ENF": 18.0, "SAV": 22.0, "WSA": 21.0, "CRO": 21.0, "*": 20.0},
        (_T("BIO1", "lin", 10.0, 8.0, 0.80), _T("BIO5", "lin", 25.0, 6.0, 0.35)),
        0.15, "thermal acclimation to the mean (BIO1) and hottest-month (BIO5) temperature"),
    "kT": TruthSpec(
        2.0, 16.0, {"EBF": 5.5, "CRO": 6.5, "*": 7.5},
        (_T("BIO4", "lin", 600.0, 350.0, 0.60), _T("BIO2", "lin", 10.0, 3.0, 0.20)),
        0.20, "broader temperature response under seasonal (BIO4) and daily (BIO2) swings"),
    "kappa": TruthSpec(
        -0.0016, -0.00012,
        {"EBF": -0.00025, "CRO": -0.00025, "SAV": -0.00025, "OSH": -0.0002, "*": -0.0003},
        (_T("BIO12", "log", math.log(700.0), 0.8, -0.50), _T("BIO5", "lin", 25.0, 6.0, 0.40)),
        0.20, "wet climates (BIO12) more, hot climates (BIO5) less VPD-sensitive"),
    "Ca0": TruthSpec(
        342.0, 388.0, {"*": 365.0},
        (_T("BIO1", "lin", 10.0, 8.0, 0.50),),
        0.25, "minimum optimal CO2 shifting with mean temperature (BIO1)"),
    "Ckappa": TruthSpec(
        0.3, 6.0, {"*": 2.0},
        (_T("AI1", "log", _LOG08, 1.0, -0.50),),
        0.25, "CO2 relief of VPD stress larger at dry sites (AI1)"),
    "Cm": TruthSpec(
        200.0, 3800.0, {"*": 1500.0},
        (_T("soil_nitrogen", "log", math.log(2.0), 0.7, -0.50),
         _T("Pdep", "log", math.log(0.3), 0.7, -0.30)),
        0.25, "stronger CO2 fertilisation (small Cm) with more soil N and P deposition"),
    "kW": TruthSpec(
        -28.0, -13.0, {"*": -19.0},
        (_T("AI1", "log", _LOG08, 1.0, 0.50), _T("soil_sand", "lin", 45.0, 20.0, -0.50)),
        0.20, "steeper water response on sandy soils (soil_sand) and at dry sites (AI1)"),
    "WI": TruthSpec(
        0.05, 0.65,
        {"GRA": 0.32, "CRO": 0.35, "EBF": 0.28, "ENF": 0.25, "OSH": 0.18, "CSH": 0.22,
         "SAV": 0.25, "WSA": 0.25, "*": 0.30},
        (_T("AI1", "log", _LOG08, 1.0, 0.80), _T("soil_clay", "lin", 22.0, 10.0, 0.35),
         _T("VIF7", "lin", 0.04, 0.03, 0.25)),
        0.20, "water threshold higher at humid sites (AI1), on clay (soil_clay), with "
              "variable greenness (VIF7)"),
    "gamma": TruthSpec(
        0.005, 0.25, {"CRO": 0.05, "EBF": 0.04, "GRA": 0.07, "OSH": 0.08, "*": 0.06},
        (_T("VIF2", "lin", 0.70, 0.15, -0.40),),
        0.25, "less light saturation in dense canopies (VIF2, peak NDVI)"),
    "mu": TruthSpec(
        0.05, 0.85,
        {"EBF": 0.50, "ENF": 0.45, "DBF": 0.45, "MF": 0.45, "GRA": 0.25, "OSH": 0.20,
         "SAV": 0.25, "WSA": 0.30, "CSH": 0.25, "*": 0.35},
        (_T("VIF1", "lin", 0.55, 0.15, 0.40),),
        0.20, "more diffuse-light benefit in dense canopies (VIF1)"),
    "alpha_T": TruthSpec(
        0.05, 0.85, {"ENF": 0.60, "DBF": 0.45, "GRA": 0.35, "*": 0.50},
        (_T("BIO7", "lin", 35.0, 8.0, 0.40),),
        0.20, "longer thermal memory under continental climate (BIO7); D/E sites only"),
    "alpha_W": TruthSpec(
        0.05, 0.85, {"*": 0.45},
        (_T("soil_clay", "lin", 22.0, 10.0, 0.40), _T("AI1", "log", math.log(0.3), 0.8, -0.30)),
        0.20, "longer water memory on clay soils (soil_clay) and at the driest sites (AI1); "
              "B sites only"),
}

#: Shift of the unexplained site term (eta units, see :class:`TruthSpec`) at C4 crop sites:
#: the C4 pathway's higher light-use efficiency (no photorespiration; maize peaks at 15-25
#: gC m-2 d-1 where C3 crops reach 10-15). The PFT base of CRO is a C3 crop's; the site
#: features do not reveal the pathway, as in the paper, so the shift is unexplained.
C4_SITE_TERM: dict[str, float] = {"eps_max": 1.2}

#: Observation error of GPP_obs: GPP_obs = GPP x (1 + e_p + e_y) + N(0, a + b GPP), with GPP
#: the noise-free value, e_p a persistent (AR(1), e-folding ``persistent_tau`` days)
#: multiplicative error of sd ``persistent_sd`` (footprint, energy-balance and partitioning
#: errors last for weeks) and e_y a site-year multiplicative error of sd ``yearly_sd`` (annual
#: sums of eddy covariance carry a systematic uncertainty of several percent: u* filtering,
#: instrument changes); the Gaussian part is the random error of daily sums.
NOISE: dict[str, float] = {"a": 0.3, "b": 0.1, "persistent_sd": 0.10, "persistent_tau": 15.0,
                           "yearly_sd": 0.06}

#: Weather beyond the seasonal cycle and day-to-day AR(1) noise (generator 2.0).
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

_STREAMS = ("sites", "climate", "weather", "precip", "cloud", "humidity", "co2", "phenology",
            "ndvi", "soil", "truth", "noise", "qc", "slow", "episodes", "yearly", "crops",
            "obs_error")

def _rngs(seed: int, n_sites: int, n_years: int) -> dict[str, np.random.Generator]:
    return {name: np.random.default_rng(np.random.SeedSequence([seed, n_sites, n_years, k]))
            for k, name in enumerate(_STREAMS)}


# --------------------------------------------------------------------------------------------
# Small vectorised helpers
# --------------------------------------------------------------------------------------------
def _ar1(rng: np.random.Generator, shape: tuple[int, int], phi: float) -> np.ndarray:
    """Stationary AR(1) series along the last axis, unit variance."""
    e = rng.standard_normal(shape)
    x0 = rng.standard_normal((shape[0], 1))
    return lfilter([math.sqrt(1.0 - phi * phi)], [1.0, -phi], e, axis=-1, zi=phi * x0)[0]


def _ema(x: np.ndarray, tau: float) -> np.ndarray:
    """Exponential smoothing along the last axis with time constant ``tau`` steps."""
    a = math.exp(-1.0 / tau)
    return lfilter([1.0 - a], [1.0, -a], x, axis=-1, zi=a * x[:, :1])[0]


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


def _es(T: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure [Pa] (Magnus form, Alduchov & Eskridge 1996)."""
    return 610.94 * np.exp(17.625 * T / (T + 243.04))


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
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


# --------------------------------------------------------------------------------------------
# 1. Sites
# --------------------------------------------------------------------------------------------
def _draw_sites(rng: np.random.Generator, n_sites: int,
                rng_crops: np.random.Generator) -> pd.DataFrame:
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


# --------------------------------------------------------------------------------------------
# 2. Forcing
# --------------------------------------------------------------------------------------------
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


def _phenology(rng: np.random.Generator, sites: pd.DataFrame, T: np.ndarray, W: np.ndarray,
               AI1: np.ndarray, dates: pd.DatetimeIndex) -> np.ndarray:
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


# --------------------------------------------------------------------------------------------
# 3. Drawn features: soil and deposition
# --------------------------------------------------------------------------------------------
def _soil(rng: np.random.Generator, sites: pd.DataFrame, AI1: np.ndarray,
          BIO1: np.ndarray) -> pd.DataFrame:
    n = len(sites)
    z_ai = np.tanh(np.log(np.clip(AI1, 1e-3, None) / 0.8))  # + humid, - arid
    pft = sites["PFT"].to_numpy()
    forest = np.isin(pft, ["ENF", "EBF", "DBF", "MF"])
    e = rng.standard_normal((n, 16))
    alr_sand = 0.9 - 0.7 * z_ai + 0.6 * e[:, 0]
    alr_silt = 0.6 + 0.1 * z_ai + 0.5 * e[:, 1]
    expo = np.exp(np.stack([alr_sand, alr_silt, np.zeros(n)], axis=1))
    tex = 100.0 * expo / expo.sum(axis=1, keepdims=True)
    sand, silt, clay = tex[:, 0], tex[:, 1], tex[:, 2]
    pft_soc = {"WET": 1.1, "ENF": 0.35, "EBF": 0.25, "DBF": 0.25, "MF": 0.3, "CRO": -0.2,
               "OSH": -0.5, "CSH": -0.2, "SAV": -0.2, "WSA": -0.1, "GRA": 0.0}
    soc = np.exp(math.log(15.0) + 0.6 * z_ai - 0.035 * (BIO1 - 10.0)
                 + np.array([pft_soc[p] for p in pft]) + 0.35 * e[:, 2])
    soc = np.clip(soc, 1.0, 450.0)
    cn = np.exp(math.log(11.0) + 0.25 * forest + 0.2 * (pft == "ENF") + 0.3 * (pft == "WET")
                + 0.12 * e[:, 3])
    nitrogen = soc / cn
    cfvo = np.clip(np.exp(math.log(7.0) + 0.35 * np.log1p(sites["elevation"].clip(lower=0)
                                                         .to_numpy() / 500.0)
                          + 0.6 * e[:, 4]), 0.0, 70.0)
    bdod = np.clip(1.55 - 0.14 * np.log(soc / 10.0) + 0.06 * e[:, 5], 0.3, 1.85)
    ocd = soc * bdod * (1.0 - cfvo / 100.0)
    ocs = ocd * 0.3 * 10.0
    cec = np.clip(0.45 * clay + 0.3 * soc + 2.0 * e[:, 6] + 3.0, 1.0, 200.0)
    ph = np.clip(6.5 - 1.0 * z_ai - 0.35 * (pft == "ENF") - 0.3 * (pft == "WET")
                 + 0.35 * e[:, 7], 3.8, 9.2)
    clay_sub = np.clip(clay * np.exp(0.15 + 0.1 * e[:, 8]), 1.0, 80.0)
    sand_sub = np.clip(sand * np.exp(-0.05 + 0.1 * e[:, 9]), 1.0, 99.0 - clay_sub)
    soc_sub = soc * np.exp(math.log(0.4) + 0.2 * e[:, 10])
    bdod_sub = np.clip(bdod + 0.1 + 0.04 * e[:, 11], 0.4, 2.0)
    ph_sub = np.clip(ph + 0.2 + 0.15 * e[:, 12], 3.8, 9.5)
    return pd.DataFrame({
        "soil_bdod": bdod, "soil_cec": cec, "soil_cfvo": cfvo, "soil_clay": clay,
        "soil_sand": sand, "soil_silt": silt, "soil_nitrogen": nitrogen, "soil_phh2o": ph,
        "soil_soc": soc, "soil_ocd": ocd, "soil_ocs": ocs, "soil_cn": soc / nitrogen,
        "soil_bdod_sub": bdod_sub, "soil_clay_sub": clay_sub, "soil_sand_sub": sand_sub,
        "soil_soc_sub": soc_sub, "soil_phh2o_sub": ph_sub,
    }, index=sites.index)


def _deposition(rng: np.random.Generator, sites: pd.DataFrame) -> pd.DataFrame:
    n = len(sites)
    main = sites["koeppen_main"].to_numpy()
    kg = sites["koeppen"].to_numpy()
    pft = sites["PFT"].to_numpy()
    south = sites["lat"].to_numpy() < 0
    region = {"A": -0.2, "B": -0.5, "C": 0.5, "D": 0.1, "E": -1.2}
    r = np.array([region[m] for m in main])
    e = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.6], [0.6, 1.0]], size=n)
    nhx = np.exp(math.log(3.0) + r + 0.6 * (pft == "CRO") + 0.8 * (kg == "Cwa")
                 + 0.3 * (kg == "Cfa") - 0.6 * south + 0.35 * e[:, 0])
    noy = np.exp(math.log(2.5) + r + 0.2 * (pft == "CRO") + 0.6 * (kg == "Cwa")
                 + 0.4 * np.isin(kg, ["Cfa", "Cfb"]) - 0.7 * south + 0.35 * e[:, 1])
    pdep = np.exp(math.log(0.25) + 0.8 * (main == "B") + 0.4 * (main == "A")
                  - 0.8 * (main == "E") + 0.3 * rng.standard_normal(n))
    return pd.DataFrame({"NdepNHX": np.clip(nhx, 0.05, 150.0),
                         "NdepNOY": np.clip(noy, 0.05, 150.0),
                         "Pdep": np.clip(pdep, 0.005, 15.0)}, index=sites.index)


# --------------------------------------------------------------------------------------------
# 4. Truth
# --------------------------------------------------------------------------------------------
def truth_parameters(sites: pd.DataFrame, site_terms: np.ndarray | None = None) -> np.ndarray:
    """The true parameters (sites, 13) from the sites table by :data:`TRUTH`, lag mask applied.

    Args:
        sites: The sites table (PFT, koeppen and the driver features of :data:`TRUTH`).
        site_terms: Unexplained site terms ``e`` (sites, 13) in eta units (None: zeros, the
            part explained by the features and the PFT).
    """
    n = len(sites)
    e = np.zeros((n, N_PARAMS)) if site_terms is None else np.asarray(site_terms, float)
    out = np.empty((n, N_PARAMS))
    pft = sites["PFT"].to_numpy()
    for j, name in enumerate(PARAMETERS):
        spec = TRUTH[name]
        base = np.array([spec.base_of(p) for p in pft])
        eta = logit((base - spec.lo) / (spec.hi - spec.lo))
        for t in spec.terms:
            x = sites[t.feature].to_numpy(dtype=np.float64)
            if t.transform == "log":
                x = np.log(np.clip(x, 1e-6, None))
            z = np.nan_to_num((x - t.center) / t.scale, nan=0.0)
            eta = eta + t.coef * np.tanh(z)
        out[:, j] = spec.lo + (spec.hi - spec.lo) * expit(eta + e[:, j])
    # The truth obeys the calibration's ideal-conditions constraint (lue_spie.cost): the
    # logistic fW must come within IDEAL_SHORTFALL of 1 at Wf = 1, i.e.
    # WI <= 1 - ln(1/IDEAL_SHORTFALL)/|kW|. WI's upper end is lowered smoothly to that limit
    # (same sigmoid fraction of a narrower range), so what calibration cannot recover is
    # equifinality, not a conflict between the virtual world and the cost.
    iW, ik = PARAMETERS.index("WI"), PARAMETERS.index("kW")
    spec = TRUTH["WI"]
    frac = (out[:, iW] - spec.lo) / (spec.hi - spec.lo)
    out[:, iW] = spec.lo + (np.minimum(spec.hi, _wi_max(out[:, ik])) - spec.lo) * frac
    mask = lag_mask(list(sites["koeppen"]))
    return np.where(mask, out, 0.0)


#: Largest shortfall of fW from 1 at Wf = 1 that the true parameters allow (see
#: :func:`truth_parameters`); with the cost's weight 1e3 it costs at most 0.01.
IDEAL_SHORTFALL = 1e-5


def _wi_max(kW: np.ndarray) -> np.ndarray:
    """Largest WI for which fW(Wf = 1) >= 1 - IDEAL_SHORTFALL, given kW (< 0)."""
    return 1.0 - math.log((1.0 - IDEAL_SHORTFALL) / IDEAL_SHORTFALL) / np.abs(kW)


def _truth_meta(seed: int, n_sites: int, n_years: int, start_year: int,
                structural_error: bool) -> dict[str, Any]:
    params = {}
    for name in PARAMETERS:
        s = TRUTH[name]
        terms = " + ".join(
            f"{t.coef:g}*tanh(({'log(' + t.feature + ')' if t.transform == 'log' else t.feature}"
            f" - {t.center:.4g})/{t.scale:g})" for t in s.terms)
        params[name] = {
            "drivers": ["PFT", *[t.feature for t in s.terms]],
            "formula": f"{name} = {s.lo:g} + ({s.hi:g} - {s.lo:g}) * sigmoid(eta); eta = "
                       f"logit((base[PFT] - {s.lo:g})/({s.hi:g} - {s.lo:g})) + {terms} + e, "
                       f"e ~ N(0, {s.site_sd:g})",
            "inner_range": [s.lo, s.hi],
            "bounds": [float(LOWER[PARAMETERS.index(name)]), float(UPPER[PARAMETERS.index(name)])],
            "base_by_PFT": {p: s.base_of(p) for p in schema.PFTS},
            "terms": [{"feature": t.feature, "transform": t.transform, "center": t.center,
                       "scale": t.scale, "coef": t.coef} for t in s.terms],
            "site_sd": s.site_sd,
            "story": s.story,
        }
    params["WI"]["ideal_constraint"] = (
        f"upper end of the range lowered to min({TRUTH['WI'].hi:g}, 1 - ln((1 - s)/s)/|kW|), "
        f"s = {IDEAL_SHORTFALL:g}, so that fW reaches 1 - s at Wf = 1 (WI = lo + (upper - lo) "
        "* sigmoid(eta))")
    for name, shift in C4_SITE_TERM.items():
        params[name]["c4_site_term"] = {
            "shift": shift, "note": "added to e at C4 crop sites (world.c4_sites): the C4 "
                                    "pathway, not revealed by any site feature"}
    params["alpha_T"]["lag_mask"] = "free (nonzero) only where the Koeppen main group is D or E"
    params["alpha_W"]["lag_mask"] = "free (nonzero) only where the Koeppen main group is B"
    return {
        "generator": "lue_spie.data.virtual",
        "generator_version": GENERATOR_VERSION,
        "seed": seed, "n_sites": n_sites, "n_years": n_years, "start_year": start_year,
        "parameters": params,
        "noise": {"model": "GPP_obs = GPP_true * (1 + e_p + e_y) + N(0, sd), sd = a + b * "
                           "GPP_true (gC m-2 d-1); e_p AR(1) with sd persistent_sd and e-folding "
                           "persistent_tau days, e_y one N(0, yearly_sd) value per site-year; "
                           "GPP_true = LUE(truth) x structural factor",
                  **NOISE},
        "structural_error": {"enabled": bool(structural_error), **STRUCTURAL_ERROR},
        "pft_shares": PFT_SHARES,
        "coverage": [list(c) for c in COVERAGE],
    }


# --------------------------------------------------------------------------------------------
# 5-6. GPP, QC, assembly
# --------------------------------------------------------------------------------------------
def _gpp_lue(f: Mapping[str, np.ndarray], params: np.ndarray) -> np.ndarray:
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


def _irrigation(sites: pd.DataFrame, T: np.ndarray, P: np.ndarray, PET: np.ndarray,
                dates: pd.DatetimeIndex) -> np.ndarray:
    """Water added to the bucket of irrigated crops [mm d-1]: the day's deficit PET - P in
    the crop's irrigation season (:data:`CROPS`), so the soil stays near field capacity;
    zero elsewhere."""
    season = _irrigation_season(sites, dates)
    return np.where(season, np.clip(PET - P, 0.0, None), 0.0)


def _irrigation_season(sites: pd.DataFrame, dates: pd.DatetimeIndex) -> np.ndarray:
    """(sites, days) True on the irrigated days (:data:`CROPS` seasons) of irrigated sites."""
    south = sites["lat"].to_numpy() < 0
    doy = dates.day_of_year.to_numpy().astype(np.float64)
    day = np.where(south[:, None], (doy[None, :] + 182.0) % 365.25, doy[None, :])
    c4 = sites["c4"].to_numpy()[:, None]
    lo = np.where(c4, CROPS["season_c4"][0], CROPS["season_c3"][0])
    hi = np.where(c4, CROPS["season_c4"][1], CROPS["season_c3"][1])
    return sites["irrigated"].to_numpy()[:, None] & (day >= lo) & (day < hi)


_WORLD_COLUMNS = ["highland", "subalpine", "c4", "irrigated"]


def _world_record(sites: pd.DataFrame, f: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """What truth.json records about the generated world beyond the truth: site regimes that
    are not in the site features, and how often heat/drought episodes occurred."""
    ids = sites["site"].tolist()
    epi = f["episodes"]
    return {
        "weather": WEATHER,
        "crops": {k: (list(v) if isinstance(v, tuple) else v) for k, v in CROPS.items()},
        "c4_sites": [s for s, c in zip(ids, sites["c4"], strict=True) if c],
        "irrigated_sites": [s for s, c in zip(ids, sites["irrigated"], strict=True) if c],
        "subalpine_sites": [s for s, c in zip(ids, sites["subalpine"], strict=True) if c],
        "highland_sites": [s for s, c in zip(ids, sites["highland"], strict=True) if c],
        "episode_days_share": round(float((epi > 0.25).mean()), 4),
    }


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


@dataclass(frozen=True)
class VirtualFluxnet:
    """The four parts of a virtual FLUXNET dataset (in memory).

    Attributes:
        site_day: Tidy site-day table (schema-valid).
        sites: Sites table with features (schema-valid).
        truth: ``site`` + the 13 true parameters (physical units, lag mask applied).
        truth_meta: The truth's description (``truth.json``).
    """

    site_day: pd.DataFrame
    sites: pd.DataFrame
    truth: pd.DataFrame
    truth_meta: dict[str, Any]

    def __iter__(self) -> Iterator[Any]:
        """Unpack as ``site_day, sites, truth, truth_meta = make_tables(...)``."""
        return iter((self.site_day, self.sites, self.truth, self.truth_meta))


def _check_args(n_sites: int, n_years: int, seed: int, start_year: int) -> None:
    if int(n_sites) != n_sites or n_sites < 1:
        raise ValueError(f"n_sites must be a positive integer, got {n_sites!r}")
    if int(n_years) != n_years or n_years < 1:
        raise ValueError(f"n_years must be a positive integer, got {n_years!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not 1900 <= start_year <= 2100 - n_years:
        raise ValueError(f"start_year must lie in 1900..{2100 - n_years}, got {start_year!r}")


def make_tables(n_sites: int = 196, n_years: int = 10, seed: int = 0, *,
                structural_error: bool = False, start_year: int = 2005,
                progress: bool = False) -> VirtualFluxnet:
    """Build a virtual FLUXNET in memory (see the module docstring for the recipe).

    Args:
        n_sites: Number of sites (>= 14 guarantees every PFT and Koeppen type).
        n_years: Years per site (every site has the full record).
        seed: Random seed; equal arguments give identical tables.
        structural_error: Add processes the LUE model lacks (:data:`STRUCTURAL_ERROR`).
        start_year: First calendar year.
        progress: Show a progress bar over the generation stages.

    Returns:
        :class:`VirtualFluxnet` with schema-valid ``site_day`` and ``sites``.
    """
    _check_args(n_sites, n_years, seed, start_year)
    n_sites, n_years, seed = int(n_sites), int(n_years), int(seed)
    from tqdm.auto import tqdm

    bar = tqdm(total=7, desc="virtual FLUXNET", disable=not progress)
    rngs = _rngs(seed, n_sites, n_years)
    sites = _draw_sites(rngs["sites"], n_sites, rngs["crops"])
    dates = pd.date_range(f"{start_year}-01-01", f"{start_year + n_years - 1}-12-31", freq="D")
    n_days = len(dates)
    bar.update()

    f = _forcing(rngs, sites, dates)
    PET = pet(f["SW_IN"], f["T"], f["PA"])
    AI1_pre = f["P"].sum(axis=1) / np.maximum(PET.sum(axis=1), 1e-9)
    bar.update()

    # Soil first (texture sets the bucket), from aridity and a first guess of BIO1.
    soil = _soil(rngs["soil"], sites, AI1_pre, f["T"].mean(axis=1))
    depth = np.array([C4_CROP.root_depth if c4 else PHENOLOGY[p].root_depth
                      for p, c4 in zip(sites["PFT"], sites["c4"], strict=True)]) \
        * np.exp(0.2 * rngs["soil"].standard_normal(n_sites))
    awc = 0.05 + 0.0022 * soil["soil_silt"].to_numpy() + 0.001 * soil["soil_clay"].to_numpy()
    whc = np.clip(1000.0 * awc * depth * (1.0 - soil["soil_cfvo"].to_numpy() / 100.0), 15.0, 600.0)
    f["W"] = bucket_W(f["P"] + _irrigation(sites, f["T"], f["P"], PET, dates), PET, whc)
    f["FAPAR"] = _phenology(rngs["phenology"], sites, f["T"], f["W"], AI1_pre, dates)
    rn = rngs["ndvi"]
    ndvi = (f["FAPAR"] + 0.1426) / 1.1638 + 0.02 * rn.standard_normal((n_sites, n_days))
    contaminated = rn.random((n_sites, n_days)) < 0.04 * f["cloud"]
    ndvi = np.where(contaminated, ndvi - rn.uniform(0.0, 0.25, (n_sites, n_days)), ndvi)
    f["NDVI"] = np.clip(ndvi, -0.1, 0.95)
    bar.update()

    site_ids = sites["site"].to_numpy()
    site_day = pd.DataFrame({
        "site": np.repeat(site_ids, n_days),
        "date": np.tile(dates.to_numpy(), n_sites),
    })
    for k in ("T", "VPD", "CO2", "W", "PAR", "FAPAR", "CI", "SW_IN", "SW_IN_POT", "P", "PA",
              "PPFD", "NDVI", "TMIN", "TMAX"):
        site_day[k] = f[k].reshape(-1)

    feats = site_features_from_site_day(site_day).reindex(site_ids)
    dep = _deposition(rngs["soil"], sites)
    bar.update()

    world = _world_record(sites, f)
    sites_tab = sites.drop(columns=_WORLD_COLUMNS).assign(
        whc=np.round(whc, 2), first_year=start_year, last_year=start_year + n_years - 1,
        source="virtual")
    for c in feats.columns:
        sites_tab[c] = feats[c].to_numpy()
    for c in dep.columns:
        sites_tab[c] = dep[c].to_numpy()
    for c in soil.columns:
        sites_tab[c] = soil[c].to_numpy()

    e = rngs["truth"].standard_normal((n_sites, N_PARAMS)) \
        * np.array([TRUTH[p].site_sd for p in PARAMETERS])
    # C4 crops: a larger maximum light-use efficiency that no site feature reveals (the
    # photosynthetic pathway), so it is part of the unexplained site term.
    for name, shift in C4_SITE_TERM.items():
        e[sites["c4"].to_numpy(), PARAMETERS.index(name)] += shift
    theta = truth_parameters(sites_tab, e)
    bar.update()

    gpp = _gpp_lue(f, theta)
    if structural_error:
        gpp = gpp * _structural_factor(f, dates)
    gpp_obs = _observe(rngs["noise"], rngs["obs_error"], gpp, dates)
    qc = _qc(rngs["qc"], (n_sites, n_days), f["T"], f["cloud"])
    gpp_obs = np.where(qc.pop("_missing"), np.nan, gpp_obs)
    site_day.insert(site_day.columns.get_loc("SW_IN"), "GPP_obs", gpp_obs.reshape(-1))
    for k in schema.QC_COLUMNS:
        site_day[k] = qc[k].reshape(-1)
    bar.update()

    site_day = schema.coerce_site_day(site_day)[list(schema.SITE_DAY_COLUMN_NAMES)]
    sites_tab = schema.coerce_sites(sites_tab)[list(schema.SITES_COLUMN_NAMES)]
    schema.validate_site_day(site_day, "virtual FLUXNET site_day")
    schema.validate_sites(sites_tab, "virtual FLUXNET sites")
    truth = pd.DataFrame(theta, columns=list(PARAMETERS))
    truth.insert(0, "site", site_ids.astype(str))
    truth = truth.sort_values("site", kind="stable").reset_index(drop=True)
    meta = _truth_meta(seed, n_sites, n_years, start_year, structural_error)
    meta["world"] = world
    bar.update()
    bar.close()
    return VirtualFluxnet(site_day, sites_tab, truth, meta)


def _check_out(out: Path) -> None:
    """A dataset folder path must be a folder or not exist yet (nor sit under a file)."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                what = "the output folder" if p == out else f"a parent of {out}"
                raise ValueError(f"{p}: exists and is a file, not a folder ({what}); give a "
                                 "new or existing dataset folder")
            return


def generate(n_sites: int = 196, n_years: int = 10, seed: int = 0,
             out: str | Path | None = None, *, structural_error: bool = False,
             start_year: int = 2005, progress: bool = False) -> Path:
    """Generate a virtual FLUXNET and write it as a dataset folder.

    Writes ``site_day.parquet``, ``sites.parquet``, ``truth.parquet`` (each with its
    ``.provenance.json``) and ``truth.json`` atomically. The parquet files and truth.json are
    byte-identical for equal arguments; run-specific facts (time, git commit, versions) are
    only in the provenance records.

    Args:
        n_sites, n_years, seed, structural_error, start_year, progress: As
            :func:`make_tables`.
        out: Dataset folder; default ``data/virtual_<n_sites>x<n_years>_seed<seed>`` (with
            ``_structural`` appended when ``structural_error``) under the current folder.

    Returns:
        The dataset folder.

    Raises:
        ValueError: when ``out`` (or a parent of it) is an existing file, checked before any
            generation.
    """
    from lue_spie.store import atomic_write_json, make_provenance, write_parquet

    if out is None:
        out = Path("data") / (f"virtual_{n_sites}x{n_years}_seed{seed}"
                              + ("_structural" if structural_error else ""))
    out = Path(out)
    _check_out(out)                       # before the work, so a bad path fails at once
    vf = make_tables(n_sites, n_years, seed, structural_error=structural_error,
                     start_year=start_year, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"n_sites": n_sites, "n_years": n_years, "start_year": start_year,
                "structural_error": structural_error, "generator_version": GENERATOR_VERSION}
    for name, table in (("site_day", vf.site_day), ("sites", vf.sites), ("truth", vf.truth)):
        write_parquet(table, out / f"{name}.parquet",
                      make_provenance("data.synth", settings=settings, seed=seed))
    atomic_write_json(out / "truth.json", vf.truth_meta)
    return out

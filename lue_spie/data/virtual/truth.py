"""The virtual FLUXNET's known truth: the 13 parameters as functions of named features.

Each of the 13 parameters is ``lo + (hi - lo) * sigmoid(eta)`` with
``eta = logit((base_PFT - lo)/(hi - lo)) + sum_k c_k tanh((g_k(x_k) - m_k)/s_k) + e``: a
smooth nonlinear function of a few named features plus a PFT effect plus an unexplained site
term ``e ~ N(0, site_sd)`` (:data:`TRUTH`, :func:`truth_parameters`; the site terms are drawn
by :func:`_site_terms`). The inner range ``[lo, hi]`` lies inside the paper's bounds, so no
parameter is pinned to an edge (kappa's inner range is close to its upper bound -0.0001 by
nature of the bounds). The lag mask is applied: alpha_T only at D/E sites, alpha_W only at B
sites. Computed features describe the generated record, so they (and through them the
truth) depend on ``n_years`` too; with a single year VIF7 is 0 and VIF11 (a trend) is NaN at
every site.

Two settings give magnitudes the world alone cannot give. (a) kappa's PFT bases are small
(e.g. -0.0003 Pa-1, EBF -0.00025) because the world's VPD is realistic (summer means of
600-1000 Pa): bases of -0.0005 (EBF -0.0007), which suit a VPD two to three times smaller,
cut GPP by 40-50 % there, every PFT's annual GPP 10-35 % below that of the world with the
small VPD (and below FLUXNET's levels), tropical EBF to 4-5 gC m-2 d-1 where FLUXNET's sites
have 7-10. The small bases keep fVPD at a typical summer VPD near the value the larger ones
gave at the smaller VPD. (b) C4 crop sites have an unexplained eps_max site term +1.2
(:data:`C4_SITE_TERM`: the C4 pathway, which no site feature reveals).

:func:`_parameters_meta` describes all this for ``truth.json`` (drivers, formula, ranges,
PFT bases and the story of each parameter).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from lue_spie.data import schema
from lue_spie.params import LOWER, N_PARAMS, PARAMETERS, UPPER, lag_mask

__all__ = ["Term", "Interaction", "TruthSpec", "TRUTH", "WITHIN_PFT", "C4_SITE_TERM",
           "IDEAL_SHORTFALL", "truth_parameters"]


@dataclass(frozen=True)
class Term:
    """One driver term ``coef * tanh((g(feature) - center) / scale)``, g = identity or log."""

    feature: str
    transform: str  # "lin" or "log"
    center: float
    scale: float
    coef: float


    def value(self, sites: pd.DataFrame) -> np.ndarray:
        """``coef * tanh(z)`` at every site, ``z = (g(feature) - center) / scale`` (a missing
        feature value counts as the center)."""
        return self.coef * np.tanh(self.z(sites))

    def z(self, sites: pd.DataFrame) -> np.ndarray:
        """The standardised feature ``(g(feature) - center) / scale`` (NaN -> 0)."""
        x = sites[self.feature].to_numpy(dtype=np.float64)
        if self.transform == "log":
            x = np.log(np.clip(x, 1e-6, None))
        return np.nan_to_num((x - self.center) / self.scale, nan=0.0)


@dataclass(frozen=True)
class Interaction:
    """A product of two driver terms: ``coef * tanh(z_first) * tanh(z_second)``, with ``z``
    as in :class:`Term` (the two terms' own ``coef`` are not used)."""

    first: Term
    second: Term
    coef: float

    @property
    def features(self) -> tuple[str, str]:
        """The two features."""
        return self.first.feature, self.second.feature

    def value(self, sites: pd.DataFrame) -> np.ndarray:
        """The term at every site."""
        return self.coef * np.tanh(self.first.z(sites)) * np.tanh(self.second.z(sites))


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

def _P(first: Term, second: Term, coef: float) -> Interaction:
    return Interaction(first, second, coef)


_LN = math.log
# Standardised within-PFT drivers (centre: the median of a 196-site world, scale: the median
# within-PFT standard deviation, on the log scale where the feature is skewed).
_NITROGEN = _T("soil_nitrogen", "log", _LN(1.5), 0.55, 1.0)
_SAND = _T("soil_sand", "lin", 41.0, 14.0, 1.0)
_CLAY = _T("soil_clay", "lin", 20.0, 6.5, 1.0)
_ARIDITY = _T("AI1", "log", _LN(1.26), 0.5, 1.0)
_RAIN = _T("BIO12", "log", _LN(742.0), 0.45, 1.0)
_GREEN = _T("VIF1", "lin", 0.65, 0.085, 1.0)

#: Terms of the ``within_pft`` dial (:class:`lue_spie.data.virtual.worlds.World`), added to
#: ``eta`` of :data:`TRUTH` times the dial: features that vary inside every PFT and climate
#: type (soil, deposition, greenness), alone and in pairs (:class:`Interaction`), so that a
#: method reading the features can learn the variation and one grouping by PFT or climate
#: cannot. A hypothesis of the virtual world, like :data:`TRUTH`; the CO2 parameters get none
#: (the records cannot identify them). :data:`WITHIN_PFT_STORY` tells each parameter's story.
WITHIN_PFT: dict[str, tuple[Term | Interaction, ...]] = {
    "eps_max": (_T("soil_nitrogen", "log", _LN(1.5), 0.55, 0.35),
                _T("Pdep", "log", _LN(0.27), 0.4, 0.20),
                _P(_NITROGEN, _ARIDITY, 0.45),
                _P(_GREEN, _T("NdepNHX", "log", _LN(3.6), 0.6, 1.0), 0.30)),
    "Topt": (_T("soil_sand", "lin", 41.0, 14.0, 0.30),
             _T("VIF4", "lin", 0.335, 0.082, 0.25),
             _P(_T("BIO5", "lin", 26.3, 4.4, 1.0), _ARIDITY, -0.45)),
    "kT": (_T("soil_clay", "lin", 20.0, 6.5, 0.30),
           _P(_T("BIO4", "lin", 644.0, 210.0, 1.0), _T("VIF3", "lin", 0.35, 0.082, 1.0), 0.40)),
    "kappa": (_T("soil_sand", "lin", 41.0, 14.0, -0.35),
              _P(_RAIN, _T("VIF5", "lin", 0.108, 0.033, 1.0), 0.30)),
    "kW": (_T("soil_soc", "log", _LN(20.0), 0.5, 0.25),
           _P(_SAND, _ARIDITY, -0.45)),
    "WI": (_T("soil_cec", "log", _LN(18.4), 0.32, 0.25),
           _P(_CLAY, _RAIN, 0.40)),
    "gamma": (_T("NdepNOY", "log", _LN(2.9), 0.7, 0.25),
              _P(_T("VIF2", "lin", 0.83, 0.05, 1.0), _NITROGEN, -0.40)),
    "mu": (_T("VIF5", "lin", 0.108, 0.033, 0.30),
           _P(_GREEN, _T("BIO15", "lin", 45.7, 15.5, 1.0), 0.30)),
    "alpha_T": (_T("soil_soc", "log", _LN(20.0), 0.5, 0.30),),
    "alpha_W": (_P(_SAND, _ARIDITY, -0.30),),
}

#: What each parameter's :data:`WITHIN_PFT` terms stand for.
WITHIN_PFT_STORY: dict[str, str] = {
    "eps_max": "more efficient with soil nitrogen and P deposition; nitrogen pays most where "
               "water does not limit (AI1), greenness most under NHx deposition",
    "Topt": "higher on sandy soils and in canopies with a large seasonal amplitude (VIF4); "
            "hot summers (BIO5) raise it most at dry sites",
    "kT": "broader on clay; seasonal climates (BIO4) broaden it most in canopies green in "
          "winter (VIF3)",
    "kappa": "more VPD-sensitive on sand; variable canopies (VIF5) in wet climates less",
    "kW": "organic soils soften the water response; sand steepens it at dry sites",
    "WI": "a higher threshold on high-CEC soils and on clay in wet climates",
    "gamma": "NOy deposition raises saturation; dense canopies (VIF2) on nitrogen-rich soils "
             "saturate less",
    "mu": "variable canopies (VIF5) use diffuse light more; green sites with seasonal rain "
          "(BIO15) too",
    "alpha_T": "longer thermal memory on organic soils",
    "alpha_W": "shorter water memory on sand at dry sites",
}

#: Shift of the unexplained site term (eta units, see :class:`TruthSpec`) at C4 crop sites:
#: the C4 pathway's higher light-use efficiency (no photorespiration; maize peaks at 15-25
#: gC m-2 d-1 where C3 crops reach 10-15). The PFT base of CRO is a C3 crop's; the site
#: features do not reveal the pathway, as in the paper, so the shift is unexplained.
C4_SITE_TERM: dict[str, float] = {"eps_max": 1.2}


def truth_parameters(sites: pd.DataFrame, site_terms: np.ndarray | None = None, *,
                     feature_spread: float = 1.0, within_pft: float = 0.0) -> np.ndarray:
    """The true parameters (sites, 13) from the sites table by :data:`TRUTH`, lag mask applied.

    Args:
        sites: The sites table (PFT, koeppen and the driver features of :data:`TRUTH` and,
            with ``within_pft``, of :data:`WITHIN_PFT`).
        site_terms: Unexplained site terms ``e`` (sites, 13) in eta units (None: zeros, the
            part explained by the features and the PFT).
        feature_spread: Factor on the coefficients of :data:`TRUTH`'s terms (a world's dial,
            :class:`lue_spie.data.virtual.worlds.World`).
        within_pft: Factor on the :data:`WITHIN_PFT` terms (0: left out).
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
            eta = eta + (t.coef * feature_spread) * np.tanh(t.z(sites))
        if within_pft:
            for term in WITHIN_PFT.get(name, ()):
                eta = eta + within_pft * term.value(sites)
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


def _site_terms(rng: np.random.Generator, c4: np.ndarray,
                site_spread: float = 1.0) -> np.ndarray:
    """The unexplained site terms ``e`` (sites, 13) in eta units: ``N(0, site_sd x
    site_spread)`` of each parameter (:data:`TRUTH`; ``site_spread`` is a world's dial),
    shifted at the C4 crop sites (``c4``) by :data:`C4_SITE_TERM`."""
    e = rng.standard_normal((len(c4), N_PARAMS)) \
        * np.array([TRUTH[p].site_sd * site_spread for p in PARAMETERS])
    # C4 crops: a larger maximum light-use efficiency that no site feature reveals (the
    # photosynthetic pathway), so it is part of the unexplained site term.
    for name, shift in C4_SITE_TERM.items():
        e[c4, PARAMETERS.index(name)] += shift
    return e


def _tanh_text(t: Term) -> str:
    g = f"log({t.feature})" if t.transform == "log" else t.feature
    return f"tanh(({g} - {t.center:.4g})/{t.scale:g})"


def _term_record(t: Term) -> dict[str, Any]:
    return {"feature": t.feature, "transform": t.transform, "center": t.center,
            "scale": t.scale, "coef": t.coef}


def _parameters_meta(*, feature_spread: float = 1.0, within_pft: float = 0.0,
                     site_spread: float = 1.0) -> dict[str, Any]:
    """The ``parameters`` entry of ``truth.json``: for each parameter its drivers, formula,
    inner range, bounds, PFT bases, terms, site sd and story, and the constraints of WI, the
    C4 site term and the lag mask. The keywords are a world's dials
    (:class:`lue_spie.data.virtual.worlds.World`); at their neutral values the entry is the
    smooth world's."""
    params = {}
    for name in PARAMETERS:
        s = TRUTH[name]
        coefs = [t.coef * feature_spread for t in s.terms]
        terms = " + ".join(f"{c:g}*{_tanh_text(t)}" for t, c in zip(s.terms, coefs, strict=True))
        drivers = ["PFT", *[t.feature for t in s.terms]]
        extra = WITHIN_PFT.get(name, ()) if within_pft else ()
        for term in extra:
            if isinstance(term, Interaction):
                terms += (f" + {term.coef * within_pft:g}*{_tanh_text(term.first)}"
                          f"*{_tanh_text(term.second)}")
                drivers += [f for f in term.features if f not in drivers]
            else:
                terms += f" + {term.coef * within_pft:g}*{_tanh_text(term)}"
                drivers += [term.feature] if term.feature not in drivers else []
        sd = s.site_sd * site_spread
        params[name] = {
            "drivers": drivers,
            "formula": f"{name} = {s.lo:g} + ({s.hi:g} - {s.lo:g}) * sigmoid(eta); eta = "
                       f"logit((base[PFT] - {s.lo:g})/({s.hi:g} - {s.lo:g})) + {terms} + e, "
                       f"e ~ N(0, {sd:g})",
            "inner_range": [s.lo, s.hi],
            "bounds": [float(LOWER[PARAMETERS.index(name)]), float(UPPER[PARAMETERS.index(name)])],
            "base_by_PFT": {p: s.base_of(p) for p in schema.PFTS},
            "terms": [{**_term_record(t), "coef": c}
                      for t, c in zip(s.terms, coefs, strict=True)],
            "site_sd": sd,
            "story": s.story,
        }
        if extra:
            params[name]["within_pft_terms"] = [
                {"first": _term_record(t.first), "second": _term_record(t.second),
                 "coef": t.coef * within_pft} if isinstance(t, Interaction)
                else {**_term_record(t), "coef": t.coef * within_pft} for t in extra]
            params[name]["within_pft_story"] = WITHIN_PFT_STORY[name]
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
    return params

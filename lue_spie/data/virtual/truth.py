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

__all__ = ["Term", "TruthSpec", "TRUTH", "C4_SITE_TERM", "IDEAL_SHORTFALL", "truth_parameters"]


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


def _site_terms(rng: np.random.Generator, c4: np.ndarray) -> np.ndarray:
    """The unexplained site terms ``e`` (sites, 13) in eta units: ``N(0, site_sd)`` of each
    parameter (:data:`TRUTH`), shifted at the C4 crop sites (``c4``) by
    :data:`C4_SITE_TERM`."""
    e = rng.standard_normal((len(c4), N_PARAMS)) \
        * np.array([TRUTH[p].site_sd for p in PARAMETERS])
    # C4 crops: a larger maximum light-use efficiency that no site feature reveals (the
    # photosynthetic pathway), so it is part of the unexplained site term.
    for name, shift in C4_SITE_TERM.items():
        e[c4, PARAMETERS.index(name)] += shift
    return e


def _parameters_meta() -> dict[str, Any]:
    """The ``parameters`` entry of ``truth.json``: for each parameter its drivers, formula,
    inner range, bounds, PFT bases, terms, site sd and story, and the constraints of WI, the
    C4 site term and the lag mask."""
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
    return params

"""Step-by-step float64 NumPy implementation of the LUE model: the test oracle.

It follows SPEC section 1 literally, one site and one day at a time, with the equations as
written (no algebraic rearrangement), so that every fast implementation in
:mod:`lue_spie.model` can be checked against it. It is slow on purpose; do not use it for
real work.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from lue_spie.params import PARAMETERS

__all__ = ["simulate_reference"]

CI_MIN = 1e-3  # same clip as lue_spie.model.CI_MIN (restated on purpose: independent oracle)
CO2_DENOMINATOR_MIN = 1.0  # same guard as lue_spie.model.CO2_DENOMINATOR_MIN


def simulate_reference(
    forcing: Mapping[str, np.ndarray], params: np.ndarray
) -> dict[str, np.ndarray]:
    """Simulate GPP and the sensitivity functions with explicit loops.

    Args:
        forcing: ``T, VPD, CO2, W, PAR, FAPAR, CI`` arrays of shape (sites, days).
        params: Physical parameters, shape (sites, 13), in ``PARAMETERS`` order.

    Returns:
        Dict with ``GPP, fT, fVPD, fVPD_VPD, fVPD_CO2, fW, fL, fCI, Tf, Wf, APAR``, each
        float64 of shape (sites, days).
    """
    F = {k: np.asarray(v, dtype=np.float64) for k, v in forcing.items()}
    P = np.asarray(params, dtype=np.float64)
    n_sites, n_days = F["T"].shape
    keys = ("GPP", "fT", "fVPD", "fVPD_VPD", "fVPD_CO2", "fW", "fL", "fCI", "Tf", "Wf", "APAR")
    out = {k: np.empty((n_sites, n_days)) for k in keys}
    for s in range(n_sites):
        p = dict(zip(PARAMETERS, (float(v) for v in P[s]), strict=True))
        Tf_prev = Wf_prev = 0.0
        for t in range(n_days):
            T = F["T"][s, t]
            VPD = F["VPD"][s, t]
            ca = F["CO2"][s, t]
            W = F["W"][s, t]
            PAR = F["PAR"][s, t]
            FAPAR = F["FAPAR"][s, t]
            CI = F["CI"][s, t]
            # Lag filters: Tf(0) = T(0), then the first-order recursion.
            if t == 0:
                Tf, Wf = T, W
            else:
                Tf = (1.0 - p["alpha_T"]) * T + p["alpha_T"] * Tf_prev
                Wf = (1.0 - p["alpha_W"]) * W + p["alpha_W"] * Wf_prev
            Tf_prev, Wf_prev = Tf, Wf
            # fT = 2 exp(-(Tf - Topt)/kT) / (1 + exp(-(Tf - Topt)/kT)^2)
            e = math.exp(-(Tf - p["Topt"]) / p["kT"])
            fT = 2.0 * e / (1.0 + e**2)
            # fVPD = exp(kappa (Ca0/ca)^Ckappa VPD) * (1 + (ca - Ca0)/(ca - Ca0 + Cm))
            fVPD_VPD = math.exp(p["kappa"] * (p["Ca0"] / ca) ** p["Ckappa"] * VPD)
            denominator = max(ca - p["Ca0"] + p["Cm"], CO2_DENOMINATOR_MIN)
            fVPD_CO2 = 1.0 + (ca - p["Ca0"]) / denominator
            fVPD = fVPD_VPD * fVPD_CO2
            # fW = 1 / (1 + exp(kW (Wf - WI)))
            fW = 1.0 / (1.0 + math.exp(p["kW"] * (Wf - p["WI"])))
            # fL = 1 / (1 + gamma APAR)
            APAR = PAR * FAPAR
            fL = 1.0 / (1.0 + p["gamma"] * APAR)
            # fCI = CI^mu, CI clipped to [0.001, 1]
            fCI = min(max(CI, CI_MIN), 1.0) ** p["mu"]
            GPP = PAR * FAPAR * p["eps_max"] * fT * fVPD * fW * fL * fCI
            for k, v in (("GPP", GPP), ("fT", fT), ("fVPD", fVPD), ("fVPD_VPD", fVPD_VPD),
                         ("fVPD_CO2", fVPD_CO2), ("fW", fW), ("fL", fL), ("fCI", fCI),
                         ("Tf", Tf), ("Wf", Wf), ("APAR", APAR)):
                out[k][s, t] = v
    return out

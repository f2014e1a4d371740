"""Soil-water bucket for the relative soil water W when no soil-moisture record exists.

A single-layer bucket of capacity ``whc`` [mm] (the site's water holding capacity)::

    S_t = min(whc, max(0, S_{t-1} + P_t - ET_t)),   ET_t = PET_t * beta(W_{t-1}),
    beta(W) = min(1, W / 0.75),   W = S / whc,

i.e. actual evapotranspiration is at the potential rate while the bucket is above 75 % of its
capacity and falls linearly to zero below (Manabe 1969), and water above capacity runs off.
The potential evapotranspiration comes from :func:`pet` (Priestley & Taylor 1972 with net
radiation from SW_IN, LW_IN and T when incoming longwave is known, else Makkink 1957 from
global radiation and T only).

The recursion is sequential in time, so it loops over days but vectorises over any leading
(site) axes: 196 sites x 3650 days take a few tens of milliseconds.
"""

from __future__ import annotations

import numpy as np

from lue_spie.constants import W_M2_TO_MJ_D, ZERO_CELSIUS_K

#: Fraction of capacity above which ET proceeds at the potential rate (Manabe 1969).
BETA_CRITICAL = 0.75

#: Latent heat of vaporisation [MJ kg-1].
LAMBDA = 2.45

#: Stefan-Boltzmann constant [W m-2 K-4].
SIGMA = 5.670374419e-8


def bucket_W(
    P: np.ndarray,
    PET: np.ndarray,
    whc: float | np.ndarray,
    W0: float | np.ndarray | None = None,
) -> np.ndarray:
    """Relative soil water W in [0, 1] from daily precipitation and potential ET.

    Args:
        P: Precipitation [mm d-1], shape (..., days), no NaN.
        PET: Potential evapotranspiration [mm d-1], same shape, no NaN.
        whc: Water holding capacity [mm] > 0, scalar or shape (...) (one per site).
        W0: Relative soil water at the start (scalar or shape (...)). None (default) spins the
            bucket up: it runs the first 365 days (or the whole record if shorter) once from a
            full bucket and starts from the state reached.

    Returns:
        W at the end of each day, shape (..., days), in [0, 1].

    Raises:
        ValueError: for mismatched shapes, NaN inputs, negative P or PET, or whc <= 0.
    """
    P = np.asarray(P, dtype=float)
    PET = np.asarray(PET, dtype=float)
    if P.shape != PET.shape:
        raise ValueError(f"bucket_W: P shape {P.shape} differs from PET shape {PET.shape}")
    if P.ndim == 0:
        raise ValueError("bucket_W: P and PET must have a day axis (last axis)")
    for name, x in (("P", P), ("PET", PET)):
        if np.isnan(x).any():
            raise ValueError(f"bucket_W: {name} has {int(np.isnan(x).sum())} NaN values; "
                             "gap-fill it first")
        if (x < 0).any():
            raise ValueError(f"bucket_W: {name} has negative values (min {x.min():g} mm d-1)")
    lead = P.shape[:-1]
    whc_a = np.broadcast_to(np.asarray(whc, dtype=float), lead).copy()
    if np.isnan(whc_a).any() or (whc_a <= 0).any():
        raise ValueError(f"bucket_W: whc must be > 0 mm, got {whc}")

    def run(state: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        out = np.empty(lead + (n,), dtype=float)
        for t in range(n):
            w = state / whc_a
            et = PET[..., t] * np.minimum(1.0, w / BETA_CRITICAL)
            state = np.clip(state + P[..., t] - et, 0.0, whc_a)
            out[..., t] = state / whc_a
        return state, out

    days = P.shape[-1]
    if W0 is None:
        state, _ = run(whc_a.copy(), min(365, days))
    else:
        w0 = np.broadcast_to(np.asarray(W0, dtype=float), lead)
        if np.isnan(w0).any() or (w0 < 0).any() or (w0 > 1).any():
            raise ValueError(f"bucket_W: W0 must be in [0, 1], got {W0}")
        state = w0 * whc_a
    _, W = run(state, days)
    return np.clip(W, 0.0, 1.0)


def _slope_gamma(T: np.ndarray, PA: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Slope of the saturation vapour pressure curve and psychrometric constant [kPa K-1]."""
    T = np.asarray(T, dtype=float)
    es = 0.6108 * np.exp(17.27 * T / (T + 237.3))
    delta = 4098.0 * es / (T + 237.3) ** 2
    gamma = 0.000665 * np.asarray(PA, dtype=float)
    return delta, gamma


def priestley_taylor_pet(Rn: np.ndarray, T: np.ndarray, PA: np.ndarray | float = 101.3,
                         alpha: float = 1.26) -> np.ndarray:
    """Priestley-Taylor PET [mm d-1] from net radiation ``Rn`` [MJ m-2 d-1], T [degC], PA [kPa].

    Ground heat flux is neglected at the daily scale (FAO-56); negative values are set to 0.
    """
    delta, gamma = _slope_gamma(T, PA)
    return np.maximum(alpha * delta / (delta + gamma) * np.asarray(Rn, dtype=float) / LAMBDA, 0.0)


def makkink_pet(Rs: np.ndarray, T: np.ndarray, PA: np.ndarray | float = 101.3) -> np.ndarray:
    """Makkink (1957) reference ET [mm d-1] from global radiation ``Rs`` [MJ m-2 d-1] and T."""
    delta, gamma = _slope_gamma(T, PA)
    return np.maximum(0.61 * delta / (delta + gamma) * np.asarray(Rs, dtype=float) / LAMBDA
                      - 0.12, 0.0)


def pet(SW_IN: np.ndarray, T: np.ndarray, PA: np.ndarray | float | None = None,
        LW_IN: np.ndarray | None = None, albedo: float = 0.15) -> np.ndarray:
    """Potential evapotranspiration [mm d-1] from daily means of SW_IN [W m-2] and T [degC].

    With incoming longwave ``LW_IN`` [W m-2]: Priestley-Taylor with net radiation
    ``Rn = (1 - albedo) SW_IN + 0.97 (LW_IN - sigma (T + 273.15)^4)``. Without it: Makkink.
    ``PA`` [kPa] defaults to 101.3. NaN inputs give NaN.
    """
    PA_ = 101.3 if PA is None else PA
    SW_IN = np.asarray(SW_IN, dtype=float)
    T = np.asarray(T, dtype=float)
    if LW_IN is None:
        return makkink_pet(SW_IN * W_M2_TO_MJ_D, T, PA_)
    lw_net = 0.97 * (np.asarray(LW_IN, dtype=float) - SIGMA * (T + ZERO_CELSIUS_K) ** 4)
    rn = ((1.0 - albedo) * SW_IN + lw_net) * W_M2_TO_MJ_D
    return priestley_taylor_pet(rn, T, PA_)

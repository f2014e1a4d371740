"""Random and smoothed series shared by the virtual FLUXNET's modules.

Both work along the last (day) axis of ``(sites, days)`` arrays, for every site at once:
:func:`_ar1` draws stationary AR(1) noise (weather, phenology and observation-error
anomalies), :func:`_ema` smooths by an exponential memory (the temperature and soil water
that time the phenology, the structural error's memory and capacity lag, yearly anomalies
softened at the new year).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter


def _ar1(rng: np.random.Generator, shape: tuple[int, int], phi: float) -> np.ndarray:
    """Stationary AR(1) series along the last axis, unit variance."""
    e = rng.standard_normal(shape)
    x0 = rng.standard_normal((shape[0], 1))
    return lfilter([math.sqrt(1.0 - phi * phi)], [1.0, -phi], e, axis=-1, zi=phi * x0)[0]


def _ema(x: np.ndarray, tau: float) -> np.ndarray:
    """Exponential smoothing along the last axis with time constant ``tau`` steps."""
    a = math.exp(-1.0 / tau)
    return lfilter([1.0 - a], [1.0, -a], x, axis=-1, zi=a * x[:, :1])[0]


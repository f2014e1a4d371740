"""The virtual FLUXNET's soil water: the bucket's capacity, irrigation, and W.

The site's bucket capacity ``whc`` follows from soil texture, coarse fragments and a PFT
rooting depth (:func:`_water_holding_capacity`, with the soil of
:func:`lue_spie.data.virtual.drawn_features._soil` and the rooting depth of
:data:`lue_spie.data.virtual.vegetation.PHENOLOGY`). W comes from the project's soil-water
bucket (:func:`lue_spie.data.bucket.bucket_W`, PET by :func:`lue_spie.data.bucket.pet`) with
that capacity (:func:`_soil_water`); irrigated crops get the day's deficit on top of rain in
their season (:func:`_irrigation`; P stays the measured rain).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lue_spie.data.bucket import bucket_W
from lue_spie.data.virtual.sites import _irrigation_season
from lue_spie.data.virtual.vegetation import C4_CROP, PHENOLOGY


def _water_holding_capacity(rng: np.random.Generator, sites: pd.DataFrame,
                            soil: pd.DataFrame) -> np.ndarray:
    """The bucket's capacity ``whc`` [mm] of each site: available water content from the
    soil texture (silt, clay) over a rooting depth by PFT (C4 crops their own, jittered by
    site), less the coarse fragments; clipped to 15-600 mm."""
    n_sites = len(sites)
    depth = np.array([C4_CROP.root_depth if c4 else PHENOLOGY[p].root_depth
                      for p, c4 in zip(sites["PFT"], sites["c4"], strict=True)]) \
        * np.exp(0.2 * rng.standard_normal(n_sites))
    awc = 0.05 + 0.0022 * soil["soil_silt"].to_numpy() + 0.001 * soil["soil_clay"].to_numpy()
    return np.clip(1000.0 * awc * depth * (1.0 - soil["soil_cfvo"].to_numpy() / 100.0),
                   15.0, 600.0)


def _irrigation(sites: pd.DataFrame, T: np.ndarray, P: np.ndarray, PET: np.ndarray,
                dates: pd.DatetimeIndex) -> np.ndarray:
    """Water added to the bucket of irrigated crops [mm d-1]: the day's deficit PET - P in
    the crop's irrigation season (:data:`lue_spie.data.virtual.sites.CROPS`), so the soil
    stays near field capacity; zero elsewhere."""
    season = _irrigation_season(sites, dates)
    return np.where(season, np.clip(PET - P, 0.0, None), 0.0)


def _soil_water(sites: pd.DataFrame, T: np.ndarray, P: np.ndarray, PET: np.ndarray,
                whc: np.ndarray, dates: pd.DatetimeIndex) -> np.ndarray:
    """Relative soil water W (sites, days) of the bucket of capacity ``whc``, filled by rain
    ``P`` plus irrigation (:func:`_irrigation`) and emptied by ``PET``."""
    return bucket_W(P + _irrigation(sites, T, P, PET, dates), PET, whc)

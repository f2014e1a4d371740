"""Similarity-based method (paper section 2.2.2): Sitesim.

A held-out site takes the calibrated vector of the most similar training site of its PFT,
with the similarity of Carvalhais et al. (2010)::

    D(i, j) = 1 - sum_n (V_in - V_jn)^2 / sum_n (V_in - mean(V_i))^2

where ``V_i`` is site i's normalised mean seasonal cycle (daily climatology) of air temperature,
log precipitation, global radiation and NDVI, concatenated (4 x 365 values), and ``i`` is the
target site. ``D`` is 1 for an identical climate and falls below 0 when the training site
differs from the target more than the target's cycle varies around its own mean.

Decisions (the paper is silent on them):

- **Climatologies** (:func:`lue_spie.data.features.climatology`): day-of-year means over the
  record (the years in use), smoothed with a 15-day centred moving average so that single
  weather events do not dominate, ``log1p`` of the mean precipitation cycle.
- **Normalisation**: each of the four variables is z-scored with its mean and standard
  deviation over the training sites' cycles (pooled over sites and days), so no variable
  dominates by its units; the target is scaled with the same numbers.
- **Hemispheres**: cycles of southern-hemisphere sites are shifted by half a year (182 days)
  so that summers line up; a southern savanna is then compared with northern savannas by its
  climate, not by its calendar.
- **Fallback**: with no calibrated training site of the target's PFT, the most similar of all
  training sites is used and the ``note`` says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lue_spie.data.features import climatology
from lue_spie.methods.base import Method, SiteData, finish_params, params_frame
from lue_spie.params import PARAMETERS

__all__ = ["Sitesim", "similarity", "seasonal_vectors"]

#: The variables of the similarity vector (site-day columns) and which are log-transformed.
VARIABLES: tuple[str, ...] = ("T", "P", "SW_IN", "NDVI")
LOG_VARIABLES: tuple[str, ...] = ("P",)
#: Half a year in days: the shift that aligns southern-hemisphere cycles with northern ones.
HALF_YEAR_DAYS = 182


def seasonal_vectors(site_day: pd.DataFrame, lat: pd.Series, *,
                     smooth_days: int = 15) -> dict[str, pd.DataFrame]:
    """The four seasonal cycles per site (index site, 365 columns), southern ones shifted."""
    cyc = climatology(site_day, list(VARIABLES), log=LOG_VARIABLES, smooth_days=smooth_days)
    out = {}
    for v, tab in cyc.items():
        arr = tab.to_numpy(copy=True)
        south = lat.reindex(tab.index).to_numpy() < 0
        arr[south] = np.roll(arr[south], -HALF_YEAR_DAYS, axis=1)
        missing = ~np.isfinite(arr).all(axis=1)
        if missing.any():
            bad = tab.index[missing].tolist()
            raise ValueError(f"Sitesim: no {v} values at site(s) {bad[:10]} (the similarity "
                             "needs T, P, SW_IN and NDVI at every site)")
        out[v] = pd.DataFrame(arr, index=tab.index, columns=tab.columns)
    return out


def similarity(target: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Carvalhais et al. (2010) similarity of each candidate row to the target vector."""
    target = np.asarray(target, dtype=np.float64)
    spread = np.sum((target - target.mean()) ** 2)
    if spread == 0:
        raise ValueError("Sitesim: the target's seasonal vector is constant (similarity "
                         "undefined)")
    return 1.0 - np.sum((np.asarray(candidates) - target) ** 2, axis=-1) / spread


@dataclasses.dataclass
class Sitesim(Method, name="Sitesim", family="similarity", order=5):
    """The calibrated vector of the most similar training site of the same PFT.

    Attributes:
        smooth_days: Moving-average window of the seasonal cycles [d].
    """

    smooth_days: int = 15

    def _vectors(self, data: SiteData) -> dict[str, pd.DataFrame]:
        key = ("sitesim", self.smooth_days, tuple(data.years or ()))
        cache = data.__dict__.setdefault("_method_cache", {})
        if key not in cache:
            cache[key] = seasonal_vectors(data.site_day, data.sites["lat"],
                                          smooth_days=self.smooth_days)
        return cache[key]

    def _normalised(self, sites: Sequence[str]) -> np.ndarray:
        return np.concatenate([(self.cycles_[v].loc[list(sites)].to_numpy() - m) / s
                               for v, (m, s) in self.scale_.items()], axis=1)

    def fit(self, data: SiteData, train_sites: Sequence[str]) -> Sitesim:
        """Keep the calibrated training sites and the scaling of the four cycles."""
        cal = data.calibrated(data.check_sites(train_sites, "training sites"))
        self.cycles_ = self._vectors(data)
        self.train_ = cal.set_index("site")
        self.scale_ = {}
        for v in VARIABLES:
            x = self.cycles_[v].loc[list(self.train_.index)].to_numpy()
            sd = float(x.std())
            self.scale_[v] = (float(x.mean()), sd if sd > 0 else 1.0)
        self.train_vectors_ = self._normalised(self.train_.index)
        self.train_pft_ = data.sites.loc[self.train_.index, "PFT"].to_numpy()
        return self

    def predict(self, data: SiteData, sites: Sequence[str]) -> pd.DataFrame:
        """For each site, the vector of its most similar calibrated training site."""
        sites = data.check_sites(sites)
        targets = self._normalised(sites)
        info = data.sites.loc[sites]
        rows, notes = [], []
        for v, pft in zip(targets, info["PFT"], strict=True):
            d = similarity(v, self.train_vectors_)
            same = self.train_pft_ == pft
            pool = np.flatnonzero(same) if same.any() else np.arange(len(d))
            best = pool[np.argmax(d[pool])]
            donor = self.train_.index[best]
            rows.append(self.train_.loc[donor, list(PARAMETERS)].to_numpy(np.float64))
            notes.append(f"donor {donor} (D = {d[best]:.3f})" + (
                "" if same.any() else f"; fallback: no training site of PFT {pft}"))
        params = finish_params(np.array(rows), list(info["koeppen"]))
        return params_frame(sites, params, notes)

"""Univariate clustering methods (paper section 2.2.1): PFTmean, Climmean, PFTmed, Climmed.

A held-out site gets the mean (or median) of the site-calibrated vectors of the training sites
of its plant functional type (PFT) or of its Koeppen main climate group (A-E), computed
parameter by parameter.

Decisions (written down because the paper is silent on them):

- **Lags.** ``alpha_T`` is a free parameter only at D/E sites and ``alpha_W`` only at B sites
  (SPEC section 1). The statistic of a lag parameter is taken over the group's training sites
  where it is free; sites where the lag mask fixed it at 0 would otherwise drag the mean of,
  say, an ENF group with boreal and Mediterranean sites towards no lag at all. The target's
  own lag mask is applied last (:func:`~lue_spie.methods.base.finish_params`). A group with no
  site where a lag is free gives that lag 0.
- **Fallback.** When no training site shares the target's group (a PFT or main group with a
  single site in the dataset, see :mod:`lue_spie.extrapolate.cv`), the statistic over all
  training sites is used and the prediction's ``note`` says so; the runner counts such sites.
- Sites of the training folds without a calibrated vector (skipped by calibration) do not
  count.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pandas as pd

from lue_spie.methods.base import Method, SiteData, finish_params, params_frame
from lue_spie.params import PARAMETERS, lag_mask

__all__ = ["GroupStatistic", "PFTmean", "Climmean", "PFTmed", "Climmed"]


def _statistic(values: np.ndarray, free: np.ndarray, stat: str) -> np.ndarray:
    """Per parameter, the mean or median over rows where the parameter is free (0 if none)."""
    masked = np.where(free, values, np.nan)
    with warnings.catch_warnings():  # a lag free at no site of the group: NaN, then 0
        warnings.simplefilter("ignore", RuntimeWarning)
        out = np.nanmean(masked, axis=0) if stat == "mean" else np.nanmedian(masked, axis=0)
    return np.nan_to_num(out, nan=0.0)


@dataclasses.dataclass
class GroupStatistic(Method):
    """Mean or median of the calibrated vectors per group (subclasses fix both choices)."""

    by: ClassVar[str] = "PFT"  # a column of SiteData.sites: "PFT" or "main_group"
    stat: ClassVar[str] = "mean"  # "mean" or "median"

    def fit(self, data: SiteData, train_sites: Sequence[str]) -> GroupStatistic:
        """Compute the statistic per group, and over all training sites for fallbacks."""
        cal = data.calibrated(data.check_sites(train_sites, "training sites"))
        info = data.sites.loc[cal["site"]]
        values = cal[list(PARAMETERS)].to_numpy(np.float64)
        free = lag_mask(list(info["koeppen"]))
        groups = info[self.by].to_numpy()
        self.group_params_ = {g: _statistic(values[groups == g], free[groups == g], self.stat)
                              for g in np.unique(groups)}
        self.all_params_ = _statistic(values, free, self.stat)
        self.group_sizes_ = {g: int((groups == g).sum()) for g in np.unique(groups)}
        return self

    def predict(self, data: SiteData, sites: Sequence[str]) -> pd.DataFrame:
        """The group's statistic for each site (all training sites when its group is absent)."""
        sites = data.check_sites(sites)
        info = data.sites.loc[sites]
        rows, notes = [], []
        for g in info[self.by]:
            if g in self.group_params_:
                rows.append(self.group_params_[g])
                notes.append("")
            else:
                rows.append(self.all_params_)
                notes.append(f"fallback: no training site of {self.by} {g}; statistic over "
                             "all training sites")
        params = finish_params(np.array(rows), list(info["koeppen"]))
        return params_frame(sites, params, notes)

    def group_table(self) -> pd.DataFrame:
        """The fitted vector of every group, with its number of training sites."""
        t = pd.DataFrame.from_dict(self.group_params_, orient="index", columns=list(PARAMETERS))
        t.insert(0, "n_sites", pd.Series(self.group_sizes_))
        t.index.name = self.by
        return t


@dataclasses.dataclass
class PFTmean(GroupStatistic, name="PFTmean", family="grouping", order=1):
    """Mean of the calibrated vectors per PFT."""

    by: ClassVar[str] = "PFT"
    stat: ClassVar[str] = "mean"


@dataclasses.dataclass
class Climmean(GroupStatistic, name="Climmean", family="grouping", order=2):
    """Mean of the calibrated vectors per Koeppen main climate group."""

    by: ClassVar[str] = "main_group"
    stat: ClassVar[str] = "mean"


@dataclasses.dataclass
class PFTmed(GroupStatistic, name="PFTmed", family="grouping", order=3):
    """Median of the calibrated vectors per PFT."""

    by: ClassVar[str] = "PFT"
    stat: ClassVar[str] = "median"


@dataclasses.dataclass
class Climmed(GroupStatistic, name="Climmed", family="grouping", order=4):
    """Median of the calibrated vectors per Koeppen main climate group."""

    by: ClassVar[str] = "main_group"
    stat: ClassVar[str] = "median"

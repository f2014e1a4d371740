"""Optimisation-based methods (paper section 2.2.3): OPT-All and OPT-PFT.

One parameter vector is optimised with CMA-ES on the pooled calibration cost of many sites:
the mean over the sites of the site cost ``(1 - NSE) + constraints``
(:func:`lue_spie.calibrate.calibrate_pooled`, the same engine and cost as site calibration).

- **OPT-All**: one vector for all training sites of the fold.
- **OPT-PFT**: one vector per PFT, optimised on the fold's training sites of that PFT; all PFT
  groups of a fold run side by side in one batched CMA-ES run.

Decisions:

- **Lags**: a lag parameter is searched when it is free at any site of the group and applied
  only at the sites where it is free; a target gets the group's vector with its own lag mask.
- **Fallback (OPT-PFT)**: a held-out site whose PFT has no training site gets the OPT-All vector
  of its fold (optimised on demand, once per fold), and its ``note`` says so.
- **All folds at once**: :meth:`PooledOptimisation.fit_predict_folds` optimises the groups of
  several folds in one engine run (units named ``fold<k>/<group>``): the same vectors as fold
  after fold (each unit's generator is seeded from its own name, not from its neighbours), one
  ask/evaluate/tell loop instead of ten.
- **Settings**: :class:`~lue_spie.calibrate.CalibrationSettings` (default: those of site
  calibration); the runner gives a checkpoint folder (:attr:`PooledOptimisation.workdir`), so
  an interrupted run resumes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from lue_spie.calibrate import CalibrationSettings, calibrate_pooled
from lue_spie.methods.base import Method, SiteData, finish_params, params_frame
from lue_spie.params import PARAMETERS

__all__ = ["PooledOptimisation", "OPTAll", "OPTPFT"]

_ALL = "all"


@dataclasses.dataclass
class PooledOptimisation(Method, learns_from="observations", folds="batched"):
    """One vector per group of training sites, by CMA-ES on the pooled cost.

    Attributes:
        settings: CMA-ES settings (seed, generations, tolerances, dtype, device ...).
    """

    settings: CalibrationSettings = dataclasses.field(default_factory=CalibrationSettings)
    by: ClassVar[str | None] = None  # None: one group of all sites; "PFT": one per PFT
    #: Checkpoint folder of the pooled runs (set by the runner; not a hyperparameter).
    workdir: Path | None = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.settings, Mapping):  # e.g. from a JSON record or the CLI
            self.settings = CalibrationSettings(**self.settings)

    def get_params(self) -> dict:
        """The hyperparameters (the CMA-ES settings)."""
        return {"settings": self.settings.to_dict()}

    # -- groups ------------------------------------------------------------------------------
    @staticmethod
    def _usable(data: SiteData, train: Sequence[str]) -> list[str]:
        # Sites skipped by site calibration (too few good days) cannot enter a pooled cost
        # either; without a calibration table every training site is used.
        return list(data.calibrated(train)["site"]) if data.calibration is not None \
            else list(train)

    def _groups(self, data: SiteData, train: Sequence[str]) -> dict[str, list[str]]:
        usable = self._usable(data, train)
        if self.by is None:
            return {_ALL: usable}
        pft = data.sites.loc[usable, self.by]
        return {str(g): list(pft.index[pft == g]) for g in sorted(pft.unique())}

    def _optimise(self, data: SiteData, groups: dict[str, list[str]],
                  tag: str) -> dict[str, np.ndarray]:
        ckpt = None if self.workdir is None else Path(self.workdir) / f"checkpoint_{tag}"
        res = calibrate_pooled(data.dataset, groups, self.settings, years=data.years,
                               checkpoint_dir=ckpt)
        self.units_ = res.units
        return {str(r["group"]): r[list(PARAMETERS)].to_numpy(np.float64)
                for _, r in res.units.iterrows()}

    # -- fit / predict -----------------------------------------------------------------------
    def fit(self, data: SiteData, train_sites: Sequence[str]) -> PooledOptimisation:
        """Optimise one vector per group of the training sites."""
        train = data.check_sites(train_sites, "training sites")
        self.train_sites_ = train
        self.group_params_ = self._optimise(data, self._groups(data, train), "fit")
        return self

    def predict(self, data: SiteData, sites: Sequence[str]) -> pd.DataFrame:
        """The vector of each site's group (OPT-PFT: OPT-All of the fold when it has none)."""
        sites = data.check_sites(sites)
        info = data.sites.loc[sites]
        rows, notes = [], []
        for g in (info[self.by] if self.by else [_ALL] * len(sites)):
            if str(g) in self.group_params_:
                rows.append(self.group_params_[str(g)])
                notes.append("")
            else:
                if _ALL not in self.group_params_:
                    self.group_params_.update(self._optimise(
                        data, {_ALL: self._usable(data, self.train_sites_)}, "fallback"))
                rows.append(self.group_params_[_ALL])
                notes.append(f"fallback: no training site of {self.by} {g}; one vector for "
                             "all training sites (OPT-All)")
        params = finish_params(np.array(rows), list(info["koeppen"]))
        return params_frame(sites, params, notes)

    def fit_predict_folds(self, data: SiteData,
                          folds: Sequence[tuple[int, Sequence[str], Sequence[str]]]
                          ) -> dict[int, pd.DataFrame]:
        """Fit and predict several folds with one batched CMA-ES run.

        Args:
            data: The shared site data.
            folds: ``(fold, train_sites, test_sites)`` per fold.

        Returns:
            Fold -> prediction table.
        """
        groups: dict[str, list[str]] = {}
        for k, train, test in folds:
            fold_groups = self._groups(data, data.check_sites(train, "training sites"))
            if self.by is not None:
                missing = set(data.sites.loc[list(test), self.by]) - set(fold_groups)
                if missing:  # the fallback vector of this fold, in the same run
                    fold_groups[_ALL] = self._usable(data, train)
            groups.update({f"fold{k}/{g}": s for g, s in fold_groups.items()})
        tag = "folds" + "-".join(str(k) for k, _, _ in folds)
        fitted = self._optimise(data, groups, tag)
        out = {}
        for k, train, test in folds:
            prefix = f"fold{k}/"
            self.train_sites_ = list(train)
            self.group_params_ = {g[len(prefix):]: v for g, v in fitted.items()
                                  if g.startswith(prefix)}
            out[k] = self.predict(data, test)
        return out


@dataclasses.dataclass
class OPTAll(PooledOptimisation, name="OPT-All", family="optimisation", order=6):
    """One vector optimised on the pooled cost of all training sites."""

    by: ClassVar[str | None] = None


@dataclasses.dataclass
class OPTPFT(PooledOptimisation, name="OPT-PFT", family="optimisation", order=7):
    """One vector per PFT, optimised on the pooled cost of the PFT's training sites."""

    by: ClassVar[str | None] = "PFT"

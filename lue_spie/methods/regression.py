"""Regression-based methods (paper section 2.2.4): sRF, mRF and mNN.

The site-calibrated vectors of the training sites are regressed on the site features
(PFT and Koeppen one-hot, BioClim, aridity, VIF, N/P deposition, soil; continuous features
z-scored with the training folds' statistics, paper equation 9), and the fitted model predicts
the vector of a held-out site from its features.

- **sRF**: 13 single-output random forests of 100 trees (Breiman 2001), one per parameter.
- **mRF**: one multi-output random forest of 100 trees (scikit-learn's forests split on the
  summed squared error of all outputs).
- **mNN**: a multi-output multi-layer perceptron with two hidden layers of 16 ReLU units
  (scikit-learn's ``MLPRegressor``, Adam, learning rate 1e-3, L2 1e-4 as SPIE). The paper
  gives no stopping rule for mNN; with about 180 training sites and 79 features an MLP
  trained to convergence on the training loss overfits (on a known map of two features it
  explained 40-60 % of the held-out variance against 60-70 % with early stopping), so it stops
  when the loss on 10 % of the training sites, held out inside the fold, has not improved for
  ``patience`` epochs (scikit-learn's ``early_stopping``).

Decisions:

- **Targets in the scaled space**: every parameter is mapped onto [0, 1] between its bounds
  before fitting (:func:`lue_spie.params.to_scaled`), so that the multi-output models weigh
  the 13 parameters equally (Cm spans 3900 ppm, kappa 0.1 Pa-1); predictions are clipped to
  [0, 1] and mapped back.
- **kappa on the log scale for mNN**: kappa's bounds span three orders of magnitude and its
  realistic values sit within 2 % of the upper bound, so on the linear [0, 1] scale an MLP's
  ordinary error of a few hundredths is a kappa ten to a hundred times too strong, which
  switches photosynthesis off on dry days (measured on 196 virtual sites x 8 years: mNN's
  held-out median daily NSE -0.70 with linear targets, its kappa median -4.5e-3 against the
  calibrated -5.6e-4 Pa-1). Its kappa target is log-scaled between the bounds
  (:func:`lue_spie.params.to_log_scaled`, the same choice as SPIE's default bounds mapping).
  The forests average training targets, so they never leave the calibrated range, and keep
  the linear scale.
- **Lags**: a single-output forest of ``alpha_T`` (``alpha_W``) is trained on the sites where
  the lag is free (Koeppen D/E; B); the multi-output models see the lag-masked vectors as they
  are (0 where fixed) and learn the difference from the Koeppen features. The target's lag
  mask is applied last in every case.
- **Seeds**: each model's ``random_state`` is derived from ``seed`` and the set of training
  sites, so a fold gives the same model whatever the order of its sites.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.neural_network import MLPRegressor

from lue_spie.methods.base import Method, SiteData, finish_params, params_frame
from lue_spie.params import (
    LAG_PARAMETERS,
    PARAMETERS,
    from_log_scaled,
    lag_mask,
    to_log_scaled,
)

__all__ = ["FeatureRegression", "SingleRF", "MultiRF", "MultiNN", "fold_seed"]


def fold_seed(seed: int, train_sites: Sequence[str]) -> int:
    """A 31-bit seed from ``seed`` and the (unordered) set of training sites."""
    blob = f"{int(seed)}|" + ",".join(sorted(map(str, train_sites)))
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:4], "little") & 0x7FFFFFFF


@dataclasses.dataclass
class FeatureRegression(Method):
    """Calibrated vectors regressed on site features (subclasses choose the model)."""

    seed: int = 0
    #: Parameters whose targets are log-scaled between their bounds (see the module docstring).
    log_targets: ClassVar[tuple[str, ...]] = ()

    def _training(self, data: SiteData, train_sites: Sequence[str]
                  ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, list[str]]:
        train = data.check_sites(train_sites, "training sites")
        cal = data.calibrated(train)
        sites = list(cal["site"])
        X = data.features(train, sites)
        Y = to_log_scaled(cal[list(PARAMETERS)].to_numpy(np.float64), self.log_targets)
        free = lag_mask(list(data.sites.loc[sites, "koeppen"]))
        self.train_sites_ = train
        self.feature_names_ = list(X.columns)
        return X, Y, free, sites

    def _predict_scaled(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def predict(self, data: SiteData, sites: Sequence[str]) -> pd.DataFrame:
        """Predicted vectors from the sites' features (z-scored with the training stats)."""
        sites = data.check_sites(sites)
        X = data.features(self.train_sites_, sites)
        scaled = np.clip(self._predict_scaled(X), 0.0, 1.0)
        params = finish_params(from_log_scaled(scaled, self.log_targets),
                               list(data.sites.loc[sites, "koeppen"]))
        return params_frame(sites, params)


@dataclasses.dataclass
class SingleRF(FeatureRegression, name="sRF", family="regression", order=8):
    """13 single-output random forests (one per parameter).

    Attributes:
        n_estimators: Trees per forest (paper: 100).
        min_samples_leaf: scikit-learn's ``min_samples_leaf``.
        seed: Base seed.
    """

    n_estimators: int = 100
    min_samples_leaf: int = 1

    def fit(self, data: SiteData, train_sites: Sequence[str]) -> SingleRF:
        """One forest per parameter (lag forests on the sites where the lag is free)."""
        X, Y, free, _ = self._training(data, train_sites)
        rs = fold_seed(self.seed, self.train_sites_)
        self.models_: dict[str, Any] = {}
        for j, name in enumerate(PARAMETERS):
            rows = free[:, j] if name in LAG_PARAMETERS else np.ones(len(Y), bool)
            if rows.sum() < 2:  # too few sites where the lag is free: a constant
                self.models_[name] = float(Y[rows, j].mean()) if rows.any() else 0.0
                continue
            rf = RandomForestRegressor(n_estimators=self.n_estimators,
                                       min_samples_leaf=self.min_samples_leaf,
                                       random_state=rs + j, n_jobs=1)
            self.models_[name] = rf.fit(X.to_numpy()[rows], Y[rows, j])
        return self

    def _predict_scaled(self, X: pd.DataFrame) -> np.ndarray:
        cols = []
        for name in PARAMETERS:
            m = self.models_[name]
            cols.append(np.full(len(X), m) if isinstance(m, float)
                        else m.predict(X.to_numpy()))
        return np.stack(cols, axis=1)


@dataclasses.dataclass
class MultiRF(FeatureRegression, name="mRF", family="regression", order=9):
    """One multi-output random forest for the 13 parameters.

    Attributes:
        n_estimators: Trees (paper: 100).
        min_samples_leaf: scikit-learn's ``min_samples_leaf``.
        seed: Base seed.
    """

    n_estimators: int = 100
    min_samples_leaf: int = 1

    def fit(self, data: SiteData, train_sites: Sequence[str]) -> MultiRF:
        """One forest on the 13 scaled parameters."""
        X, Y, _, _ = self._training(data, train_sites)
        self.model_ = RandomForestRegressor(
            n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
            random_state=fold_seed(self.seed, self.train_sites_), n_jobs=1).fit(X.to_numpy(), Y)
        return self

    def _predict_scaled(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict(X.to_numpy())


@dataclasses.dataclass
class MultiNN(FeatureRegression, name="mNN", family="regression", order=10):
    """A multi-output MLP (2 hidden layers of 16) for the 13 scaled parameters.

    Attributes:
        hidden: Units per hidden layer (paper: 16, 16).
        learning_rate: Adam's learning rate (1e-3).
        l2: L2 penalty (scikit-learn's ``alpha``; 1e-4).
        max_iter: Most epochs (2000, the SPIE budget).
        early_stopping: Stop on the loss of 10 % of the training sites held out in the fold.
        patience: Epochs without improvement before stopping.
        seed: Base seed.
    """

    #: Parameters fitted on the log scale between their bounds (kappa).
    log_targets: tuple[str, ...] = ("kappa",)
    hidden: tuple[int, ...] = (16, 16)
    learning_rate: float = 1e-3
    l2: float = 1e-4
    max_iter: int = 2000
    early_stopping: bool = True
    patience: int = 50

    def fit(self, data: SiteData, train_sites: Sequence[str]) -> MultiNN:
        """Fit the MLP on the scaled parameters (scikit-learn's own stopping rule)."""
        X, Y, _, _ = self._training(data, train_sites)
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        self.model_ = MLPRegressor(
            hidden_layer_sizes=tuple(self.hidden), activation="relu", solver="adam",
            learning_rate_init=self.learning_rate, alpha=self.l2, max_iter=self.max_iter,
            early_stopping=self.early_stopping, validation_fraction=0.1,
            n_iter_no_change=self.patience, random_state=fold_seed(self.seed, self.train_sites_))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # reported as n_iter_ instead
            self.model_.fit(X.to_numpy(), Y)
        return self

    def _predict_scaled(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict(X.to_numpy())

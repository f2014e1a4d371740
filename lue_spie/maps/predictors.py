"""Each method's parameters for the continent's cells, from what the book trained on the towers.

A map needs one prediction per cell, not one per fold of the cross-validation. What is reused
and what is refitted, per kind of method (:func:`build_predictors`):

- **SPIE** (:class:`SPIEEnsemble`): the ten fold networks of the cross-validation
  (``RESULTS/extrapolation/SPIE``), each fed the cell's features z-scored with its own
  training statistics; the cell's parameters are the mean of the ten predictions (an
  ensemble of networks that together saw every tower). No network is retrained.
- **OPT-All, OPT-PFT** (:class:`FoldVectors`): the vectors the cross-validation optimised on
  each fold's training towers (one per PFT for OPT-PFT), read back from their held-out
  predictions and averaged over the folds; no CMA-ES run is repeated. A lag parameter's vector
  comes from the held-out towers where the lag is free.
- **Methods that learn from site-calibrated vectors** (:class:`RefitMethod`: PFTmean,
  Climmean, PFTmed, Climmed, sRF, mRF, mNN): refitted once on the calibrated vectors of all
  towers, with the hyperparameters of the cross-validation, and asked for the cells through
  the method's own ``predict`` (the cells' features z-scored with all towers' statistics).

Sitesim needs the cells' daily series in the dataset and the P-model predicts GPP from
forcing without parameters; neither is mapped here (:func:`check_methods` says so).

Every predictor returns ``(cells, 13)`` physical parameters with each cell's lag mask applied
(:func:`lue_spie.methods.base.finish_params`) and is a small picklable object, sent once to
each worker.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lue_spie import store
from lue_spie.data.io import Dataset
from lue_spie.layout import Layout, MethodFiles
from lue_spie.methods.base import Method, SiteData, finish_params, get_method, method_class
from lue_spie.params import N_PARAMS, PARAMETERS, lag_mask

__all__ = ["Predictor", "SPIEEnsemble", "FoldVectors", "RefitMethod", "check_methods",
           "build_predictors", "fold_vectors"]

#: Methods that cannot be mapped here, and why.
_NOT_MAPPABLE = {
    "Sitesim": "it compares the daily seasonal cycles of a target with the towers', and the "
               "cells' daily series are not in the towers' dataset",
    "P-model": "it predicts GPP from forcing with globally fixed settings, not parameters",
}


class Predictor(abc.ABC):
    """A method's parameters for cells (see the module docstring).

    Attributes:
        method: The method's name.
        how: One line on what was reused or refitted (for the record and the chapter).
        inputs: The result files it was built from.
    """

    method: str
    how: str
    inputs: list[Path]

    @abc.abstractmethod
    def predict(self, cells: pd.DataFrame) -> np.ndarray:
        """``(cells, 13)`` parameters of the cells (a sites table with ``site``, ``PFT``,
        ``koeppen`` and the site features)."""


class SPIEEnsemble(Predictor):
    """SPIE's fold networks averaged (see the module docstring).

    Args:
        folder: SPIE's results folder (its ``fold<k>.network.pt`` files).
    """

    def __init__(self, folder: str | Path) -> None:
        from lue_spie.methods.spie import load_networks

        self.method = "SPIE"
        self.networks = load_networks(folder)
        self.inputs = list(MethodFiles(Path(folder)).networks())
        self.how = (f"the {len(self.networks)} fold networks of the cross-validation, their "
                    "predictions averaged")

    def predict(self, cells: pd.DataFrame) -> np.ndarray:
        koeppen = list(cells["koeppen"])
        out = np.zeros((len(cells), N_PARAMS))
        for k in self.networks.folds:
            X = self.networks.features(cells, k)
            out += self.networks.predict(X, k, koeppen)[list(PARAMETERS)].to_numpy()
        return finish_params(out / len(self.networks), koeppen)


def fold_vectors(params: pd.DataFrame, sites: pd.DataFrame, by: str | None,
                 method: str = "method") -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The group vectors of a grouping method, recovered from its held-out predictions and
    averaged over the folds.

    Args:
        params: The method's gathered predictions (``site``, ``fold``, the 13 parameters,
            ``note``: a non-empty note marks a fallback to all training sites).
        sites: The towers' sites table (``site``, ``PFT``, ``koeppen``).
        by: ``"PFT"`` (one vector per PFT) or None (one vector for all).
        method: The method's name, for error messages.

    Returns:
        ``(group -> vector, fallback vector)``: each vector the mean over the folds of the
        fold's vector (a lag parameter from the towers where it is free; NaN where it is
        free at none); the fallback is the mean of the fallback rows, or of all groups'
        vectors when no held-out tower needed one.

    Raises:
        ValueError: when the held-out towers of one group in one fold got different vectors
            (not a grouping method).
    """
    info = sites.set_index("site")
    t = params.merge(info[["PFT", "koeppen"]], left_on="site", right_index=True, how="left")
    if t["koeppen"].isna().any():
        raise ValueError(f"{method}: predictions of sites that are not in the dataset")
    free = lag_mask(list(t["koeppen"]))
    values = np.where(free, t[list(PARAMETERS)].to_numpy(np.float64), np.nan)
    note = t["note"].fillna("").astype(str).to_numpy() if "note" in t else np.full(len(t), "")
    group = t[by].astype(str).to_numpy() if by else np.full(len(t), "all")
    fallback = note != ""
    per_fold: dict[str, list[np.ndarray]] = {}
    for k in sorted(t["fold"].unique()):
        in_fold = (t["fold"] == k).to_numpy() & ~fallback
        for g in np.unique(group[in_fold]):
            rows = values[in_fold & (group == g)]
            first = _nanfirst(rows)
            if np.any(np.isfinite(rows) & ~np.isclose(rows, first, rtol=1e-9, atol=0.0)):
                raise ValueError(f"{method}: fold {k} gave different vectors to held-out sites "
                                 f"of group {g!r}; not one vector per group")
            per_fold.setdefault(str(g), []).append(first)
    vectors = {g: _nanmean(np.stack(v)) for g, v in per_fold.items()}
    if fallback.any():
        fb = _nanmean(np.stack([_nanfirst(values[(t["fold"] == k).to_numpy() & fallback])
                                for k in sorted(t.loc[fallback, "fold"].unique())]))
    else:
        fb = _nanmean(np.stack(list(vectors.values())))
    return vectors, fb


def _nanfirst(rows: np.ndarray) -> np.ndarray:
    """Per column the first finite value of the rows (NaN where none)."""
    out = np.full(rows.shape[1], np.nan)
    for j in range(rows.shape[1]):
        finite = rows[np.isfinite(rows[:, j]), j]
        if len(finite):
            out[j] = finite[0]
    return out


def _nanmean(rows: np.ndarray) -> np.ndarray:
    """Per column the mean of the finite values (NaN where none)."""
    finite = np.isfinite(rows)
    n = finite.sum(axis=0)
    total = np.where(finite, rows, 0.0).sum(axis=0)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


class FoldVectors(Predictor):
    """OPT-All's or OPT-PFT's fold vectors averaged (see the module docstring).

    Args:
        method: ``"OPT-All"`` or ``"OPT-PFT"``.
        files: The method's results folder (its gathered ``params`` table).
        sites: The towers' sites table.
    """

    def __init__(self, method: str, files: MethodFiles, sites: pd.DataFrame) -> None:
        cls = method_class(method)
        self.method = method
        self.by: str | None = getattr(cls, "by", None)
        table = store.read_parquet(files.params)
        self.vectors, self.fallback = fold_vectors(table, sites, self.by, method)
        self.inputs = [files.params]
        n_folds = int(table["fold"].nunique())
        what = "per PFT" if self.by else "for all towers"
        self.how = (f"the vectors the cross-validation optimised {what} on each of its "
                    f"{n_folds} folds, averaged over the folds")

    def predict(self, cells: pd.DataFrame) -> np.ndarray:
        groups = cells[self.by].astype(str) if self.by else pd.Series("all", index=cells.index)
        rows = np.stack([self.vectors.get(g, self.fallback) for g in groups]) if len(cells) \
            else np.zeros((0, N_PARAMS))
        # A lag free at no tower of the group was not searched: it stays 0 (finish_params
        # keeps it only where the cell's climate frees it).
        return finish_params(np.nan_to_num(rows, nan=0.0), list(cells["koeppen"]))


class RefitMethod(Predictor):
    """A method that learns from site-calibrated vectors, refitted on all towers.

    Args:
        method: The fitted method.
        towers: The towers' sites table (their features: the z-scores of the cells use all
            towers' statistics, as the method's own ``predict`` computes them).
        how: What was fitted.
        inputs: The files it was fitted on.
    """

    def __init__(self, method: Method, towers: pd.DataFrame, how: str,
                 inputs: Sequence[Path]) -> None:
        self.method = method.name
        self.fitted = method
        self.towers = towers.reset_index(drop=True)
        self.how = how
        self.inputs = list(inputs)

    def predict(self, cells: pd.DataFrame) -> np.ndarray:
        both = pd.concat([self.towers, cells[[c for c in self.towers.columns
                                              if c in cells.columns]]], ignore_index=True)
        data = SiteData(Dataset(path=Path("."), site_day=pd.DataFrame(), sites=both))
        table = self.fitted.predict(data, list(cells["site"]))
        return finish_params(table[list(PARAMETERS)].to_numpy(np.float64),
                             list(cells["koeppen"]))


def check_methods(methods: Sequence[str]) -> list[str]:
    """The methods to map, checked: known, and mappable (see the module docstring).

    Raises:
        KeyError: for an unknown method (naming the known ones).
        ValueError: for a method that cannot be mapped, saying why.
    """
    out = []
    for name in methods:
        cls = method_class(name)
        if name in _NOT_MAPPABLE:
            raise ValueError(f"maps: {name} cannot be mapped: {_NOT_MAPPABLE[name]}")
        if not (name == "SPIE" or cls.family == "optimisation"
                or cls.learns_from == "calibration"):
            raise ValueError(f"maps: {name} cannot be mapped (only SPIE, the optimisation "
                             "methods and the methods that learn from calibrated vectors)")
        out.append(name)
    return out


def _cv_params(files: MethodFiles) -> dict[str, Any] | None:
    """The hyperparameters the cross-validation ran a method with (its fold records)."""
    for k in files.folds():
        record = store.read_provenance(files.fold_params(k))
        if "params" in record.get("settings", {}):
            return dict(record["settings"]["params"])
    return None


def build_predictors(layout: Layout, methods: Sequence[str], dataset: Dataset, *,
                     log: Callable[[str], Any] = lambda *_: None) -> dict[str, Predictor]:
    """A predictor per method, from the results of the book's earlier steps.

    Args:
        layout: The results folder (``extrapolation`` for SPIE's networks and the
            optimisation methods' folds, ``calibration`` for the refitted methods).
        methods: The methods (:func:`check_methods`).
        dataset: The towers' dataset.
        log: Where progress lines go.

    Raises:
        FileNotFoundError: naming the results a method needs and the command that writes
            them.
    """
    out: dict[str, Predictor] = {}
    calibration = None
    for name in check_methods(methods):
        cls = method_class(name)
        files = layout.extrapolation.method(name)
        if name == "SPIE":
            out[name] = SPIEEnsemble(files.folder)
        elif cls.family == "optimisation":
            if not files.params.is_file():
                raise FileNotFoundError(f"{files.params}: no cross-validation results of "
                                        f"{name}; run `lue-spie extrapolate --methods {name}` "
                                        "(the pooled-optimisation chapter) first")
            out[name] = FoldVectors(name, files, dataset.sites)
        else:
            cal_file = layout.calibration.table
            if calibration is None:
                if not cal_file.is_file():
                    raise FileNotFoundError(f"{cal_file}: no site calibration; {name} is "
                                            "refitted on the towers' calibrated vectors (run "
                                            "`lue-spie calibrate` first)")
                calibration = store.read_parquet(cal_file)
            params = _cv_params(files)
            method = get_method(name, **(params or {}))
            data = SiteData(dataset, calibration)
            method.fit(data, data.site_ids)
            n_ok = int((calibration["status"] == "ok").sum())
            source = "with the cross-validation's hyperparameters" if params is not None \
                else "with its default hyperparameters (no cross-validation record found)"
            out[name] = RefitMethod(method, dataset.sites,
                                    f"refitted on the calibrated vectors of all {n_ok} towers "
                                    f"{source}", [cal_file])
        log(f"maps: {name}: {out[name].how}")
    return out

"""The interface every parameter-extrapolation method implements, and the registry.

A *method* (paper section 2.2) learns, from the training sites of a fold, how to give a site
it has never seen either a parameter vector for the LUE model (eleven of the twelve methods)
or GPP directly (the P-model). The interface follows scikit-learn's estimator conventions
where they fit: hyperparameters are constructor arguments (:meth:`Method.get_params`),
:meth:`Method.fit` learns and returns the method itself, learnt state sits in attributes
ending in ``_``, and :meth:`Method.predict` is pure. What differs from scikit-learn is the
input: a method does not take a plain ``X`` matrix but a :class:`SiteData` (the dataset, the
site-calibrated vectors, the feature matrix and the forcing, each built once and shared by
every method and fold) plus the list of training or target site ids.

Registry: subclasses register themselves by the paper's name with class keywords (filled by
``__init_subclass__``, as pyrealm's interchangeable methods are), and the keywords say all
the runner needs to know about a method (:class:`Method`): its ``family``, its place in the
paper's ``order``, what it ``predicts`` (parameters or GPP), what it ``learns_from``
(site-calibrated vectors, the training sites' observations, or nothing) and how it treats the
``folds`` (one fit per fold, all folds in one batched run, all folds stacked in one task, or
the same prediction in every fold). The methods are found by package discovery: every
module of :mod:`lue_spie.methods` whose name does not start with an underscore is imported
by :func:`registered_methods`, so a new method is one new file
(:mod:`lue_spie.methods._template` is one to copy). :func:`get_method` builds one by name
and :func:`paper_order` lists the paper's twelve in its order.

Predictions: :meth:`Method.predict` returns a table with ``site``, the 13 parameters (inside
their bounds, lag mask of the site applied: :func:`finish_params` does both for every method)
and ``note`` (e.g. why a fallback was used); a GPP method returns ``site, date, GPP_sim``.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import importlib
import pkgutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from lue_spie.data.features import feature_matrix
from lue_spie.data.io import Dataset, ForcingBatch, load_dataset
from lue_spie.params import LOWER, N_PARAMS, PARAMETERS, UPPER, koeppen_main_group, lag_mask
from lue_spie.registry import Registry

__all__ = [
    "paper_order",
    "FAMILIES",
    "PREDICTS",
    "LEARNS_FROM",
    "FOLDS",
    "SiteData",
    "Method",
    "get_method",
    "method_class",
    "registered_methods",
    "finish_params",
    "params_frame",
]

#: What a method predicts for a held-out site.
PREDICTS: dict[str, str] = {"params": "a parameter vector (the LUE model gives its GPP)",
                            "gpp": "daily GPP directly"}
#: What a method learns from on the training sites.
LEARNS_FROM: dict[str, str] = {
    "calibration": "the site-calibrated vectors (the runner needs a site calibration)",
    "observations": "the forcing and GPP_obs of the training sites, through the LUE model",
    "nothing": "nothing (its settings are fixed for the globe)"}
#: How a method treats the folds of the cross-validation.
FOLDS: dict[str, str] = {
    "each": "one fit per fold (one unit per fold)",
    "batched": "all folds in one batched run in a process (fit_predict_folds); one unit per "
               "fold on a Dask cluster, where spreading the folds pays more",
    "stacked": "all folds in one run, also on a cluster (fit_predict_folds: one stacked "
               "training of every fold)",
    "independent": "the same prediction in every fold: one run for every held-out site"}
#: Method families and the paper section that describes them.
FAMILIES: dict[str, str] = {
    "grouping": "2.2.1 univariate clustering", "similarity": "2.2.2 similarity",
    "optimisation": "2.2.3 optimisation", "regression": "2.2.4 regression",
    "spie": "2.2.5 SPIE", "pmodel": "2.2.6 globally fixed",
}

def _load_all() -> None:
    """Import every module of :mod:`lue_spie.methods` (each registers its classes), but the
    interface itself and the private ones (``_template``)."""
    import lue_spie.methods as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and info.name != "base":
            importlib.import_module(f"{package.__name__}.{info.name}")


#: The methods by name, in the paper's order (``order``), then others by name; found by
#: package discovery the first time the registry is asked.
REGISTRY: Registry[Method] = Registry(
    "method", load=_load_all, what="hyperparameter",
    order=lambda name, cls: (cls.order is None, cls.order or 0, name))


class SiteData:
    """What the methods may look at, built once and shared by every method and fold.

    Args:
        dataset: The dataset (or its folder): site-day table, sites table with features, and
            for virtual FLUXNET the truth (never shown to a method).
        calibration: The site-calibration table (``site``, ``status``, the 13 parameters),
            or None for methods that do not learn from calibrated vectors.
        years: Years to use (default: all).

    Attributes:
        sites: The sites table indexed by site, with ``main_group`` (Koeppen A-E) added.
    """

    def __init__(self, dataset: Dataset | str | Path, calibration: pd.DataFrame | None = None,
                 *, years: Sequence[int] | None = None) -> None:
        self.dataset = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
        self.years = None if years is None else sorted(int(y) for y in years)
        sites = self.dataset.sites.copy()
        sites["main_group"] = koeppen_main_group(list(sites["koeppen"]))
        self.sites = sites.set_index("site", drop=False)
        self.calibration = None
        if calibration is not None:
            missing = [c for c in ("site", "status", *PARAMETERS) if c not in calibration]
            if missing:
                raise ValueError(f"calibration table: missing column(s) {missing}")
            unknown = sorted(set(calibration["site"]) - set(self.sites.index))
            if unknown:
                raise ValueError(f"calibration table: site(s) {unknown[:10]} are not in the "
                                 f"dataset at {self.dataset.path} (a calibration of other data?)")
            self.calibration = calibration.set_index("site", drop=False)

    # -- sites -------------------------------------------------------------------------------
    @property
    def site_ids(self) -> list[str]:
        """Every site of the dataset."""
        return list(self.sites.index)

    def check_sites(self, sites: Iterable[str], what: str = "sites") -> list[str]:
        """``sites`` as a list, with a clear error for ids not in the dataset."""
        sites = [str(s) for s in sites]
        unknown = [s for s in sites if s not in self.sites.index]
        if unknown:
            raise KeyError(f"{what}: site(s) {unknown[:10]} are not in the dataset at "
                           f"{self.dataset.path}")
        return sites

    def calibrated(self, sites: Sequence[str]) -> pd.DataFrame:
        """The calibrated vectors of those ``sites`` that were calibrated (status ok).

        Raises:
            ValueError: when there is no calibration table, or none of the sites has one.
        """
        if self.calibration is None:
            raise ValueError("this method learns from site-calibrated vectors: give the "
                             "calibration results (--calib DIR)")
        cal = self.calibration
        have = [s for s in sites if s in cal.index and cal.at[s, "status"] == "ok"]
        if not have:
            raise ValueError("none of the training sites has a calibrated vector (status ok)")
        return cal.loc[have, ["site", *PARAMETERS]].reset_index(drop=True)

    # -- features ----------------------------------------------------------------------------
    def features(self, train_sites: Sequence[str],
                 sites: Sequence[str] | None = None) -> pd.DataFrame:
        """The design matrix of ``sites`` (default all), z-scored with the training sites'
        mean and std only (paper equation 9; SPEC section 3)."""
        train = self.sites.loc[list(train_sites)]
        _, stats = feature_matrix(train.reset_index(drop=True))
        rows = self.sites if sites is None else self.sites.loc[list(sites)]
        X, _ = feature_matrix(rows.reset_index(drop=True), continuous_stats=stats)
        return X

    # -- daily data ---------------------------------------------------------------------------
    @functools.cached_property
    def site_day(self) -> pd.DataFrame:
        """The site-day table restricted to ``years``."""
        sd = self.dataset.site_day
        return sd if self.years is None else sd[sd["date"].dt.year.isin(self.years)]

    # -- forcing -----------------------------------------------------------------------------
    @functools.cache  # noqa: B019 (one SiteData per run; the cache lives as long as it)
    def _batch(self, dtype: torch.dtype) -> ForcingBatch:
        return self.dataset.forcing_batch(years=self.years, dtype=dtype)

    def forcing(self, sites: Sequence[str], *, dtype: torch.dtype = torch.float64,
                device: str = "cpu") -> ForcingBatch:
        """Dense forcing of ``sites`` (with PFT and Koeppen types), built once per dtype."""
        return self._batch(dtype).select(list(sites)).to(device=device)

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


def finish_params(params: np.ndarray, koeppen: Sequence[str]) -> np.ndarray:
    """Every method's last step: clip into the bounds and apply each site's lag mask.

    A parameter fixed by the lag mask (``alpha_T`` outside Koeppen D/E, ``alpha_W`` outside
    B) is set to 0 whatever the method predicted (SPEC section 1).
    """
    p = np.clip(np.asarray(params, dtype=np.float64), LOWER, UPPER)
    return np.where(lag_mask(list(koeppen)), p, 0.0)


def params_frame(sites: Sequence[str], params: np.ndarray,
                 notes: Sequence[str] | None = None) -> pd.DataFrame:
    """A prediction table: ``site``, the 13 parameters, ``note``."""
    p = np.asarray(params, dtype=np.float64).reshape(len(sites), N_PARAMS)
    out = pd.DataFrame(p, columns=list(PARAMETERS))
    out.insert(0, "site", [str(s) for s in sites])
    out["note"] = list(notes) if notes is not None else [""] * len(sites)
    return out


class Method(abc.ABC):
    """Base class of the parameter-extrapolation methods (see the module docstring).

    A subclass registers itself with class keywords, which the cross-validation runner
    (:mod:`lue_spie.extrapolate`) reads::

        class PFTmean(Method, name="PFTmean", family="grouping", order=1,
                      learns_from="calibration"): ...

    An intermediate class may set all class keywords but ``name``, which registers.

    Class keywords:
        name: The paper's name (``"PFTmean"``, ``"OPT-All"`` ...).
        family: One of :data:`FAMILIES`.
        order: Its place in the paper's order (1-12), None for a method of one's own.
        predicts: One of :data:`PREDICTS` (default ``"params"``).
        learns_from: One of :data:`LEARNS_FROM` (default ``"calibration"``).
        folds: One of :data:`FOLDS` (default ``"each"``); ``"batched"`` and ``"stacked"``
            methods implement :meth:`fit_predict_folds`.

    The run context is set by the runner through :meth:`attach` (not hyperparameters).

    Run context:
        workdir: A folder of the unit's own for checkpoints (removed when it finishes).
        results_dir: The method's results folder, for files of its own beside the fold
            tables (SPIE: networks and training curves).
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    order: ClassVar[int | None] = None
    predicts: ClassVar[str] = "params"
    learns_from: ClassVar[str] = "calibration"
    folds: ClassVar[str] = "each"

    def __init_subclass__(cls, *, name: str | None = None, family: str | None = None,
                          order: int | None = None, predicts: str | None = None,
                          learns_from: str | None = None, folds: str | None = None,
                          **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for key, value, allowed in (("family", family, FAMILIES), ("predicts", predicts, PREDICTS),
                                    ("learns_from", learns_from, LEARNS_FROM),
                                    ("folds", folds, FOLDS)):
            if value is not None:
                if value not in allowed:
                    raise ValueError(f"method class {cls.__name__}: {key} must be one of "
                                     f"{sorted(allowed)}, got {value!r}")
                setattr(cls, key, value)
        if order is not None:
            cls.order = int(order)
        if cls.folds in ("batched", "stacked") \
                and cls.fit_predict_folds is Method.fit_predict_folds:
            raise TypeError(f"method class {cls.__name__}: folds={cls.folds!r} needs its own "
                            "fit_predict_folds (all folds in one run)")
        if name is None:
            return  # an abstract intermediate class
        if not cls.family:
            raise ValueError(f"method {name!r}: give family= (one of {sorted(FAMILIES)})")
        REGISTRY.add(name, cls)
        cls.name = name

    def attach(self, *, workdir: Path | None = None, results_dir: Path | None = None) -> None:
        """Give the method its run context (see the class docstring)."""
        self.workdir = workdir
        self.results_dir = results_dir

    # -- scikit-learn-like parameters ---------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """The hyperparameters (JSON-friendly), as given to the constructor."""
        if dataclasses.is_dataclass(self):
            return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)
                    if f.init}
        return {}

    # -- the interface -----------------------------------------------------------------------
    @abc.abstractmethod
    def fit(self, data: SiteData, train_sites: Sequence[str]) -> Method:
        """Learn from the training sites; return ``self``."""

    @abc.abstractmethod
    def predict(self, data: SiteData, sites: Sequence[str]) -> pd.DataFrame:
        """A prediction for each of ``sites`` (see the module docstring for the table)."""

    def fit_predict(self, data: SiteData, train_sites: Sequence[str],
                    sites: Sequence[str]) -> pd.DataFrame:
        """:meth:`fit` then :meth:`predict`."""
        return self.fit(data, train_sites).predict(data, sites)

    def fit_predict_folds(self, data: SiteData,
                          folds: Sequence[tuple[int, Sequence[str], Sequence[str]]]
                          ) -> dict[int, pd.DataFrame]:
        """Fit and predict several folds (``(fold, train_sites, test_sites)`` each) in one
        run; fold -> prediction table. Methods with ``folds="batched"`` or ``"stacked"``
        implement it; the others are run fold after fold by the runner."""
        return {k: self.fit_predict(data, train, test) for k, train, test in folds}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def _jsonable(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {k: _jsonable(x) for k, x in dataclasses.asdict(v).items()}
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


def registered_methods() -> dict[str, type[Method]]:
    """Every registered method by name, in the paper's order (others after, by name)."""
    return REGISTRY.classes()


def paper_order() -> tuple[str, ...]:
    """The paper's twelve methods in its order (section 2.2 and its figures), from the
    ``order`` keyword of each registered class."""
    return tuple(n for n, cls in registered_methods().items() if cls.order is not None)


def method_class(name: str) -> type[Method]:
    """The class registered as ``name``.

    Raises:
        KeyError: naming the unknown method and the known ones.
    """
    return REGISTRY.get(name)


def get_method(name: str, **params: Any) -> Method:
    """A method by its paper name with hyperparameters ``params``.

    Raises:
        KeyError: for an unknown name.
        ValueError: for a hyperparameter the method does not have (naming the valid ones).
    """
    return REGISTRY.build(name, **params)

"""Feature importance of the SPIE networks (paper section 2.4, Figure 8).

Which site features drive the parameters that SPIE predicts? For every fold's network
(:func:`lue_spie.methods.spie.load_networks`) this module measures the importance of each of
the 77 input columns for each of the 13 pre-mapping outputs by three methods, each through a
maintained library:

SHAP
    Shapley values by DeepLIFT's rescale rule averaged over a background set, shap's
    ``DeepExplainer`` (Lundberg & Lee 2017); importance = mean ``|phi|`` over the explained
    sites. Each site's values add up to its output minus the mean output over the background
    (checked here for every site, and by shap itself: ``check_additivity=True``).
LRP
    Layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2019) with the epsilon
    rule on every linear layer, captum's ``LRP``, one output at a time, on a fresh copy of the
    network per call (captum leaves stale rules on the layers after a failed call); importance
    = mean ``|R|``. For a ReLU network with a small epsilon the relevance is gradient x input,
    so the implicit reference is the input 0: the training mean of a z-scored feature, "not
    this category" for a one-hot column.
PD
    Partial dependence (Friedman 2001) by scikit-learn's ``partial_dependence`` through a thin
    estimator adapter (:class:`NetworkRegressor`); importance = the standard deviation of the
    PD curve for a continuous feature and a quarter of its range for a categorical one
    (Greenwell et al. 2018). The grid of a continuous feature spans its 5th to 95th percentile
    (scikit-learn's default; the full range when these coincide) in ``pd_grid`` points; a
    categorical feature takes the values it has in the fold's training sites.

Decisions (the paper leaves them open; the book's methods-decisions page repeats them):

* **What is explained.** The network's 13 raw (pre-mapping) outputs: the mapping into the
  bounds is a fixed monotone function per parameter, and all raw outputs share one scale
  (logits), so importances of different parameters are comparable before normalisation.
* **Which sites.** Per fold, the sites of its training folds, z-scored with that fold's
  statistics (the population the network was fitted on; held-out sites are what the
  assessment chapters look at). They are both SHAP's background (all of them, or a seeded
  subsample of ``background`` sites) and the sites explained.
* **Lag parameters.** The model uses alpha_T only at D/E sites and alpha_W only at B sites
  (:func:`lue_spie.params.lag_mask`); elsewhere the network's output is never used and never
  trained. Their importances are averaged over the sites where they are free; a fold with no
  such training site gives NaN for them.
* **One-hot columns.** Each of the 11 ``PFT_*`` and 14 ``Clim_*`` columns is a feature of its
  own (the paper counts and ranks them so: "DBF and MF had the second and third highest
  importance"), categorical for PD (values 0 and 1, varied one column at a time as
  scikit-learn does, so a row may momentarily hold two PFTs or none: the network's marginal
  response to that input). A column that is constant in a fold's training sites (a PFT absent
  from them) gets importance 0 from all three methods: the network cannot have learnt it.
* **Normalisation and averaging.** Per fold, method and parameter the importances are divided
  by their maximum over the features (so each lies in [0, 1] and 0 stays 0); the three
  methods' normalised values are averaged (``combined``); then folds are averaged. The
  overall row (``parameter == "all"``) of a method is the mean of its normalised
  per-parameter values (every parameter counts equally; not renormalised, so the overall
  values sit on the scale of the per-parameter ones and a feature important for every
  parameter comes near 1).
* **Feature classes.** The classes differ in size (11 PFT, 14 Clim, 21 BioClim, 11 VIF,
  3 NPdep, 17 Soil columns). The class importance of Figure 8 is the **mean** over the
  class's features: a sum grows with the number of columns, so 21 BioClim columns of modest
  importance would outrank three strong NPdep ones merely by count; the mean says how much a
  feature of the class matters. The table also gives the sum and the maximum (does the class
  hold one strong feature?).
* **Truth (virtual FLUXNET).** :mod:`lue_spie.importance.truth` compares the rankings with
  the generator's drivers (its functions are re-exported here); see there.

Public API: :class:`ImportanceSettings`, :func:`shap_attributions`,
:func:`lrp_attributions`, :func:`pd_importance`, :func:`explain_fold`,
:func:`feature_importance` (all folds, all tables), :func:`class_importance`,
:func:`method_agreement`, the truth check (:func:`true_drivers`, :func:`driver_recovery`,
:func:`driver_ranks`, :func:`truth_correlation`),
:func:`run_importance` (read a results folder, write tables and figures; the
``lue-spie importance`` step) and :class:`ImportanceResult`; for the chapter
:func:`spie_networks`, :func:`describe_networks` and :func:`shap_example`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from torch import nn

from lue_spie import store
from lue_spie.data.features import FEATURE_CLASSES, feature_class_of
from lue_spie.importance.truth import (
    ONE_HOT_GROUPS,
    DriverSet,
    driver_ranks,
    driver_recovery,
    true_drivers,
    truth_correlation,
)
from lue_spie.params import PARAMETERS, lag_mask

__all__ = [
    "METHODS",
    "COMBINED",
    "ALL",
    "CLASS_STATS",
    "IMPORTANCE_DIR",
    "RECORD_FILE",
    "ImportanceSettings",
    "NetworkRegressor",
    "FoldExplanation",
    "ShapResult",
    "PDResult",
    "ImportanceResult",
    "shap_attributions",
    "lrp_attributions",
    "pd_importance",
    "explain_fold",
    "check_design",
    "normalise",
    "feature_importance",
    "class_importance",
    "method_agreement",
    "DriverSet",
    "true_drivers",
    "driver_recovery",
    "driver_ranks",
    "truth_correlation",
    "networks_dir",
    "spie_networks",
    "describe_networks",
    "shap_example",
    "run_importance",
    "write_importance",
]

#: The three attribution methods, in the paper's order.
METHODS: tuple[str, ...] = ("SHAP", "LRP", "PD")
#: Name of the average of the three normalised methods.
COMBINED = "combined"
#: The ``parameter`` value of the overall (all parameters) rows.
ALL = "all"
#: Statistics of the class aggregation (:func:`class_importance`).
CLASS_STATS: tuple[str, ...] = ("mean", "sum", "max")
#: The folder of the analysis inside a results folder.
IMPORTANCE_DIR = "importance"
#: The record of a run (settings, timings, checksums) inside the output folder.
RECORD_FILE = "importance.json"

_N_PARAMS = len(PARAMETERS)


# ------------------------------------------------------------------------------- settings
@dataclasses.dataclass(frozen=True)
class ImportanceSettings:
    """How the importance analysis runs.

    Attributes:
        background: SHAP background sites per fold (a seeded subsample of the fold's training
            sites); None: all of them.
        pd_grid: Grid points of a continuous feature's PD curve.
        pd_percentiles: Percentiles of the training values that bound the PD grid of a
            continuous feature (scikit-learn's default: 5th and 95th).
        lrp_epsilon: The epsilon of the LRP-epsilon rule (captum's default 1e-9).
        shap_chunk: Explained sites per DeepExplainer call (memory ~ background x chunk).
        folds: Folds to analyse (None: every fold with a network).
        seed: Seed of the background subsample.
    """

    background: int | None = None
    pd_grid: int = 20
    pd_percentiles: tuple[float, float] = (0.05, 0.95)
    lrp_epsilon: float = 1e-9
    shap_chunk: int = 256
    folds: tuple[int, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.background is not None and int(self.background) < 1:
            raise ValueError(f"importance: background must be >= 1 or None, got "
                             f"{self.background!r}")
        if int(self.pd_grid) < 2:
            raise ValueError(f"importance: pd_grid must be >= 2, got {self.pd_grid!r}")
        lo, hi = (float(p) for p in self.pd_percentiles)
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"importance: pd_percentiles must be 0 <= low < high <= 1, got "
                             f"{self.pd_percentiles!r}")
        if not self.lrp_epsilon > 0:
            raise ValueError(f"importance: lrp_epsilon must be > 0, got {self.lrp_epsilon!r}")
        if int(self.shap_chunk) < 1:
            raise ValueError(f"importance: shap_chunk must be >= 1, got {self.shap_chunk!r}")
        object.__setattr__(self, "pd_percentiles", (lo, hi))
        if self.folds is not None:
            object.__setattr__(self, "folds", tuple(int(k) for k in self.folds))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly settings (for provenance records)."""
        d = dataclasses.asdict(self)
        d["pd_percentiles"] = list(self.pd_percentiles)
        d["folds"] = list(self.folds) if self.folds is not None else None
        return d


# --------------------------------------------------------------------------- the network
def _mlp_linears(network: nn.Sequential) -> list[nn.Linear]:
    """The linear layers of an eval-mode MLP ``[Dropout] Linear ReLU ... Linear``.

    Raises:
        TypeError: for another module or layout (the explanations here assume it).
        ValueError: for a network in training mode (dropout would be active).
    """
    if not isinstance(network, nn.Sequential):
        raise TypeError(f"importance: expected an nn.Sequential MLP, got "
                        f"{type(network).__name__}")
    if network.training:
        raise ValueError("importance: the network is in training mode; call .eval() first "
                         "(dropout must be off)")
    linears: list[nn.Linear] = []
    expect_relu = False
    for mod in network:
        if isinstance(mod, nn.Dropout):
            continue
        if isinstance(mod, nn.Linear):
            if expect_relu:
                raise TypeError("importance: two linear layers without a ReLU between them")
            linears.append(mod)
            expect_relu = True
        elif isinstance(mod, nn.ReLU):
            if not expect_relu or mod.inplace:
                raise TypeError("importance: a ReLU must follow a linear layer and not be in "
                                "place")
            expect_relu = False
        else:
            raise TypeError(f"importance: unsupported module {type(mod).__name__} (expected "
                            "Dropout, Linear and ReLU only)")
    if not linears or not expect_relu:
        raise TypeError("importance: the network must end in a linear layer")
    return linears


def _plain_copy(network: nn.Sequential, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """A fresh eval-mode copy ``Linear ReLU ... Linear`` (dropout dropped: identity in eval)."""
    linears = _mlp_linears(network)
    mods: list[nn.Module] = []
    for i, lin in enumerate(linears):
        new = nn.Linear(lin.in_features, lin.out_features, dtype=dtype)
        with torch.no_grad():
            new.weight.copy_(lin.weight)
            new.bias.copy_(lin.bias)
        mods.append(new)
        if i < len(linears) - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods).eval()


def _copies_network(network: nn.Sequential, m: int,
                    dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """``m`` independent copies of the MLP whose outputs are summed: input ``(N, m, F)``,
    output ``(N, K)`` = sum over the copies.

    The hidden layers act on the last axis (each copy sees its own row); the last layer is
    ``Flatten`` then one linear layer holding the last weights ``m`` times (bias ``m b``).
    """
    linears = _mlp_linears(network)
    mods: list[nn.Module] = []
    for lin in linears[:-1]:
        new = nn.Linear(lin.in_features, lin.out_features, dtype=dtype)
        with torch.no_grad():
            new.weight.copy_(lin.weight)
            new.bias.copy_(lin.bias)
        mods += [new, nn.ReLU()]
    last = linears[-1]
    flat = nn.Linear(m * last.in_features, last.out_features, dtype=dtype)
    with torch.no_grad():
        flat.weight.copy_(last.weight.to(dtype).repeat(1, m))
        flat.bias.copy_(last.bias.to(dtype) * m)
    mods += [nn.Flatten(1), flat]
    return nn.Sequential(*mods).eval()


@torch.no_grad()
def _forward(network: nn.Sequential, X: np.ndarray) -> np.ndarray:
    return _plain_copy(network)(torch.as_tensor(X, dtype=torch.float64)).numpy()


# ----------------------------------------------------------------------------------- SHAP
@dataclasses.dataclass
class ShapResult:
    """SHAP values of some samples.

    Attributes:
        values: ``(samples, features, outputs)``.
        expected: ``(outputs,)``: the mean output over the background.
        outputs: ``(samples, outputs)``: the network's outputs for the samples.
        max_additivity_error: Largest ``|sum_f phi - (output - expected)|`` over samples and
            outputs.
    """

    values: np.ndarray
    expected: np.ndarray
    outputs: np.ndarray
    max_additivity_error: float


def shap_attributions(network: nn.Sequential, background: np.ndarray, samples: np.ndarray,
                      *, chunk: int = 256, tolerance: float = 1e-6) -> ShapResult:
    """SHAP values of an MLP's outputs by shap's ``DeepExplainer``, additivity checked.

    shap's DeepExplainer loops in Python over the samples and the outputs, one forward and
    backward pass (with one autograd output per background row) each: 176 sites x 13 outputs
    is 2288 passes per fold, about 30 s. Here one pass explains a whole chunk of samples: the
    explainer sees ``m`` independent copies of the network whose outputs are summed, fed with
    the ``m`` samples side by side (input ``(1, m, F)``) against background rows that repeat
    each background site ``m`` times. DeepLIFT's multipliers through a sum of independent
    sub-networks are those of each sub-network, so copy ``c`` receives exactly the SHAP values
    of sample ``c`` (tested against the plain call). The network runs in float64.

    Args:
        network: Eval-mode ``nn.Sequential`` of ``[Dropout] Linear ReLU ... Linear``.
        background: ``(B, F)`` reference inputs.
        samples: ``(N, F)`` inputs to explain.
        chunk: Samples per DeepExplainer call.
        tolerance: Largest additivity error allowed, relative to ``max(1, |output|)``.

    Returns:
        :class:`ShapResult`.

    Raises:
        RuntimeError: when the values of a sample do not add up to its output minus the
            expectation (beyond ``tolerance``).
    """
    with warnings.catch_warnings():
        # shap's plotting colours use matplotlib calls due for deprecation (on import).
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap

    background = np.array(background, dtype=np.float64)  # copies: torch needs writable arrays
    samples = np.array(samples, dtype=np.float64)
    _check_inputs(network, background, "background")
    _check_inputs(network, samples, "samples")
    n, F = samples.shape
    K = _mlp_linears(network)[-1].out_features
    bg = torch.as_tensor(background)
    values = np.empty((n, F, K))
    for start in range(0, n, int(chunk)):
        x = torch.as_tensor(samples[start:start + int(chunk)])
        m = x.shape[0]
        copies = _copies_network(network, m)
        with warnings.catch_warnings():
            # shap's own additivity check converts torch tensors through NumPy's deprecated
            # __array_wrap__ protocol (NumPy 2); nothing else is silenced.
            warnings.filterwarnings("ignore", message=r".*__array_wrap__",
                                    category=DeprecationWarning)
            explainer = shap.DeepExplainer(copies, bg[:, None, :].expand(-1, m, -1)
                                           .contiguous())
            sv = explainer.shap_values(x[None], check_additivity=True)
        sv = np.asarray(sv, dtype=np.float64)
        if sv.shape != (1, m, F, K):
            raise RuntimeError(f"shap returned SHAP values of shape {sv.shape}; expected "
                               f"{(1, m, F, K)} (shap >= 0.45 multi-output layout)")
        values[start:start + m] = sv[0]
    outputs = _forward(network, samples)
    expected = _forward(network, background).mean(axis=0)
    err = np.abs(values.sum(axis=1) - (outputs - expected))
    scale = np.maximum(1.0, np.abs(outputs))
    worst = float((err / scale).max()) if err.size else 0.0
    if worst > tolerance:
        i, k = np.unravel_index(np.argmax(err / scale), err.shape)
        raise RuntimeError(f"SHAP values do not add up: sample {i}, output {k}: sum "
                           f"{values[i, :, k].sum():.6g} vs output - expectation "
                           f"{outputs[i, k] - expected[k]:.6g}")
    return ShapResult(values, expected, outputs, float(err.max()) if err.size else 0.0)


# ------------------------------------------------------------------------------------ LRP
def lrp_attributions(network: nn.Sequential, samples: np.ndarray, *,
                     epsilon: float = 1e-9) -> np.ndarray:
    """LRP relevance of every input for every output, captum's ``LRP`` with the epsilon rule.

    One output (``target``) at a time, each on a fresh float64 copy of the network in eval
    mode with :class:`captum.attr._utils.lrp_rules.EpsilonRule` on every linear layer (captum
    keeps rules and hooks on the layers after a failed call, so no copy is reused).

    Args:
        network: Eval-mode ``nn.Sequential`` of ``[Dropout] Linear ReLU ... Linear``.
        samples: ``(N, F)`` inputs.
        epsilon: The rule's stabiliser.

    Returns:
        ``(N, F, outputs)`` relevances.
    """
    from captum.attr import LRP
    from captum.attr._utils.lrp_rules import EpsilonRule

    samples = np.array(samples, dtype=np.float64)
    _check_inputs(network, samples, "samples")
    K = _mlp_linears(network)[-1].out_features
    out = np.empty(samples.shape + (K,))
    for k in range(K):
        net = _plain_copy(network)
        for mod in net:
            if isinstance(mod, nn.Linear):
                mod.rule = EpsilonRule(epsilon=float(epsilon))
        x = torch.tensor(samples, requires_grad=True)
        rel = LRP(net).attribute(x, target=k)
        out[:, :, k] = rel.detach().numpy()
    return out


# ------------------------------------------------------------------------------------- PD
class NetworkRegressor(RegressorMixin, BaseEstimator):
    """A fitted network as a scikit-learn regressor (``predict`` only).

    The thin adapter that lets :func:`sklearn.inspection.partial_dependence` evaluate a torch
    network: ``predict(X)`` returns its outputs ``(N, K)`` in float64 (a float64 copy of the
    network, eval mode). :meth:`fit` learns nothing: it records the number of inputs and makes
    the copy, the weights are the network's.

    Args:
        network: Eval-mode ``nn.Sequential`` of ``[Dropout] Linear ReLU ... Linear``.
    """

    def __init__(self, network: nn.Sequential | None = None) -> None:
        self.network = network

    def fit(self, X: np.ndarray, y: Any = None) -> NetworkRegressor:
        """Record the number of inputs (``X``'s columns) and copy the network."""
        n_in = _mlp_linears(self.network)[0].in_features
        if np.asarray(X).shape[1] != n_in:
            raise ValueError(f"NetworkRegressor: X has {np.asarray(X).shape[1]} columns, the "
                             f"network {n_in} inputs")
        self.n_features_in_ = n_in
        self.plain_ = _plain_copy(self.network)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The network's outputs ``(N, K)``."""
        with torch.no_grad():
            return self.plain_(torch.as_tensor(np.asarray(X, dtype=np.float64))).numpy()


def _grid_kwargs(column: np.ndarray, categorical: bool, grid: int,
                 percentiles: tuple[float, float]) -> dict[str, Any]:
    """The grid arguments of scikit-learn's partial_dependence for one feature: its default
    rule, or the full range when the percentiles coincide (scikit-learn refuses those)."""
    if categorical or np.unique(column).size < grid:
        return {"percentiles": percentiles}
    from scipy.stats.mstats import mquantiles

    lo, hi = mquantiles(column, prob=percentiles)
    if np.allclose(lo, hi):
        return {"percentiles": (0.0, 1.0)}
    return {"percentiles": percentiles}


@dataclasses.dataclass
class PDResult:
    """Partial dependence of every output on every feature.

    Attributes:
        importance: ``(features, outputs)``: std of the PD curve (continuous) or range / 4
            (categorical); NaN for an output without any row in ``rows``.
        grids: Per feature, its grid values (z-scored units).
        curves: Per feature, ``(outputs, grid)`` PD curves (averaged over each output's rows).
    """

    importance: np.ndarray
    grids: list[np.ndarray]
    curves: list[np.ndarray]


def pd_importance(network: nn.Sequential, X: np.ndarray, *, categorical: Sequence[bool],
                  grid: int = 20, percentiles: tuple[float, float] = (0.05, 0.95),
                  rows: np.ndarray | None = None) -> PDResult:
    """Partial dependence (scikit-learn) and the importance of Greenwell et al. (2018).

    For each feature, :func:`sklearn.inspection.partial_dependence` (``kind="individual"``,
    brute force) gives the individual conditional expectation curves of every output at
    every row; the PD curve of output ``k`` is their mean over the rows where ``rows[:, k]``
    is true (all rows by default). Importance: the sample standard deviation of the curve over
    its grid for a continuous feature (0 for a one-point grid), ``(max - min) / 4`` for a
    categorical one.

    Args:
        network: Eval-mode ``nn.Sequential`` MLP.
        X: ``(N, F)`` the data the PD averages over.
        categorical: ``F`` flags.
        grid: Grid points of a continuous feature (fewer distinct values: those values).
        percentiles: Bounds of a continuous feature's grid.
        rows: ``(N, outputs)`` bool: the rows each output's PD averages over.

    Returns:
        :class:`PDResult`.
    """
    from sklearn.inspection import partial_dependence

    X = np.array(X, dtype=np.float64)
    _check_inputs(network, X, "X")
    n, F = X.shape
    K = _mlp_linears(network)[-1].out_features
    categorical = np.asarray(categorical, dtype=bool)
    if categorical.shape != (F,):
        raise ValueError(f"pd_importance: categorical has {categorical.shape[0]} flags for "
                         f"{F} features")
    rows = np.ones((n, K), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    if rows.shape != (n, K):
        raise ValueError(f"pd_importance: rows must have shape {(n, K)}, got {rows.shape}")
    est = NetworkRegressor(network).fit(X)
    counts = rows.sum(axis=0)
    importance = np.full((F, K), np.nan)
    grids, curves = [], []
    for j in range(F):
        res = partial_dependence(est, X, [j], kind="individual", method="brute",
                                 grid_resolution=int(grid),
                                 categorical_features=[j] if categorical[j] else None,
                                 **_grid_kwargs(X[:, j], bool(categorical[j]), int(grid),
                                                percentiles))
        ice = np.asarray(res["individual"], dtype=np.float64).reshape(K, n, -1)
        # Each row's curve relative to its first grid value: exactly 0 where the output does
        # not depend on the feature, whatever the summation order of the average.
        with np.errstate(invalid="ignore", divide="ignore"):
            shape = np.einsum("kng,nk->kg", ice - ice[:, :, :1], rows) / counts[:, None]
            level = np.einsum("kn,nk->k", ice[:, :, 0], rows) / counts
        g = shape.shape[1]
        if categorical[j]:
            imp = (shape.max(axis=1) - shape.min(axis=1)) / 4.0
        elif g > 1:
            imp = shape.std(axis=1, ddof=1)
        else:
            imp = np.zeros(K)
        importance[j] = np.where(counts > 0, imp, np.nan)
        grids.append(np.asarray(res["grid_values"][0], dtype=np.float64))
        curves.append(shape + level[:, None])
    return PDResult(importance, grids, curves)


def _check_inputs(network: nn.Sequential, X: np.ndarray, what: str) -> None:
    n_in = _mlp_linears(network)[0].in_features
    if X.ndim != 2 or X.shape[1] != n_in:
        raise ValueError(f"importance: {what} must have shape (rows, {n_in}) for this "
                         f"network, got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"importance: {what} holds non-finite values")


# ------------------------------------------------------------------------------ one fold
@dataclasses.dataclass
class FoldExplanation:
    """Everything the three methods say about one fold's network.

    Attributes:
        fold: The fold.
        sites: The explained sites (the fold's training sites).
        raw: ``(methods, outputs, features)`` importances (:data:`METHODS` order); NaN for an
            output without a free site.
        shap: The :class:`ShapResult`.
        lrp: ``(sites, features, outputs)`` relevances.
        pd: The :class:`PDResult`.
        free: ``(sites, outputs)``: where each parameter is free (lag mask).
        background: The SHAP background sites.
        seconds: Seconds per method.
    """

    fold: int
    sites: list[str]
    raw: np.ndarray
    shap: ShapResult
    lrp: np.ndarray
    pd: PDResult
    free: np.ndarray
    background: list[str]
    seconds: dict[str, float]


def _masked_mean_abs(values: np.ndarray, free: np.ndarray) -> np.ndarray:
    """``(N, F, K)`` and ``(N, K)`` -> ``(K, F)``: mean |values| over the free rows."""
    counts = free.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.einsum("nfk,nk->kf", np.abs(values), free) / counts[:, None]
    out[counts == 0] = np.nan
    return out


def explain_fold(network: nn.Sequential, X: pd.DataFrame, koeppen: Sequence[str], *,
                 feature_names: Sequence[str], settings: ImportanceSettings | None = None,
                 fold: int = 0) -> FoldExplanation:
    """SHAP, LRP and PD importances of one fold's network on its training sites.

    Args:
        network: The fold's network (``SPIENetworks.fold_network(fold)``).
        X: The design matrix of the fold's training sites (index: site ids), z-scored with
            the fold's statistics; columns must be ``feature_names``.
        koeppen: The sites' Koeppen-Geiger types (for the lag mask).
        feature_names: The network's inputs, in order.
        settings: :class:`ImportanceSettings`.
        fold: The fold number (for messages and the background draw).

    Raises:
        ValueError: when ``X`` does not match the network's features (names the columns and
            the counts).
    """
    s = settings or ImportanceSettings()
    values = check_design(X, feature_names, network, source=f"fold {fold}")
    koeppen = [str(k) for k in koeppen]
    if len(koeppen) != len(X):
        raise ValueError(f"explain_fold: {len(koeppen)} Koeppen types for {len(X)} sites")
    n_out = _mlp_linears(network)[-1].out_features
    if n_out != _N_PARAMS:
        raise ValueError(f"explain_fold: fold {fold}'s network has {n_out} outputs; a SPIE "
                         f"network has one per parameter ({_N_PARAMS})")
    sites = [str(i) for i in X.index]
    free = np.asarray(lag_mask(koeppen), dtype=bool)
    n = len(sites)
    bg_idx = np.arange(n)
    if s.background is not None and int(s.background) < n:
        rng = np.random.default_rng([int(s.seed), int(fold)])
        bg_idx = np.sort(rng.choice(n, size=int(s.background), replace=False))
    categorical = np.array([_is_one_hot(c) for c in feature_names])
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    sh = shap_attributions(network, values[bg_idx], values, chunk=s.shap_chunk)
    seconds["SHAP"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rel = lrp_attributions(network, values, epsilon=s.lrp_epsilon)
    seconds["LRP"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pdr = pd_importance(network, values, categorical=categorical, grid=s.pd_grid,
                        percentiles=s.pd_percentiles, rows=free)
    seconds["PD"] = time.perf_counter() - t0
    raw = np.stack([_masked_mean_abs(sh.values, free), _masked_mean_abs(rel, free),
                    pdr.importance.T])
    return FoldExplanation(int(fold), sites, raw, sh, rel, pdr, free,
                           [sites[i] for i in bg_idx], seconds)


def _is_one_hot(name: str) -> bool:
    return any(name in FEATURE_CLASSES[g] for g in ONE_HOT_GROUPS if g in FEATURE_CLASSES)


def check_design(X: pd.DataFrame, feature_names: Sequence[str], network: nn.Sequential | None,
                 *, source: str = "networks") -> np.ndarray:
    """``X`` as a float array in the networks' column order, or a clear error.

    Raises:
        TypeError: when ``X`` is not a DataFrame.
        ValueError: when its columns are not the networks' features (counts, missing and
            unexpected names), when the network's first layer has another number of inputs
            than its feature names, or when a value is not finite (column and site).
    """
    if not isinstance(X, pd.DataFrame):
        raise TypeError("importance: give the features as a DataFrame whose columns are the "
                        "feature names (e.g. SPIENetworks.features(sites, fold))")
    names = [str(c) for c in feature_names]
    if network is not None:
        n_in = _mlp_linears(network)[0].in_features
        if n_in != len(names):
            raise ValueError(f"importance: {source}: the network has {n_in} inputs but names "
                             f"{len(names)} features; the network file is inconsistent")
    cols = [str(c) for c in X.columns]
    if cols != names:
        missing = [c for c in names if c not in cols]
        extra = [c for c in cols if c not in names]
        order = "" if missing or extra else " (same names in another order)"
        raise ValueError(
            f"importance: {source}: the feature table ({len(cols)} columns) does not match "
            f"the networks' features ({len(names)}){order}: missing {missing[:10]}"
            f"{' ...' if len(missing) > 10 else ''}, unexpected {extra[:10]}"
            f"{' ...' if len(extra) > 10 else ''}. The networks were trained on other "
            "features than this dataset's design matrix: retrain SPIE on this dataset.")
    values = np.array(X.to_numpy(dtype=np.float64), copy=True)
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"importance: {source}: feature {cols[j]!r} is {values[i, j]} at "
                         f"site {X.index[i]!r}; the analysis needs finite inputs")
    return values


# ----------------------------------------------------------------------- normalisation
def normalise(raw: np.ndarray) -> np.ndarray:
    """Divide by the maximum over the last axis (features): values in [0, 1], 0 stays 0.

    A row whose maximum is 0 stays 0; a NaN row (no free site) stays NaN.
    """
    raw = np.asarray(raw, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row: stays NaN
        top = np.nanmax(raw, axis=-1, keepdims=True) if raw.size else raw
        out = np.where(top > 0, raw / np.where(top > 0, top, 1.0), 0.0)
    return np.where(np.isnan(raw), np.nan, out)


def _overall(norm: np.ndarray) -> np.ndarray:
    """``(..., outputs, features)`` normalised -> ``(..., features)``: the mean over the
    outputs with a value (every parameter counts equally)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN output column
        mean = np.nanmean(norm, axis=-2)
    return np.nan_to_num(mean, nan=0.0)


# ----------------------------------------------------------------------------- all folds
@dataclasses.dataclass
class ImportanceResult:
    """The whole analysis (:func:`feature_importance`).

    Attributes:
        folds: Long table: ``fold, method, parameter, feature, feature_class, raw,
            normalised`` (method also ``combined``; parameter also ``all``).
        importance: Fold means per ``parameter, feature``: ``feature_class``, one column per
            method and ``combined``, ``combined_sd`` (across folds), ``rank`` (1 = most
            important by ``combined`` within the parameter), ``n_folds``.
        by_class: :func:`class_importance` of :attr:`importance`.
        agreement: :func:`method_agreement` of :attr:`importance`.
        pd_curves: ``fold, parameter, feature, z, value, pd``: the PD curves (``z`` the
            z-scored grid, ``value`` the same in the feature's units).
        shap_check: Per fold: sites explained, background sites, the largest additivity
            error, seconds per method.
        drivers, driver_summary: :func:`driver_recovery` (None without the truth).
        settings: The settings.
        feature_names: The 77 inputs.
        timings: Seconds per phase.
    """

    folds: pd.DataFrame
    importance: pd.DataFrame
    by_class: pd.DataFrame
    agreement: pd.DataFrame
    pd_curves: pd.DataFrame
    shap_check: pd.DataFrame
    drivers: pd.DataFrame | None
    driver_summary: pd.DataFrame | None
    settings: ImportanceSettings
    feature_names: tuple[str, ...]
    timings: dict[str, float]

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by file stem."""
        out = {"importance": self.importance, "importance_by_class": self.by_class,
               "method_agreement": self.agreement,
               "importance_folds": self.folds, "pd_curves": self.pd_curves,
               "shap_check": self.shap_check}
        if self.drivers is not None:
            out["drivers"] = self.drivers
            out["driver_summary"] = self.driver_summary
        return out

    def figures(self) -> dict[str, Any]:
        """Every figure by file stem (Figure 8 first)."""
        from lue_spie import plots

        return {"figure8_importance_by_class": plots.importance_by_class(self.by_class),
                "importance_features": plots.importance_features(self.importance),
                "importance_heatmap": plots.importance_heatmap(self.importance)}


def _fold_sites(nets: Any, fold: int) -> list[str]:
    s = nets[fold].sites
    return sorted({str(x) for part in ("train", "validation", "excluded")
                   for x in s.get(part, [])})


def feature_importance(nets: Any, sites: pd.DataFrame,
                       settings: ImportanceSettings | None = None, *,
                       truth_meta: Mapping[str, Any] | None = None,
                       truth_r: pd.Series | None = None,
                       progress: Callable[[str], Any] | None = None) -> ImportanceResult:
    """SHAP, LRP and PD importances of every fold's network, normalised and aggregated.

    Args:
        nets: :class:`~lue_spie.methods.spie.SPIENetworks` (or a folder / file for
            :func:`~lue_spie.methods.spie.load_networks`).
        sites: The sites table of the dataset the networks were trained on (raw features,
            ``site``, ``PFT``, ``koeppen``).
        settings: :class:`ImportanceSettings`.
        truth_meta: The generator's ``truth.json`` (virtual FLUXNET): adds the driver tables.
        truth_r: Per parameter, the correlation of SPIE's held-out predictions with the truth
            (:func:`truth_correlation`), shown beside the driver summary.
        progress: Called with one line per fold.

    Raises:
        ValueError: when a fold's training sites are not in ``sites`` or the networks'
            features are not this dataset's (:func:`check_design`).
    """
    from lue_spie.methods.spie import SPIENetworks, load_networks

    t_all = time.perf_counter()
    s = settings or ImportanceSettings()
    if not isinstance(nets, SPIENetworks):
        nets = load_networks(nets)
    folds = list(nets.folds) if s.folds is None else list(s.folds)
    unknown = sorted(set(folds) - set(nets.folds))
    if unknown:
        raise ValueError(f"importance: no network of fold(s) {unknown}; folds: {nets.folds}")
    if "site" not in sites.columns:
        raise ValueError("importance: the sites table has no column 'site'")
    table = sites.assign(site=sites["site"].astype(str)).set_index("site", drop=False)
    names = tuple(str(c) for c in nets.feature_names)

    rows, curves, checks = [], [], []
    with _torch_threads(1):
        for k in folds:
            fold_rows, fold_curves, check = _fold_tables(nets, k, table, s)
            rows.append(fold_rows)
            curves.append(fold_curves)
            checks.append(check)
            if progress is not None:
                progress(f"fold {k}: {check['n_sites']} sites explained; "
                         + ", ".join(f"{m} {check['seconds_' + m]:.1f} s" for m in METHODS))
    folds_table = pd.concat(rows, ignore_index=True)
    importance = _fold_means(folds_table)
    by_class = class_importance(importance)
    drivers = summary = None
    if truth_meta is not None:
        drivers, summary = driver_recovery(importance, truth_meta, sites=sites,
                                           truth_r=truth_r)
    t_total = time.perf_counter() - t_all
    shap_check = pd.DataFrame(checks)
    timings = {m: float(shap_check[f"seconds_{m}"].sum()) for m in METHODS}
    timings["total"] = t_total
    return ImportanceResult(
        folds=folds_table, importance=importance, by_class=by_class,
        agreement=method_agreement(importance),
        pd_curves=pd.concat(curves, ignore_index=True), shap_check=shap_check,
        drivers=drivers, driver_summary=summary, settings=s, feature_names=names,
        timings=timings)


def _fold_tables(nets: Any, k: int, table: pd.DataFrame, s: ImportanceSettings
                 ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Explain fold ``k``: its rows of the long table, its PD curves and its check row."""
    names = tuple(str(c) for c in nets.feature_names)
    classes = [_class_or_other(c) for c in names]
    params = list(PARAMETERS)
    fold_sites = _fold_sites(nets, k)
    missing = [x for x in fold_sites if x not in table.index]
    if missing:
        raise ValueError(f"importance: fold {k}'s network was trained on site(s) "
                         f"{missing[:10]} that the sites table lacks; the networks belong "
                         "to another dataset")
    info = table.loc[fold_sites].reset_index(drop=True)
    X = nets.features(info, k)
    ex = explain_fold(nets.fold_network(k), X, info["koeppen"].astype(str).tolist(),
                      feature_names=names, settings=s, fold=k)
    norm = normalise(ex.raw)                                # (methods, K, F)
    overall = _overall(norm)                                # (methods, F)
    comb = np.nanmean(norm, axis=0) if not np.isnan(norm).all() else norm[0]
    no_raw = np.full(len(names), np.nan)
    rows = []
    for mi, method in enumerate((*METHODS, COMBINED)):
        for pi, p in enumerate((*params, ALL)):
            if method == COMBINED:
                nv, rv = (overall.mean(axis=0) if p == ALL else comb[pi]), no_raw
            else:
                nv = overall[mi] if p == ALL else norm[mi, pi]
                rv = no_raw if p == ALL else ex.raw[mi, pi]
            rows.append(pd.DataFrame({"fold": k, "method": method, "parameter": p,
                                      "feature": names, "feature_class": classes,
                                      "raw": rv, "normalised": nv}))
    stats = nets[k].feature_stats
    curves = []
    for j, name in enumerate(names):
        grid = ex.pd.grids[j]
        value = grid
        if name in stats.index:  # back to the feature's units
            std = float(stats.loc[name, "std"])
            value = grid * (std if np.isfinite(std) and std > 0 else 1.0) \
                + float(stats.loc[name, "mean"])
        curves.append(pd.DataFrame({
            "fold": k, "parameter": np.repeat(params, len(grid)), "feature": name,
            "z": np.tile(grid, len(params)), "value": np.tile(value, len(params)),
            "pd": ex.pd.curves[j].reshape(-1)}))
    check = {"fold": k, "n_sites": len(ex.sites), "n_background": len(ex.background),
             "max_additivity_error": ex.shap.max_additivity_error,
             **{f"seconds_{m}": ex.seconds[m] for m in METHODS}}
    return (pd.concat(rows, ignore_index=True), pd.concat(curves, ignore_index=True), check)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads, then restore. The networks are tiny (77-16-16-13):
    intra-op threads only add synchronisation, and on a busy machine two threads made the
    analysis ten times slower than one (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _class_or_other(name: str) -> str:
    try:
        return feature_class_of(name)
    except KeyError:
        return "other"


def _fold_means(folds_table: pd.DataFrame) -> pd.DataFrame:
    """Fold means of the normalised importances: one row per parameter and feature."""
    g = folds_table.groupby(["parameter", "feature", "method"], sort=False)["normalised"]
    wide = g.mean().unstack("method")
    sd = folds_table[folds_table["method"] == COMBINED].groupby(
        ["parameter", "feature"], sort=False)["normalised"].std(ddof=1)
    n = folds_table[folds_table["method"] == COMBINED].groupby(
        ["parameter", "feature"], sort=False)["normalised"].count()
    out = wide[[*METHODS, COMBINED]].copy()
    out["combined_sd"] = sd
    out["n_folds"] = n
    out = out.reset_index()
    classes = folds_table.drop_duplicates("feature").set_index("feature")["feature_class"]
    out.insert(2, "feature_class", out["feature"].map(classes))
    order = {p: i for i, p in enumerate((*PARAMETERS, ALL))}
    feat_order = {f: i for i, f in enumerate(classes.index)}
    out = out.sort_values(["parameter", "feature"], key=lambda c: c.map(
        order if c.name == "parameter" else feat_order)).reset_index(drop=True)
    out["rank"] = out.groupby("parameter")[COMBINED].rank(ascending=False, method="min")
    out["rank"] = out["rank"].astype("Int64")
    return out


def class_importance(importance: pd.DataFrame) -> pd.DataFrame:
    """Importance by feature class: per parameter and class, the mean, sum and maximum of the
    combined importance over the class's features, and the mean per method.

    Returns:
        ``parameter, feature_class, n_features, mean, sum, max, SHAP, LRP, PD, rank``
        (rank 1 = the class with the largest mean within the parameter).
    """
    g = importance.groupby(["parameter", "feature_class"], sort=False)
    out = g[COMBINED].agg(["count", "mean", "sum", "max"]).rename(
        columns={"count": "n_features"})
    for m in METHODS:
        out[m] = g[m].mean()
    out = out.reset_index()
    out["rank"] = out.groupby("parameter")["mean"].rank(ascending=False, method="min")
    out["rank"] = out["rank"].astype("Int64")
    return out


def method_agreement(importance: pd.DataFrame) -> pd.DataFrame:
    """How far the three methods agree: per parameter, Spearman's rank correlation of the
    features' importances between each pair of methods, and the overlap of their top-10
    features.

    Returns:
        ``parameter, pair, spearman, top10_overlap`` (overlap: shared features among the two
        methods' ten most important, 0-10).
    """
    rows = []
    for p, sub in importance.groupby("parameter", sort=False):
        for i, a in enumerate(METHODS):
            for b in METHODS[i + 1:]:
                x, y = sub[a].astype(float), sub[b].astype(float)
                ok = x.notna() & y.notna()
                rho = float(x[ok].corr(y[ok], method="spearman")) if ok.sum() > 2 else np.nan
                top_a = set(sub.loc[ok].nlargest(10, a)["feature"])
                top_b = set(sub.loc[ok].nlargest(10, b)["feature"])
                rows.append({"parameter": p, "pair": f"{a}-{b}", "spearman": rho,
                             "top10_overlap": len(top_a & top_b)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------ for the chapter
def describe_networks(nets: Any) -> pd.DataFrame:
    """One row per fold network: its sites and how its training ended.

    Returns:
        ``fold, train, validation, excluded, held_out, best_epoch, stopped_epoch,
        stop_reason`` (counts of sites; the training entries as the network file records
        them, NaN when absent).
    """
    rows = []
    for k in nets.folds:
        n = nets[k]
        rows.append({"fold": k, **{part: len(n.sites.get(part, [])) for part in
                                   ("train", "validation", "excluded")},
                     "held_out": len(n.sites.get("test", [])),
                     **{key: n.training.get(key, np.nan)
                        for key in ("best_epoch", "stopped_epoch", "stop_reason")}})
    return pd.DataFrame(rows)


def shap_example(nets: Any, sites: pd.DataFrame, *, fold: int, parameter: str,
                 n: int = 3, top: int = 3) -> pd.DataFrame:
    """SHAP values of a few training sites of one fold, laid out to show that they add up.

    Args:
        nets: The SPIE networks.
        sites: The sites table.
        fold: The fold.
        parameter: Whose raw output to explain.
        n: How many sites (the first ``n`` training sites).
        top: How many of the largest contributions to list per site.

    Returns:
        One row per site: ``site``, ``output`` (raw output u), ``expectation`` (mean u over
        the background), ``sum of SHAP values``, ``difference`` (output - expectation - sum)
        and the ``top`` largest contributions as ``feature: value``.
    """
    if parameter not in PARAMETERS:
        raise ValueError(f"shap_example: unknown parameter {parameter!r}; expected one of "
                         f"{PARAMETERS}")
    table = sites.assign(site=sites["site"].astype(str)).set_index("site", drop=False)
    train = _fold_sites(nets, fold)
    X = nets.features(table.loc[train].reset_index(drop=True), fold)
    values = check_design(X, nets.feature_names, nets.fold_network(fold),
                          source=f"fold {fold}")
    res = shap_attributions(nets.fold_network(fold), values, values[:n])
    j = PARAMETERS.index(parameter)
    rows = []
    for i in range(len(res.values)):
        phi = res.values[i, :, j]
        order = np.argsort(-np.abs(phi))[:top]
        rows.append({"site": X.index[i], "output": res.outputs[i, j],
                     "expectation": res.expected[j], "sum of SHAP values": phi.sum(),
                     "difference": res.outputs[i, j] - res.expected[j] - phi.sum(),
                     "largest contributions": ", ".join(
                         f"{nets.feature_names[o]}: {phi[o]:+.3f}" for o in order)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------- results folder, files
def networks_dir(results: str | Path) -> Path:
    """Where a results folder keeps SPIE's fold networks: ``RESULTS/extrapolation/SPIE``."""
    from lue_spie.extrapolate.units import method_dir

    return method_dir(Path(results) / "extrapolation", "SPIE")


def spie_networks(results: str | Path) -> Any:
    """The SPIE fold networks of a results folder, or a clear error when SPIE has not run.

    Raises:
        FileNotFoundError: naming the folder and what writes the networks.
    """
    from lue_spie.methods.spie import load_networks

    net_dir = networks_dir(results)
    if not net_dir.is_dir() or not any(net_dir.glob("fold*.network.pt")):
        raise FileNotFoundError(
            f"{net_dir}: no trained SPIE networks (fold<k>.network.pt). The importance "
            "analysis explains SPIE's networks: run SPIE first (the SPIE chapter of the book, "
            "or `lue-spie extrapolate --methods SPIE --data RESULTS/data --out "
            "RESULTS/extrapolation`)")
    return load_networks(net_dir)


def run_importance(results: str | Path, out: str | Path | None = None,
                   settings: ImportanceSettings | None = None, *, figures: bool = True,
                   log: Callable[[str], Any] = lambda *_: None
                   ) -> tuple[ImportanceResult, dict[str, list[Path]]]:
    """The ``lue-spie importance`` step: read a results folder, analyse, write.

    Reads the SPIE networks in ``RESULTS/extrapolation/SPIE`` and the dataset in
    ``RESULTS/data`` (sites table; ``truth.json`` and ``truth.parquet`` on virtual FLUXNET),
    runs :func:`feature_importance` and writes every table (parquet with provenance, CSV) and
    figure (PNG, SVG) to ``out`` (default ``RESULTS/importance``) with ``importance.json``.

    Raises:
        FileNotFoundError: when SPIE has not run (no networks) or the dataset is missing;
            the message names what to run.
    """
    from lue_spie.data.io import SITES_FILE, TRUTH_FILE, TRUTH_META_FILE, load_dataset

    results = Path(results)
    out = Path(out) if out is not None else results / IMPORTANCE_DIR
    if not results.is_dir():
        raise FileNotFoundError(f"results folder {results} not found (from the working "
                                f"directory {Path.cwd()})")
    data_dir = results / "data"
    if not (data_dir / SITES_FILE).is_file():
        raise FileNotFoundError(f"{data_dir}: no dataset ({SITES_FILE}); the networks' sites "
                                "and features come from it (the data chapter writes it)")
    net_dir = networks_dir(results)
    t0 = time.perf_counter()
    nets = spie_networks(results)
    dataset = load_dataset(data_dir)
    truth_r = None
    params_file = net_dir / "params.parquet"
    if dataset.truth is not None and params_file.is_file():
        truth_r = truth_correlation(store.read_parquet(params_file), dataset.truth,
                                    dataset.sites)
    t_read = time.perf_counter() - t0
    log(f"importance: {len(nets)} fold network(s) of {net_dir}; dataset {data_dir}")
    res = feature_importance(nets, dataset.sites, settings, truth_meta=dataset.truth_meta,
                             truth_r=truth_r, progress=log)
    res.timings["read"] = t_read
    inputs = {f.name: f for f in sorted(net_dir.glob("fold*.network.pt"))}
    inputs[SITES_FILE] = data_dir / SITES_FILE
    for name in (TRUTH_FILE, TRUTH_META_FILE):
        if (data_dir / name).is_file():
            inputs[name] = data_dir / name
    written = write_importance(res, out, inputs=inputs, figures=figures, log=log)
    return res, written


def write_importance(res: ImportanceResult, out: str | Path, *,
                     inputs: Mapping[str, str | Path] | None = None, figures: bool = True,
                     formats: Sequence[str] = ("png", "svg"),
                     log: Callable[[str], Any] = lambda *_: None) -> dict[str, list[Path]]:
    """Write the tables (parquet + provenance, CSV), the figures and ``importance.json``.

    Returns:
        File stem -> the files written for it.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {**res.settings.to_dict(), "methods": list(METHODS),
                "n_features": len(res.feature_names),
                "folds": sorted(int(k) for k in res.folds["fold"].unique())}
    written: dict[str, list[Path]] = {}
    t0 = time.perf_counter()
    for name, table in res.tables().items():
        prov = store.make_provenance(f"importance.{name}", settings=settings,
                                     inputs=inputs, seed=res.settings.seed)
        written[name] = store.write_table(table, out, name, prov)
    res.timings["write_tables"] = time.perf_counter() - t0
    if figures:
        from lue_spie.plots import save_figure

        t0 = time.perf_counter()
        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        for name, fig in res.figures().items():
            written[name] = save_figure(fig, fig_dir / name, formats)
            log(f"  figure {name}")
        res.timings["write_figures"] = time.perf_counter() - t0
    record = store.make_provenance("importance", settings=settings, inputs=inputs,
                                   seed=res.settings.seed)
    record["timings_s"] = dict(res.timings)
    record["files"] = {p.relative_to(out).as_posix(): store.sha256_file(p)
                       for ps in written.values() for p in ps}
    store.atomic_write_json(out / RECORD_FILE, record)
    return written

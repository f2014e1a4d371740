"""The three attributions of one fold's SPIE network: SHAP, LRP and partial dependence.

For one network (:func:`lue_spie.methods.spie.load_networks`, one per fold) this module
measures the importance of each of the 77 input columns for each of the 13 pre-mapping outputs
by three methods, each through a maintained library:

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

:func:`explain_fold` runs all three on a fold's training sites; :func:`check_design` checks
that a feature table is the networks' design matrix.

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
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from torch import nn

from lue_spie.data.features import FEATURE_CLASSES
from lue_spie.importance.settings import ONE_HOT_GROUPS, ImportanceSettings
from lue_spie.params import PARAMETERS, lag_mask

__all__ = [
    "NetworkRegressor",
    "FoldExplanation",
    "ShapResult",
    "PDResult",
    "shap_attributions",
    "lrp_attributions",
    "pd_importance",
    "explain_fold",
    "check_design",
]

_N_PARAMS = len(PARAMETERS)


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
                      *, chunk: int = ImportanceSettings.shap_chunk,
                      tolerance: float = 1e-6) -> ShapResult:
    """SHAP values of an MLP's outputs by shap's ``DeepExplainer``, additivity checked.

    shap's DeepExplainer loops in Python over the samples and the outputs, one forward and
    backward pass (with one autograd output per background row) each, so a fold costs as many
    passes as its training sites times its outputs. Here one pass explains a whole chunk of
    samples: the explainer sees ``m`` independent copies of the network whose outputs are
    summed, fed with the ``m`` samples side by side (input ``(1, m, F)``) against background
    rows that repeat each background site ``m`` times. DeepLIFT's multipliers through a sum of
    independent sub-networks are those of each sub-network, so copy ``c`` receives exactly the
    SHAP values of sample ``c`` (tested against the plain call). The network runs in float64.

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
                     epsilon: float = ImportanceSettings.lrp_epsilon) -> np.ndarray:
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
                  grid: int = ImportanceSettings.pd_grid,
                  percentiles: tuple[float, float] = ImportanceSettings.pd_percentiles,
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
        raw: ``(methods, outputs, features)`` importances (in the order of
            :data:`~lue_spie.importance.settings.METHODS`); NaN for an output without a free
            site.
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
        settings: :class:`~lue_spie.importance.settings.ImportanceSettings`.
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

"""Parameters and equifinality: predicted vectors against calibrated and true ones (paper 3.2).

The paper compares each method's predicted parameters with the site-calibrated ones, one
parameter at a time (section 2.3.4), shows that SPIE's predictions are narrower and never on
a bound while calibrated ones often are (Figure 6), and that the loss of GPP skill of SPIE
against calibration is unrelated to how far its parameters are from the calibrated ones
(Figure 7): equifinality. On the virtual FLUXNET the true parameters are known as well, so
this module also measures every method's distance to the truth.

All inputs are long tables of parameter vectors (``method, site`` + the 13 parameters, as
:attr:`lue_spie.assess.inputs.AssessmentInputs.params`) and the Koeppen type of each site (the
lag mask: ``alpha_T`` is free only at D/E sites, ``alpha_W`` only at B sites; a fixed
parameter is left out of every comparison at that site).

Definitions (the book's parameter chapter repeats them):

* **Edge-hitting**: a value within :data:`~lue_spie.parameter_skill.EDGE_TOLERANCE` (1 %)
  of the parameter's range from a bound, as for the calibration table's ``edge_*`` flags.
* **Relative parameter difference** of a site between vectors ``a`` and ``b``:
  ``D = mean_j |a_j - b_j| / (upper_j - lower_j)`` over the parameters ``j`` free at the
  site, so 0 means identical and 1 means opposite bounds on every parameter. Dividing by the
  range (not by ``|b_j|``) keeps parameters with values near 0 (``kappa``, ``gamma``, the
  lags) from dominating and puts every parameter on the same footing as the search space of
  calibration (CMA-ES works in the range-scaled space).
* **NSE difference** of a site: ``NSE_ref - NSE_method``, both the site's daily NSE on good
  days from :func:`lue_spie.assess.gpp.site_scores` (so the same days for both).
* **Correlation** of the two across sites: Pearson's r (scipy.stats.pearsonr, with its
  two-sided p-value), Spearman's rank correlation, and the least-squares line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from lue_spie.parameter_skill import check_params, free_mask, recovery_scores
from lue_spie.params import BOUNDS, PARAMETERS

__all__ = [
    "parameter_skill",
    "relative_parameter_difference",
    "Equifinality",
    "equifinality",
    "equifinality_summary",
    "mean_distance",
    "parameter_spread",
]

_WIDTH = BOUNDS[:, 1] - BOUNDS[:, 0]


def parameter_spread(params: pd.DataFrame, koeppen: pd.Series) -> pd.DataFrame:
    """How widely each method's values of each parameter spread over sites (free sites only).

    Returns:
        One row per method and parameter: ``method``, ``parameter``, ``n_free``,
        ``std / range`` (standard deviation over sites as a share of the allowed range) and
        ``iqr / range`` (interquartile range likewise); NaN where the parameter is free at
        fewer than two sites.
    """
    check_params(params, "parameter_spread", long=True)
    rows = []
    for method, t in params.groupby("method", sort=False):
        v = t[list(PARAMETERS)].to_numpy(np.float64)
        free = free_mask(t["site"], koeppen)
        for j, p in enumerate(PARAMETERS):
            x = v[free[:, j], j]
            ok = len(x) >= 2
            q75, q25 = np.percentile(x, [75, 25]) if ok else (np.nan, np.nan)
            rows.append({"method": str(method), "parameter": p, "n_free": len(x),
                         "std / range": float(np.std(x, ddof=1) / _WIDTH[j]) if ok else np.nan,
                         "iqr / range": float((q75 - q25) / _WIDTH[j]) if ok else np.nan})
    return pd.DataFrame(rows, columns=["method", "parameter", "n_free", "std / range",
                                       "iqr / range"])


def parameter_skill(params: pd.DataFrame, reference: pd.DataFrame, koeppen: pd.Series, *,
                    methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Per method and parameter: NSE, R2, NRMSE of predicted against reference values.

    The paper's section 2.3.4 with the site-calibrated vectors as reference; with the virtual
    truth as reference it is each method's distance to the true parameters. Only sites that
    have both vectors and where the parameter is free count
    (:func:`lue_spie.parameter_skill.recovery_scores`).

    Args:
        params: ``method, site`` + the 13 parameters.
        reference: ``site`` + the 13 parameters.
        koeppen: Koeppen type by site.
        methods: Methods to score (default: all in ``params``, in order of appearance).

    Returns:
        One row per method and parameter: ``method``, ``parameter``, ``sites``, ``NSE``,
        ``R2``, ``RMSE / range``, ``median |error| / range``.
    """
    check_params(params, "parameter_skill: params", long=True)
    check_params(reference, "parameter_skill: reference")
    ref = reference[["site", *PARAMETERS]].astype({"site": str})
    names = list(methods) if methods is not None else list(pd.unique(params["method"]))
    frames = []
    for m in names:
        est = params.loc[params["method"] == m, ["site", *PARAMETERS]].astype({"site": str})
        if est.empty:
            raise ValueError(f"parameter_skill: no parameter vectors of method {m!r}")
        scores = recovery_scores(ref, est, koeppen=pd.Series(koeppen).astype(str))
        frames.append(scores.reset_index().assign(method=m))
    out = pd.concat(frames, ignore_index=True)
    return out[["method", "parameter", "sites", "NSE", "R2", "RMSE / range",
                "median |error| / range"]]


def mean_distance(skill: pd.DataFrame) -> pd.Series:
    """Per method: the mean over parameters of ``median |error| / range`` (one number).

    Args:
        skill: The table of :func:`parameter_skill`.
    """
    col = "median |error| / range"
    return skill.groupby("method", sort=False)[col].mean().rename("mean distance / range")


def relative_parameter_difference(a: pd.DataFrame, b: pd.DataFrame,
                                  koeppen: pd.Series) -> pd.Series:
    """Per site: mean over free parameters of ``|a - b| / range`` (module docstring).

    Args:
        a, b: ``site`` + the 13 parameters; sites present in both count.
        koeppen: Koeppen type by site.

    Returns:
        A Series indexed by site (``a``'s order), named ``param_diff``.
    """
    check_params(a, "relative_parameter_difference: a")
    check_params(b, "relative_parameter_difference: b")
    m = a[["site", *PARAMETERS]].astype({"site": str}).merge(
        b[["site", *PARAMETERS]].astype({"site": str}), on="site", suffixes=("_a", "_b"))
    va = m[[f"{p}_a" for p in PARAMETERS]].to_numpy(np.float64)
    vb = m[[f"{p}_b" for p in PARAMETERS]].to_numpy(np.float64)
    free = free_mask(m["site"], koeppen)
    d = np.where(free, np.abs(va - vb) / _WIDTH, 0.0).sum(axis=1) / free.sum(axis=1)
    return pd.Series(d, index=pd.Index(m["site"], name="site"), name="param_diff")


@dataclass(frozen=True)
class Equifinality:
    """NSE difference against parameter difference for one method (paper Figure 7).

    Attributes:
        method: The method compared with the reference.
        reference: The reference (``"site-calib"``).
        sites: One row per site with both: ``site``, ``NSE_ref``, ``NSE_method``, ``dNSE``
            (``NSE_ref - NSE_method``), ``param_diff`` (relative parameter difference).
        n: Sites with a defined NSE for both.
        r, p_value: Pearson correlation of ``dNSE`` with ``param_diff`` and its two-sided
            p-value (NaN with fewer than 3 sites or no spread).
        spearman: Spearman's rank correlation.
        slope, intercept: Least-squares line ``dNSE = intercept + slope * param_diff``.
        scale: Time scale of the NSE.
    """

    method: str
    reference: str
    sites: pd.DataFrame
    n: int
    r: float
    p_value: float
    spearman: float
    slope: float
    intercept: float
    scale: str

    def row(self) -> dict[str, object]:
        """The summary as one table row."""
        return {"method": self.method, "reference": self.reference, "scale": self.scale,
                "n_sites": self.n, "r": self.r, "p_value": self.p_value,
                "spearman": self.spearman, "slope": self.slope, "intercept": self.intercept,
                "median_dNSE": float(self.sites["dNSE"].median()) if self.n else np.nan,
                "median_param_diff": float(self.sites["param_diff"].median())
                if self.n else np.nan}


def equifinality(site_scores: pd.DataFrame, params: pd.DataFrame, koeppen: pd.Series,
                 method: str, *, reference: str = "site-calib",
                 scale: str = "daily") -> Equifinality:
    """Site NSE difference (reference - method) against the relative parameter difference.

    Args:
        site_scores: The table of :func:`lue_spie.assess.gpp.site_scores`.
        params: ``method, site`` + the 13 parameters (both methods).
        koeppen: Koeppen type by site.
        method: The method (e.g. ``"SPIE"``).
        reference: The reference method (default ``"site-calib"``).
        scale: Time scale of the NSE (paper: daily).

    Raises:
        ValueError: when either method has no parameter vectors or no scores at ``scale``.
    """
    have = set(params["method"])
    for m in (method, reference):
        if m not in have:
            raise ValueError(f"equifinality: no parameter vectors of {m!r}; have "
                             f"{sorted(have)}")
    s = site_scores[site_scores["scale"] == scale]
    if s.empty:
        raise ValueError(f"equifinality: no site scores at scale {scale!r}")
    nse = s.pivot(index="site", columns="method", values="NSE")
    for m in (method, reference):
        if m not in nse.columns:
            raise ValueError(f"equifinality: no site scores of {m!r} at scale {scale!r}")
    diff = relative_parameter_difference(
        params[params["method"] == method], params[params["method"] == reference], koeppen)
    t = pd.DataFrame({"site": diff.index.astype(str),
                      "NSE_ref": nse[reference].reindex(diff.index).to_numpy(),
                      "NSE_method": nse[method].reindex(diff.index).to_numpy(),
                      "param_diff": diff.to_numpy()})
    t["dNSE"] = t["NSE_ref"] - t["NSE_method"]
    t = t.dropna(subset=["dNSE", "param_diff"]).reset_index(drop=True)
    t = t[["site", "NSE_ref", "NSE_method", "dNSE", "param_diff"]]
    x, y = t["param_diff"].to_numpy(), t["dNSE"].to_numpy()
    r = p = rho = slope = intercept = np.nan
    if len(t) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        r, p = (float(v) for v in stats.pearsonr(x, y))
        rho = float(stats.spearmanr(x, y).statistic)
        slope, intercept = (float(v) for v in np.polyfit(x, y, 1))
    return Equifinality(method, reference, t, len(t), r, p, rho, slope, intercept, scale)


def equifinality_summary(site_scores: pd.DataFrame, params: pd.DataFrame,
                         koeppen: pd.Series, *, reference: str = "site-calib",
                         scale: str = "daily") -> pd.DataFrame:
    """:func:`equifinality` of every method with parameter vectors against ``reference``.

    Returns:
        One row per method (:meth:`Equifinality.row`); empty without the reference.
    """
    cols = ["method", "reference", "scale", "n_sites", "r", "p_value", "spearman", "slope",
            "intercept", "median_dNSE", "median_param_diff"]
    methods = [m for m in pd.unique(params["method"]) if m != reference]
    if reference not in set(params["method"]) or not methods:
        return pd.DataFrame(columns=cols)
    rows = [equifinality(site_scores, params, koeppen, m, reference=reference,
                         scale=scale).row() for m in methods]
    return pd.DataFrame(rows, columns=cols)

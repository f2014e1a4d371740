"""GPP assessment of the parameterisation methods (paper sections 2.3.1 and 2.3.2).

From a :class:`~lue_spie.timescales.GPPGrid` (observed and predicted daily GPP of every method
on one grid) this module computes

* site scores: NSE, R2 and NRMSE of every method at every site and time scale (daily, weekly,
  monthly, yearly; :mod:`lue_spie.timescales` holds the QC rules), with the sites left out for
  having fewer than :data:`~lue_spie.metrics.MIN_POINTS` good points;
* the summary per method and time scale: sites evaluated and left out, the count and share of
  sites with positive NSE (the paper's headline: SPIE positive at 74 % of the sites, the
  baselines below 41 %) and median metrics;
* the spatial assessment: NSE, R2, NRMSE across sites between the site means of GPP_obs and
  GPP_sim over good days;
* the distributions of a site metric (by default daily NSE) per PFT and per Koeppen main
  climate group.

All outputs are tidy pandas tables (one row per observation, named columns), ready for plots,
the book and parquet files. The model likelihood P (section 2.3.3) is in
:mod:`lue_spie.assess.likelihood`.

Decisions:

* A site counts for a method when the method predicts it (``covered``: a finite GPP_sim on a
  day with an observation); a covered site with fewer than ``min_points`` good points at a
  scale is ``left_out`` there (NaN metrics) and counted. Shares of positive NSE are over the
  sites with a defined NSE.
* Site means for the spatial assessment are over the site's good days on which the method has
  a prediction (at least ``min_points`` of them); the spatial metrics need at least
  ``min_points`` such sites.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lue_spie.metrics import METRICS, MIN_POINTS, Moments, all_metrics
from lue_spie.params import koeppen_main_group
from lue_spie.timescales import SCALES, GPPGrid, ScaleSeries, all_scales, check_scales

__all__ = [
    "SpatialScores", "TypeDistributions", "GPPAssessment", "site_scores", "score_summary",
    "spatial_scores", "by_site_type", "assess_gpp",
]

#: Site-type columns of the sites table used for the per-type distributions.
SITE_TYPES: tuple[str, ...] = ("PFT", "koeppen_main")


def site_scores(series: Mapping[str, ScaleSeries], min_points: int = MIN_POINTS) -> pd.DataFrame:
    """NSE, R2 and NRMSE of every method at every site and time scale.

    Args:
        series: Time scale -> :class:`~lue_spie.timescales.ScaleSeries` (from
            :func:`~lue_spie.timescales.all_scales`).
        min_points: Fewest good points of a site at a scale; fewer leaves it out (NaN).

    Returns:
        One row per method, site and scale: ``method``, ``site``, ``scale``, ``n_points``
        (good periods with a prediction), ``covered`` (the method predicts the site),
        ``left_out`` (covered but fewer than ``min_points`` good points), ``NSE``, ``R2``,
        ``NRMSE``. Rows are in method, scale, site order.
    """
    check_scales(series)
    frames = []
    for scale, s in series.items():
        sim_ok = np.isfinite(s.GPP_sim)
        mom = Moments.from_series(s.GPP_obs, s.GPP_sim, s.good[None] & sim_ok)
        values = mom.metrics(min_points)
        covered = (sim_ok & np.isfinite(s.GPP_obs)[None]).any(axis=-1)
        n_m, n_s = covered.shape
        frames.append(pd.DataFrame({
            "method": np.repeat(np.array(s.methods, dtype=object), n_s),
            "site": np.tile(np.array(s.sites, dtype=object), n_m),
            "scale": scale,
            "n_points": mom.n.astype(np.int64).reshape(-1),
            "covered": covered.reshape(-1),
            "left_out": (covered & (mom.n < min_points)).reshape(-1),
            **{k: values[k].reshape(-1) for k in METRICS},
        }))
    table = pd.concat(frames, ignore_index=True)
    methods = next(iter(series.values())).methods
    return _sorted(table, {"method": methods, "scale": SCALES})


def _sorted(table: pd.DataFrame, orders: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Stable sort of ``table`` by the given columns in the given category orders."""
    codes = pd.DataFrame({c: pd.Categorical(table[c], categories=list(o)).codes
                          for c, o in orders.items()}, index=table.index)
    order = codes.sort_values(list(orders), kind="stable").index
    table = table.loc[order].reset_index(drop=True)
    for col in table.columns:
        if table[col].dtype == object:
            table[col] = table[col].astype(str)
    return table


def score_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per method and scale: sites evaluated, left out, with positive NSE, median metrics.

    Args:
        scores: The table of :func:`site_scores`.

    Returns:
        One row per method and scale: ``method``, ``scale``, ``n_sites`` (covered),
        ``n_left_out``, ``n_evaluated`` (NSE defined), ``n_positive_NSE``,
        ``share_positive_NSE`` (of the evaluated sites), ``median_NSE``, ``median_R2``,
        ``median_NRMSE``.
    """
    t = scores[scores["covered"]].assign(
        evaluated=lambda d: d["NSE"].notna(), positive=lambda d: d["NSE"] > 0)
    out = t.groupby(["method", "scale"], sort=False).agg(
        n_sites=("site", "size"), n_left_out=("left_out", "sum"),
        n_evaluated=("evaluated", "sum"), n_positive_NSE=("positive", "sum"),
        median_NSE=("NSE", "median"), median_R2=("R2", "median"),
        median_NRMSE=("NRMSE", "median"),
    ).reset_index()
    with np.errstate(invalid="ignore", divide="ignore"):
        share = out["n_positive_NSE"] / out["n_evaluated"].where(out["n_evaluated"] > 0)
    out.insert(6, "share_positive_NSE", share)
    for col in ("n_sites", "n_left_out", "n_evaluated", "n_positive_NSE"):
        out[col] = out[col].astype(np.int64)
    return out


@dataclass(frozen=True)
class SpatialScores:
    """Spatial assessment (paper section 2.3.2).

    Attributes:
        site_means: One row per method and site: ``method``, ``site``, ``n_days`` (good days
            with a prediction), ``GPP_obs``, ``GPP_sim`` (site means over those days; NaN for
            a site with fewer than ``min_points`` such days).
        metrics: One row per method: ``method``, ``n_sites``, ``NSE``, ``R2``, ``NRMSE``
            across sites between the site means.
    """

    site_means: pd.DataFrame
    metrics: pd.DataFrame


def spatial_scores(grid: GPPGrid, min_points: int = MIN_POINTS) -> SpatialScores:
    """Metrics across sites between site-mean GPP_obs and GPP_sim on good days.

    Args:
        grid: Daily observations and predictions.
        min_points: Fewest good days for a site mean, and fewest sites for the metrics.
    """
    mom = Moments.from_series(grid.GPP_obs, grid.GPP_sim, grid.good[None])
    ok = mom.n >= min_points
    obs = np.where(ok, mom.mean_obs, np.nan)
    sim = np.where(ok, mom.mean_sim, np.nan)
    values = all_metrics(obs, sim, ok, min_points)
    n_m, n_s = ok.shape
    site_means = pd.DataFrame({
        "method": np.repeat(np.array(grid.methods, dtype=object), n_s).astype(str),
        "site": np.tile(np.array(grid.sites, dtype=object), n_m).astype(str),
        "n_days": mom.n.astype(np.int64).reshape(-1),
        "GPP_obs": obs.reshape(-1), "GPP_sim": sim.reshape(-1),
    })
    metrics = pd.DataFrame({"method": list(grid.methods), "n_sites": ok.sum(axis=1),
                            **{k: values[k] for k in METRICS}})
    return SpatialScores(site_means, metrics)


@dataclass(frozen=True)
class TypeDistributions:
    """A site metric per plant functional type and Koeppen main group (paper Figure 4).

    Attributes:
        values: One row per method and site with a defined metric: ``method``, ``site``,
            ``PFT``, ``koeppen_main``, and the metric column (e.g. ``NSE``).
        summary: One row per method, type column and type: ``method``, ``by`` (``"PFT"`` or
            ``"koeppen_main"``), ``group``, ``n_sites``, ``mean``, ``median``, ``q25``,
            ``q75``, ``n_positive``, ``share_positive``.
        metric: The metric, e.g. ``"NSE"``.
        scale: The time scale, e.g. ``"daily"``.
    """

    values: pd.DataFrame
    summary: pd.DataFrame
    metric: str
    scale: str


def _site_types(sites: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(sites, pd.DataFrame) or "site" not in sites.columns \
            or "PFT" not in sites.columns:
        raise ValueError("by_site_type: the sites table needs columns 'site' and 'PFT' and "
                         "'koeppen_main' (or 'koeppen')")
    types = sites[["site", "PFT"]].astype(str).copy()
    if "koeppen_main" in sites.columns:
        types["koeppen_main"] = sites["koeppen_main"].astype(str).to_numpy()
    elif "koeppen" in sites.columns:
        types["koeppen_main"] = koeppen_main_group(sites["koeppen"].astype(str).tolist())
    else:
        raise ValueError("by_site_type: the sites table has neither 'koeppen_main' nor "
                         "'koeppen'")
    return types


def by_site_type(scores: pd.DataFrame, sites: pd.DataFrame, *, scale: str = "daily",
                 metric: str = "NSE") -> TypeDistributions:
    """Distribution of a site metric per PFT and per Koeppen main group.

    Args:
        scores: The table of :func:`site_scores`.
        sites: The dataset's sites table (``site``, ``PFT``, ``koeppen_main`` or ``koeppen``).
        scale: Time scale of the metric (paper: daily).
        metric: One of ``NSE``, ``R2``, ``NRMSE`` (paper: NSE).
    """
    if metric not in METRICS:
        raise ValueError(f"by_site_type: unknown metric {metric!r}; expected one of {METRICS}")
    if scale not in set(scores["scale"]):
        raise ValueError(f"by_site_type: no scores at scale {scale!r}; have "
                         f"{sorted(set(scores['scale']))}")
    types = _site_types(sites)
    t = scores.loc[(scores["scale"] == scale) & scores[metric].notna(),
                   ["method", "site", metric]]
    missing = sorted(set(t["site"]) - set(types["site"]))
    if missing:
        raise ValueError(f"by_site_type: site(s) {missing[:10]} are not in the sites table")
    values = t.merge(types, on="site", how="left")[["method", "site", "PFT", "koeppen_main",
                                                    metric]].reset_index(drop=True)
    parts = []
    for by in SITE_TYPES:
        g = values.assign(positive=values[metric] > 0).groupby(["method", by], sort=False)
        part = g.agg(n_sites=(metric, "size"), mean=(metric, "mean"),
                     median=(metric, "median"), q25=(metric, lambda x: x.quantile(0.25)),
                     q75=(metric, lambda x: x.quantile(0.75)), n_positive=("positive", "sum"))
        part = part.reset_index().rename(columns={by: "group"})
        part.insert(1, "by", by)
        parts.append(part)
    summary = pd.concat(parts, ignore_index=True)
    summary["share_positive"] = summary["n_positive"] / summary["n_sites"]
    summary = _sorted(summary.sort_values("group", kind="stable"),
                      {"by": SITE_TYPES, "method": list(pd.unique(values["method"]))})
    return TypeDistributions(values, summary, metric, scale)


@dataclass(frozen=True)
class GPPAssessment:
    """Everything of sections 2.3.1-2.3.2 for one grid of predictions.

    Attributes:
        scales: Time scale -> :class:`~lue_spie.timescales.ScaleSeries`.
        site_scores: :func:`site_scores`.
        summary: :func:`score_summary`.
        spatial: :func:`spatial_scores`.
        by_type: :func:`by_site_type` of daily NSE (None without a sites table).
    """

    scales: dict[str, ScaleSeries]
    site_scores: pd.DataFrame
    summary: pd.DataFrame
    spatial: SpatialScores
    by_type: TypeDistributions | None


def assess_gpp(grid: GPPGrid, sites: pd.DataFrame | None = None, *,
               scales: Sequence[str] = SCALES, min_points: int = MIN_POINTS) -> GPPAssessment:
    """Site scores at every time scale, their summary, spatial scores and per-type NSE.

    Args:
        grid: Daily observations and predictions (:func:`~lue_spie.timescales.gpp_grid`).
        sites: The dataset's sites table, for the per-PFT / per-climate distributions.
        scales: Time scales to assess.
        min_points: Fewest good points of a site at a scale (and fewest sites spatially).
    """
    series = all_scales(grid, scales)
    scores = site_scores(series, min_points)
    by_type = None
    if sites is not None:
        by_type = by_site_type(scores, sites, scale="daily" if "daily" in series else scales[0])
    return GPPAssessment(series, scores, score_summary(scores), spatial_scores(grid, min_points),
                         by_type)

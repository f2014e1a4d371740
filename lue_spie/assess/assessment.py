"""The assessment of one results folder: GPP skill, the likelihood P, parameters (paper 2.3).

:func:`assess_results` reads a results folder (:func:`lue_spie.assess.inputs.load_results`)
and computes, for every method found (site-calib first):

- GPP skill at four time scales, its summary, the spatial assessment and the per-PFT and
  per-climate distributions (:func:`lue_spie.assess.gpp.assess_gpp`; Figures 2-4);
- the model likelihood P (:func:`lue_spie.assess.likelihood.model_likelihood`; Figure 5) of
  the extrapolation methods (site-calib competes only with ``p_with_calib``: fitted to each
  site, it would win nearly every group, and the paper's Figure 5 ranks the others);
- the parameter comparisons (:mod:`lue_spie.assess.parameters`): bound hits, per-parameter
  skill against the calibrated vectors and (virtual FLUXNET) against the truth, and the NSE
  loss against the parameter difference (Figures 6-7);
- a headline table, one row per method (the paper's claims next to it:
  :func:`lue_spie.assess.claims.compare_with_paper`).

The *focus* method of Figures 6 and 7 is SPIE when its results are there; otherwise (SPIE
not run yet) the parameter-predicting method with the largest share of sites with positive
daily NSE, and the outputs say which. The structural-error twin is assessed by
:mod:`lue_spie.assess.twin` and joined by the step (:mod:`lue_spie.assess.step`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lue_spie.assess.gpp import GPPAssessment, assess_gpp
from lue_spie.assess.inputs import SITE_CALIB, AssessmentInputs, load_results
from lue_spie.assess.likelihood import Likelihood, model_likelihood
from lue_spie.assess.parameters import (
    Equifinality,
    equifinality,
    equifinality_summary,
    mean_distance,
    parameter_skill,
)
from lue_spie.assess.settings import AssessSettings
from lue_spie.layout import AssessmentTable
from lue_spie.parameter_skill import edge_shares
from lue_spie.timescales import SCALES, gpp_grid

__all__ = [
    "Assessment",
    "assess_results",
    "focus_method",
    "headline_table",
]


@dataclass
class Assessment:
    """Everything :func:`assess_results` computed.

    Attributes:
        inputs: What was read.
        settings: How.
        gpp: GPP skill (site scores, summary, spatial, per type).
        likelihood: The model likelihood P (None with fewer than two methods).
        focus: The method of Figures 6-7 (None when no method has parameter vectors).
        edges: Bound hits per method and parameter.
        skill_calib: Per-parameter skill against site-calib (empty without it).
        skill_truth: Per-parameter skill against the truth (None on real data).
        equifinality: Figure 7 for the focus method (None without site-calib or focus).
        equifinality_all: Figure 7's numbers for every method.
        headline: One row per method (:func:`headline_table`).
        worlds: The main run and its structural-error twin side by side
            (:func:`lue_spie.assess.twin.compare_worlds`), or None without a twin.
        agreement: Per world, GPP ranking against distance to the truth
            (:func:`lue_spie.assess.twin.ranking_agreement`), or None.
        timings: Seconds per part.
    """

    inputs: AssessmentInputs
    settings: AssessSettings
    gpp: GPPAssessment
    likelihood: Likelihood | None
    focus: str | None
    edges: pd.DataFrame
    skill_calib: pd.DataFrame
    skill_truth: pd.DataFrame | None
    equifinality: Equifinality | None
    equifinality_all: pd.DataFrame
    headline: pd.DataFrame
    worlds: pd.DataFrame | None = None
    agreement: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by its name (:class:`~lue_spie.layout.AssessmentTable`)."""
        T = AssessmentTable
        g = self.gpp
        out = {
            T.HEADLINE: self.headline,
            T.SITE_SCORES: g.site_scores,
            T.SCORE_SUMMARY: g.summary,
            T.SPATIAL_METRICS: g.spatial.metrics,
            T.SPATIAL_SITE_MEANS: g.spatial.site_means,
        }
        if g.by_type is not None:
            out[T.NSE_BY_TYPE] = g.by_type.values
            out[T.NSE_BY_TYPE_SUMMARY] = g.by_type.summary
        if self.likelihood is not None:
            lk = self.likelihood
            out[T.LIKELIHOOD_P] = lk.P
            out[T.LIKELIHOOD_AVERAGE] = lk.average
            out[T.LIKELIHOOD_TABLE] = lk.table().rename_axis("method").reset_index()
            out[T.LIKELIHOOD_GROUPS] = lk.groups
            out[T.LIKELIHOOD_MEMBERS] = lk.members
        out[T.PARAMS] = self.inputs.params
        out[T.EDGE_SHARES] = self.edges
        out[T.PARAMETER_SKILL_CALIB] = self.skill_calib
        if self.skill_truth is not None:
            out[T.PARAMETER_SKILL_TRUTH] = self.skill_truth
        out[T.EQUIFINALITY_SUMMARY] = self.equifinality_all
        if self.equifinality is not None:
            out[T.EQUIFINALITY_SITES] = self.equifinality.sites.assign(
                method=self.equifinality.method)
        if self.worlds is not None:
            out[T.TWIN_WORLDS] = self.worlds
            out[T.TWIN_AGREEMENT] = self.agreement
        return out


def focus_method(inputs: AssessmentInputs, summary: pd.DataFrame,
                 preferred: str | None = None) -> str | None:
    """The method of Figures 6-7 (see the module docstring).

    Raises:
        ValueError: when ``preferred`` is given but has no parameter vectors.
    """
    candidates = [m for m in inputs.param_methods if m != SITE_CALIB]
    if preferred is not None:
        if preferred not in candidates:
            raise ValueError(f"focus method {preferred!r} has no parameter vectors; choose one "
                             f"of {candidates}")
        return preferred
    if "SPIE" in candidates:
        return "SPIE"
    if not candidates:
        return None
    daily = summary[(summary["scale"] == "daily") & summary["method"].isin(candidates)]
    if daily.empty:
        return candidates[0]
    best = daily.sort_values(["share_positive_NSE", "median_NSE"], ascending=False,
                             kind="stable")
    return str(best["method"].iloc[0])


def headline_table(gpp: GPPAssessment, likelihood: Likelihood | None,
                   skill_truth: pd.DataFrame | None,
                   methods: Sequence[str]) -> pd.DataFrame:
    """One row per method: the numbers the paper's abstract and section 3 quote.

    Columns: ``method``, ``n_evaluated`` and ``n_positive_NSE`` (daily), ``share_positive_NSE``
    (daily; the paper: SPIE 74 %, the baselines below 41 %), ``median_NSE`` (daily),
    ``spatial_NSE``, ``spatial_R2``, ``spatial_NRMSE``, ``P`` (average model likelihood),
    ``P_rank`` and, on virtual FLUXNET, ``truth_distance`` (mean over parameters of the median
    ``|p - p_true| / range``).
    """
    s = gpp.summary[gpp.summary["scale"] == "daily"].set_index("method")
    sp = gpp.spatial.metrics.set_index("method")
    out = pd.DataFrame({"method": list(methods)})
    for col in ("n_evaluated", "n_positive_NSE", "share_positive_NSE", "median_NSE"):
        out[col] = out["method"].map(s[col]) if col in s else np.nan
    for k in ("NSE", "R2", "NRMSE"):
        out[f"spatial_{k}"] = out["method"].map(sp[k])
    if likelihood is not None:
        avg = likelihood.average.set_index("method")
        out["P"] = out["method"].map(avg["P"])
        out["P_rank"] = out["method"].map(avg["rank"]).astype("Int64")
    else:
        out["P"] = np.nan
        out["P_rank"] = pd.array([pd.NA] * len(out), dtype="Int64")
    if skill_truth is not None:
        out["truth_distance"] = out["method"].map(mean_distance(skill_truth))
    return out


def assess_results(results: str | Path | AssessmentInputs,
                   settings: AssessSettings | None = None, *,
                   log: Callable[[str], Any] = lambda *_: None) -> Assessment:
    """Compute the whole assessment of a results folder (see the module docstring).

    Args:
        results: The results folder, or inputs already loaded.
        settings: How to assess (default: :class:`AssessSettings` with its defaults).
        log: Where progress lines go.
    """
    settings = settings or AssessSettings()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if isinstance(results, AssessmentInputs):
        inputs = results
    else:
        inputs = load_results(results, years=settings.years, methods=settings.methods)
    timings["load"] = time.perf_counter() - t0
    log(f"read {len(inputs.methods)} method(s) from {inputs.results}")

    t0 = time.perf_counter()
    grid = gpp_grid(inputs.site_day, inputs.predictions, methods=inputs.methods)
    gpp = assess_gpp(grid, inputs.sites, scales=settings.scales,
                     min_points=settings.min_points)
    timings["gpp"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    lk = None
    competing = [m for m in inputs.methods if settings.p_with_calib or m != SITE_CALIB]
    if len(competing) >= 2:
        lk = model_likelihood(gpp.scales if competing == list(inputs.methods)
                              and set(settings.scales) == set(SCALES)
                              else grid.select(competing),
                              n_groups=settings.n_groups,
                              sites_per_group=settings.sites_per_group,
                              years_per_site=settings.years_per_site, alpha=settings.alpha,
                              ttest=settings.ttest, seed=settings.seed)
    timings["likelihood"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    koeppen = inputs.koeppen
    params = inputs.params
    edges = edge_shares(params, koeppen)
    others = [m for m in inputs.param_methods if m != SITE_CALIB]
    if SITE_CALIB in inputs.param_methods and others:
        skill_calib = parameter_skill(params, inputs.method_params(SITE_CALIB), koeppen,
                                      methods=others)
    else:
        skill_calib = pd.DataFrame(columns=["method", "parameter", "sites", "NSE", "R2",
                                            "NRMSE", "median |error| / range"])
    skill_truth = None
    if inputs.truth is not None and inputs.param_methods:
        skill_truth = parameter_skill(params, inputs.truth, koeppen,
                                      methods=list(inputs.param_methods))
    focus = focus_method(inputs, gpp.summary, settings.focus)
    eq = None
    eq_all = equifinality_summary(gpp.site_scores, params, koeppen)
    if focus is not None and SITE_CALIB in inputs.param_methods:
        eq = equifinality(gpp.site_scores, params, koeppen, focus)
    timings["parameters"] = time.perf_counter() - t0
    head = headline_table(gpp, lk, skill_truth, inputs.methods)
    return Assessment(inputs, settings, gpp, lk, focus, edges, skill_calib, skill_truth, eq,
                      eq_all, head, timings=timings)

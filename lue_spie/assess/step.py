"""The assessment step: a results folder in, every table and figure of paper section 3 out.

:func:`assess_results` reads a results folder (:func:`lue_spie.assess.inputs.load_results`) and
computes, for every method found (site-calib first):

- GPP skill at four time scales, its summary, the spatial assessment and the per-PFT and
  per-climate distributions (:func:`lue_spie.assess.gpp.assess_gpp`; Figures 2-4);
- the model likelihood P (:func:`lue_spie.assess.likelihood.model_likelihood`; Figure 5) of the
  extrapolation methods (site-calib competes only with ``p_with_calib``: fitted to each
  site, it would win nearly every group, and the paper's Figure 5 ranks the others);
- the parameter comparisons (:mod:`lue_spie.assess.parameters`): bound hits, per-parameter
  skill against the calibrated vectors and (virtual FLUXNET) against the truth, and the NSE
  loss against the parameter difference (Figures 6-7);
- a headline table, one row per method.

:func:`write_assessment` writes each table as parquet (with a provenance record) and CSV,
each figure as PNG and SVG, and ``assessment.json`` (settings, inputs and their checksums,
every file written with its checksum, timings). :func:`run_assessment` does both; it is what
``lue-spie assess`` runs (:mod:`lue_spie.assess.cli`). No path of the machine is recorded:
inputs are named relative to the results folder.

The *focus* method of Figures 6 and 7 is SPIE when its results are there; otherwise (SPIE
not run yet) the parameter-predicting method with the largest share of sites with positive
daily NSE, and the outputs say which.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lue_spie import store
from lue_spie.assess.gpp import GPPAssessment, assess_gpp
from lue_spie.assess.inputs import SITE_CALIB, AssessmentInputs, load_results, provenance_files
from lue_spie.assess.likelihood import Likelihood, model_likelihood
from lue_spie.assess.parameters import (
    Equifinality,
    edge_shares,
    equifinality,
    equifinality_summary,
    mean_distance,
    parameter_skill,
)
from lue_spie.assess.twin import assess_worlds, has_twin
from lue_spie.metrics import MIN_POINTS
from lue_spie.timescales import SCALES, gpp_grid

__all__ = [
    "AssessSettings",
    "Assessment",
    "assess_results",
    "focus_method",
    "headline_table",
    "write_assessment",
    "run_assessment",
    "compare_with_paper",
    "ASSESSMENT_FILE",
]

#: The record of an assessment folder (settings, inputs, files, timings).
ASSESSMENT_FILE = "assessment.json"


@dataclass(frozen=True)
class AssessSettings:
    """How to assess (the paper's settings by default).

    Attributes:
        n_groups: Site groups of the likelihood P (paper: 200).
        sites_per_group: Sites per group (paper: 100; fewer when fewer sites exist).
        years_per_site: Random years per site in a group (paper: 2).
        alpha: Significance level of the KS test and the t-test.
        ttest: ``"welch"`` or ``"paired"`` (see :mod:`lue_spie.assess.likelihood`).
        seed: Seed of the group draws.
        scales: Time scales of the GPP assessment.
        min_points: Fewest good points of a site at a scale.
        focus: Method of Figures 6-7 (default: SPIE if present, else the best by positive
            daily NSE).
        years: Years to assess (default: those every method predicts).
        methods: Methods to assess (default: all found; ``site-calib`` is the calibration).
        p_with_calib: Let site-calib compete in the likelihood P. Off by default, as in the
            paper's Figure 5, where P ranks the extrapolation methods only: the reference
            fitted to each site's own data would win nearly every group and leave P near 0
            for every other method.
        twin: Also compare with the structural-error twin when ``RESULTS/twin`` holds one
            (:mod:`lue_spie.assess.twin`; tables ``twin_worlds`` and ``twin_agreement``).
    """

    n_groups: int = 200
    sites_per_group: int = 100
    years_per_site: int = 2
    alpha: float = 0.05
    ttest: str = "welch"
    seed: int = 0
    scales: tuple[str, ...] = SCALES
    min_points: int = MIN_POINTS
    focus: str | None = None
    years: tuple[int, ...] | None = None
    methods: tuple[str, ...] | None = None
    p_with_calib: bool = False
    twin: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly settings."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}


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
        """Every table by file stem (what :func:`write_assessment` writes)."""
        g = self.gpp
        out = {
            "headline": self.headline,
            "site_scores": g.site_scores,
            "score_summary": g.summary,
            "spatial_metrics": g.spatial.metrics,
            "spatial_site_means": g.spatial.site_means,
        }
        if g.by_type is not None:
            out["nse_by_type"] = g.by_type.values
            out["nse_by_type_summary"] = g.by_type.summary
        if self.likelihood is not None:
            lk = self.likelihood
            out["likelihood_P"] = lk.P
            out["likelihood_average"] = lk.average
            out["likelihood_table"] = lk.table().rename_axis("method").reset_index()
            out["likelihood_groups"] = lk.groups
            out["likelihood_members"] = lk.members
        out["params"] = self.inputs.params
        out["edge_shares"] = self.edges
        out["parameter_skill_calib"] = self.skill_calib
        if self.skill_truth is not None:
            out["parameter_skill_truth"] = self.skill_truth
        out["equifinality_summary"] = self.equifinality_all
        if self.equifinality is not None:
            out["equifinality_sites"] = self.equifinality.sites.assign(
                method=self.equifinality.method)
        if self.worlds is not None:
            out["twin_worlds"] = self.worlds
            out["twin_agreement"] = self.agreement
        return out

    def figures(self) -> dict[str, Any]:
        """Every figure by file stem (the paper's numbers first)."""
        from lue_spie import plots

        g = self.gpp
        figs: dict[str, Any] = {
            "fig2_nse_sites": plots.nse_heatmap(g.site_scores, scales=self.settings.scales),
            "figS1_r2_sites": plots.nse_heatmap(g.site_scores, metric="R2",
                                                scales=self.settings.scales),
            "figS2_nrmse_sites": plots.nse_heatmap(g.site_scores, metric="NRMSE",
                                                   scales=self.settings.scales),
            "fig3_spatial": plots.spatial_skill(g.spatial.metrics),
            "fig3_spatial_sites": plots.spatial_scatter(g.spatial.site_means,
                                                        self.inputs.methods),
        }
        if g.by_type is not None:
            figs["fig4_nse_by_type"] = plots.nse_by_type(g.by_type.values)
        if self.likelihood is not None:
            figs["fig5_likelihood"] = plots.likelihood(self.likelihood.P,
                                                       self.likelihood.average)
        if self.focus is not None:
            shown = [m for m in (SITE_CALIB, self.focus) if m in self.inputs.param_methods]
            figs["fig6_param_densities"] = plots.parameter_densities(
                self.inputs.params, self.inputs.koeppen, shown, edges=self.edges)
        if self.equifinality is not None:
            figs["fig7_nse_vs_param_diff"] = plots.nse_vs_param_diff(self.equifinality)
        if not self.skill_calib.empty:
            figs["param_skill_calib"] = plots.parameter_skill_heatmap(
                self.skill_calib, title="predicted against site-calibrated parameters")
        if self.skill_truth is not None:
            figs["param_distance_truth"] = plots.parameter_skill_heatmap(
                self.skill_truth, value="median |error| / range",
                title="distance to the true parameters")
        if self.worlds is not None:
            figs["twin_worlds"] = plots.twin_comparison(self.worlds)
        return figs


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
        settings: How to assess (default :class:`AssessSettings()`).
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
    worlds = agreement = None
    if settings.twin and has_twin(inputs.results):
        t0 = time.perf_counter()
        log("assessing the structural-error twin")
        worlds, agreement = assess_worlds(inputs.results, n_groups=settings.n_groups,
                                          seed=settings.seed)
        timings["twin"] = time.perf_counter() - t0
    return Assessment(inputs, settings, gpp, lk, focus, edges, skill_calib, skill_truth, eq,
                      eq_all, head, worlds, agreement, timings)


def _verdict(ok: bool | None) -> str:
    return "not testable" if ok is None else ("yes" if ok else "no")


def compare_with_paper(a: Assessment) -> pd.DataFrame:
    """The paper's headline claims next to this run's numbers, with whether they agree.

    The claims (Bao et al. 2023, abstract, section 3.1 and the conclusions): SPIE positive
    daily NSE at 74 % of sites and every other extrapolation method below 41 %; SPIE first by
    average P, followed by OPT-All and Climmed (P below 0.06); SPIE best at the spatial scale.
    A claim about SPIE is "not testable" while SPIE has not been run.

    Returns:
        One row per claim: ``claim``, ``paper``, ``this run``, ``agrees``.
    """
    h = a.headline.set_index("method")
    extrap = [m for m in h.index if m != SITE_CALIB]
    has_spie = "SPIE" in extrap
    others = [m for m in extrap if m != "SPIE"]
    share = h["share_positive_NSE"]
    rows = []
    spie_share = share.get("SPIE", np.nan)
    rows.append(("share of sites with daily NSE > 0, SPIE", "74 %",
                 f"{spie_share:.0%}" if has_spie else "SPIE not run",
                 "a number of the dataset: compare the pattern (next rows)" if has_spie
                 else "not testable"))
    if others:
        best = share[others].idxmax()
        rows.append(("the same, best of the other methods", "below 41 %",
                     f"{best}: {share[best]:.0%}", _verdict(bool(share[best] < 0.41))))
        rows.append(("SPIE ahead of every other method by that share", "yes",
                     (f"SPIE {spie_share:.0%} vs {best} {share[best]:.0%}" if has_spie
                      else "SPIE not run"),
                     _verdict(None if not has_spie else bool(spie_share > share[others].max()))))
    if SITE_CALIB in h.index:
        rows.append(("site calibration, median site daily NSE", "0.95 (abstract)",
                     f"{h.at[SITE_CALIB, 'median_NSE']:.2f}",
                     "not comparable (the virtual data's noise sets the ceiling)"))
    if a.likelihood is not None:
        avg = a.likelihood.average
        first = avg["method"].iloc[0]
        rows.append(("first by average P", "SPIE", f"{first} (P {avg['P'].iloc[0]:.2f})",
                     _verdict(None if not has_spie else first == "SPIE")))
        nxt = ", ".join(f"{m} ({p:.2f})" for m, p in
                        zip(avg["method"].iloc[1:3], avg["P"].iloc[1:3], strict=True))
        rows.append(("next by average P", "OPT-All, Climmed (P < 0.06)", nxt or "-",
                     _verdict(set(avg["method"].iloc[1:3]) == {"OPT-All", "Climmed"}
                              if has_spie and len(avg) >= 3 else None)))
    sp = h.loc[extrap, "spatial_NSE"].dropna() if extrap else pd.Series(dtype=float)
    if len(sp):
        top = sp.idxmax()
        rows.append(("best spatial NSE of site-mean GPP", "SPIE", f"{top} ({sp[top]:.2f})",
                     _verdict(None if not has_spie else top == "SPIE")))
    return pd.DataFrame(rows, columns=["claim", "paper", "this run", "agrees"])


def _provenance(a: Assessment, name: str, extra: Mapping[str, Any] | None = None) -> dict:
    settings = {**a.settings.to_dict(), "methods_found": list(a.inputs.methods),
                "years_assessed": list(a.inputs.years), "focus": a.focus,
                "inputs": provenance_files(a.inputs), **dict(extra or {})}
    return store.make_provenance(f"assess.{name}", settings=settings, seed=a.settings.seed)


def write_assessment(a: Assessment, out: str | Path, *, figures: bool = True,
                     formats: Sequence[str] = ("png", "svg"),
                     log: Callable[[str], Any] = lambda *_: None) -> dict[str, list[Path]]:
    """Write every table (parquet + provenance, CSV) and figure (``formats``) to ``out``.

    Returns:
        Table name (``headline`` ...) or ``figures/<name>`` -> the files written for it.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    t0 = time.perf_counter()
    base = _provenance(a, "tables")
    for name, table in a.tables().items():
        written[name] = store.write_table(table, out, name, {**base, "step": f"assess.{name}"})
    a.timings["write_tables"] = time.perf_counter() - t0
    if figures:
        from lue_spie.plots import save_figure

        t0 = time.perf_counter()
        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        for name, fig in a.figures().items():
            written[f"figures/{name}"] = save_figure(fig, fig_dir / name, formats)
            log(f"  figure {name}")
        a.timings["write_figures"] = time.perf_counter() - t0
    record = _provenance(a, "record", {"timings_s": a.timings})
    record["files"] = {p.relative_to(out).as_posix(): store.sha256_file(p)
                       for ps in written.values() for p in ps}
    record["headline"] = a.headline.to_dict(orient="records")
    store.atomic_write_json(out / ASSESSMENT_FILE, record)
    return written


def run_assessment(results: str | Path, out: str | Path,
                   settings: AssessSettings | None = None, *, figures: bool = True,
                   log: Callable[[str], Any] = lambda *_: None
                   ) -> tuple[Assessment, dict[str, list[Path]]]:
    """:func:`assess_results` then :func:`write_assessment`; the ``lue-spie assess`` step."""
    a = assess_results(results, settings, log=log)
    return a, write_assessment(a, out, figures=figures, log=log)

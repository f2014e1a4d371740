"""The assessment step: a results folder in, every table and figure of paper section 3 out.

:func:`run` assesses a results folder (:func:`lue_spie.assess.assessment.assess_results`),
joins the structural-error twin when the folder holds one (:mod:`lue_spie.assess.twin`), and
:func:`write_assessment` writes each table as parquet (with a provenance record) and CSV,
each figure as PNG and SVG, and the record (settings, inputs and their checksums, every file
written with its checksum, timings) into the assessment folder (names in
:class:`lue_spie.layout.AssessmentFiles`). It is what ``lue-spie assess`` runs
(:mod:`lue_spie.assess.cli`). No path of the machine is recorded: inputs are named relative
to the results folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lue_spie import plots, store
from lue_spie.assess.assessment import Assessment, assess_results
from lue_spie.assess.inputs import SITE_CALIB, provenance_files
from lue_spie.assess.settings import AssessSettings
from lue_spie.assess.twin import assess_worlds, has_twin
from lue_spie.layout import AssessmentFiles, Layout
from lue_spie.plots import save_figure

__all__ = ["run", "figures", "write_assessment"]


def figures(a: Assessment) -> dict[str, Any]:
    """Every figure of an assessment by file stem (the paper's numbers first)."""
    g = a.gpp
    figs: dict[str, Any] = {
        "fig2_nse_sites": plots.nse_heatmap(g.site_scores, scales=a.settings.scales),
        "figS1_r2_sites": plots.nse_heatmap(g.site_scores, metric="R2",
                                            scales=a.settings.scales),
        "figS2_nrmse_sites": plots.nse_heatmap(g.site_scores, metric="NRMSE",
                                               scales=a.settings.scales),
        "fig3_spatial": plots.spatial_skill(g.spatial.metrics),
        "fig3_spatial_sites": plots.spatial_scatter(g.spatial.site_means,
                                                    a.inputs.methods),
    }
    if g.by_type is not None:
        figs["fig4_nse_by_type"] = plots.nse_by_type(g.by_type.values)
    if a.likelihood is not None:
        figs["fig5_likelihood"] = plots.likelihood(a.likelihood.P,
                                                   a.likelihood.average)
    if a.focus is not None:
        shown = [m for m in (SITE_CALIB, a.focus) if m in a.inputs.param_methods]
        figs["fig6_param_densities"] = plots.parameter_densities(
            a.inputs.params, a.inputs.koeppen, shown, edges=a.edges)
    if a.equifinality is not None:
        figs["fig7_nse_vs_param_diff"] = plots.nse_vs_param_diff(a.equifinality)
    if not a.skill_calib.empty:
        figs["param_skill_calib"] = plots.parameter_skill_heatmap(
            a.skill_calib, title="predicted against site-calibrated parameters")
    if a.skill_truth is not None:
        figs["param_distance_truth"] = plots.parameter_skill_heatmap(
            a.skill_truth, value="median |error| / range",
            title="distance to the true parameters")
    if a.worlds is not None:
        figs["twin_worlds"] = plots.twin_comparison(a.worlds)
    return figs


def _provenance(a: Assessment, name: str, extra: Mapping[str, Any] | None = None) -> dict:
    settings = {**a.settings.to_dict(), "methods_found": list(a.inputs.methods),
                "years_assessed": list(a.inputs.years), "focus": a.focus,
                "inputs": provenance_files(a.inputs), **dict(extra or {})}
    return store.make_provenance(f"assess.{name}", settings=settings, seed=a.settings.seed)


def write_assessment(a: Assessment, out: AssessmentFiles | str | Path, *,
                     with_figures: bool = True, formats: Sequence[str] = ("png", "svg"),
                     log: Callable[[str], Any] = lambda *_: None) -> dict[str, list[Path]]:
    """Write every table (parquet + provenance, CSV) and figure (``formats``) to ``out``.

    Returns:
        Table name (``headline`` ...) or ``figures/<name>`` -> the files written for it.
    """
    files = out if isinstance(out, AssessmentFiles) else AssessmentFiles(Path(out))
    out = Path(files.folder)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    t0 = time.perf_counter()
    base = _provenance(a, "tables")
    for name, table in a.tables().items():
        written[name] = store.write_table(table, out, name, {**base, "step": f"assess.{name}"})
    a.timings["write_tables"] = time.perf_counter() - t0
    if with_figures:
        t0 = time.perf_counter()
        fig_dir = files.figures_dir
        fig_dir.mkdir(exist_ok=True)
        for name, fig in figures(a).items():
            written[f"figures/{name}"] = save_figure(fig, fig_dir / name, formats)
            log(f"  figure {name}")
        a.timings["write_figures"] = time.perf_counter() - t0
    record = _provenance(a, "record", {"timings_s": a.timings})
    record["files"] = {p.relative_to(out).as_posix(): store.sha256_file(p)
                       for ps in written.values() for p in ps}
    record["headline"] = a.headline.to_dict(orient="records")
    store.atomic_write_json(files.record, record)
    return written


def run(layout: Layout, settings: AssessSettings | None = None, *, with_figures: bool = True,
        log: Callable[[str], Any] = lambda *_: None) -> tuple[Assessment, dict[str, list[Path]]]:
    """The assessment step (``lue-spie assess``): assess the results folder of ``layout``,
    join the structural-error twin when there is one (and ``settings.twin``), and write every
    table and figure to ``layout.assessment``.

    Returns:
        The assessment and the files written (see :func:`write_assessment`).
    """
    settings = settings or AssessSettings()
    a = assess_results(layout, settings, log=log)
    if settings.twin and has_twin(layout):
        t0 = time.perf_counter()
        log("assessing the structural-error twin")
        a.worlds, a.agreement = assess_worlds(layout, n_groups=settings.n_groups,
                                              seed=settings.seed)
        a.timings["twin"] = time.perf_counter() - t0
    return a, write_assessment(a, layout.assessment, with_figures=with_figures, log=log)

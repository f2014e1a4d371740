"""Figures of the book: every chapter notebook draws through these functions.

Each function takes data (tables, arrays, parameter vectors) and returns a matplotlib
:class:`~matplotlib.figure.Figure`; none reads or writes files, and none fits anything: the
numbers come from the package's computing modules (the model, the data layer, calibration).
Where a figure needs model curves (the sensitivity functions across their drivers) it calls
:mod:`lue_spie.model` for them, so there is one implementation of the equations.

The figures are grouped by chapter in submodules (:mod:`lue_spie.plots.model`,
:mod:`~lue_spie.plots.data`, :mod:`~lue_spie.plots.calibration`,
:mod:`~lue_spie.plots.methods`, :mod:`~lue_spie.plots.spie`, :mod:`~lue_spie.plots.assessment`,
:mod:`~lue_spie.plots.importance`, :mod:`~lue_spie.plots.maps`,
:mod:`~lue_spie.plots.payoff` ...); every public function
is also available here, as ``lue_spie.plots.<name>``.
"""

from lue_spie.plots._style import STYLE, as_vector, save_figure
from lue_spie.plots.assessment import (
    FAMILY_COLORS,
    likelihood,
    method_colors,
    nse_by_type,
    nse_heatmap,
    nse_vs_param_diff,
    parameter_densities,
    parameter_skill_heatmap,
    spatial_scatter,
    spatial_skill,
    twin_comparison,
)
from lue_spie.plots.calibration import (
    convergence,
    edge_hitting,
    nse_distribution,
    obs_vs_calib,
    parameter_recovery,
)
from lue_spie.plots.data import (
    feature_class_sizes,
    qc_overview,
    site_forcing,
    site_overview,
)
from lue_spie.plots.importance import (
    importance_by_class,
    importance_features,
    importance_heatmap,
    partial_dependence_curves,
)
from lue_spie.plots.maps import (
    continent_map,
    dissimilarity_map,
    error_by_distance,
    gpp_error_maps,
    gpp_maps,
    parameter_maps,
)
from lue_spie.plots.methods import (
    fold_composition,
    gpp_by_temperature,
    group_vectors,
    heldout_gpp,
    nse_by_method,
    pmodel_acclimation,
    pooled_vectors,
    predicted_vs_reference,
    recovery_heatmap,
    seasonal_cycles,
    spread_heatmap,
)
from lue_spie.plots.model import (
    lag_effect,
    sensitivity_curves,
    sensitivity_timeseries,
    site_gpp,
)
from lue_spie.plots.payoff import payoff_sweep
from lue_spie.plots.realism import realism_cycles
from lue_spie.plots.spie import spie_flowchart, training_curves

__all__ = [
    "STYLE",
    "spie_flowchart",
    "training_curves",
    "as_vector",
    "save_figure",
    "realism_cycles",
    "payoff_sweep",
    "sensitivity_curves",
    "lag_effect",
    "site_gpp",
    "sensitivity_timeseries",
    "site_overview",
    "site_forcing",
    "qc_overview",
    "feature_class_sizes",
    "convergence",
    "obs_vs_calib",
    "nse_distribution",
    "edge_hitting",
    "parameter_recovery",
    "FAMILY_COLORS",
    "method_colors",
    "nse_heatmap",
    "spatial_skill",
    "spatial_scatter",
    "nse_by_type",
    "likelihood",
    "parameter_densities",
    "nse_vs_param_diff",
    "parameter_skill_heatmap",
    "twin_comparison",
    "fold_composition",
    "seasonal_cycles",
    "predicted_vs_reference",
    "recovery_heatmap",
    "spread_heatmap",
    "heldout_gpp",
    "nse_by_method",
    "pooled_vectors",
    "group_vectors",
    "pmodel_acclimation",
    "gpp_by_temperature",
    "importance_by_class",
    "importance_features",
    "importance_heatmap",
    "partial_dependence_curves",
    "continent_map",
    "parameter_maps",
    "gpp_maps",
    "gpp_error_maps",
    "dissimilarity_map",
    "error_by_distance",
]

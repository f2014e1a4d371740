"""Feature importance of SPIE's networks (paper section 2.4): SHAP, LRP and partial
dependence, normalised, combined and aggregated by feature class, checked against the true
drivers on the virtual FLUXNET.

The modules, one job each:

- :mod:`~lue_spie.importance.settings`: :class:`ImportanceSettings` and the names of the
  methods, the overall rows and the class statistics;
- :mod:`~lue_spie.importance.attribution`: SHAP, LRP and PD of one network
  (:func:`explain_fold`);
- :mod:`~lue_spie.importance.folds`: one fold of the SPIE networks through the attributions,
  as rows of the long tables (and :func:`shap_example` for the chapter);
- :mod:`~lue_spie.importance.aggregate`: normalising, averaging and aggregating by class;
- :mod:`~lue_spie.importance.networks`: finding and loading the SPIE networks of a results
  folder;
- :mod:`~lue_spie.importance.truth`: the rankings against the generator's true drivers;
- :mod:`~lue_spie.importance.step`: :func:`feature_importance`, :func:`run` and
  :func:`write_importance` (the ``lue-spie importance`` step) and the names of what it writes;
- :mod:`~lue_spie.importance.cli`: the ``lue-spie importance`` command.
"""

from lue_spie.importance.aggregate import class_importance, method_agreement, normalise
from lue_spie.importance.attribution import (
    FoldExplanation,
    NetworkRegressor,
    PDResult,
    ShapResult,
    check_design,
    explain_fold,
    lrp_attributions,
    pd_importance,
    shap_attributions,
)
from lue_spie.importance.folds import shap_example
from lue_spie.importance.networks import describe_networks, networks_dir, spie_networks
from lue_spie.importance.settings import ALL, CLASS_STATS, COMBINED, METHODS, ImportanceSettings
from lue_spie.importance.step import (
    ImportanceResult,
    feature_importance,
    run,
    write_importance,
)
from lue_spie.importance.truth import (
    DriverSet,
    driver_ranks,
    driver_recovery,
    true_drivers,
    truth_correlation,
)

__all__ = [
    "METHODS",
    "COMBINED",
    "ALL",
    "CLASS_STATS",
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
    "run",
    "write_importance",
]

"""Parameter extrapolation under ten-fold cross-validation (paper section 2.2).

- :mod:`~lue_spie.extrapolate.units`: one unit of work (a method on one or more folds),
  written atomically and skipped on a rerun when its key matches;
- :mod:`~lue_spie.extrapolate.runner`: the whole comparison (:func:`run_extrapolation`);
- :mod:`~lue_spie.extrapolate.cli`: ``lue-spie extrapolate``.
"""

from lue_spie.extrapolate.runner import (
    CALIBRATION_FILE,
    ExtrapolationResult,
    ExtrapolationSettings,
    plan_units,
    read_method_results,
    run_extrapolation,
)
from lue_spie.extrapolate.units import UnitSpec, execute_unit, unit_done, unit_paths

__all__ = [
    "CALIBRATION_FILE",
    "ExtrapolationResult",
    "ExtrapolationSettings",
    "UnitSpec",
    "execute_unit",
    "plan_units",
    "read_method_results",
    "run_extrapolation",
    "unit_done",
    "unit_paths",
]

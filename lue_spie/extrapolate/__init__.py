"""Parameter extrapolation under ten-fold cross-validation (paper section 2.2).

- :mod:`~lue_spie.extrapolate.settings`: :class:`ExtrapolationSettings`;
- :mod:`~lue_spie.extrapolate.cv`: the seeded ten-fold split over sites;
- :mod:`~lue_spie.extrapolate.units`: one unit of work (a method on one or more folds),
  written atomically and skipped on a rerun when its key matches;
- :mod:`~lue_spie.extrapolate.runner`: planning, running and gathering the units;
- :mod:`~lue_spie.extrapolate.step`: :func:`run`, the whole comparison for a results folder;
- :mod:`~lue_spie.extrapolate.views`: read-only views of the results for the method chapters;
- :mod:`~lue_spie.extrapolate.cli`: ``lue-spie extrapolate``.
"""

from lue_spie.extrapolate.runner import plan_units
from lue_spie.extrapolate.settings import ExtrapolationSettings
from lue_spie.extrapolate.step import ExtrapolationResult, read_method_results, run
from lue_spie.extrapolate.units import UnitSpec, execute_unit, unit_done, unit_paths

__all__ = [
    "ExtrapolationResult",
    "ExtrapolationSettings",
    "UnitSpec",
    "execute_unit",
    "plan_units",
    "read_method_results",
    "run",
    "unit_done",
    "unit_paths",
]

"""Site calibration of the LUE model with CMA-ES, batched over sites and population.

The package has three parts (paper section 2.1.1; SPEC section 2):

- :mod:`~lue_spie.calibrate.settings`: :class:`CalibrationSettings`, the one settings object;
- :mod:`~lue_spie.calibrate.engine`: the batched ask / evaluate / tell loop with checkpoints;
- :mod:`~lue_spie.calibrate.api`: :func:`calibrate_sites`, :func:`calibrate_pooled` (OPT-All,
  OPT-PFT), the results files and :func:`run_site_calibration`, the step shared by the
  command line (:mod:`~lue_spie.calibrate.cli`, ``lue-spie calibrate``) and the book.

Evaluating given parameter vectors (any method's predictions) lives in
:mod:`lue_spie.evaluate`.
"""

from lue_spie.calibrate.api import (
    CalibrationResult,
    ConvergenceRecorder,
    calibrate_pooled,
    calibrate_sites,
    run_site_calibration,
    skip_reasons,
    write_results,
)
from lue_spie.calibrate.cli import register_cli
from lue_spie.calibrate.engine import (
    CalibrationInterrupted,
    CheckpointMismatch,
    Engine,
    edge_flags,
)
from lue_spie.calibrate.settings import EDGE_TOLERANCE, CalibrationSettings

__all__ = [
    "CalibrationSettings",
    "CalibrationResult",
    "CalibrationInterrupted",
    "CheckpointMismatch",
    "ConvergenceRecorder",
    "Engine",
    "EDGE_TOLERANCE",
    "calibrate_sites",
    "calibrate_pooled",
    "edge_flags",
    "run_site_calibration",
    "skip_reasons",
    "write_results",
    "register_cli",
]

"""Site calibration of the LUE model with CMA-ES, batched over sites and population
(paper section 2.1.1; SPEC section 2).

- :mod:`~lue_spie.calibrate.settings`: :class:`CalibrationSettings`, the one settings object;
- :mod:`~lue_spie.calibrate.engine`: the batched ask / evaluate / tell loop with checkpoints;
- :mod:`~lue_spie.calibrate.search`: :func:`calibrate_sites` (one search per site) and
  :func:`calibrate_pooled` (one per group of sites: OPT-All, OPT-PFT);
- :mod:`~lue_spie.calibrate.chunks`: chunks of sites as units on a Dask cluster;
- :mod:`~lue_spie.calibrate.step`: :func:`run`, the step (a dataset folder in, a calibration
  out) shared by ``lue-spie calibrate`` (:mod:`~lue_spie.calibrate.cli`), the book and the
  structural-error twin.

Evaluating given parameter vectors (any method's predictions) lives in
:mod:`lue_spie.evaluate`.
"""

from lue_spie.calibrate.engine import (
    CalibrationInterrupted,
    CheckpointMismatch,
    Engine,
)
from lue_spie.calibrate.search import (
    CalibrationResult,
    ConvergenceRecorder,
    calibrate_pooled,
    calibrate_sites,
    skip_reasons,
)
from lue_spie.calibrate.settings import CalibrationSettings
from lue_spie.calibrate.step import run, write_results

__all__ = [
    "CalibrationSettings",
    "CalibrationResult",
    "CalibrationInterrupted",
    "CheckpointMismatch",
    "ConvergenceRecorder",
    "Engine",
    "calibrate_sites",
    "calibrate_pooled",
    "run",
    "skip_reasons",
    "write_results",
]

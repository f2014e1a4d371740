"""When does SPIE pay off: a sweep over two dials of the virtual world.

:mod:`~lue_spie.payoff.points` runs one world through the pipeline and scores it (also the
dial-setting procedure's building block), :mod:`~lue_spie.payoff.settings` holds the grid,
:mod:`~lue_spie.payoff.step` runs every point as a unit of the executor and gathers the
table and the figure, :mod:`~lue_spie.payoff.cli` is ``lue-spie payoff``.
"""

from lue_spie.payoff.points import PointSpec, run_point, score_point
from lue_spie.payoff.settings import PayoffSettings, SweepPoint
from lue_spie.payoff.step import PayoffResult, publish, read_published, run, sweep_table

__all__ = ["PayoffSettings", "SweepPoint", "PointSpec", "PayoffResult", "run", "run_point",
           "score_point", "sweep_table", "publish", "read_published"]

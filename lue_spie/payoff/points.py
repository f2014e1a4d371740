"""One world through the pipeline: generate, calibrate, extrapolate, score.

A *point* is one :class:`~lue_spie.data.virtual.worlds.World` (a set of dial values) run
through the steps every chapter uses, in a results folder of its own (:class:`Layout`:
``data/``, ``calibration/``, ``extrapolation/``): the virtual FLUXNET is generated
(:func:`lue_spie.data.virtual.generate`), calibrated site by site
(:func:`lue_spie.calibrate.run`) and the chosen methods are run under the cross-validation
(:func:`lue_spie.extrapolate.run`). Each step keeps what a former run finished, so a point
resumes where it stopped.

:func:`score_point` then reads what the point produced and returns one row per method: the
share of held-out sites with a positive daily NSE and the median daily NSE, beside the same
numbers of the true parameters, of the world's noise ceiling (the noise-free observed signal,
its persistent biases included, against the observations: what no model can beat out of
sample) and of site calibration (in sample). It reads only the methods it is asked for: the
procedure that sets the ``paper`` world (``benchmarks/set_paper_world.py``) scores the ten
parameter baselines and never SPIE, whose results it must not see.

The pay-off sweep (:mod:`lue_spie.payoff.step`) runs many points as units of an
:class:`~lue_spie.execution.Executor`; the dial-setting script runs one point per try.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lue_spie import calibrate, extrapolate, store
from lue_spie.calibrate import CalibrationSettings
from lue_spie.data.io import load_dataset
from lue_spie.data.virtual import generate
from lue_spie.data.virtual.worlds import World
from lue_spie.evaluate import evaluate_params
from lue_spie.execution import ExecutionSettings
from lue_spie.extrapolate import ExtrapolationSettings  # noqa: TC001 (a dataclass field)
from lue_spie.layout import Layout

__all__ = ["TRUTH", "SITE_CALIB", "NOISE_CEILING", "PointSpec", "run_point", "score_point",
           "SCORE_COLUMNS"]

#: Row label of the true parameters in a point's scores.
TRUTH = "truth"
#: Row label of the world's noise ceiling (``truth.json``: the noise-free observed signal
#: against GPP_obs, biases included).
NOISE_CEILING = "noise ceiling"
#: Row label of site calibration (in sample) in a point's scores.
SITE_CALIB = "site-calib"
#: Columns of :func:`score_point`'s table.
SCORE_COLUMNS = ("method", "n_sites", "share_positive", "median_nse")


@dataclass(frozen=True)
class PointSpec:
    """What one point runs.

    Attributes:
        world: The world's dials.
        n_sites: Sites of the virtual FLUXNET.
        n_years: Years per site.
        seed: Seed of the data, the calibration, the split and the methods.
        calibration: The site calibration's CMA-ES settings.
        extrapolation: The methods and their hyperparameters (its ``seed`` is replaced by
            ``seed``).
    """

    world: World
    n_sites: int
    n_years: int
    seed: int
    calibration: CalibrationSettings
    extrapolation: ExtrapolationSettings

    def methods(self) -> list[str]:
        """The methods the point runs."""
        return self.extrapolation.method_names()


def _data_matches(layout: Layout, spec: PointSpec) -> bool:
    """Whether ``layout.data`` holds the virtual FLUXNET of this point (by its truth.json)."""
    path = layout.data.truth_meta
    if not (path.is_file() and layout.data.site_day.is_file() and layout.data.sites.is_file()):
        return False
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return (meta.get("seed"), meta.get("n_sites"), meta.get("n_years"),
            meta.get("difficulty")) == (spec.seed, spec.n_sites, spec.n_years,
                                        spec.world.to_dict())


def run_point(folder: str | Path, spec: PointSpec, *,
              execution: ExecutionSettings | None = None,
              log: Callable[[str], Any] = print) -> Layout:
    """Generate, calibrate and extrapolate one point in ``folder`` (resumable).

    Args:
        folder: The point's results folder.
        spec: What to run.
        execution: Where the calibration's and the methods' units run (default: in this
            process).
        log: Where progress lines go.

    Returns:
        The point's results folder as a :class:`Layout`.
    """
    layout = Layout(Path(folder))
    if not _data_matches(layout, spec):
        generate(spec.n_sites, spec.n_years, spec.seed, layout.data.folder, world=spec.world)
    settings = spec.calibration.replace(seed=spec.seed)
    calibrate.run(layout, settings, execution, restart_on_mismatch=True, log=log)
    ex = dataclasses.replace(spec.extrapolation, seed=spec.seed)
    extrapolate.run(layout, ex, execution, progress=False, log=log)
    return layout


def _row(method: str, nse: np.ndarray) -> dict[str, Any]:
    nse = np.asarray(nse, dtype=float)
    nse = nse[np.isfinite(nse)]
    return {"method": method, "n_sites": int(nse.size),
            "share_positive": float((nse > 0).mean()) if nse.size else float("nan"),
            "median_nse": float(np.median(nse)) if nse.size else float("nan")}


def score_point(layout: Layout, methods: Sequence[str]) -> pd.DataFrame:
    """Daily-NSE skill of the point's true parameters, site calibration and ``methods``.

    Reads the dataset's truth, the calibration table and the extrapolation summary, and of
    the summary only the rows of ``methods``.

    Returns:
        One row per :data:`TRUTH`, :data:`NOISE_CEILING` (when the dataset records it),
        :data:`SITE_CALIB` and each of ``methods`` (columns :data:`SCORE_COLUMNS`).

    Raises:
        ValueError: when a method has no rows in the summary.
    """
    dataset = load_dataset(layout.data.folder)
    if dataset.truth is None:
        raise ValueError(f"{layout.data.folder}: no true parameters (not a virtual FLUXNET)")
    rows = [_row(TRUTH, evaluate_params(dataset, dataset.truth)["nse"].to_numpy())]
    ceiling = (dataset.truth_meta or {}).get("world", {}).get("noise_ceiling")
    if ceiling:
        rows.append(_row(NOISE_CEILING, np.array([np.nan if v is None else v
                                                  for v in ceiling["nse"]], dtype=float)))
    cal = store.read_parquet(layout.calibration.table)
    rows.append(_row(SITE_CALIB, cal.loc[cal["status"] == "ok", "nse"].to_numpy()))
    summary = store.read_parquet(layout.extrapolation.summary)
    for m in methods:
        nse = summary.loc[summary["method"] == m, "nse"].to_numpy()
        if nse.size == 0:
            raise ValueError(f"{layout.extrapolation.summary}: no rows of method {m!r}")
        rows.append(_row(m, nse))
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))

"""CMA-ES searches over parameter vectors: one per site, or one per group of sites.

- :func:`calibrate_sites`: one CMA-ES per site (SPEC section 2): the ``site-calib`` reference;
- :func:`calibrate_pooled`: one vector per group of sites, the mean of the sites' costs
  (OPT-All, OPT-PFT; SPEC section 3);
- :class:`ConvergenceRecorder`: a callback that records each search's best cost per
  generation.

Every function takes a :class:`~lue_spie.calibrate.settings.CalibrationSettings` object; run
control (checkpoint folder, progress bar, callback) stays separate from the settings because
it does not change the result. The step that runs a dataset folder into a results folder is
:mod:`lue_spie.calibrate.step`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lue_spie import store
from lue_spie.calibrate.engine import Engine, run_units
from lue_spie.calibrate.settings import CalibrationSettings
from lue_spie.data.io import ForcingBatch, as_forcing_batch
from lue_spie.metrics import MIN_POINTS
from lue_spie.model import FORCING_KEYS
from lue_spie.parameter_skill import edge_flags_scaled
from lue_spie.params import PARAMETERS, from_scaled

__all__ = [
    "CalibrationResult",
    "calibrate_sites",
    "calibrate_pooled",
    "skip_reasons",
    "ConvergenceRecorder",
]


@dataclasses.dataclass
class CalibrationResult:
    """Result of a calibration.

    Attributes:
        table: One row per site (site calibration) or per site of each group (pooled): site,
            group (pooled only), koeppen, status (``"ok"`` or ``"skipped: reason"``), the 13
            parameters in physical units, cost, nse, C_ideal, C_nonideal, n_good_days,
            generations, evaluations, restarts, stop_reason and ``edge_<param>`` flags.
        settings: The settings used (device resolved).
        data_checksum: sha256 of the forcing, observations and good-day mask used.
        elapsed_s: Wall time of the optimisation in this process (excludes resumed parts).
        generations: Generations run in total (the longest unit).
        n_evaluations: Candidate evaluations in total (sum over units).
        units: For pooled runs, one row per group with its pooled cost and vector.
    """

    table: pd.DataFrame
    settings: CalibrationSettings
    data_checksum: str
    elapsed_s: float
    generations: int
    n_evaluations: int
    units: pd.DataFrame | None = None

    def params(self) -> np.ndarray:
        """Calibrated physical parameters, shape (rows, 13) (NaN for skipped sites)."""
        return self.table[list(PARAMETERS)].to_numpy(dtype=np.float64)


def skip_reasons(batch: ForcingBatch, min_good: int) -> list[str | None]:
    """Why each site cannot be calibrated (None when it can)."""
    good = batch.good & torch.isfinite(batch.GPP_obs)
    n_good = good.sum(-1).cpu().numpy()
    obs = torch.where(good, batch.GPP_obs, torch.zeros_like(batch.GPP_obs)).double()
    n = good.sum(-1).clamp_min(1)
    mean = obs.sum(-1) / n
    var = (torch.where(good, obs - mean[:, None], torch.zeros_like(obs)) ** 2).sum(-1)
    bad_forcing = torch.zeros(batch.n_sites, dtype=torch.bool, device=batch.good.device)
    for k in FORCING_KEYS:
        bad_forcing |= ~torch.isfinite(batch.forcing[k]).all(-1)
    reasons: list[str | None] = []
    for i in range(batch.n_sites):
        if n_good[i] < min_good:
            reasons.append(f"skipped: {int(n_good[i])} good-quality days with GPP_obs "
                           f"(need at least {min_good})")
        elif float(var[i]) == 0.0:
            reasons.append("skipped: GPP_obs is constant on the good-quality days (NSE "
                           "undefined)")
        elif bool(bad_forcing[i]):
            reasons.append("skipped: forcing has non-finite values after gap filling")
        else:
            reasons.append(None)
    return reasons


def _batch(data: Any, settings: CalibrationSettings, *, sites: Sequence[str] | None,
           years: Sequence[int] | None,
           koeppen: Sequence[str] | Mapping[str, str] | None) -> ForcingBatch:
    batch = as_forcing_batch(data, sites=sites, years=years, koeppen=koeppen,
                             dtype=settings.torch_dtype, device=settings.device)
    batch.require_types()
    return batch


def _n_good(batch: ForcingBatch) -> np.ndarray:
    return (batch.good & torch.isfinite(batch.GPP_obs)).sum(-1).cpu().numpy()


def calibrate_sites(
    data: Any,
    settings: CalibrationSettings | None = None,
    *,
    sites: Sequence[str] | None = None,
    years: Sequence[int] | None = None,
    koeppen: Sequence[str] | Mapping[str, str] | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 10,
    progress: bool = False,
    stop_after_gen: int | None = None,
    callback: Callable[[int, Engine], None] | None = None,
) -> CalibrationResult:
    """Calibrate the LUE model at each site with CMA-ES (SPEC section 2).

    Args:
        data: A Dataset, or a ForcingBatch(-like) object (see
            :func:`lue_spie.data.io.as_forcing_batch`).
        settings: The CMA-ES settings (default: :class:`CalibrationSettings` with its defaults).
        sites: Site ids to calibrate (default: all, in the data's order).
        years: Years to use (Dataset input only; default all).
        koeppen: Koeppen types for a batch without them.
        checkpoint_dir: Folder for ``checkpoint.pkl``; resumed from when present and
            matching, refused (:class:`CheckpointMismatch`) when not.
        checkpoint_every: Checkpoint every this many generations (0: only at the end).
        progress: Report progress (a bar on a terminal, plain lines elsewhere).
        stop_after_gen: Test hook: checkpoint and raise ``CalibrationInterrupted`` after
            this generation.
        callback: Called as ``callback(generation, engine)`` after each generation; read
            ``engine.progress()`` (one record per site: generations, best cost, sigma ...).

    Returns:
        A :class:`CalibrationResult`; skipped sites (fewer than 4 good days, constant
        observations) have status ``"skipped: reason"`` and NaN parameters.
    """
    s = (settings or CalibrationSettings()).resolved()
    b = _batch(data, s, sites=sites, years=years, koeppen=koeppen)
    reasons = skip_reasons(b, MIN_POINTS)
    unit_defs = [(site, [i]) for i, site in enumerate(b.sites) if reasons[i] is None]
    engine, checksum, elapsed = run_units(
        b, unit_defs, s, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
        progress=progress, stop_after_gen=stop_after_gen, callback=callback,
        desc="calibrate sites")
    return CalibrationResult(table=_site_table(engine, b, reasons), settings=s,
                             data_checksum=checksum, elapsed_s=elapsed,
                             generations=engine.gen, n_evaluations=engine.n_evaluations)


def _site_table(engine: Engine, b: ForcingBatch, reasons: list[str | None]) -> pd.DataFrame:
    rows, phys, owners = engine.final_rows()
    final = engine.evaluate_rows(rows, phys) if rows else {}
    by_site = {r: j for j, r in enumerate(rows)}
    n_good = _n_good(b)
    records = []
    for i, site in enumerate(b.sites):
        rec: dict[str, Any] = {"site": site, "koeppen": b.koeppen[i]}
        if reasons[i] is not None:
            rec.update({"status": reasons[i], **{p: np.nan for p in PARAMETERS},
                        "cost": np.nan, "nse": np.nan, "C_ideal": np.nan,
                        "C_nonideal": np.nan, "n_good_days": int(n_good[i]), "generations": 0,
                        "evaluations": 0, "restarts": 0, "stop_reason": "",
                        **{f"edge_{p}": False for p in PARAMETERS}})
        else:
            j = by_site[i]
            u = owners[j]
            edge = edge_flags_scaled(u.best_x, engine.site_masks[i])
            rec.update({"status": "ok", **dict(zip(PARAMETERS, phys[j, 0].tolist(),
                                                   strict=True)),
                        "cost": float(final["cost"][j, 0]), "nse": float(final["nse"][j, 0]),
                        "C_ideal": float(final["C_ideal"][j, 0]),
                        "C_nonideal": float(final["C_nonideal"][j, 0]),
                        "n_good_days": int(n_good[i]), "generations": u.generations,
                        "evaluations": u.evaluations, "restarts": u.restarts,
                        "stop_reason": u.stop_reason,
                        **{f"edge_{p}": bool(e) for p, e in zip(PARAMETERS, edge,
                                                                 strict=True)}})
        records.append(rec)
    return pd.DataFrame.from_records(records)


def calibrate_pooled(
    data: Any,
    site_groups: Mapping[str, Sequence[str]],
    settings: CalibrationSettings | None = None,
    *,
    years: Sequence[int] | None = None,
    koeppen: Sequence[str] | Mapping[str, str] | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 10,
    progress: bool = False,
    stop_after_gen: int | None = None,
    callback: Callable[[int, Engine], None] | None = None,
) -> CalibrationResult:
    """One parameter vector per group of sites (OPT-All, OPT-PFT; SPEC section 3).

    The cost of a vector is the mean over the group's sites of the site calibration cost
    (:func:`lue_spie.cost.calibration_cost`). Sites that cannot be calibrated (fewer than 4
    good days, constant observations) are left out of their group and reported as skipped.
    A lag parameter is searched when it is free at any site of the group and applied only
    at the sites where it is free. All groups are optimised side by side in one batch.

    Args:
        data: As for :func:`calibrate_sites`.
        site_groups: Group name -> site ids (a site may appear in several groups).
        settings: The CMA-ES settings; each group's ES is seeded from ``(seed, group)``.
        years, koeppen, checkpoint_dir, checkpoint_every, progress, stop_after_gen, callback:
            As for :func:`calibrate_sites`.

    Returns:
        A :class:`CalibrationResult` whose ``table`` has one row per (group, site) with the
        group's vector and that site's cost terms, and whose ``units`` has one row per group
        with the pooled cost, the mean site NSE, the vector and the optimiser counters.
    """
    if not site_groups:
        raise ValueError("site_groups is empty: give at least one group of sites")
    all_sites: list[str] = []
    for g, members in site_groups.items():
        if not members:
            raise ValueError(f"site group {g!r} is empty")
        all_sites.extend(m for m in members if m not in all_sites)
    s = (settings or CalibrationSettings()).resolved()
    b = _batch(data, s, sites=all_sites, years=years, koeppen=koeppen)
    reasons = skip_reasons(b, MIN_POINTS)
    pos = {site: i for i, site in enumerate(b.sites)}
    unit_defs = []
    for g, members in site_groups.items():
        rows = [pos[m] for m in members if reasons[pos[m]] is None]
        if not rows:
            raise ValueError(f"site group {g!r}: no site with enough good-quality days")
        unit_defs.append((str(g), rows))
    engine, checksum, elapsed = run_units(
        b, unit_defs, s, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
        progress=progress, stop_after_gen=stop_after_gen, callback=callback,
        desc="calibrate pooled")
    rows, phys, _ = engine.final_rows()
    final = engine.evaluate_rows(rows, phys)
    n_good = _n_good(b)
    records, unit_records = [], []
    j = 0
    for u in engine.units:
        edge = edge_flags_scaled(u.best_x, u.free)
        lo, hi = j, j + len(u.rows)
        unit_records.append({
            "group": u.id, "n_sites": len(u.rows), "cost": u.best_f,
            "nse_mean": float(np.nanmean(final["nse"][lo:hi, 0])),
            **dict(zip(PARAMETERS, from_scaled(np.where(u.free, u.best_x, 0.0)).tolist(),
                       strict=True)),
            "generations": u.generations, "evaluations": u.evaluations,
            "restarts": u.restarts, "stop_reason": u.stop_reason,
            **{f"edge_{p}": bool(e) for p, e in zip(PARAMETERS, edge, strict=True)}})
        for r in u.rows:
            records.append({
                "group": u.id, "site": b.sites[r], "koeppen": b.koeppen[r], "status": "ok",
                **dict(zip(PARAMETERS, phys[j, 0].tolist(), strict=True)),
                "cost": float(final["cost"][j, 0]), "nse": float(final["nse"][j, 0]),
                "C_ideal": float(final["C_ideal"][j, 0]),
                "C_nonideal": float(final["C_nonideal"][j, 0]),
                "n_good_days": int(n_good[r]), "generations": u.generations,
                "evaluations": u.evaluations, "restarts": u.restarts,
                "stop_reason": u.stop_reason,
                **{f"edge_{p}": bool(e) for p, e in zip(PARAMETERS, edge, strict=True)}})
            j += 1
    for g, members in site_groups.items():
        for m in members:
            if reasons[pos[m]] is not None:
                records.append({"group": str(g), "site": m, "koeppen": b.koeppen[pos[m]],
                                "status": reasons[pos[m]], "n_good_days": int(n_good[pos[m]])})
    return CalibrationResult(table=pd.DataFrame.from_records(records), settings=s,
                             data_checksum=checksum, elapsed_s=elapsed,
                             generations=engine.gen, n_evaluations=engine.n_evaluations,
                             units=pd.DataFrame.from_records(unit_records))


class ConvergenceRecorder:
    """A ``calibrate_sites`` callback that records each site's best cost per generation.

    Rows are (``site``, ``generation``, ``best_cost``, ``sigma``, ``popsize``), one per site and
    generation of that site's CMA-ES (restarts included). The record is written atomically
    to ``path`` every ``every`` generations and by :meth:`write`; a run resumed from a
    checkpoint appends to the record found at ``path``, so an interrupted and resumed run
    keeps its whole history.
    """

    COLUMNS = ("site", "generation", "best_cost", "sigma", "popsize")

    def __init__(self, path: str | os.PathLike, *, every: int = 10) -> None:
        self.path = Path(path)
        self.every = every
        self.rows: list[dict[str, Any]] = []
        if self.path.is_file():
            self.rows = pd.read_parquet(self.path).to_dict("records")
        self._seen = {(r["site"], int(r["generation"])) for r in self.rows}

    def __call__(self, generation: int, engine: Engine) -> None:
        for u in engine.progress():
            key = (u["id"], u["generations"])
            if key in self._seen or u["generations"] == 0:
                continue
            self._seen.add(key)
            self.rows.append({"site": u["id"], "generation": u["generations"],
                              "best_cost": u["best_cost"], "sigma": u["sigma"],
                              "popsize": u["popsize"]})
        if self.every and generation % self.every == 0:
            self.write()

    def frame(self) -> pd.DataFrame:
        """The record as a DataFrame sorted by site and generation."""
        df = pd.DataFrame(self.rows, columns=list(self.COLUMNS))
        return df.sort_values(["site", "generation"], kind="stable").reset_index(drop=True)

    def write(self) -> Path:
        """Write the record (atomically) and return its path."""
        return store.write_parquet(self.frame(), self.path,
                                   store.make_provenance("calibrate.convergence"))



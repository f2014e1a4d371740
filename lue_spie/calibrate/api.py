"""Site calibration and pooled optimisation: the public API over the CMA-ES engine.

- :func:`calibrate_sites`: one CMA-ES per site (SPEC section 2): the ``site-calib`` reference;
- :func:`calibrate_pooled`: one vector per group of sites, the mean of the sites' costs
  (OPT-All, OPT-PFT; SPEC section 3);
- :func:`write_results`: the results files (atomically, with provenance);
- :func:`run_site_calibration`: the one calibration *step* (data folder in, results folder
  out, resumable, with a convergence record) that the command line (``lue-spie calibrate``)
  and the book's calibration chapter both run.

Every function takes a :class:`~lue_spie.calibrate.settings.CalibrationSettings` object; run
control (checkpoint folder, progress bar, callback) stays separate from the settings because
it does not change the result.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lue_spie import store
from lue_spie.calibrate.engine import (
    CheckpointMismatch,
    Engine,
    edge_flags,
    run_units,
)
from lue_spie.calibrate.settings import CalibrationSettings
from lue_spie.data.io import SITE_DAY_FILE, SITES_FILE, ForcingBatch, as_forcing_batch
from lue_spie.execution import ExecutionSettings
from lue_spie.model import FORCING_KEYS
from lue_spie.params import PARAMETERS, from_scaled

__all__ = [
    "CalibrationResult",
    "calibrate_sites",
    "calibrate_pooled",
    "skip_reasons",
    "write_results",
    "ConvergenceRecorder",
    "run_site_calibration",
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
        settings: The CMA-ES settings (default :class:`CalibrationSettings()`).
        sites: Site ids to calibrate (default: all, in the data's order).
        years: Years to use (Dataset input only; default all).
        koeppen: Koeppen types for a batch without them.
        checkpoint_dir: Folder for ``checkpoint.pkl``; resumed from when present and
            matching, refused (:class:`CheckpointMismatch`) when not.
        checkpoint_every: Checkpoint every this many generations (0: only at the end).
        progress: Show a tqdm progress bar.
        stop_after_gen: Test hook: checkpoint and raise ``CalibrationInterrupted`` after
            this generation.
        callback: Called as ``callback(generation, engine)`` after each generation; read
            ``engine.progress()`` (one record per site: generations, best cost, sigma ...).

    Returns:
        A :class:`CalibrationResult`; skipped sites (fewer than 4 good days, constant
        observations) have status ``"skipped: reason"`` and NaN parameters.
    """
    from lue_spie.metrics import MIN_POINTS

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
            edge = edge_flags(u.best_x, engine.site_masks[i])
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
        Other arguments: as for :func:`calibrate_sites`.

    Returns:
        A :class:`CalibrationResult` whose ``table`` has one row per (group, site) with the
        group's vector and that site's cost terms, and whose ``units`` has one row per group
        with the pooled cost, the mean site NSE, the vector and the optimiser counters.
    """
    from lue_spie.metrics import MIN_POINTS

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
        edge = edge_flags(u.best_x, u.free)
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


def write_results(
    result: CalibrationResult,
    out_dir: str | Path,
    *,
    inputs: Mapping[str, str | Path] | None = None,
    gpp_calib: pd.DataFrame | None = None,
    extra_settings: Mapping[str, Any] | None = None,
    name: str = "calibration",
) -> dict[str, Path]:
    """Write a calibration atomically: ``NAME.parquet`` (+ ``NAME_units.parquet`` for pooled
    runs, + ``gpp_calib.parquet`` when given), each with its provenance record.

    The provenance holds the settings, the seed, the data checksum, the inputs' sha256,
    package versions and the git commit (:func:`lue_spie.store.make_provenance`).
    """
    out_dir = Path(out_dir)
    settings = {**result.settings.to_dict(), "data_checksum": result.data_checksum,
                "generations": result.generations, "n_evaluations": result.n_evaluations,
                "elapsed_s": result.elapsed_s, **dict(extra_settings or {})}
    prov = store.make_provenance("calibrate", settings=settings, inputs=inputs,
                                 seed=result.settings.seed)
    paths = {"table": store.write_parquet(result.table, out_dir / f"{name}.parquet", prov)}
    if result.units is not None:
        paths["units"] = store.write_parquet(result.units, out_dir / f"{name}_units.parquet",
                                             prov)
    if gpp_calib is not None:
        paths["gpp_calib"] = store.write_parquet(gpp_calib, out_dir / "gpp_calib.parquet",
                                                 prov)
    return paths


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


def run_site_calibration(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: CalibrationSettings | None = None,
    *,
    sites: Sequence[str] | None = None,
    years: Sequence[int] | None = None,
    checkpoint_every: int = 10,
    progress: bool = False,
    restart_on_mismatch: bool = False,
    log: Callable[[str], Any] = print,
    execution: ExecutionSettings | None = None,
    chunk_sites: int | None = None,
) -> dict[str, Path]:
    """The calibration step: calibrate every site of a dataset folder into a results folder.

    The same step serves ``lue-spie calibrate`` and the book's calibration chapter. In this
    process (the default) it runs :func:`calibrate_sites` with a checkpoint in
    ``OUT/checkpoint`` (resumed when the settings and data match) and a
    :class:`ConvergenceRecorder`. On a Dask cluster (``execution`` with workers or a scheduler)
    it calibrates chunks of sites as independent units instead, each written to
    ``OUT/chunks`` (finished chunks are kept by a rerun; see
    :mod:`lue_spie.calibrate.chunks`); the results are identical. Either way it then writes
    ``calibration.parquet``, ``gpp_calib.parquet`` and ``convergence.parquet`` (each with
    provenance) into ``out_dir``.

    A rerun keeps what is finished, whichever way it was run: files of a finished calibration
    with the same settings, sites, years and data files are kept as they are; a finished
    in-process checkpoint is used by a run on a cluster, and chunks begun on a cluster are
    finished by a run in this process.

    Args:
        data_dir: The dataset folder (``site_day.parquet``, ``sites.parquet``).
        out_dir: The results folder.
        settings: CMA-ES settings (default :class:`CalibrationSettings()`).
        sites, years: Selection (default: all).
        checkpoint_every: Generations between checkpoints.
        progress: Show a progress bar.
        restart_on_mismatch: When the checkpoint belongs to other settings or data, set it
            aside with a note and start afresh (the book, where a chapter is rerun with new
            parameters); otherwise raise :class:`CheckpointMismatch` (the command line, where
            the user decides).
        log: Where progress lines go.
        execution: Where the work runs (default: in this process; see
            :class:`~lue_spie.execution.ExecutionSettings`).
        chunk_sites: Sites per unit on a cluster (default
            :data:`~lue_spie.calibrate.chunks.CHUNK_SITES`).

    Returns:
        Name -> path of the files written (``table``, ``gpp_calib``, ``convergence``).
    """
    settings = settings or CalibrationSettings()
    kept = _kept_result(data_dir, out_dir, settings, sites=sites, years=years)
    if kept is not None:
        log(f"kept the finished calibration in {out_dir} (same settings, data and sites)")
        return kept
    common = dict(sites=sites, years=years, checkpoint_every=checkpoint_every,
                  progress=progress, log=log)
    ckpt = Path(out_dir) / "checkpoint"
    # A rerun keeps the work of an earlier run made the other way (the two give the same
    # result): adding --workers to resume a long in-process run must not calibrate again
    # what is finished, and a chunked run can be finished without a cluster.
    if execution is not None and execution.distributed:
        if _finished_checkpoint(ckpt):
            try:
                paths = _run_in_process(data_dir, out_dir, settings,
                                        restart_on_mismatch=False, **common)
                log(f"kept the finished in-process calibration in {ckpt}")
                return paths
            except CheckpointMismatch:
                pass  # of other settings or data: calibrate on the cluster
        return _run_chunked(data_dir, out_dir, settings, restart_on_mismatch=restart_on_mismatch,
                            execution=execution, chunk_sites=chunk_sites, **common)
    if not ckpt.exists() and _chunks_of(Path(out_dir) / "chunks", settings):
        log(f"resuming the chunked calibration in {Path(out_dir) / 'chunks'} in this process")
        return _run_chunked(data_dir, out_dir, settings, restart_on_mismatch=restart_on_mismatch,
                            execution=ExecutionSettings(), chunk_sites=chunk_sites, **common)
    return _run_in_process(data_dir, out_dir, settings, restart_on_mismatch=restart_on_mismatch,
                           **common)


def _run_in_process(data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                    settings: CalibrationSettings, *, sites: Sequence[str] | None,
                    years: Sequence[int] | None, checkpoint_every: int, progress: bool,
                    restart_on_mismatch: bool, log: Callable[[str], Any]) -> dict[str, Path]:
    """:func:`run_site_calibration` in this process: one engine over every site."""
    from lue_spie.data.io import load_dataset

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    dataset = load_dataset(data_dir)
    ckpt = out_dir / "checkpoint"
    conv_path = out_dir / "convergence.parquet"
    sites = None if sites is None else [str(s) for s in sites]
    years = None if years is None else [int(y) for y in years]

    def attempt() -> Any:
        if not ckpt.exists():
            conv_path.unlink(missing_ok=True)
        recorder = ConvergenceRecorder(conv_path)
        result = calibrate_sites(dataset, settings, sites=sites, years=years,
                                 checkpoint_dir=ckpt, checkpoint_every=checkpoint_every,
                                 progress=progress, callback=recorder)
        return result, recorder

    try:
        result, recorder = attempt()
    except CheckpointMismatch:
        if not restart_on_mismatch:
            raise
        log(f"note: the checkpoint in {ckpt} is from a run with other settings or data; "
            "starting afresh")
        shutil.rmtree(ckpt)
        result, recorder = attempt()
    paths = _write_step(dataset, data_dir, out_dir, result, sites=sites, years=years)
    paths["convergence"] = recorder.write()
    _report(result, log)
    return paths


def _kept_result(data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 settings: CalibrationSettings, *, sites: Sequence[str] | None,
                 years: Sequence[int] | None) -> dict[str, Path] | None:
    """The step's files in ``out_dir`` when they hold a finished calibration of these
    settings, sites, years and data files (whichever way it was run), else None.

    Keeping them as they are, rather than writing them again from a checkpoint or chunks,
    keeps their checksums, on which the later steps' finished units depend. The device is not
    compared: a result is one of these settings wherever it was computed.
    """
    out_dir, data_dir = Path(out_dir), Path(data_dir)
    paths = {"table": out_dir / "calibration.parquet", "gpp_calib": out_dir / "gpp_calib.parquet",
             "convergence": out_dir / "convergence.parquet"}
    if not all(p.is_file() for p in paths.values()):
        return None
    try:
        prov = store.read_provenance(paths["table"])
        gpp_prov = store.read_provenance(paths["gpp_calib"])
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    done = prov.get("settings", {})
    want = {k: v for k, v in settings.to_dict().items() if k != "device"}
    want["sites"] = None if sites is None else [str(x) for x in sites]
    want["years"] = None if years is None else [int(y) for y in years]
    if any(done.get(k) != v for k, v in want.items()):
        return None
    if gpp_prov.get("created") != prov.get("created") or gpp_prov.get("settings") != done:
        return None  # the GPP table of another write (an interrupted one)
    for name, path in _inputs(data_dir).items():
        if not path.is_file() or \
                prov.get("inputs", {}).get(name, {}).get("sha256") != store.sha256_file(path):
            return None
    return paths


def _inputs(data_dir: Path) -> dict[str, Path]:
    """The data files a calibration reads, by the names its provenance records them under."""
    return {"site_day": data_dir / SITE_DAY_FILE, "sites": data_dir / SITES_FILE}


def _finished_checkpoint(ckpt: Path) -> bool:
    """Whether ``ckpt`` holds an in-process calibration whose every unit has stopped.

    Whether it belongs to these settings and data is checked when it is resumed.
    """
    path = ckpt / "checkpoint.pkl"
    if not path.is_file():
        return False
    try:
        units = pickle.loads(path.read_bytes())["engine"]["units"]
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError):
        return False
    return bool(units) and all(u.done for u in units)


def _chunks_of(folder: Path, settings: CalibrationSettings) -> bool:
    """Whether ``folder`` holds a chunked calibration begun with these settings (its data
    are checked when it is resumed: :func:`~lue_spie.calibrate.chunks.calibrate_in_chunks`)."""
    from lue_spie.calibrate.chunks import RUN_FILE

    try:
        record = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return record.get("settings") == settings.to_dict()


def _write_step(dataset: Any, data_dir: Path, out_dir: Path, result: CalibrationResult, *,
                sites: list[str] | None, years: list[int] | None,
                execution: str | None = None) -> dict[str, Path]:
    """The step's calibration and GPP_calib tables (the same for both ways of running)."""
    from lue_spie.evaluate import simulate_calibrated

    gpp = simulate_calibrated(dataset, result.table, years=years)
    inputs = _inputs(data_dir)
    extra: dict[str, Any] = {"sites": sites, "years": years}
    if execution is not None:
        extra["execution"] = execution
    return write_results(result, out_dir, inputs=inputs, gpp_calib=gpp, extra_settings=extra)


def _report(result: CalibrationResult, log: Callable[[str], Any]) -> None:
    t = result.table
    ok = t[t["status"] == "ok"]
    log(f"calibrated {len(ok)} of {len(t)} sites in {result.elapsed_s:.1f} s "
        f"({result.generations} generations, {result.n_evaluations} model evaluations)"
        + (f"; median daily NSE {ok['nse'].median():.3f}" if len(ok) else ""))
    for _, row in t[t["status"] != "ok"].iterrows():
        log(f"  {row['site']}: {row['status']}")


def _run_chunked(data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 settings: CalibrationSettings | None, *, sites: Sequence[str] | None,
                 years: Sequence[int] | None, checkpoint_every: int, progress: bool,
                 restart_on_mismatch: bool, log: Callable[[str], Any],
                 execution: ExecutionSettings, chunk_sites: int | None) -> dict[str, Path]:
    """:func:`run_site_calibration` in chunks of sites as units (on a Dask cluster, or in
    this process to finish a chunked run)."""
    from lue_spie.calibrate.chunks import CHUNK_SITES, calibrate_in_chunks
    from lue_spie.data.io import load_dataset
    from lue_spie.execution import Executor

    settings = settings or CalibrationSettings()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    dataset = load_dataset(data_dir)
    sites = None if sites is None else [str(s) for s in sites]
    years = None if years is None else [int(y) for y in years]
    out_dir.mkdir(parents=True, exist_ok=True)
    with Executor(execution, log=log) as ex:
        result, convergence = calibrate_in_chunks(
            dataset, out_dir / "chunks", settings, ex, sites=sites, years=years,
            chunk_sites=chunk_sites or CHUNK_SITES, checkpoint_every=checkpoint_every,
            progress=progress, restart_on_mismatch=restart_on_mismatch, log=log)
    paths = _write_step(dataset, data_dir, out_dir, result, sites=sites, years=years,
                        execution=execution.describe())
    paths["convergence"] = store.write_parquet(convergence, out_dir / "convergence.parquet",
                                               store.make_provenance("calibrate.convergence"))
    _report(result, log)
    return paths

"""Site calibration in chunks of sites, as independent units on a Dask cluster.

The calibration step (:func:`lue_spie.calibrate.step.run`) runs in this process as
one batched CMA-ES over all sites. On a cluster (:mod:`lue_spie.execution`) it is cut into
chunks of sites instead, one unit each. Each site's searches draw from generators seeded from
``(seed, site)`` and the model evaluates every site independently of its batch companions, so a
site's search does not depend on its chunk: the combined tables hold the same parameters,
generations and flags, bit for bit, as those of the in-process run with the same seed, and
costs equal to the last bit or two (the vectorised sums round by the model call's shape;
tested to 1e-12 in float64).

Layout of ``OUT/chunks/`` (``OUT`` is the calibration folder)::

    run.json                        the run's key: settings, data checksum, sites
    <chunk>/checkpoint.pkl          a running chunk's optimiser state (every few generations)
    <chunk>/convergence.parquet     and its convergence record so far
    <chunk>.convergence.parquet     a finished chunk's convergence record
    <chunk>.calibration.parquet     a finished chunk's table (written last: the "done" mark)

``<chunk>`` is a hash of the run key and the chunk's sites. The forcing of all sites is sent to
each worker once; a chunk selects its rows from it (the same daily grid as the in-process run).
A rerun with the same settings and data keeps the sites of finished chunks, resumes running
chunks from their checkpoints, and recombines; a rerun with other settings or data is refused
(:class:`~lue_spie.calibrate.engine.CheckpointMismatch`) unless asked to start afresh.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lue_spie import store
from lue_spie.calibrate.engine import CheckpointMismatch, data_checksum
from lue_spie.calibrate.search import CalibrationResult, ConvergenceRecorder, calibrate_sites
from lue_spie.calibrate.settings import CalibrationSettings
from lue_spie.data.io import Dataset, ForcingBatch, as_forcing_batch
from lue_spie.execution import Executor
from lue_spie.layout import CalibrationFiles

__all__ = ["ChunkTask", "calibrate_in_chunks", "run_chunk", "CHUNK_SITES"]

#: Sites per chunk by default: as many as one model call evaluates (``chunk_rows``), few
#: enough that two workers share 196 sites evenly (25 chunks), many enough that the per-chunk
#: cost (a task, a file, a checkpoint) stays small next to its CMA-ES runs.
CHUNK_SITES = 8
_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class ChunkTask:
    """One chunk of site calibration: what a worker needs besides the shared forcing.

    Attributes:
        chunk_id: Hash of the run key and the sites (names the chunk's files).
        sites: The chunk's sites.
        folder: The chunks folder (absolute).
        settings: The CMA-ES settings (device resolved on the worker).
        run_key: The run's key (recorded in the chunk's provenance).
        checkpoint_every: Generations between the chunk's checkpoints.
        stop_after_gen: Test hook passed to :func:`calibrate_sites`.
    """

    chunk_id: str
    sites: tuple[str, ...]
    folder: str
    settings: CalibrationSettings
    run_key: str
    checkpoint_every: int = 10
    stop_after_gen: int | None = None

    @property
    def work(self) -> Path:
        """The running chunk's folder (checkpoint and partial convergence record)."""
        return CalibrationFiles.chunk_checkpoint_dir_in(self.folder, self.chunk_id)

    def paths(self) -> dict[str, Path]:
        """The finished chunk's two tables."""
        return {"convergence": CalibrationFiles.chunk_convergence_in(self.folder, self.chunk_id),
                "table": CalibrationFiles.chunk_table_in(self.folder, self.chunk_id)}


def run_chunk(task: ChunkTask, batch: ForcingBatch) -> dict[str, Any]:
    """Calibrate one chunk's sites (a unit; runs on a worker or in this process).

    Selects the chunk's rows from the shared ``batch``, runs :func:`calibrate_sites` with a
    checkpoint in the chunk's folder (resumed when there), records the convergence, writes the
    convergence record and then the table atomically, and removes the chunk's folder.

    Returns:
        The chunk's counters: ``chunk``, ``n_sites``, ``elapsed_s``, ``generations``,
        ``n_evaluations``, ``device``.
    """
    work = task.work
    if not CalibrationFiles.checkpoint_in(work).exists():
        shutil.rmtree(work, ignore_errors=True)  # a record without its checkpoint: start over
    recorder = ConvergenceRecorder(CalibrationFiles(work).convergence, every=task.checkpoint_every)
    try:
        result = calibrate_sites(batch, task.settings, sites=list(task.sites),
                                 checkpoint_dir=work, checkpoint_every=task.checkpoint_every,
                                 callback=recorder, stop_after_gen=task.stop_after_gen)
    except BaseException:
        # Stopped (interrupt, test hook, error): the record up to the last generation, which
        # the engine's checkpoint also holds when it was stopped by the hook or an interrupt.
        if recorder.rows:
            recorder.write()
        raise
    counters = {"chunk": task.chunk_id, "n_sites": len(task.sites),
                "elapsed_s": result.elapsed_s, "generations": result.generations,
                "n_evaluations": result.n_evaluations, "device": result.settings.device}
    prov = store.make_provenance("calibrate.chunk", seed=task.settings.seed, settings={
        **result.settings.to_dict(), "run_key": task.run_key, "sites": list(task.sites),
        **counters})
    paths = task.paths()
    store.write_parquet(recorder.frame(), paths["convergence"], prov)
    store.write_parquet(result.table, paths["table"], prov)  # last: the chunk is done
    shutil.rmtree(work, ignore_errors=True)
    return counters


def _run_key(settings: CalibrationSettings, checksum: str) -> str:
    blob = json.dumps({"settings": settings.to_dict(), "data": checksum, "format": _FORMAT},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _chunk_id(run_key: str, sites: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps([run_key, list(sites)]).encode()).hexdigest()[:16]


def _finished(folder: Path, run_key: str) -> dict[str, dict[str, Any]]:
    """Finished chunks of this run: chunk id -> provenance settings (sites, counters)."""
    out = {}
    for p in CalibrationFiles.chunk_tables_in(folder):
        try:
            s = store.read_provenance(p).get("settings", {})
        except (FileNotFoundError, json.JSONDecodeError):
            continue
        if s.get("run_key") == run_key and \
                CalibrationFiles.chunk_convergence_in(folder, str(s.get("chunk"))).is_file():
            out[str(s["chunk"])] = s
    return out


def _prepare_folder(folder: Path, run_key: str, record: dict[str, Any],
                    restart_on_mismatch: bool, log: Callable[[str], Any]) -> None:
    run_file = CalibrationFiles.chunks_record_in(folder)
    if run_file.is_file():
        old = json.loads(run_file.read_text(encoding="utf-8"))
        if old.get("key") != run_key:
            if not restart_on_mismatch:
                raise CheckpointMismatch(
                    f"{folder}: these chunks belong to a run with other settings or data "
                    f"(settings {old.get('settings')}); delete the folder or choose another "
                    "results folder to start afresh")
            log(f"note: the chunks in {folder} are from a run with other settings or data; "
                "starting afresh")
            shutil.rmtree(folder)
    elif folder.is_dir() and any(folder.iterdir()):
        if not restart_on_mismatch:
            raise CheckpointMismatch(f"{folder}: holds files but no {run_file.name}; delete the "
                                     "folder to start afresh")
        shutil.rmtree(folder)
    store.atomic_write_json(run_file, {"key": run_key, **record})


def calibrate_in_chunks(
    dataset: Dataset,
    folder: str | Path,
    settings: CalibrationSettings,
    executor: Executor,
    *,
    sites: Sequence[str] | None = None,
    years: Sequence[int] | None = None,
    chunk_sites: int = CHUNK_SITES,
    checkpoint_every: int = 10,
    progress: bool = False,
    restart_on_mismatch: bool = False,
    log: Callable[[str], Any] = print,
) -> tuple[CalibrationResult, pd.DataFrame]:
    """Calibrate every site in chunks through ``executor``; combine the chunks.

    Args:
        dataset: The dataset.
        folder: The chunks folder (``OUT/chunks``).
        settings: CMA-ES settings (the device is resolved by each unit, on its worker).
        executor: Where the chunks run (an open :class:`~lue_spie.execution.Executor`).
        sites, years: Selection (default: all).
        chunk_sites: Most sites per chunk.
        checkpoint_every: Generations between a chunk's checkpoints.
        progress: One bar over chunks.
        restart_on_mismatch: Chunks of other settings or data: start afresh with a note (the
            book) instead of raising :class:`CheckpointMismatch` (the command line).
        log: Where progress lines go.

    Returns:
        The combined result (the table in the data's site order, as in-process) and the
        convergence record (sorted by site and generation, as :class:`ConvergenceRecorder`).
    """
    if not isinstance(chunk_sites, int) or chunk_sites < 1:
        raise ValueError(f"chunk_sites = {chunk_sites!r}: expected an int >= 1")
    folder = Path(folder).resolve()
    # The batch the in-process run would build (same sites, years, dtype and daily grid), on
    # the CPU: each unit moves its rows to its own device.
    batch = as_forcing_batch(dataset, sites=sites, years=years, dtype=settings.torch_dtype,
                             device="cpu")
    batch.require_types()
    checksum = data_checksum(batch)
    run_key = _run_key(settings, checksum)
    _prepare_folder(folder, run_key, {"settings": settings.to_dict(), "data_checksum": checksum,
                                      "n_sites": batch.n_sites, "format": _FORMAT},
                    restart_on_mismatch, log)
    executor.check_paths(folder)
    done = _finished(folder, run_key)
    have = {s for d in done.values() for s in d["sites"]}
    todo_sites = [s for s in batch.sites if s not in have]
    tasks = []
    for i in range(0, len(todo_sites), chunk_sites):
        part = tuple(todo_sites[i:i + chunk_sites])
        tasks.append(ChunkTask(chunk_id=_chunk_id(run_key, part), sites=part,
                               folder=str(folder), settings=settings, run_key=run_key,
                               checkpoint_every=checkpoint_every))
    planned = {t.chunk_id for t in tasks}
    for d in folder.iterdir():  # running chunks of another cut of the sites: cannot resume
        if d.is_dir() and d.name not in planned:
            shutil.rmtree(d, ignore_errors=True)
    if done:
        log(f"{len(have)} site(s) already calibrated in {len(done)} chunk(s) in {folder}: "
            "kept")
    t0 = time.perf_counter()
    if tasks:
        shared = executor.share(batch)
        labels = [f"{t.sites[0]}..{t.sites[-1]}" for t in tasks]
        for _ in executor.map(run_chunk, tasks, shared=shared, desc="calibrate",
                              name="calibrate-chunk", progress=progress, labels=labels):
            pass  # each chunk wrote its own files; they are combined below
    elapsed = time.perf_counter() - t0
    return _combine(folder, run_key, batch, settings, checksum, elapsed)


def _combine(folder: Path, run_key: str, batch: ForcingBatch, settings: CalibrationSettings,
             checksum: str, elapsed: float) -> tuple[CalibrationResult, pd.DataFrame]:
    """The finished chunks' tables as one result, in the batch's site order."""
    done = _finished(folder, run_key)
    tables, records, provs = [], [], []
    seen: set[str] = set()
    for cid, prov in done.items():
        keep = [s for s in prov["sites"] if s in batch.sites and s not in seen]
        if not keep:
            continue
        seen.update(keep)
        t = store.read_parquet(CalibrationFiles.chunk_table_in(folder, cid))
        c = store.read_parquet(CalibrationFiles.chunk_convergence_in(folder, cid))
        tables.append(t[t["site"].isin(keep)])
        records.append(c[c["site"].isin(keep)])
        provs.append(prov)
    missing = [s for s in batch.sites if s not in seen]
    if missing:
        raise RuntimeError(f"{folder}: no finished chunk holds site(s) {missing[:10]}")
    order = {s: i for i, s in enumerate(batch.sites)}
    table = pd.concat(tables, ignore_index=True)
    table = table.iloc[np.argsort(table["site"].map(order).to_numpy(), kind="stable")]
    convergence = pd.concat(records, ignore_index=True)
    convergence = convergence.sort_values(["site", "generation"], kind="stable")
    fields = {f.name for f in dataclasses.fields(CalibrationSettings)}
    devices = sorted({str(p["device"]) for p in provs})
    used = CalibrationSettings(**{k: v for k, v in provs[0].items() if k in fields}) \
        if provs else settings
    used = used.replace(device="+".join(devices)) if len(devices) > 1 else used
    result = CalibrationResult(
        table=table.reset_index(drop=True), settings=used, data_checksum=checksum,
        elapsed_s=elapsed, generations=int(max((p["generations"] for p in provs), default=0)),
        n_evaluations=int(sum(p["n_evaluations"] for p in provs)))
    return result, convergence.reset_index(drop=True)

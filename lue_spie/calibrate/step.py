"""The site-calibration step (paper section 2.1.1): a dataset folder in, a calibration out.

:func:`run` calibrates every site of ``layout.data`` into ``layout.calibration``; the command
line (``lue-spie calibrate``, :mod:`lue_spie.calibrate.cli`), the book's calibration chapter
and the structural-error twin all run it. It writes ``calibration``, ``gpp_calib`` and
``convergence`` (names in :class:`lue_spie.layout.CalibrationFiles`), each with provenance.

In this process (the default) it runs :func:`~lue_spie.calibrate.search.calibrate_sites`
with a checkpoint, resumed when the settings and data match; on a Dask cluster it
calibrates chunks of sites as independent units instead (:mod:`lue_spie.calibrate.chunks`);
the results are identical. A rerun keeps what is finished, whichever way it was run.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lue_spie import store
from lue_spie.calibrate.chunks import CHUNK_SITES, calibrate_in_chunks
from lue_spie.calibrate.engine import CheckpointMismatch
from lue_spie.calibrate.search import CalibrationResult, ConvergenceRecorder, calibrate_sites
from lue_spie.calibrate.settings import CalibrationSettings
from lue_spie.data.io import load_dataset
from lue_spie.evaluate import simulate_calibrated
from lue_spie.execution import ExecutionSettings, Executor
from lue_spie.layout import CalibrationFiles, DataFiles, Layout
from lue_spie.params import PARAMETERS

__all__ = ["run", "write_results"]


def write_results(
    result: CalibrationResult,
    out: CalibrationFiles | str | Path,
    *,
    inputs: Mapping[str, str | Path] | None = None,
    gpp_calib: pd.DataFrame | None = None,
    extra_settings: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write a site calibration atomically: its table (and ``gpp_calib`` when given), each
    with its provenance record.

    The provenance holds the settings, the seed, the data checksum, the inputs' sha256,
    package versions and the git commit (:func:`lue_spie.store.make_provenance`).
    """
    out = out if isinstance(out, CalibrationFiles) else CalibrationFiles(Path(out))
    settings = {**result.settings.to_dict(), "data_checksum": result.data_checksum,
                "generations": result.generations, "n_evaluations": result.n_evaluations,
                "elapsed_s": result.elapsed_s, **dict(extra_settings or {})}
    prov = store.make_provenance("calibrate", settings=settings, inputs=inputs,
                                 seed=result.settings.seed)
    paths = {"table": store.write_parquet(result.table, out.table, prov)}
    if gpp_calib is not None:
        paths["gpp_calib"] = store.write_parquet(gpp_calib, out.gpp_calib, prov)
    return paths


def run(
    layout: Layout,
    settings: CalibrationSettings | None = None,
    execution: ExecutionSettings | None = None,
    *,
    sites: Sequence[str] | None = None,
    years: Sequence[int] | None = None,
    checkpoint_every: int = 10,
    progress: bool = False,
    restart_on_mismatch: bool = False,
    log: Callable[[str], Any] = print,
    chunk_sites: int | None = None,
) -> dict[str, Path]:
    """The calibration step: calibrate every site of ``layout.data`` into
    ``layout.calibration``.

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
        layout: Where the dataset is and the calibration goes (``layout.data``,
            ``layout.calibration``).
        settings: CMA-ES settings (default: :class:`CalibrationSettings` with its defaults).
        execution: Where the work runs (default: in this process; see
            :class:`~lue_spie.execution.ExecutionSettings`).
        sites, years: Selection (default: all).
        checkpoint_every: Generations between checkpoints.
        progress: Show a progress bar.
        restart_on_mismatch: When the checkpoint belongs to other settings or data, set it
            aside with a note and start afresh (the book, where a chapter is rerun with new
            parameters); otherwise raise :class:`CheckpointMismatch` (the command line, where
            the user decides).
        log: Where progress lines go.
        chunk_sites: Sites per unit on a cluster (default
            :data:`~lue_spie.calibrate.chunks.CHUNK_SITES`).

    Returns:
        Name -> path of the files written (``table``, ``gpp_calib``, ``convergence``).
    """
    settings = settings or CalibrationSettings()
    out = layout.calibration
    damaged = _drop_untrusted(out)
    paths = _run(layout, settings, execution, sites=sites, years=years,
                 checkpoint_every=checkpoint_every, progress=progress,
                 restart_on_mismatch=restart_on_mismatch, log=log, chunk_sites=chunk_sites)
    for name, why in damaged:
        log(f"recomputed the site calibration in {out.folder}: its file {name} was unreadable "
            f"({why})")
    return paths


#: The columns each file of the step must have to be trusted by a rerun.
_COLUMNS = {"table": ("site", "status", *PARAMETERS), "gpp_calib": ("site", "date", "GPP_calib"),
            "convergence": ConvergenceRecorder.COLUMNS}


def _drop_untrusted(out: CalibrationFiles) -> list[tuple[str, str]]:
    """Remove the step's files that a rerun cannot trust (cut short, changed since written,
    without their checksum, or with an unreadable provenance record), so that it computes them
    again; returns (file name, why) for each."""
    dropped = []
    for kind, columns in _COLUMNS.items():
        path = getattr(out, kind)
        if not path.exists():  # nothing to distrust; a record left alone describes nothing
            store.provenance_path(path).unlink(missing_ok=True)
            continue
        why = store.verify(path, columns=columns)
        if why is not None:
            path.unlink(missing_ok=True)
            store.provenance_path(path).unlink(missing_ok=True)
            dropped.append((path.name, why))
    return dropped


def _run(layout: Layout, settings: CalibrationSettings, execution: ExecutionSettings | None,
         *, sites: Sequence[str] | None, years: Sequence[int] | None, checkpoint_every: int,
         progress: bool, restart_on_mismatch: bool, log: Callable[[str], Any],
         chunk_sites: int | None) -> dict[str, Path]:
    """:func:`run` once its untrusted files are gone."""
    data, out = layout.data, layout.calibration
    kept = _kept_result(data, out, settings, sites=sites, years=years)
    if kept is not None:
        log(f"kept the finished calibration in {out.folder} (same settings, data and sites)")
        return kept
    common = dict(sites=sites, years=years, checkpoint_every=checkpoint_every,
                  progress=progress, log=log)
    ckpt = out.checkpoint_dir
    # A rerun keeps the work of an earlier run made the other way (the two give the same
    # result): adding --workers to resume a long in-process run must not calibrate again
    # what is finished, and a chunked run can be finished without a cluster.
    if execution is not None and execution.distributed:
        if _finished_checkpoint(ckpt):
            try:
                paths = _run_in_process(data, out, settings,
                                        restart_on_mismatch=False, **common)
                log(f"kept the finished in-process calibration in {ckpt}")
                return paths
            except CheckpointMismatch:
                pass  # of other settings or data: calibrate on the cluster
        return _run_chunked(data, out, settings, restart_on_mismatch=restart_on_mismatch,
                            execution=execution, chunk_sites=chunk_sites, **common)
    if not ckpt.exists() and _chunks_of(out.chunks_dir, settings):
        log(f"resuming the chunked calibration in {out.chunks_dir} in this process")
        return _run_chunked(data, out, settings, restart_on_mismatch=restart_on_mismatch,
                            execution=ExecutionSettings(), chunk_sites=chunk_sites, **common)
    return _run_in_process(data, out, settings, restart_on_mismatch=restart_on_mismatch,
                           **common)


def _run_in_process(data: DataFiles, out: CalibrationFiles, settings: CalibrationSettings, *,
                    sites: Sequence[str] | None, years: Sequence[int] | None,
                    checkpoint_every: int, progress: bool, restart_on_mismatch: bool,
                    log: Callable[[str], Any]) -> dict[str, Path]:
    """:func:`run` in this process: one engine over every site."""
    dataset = load_dataset(data.folder)
    ckpt = out.checkpoint_dir
    conv_path = out.convergence
    sites = None if sites is None else [str(s) for s in sites]
    years = None if years is None else [int(y) for y in years]

    def attempt() -> Any:
        if not ckpt.exists():
            conv_path.unlink(missing_ok=True)
        recorder = ConvergenceRecorder(conv_path)
        result = calibrate_sites(dataset, settings, sites=sites, years=years,
                                 checkpoint_dir=ckpt, checkpoint_every=checkpoint_every,
                                 progress=progress, callback=recorder, log=log)
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
    paths = _write_step(dataset, data, out, result, sites=sites, years=years)
    paths["convergence"] = recorder.write()
    _report(result, log)
    return paths


def _kept_result(data: DataFiles, out: CalibrationFiles, settings: CalibrationSettings, *,
                 sites: Sequence[str] | None,
                 years: Sequence[int] | None) -> dict[str, Path] | None:
    """The step's files in ``out_dir`` when they hold a finished calibration of these
    settings, sites, years and data files (whichever way it was run), else None.

    Keeping them as they are, rather than writing them again from a checkpoint or chunks,
    keeps their checksums, on which the later steps' finished units depend. The device is not
    compared: a result is one of these settings wherever it was computed.
    """
    paths = {"table": out.table, "gpp_calib": out.gpp_calib, "convergence": out.convergence}
    if not all(p.is_file() for p in paths.values()):
        return None
    try:
        prov = store.read_provenance(paths["table"])
        gpp_prov = store.read_provenance(paths["gpp_calib"])
    except (FileNotFoundError, ValueError):  # ValueError: an unreadable record (DataError)
        return None
    done = prov.get("settings", {})
    want = {k: v for k, v in settings.to_dict().items() if k != "device"}
    want["sites"] = None if sites is None else [str(x) for x in sites]
    want["years"] = None if years is None else [int(y) for y in years]
    if any(done.get(k) != v for k, v in want.items()):
        return None
    if gpp_prov.get("created") != prov.get("created") or gpp_prov.get("settings") != done:
        return None  # the GPP table of another write (an interrupted one)
    for name, path in data.inputs().items():
        if not path.is_file() or \
                prov.get("inputs", {}).get(name, {}).get("sha256") != store.sha256_file(path):
            return None
    return paths


def _finished_checkpoint(ckpt: Path) -> bool:
    """Whether ``ckpt`` holds an in-process calibration whose every unit has stopped.

    Whether it belongs to these settings and data is checked when it is resumed.
    """
    path = CalibrationFiles.checkpoint_in(ckpt)
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
    try:
        record = json.loads(CalibrationFiles.chunks_record_in(folder).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return record.get("settings") == settings.to_dict()


def _write_step(dataset: Any, data: DataFiles, out: CalibrationFiles,
                result: CalibrationResult, *, sites: list[str] | None, years: list[int] | None,
                execution: str | None = None) -> dict[str, Path]:
    """The step's calibration and GPP_calib tables (the same for both ways of running)."""
    gpp = simulate_calibrated(dataset, result.table, years=years)
    inputs = data.inputs()
    extra: dict[str, Any] = {"sites": sites, "years": years}
    if execution is not None:
        extra["execution"] = execution
    return write_results(result, out, inputs=inputs, gpp_calib=gpp, extra_settings=extra)


def _report(result: CalibrationResult, log: Callable[[str], Any]) -> None:
    t = result.table
    ok = t[t["status"] == "ok"]
    log(f"calibrated {len(ok)} of {len(t)} sites in {result.elapsed_s:.1f} s "
        f"({result.generations} generations, {result.n_evaluations} model evaluations)"
        + (f"; median daily NSE {ok['nse'].median():.3f}" if len(ok) else ""))
    for _, row in t[t["status"] != "ok"].iterrows():
        log(f"  {row['site']}: {row['status']}")


def _run_chunked(data: DataFiles, out: CalibrationFiles, settings: CalibrationSettings, *,
                 sites: Sequence[str] | None, years: Sequence[int] | None,
                 checkpoint_every: int, progress: bool, restart_on_mismatch: bool,
                 log: Callable[[str], Any], execution: ExecutionSettings,
                 chunk_sites: int | None) -> dict[str, Path]:
    """:func:`run` in chunks of sites as units (on a Dask cluster, or in this process to
    finish a chunked run)."""
    dataset = load_dataset(data.folder)
    sites = None if sites is None else [str(s) for s in sites]
    years = None if years is None else [int(y) for y in years]
    Path(out.folder).mkdir(parents=True, exist_ok=True)
    with Executor(execution, log=log) as ex:
        result, convergence = calibrate_in_chunks(
            dataset, out.chunks_dir, settings, ex, sites=sites, years=years,
            chunk_sites=chunk_sites or CHUNK_SITES, checkpoint_every=checkpoint_every,
            progress=progress, restart_on_mismatch=restart_on_mismatch, log=log)
    paths = _write_step(dataset, data, out, result, sites=sites, years=years,
                        execution=execution.describe())
    paths["convergence"] = store.write_parquet(convergence, out.convergence,
                                               store.make_provenance("calibrate.convergence"))
    _report(result, log)
    return paths

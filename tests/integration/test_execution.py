"""Units in this process or on Dask (lue_spie.execution): the same files, resume, clean shutdown.

The unit tests run the chunked calibration through the in-process executor (fast); the
integration tests start real two-worker LocalClusters (a few seconds each to start on the
2-core reference machine) and compare every file with the in-process run, bit for bit.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import socket
import sys
from pathlib import Path

import cloudpickle
import pandas as pd
import pytest
import torch

from lue_spie import calibrate, execution, extrapolate, store
from lue_spie.calibrate import (
    CalibrationInterrupted,
    CalibrationSettings,
    CheckpointMismatch,
    calibrate_sites,
)
from lue_spie.calibrate import chunks as chunks_module
from lue_spie.calibrate import step as api_module
from lue_spie.calibrate.chunks import ChunkTask, calibrate_in_chunks, run_chunk
from lue_spie.cli import main
from lue_spie.data import load_dataset, virtual
from lue_spie.execution import (
    ExecutionSettings,
    Executor,
    SchedulerUnreachable,
    add_execution_arguments,
    execution_from_args,
    usable_cores,
)
from lue_spie.extrapolate import ExtrapolationSettings
from lue_spie.layout import Layout
from lue_spie.params import PARAMETERS

# The helpers below run on Dask workers: ship them by value (workers need not import tests/).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SETTINGS = CalibrationSettings(device="cpu", max_gen=12, seed=4)
FILES = ("table", "gpp_calib", "convergence")
QUIET = {"log": lambda *_: None}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """6 virtual sites x 1 year and their in-process calibration (the reference)."""
    root = tmp_path_factory.mktemp("exec")
    data = virtual.generate(n_sites=6, n_years=1, seed=0, out=root / "vf")
    ref = calibrate.run(Layout(data_dir=data, calibration_dir=root / "ref"), SETTINGS, **QUIET)
    return data, ref


def _same_files(a: dict[str, Path], b: dict[str, Path]) -> None:
    for k in FILES:
        pd.testing.assert_frame_equal(store.read_parquet(a[k]), store.read_parquet(b[k]),
                                      check_exact=True)
        assert store.sha256_file(a[k]) == store.sha256_file(b[k]), k


def _same_search(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """The same searches: parameters, counts and flags bit for bit; costs to 1e-12.

    A site's cost is summed in a model call shared with the other sites of its chunk, and the
    vectorised kernels round the last bit by the call's shape (measured: 1 of 132 float64
    costs 4e-16 apart between calls of 1 and 12 sites), so the reported cost of a search
    can differ in its last bit by the chunking, while the search itself does not.
    """
    assert list(a.columns) == list(b.columns)
    costs = [c for c in a.columns if a[c].dtype.kind == "f" and c not in PARAMETERS]
    pd.testing.assert_frame_equal(a.drop(columns=costs), b.drop(columns=costs),
                                  check_exact=True)
    pd.testing.assert_frame_equal(a[costs], b[costs], check_exact=False, rtol=1e-12, atol=0)


# ------------------------------------------------------------------------------ settings, CLI
def test_settings_validate_and_describe():
    assert not ExecutionSettings().distributed
    assert ExecutionSettings().describe() == "in-process"
    assert ExecutionSettings(workers=2).describe() == "local Dask cluster of 2 worker process(es)"
    assert ExecutionSettings(scheduler="tcp://h:8786").distributed
    with pytest.raises(ValueError, match="workers = -1: expected an int >= 0"):
        ExecutionSettings(workers=-1)
    with pytest.raises(ValueError, match="give one of them"):
        ExecutionSettings(workers=2, scheduler="tcp://h:8786")
    with pytest.raises(ValueError, match="scheduler = ''"):
        ExecutionSettings(scheduler="")
    with pytest.raises(ValueError, match="torch_threads"):
        ExecutionSettings(torch_threads=-2)


def test_cli_options_are_exclusive_and_map_to_settings(capsys):
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    add_execution_arguments(p)
    got = execution_from_args(p.parse_args(["--workers", "3", "--threads", "2"]))
    assert got == ExecutionSettings(workers=3, torch_threads=2)
    assert execution_from_args(p.parse_args([])) == ExecutionSettings()
    with pytest.raises(SystemExit):
        p.parse_args(["--workers", "2", "--scheduler", "tcp://h:1"])
    assert "not allowed with argument" in capsys.readouterr().err
    # Each command has the options; a bad value is one line with exit code 2.
    assert main(["calibrate", "--data", "x", "--out", "y", "--workers", "-1"]) == 2
    assert "workers = -1" in capsys.readouterr().err


def _double(item, shared):
    if item == "boom":
        raise ValueError("unit boom failed")
    return 2 * item + (shared or 0)


def test_in_process_map_runs_in_order_and_raises_the_units_error():
    with Executor() as ex:
        assert not ex.distributed and ex.dashboard_link is None
        shared = ex.share(100)
        assert shared == 100  # in this process: the object itself
        got = list(ex.map(_double, [1, 2, 3], shared=shared, progress=False))
        assert got == [(0, 102), (1, 104), (2, 106)]
        with pytest.raises(ValueError, match="unit boom failed"):
            list(ex.map(_double, [1, "boom", 3], progress=False))


# ------------------------------------------------------------- chunked calibration, in-process
def test_chunks_combine_to_the_one_batch_run(world, tmp_path):
    # The chunk machinery through the in-process executor: every table equal to the in-process
    # step's, whatever the cut (one site per chunk, uneven chunks).
    data, ref = world
    for size in (1, 4):
        out = tmp_path / f"c{size}"
        run = calibrate.run(Layout(data_dir=data, calibration_dir=out), SETTINGS,
                            chunk_sites=size, **QUIET, execution=ExecutionSettings(workers=0))
        assert not (out / "chunks").exists()  # workers=0: the in-process step itself
        with Executor() as ex:
            result, conv = calibrate_in_chunks(load_dataset(data), out / "chunks", SETTINGS, ex,
                                               chunk_sites=size, **QUIET)
        table = store.read_parquet(ref["table"])
        _same_search(result.table, table)
        _same_search(conv, store.read_parquet(ref["convergence"]))
        assert result.generations == int(table["generations"].max())
        assert result.n_evaluations == int(table["evaluations"].sum())
        assert len(list((out / "chunks").glob("*.calibration.parquet"))) == -(-6 // size)
        _same_files(ref, run)


def test_a_rerun_keeps_finished_chunks_and_resumes_a_running_one(world, tmp_path, monkeypatch):
    data, ref = world
    dataset = load_dataset(data)
    folder = tmp_path / "chunks"
    with Executor() as ex:
        first, _ = calibrate_in_chunks(dataset, folder, SETTINGS, ex, chunk_sites=2, **QUIET)
    # Lose one finished chunk (as if the client had crashed while it ran): only its sites
    # are calibrated again, and the combined result is unchanged.
    lost = sorted(folder.glob("*.calibration.parquet"))[0]
    lost.unlink()
    calls = []

    def counting(task, batch):
        calls.append(task.sites)
        return run_chunk(task, batch)

    monkeypatch.setattr(chunks_module, "run_chunk", counting)
    notes = []
    with Executor() as ex:
        again, _ = calibrate_in_chunks(dataset, folder, SETTINGS, ex, chunk_sites=2,
                                       log=notes.append)
    assert len(calls) == 1 and len(calls[0]) == 2
    assert any("4 site(s) already calibrated in 2 chunk(s)" in n for n in notes)
    pd.testing.assert_frame_equal(first.table, again.table, check_exact=True)

    # A chunk stopped mid-run resumes from its own checkpoint and ends as if never stopped.
    batch = dataset.forcing_batch(dtype=torch.float64)
    task = ChunkTask(chunk_id="c0", sites=tuple(batch.sites[:3]), folder=str(tmp_path / "one"),
                     settings=SETTINGS, run_key="k", checkpoint_every=4)
    whole_task = dataclasses.replace(task, folder=str(tmp_path / "whole"))
    whole = run_chunk(whole_task, batch)
    with pytest.raises(CalibrationInterrupted):
        run_chunk(dataclasses.replace(task, stop_after_gen=6), batch)
    assert (task.work / "checkpoint.pkl").is_file()
    generations = []

    def spy(*args, callback, **kw):
        def record(gen, engine):
            generations.append(gen)
            callback(gen, engine)
        return calibrate_sites(*args, callback=record, **kw)

    monkeypatch.setattr(chunks_module, "calibrate_sites", spy)
    resumed = run_chunk(task, batch)
    assert generations[0] == 7  # went on from the checkpoint of generation 6
    assert not task.work.exists()  # the running chunk's folder goes when the chunk is done
    assert resumed["n_evaluations"] == whole["n_evaluations"]
    for k in ("table", "convergence"):
        pd.testing.assert_frame_equal(store.read_parquet(task.paths()[k]),
                                      store.read_parquet(whole_task.paths()[k]),
                                      check_exact=True)


def test_chunks_of_other_settings_are_refused_or_restarted(world, tmp_path):
    data, _ = world
    dataset = load_dataset(data)
    with Executor() as ex:
        calibrate_in_chunks(dataset, tmp_path / "chunks", SETTINGS, ex, chunk_sites=3, **QUIET)
        with pytest.raises(CheckpointMismatch, match="other settings or data"):
            calibrate_in_chunks(dataset, tmp_path / "chunks", SETTINGS.replace(seed=5), ex,
                                **QUIET)
        notes = []
        calibrate_in_chunks(dataset, tmp_path / "chunks", SETTINGS.replace(seed=5), ex,
                            restart_on_mismatch=True, log=notes.append)
        assert any("starting afresh" in n for n in notes)
        with pytest.raises(ValueError, match="chunk_sites = 0"):
            calibrate_in_chunks(dataset, tmp_path / "x", SETTINGS, ex, chunk_sites=0)


def test_a_rerun_the_other_way_keeps_the_finished_work(world, tmp_path, monkeypatch):
    # Resuming a long run with --workers after an in-process start (or the reverse) must not
    # calibrate again what is finished: the two ways give the same result.
    data, ref = world
    out = tmp_path / "switch"
    shutil.copytree(Path(ref["table"]).parent, out)  # the finished in-process run
    calls = []
    monkeypatch.setattr(api_module, "_run_chunked", lambda *a, **k: calls.append(k) or {})
    monkeypatch.setattr(api_module, "calibrate_sites", lambda *a, **k: calls.append(k))
    # Its files are kept as they are (their checksums are what later steps' units depend on)
    notes = []
    kept = calibrate.run(Layout(data_dir=data, calibration_dir=out), SETTINGS, log=notes.append,
                                execution=ExecutionSettings(workers=2))
    assert not calls and any("kept the finished calibration" in n for n in notes)
    for k in FILES:
        assert store.sha256_file(kept[k]) == store.sha256_file(ref[k])
    # ... not when the data files changed, nor for other sites
    files = Layout(data_dir=data, calibration_dir=out)
    assert api_module._kept_result(files.data, files.calibration, SETTINGS, sites=["x"],
                                   years=None) is None
    moved = tmp_path / "vf2"
    shutil.copytree(data, moved)
    (moved / "sites.parquet").write_bytes((moved / "sites.parquet").read_bytes() + b"\0")
    files = Layout(data_dir=moved, calibration_dir=out)
    assert api_module._kept_result(files.data, files.calibration, SETTINGS, sites=None,
                                   years=None) is None
    # Without the files, its finished checkpoint is resumed in-process, not sent to a cluster
    monkeypatch.undo()
    monkeypatch.setattr(api_module, "_run_chunked", lambda *a, **k: calls.append(k) or {})
    for k in FILES:
        Path(kept[k]).unlink()
    notes = []
    again = calibrate.run(Layout(data_dir=data, calibration_dir=out), SETTINGS, log=notes.append,
                                 execution=ExecutionSettings(workers=2))
    assert not calls and any("kept the finished in-process calibration" in n for n in notes)
    _same_search(store.read_parquet(again["table"]), store.read_parquet(ref["table"]))
    # ... but not a finished checkpoint of other settings: those go to the cluster
    calibrate.run(Layout(data_dir=data, calibration_dir=out), SETTINGS.replace(seed=9), **QUIET,
                         execution=ExecutionSettings(workers=2))
    assert len(calls) == 1
    monkeypatch.undo()

    # The reverse: chunks begun on a cluster are finished in this process, chunk by chunk,
    # keeping the finished ones (here all: nothing is calibrated again).
    out = tmp_path / "chunked"
    with Executor() as ex:
        calibrate_in_chunks(load_dataset(data), out / "chunks", SETTINGS, ex, chunk_sites=2,
                            **QUIET)
    ran = []
    monkeypatch.setattr(chunks_module, "run_chunk", lambda task, batch: ran.append(task))
    notes = []
    paths = calibrate.run(Layout(data_dir=data, calibration_dir=out), SETTINGS, log=notes.append)
    assert not ran and not (out / "checkpoint").exists()
    assert any("resuming the chunked calibration" in n for n in notes)
    _same_search(store.read_parquet(paths["table"]), store.read_parquet(ref["table"]))
    # chunks of other settings are left alone: a plain in-process run
    other = calibrate.run(Layout(data_dir=data, calibration_dir=out), SETTINGS.replace(seed=9),
                          **QUIET)
    assert (out / "checkpoint" / "checkpoint.pkl").is_file() and not ran
    assert store.read_provenance(other["table"])["settings"]["seed"] == 9


# ------------------------------------------------------------------------ on a Dask cluster
@pytest.fixture(scope="module")
def scheduler():
    """The address of a two-worker LocalCluster started here (as a user's cluster would be)."""
    from distributed import LocalCluster

    environ = dict(os.environ)  # the nanny sets its variables here too: put them back after
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=logging.ERROR) as cluster:
        yield cluster.scheduler_address
    os.environ.clear()
    os.environ.update(environ)


def _where(item, shared):
    return os.getpid(), id(shared), len(shared)


def _die_once(item, marker):
    # The first attempt of unit 1 takes its worker down with it.
    if item == 1 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return item * 10


@pytest.mark.integration
@pytest.mark.slow
def test_calibration_on_a_cluster_is_bit_identical(world, scheduler, tmp_path, capsys):
    data, ref = world
    # An embedded LocalCluster started by the step itself ...
    local = calibrate.run(Layout(data_dir=data, calibration_dir=tmp_path / "local"), SETTINGS,
                          chunk_sites=2, **QUIET, execution=ExecutionSettings(workers=2))
    _same_files(ref, local)
    prov = store.read_provenance(local["table"])["settings"]
    assert prov["execution"] == "local Dask cluster of 2 worker process(es)"
    assert prov["device"] == "cpu" and prov["data_checksum"] == store.read_provenance(
        ref["table"])["settings"]["data_checksum"]
    # ... and the command line on a given scheduler address.
    out = tmp_path / "cli"
    rc = main(["calibrate", "--data", str(data), "--out", str(out), "--max-gen", "12",
               "--seed", "4", "--device", "cpu", "--no-progress", "--scheduler", scheduler,
               "--chunk-sites", "4"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert f"connected to the Dask scheduler at {scheduler}" in printed
    assert "MALLOC_TRIM_THRESHOLD_ set" in printed  # a plain LocalCluster's workers have it
    _same_files(ref, {"table": out / "calibration.parquet",
                      "gpp_calib": out / "gpp_calib.parquet",
                      "convergence": out / "convergence.parquet"})


@pytest.mark.integration
@pytest.mark.slow
def test_baselines_on_a_cluster_are_bit_identical(world, scheduler, tmp_path):
    root = tmp_path
    data = virtual.generate(14, 1, 2, root / "data")
    calibrate.run(Layout(data_dir=data, calibration_dir=root / "calibration"),
                  CalibrationSettings(max_gen=20, device="cpu"), **QUIET)
    methods = ("PFTmean", "Climmed", "Sitesim", "mRF", "P-model", "OPT-All")
    settings = ExtrapolationSettings(methods=methods, n_folds=5, seed=1, method_params={
        "OPT-All": {"settings": {"max_gen": 6}}})

    def layout(out):
        return Layout(data_dir=data, calibration_dir=root / "calibration", extrapolation_dir=out)

    inproc = extrapolate.run(layout(root / "a"), settings, progress=False, **QUIET)
    assert "OPT-All fold 0,1,2,3,4" in inproc.ran  # in this process: one batched unit
    lines = []
    dask = extrapolate.run(layout(root / "b"), settings, progress=False, log=lines.append,
                           execution=ExecutionSettings(scheduler=scheduler))
    # On the cluster: one unit per (method, fold), but the P-model's prediction is the same
    # in every fold (folds="independent"): one unit for all its folds, there as here.
    assert len(dask.ran) == (len(methods) - 1) * 5 + 1 and "P-model fold 0,1,2,3,4" in dask.ran
    pd.testing.assert_frame_equal(inproc.summary, dask.summary, check_exact=True)
    for m in methods:
        for f in ("params.parquet", "gpp.parquet"):
            a, b = root / "a" / m / f, root / "b" / m / f
            pd.testing.assert_frame_equal(store.read_parquet(a), store.read_parquet(b),
                                          check_exact=True)
            assert store.sha256_file(a) == store.sha256_file(b)
    assert not any((root / "b" / m / "work").exists() for m in methods)
    # A rerun on the cluster skips every finished (method, fold).
    again = extrapolate.run(layout(root / "b"), settings, progress=False,
                            execution=ExecutionSettings(scheduler=scheduler), **QUIET)
    assert again.ran == {} and len(again.skipped) == len(methods) * 5


@pytest.mark.integration
@pytest.mark.slow
def test_shared_data_reaches_each_worker_once_and_lost_units_are_resubmitted(scheduler,
                                                                             tmp_path):
    with Executor(ExecutionSettings(scheduler=scheduler), **QUIET) as ex:
        shared = ex.share(list(range(1000)))
        seen = [r for _, r in ex.map(_where, list(range(8)), shared=shared, progress=False)]
        # One copy per worker process, whatever the number of units it ran.
        copies = {pid: set() for pid, _, _ in seen}
        for pid, obj, n in seen:
            copies[pid].add(obj)
            assert n == 1000
        assert all(len(v) == 1 for v in copies.values())
        marker = str(tmp_path / "died")
        got = dict(ex.map(_die_once, [0, 1, 2, 3], shared=marker, progress=False))
        assert Path(marker).exists()  # a worker did die in unit 1 ...
        assert got == {0: 0, 1: 10, 2: 20, 3: 30}  # ... and the unit ran again elsewhere
        with pytest.raises(ValueError, match="cannot see this folder"):
            ex.check_paths(tmp_path / "nowhere")
        with pytest.raises(ValueError, match="unit boom failed"):
            list(ex.map(_double, [1, "boom"], progress=False))


def _threads(item, shared):
    import numba
    import torch

    return numba.get_num_threads(), torch.get_num_threads(), usable_cores()


@pytest.mark.integration
@pytest.mark.slow
def test_units_never_get_more_threads_than_their_share_of_the_cores(scheduler):
    # Two one-thread workers on this host: each unit's kernel gets the host's usable cores
    # divided by the two worker threads (at least 1), torch the settings' one thread. An
    # earlier test takes a worker down: wait until the nanny's replacement has joined.
    from distributed import Client

    with Client(scheduler, timeout=60) as client:
        client.wait_for_workers(2, timeout=120)
    with Executor(ExecutionSettings(scheduler=scheduler), **QUIET) as ex:
        got = [r for _, r in ex.map(_threads, list(range(4)), progress=False)]
    for kernel, torch_threads, cores in got:
        assert kernel == max(1, cores // 2) and torch_threads == 1
    with Executor(ExecutionSettings(scheduler=scheduler, kernel_threads=1), **QUIET) as ex:
        assert all(r[0] == 1 for _, r in ex.map(_threads, [0, 1], progress=False))


@pytest.mark.integration
@pytest.mark.slow
def test_keyboard_interrupt_shuts_the_local_cluster_down():
    import psutil

    lines = []
    environ = dict(os.environ)
    ex = Executor(ExecutionSettings(workers=2), log=lines.append)
    with pytest.raises(KeyboardInterrupt), ex:
        assert "dashboard: http://" in lines[0]
        workers = [psutil.Process(p) for p in ex.client.run(os.getpid).values()]
        assert len(workers) == 2
        # Workers start without Dask's MALLOC_TRIM_THRESHOLD_ (2x slower model) ...
        trim = ex.client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
        assert set(trim.values()) == {None}
        for _ in ex.map(_double, [1, 2, 3, 4], progress=False):
            raise KeyboardInterrupt
    assert ex.client is None and ex.cluster is None
    assert dict(os.environ) == environ  # ... and the nanny's variables do not stay here
    _, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, f"worker processes still running: {alive}"


def test_unreachable_scheduler_is_one_clear_error(monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(execution, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(SchedulerUnreachable, match=f"tcp://127.0.0.1:{port}: no Dask scheduler"):
        with Executor(ExecutionSettings(scheduler=f"tcp://127.0.0.1:{port}"), **QUIET):
            pass

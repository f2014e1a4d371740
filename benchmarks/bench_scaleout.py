"""Benchmark: site calibration in this process against a two-worker Dask LocalCluster.

Goals (issue 13, 2-core reference machine): the cluster calibrates at least 1.7x faster than
one process with one torch thread, and the scheduling overhead per unit is under 5 % of a
unit's time.

Both runs happen in the same process, on the same data and settings, one after the other:

1. **in-process**: :func:`lue_spie.calibrate.calibrate_sites` over all sites with a checkpoint
   every 10 generations and the convergence record (what ``lue-spie calibrate`` runs without
   ``--workers``), torch with one thread;
2. **cluster**: a :class:`distributed.LocalCluster` of ``--workers`` processes with one thread
   each is started (timed apart), then :func:`lue_spie.calibrate.chunks.calibrate_in_chunks`
   runs the sites in chunks of ``--chunk-sites`` (what ``lue-spie calibrate --workers 2``
   runs), with Dask's task stream recording when each unit computed on which worker.

The ratio compares the two calibrations (data loading, GPP_calib and the result files are the
same in both and left out; the cluster's start-up and shutdown are reported apart, and with
them). On a machine shared with other work the wall-time ratio depends on how much of the
cores the other processes take, so the CPU time of both runs is reported too (the workers'
whole processes, Dask's threads included): their ratio says whether the cluster does the same
work, whatever the load. Scheduling overhead per unit: on each worker, the idle gap between
the end of one unit and the start of the next while units were still queued, averaged over
units, against the mean compute time of a unit; the one-off costs (start-up, sending the
forcing) and the idle tail (one worker finishing the last chunk) are reported apart. The two
tables are compared as the tests compare them: the searches (parameters, generations,
evaluations, flags) bit for bit, the reported costs to 1e-12 relative (a site's cost is summed
in a model call shared with the other sites of its chunk, so its last bit can depend on the
chunking); the largest cost difference is printed.

Usage (repository root)::

    .venv/bin/python benchmarks/bench_scaleout.py                       # 196 x 10, max_gen 400
    .venv/bin/python benchmarks/bench_scaleout.py --max-gen 60          # a quicker look
    .venv/bin/python benchmarks/bench_scaleout.py --out results/bench_scaleout   # + JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lue_spie.calibrate import CalibrationSettings, ConvergenceRecorder, calibrate_sites
from lue_spie.calibrate.chunks import CHUNK_SITES, calibrate_in_chunks
from lue_spie.data import load_dataset, virtual
from lue_spie.execution import ExecutionSettings, Executor
from lue_spie.params import PARAMETERS


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def same_search(a: pd.DataFrame, b: pd.DataFrame) -> tuple[bool, float]:
    """Whether two calibration tables hold the same searches, and their largest relative
    cost difference (see the module docstring)."""
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False, float("nan")
    costs = [c for c in a.columns if a[c].dtype.kind == "f" and c not in PARAMETERS]
    exact = a.drop(columns=costs).equals(b.drop(columns=costs))
    x, y = a[costs].to_numpy(float), b[costs].to_numpy(float)
    both = np.isfinite(x) & np.isfinite(y)
    if not np.array_equal(np.isfinite(x), np.isfinite(y)):
        return False, float("inf")
    rel = np.abs(x[both] - y[both]) / np.maximum(np.abs(y[both]), 1e-300)
    diff = float(rel.max()) if rel.size else 0.0
    return bool(exact and diff <= 1e-12), diff


def overhead(stream: list[dict], n_workers: int, wall: float, t0_epoch: float) -> dict:
    """Per-unit compute times and scheduling gaps from Dask's task stream."""
    units = []
    for t in stream:
        comp = [s for s in t["startstops"] if s["action"] == "compute"]
        if comp:
            units.append({"worker": t["worker"], "start": comp[0]["start"],
                          "stop": comp[-1]["stop"]})
    df = pd.DataFrame(units).sort_values("start")
    compute = (df["stop"] - df["start"]).to_numpy()
    last_start = df["start"].max()
    gaps = []
    for _, g in df.groupby("worker"):
        g = g.sort_values("start")
        for prev_stop, start in zip(g["stop"].to_numpy()[:-1], g["start"].to_numpy()[1:],
                                    strict=True):
            if start <= last_start:  # units were still queued: the gap is scheduling
                gaps.append(max(0.0, start - prev_stop))
    first = df["start"].min()
    end = df["stop"].max()
    busy_until = df.groupby("worker")["stop"].max()
    return {
        "units": len(df),
        "unit_compute_s_mean": float(compute.mean()),
        "unit_compute_s_min": float(compute.min()),
        "unit_compute_s_max": float(compute.max()),
        "compute_s_total": float(compute.sum()),
        "gap_s_mean": float(np.mean(gaps)) if gaps else 0.0,
        "gap_s_max": float(np.max(gaps)) if gaps else 0.0,
        "overhead_per_unit_share": float(np.mean(gaps) / compute.mean()) if gaps else 0.0,
        "to_first_unit_s": float(first - t0_epoch),
        "idle_tail_s": float(end - busy_until.min()),
        "parallel_efficiency": float(compute.sum() / (n_workers * wall)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="virtual FLUXNET folder (default: generate "
                    "--n-sites x --n-years into a temporary folder)")
    ap.add_argument("--n-sites", type=int, default=196)
    ap.add_argument("--n-years", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-gen", type=int, default=CalibrationSettings.max_gen)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk-sites", type=int, default=CHUNK_SITES)
    ap.add_argument("--out", default=None, help="folder for summary.json (default: none)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    settings = CalibrationSettings(seed=args.seed, max_gen=args.max_gen, device="cpu")

    tmp = tempfile.TemporaryDirectory(prefix="bench_scaleout_")
    data_dir = Path(args.data) if args.data else virtual.generate(
        n_sites=args.n_sites, n_years=args.n_years, seed=args.seed, out=Path(tmp.name) / "vf")
    dataset = load_dataset(data_dir)
    n_sites, n_days = len(dataset.sites), int(dataset.site_day["date"].nunique())
    print(f"bench_scaleout: {n_sites} sites x {n_days} days, max_gen {args.max_gen}, seed "
          f"{args.seed}; {platform.processor() or platform.machine()}, {os.cpu_count()} "
          f"cores, torch {torch.__version__}, python {sys.version.split()[0]}")
    print(f"load average before: {_load()}")

    t0, c0 = time.perf_counter(), time.process_time()
    # As the in-process step runs it: checkpoints and the convergence record included.
    inproc = calibrate_sites(dataset, settings, checkpoint_dir=Path(tmp.name) / "checkpoint",
                             callback=ConvergenceRecorder(Path(tmp.name) / "convergence.parquet"))
    t_inproc, cpu_inproc = time.perf_counter() - t0, time.process_time() - c0
    print(f"in-process, 1 torch thread: {t_inproc:.1f} s, CPU {cpu_inproc:.1f} s "
          f"({inproc.generations} generations, {inproc.n_evaluations} evaluations); load "
          f"average {_load()}")

    from distributed import get_task_stream

    t0 = time.perf_counter()
    with Executor(ExecutionSettings(workers=args.workers), log=print) as ex:
        t_start = time.perf_counter() - t0
        cpu0 = ex.client.run(time.process_time)
        t1, t1_epoch = time.perf_counter(), time.time()
        with get_task_stream(client=ex.client) as ts:
            chunked, _ = calibrate_in_chunks(dataset, Path(tmp.name) / "chunks", settings, ex,
                                             chunk_sites=args.chunk_sites,
                                             log=lambda *_: None)
        t_cluster = time.perf_counter() - t1
        cpu1 = ex.client.run(time.process_time)
        cpu_cluster = sum(cpu1[w] - cpu0[w] for w in cpu1 if w in cpu0)
        t2 = time.perf_counter()
    t_close = time.perf_counter() - t2
    stats = overhead(ts.data, args.workers, t_cluster, t1_epoch)
    identical, cost_diff = same_search(chunked.table, inproc.table)
    speedup = t_inproc / t_cluster
    speedup_all = t_inproc / (t_start + t_cluster + t_close)
    print(f"cluster, {args.workers} workers x 1 thread, {stats['units']} chunks of "
          f"{args.chunk_sites} sites: {t_cluster:.1f} s, CPU of the workers {cpu_cluster:.1f} s "
          f"(start-up {t_start:.1f} s, shutdown {t_close:.1f} s); load average {_load()}")
    print(f"CPU time, workers / in-process: {cpu_cluster / cpu_inproc:.2f} (the same work: "
          f"about 1; on {args.workers} free cores the speed-up would be about "
          f"{args.workers * cpu_inproc / cpu_cluster:.2f}x)")
    print(f"speed-up: {speedup:.2f}x (goal >= 1.7x); with start-up and shutdown "
          f"{speedup_all:.2f}x; same searches: {identical} (costs apart by at most "
          f"{cost_diff:.1e} relative)")
    print(f"per unit: compute {stats['unit_compute_s_mean']:.2f} s mean "
          f"({stats['unit_compute_s_min']:.2f}-{stats['unit_compute_s_max']:.2f}), scheduling "
          f"gap {stats['gap_s_mean'] * 1000:.1f} ms mean ({stats['gap_s_max'] * 1000:.1f} ms "
          f"max) = {100 * stats['overhead_per_unit_share']:.2f} % of a unit (goal < 5 %)")
    print(f"one-off: first unit {stats['to_first_unit_s']:.2f} s after the call (forcing to "
          f"tensors, checksum, sent to the workers); idle "
          f"tail {stats['idle_tail_s']:.1f} s; parallel efficiency "
          f"{100 * stats['parallel_efficiency']:.0f} %")
    summary = {"n_sites": n_sites, "n_days": n_days, "max_gen": args.max_gen,
               "workers": args.workers, "chunk_sites": args.chunk_sites,
               "in_process_s": t_inproc, "cluster_s": t_cluster, "startup_s": t_start,
               "in_process_cpu_s": cpu_inproc, "cluster_cpu_s": cpu_cluster,
               "shutdown_s": t_close, "speedup": speedup, "speedup_with_startup": speedup_all,
               "identical": bool(identical), "max_cost_rel_diff": cost_diff, **stats,
               "load_after": _load()}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {out / 'summary.json'}")
    tmp.cleanup()
    return 0 if identical else 1


if __name__ == "__main__":  # the cluster's worker processes import this file again
    sys.exit(main())

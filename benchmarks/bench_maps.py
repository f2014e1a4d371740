"""Benchmark of ``lue-spie maps``: cell-days per second and peak resident memory.

Runs the maps step on an existing results folder (the towers: data, calibration and
cross-validation of a book run) into a fresh temporary folder for each configuration, and
reports, in one run so that the ratios compare like with like:

- wall time of the chunks and cell-days made and mapped per second;
- peak resident memory of the whole process tree (this process and its Dask workers),
  sampled every 0.1 s, and of this process alone (``ru_maxrss``).

Example (the 4 x demo grid, 0.5 degrees, 8 years, on 1 and 2 workers)::

    python benchmarks/bench_maps.py --results results/ci --resolution 0.5 --n-years 8 \
        --workers 1 2

Numbers go to benchmarks/RESULTS.md with the command and the machine.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time
from pathlib import Path

import psutil

from lue_spie.execution import ExecutionSettings
from lue_spie.layout import Layout
from lue_spie.maps.settings import MapsSettings
from lue_spie.maps.step import run


class _PeakRSS:
    """Peak resident memory of this process and its children, sampled in a thread."""

    def __init__(self, every: float = 0.1) -> None:
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.every)

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", required=True, help="results folder of a book run")
    ap.add_argument("--resolution", type=float, default=1.0)
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--n-years", type=int, default=None)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                    help="worker counts to compare (0: in this process)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", nargs="+", default=list(MapsSettings().methods))
    args = ap.parse_args()

    rows = []
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            layout = Layout(args.results, maps_dir=Path(tmp) / "maps")
            s = MapsSettings(resolution=args.resolution, chunk=args.chunk,
                             n_years=args.n_years, methods=tuple(args.methods),
                             device=args.device, seed=42)
            t0 = time.perf_counter()
            with _PeakRSS() as mem:
                res = run(layout, s, ExecutionSettings(workers=workers), progress=False,
                          with_figures=False, log=None)
            wall = time.perf_counter() - t0
            cell_days = sum(r["cell_days"] for r in res.ran)
            rows.append((workers, len(res.cells), len(res.dates), cell_days,
                         res.timings["chunks"], res.cell_days_per_second(), wall,
                         mem.peak / 2**30,
                         resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20))
    print(f"resolution {args.resolution} degrees, chunk {args.chunk}, device {args.device}, "
          f"methods {' '.join(args.methods)}")
    print("| workers | land cells | days | cell-days | chunks [s] | cell-days/s | wall [s] | "
          "peak RSS, process tree [GiB] | peak RSS, this process [GiB] |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:,} | {r[4]:.1f} | {r[5]:,.0f} | {r[6]:.1f} | "
              f"{r[7]:.2f} | {r[8]:.2f} |")
    if len(rows) > 1:
        base = rows[0][5]
        print("speed-up against the first: " + ", ".join(
            f"{r[0]} workers {r[5] / base:.2f}" for r in rows[1:]))


if __name__ == "__main__":
    main()

"""Benchmark: virtual FLUXNET generation, the default 196 sites x 10 years (goal: <= 60 s).

    .venv/bin/python benchmarks/bench_synthetic.py [--sites 196] [--years 10] [--seed 0]
                                                   [--repeats 1] [--structural-error]

Times :func:`lue_spie.data.virtual.generate` end to end (forcing, features, truth, LUE
model, QC, schema validation and the atomic parquet/JSON writes) into a temporary folder,
plus :func:`~lue_spie.data.virtual.make_tables` alone (in memory), and prints seconds and
site-days per second (best of ``--repeats``). torch is limited to one thread, as on the
shared reference machine.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from lue_spie.data.virtual import generate, make_tables


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=196)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--structural-error", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)

    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)")
    best_mem = best_all = float("inf")
    n_rows = 0
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        vf = make_tables(args.sites, args.years, args.seed,
                         structural_error=args.structural_error)
        best_mem = min(best_mem, time.perf_counter() - t0)
        n_rows = len(vf.site_day)
        del vf
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            out = generate(args.sites, args.years, args.seed, Path(tmp) / "vf",
                           structural_error=args.structural_error)
            best_all = min(best_all, time.perf_counter() - t0)
            size = sum(f.stat().st_size for f in out.iterdir())
    print(f"{args.sites} sites x {args.years} years = {n_rows} site-days, "
          f"{size / 2**20:.1f} MiB on disk")
    print(f"make_tables (in memory):     {best_mem:7.2f} s  {n_rows / best_mem:10.0f} site-days/s")
    print(f"generate (incl. write):      {best_all:7.2f} s  {n_rows / best_all:10.0f} site-days/s")
    print(f"goal <= 60 s: {'met' if best_all <= 60 else 'NOT met'}")


if __name__ == "__main__":
    main()

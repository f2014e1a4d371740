"""Benchmark: reading a dataset folder and building forcing tensors (goal: a second or two).

    .venv/bin/python benchmarks/bench_data.py [--sites 196] [--years 10] [--seed 0] [--repeats 3]

Generates a virtual FLUXNET into a temporary folder once, then times (best of ``--repeats``)
:func:`lue_spie.data.io.load_dataset` (parquet read + schema validation of both tables),
:func:`~lue_spie.data.schema.validate_site_day` alone, and
:func:`~lue_spie.data.io.to_forcing` for all sites (float64 and float32) and for a subset of
50 sites x 2 years. When ``../shared/fluxnet`` exists it also times the real-data reader on
CH-Lae 2010-2012. torch is limited to one thread, as on the shared reference machine.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from lue_spie.data.io import load_dataset, to_forcing
from lue_spie.data.schema import validate_site_day
from lue_spie.data.virtual import generate


def best_of(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=196)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)")
    with tempfile.TemporaryDirectory() as tmp:
        out = generate(args.sites, args.years, args.seed, Path(tmp) / "vf")
        ds = load_dataset(out)
        sd = ds.site_day
        n = len(sd)
        print(f"dataset: {args.sites} sites x {args.years} years = {n} site-days")
        some = ds.site_ids[:50]
        y0 = int(sd["date"].dt.year.min())
        n_sub = int((sd["site"].isin(some) & sd["date"].dt.year.isin([y0, y0 + 1])).sum())
        rows = [
            ("load_dataset (read + validate)", n, lambda: load_dataset(out)),
            ("validate_site_day", n, lambda: validate_site_day(sd)),
            ("to_forcing all sites, float64", n, lambda: to_forcing(sd)),
            ("to_forcing all sites, float32", n, lambda: to_forcing(sd, dtype=torch.float32)),
            ("to_forcing 50 sites x 2 years", n_sub,
             lambda: to_forcing(sd, sites=some, years=[y0, y0 + 1])),
        ]
        for name, rows_used, fn in rows:
            t = best_of(fn, args.repeats)
            print(f"  {name:34s} {t:7.3f} s  ({rows_used / t / 1e6:6.2f} M site-days/s)")
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "fluxnet"
    if shared.is_dir():
        from lue_spie.data.fluxnet import read_fluxnet_dataset

        def real() -> object:
            return read_fluxnet_dataset(shared, shared / "fapar_CH-Lae_MCD15A3H_2010-2012.csv",
                                        shared / "sites.csv", site_ids=["CH-Lae"])

        print(f"  {'read_fluxnet_dataset CH-Lae':34s} {best_of(real, args.repeats):7.3f} s")


if __name__ == "__main__":
    main()

"""Benchmark: LUE model forward + backward, fast (scan) lag filter vs a loop over days.

    .venv/bin/python benchmarks/bench_model.py [--sites 196] [--days 3650] [--repeats 3]
                                               [--device cpu|cuda|all] [--dtype float32]

Both variants run in the same process on the same inputs: ``simulate(..., lag_method="scan")``
(the project's model) and ``simulate(..., lag_method="loop")`` (identical except that the two
lag filters are the day-by-day recursion). Each timing is the best of ``--repeats`` runs
(a third as many for the slow loop) of one forward pass with input validation plus a backward
pass of ``GPP.sum()`` with respect to the (sites, 13) parameters; the fast model is also timed
without validation, as calibration and training call it. Prints both times and their
ratio (goal: at least 10x).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from lue_spie.model import simulate
from lue_spie.params import PARAMETERS, from_unconstrained


def make_inputs(n_sites: int, n_days: int, dtype: torch.dtype, device: str, seed: int = 0):
    """Seasonal-looking random forcing and random parameters with active lags."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n_days, dtype=torch.float64)
    season = torch.sin(2 * torch.pi * (t - 100) / 365.25)
    noise = lambda scale: scale * torch.randn(n_sites, n_days, generator=g, dtype=torch.float64)  # noqa: E731
    forcing = {
        "T": 10 + 12 * season + noise(3),
        "VPD": (800 + 600 * season + noise(200)).clamp(min=0),
        "CO2": 380 + 2 * t / 365.25 + noise(1),
        "W": (0.5 + 0.3 * season + noise(0.1)).clamp(0, 1),
        "PAR": (7 + 5 * season + noise(1.5)).clamp(min=0),
        "FAPAR": (0.5 + 0.3 * season + noise(0.05)).clamp(0, 1),
        "CI": (0.4 + noise(0.2)).clamp(0, 1),
    }
    forcing = {k: v.to(dtype=dtype, device=device) for k, v in forcing.items()}
    u = torch.randn(n_sites, len(PARAMETERS), generator=g, dtype=torch.float64)
    params = from_unconstrained(u).to(dtype=dtype, device=device)
    return forcing, params


def time_step(forcing, params, lag_method: str, repeats: int, validate: bool = True) -> float:
    """Best wall time of forward + backward."""
    best = float("inf")
    for _ in range(repeats):
        p = params.detach().clone().requires_grad_(True)
        if p.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = simulate(forcing, p, lag_method=lag_method, validate=validate)
        out["GPP"].sum().backward()
        if p.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def run(n_sites: int, n_days: int, dtype: torch.dtype, device: str, repeats: int) -> dict:
    forcing, params = make_inputs(n_sites, n_days, dtype, device)
    time_step(forcing, params, "scan", 1)  # warm-up (allocator, CUDA context)
    fast = time_step(forcing, params, "scan", repeats)
    naive = time_step(forcing, params, "loop", max(1, repeats // 3))
    # The hot path of calibration and training skips input validation (validate=False).
    hot = time_step(forcing, params, "scan", repeats, validate=False)
    return {"device": device, "fast_s": fast, "naive_s": naive, "ratio": naive / fast,
            "fast_novalidate_s": hot}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=196)
    ap.add_argument("--days", type=int, default=3650)
    ap.add_argument("--repeats", type=int, default=10,
                    help="runs per timing of the fast model (best is kept); naive: a third")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        print("CUDA: not available on this machine; skipped")
        devices.remove("cuda")
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"forward+backward, {args.sites} sites x {args.days} days, {args.dtype}")
    for device in devices:
        r = run(args.sites, args.days, dtype, device, args.repeats)
        name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
        print(f"{device:4s} ({name}): fast (scan) {r['fast_s']:.3f} s   "
              f"naive (loop over days) {r['naive_s']:.3f} s   ratio {r['ratio']:.1f}x   "
              f"(fast without input validation: {r['fast_novalidate_s']:.3f} s)")


if __name__ == "__main__":
    main()

"""Benchmark: threads under load. Does an evaluation slow down more than the lost cores explain?

    .venv/bin/python benchmarks/bench_threads.py [--sites 196] [--days 3650] [--busy 2]

One CMA-ES population (``--sites`` x 11 candidates x ``--days``, float32) is evaluated by
:func:`lue_spie.cost.population_cost`, through the fused kernel and through the torch path,
with 1 and 2 threads (:func:`lue_spie.execution.apply_threads`), first on the machine as it
is, then with ``--busy`` busy-loop processes beside it (``while True: pass``, one per core
they take away, like ``stress --cpu N``). Each time is the mean of ``--repeats`` runs. With N
busy loops on C cores, a process with T threads can expect ``T / (T + N)`` of the machine
when all are runnable, so its time may grow by about ``(T + N) / C`` when ``T + N > C``; a
thread-oversubscription collapse (threads waiting at barriers for a core held by another
process) shows as a growth far beyond that. The load average is printed with each number.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import torch

from lue_spie.cost import population_cost, prepare_cost
from lue_spie.execution import apply_threads, usable_cores
from lue_spie.params import from_unconstrained

sys.path.insert(0, os.path.dirname(__file__))
from bench_model import make_inputs, make_observations  # noqa: E402


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _mean(fn, repeats: int) -> float:
    """Mean wall time of ``repeats`` runs after a warm-up: under load the best of a few short
    runs would catch a moment alone on a core and hide the slowdown this measures."""
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=196)
    ap.add_argument("--days", type=int, default=3650)
    ap.add_argument("--pop", type=int, default=11)
    ap.add_argument("--busy", type=int, default=2, help="busy-loop processes to add")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    forcing, _ = make_inputs(args.sites, args.days, torch.float32, "cpu")
    obs, good = make_observations(forcing, args.sites, args.days)
    data = prepare_cost(forcing, obs, good, dtype=torch.float32)
    g = torch.Generator().manual_seed(2)
    pop = from_unconstrained(torch.randn(args.sites, args.pop, 13, generator=g,
                                         dtype=torch.float64)).float()
    n = args.sites * args.pop
    print(f"{usable_cores()} usable core(s); {args.sites} sites x {args.pop} candidates x "
          f"{args.days} days, float32; load average {_load()}")
    results: dict[tuple[str, int, str], float] = {}
    busy: list[subprocess.Popen] = []
    try:
        for phase in ("as is", f"+{args.busy} busy"):
            if phase != "as is":
                busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                        for _ in range(args.busy)]
                time.sleep(2.0)
            for path in ("kernel", "torch"):
                for threads in (1, 2):
                    apply_threads(kernel=threads, torch_threads=threads)
                    t = _mean(lambda p=path: population_cost(data, pop, path=p), args.repeats)
                    results[(path, threads, phase)] = t
                    print(f"[{phase:8s}] {path:6s} {threads} thread(s): "
                          f"{1e6 * t / n:6.1f} us per site-evaluation; load {_load()}",
                          flush=True)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    phase = f"+{args.busy} busy"
    for path in ("kernel", "torch"):
        for threads in (1, 2):
            grow = results[(path, threads, phase)] / results[(path, threads, "as is")]
            print(f"{path:6s} {threads} thread(s): {grow:.2f}x slower with {args.busy} busy "
                  "loops")
    apply_threads(torch_threads=1)


if __name__ == "__main__":
    main()

"""Benchmark: OpenMP's wait policy when a parallel Numba kernel and torch share a process.

SPIE trains with torch on one thread and evaluates populations with the fused kernel (Numba,
OpenMP layer, the libgomp that torch loads). With libgomp's default wait policy the kernel's
idle threads spin after each parallel region and take the core that torch's next step
needs. This script interleaves a parallel Numba reduction with torch matrix products in a
fresh process per policy and reports wall and CPU time, so the ratio compares like with
like in one run.

    .venv/bin/python benchmarks/bench_omp_wait.py [--rounds 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_CHILD = r"""
import json, sys, time
import numpy as np, torch
from numba import njit, prange

@njit(parallel=True)
def reduce(a):
    s = 0.0
    for i in prange(a.size):
        s += a[i] * a[i]
    return s

torch.set_num_threads(1)
a = np.ones(200_000)
x = torch.randn(256, 256)
reduce(a)
rounds = int(sys.argv[1])
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(rounds):
    reduce(a)
    for _ in range(5):
        x @ x
print(json.dumps({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}))
"""


def run(policy: str | None, rounds: int) -> dict[str, float]:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", _CHILD, str(rounds)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    default, passive = run(None, args.rounds), run("PASSIVE", args.rounds)
    print("| wait policy | wall [s] | CPU [s] |\n|---|---|---|")
    print(f"| libgomp default | {default['wall']:.2f} | {default['cpu']:.2f} |")
    print(f"| PASSIVE (lue_spie's default) | {passive['wall']:.2f} | {passive['cpu']:.2f} |")
    print(f"default / PASSIVE, wall: {default['wall'] / passive['wall']:.1f}x")


if __name__ == "__main__":
    main()

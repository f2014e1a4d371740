"""Benchmark: the LUE model's evaluation paths, with their references, in one run.

    .venv/bin/python benchmarks/bench_model.py [--sites 196] [--days 3650] [--pop 11]
                                               [--threads 1 2] [--device cpu|cuda|all]
                                               [--repeats 15] [--json FILE]

Everything below is measured in the same process on the same inputs (seasonal random
forcing; random parameter vectors inside the bounds with every lag active, the worst case,
and, where marked, with the lag mask of virtual FLUXNET: alpha_T free at 30 % of the sites,
alpha_W at 16 %). Each time is the best of ``--repeats`` runs (the machine is shared: the best
run is the one least disturbed by the other processes); the load average is printed.

1. **Forward + backward** (SPIE's differentiable path), float32, ``sites x days``:
   ``simulate(prepared_forcing, params)`` then ``GPP.sum().backward()`` with respect to the
   ``(sites, 13)`` parameters (the fused model), also with the raw forcing mapping (prepared
   on the fly) and, as the reference, the composable implementation
   (``method="composable"``: the same equations as a chain of differentiable torch
   operations, the way the model was built before the fused node).
2. **Forward only, a CMA-ES population** (site calibration, OPT-All, OPT-PFT):
   :func:`lue_spie.cost.population_cost` of a ``(sites, pop, 13)`` population, float32 and
   float64, reported per site-evaluation (one candidate at one site over all days), by the
   fused kernel (:mod:`lue_spie.model.kernel`, the default on the CPU; ``--threads`` sets its
   threads as well as torch's) and, for reference, by the torch path (``path="torch"``).
3. **The simplest peer**: a careful NumPy + SciPy evaluation of the same calibration cost for
   one site and one candidate (vectorised over days, the parameter-independent parts
   precomputed per site, lag filters by ``scipy.signal.lfilter``), float64 and float32; the
   faster is the reference. Its costs are checked against :func:`population_cost`.

Ratios: composable / fused (1), NumPy peer / population path per site-evaluation (3), torch
path / kernel (2), and the kernel's speed-up from one thread to each other thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

# isort: off
# lue_spie first: it sets OMP_WAIT_POLICY=PASSIVE before torch loads libgomp; a process that
# imported torch first keeps the fused kernel on one thread (lue_spie.execution.apply_threads),
# and the two-thread rows would not measure two kernel threads.
import lue_spie  # noqa: F401
# isort: on
import numpy as np
import scipy.signal
import torch

from lue_spie.cost import STRESS, population_cost, prepare_cost
from lue_spie.execution import apply_threads
from lue_spie.model import CA_REF, CI_MIN, CO2_DENOMINATOR_MIN, prepare_forcing, simulate
from lue_spie.params import PARAMETERS, from_unconstrained, index


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


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


def make_observations(forcing, n_sites: int, n_days: int, seed: int = 1):
    """GPP_obs of one random vector per site plus noise; 85 % good days, some gaps."""
    g = torch.Generator().manual_seed(seed)
    truth = from_unconstrained(torch.randn(n_sites, 13, generator=g, dtype=torch.float64))
    f64 = {k: v.double().cpu() for k, v in forcing.items()}
    with torch.no_grad():
        gpp = simulate(f64, truth)["GPP"]
    obs = gpp * (1 + 0.15 * torch.randn(n_sites, n_days, generator=g, dtype=torch.float64))
    obs[:, ::23] = float("nan")
    good = torch.rand(n_sites, n_days, generator=g) > 0.15
    return obs, good


def population(n_sites: int, pop: int, seed: int = 2, realistic_mask: bool = False):
    """Random candidate vectors ``(sites, pop, 13)`` (float64), optionally lag-masked."""
    g = torch.Generator().manual_seed(seed)
    p = from_unconstrained(torch.randn(n_sites, pop, 13, generator=g, dtype=torch.float64))
    if realistic_mask:
        free_T = torch.rand(n_sites, generator=g) < 0.30  # Koeppen D/E
        free_W = torch.rand(n_sites, generator=g) < 0.16  # Koeppen B
        p[~free_T, :, index("alpha_T")] = 0.0
        p[~free_W, :, index("alpha_W")] = 0.0
    return p


#: CPU time of the best runs, by the timing's name (see best_time).
CPU: dict[str, float] = {}


def best_time(fn, repeats: int, name: str | None = None) -> float:
    """Best wall time of ``repeats`` runs (after a warm-up run).

    The best CPU time of the process (all threads) is recorded in ``CPU[name]``: on a machine
    shared with other work the wall time includes waiting for a core, the CPU time does not
    (it still includes the slowdown from caches shared with the other processes).
    """
    fn()  # warm-up (allocator, scratch memory, lazy imports)
    best = best_cpu = float("inf")
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    if name is not None:
        CPU[name] = best_cpu
    return best


# ------------------------------------------------------------------------------ NumPy peer
class NumpyPeer:
    """The calibration cost of one candidate at one site in NumPy + SciPy.

    Written as a careful user of NumPy would: everything that does not depend on the
    parameters is computed once per site (APAR, log CI, log(CA_REF/ca), the good days'
    observations and their sum of squares, the days under each stress), each sensitivity
    function is one vectorised expression over the days, the lag filters are
    ``scipy.signal.lfilter`` (compiled, and skipped when the lag is 0), and the ideal
    constraint is evaluated where its ramp maxima lie (as the fast path does). The same
    equations as :mod:`lue_spie.model` and :mod:`lue_spie.cost`.
    """

    def __init__(self, forcing: dict, obs: np.ndarray, good: np.ndarray, dtype=np.float64,
                 w_ideal: float = 1e3, w_nonideal: float = 1.0):
        f = {k: np.asarray(v, dtype=np.float64) for k, v in forcing.items()}
        self.dtype = dtype
        cast = lambda x: np.ascontiguousarray(x, dtype=dtype)  # noqa: E731
        self.T, self.W, self.VPD, self.ca = (cast(f[k]) for k in ("T", "W", "VPD", "CO2"))
        self.APAR = cast(f["PAR"] * f["FAPAR"])
        self.log_CI = cast(np.log(np.clip(f["CI"], CI_MIN, 1.0)))
        self.log_ca = cast(np.log(CA_REF / f["CO2"]))
        use = good & np.isfinite(obs)
        self.use = use
        self.obs = cast(obs[use])
        o = obs[use]
        self.sst = float(((o - o.mean()) ** 2).sum())
        n_days = max(int(use.sum()), 1)
        self.stress = []
        for key, op, limit, out_key, threshold in STRESS:
            x = {"T": self.T, "VPD": self.VPD, "W": self.W}[key]
            days = np.flatnonzero(((x < limit) if op == "<" else (x > limit)) & use)
            self.stress.append((out_key, days, threshold, 1.0 / n_days))
        self.apar_max = float(self.APAR.max())
        self.w_ideal, self.w_nonideal = w_ideal, w_nonideal

    @staticmethod
    def _lag(x, alpha):
        if alpha == 0.0:
            return x
        y, _ = scipy.signal.lfilter([1.0 - alpha], [1.0, -alpha], x, zi=[alpha * x[0]])
        return y

    def cost(self, p: np.ndarray) -> float:
        (eps, Topt, kT, kappa, Ca0, Ckappa, Cm, kW, WI, gamma, mu, aT, aW) = (
            float(v) for v in p)
        Tf = self._lag(self.T, aT)
        Wf = self._lag(self.W, aW)
        fT = 1.0 / np.cosh((Tf - Topt) / kT)
        fV = np.exp(kappa * self.VPD * np.exp(Ckappa * (np.log(Ca0 / CA_REF) + self.log_ca)))
        dca = self.ca - Ca0
        fC = 1.0 + dca / np.maximum(dca + Cm, CO2_DENOMINATOR_MIN)
        fW = 1.0 / (1.0 + np.exp(kW * (Wf - WI)))
        fL = 1.0 / (1.0 + gamma * self.APAR)
        fCI = np.exp(mu * self.log_CI)
        gpp = self.APAR * eps * fT * fV * fC * fW * fL * fCI
        d = gpp[self.use] - self.obs
        nse = 1.0 - float(d @ d) / self.sst
        f = {"fT": fT, "fVPD_VPD": fV, "fW": fW}
        c_non = sum(float(np.maximum(f[k][days] - thr, 0.0).sum()) * w
                    for k, days, thr, w in self.stress)
        # Ideal constraint at the ramps' maxima (fT at Topt within -5..40 degC, the VPD part
        # and fW at an end of their ramps, fL at APAR = 0).
        z = (min(max(Topt, -5.0), 40.0) - Topt) / kT
        vpd_max = max(np.exp(kappa * v * np.exp(Ckappa * np.log(Ca0 / 400.0)))
                      for v in (0.0, 4500.0))
        fw_max = max(1.0 / (1.0 + np.exp(kW * (w - WI))) for w in (0.0, 1.0))
        fl_max = max(1.0 / (1.0 + gamma * a) for a in (0.0, self.apar_max))
        c_ideal = (abs(1 - 1 / np.cosh(z)) + abs(1 - vpd_max) + abs(1 - fw_max)
                   + abs(1 - fl_max))
        return (1.0 - nse) + self.w_ideal * c_ideal + self.w_nonideal * c_non


# ------------------------------------------------------------------------------ the measures
def forward_backward(args, device: str) -> dict:
    forcing, params = make_inputs(args.sites, args.days, torch.float32, device)
    pf = prepare_forcing(forcing)

    def step(f, method="auto"):
        p = params.detach().clone().requires_grad_(True)
        out = simulate(f, p, validate=False, method=method)
        out["GPP"].sum().backward()
        if p.is_cuda:
            torch.cuda.synchronize()

    fused = best_time(lambda: step(pf), args.repeats, "fused")
    raw = best_time(lambda: step(forcing), args.repeats, "raw")
    composable = best_time(lambda: step(pf, "composable"), max(3, args.repeats // 3), "comp")
    return {"fused_s": fused, "fused_raw_forcing_s": raw, "composable_s": composable,
            "ratio_composable_over_fused": composable / fused,
            "cpu": {"fused_s": CPU["fused"], "fused_raw_forcing_s": CPU["raw"],
                    "composable_s": CPU["comp"],
                    "ratio_composable_over_fused": CPU["comp"] / CPU["fused"]}}


def population_path(args, device: str, dtype: torch.dtype, realistic_mask: bool) -> dict:
    forcing, _ = make_inputs(args.sites, args.days, dtype, device)
    obs, good = make_observations(forcing, args.sites, args.days)
    data = prepare_cost(forcing, obs, good, dtype=dtype, device=device)
    pop = population(args.sites, args.pop, realistic_mask=realistic_mask).to(dtype).to(device)

    def run():
        population_cost(data, pop)
        if pop.is_cuda:
            torch.cuda.synchronize()

    t = best_time(run, max(3, args.repeats // 2), "gen")
    n = args.sites * args.pop
    # The same on the NumPy peer's subset of sites: a call as short as the peer's timed loop
    # (on a shared machine the best of short runs is less disturbed than that of long ones).
    m = min(args.peer_sites, args.sites)
    part, sub = data.select(slice(0, m)), pop[:m]
    t_sub = best_time(lambda: population_cost(part, sub), args.repeats, "sub")
    out = {"generation_s": t, "per_site_evaluation_s": t / n, "evaluations": n,
           "subset_per_site_evaluation_s": t_sub / (m * args.pop),
           "cpu": {"per_site_evaluation_s": CPU["gen"] / n,
                   "subset_per_site_evaluation_s": CPU["sub"] / (m * args.pop)}}
    if device == "cpu" and not args.no_torch_path:
        t_torch = best_time(lambda: population_cost(data, pop, path="torch"),
                            max(3, args.repeats // 3), "torch")
        ref = population_cost(data, pop, path="torch")["cost"]
        got = population_cost(data, pop)["cost"]
        out.update({"torch_path_per_site_evaluation_s": t_torch / n,
                    "ratio_torch_path_over_kernel": t_torch / t,
                    "max_rel_cost_difference_kernel_torch": float(
                        ((got - ref).abs() / ref.abs().clamp_min(1.0)).max())})
        out["cpu"]["torch_path_per_site_evaluation_s"] = CPU["torch"] / n
    return out


def numpy_peer(args) -> dict:
    forcing, _ = make_inputs(args.sites, args.days, torch.float64, "cpu")
    obs, good = make_observations(forcing, args.sites, args.days)
    pop = population(args.sites, args.pop)
    f = {k: v.numpy() for k, v in forcing.items()}
    n_sites = min(args.peer_sites, args.sites)
    out = {}
    ref = population_cost(prepare_cost(forcing, obs, good), pop)["cost"].numpy()
    for name, dt in (("float64", np.float64), ("float32", np.float32)):
        peers = [NumpyPeer({k: v[s] for k, v in f.items()}, obs[s].numpy(), good[s].numpy(),
                           dtype=dt) for s in range(n_sites)]
        # Same cost as the fast path (relative to max(1, |cost|): random candidates can score
        # NSE << 0, i.e. costs of 1e6).
        err = max(abs(peers[s].cost(pop[s, j].numpy()) - ref[s, j]) / max(1.0, abs(ref[s, j]))
                  for s in range(n_sites) for j in range(args.pop))

        def run(peers=peers):
            for s, peer in enumerate(peers):
                for j in range(args.pop):
                    peer.cost(pop[s, j].numpy())

        t = best_time(run, max(3, args.repeats // 3), "peer")
        out[name] = {"per_site_evaluation_s": t / (n_sites * args.pop),
                     "cpu_per_site_evaluation_s": CPU["peer"] / (n_sites * args.pop),
                     "max_rel_cost_difference": err}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=196)
    ap.add_argument("--days", type=int, default=3650)
    ap.add_argument("--pop", type=int, default=11, help="candidates per site (pycma: 11)")
    ap.add_argument("--repeats", type=int, default=15, help="runs per timing (best kept)")
    ap.add_argument("--peer-sites", type=int, default=20,
                    help="sites (x pop candidates) timed with the NumPy peer")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="thread counts (torch and the fused kernel) to measure, in one run")
    ap.add_argument("--no-torch-path", action="store_true",
                    help="skip the reference timing of population_cost's torch path")
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        print("CUDA: not available on this machine; skipped")
        devices.remove("cuda")
    res: dict = {"machine": {"platform": platform.platform(), "cores": os.cpu_count(),
                             "torch": torch.__version__, "load_before": load()},
                 "sizes": {"sites": args.sites, "days": args.days, "pop": args.pop}}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}; load average {load()}")
    print(f"{args.sites} sites x {args.days} days; population {args.pop} per site")
    for device in devices:
        for threads in (args.threads if device == "cpu" else [torch.get_num_threads()]):
            set_to = apply_threads(kernel=threads, torch_threads=threads)
            if set_to["kernel"] != threads:
                print(f"[{device}/{threads}t] the kernel runs {set_to['kernel']} thread(s) here "
                      "(usable cores, or torch imported before lue_spie)")
            key = f"{device}/{threads}t"
            r = {"forward_backward_float32": forward_backward(args, device)}
            for dt in (torch.float32, torch.float64):
                for mask in (False, True):
                    name = f"population_{str(dt)[6:]}" + ("_lag_mask" if mask else "")
                    r[name] = population_path(args, device, dt, mask)
            res[key] = r
            fb = r["forward_backward_float32"]
            for what in ("wall", "cpu"):
                v = fb if what == "wall" else fb["cpu"]
                print(f"[{key}] forward + backward, float32, {what}: fused "
                      f"{1e3 * v['fused_s']:.1f} ms (raw forcing "
                      f"{1e3 * v['fused_raw_forcing_s']:.1f} ms); composable "
                      f"{1e3 * v['composable_s']:.1f} ms; "
                      f"ratio {v['ratio_composable_over_fused']:.1f}x")
            for name, v in r.items():
                if name.startswith("population"):
                    print(f"[{key}] {name:28s} {1e3 * v['generation_s']:7.1f} ms per "
                          f"generation = {1e6 * v['per_site_evaluation_s']:6.1f} us per "
                          f"site-evaluation ({1e6 * v['subset_per_site_evaluation_s']:.1f} us "
                          f"on {min(args.peer_sites, args.sites)} sites); cpu "
                          f"{1e6 * v['cpu']['per_site_evaluation_s']:.1f} us "
                          f"({1e6 * v['cpu']['subset_per_site_evaluation_s']:.1f} us)")
                    if "torch_path_per_site_evaluation_s" in v:
                        print(f"[{key}] {'':28s} torch path "
                              f"{1e6 * v['torch_path_per_site_evaluation_s']:.1f} us: kernel "
                              f"{v['ratio_torch_path_over_kernel']:.1f}x faster; costs equal "
                              f"to {v['max_rel_cost_difference_kernel_torch']:.0e} (relative)")
    cpu_keys = [k for k in res if k.startswith("cpu/")]
    if len(cpu_keys) > 1:
        one = res[cpu_keys[0]]
        for key in cpu_keys[1:]:
            for name in ("population_float32", "population_float64"):
                speedup = (one[name]["per_site_evaluation_s"]
                           / res[key][name]["per_site_evaluation_s"])
                res[key][name]["speedup_over_first_thread_count"] = speedup
                print(f"[{key}] {name}: {speedup:.2f}x the rate of {cpu_keys[0]}")
    apply_threads(kernel=args.threads[0], torch_threads=args.threads[0])
    peer = numpy_peer(args)
    res["numpy_peer"] = peer
    best_peer = min(v["per_site_evaluation_s"] for v in peer.values())
    best_peer_cpu = min(v["cpu_per_site_evaluation_s"] for v in peer.values())
    print("\nNumPy + SciPy peer (one site, one candidate): " + ", ".join(
        f"{k} {1e6 * v['per_site_evaluation_s']:.0f} us (cpu "
        f"{1e6 * v['cpu_per_site_evaluation_s']:.0f} us; cost equal to a relative "
        f"{v['max_rel_cost_difference']:.0e})" for k, v in peer.items()))
    for key in (k for k in res if "/" in k):
        for name in ("population_float32", "population_float32_lag_mask"):
            v = res[key][name]
            v["ratio_numpy_peer"] = best_peer / v["per_site_evaluation_s"]
            v["ratio_numpy_peer_same_sites"] = best_peer / v["subset_per_site_evaluation_s"]
            v["cpu"]["ratio_numpy_peer"] = best_peer_cpu / v["cpu"]["per_site_evaluation_s"]
            print(f"[{key}] {name}: {v['ratio_numpy_peer']:.1f}x faster per site-evaluation "
                  f"than the faster NumPy peer ({v['ratio_numpy_peer_same_sites']:.1f}x on "
                  f"the same sites; in cpu time {v['cpu']['ratio_numpy_peer']:.1f}x)")
    res["machine"]["load_after"] = load()
    print(f"\nload average after: {load()}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()

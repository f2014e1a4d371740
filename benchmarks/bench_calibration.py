"""Benchmark: site calibration of all virtual FLUXNET sites (default 196 sites x 10 years).

Goal: at most 10 minutes on the 2-core reference machine (CUDA when present).

Prints and writes (``--out``, default ``results/bench_calibration``):

* time per generation (all active sites batched) and in total, with the machine's load;
* the ratio against evaluating candidates one at a time: on ``--oat-sites`` sites, a few
  CMA-ES generations are run evaluating every candidate in its own model call, in the same
  process just before the batched run; the ratio compares the time per candidate evaluation
  (one at a time / batched, the batched figure taken over the first generations where all
  sites are active);
* the median daily NSE of the calibrated sites, the recovery of the true parameters per
  parameter (R2 = squared Pearson correlation across sites between true and calibrated
  values, and the median absolute error in the [0, 1]-scaled space; lags only where free),
  and the share of edge-hitting sites per parameter;
* ``calibration.parquet`` (+ provenance) and ``summary.json``.

Usage (repository root)::

    .venv/bin/python benchmarks/bench_calibration.py                 # 196 x 10, float64
    .venv/bin/python benchmarks/bench_calibration.py --dtype float32
    .venv/bin/python benchmarks/bench_calibration.py --n-sites 20 --max-gen 100   # quick
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lue_spie import store
from lue_spie.calibrate import (
    CalibrationSettings,
    calibrate_sites,
    skip_reasons,
    write_results,
)
from lue_spie.calibrate.engine import Engine, _new_es
from lue_spie.cost import calibration_cost
from lue_spie.data import load_dataset
from lue_spie.data.io import as_forcing_batch
from lue_spie.metrics import MIN_POINTS
from lue_spie.model import simulate
from lue_spie.params import N_PARAMS, PARAMETERS, lag_mask, to_scaled


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def one_at_a_time(dataset, sites, settings: CalibrationSettings, n_gen: int) -> dict:
    """Run ``n_gen`` CMA-ES generations on ``sites``, each candidate in its own model call."""
    d = as_forcing_batch(dataset, sites=sites, dtype=settings.torch_dtype,
                         device=settings.device)
    assert all(r is None for r in skip_reasons(d, MIN_POINTS))
    engine = Engine(d, [(s, [i]) for i, s in enumerate(d.sites)], settings)
    for u in engine.units:
        _new_es(u, settings, np.full(int(u.free.sum()), 0.5), settings.popsize)
    dtype = torch.float64 if settings.dtype == "float64" else torch.float32
    n_eval = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(n_gen):
            for u in engine.units:
                X = np.asarray(u.es.ask())
                full = np.zeros((len(X), N_PARAMS))
                full[:, u.free] = X
                phys = engine.to_physical(full, u.rows)[0]
                i = u.rows[0]
                forcing = {k: v[i:i + 1] for k, v in d.forcing.items()}
                f = []
                for x in phys:  # one candidate, one model call
                    p = torch.as_tensor(x, dtype=dtype, device=settings.device).reshape(1, 13)
                    sim = simulate(forcing, p, validate=False)
                    c = calibration_cost(sim, d.GPP_obs[i:i + 1], d.good[i:i + 1], p, forcing)
                    f.append(float(c["cost"][0]))
                    n_eval += 1
                u.es.tell(list(X), f)
    elapsed = time.perf_counter() - t0
    return {"sites": list(d.sites), "generations": n_gen, "evaluations": n_eval,
            "seconds": elapsed, "s_per_evaluation": elapsed / n_eval}


def recovery(table, truth) -> dict:
    """R2 and median |error| (scaled) between true and calibrated parameters, per parameter."""
    ok = table[table["status"] == "ok"].set_index("site")
    tr = truth.set_index("site").loc[ok.index, list(PARAMETERS)].to_numpy(float)
    est = ok[list(PARAMETERS)].to_numpy(float)
    free = lag_mask(list(ok["koeppen"]))
    out = {}
    for j, name in enumerate(PARAMETERS):
        m = free[:, j]
        if m.sum() < 3:
            out[name] = {"n": int(m.sum()), "r2": None, "median_abs_err_scaled": None}
            continue
        a, b = tr[m, j], est[m, j]
        r = np.corrcoef(a, b)[0, 1] if a.std() > 0 and b.std() > 0 else np.nan
        err = np.abs(to_scaled(est[m])[:, j] - to_scaled(tr[m])[:, j])
        out[name] = {"n": int(m.sum()), "r2": float(r**2),
                     "median_abs_err_scaled": float(np.median(err)),
                     "edge_share": float(ok[f"edge_{name}"].to_numpy(bool)[m].mean())}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="virtual FLUXNET folder (default: generate "
                    "one into a temporary folder)")
    ap.add_argument("--n-sites", type=int, default=196)
    ap.add_argument("--n-years", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--structural-error", action="store_true")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    ap.add_argument("--max-gen", type=int, default=CalibrationSettings.max_gen)
    ap.add_argument("--restarts", type=int, default=CalibrationSettings.restarts)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--oat-sites", type=int, default=3, help="sites for the one-at-a-time "
                    "comparison")
    ap.add_argument("--oat-gens", type=int, default=2)
    ap.add_argument("--out", default="results/bench_calibration")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    tmp = None
    if args.data is None:
        from lue_spie.data.virtual import generate

        tmp = tempfile.TemporaryDirectory(prefix="bench_cal_")
        t0 = time.perf_counter()
        data_dir = generate(n_sites=args.n_sites, n_years=args.n_years, seed=args.seed,
                            out=Path(tmp.name) / "vf", structural_error=args.structural_error)
        print(f"generated virtual FLUXNET {args.n_sites} x {args.n_years} in "
              f"{time.perf_counter() - t0:.1f} s")
    else:
        data_dir = Path(args.data)
    ds = load_dataset(data_dir)
    sites = list(ds.sites["site"])[: args.n_sites]
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else (
        "cpu" if args.device == "auto" else args.device)
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, threads {torch.get_num_threads()}, device {device}"
          + (f" ({torch.cuda.get_device_name(0)})" if device.startswith("cuda") else ""))
    print(f"load average before: {_load()}")

    settings = CalibrationSettings(dtype=args.dtype, device=device, max_gen=args.max_gen,
                                   restarts=args.restarts, seed=args.seed)
    oat = one_at_a_time(ds, sites[: args.oat_sites], settings, args.oat_gens)
    print(f"one at a time: {oat['evaluations']} evaluations in {oat['seconds']:.2f} s "
          f"= {1e3 * oat['s_per_evaluation']:.2f} ms per candidate")

    stamps: list[tuple[int, float, int]] = []

    def cb(gen, engine):
        stamps.append((gen, time.perf_counter(), sum(not u.done for u in engine.units)))

    t0 = time.perf_counter()
    res = calibrate_sites(ds, settings, sites=sites, progress=not args.no_progress,
                          callback=cb)
    total = time.perf_counter() - t0
    # Generation times from the callback's stamps (the first generation has no start stamp).
    times = np.diff([s[1] for s in stamps]) if len(stamps) > 1 else np.array([res.elapsed_s])
    active = np.array([s[2] for s in stamps])
    t = res.table
    ok = t[t["status"] == "ok"]
    pop = CalibrationSettings().popsize or 11
    first = float(np.median(times[:10]))  # all sites still active in the first generations
    batched_per_eval = first / (len(ok) * pop)
    rec = recovery(t, ds.truth) if ds.truth is not None else {}
    summary = {
        "command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
        "machine": {"platform": platform.platform(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "device": device, "load_after": _load()},
        "n_sites": len(t), "n_ok": len(ok), "n_days": int(ds.site_day.groupby("site").size()
                                                         .max()),
        "settings": res.settings.to_dict(),
        "total_s": total, "optimisation_s": res.elapsed_s, "generations": res.generations,
        "evaluations": res.n_evaluations,
        "s_per_generation_all_active": first,
        "s_per_generation_mean": float(times.mean()),
        "batched_ms_per_evaluation": 1e3 * batched_per_eval,
        "one_at_a_time": oat,
        "speedup_vs_one_at_a_time": oat["s_per_evaluation"] / batched_per_eval,
        "active_sites_at": {int(g): int(a) for g, a in zip([s[0] for s in stamps], active,
                                                           strict=True) if g % 25 == 0},
        "nse_median": float(ok["nse"].median()), "nse_q10": float(ok["nse"].quantile(0.1)),
        "nse_min": float(ok["nse"].min()),
        "stop_reasons": ok["stop_reason"].str.split("=").str[0].value_counts().to_dict(),
        "recovery": rec,
    }
    out = Path(args.out)
    write_results(res, out, inputs={"site_day": data_dir / "site_day.parquet",
                                    "sites": data_dir / "sites.parquet"})
    store.atomic_write_json(out / "summary.json", summary)

    print(f"\n{len(ok)}/{len(t)} sites calibrated in {total:.1f} s total "
          f"({res.elapsed_s:.1f} s optimisation, {res.generations} generations, "
          f"{res.n_evaluations} evaluations)")
    print(f"time per generation with all {len(ok)} sites active: {first:.2f} s; mean over the "
          f"run {times.mean():.2f} s (converged sites leave the batch)")
    speedup = summary["speedup_vs_one_at_a_time"]
    print(f"batched: {1e3 * batched_per_eval:.3f} ms per candidate; one at a time: "
          f"{1e3 * oat['s_per_evaluation']:.2f} ms; speed-up x{speedup:.0f}")
    print(f"daily NSE: median {summary['nse_median']:.3f}, 10% quantile "
          f"{summary['nse_q10']:.3f}, min {summary['nse_min']:.3f}")
    print(f"stop reasons: {summary['stop_reasons']}")
    if rec:
        print("\nparameter      n    R2(true,calib)  median|err| scaled  edge share")
        for name, r in rec.items():
            if r["r2"] is None:
                print(f"{name:10s} {r['n']:5d}   (fixed by the lag mask)")
            else:
                print(f"{name:10s} {r['n']:5d}   {r['r2']:8.3f}        "
                      f"{r['median_abs_err_scaled']:8.3f}          {r['edge_share']:.2f}")
    print(f"\nload average after: {_load()}; wrote {out}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

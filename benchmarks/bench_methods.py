"""Benchmark: the eleven baseline extrapolation methods under ten-fold cross-validation.

Goal (issue 9, 2-core reference machine): all eleven baselines (PFTmean, Climmean, PFTmed,
Climmed, Sitesim, OPT-All, OPT-PFT, sRF, mRF, mNN, P-model) on 196 virtual sites x 10 years
in at most 20 minutes in total.

What runs, in this process and in this order:

1. **setup** (timed, not part of the total): the virtual FLUXNET is generated with the
   project's generator (:func:`lue_spie.data.virtual.generate`) unless ``--data`` names a
   dataset; the site calibration the baselines learn from is run with
   :func:`lue_spie.calibrate.calibrate_sites` (CMA-ES settings of the profile) unless
   ``--calib`` names a calibration folder (``calibration.parquet``); a given dataset whose
   generator version differs from the current one is reported (not refused);
2. **methods**: for every method, one call of
   :func:`lue_spie.extrapolate.run` (what ``lue-spie extrapolate --methods
   NAME`` runs) with that method only, in this process (no Dask workers), into a fresh
   results folder per method so that nothing is reused; the wall time and the CPU time
   (``time.process_time``: this process, all its threads) of the whole call (loading the
   dataset, the split, fitting, predicting, simulating GPP, writing the files) and the
   seconds of the method's units alone (``ExtrapolationResult.ran``);
3. **skill**: from each call's summary (held-out site, daily NSE), the median held-out daily
   NSE and the share of sites with a positive daily NSE.

Method settings are those of a book profile (:data:`lue_spie.book.profiles.PROFILES`,
``--profile``, default ``paper``): the methods' hyperparameters of its
``extrapolate.method_params`` and its site calibration's settings (``calibrate``), passed to
the methods exactly as the book's chapters pass them. The machine
is shared: the load average is recorded at the start, after each method and at the end.

The paper gives no per-method medians in its text; its headline is the share of sites with a
positive daily NSE: SPIE 74 %, every baseline below 41 % (real FLUXNET, 196 sites). That is
printed beside the shares measured here (on virtual FLUXNET the LUE model is the true model,
so the baselines score far higher than on real data).

Usage (repository root)::

    .venv/bin/python benchmarks/bench_methods.py --sites 24 --years 3 --profile demo  # quick
    .venv/bin/python benchmarks/bench_methods.py --data DIR --calib DIR --out DIR     # 196 x 10
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lue_spie import extrapolate, store
from lue_spie.book.profiles import PROFILES, Profile
from lue_spie.calibrate import CalibrationSettings, calibrate_sites, write_results
from lue_spie.data import load_dataset
from lue_spie.data.virtual import GENERATOR_VERSION, generate
from lue_spie.execution import apply_threads
from lue_spie.extrapolate import ExtrapolationSettings
from lue_spie.layout import Layout
from lue_spie.methods.base import get_method, method_class, paper_order

#: The eleven baselines: every method of the paper but SPIE, in the paper's order.
BASELINES: tuple[str, ...] = tuple(m for m in paper_order() if m != "SPIE")
#: The paper's headline (share of sites with daily NSE > 0, real FLUXNET, 196 sites).
PAPER_SHARE_SPIE = 0.74
PAPER_SHARE_BASELINES_BELOW = 0.41
#: Goal of issue 9 for the eleven baselines together [s].
GOAL_TOTAL_S = 20 * 60


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def method_params(profile: Profile, device: str) -> dict[str, dict[str, Any]]:
    """The methods' hyperparameters from a book profile, as the chapters pass them."""
    out: dict[str, dict[str, Any]] = {}
    for method, params in profile.extrapolate.method_params.items():
        if method not in BASELINES:
            continue
        params = copy.deepcopy(dict(params))
        if isinstance(getattr(get_method(method), "settings", None), CalibrationSettings):
            params["settings"]["device"] = device  # the searches run on the chapter's device
        out[method] = params
    return out


def skill(summary: pd.DataFrame) -> dict[str, Any]:
    """Median held-out daily NSE and the share of held-out sites with NSE > 0."""
    nse = summary["nse"].to_numpy(float)
    finite = np.isfinite(nse)
    return {"sites": int(len(nse)), "sites_without_nse": int((~finite).sum()),
            "nse_median": float(np.median(nse[finite])) if finite.any() else None,
            "nse_q10": float(np.quantile(nse[finite], 0.1)) if finite.any() else None,
            "share_nse_positive": float((nse[finite] > 0).sum() / len(nse)) if len(nse)
            else None,
            "sites_with_note": int(summary["note"].fillna("").astype(str).str.len().gt(0).sum())}


def _dataset_version(data_dir: Path) -> str | None:
    prov = store.read_provenance(data_dir / "site_day.parquet")
    return (prov.get("settings") or {}).get("generator_version")


def write_summary(args: argparse.Namespace, argv: list[str] | None, machine: dict,
                  profile: Profile, n_sites: int, n_days: int, setup: dict,
                  rows: list[dict], finished: bool) -> None:
    """``--out/summary.json`` (after every method, so that a run cut short keeps its part)."""
    if not args.out:
        return
    total = sum(r["wall_s"] for r in rows)
    summary = {
        "command": " ".join(["bench_methods.py", *(argv if argv is not None else sys.argv[1:])]),
        "finished": finished, "machine": machine, "profile": profile.name,
        "method_settings": method_params(profile, "-"),
        "n_sites": n_sites, "n_days": n_days, "folds": args.folds, "seed": args.seed,
        "generator_version": GENERATOR_VERSION, "setup": setup, "methods": rows,
        "total_s": total, "total_cpu_s": sum(r["cpu_s"] for r in rows),
        "goal_s": GOAL_TOTAL_S, "all_baselines": set(BASELINES) <= {r["method"] for r in rows},
        "goal_met": (finished and total <= GOAL_TOTAL_S
                     and set(BASELINES) <= {r["method"] for r in rows}),
        "paper": {"share_nse_positive_spie": PAPER_SHARE_SPIE,
                  "share_nse_positive_baselines_below": PAPER_SHARE_BASELINES_BELOW,
                  "note": "the paper's text gives no per-method median NSE"},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store.atomic_write_json(out / "summary.json", summary)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="dataset folder (default: generate --sites x "
                    "--years virtual FLUXNET into a temporary folder)")
    ap.add_argument("--calib", default=None, help="site-calibration folder with "
                    "calibration.parquet for --data (default: calibrate here, timed apart)")
    ap.add_argument("--sites", type=int, default=196, help="virtual sites to generate")
    ap.add_argument("--years", type=int, default=10, help="years per virtual site")
    ap.add_argument("--seed", type=int, default=0, help="seed of the data, the calibration, "
                    "the split and the methods")
    ap.add_argument("--profile", default="paper", choices=("demo", "paper"),
                    help="book profile whose method (and calibration) settings are used")
    ap.add_argument("--methods", nargs="+", default=list(BASELINES), metavar="NAME",
                    help="methods (default: the eleven baselines in the paper's order)")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--device", default="cpu", help="device of the pooled optimisations and "
                    "of the calibration (cpu, cuda, auto)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as "
                    "`lue-spie extrapolate`; 0 = torch's default)")
    ap.add_argument("--kernel-threads", type=int, default=0,
                    help="threads of the fused evaluation kernel (default 0: the cores this "
                    "process may use)")
    ap.add_argument("--keep", default=None, help="keep the extrapolation folders here "
                    "(default: a temporary folder, removed)")
    ap.add_argument("--out", default=None, help="folder for summary.json (default: none)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    unknown = sorted(set(args.methods) - set(paper_order()))
    if unknown:
        print(f"bench_methods: unknown method(s) {unknown}; known: {list(paper_order())}",
              file=sys.stderr)
        return 2
    if args.calib and not args.data:
        print("bench_methods: --calib needs the --data it was calibrated on", file=sys.stderr)
        return 2
    # torch as asked; the fused kernel of the pooled searches on this process's cores.
    threads = apply_threads(kernel=args.kernel_threads, torch_threads=args.threads or None)
    profile = PROFILES[args.profile]
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" \
        else args.device
    params = method_params(profile, device)
    tmp = tempfile.TemporaryDirectory(prefix="bench_methods_")
    work = Path(args.keep) if args.keep else Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)

    machine = {"platform": platform.platform(), "processor": platform.processor()
               or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "kernel_threads": threads["kernel"],
               "device": device,
               "python": sys.version.split()[0], "load_start": _load()}
    print(f"bench_methods: {machine['processor']}, {machine['cores']} cores, torch "
          f"{machine['torch']}, {machine['threads']} thread(s), fused kernel "
          f"{machine['kernel_threads']} thread(s), device {device}, python "
          f"{machine['python']}")
    print(f"load average at start: {machine['load_start']}")
    print(f"profile {profile.name}: " + "; ".join(
        f"{m} {p}" for m, p in method_params(profile, device).items()))

    setup: dict[str, Any] = {}
    if args.data:
        data_dir = Path(args.data)
        version = _dataset_version(data_dir)
        setup["data"] = {"given": True, "generator_version": version}
        if version is not None and version != GENERATOR_VERSION:
            print(f"warning: {data_dir} was made by generator {version}, the current one is "
                  f"{GENERATOR_VERSION}")
    else:
        t0 = time.perf_counter()
        data_dir = generate(n_sites=args.sites, n_years=args.years, seed=args.seed,
                            out=work / "data")
        setup["data"] = {"given": False, "generator_version": GENERATOR_VERSION,
                         "seconds": time.perf_counter() - t0}
        print(f"setup: generated virtual FLUXNET {args.sites} x {args.years} (generator "
              f"{GENERATOR_VERSION}) in {setup['data']['seconds']:.1f} s")
    dataset = load_dataset(data_dir)
    n_sites = len(dataset.sites)
    n_days = int(dataset.site_day.groupby("site").size().max())

    needs_cal = [m for m in args.methods if method_class(m).learns_from == "calibration"]
    calib_dir: Path | None = None
    if not needs_cal:
        setup["calibration"] = None
        print("setup: no site calibration needed by " + ", ".join(args.methods))
    elif args.calib:
        calib_dir = Path(args.calib)
        cal_prov = store.read_provenance(calib_dir / "calibration.parquet")
        setup["calibration"] = {"given": True, "settings": cal_prov.get("settings")}
        given = cal_prov.get("settings") or {}
        print(f"setup: calibration {calib_dir} given (max_gen {given.get('max_gen')}, "
              f"restarts {given.get('restarts')}, dtype {given.get('dtype')})")
    else:
        cal_settings = profile.calibrate.replace(seed=args.seed, device=device)
        print(f"setup: calibrating with the profile's CMA-ES settings: max_gen "
              f"{cal_settings.max_gen}, restarts {cal_settings.restarts}, popsize "
              f"{cal_settings.popsize or 'pycma default'}, {cal_settings.dtype}", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        res = calibrate_sites(dataset, cal_settings, progress=False)
        calib_dir = work / "calibration"
        write_results(res, calib_dir, inputs={"site_day": data_dir / "site_day.parquet",
                                              "sites": data_dir / "sites.parquet"})
        ok = res.table[res.table["status"] == "ok"]
        setup["calibration"] = {"given": False, "settings": cal_settings.to_dict(),
                                "seconds": time.perf_counter() - t0,
                                "cpu_seconds": time.process_time() - c0,
                                "sites_ok": len(ok), "nse_median": float(ok["nse"].median())}
        print(f"setup: site calibration of {n_sites} sites in "
              f"{setup['calibration']['seconds']:.1f} s (CPU "
              f"{setup['calibration']['cpu_seconds']:.1f} s), median daily NSE "
              f"{setup['calibration']['nse_median']:.3f}; load average {_load()}")
    print(f"data: {n_sites} sites x {n_days} days; {args.folds} folds; seed {args.seed}")

    rows: list[dict[str, Any]] = []
    for name in args.methods:
        out = work / "extrapolation" / name
        if out.exists():  # a fresh folder: nothing reused
            shutil.rmtree(out)
        settings = ExtrapolationSettings(
            methods=(name,), n_folds=args.folds, seed=args.seed,
            method_params={name: params[name]} if name in params else {})
        t0, c0 = time.perf_counter(), time.process_time()
        layout = Layout(data_dir=data_dir, calibration_dir=calib_dir, extrapolation_dir=out)
        result = extrapolate.run(layout, settings, progress=False, log=lambda *_: None)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if result.skipped:
            raise RuntimeError(f"{name}: {len(result.skipped)} unit(s) reused from {out}")
        row = {"method": name, "wall_s": wall, "cpu_s": cpu,
               "units_s": float(sum(result.ran.values())), "units": len(result.ran),
               "params": params.get(name, {}),
               **skill(result.summary[result.summary["method"] == name]),
               "load_after": _load()}
        rows.append(row)
        med = row["nse_median"]
        print(f"  {name:9s} {wall:8.1f} s wall, {cpu:8.1f} s CPU, units {row['units_s']:8.1f} "
              f"s; median NSE {med if med is None else f'{med:.3f}'}, NSE > 0 "
              f"{100 * row['share_nse_positive']:.0f} %; load average {row['load_after']}",
              flush=True)
        write_summary(args, argv, machine, profile, n_sites, n_days, setup, rows, False)

    total = sum(r["wall_s"] for r in rows)
    total_cpu = sum(r["cpu_s"] for r in rows)
    machine["load_end"] = _load()
    complete = set(BASELINES) <= {r["method"] for r in rows}
    met = complete and total <= GOAL_TOTAL_S
    print("\n| method | wall [s] | CPU [s] | units [s] | share of total | median daily NSE "
          "| NSE > 0 | paper: NSE > 0 |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        med = "n/a" if r["nse_median"] is None else f"{r['nse_median']:.3f}"
        print(f"| {r['method']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['units_s']:.1f} | "
              f"{100 * r['wall_s'] / total:.0f} % | {med} | "
              f"{100 * r['share_nse_positive']:.0f} % | < {100 * PAPER_SHARE_BASELINES_BELOW:.0f}"
              f" % |")
    print(f"| **total** | **{total:.1f}** | {total_cpu:.1f} | "
          f"{sum(r['units_s'] for r in rows):.1f} | 100 % | | | SPIE "
          f"{100 * PAPER_SHARE_SPIE:.0f} % |")
    verdict = ("met" if met else "missed") if complete else f"{len(rows)} of them run here"
    print(f"\ntotal {total:.1f} s = {total / 60:.1f} min (goal: at most "
          f"{GOAL_TOTAL_S / 60:.0f} min for the eleven baselines): {verdict}; load average at "
          f"end: {machine['load_end']}")
    print("paper reference: its text gives no per-method medians; its headline is the share "
          f"of sites with daily NSE > 0 on real FLUXNET: SPIE {100 * PAPER_SHARE_SPIE:.0f} %, "
          f"every baseline below {100 * PAPER_SHARE_BASELINES_BELOW:.0f} %")

    write_summary(args, argv, machine, profile, n_sites, n_days, setup, rows, True)
    if args.out:
        print(f"wrote {Path(args.out) / 'summary.json'}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

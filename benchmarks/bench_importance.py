"""Benchmark: the feature-importance analysis of ten SPIE fold networks on 196 sites.

    .venv/bin/python benchmarks/bench_importance.py [--results DIR | --sites 196 --years 2]
        [--folds 10] [--epochs 5] [--threads 1] [--pd-grid 20] [--background N]
        [--reference-sites 0] [--out results.json]

1. Inputs: a results folder with ``data/`` and ``extrapolation/SPIE/`` (``--results``), or a
   virtual FLUXNET (``--sites`` x ``--years``, seed 0) with SPIE trained for ``--epochs``
   epochs on the ten-fold split (the analysis' cost depends on the number of sites and the
   architecture, not on how well the networks are trained) in a temporary folder.
2. The whole step as ``lue-spie importance`` runs it
   (:func:`lue_spie.importance.step.run`: read the networks and the dataset, SHAP,
   LRP and PD for every fold, tables, figures), with the seconds of each phase.
3. Reference, same process: shap's plain ``DeepExplainer`` on fold 0's network, site by site
   (its own loop over the sites and outputs), on ``--reference-sites`` of its training sites
   (0: all of them), against the batched call of
   :func:`lue_spie.importance.attribution.shap_attributions` on the same sites; the ratio and
   the largest difference of the values.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch


def _prepare(args: argparse.Namespace, tmp: Path) -> Path:
    from lue_spie import extrapolate
    from lue_spie.data.virtual import generate
    from lue_spie.extrapolate import ExtrapolationSettings
    from lue_spie.layout import Layout

    results = tmp / "results"
    t0 = time.perf_counter()
    generate(args.sites, args.years, 0, results / "data")
    print(f"virtual FLUXNET {args.sites} sites x {args.years} years: "
          f"{time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    settings = ExtrapolationSettings(methods=("SPIE",), n_folds=args.folds, seed=0,
                                     method_params={"SPIE": {"epochs": args.epochs,
                                                             "device": "cpu",
                                                             "eval_every": args.epochs}})
    extrapolate.run(Layout(results), settings, progress=False, log=lambda *_: None)
    print(f"SPIE, {args.folds} folds x {args.epochs} epochs: {time.perf_counter() - t0:.1f} s")
    return results


def _reference(results: Path, n_sites: int) -> dict[str, float]:
    """Plain DeepExplainer (site by site) against the batched call, fold 0."""
    from lue_spie import importance as imp
    from lue_spie.data import load_dataset
    from lue_spie.methods.spie import load_networks

    nets = load_networks(results / "extrapolation" / "SPIE")
    sites = load_dataset(results / "data").sites.set_index("site", drop=False)
    k = nets.folds[0]
    train = sorted(set(nets[k].sites["train"]) | set(nets[k].sites["validation"])
                   | set(nets[k].sites["excluded"]))
    X = nets.features(sites.loc[train].reset_index(drop=True), k).to_numpy(np.float64)
    x = X if n_sites <= 0 else X[:n_sites]
    net = nets.fold_network(k).double()
    t0 = time.perf_counter()
    batched = imp.shap_attributions(net, X, x).values
    t_batched = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap

        t0 = time.perf_counter()
        plain = shap.DeepExplainer(net, torch.tensor(X)).shap_values(
            torch.tensor(x), check_additivity=True)
        t_plain = time.perf_counter() - t0
    return {"sites_explained": int(len(x)), "background": int(len(X)),
            "plain_s": t_plain, "batched_s": t_batched, "speedup": t_plain / t_batched,
            "max_abs_difference": float(np.abs(np.asarray(plain) - batched).max())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=None,
                   help="results folder with data/ and extrapolation/SPIE/")
    p.add_argument("--sites", type=int, default=196)
    p.add_argument("--years", type=int, default=2)
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pd-grid", type=int, default=20)
    p.add_argument("--background", type=int, default=None)
    p.add_argument("--reference-sites", type=int, default=0,
                   help="sites of the plain-DeepExplainer reference (0: the fold's all)")
    p.add_argument("--no-reference", action="store_true")
    p.add_argument("--out", default=None, help="write the numbers as JSON")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from lue_spie import importance as imp
    from lue_spie.layout import Layout

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(args.results) if args.results else _prepare(args, Path(tmp))
        settings = imp.ImportanceSettings(pd_grid=args.pd_grid, background=args.background)
        t0 = time.perf_counter()
        layout = Layout(results, importance_dir=Path(tmp) / "importance")
        res, written = imp.run(layout, settings)
        total = time.perf_counter() - t0
        n_sites = res.shap_check["n_sites"]
        print(f"lue-spie importance: {len(res.shap_check)} folds, {n_sites.min()}-"
              f"{n_sites.max()} training sites per fold, {len(res.feature_names)} features: "
              f"{total:.1f} s in all")
        for name, s in res.timings.items():
            print(f"  {name:14s} {s:7.2f} s")
        print(f"  largest SHAP additivity error {res.shap_check['max_additivity_error'].max():.1e}")
        record = {"total_s": total, "timings_s": res.timings,
                  "folds": int(len(res.shap_check)), "sites_per_fold": n_sites.tolist(),
                  "settings": settings.to_dict()}
        if not args.no_reference:
            ref = _reference(results, args.reference_sites)
            print(f"reference, fold 0, {ref['sites_explained']} sites against "
                  f"{ref['background']} background sites: shap's plain DeepExplainer "
                  f"{ref['plain_s']:.1f} s, batched {ref['batched_s']:.2f} s "
                  f"(x{ref['speedup']:.0f}); largest difference {ref['max_abs_difference']:.1e}")
            record["reference"] = ref
    record["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                         "threads": args.threads, "load_1min": os.getloadavg()[0],
                         "torch": torch.__version__}
    print(f"machine: {record['machine']}")
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

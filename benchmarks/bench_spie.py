"""Benchmark: SPIE's ten-fold training, all folds batched vs fold after fold, and the full run.

    .venv/bin/python benchmarks/bench_spie.py [--data DIR | --sites 196 --years 10]
        [--folds 10] [--ratio-epochs 3] [--epochs 2000] [--threads 1] [--device auto]
        [--dtype float32] [--out results.json]

1. Data: virtual FLUXNET (``--sites`` x ``--years``, seed 0, into a temporary folder) or the
   dataset folder ``--data``; the ten-fold split of
   :func:`lue_spie.extrapolate.cv.make_folds` (seed 0).
2. Speed-up, in one process on the same data: ``--ratio-epochs`` epochs of all folds stacked
   in one model (SPIE's normal path) against the same epochs fold after fold (each fold's
   network trained alone by the same code), both with the paper's settings; time per epoch
   and the ratio. The first epoch of each run is a warm-up and the last one (which holds the
   final evaluation) is not counted either.
3. Profile of the batched step: seconds per epoch in each phase (batch assembly, network and
   mapping, gathering the sites' rows of the prepared cost data, model and cost forward
   (``batch_cost``), backward of both, optimiser, evaluations), plus the model's forward +
   backward alone on one step's shape, so that the step can be split between the model and
   the cost around it. The phases are averaged over all epochs of the ratio run; that run
   evaluates once (at its end), a full run every ``eval_every`` (10) epochs.
4. The full training (``--epochs``, paper: 2000; 0 skips it) with the paper's settings:
   total and per-epoch time, the held-out median daily NSE of the predicted parameters and
   that of the true parameters on the same days, and (virtual FLUXNET) each predicted
   parameter against the truth (``--mapping`` chooses the bounds mapping, ``--save DIR``
   keeps the networks, curves and predictions).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lue_spie.data.virtual import generate
from lue_spie.extrapolate.cv import make_folds
from lue_spie.methods.base import SiteData
from lue_spie.methods.spie import SPIE, StackedMLP, build_training_data
from lue_spie.model import resolve_device, simulate


def _epoch_seconds(data: SiteData, folds, epochs: int, **kw) -> tuple[float, SPIE]:
    """Seconds per training epoch, from the end of epoch 1 (the warm-up) to the end of epoch
    ``epochs + 1``; a last epoch (which holds the final evaluation) is not counted."""
    stamps: dict[int, float] = {}
    m = SPIE(epochs=epochs + 2, checkpoint_every=0, eval_every=epochs + 2, **kw)
    m.profile = True
    m.callback = lambda epoch, info: stamps.__setitem__(epoch, time.perf_counter())
    m._train(data, folds)
    return (stamps[epochs + 1] - stamps[1]) / epochs, m


def model_alone(data: SiteData, folds, batch: int, dtype: torch.dtype, device: str,
                repeats: int = 5) -> dict[str, float]:
    """Forward + backward of the model alone on one batched step's shape (folds x batch
    sites, days), and the same plus the cost as SPIE's step computes it (``batch_cost``),
    best of ``repeats``; the rows are gathered beforehand (not timed)."""
    from lue_spie.cost import batch_cost
    from lue_spie.methods.spie import make_mapping

    td, _ = build_training_data(data, folds, dtype=dtype, device=device)
    n_f = len(folds)
    net = StackedMLP(n_f, td.features.shape[-1], dtype=dtype, device=device)
    g = torch.Generator().manual_seed(0)
    for k in range(n_f):
        net.init_fold(k, g)
    idx = torch.randint(0, len(td.sites), (n_f, batch), generator=g).to(device)
    with torch.no_grad():
        theta0 = make_mapping("log")(net(td.features[torch.arange(n_f, device=device)
                                                     .unsqueeze(1), idx])) * td.free[idx]
    theta0 = theta0.reshape(-1, theta0.shape[-1])
    part = td.cost.select(idx.reshape(-1))

    def once(with_cost: bool) -> tuple[float, float]:
        p = theta0.clone().requires_grad_(True)
        _sync(device)
        t0 = time.perf_counter()
        if with_cost:
            loss = batch_cost(part, p)["cost"].sum()
        else:
            loss = simulate(part.forcing, p, validate=False, outputs=("GPP",))["GPP"].sum()
        _sync(device)
        t1 = time.perf_counter()
        loss.backward()
        _sync(device)
        return t1 - t0, time.perf_counter() - t1

    out = {}
    for name, wc in (("model", False), ("model_cost", True)):
        once(wc)
        runs = [once(wc) for _ in range(repeats)]
        out[f"{name}_forward_s"] = min(r[0] for r in runs)
        out[f"{name}_backward_s"] = min(r[1] for r in runs)
    return out


def parameter_skill(data: SiteData, pred: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Predicted vs true parameters per parameter (sites where the parameter is free):
    Pearson r, the median absolute error in the [0, 1]-scaled space and, where predicted and
    true values share one sign, the median of |log(predicted / true)|."""
    from lue_spie.params import PARAMETERS, lag_mask, to_scaled

    sites = list(pred["site"])
    truth = data.dataset.truth.set_index("site").loc[sites, list(PARAMETERS)].to_numpy()
    got = pred.set_index("site").loc[sites, list(PARAMETERS)].to_numpy()
    free = lag_mask(list(data.sites.loc[sites, "koeppen"]))
    st, sg = to_scaled(truth), to_scaled(got)
    out = {}
    for j, name in enumerate(PARAMETERS):
        f = free[:, j]
        r = float(np.corrcoef(truth[f, j], got[f, j])[0, 1]) if f.sum() > 2 else float("nan")
        out[name] = {"sites": int(f.sum()), "r": r,
                     "median_abs_error_scaled": float(np.median(np.abs(st[f, j] - sg[f, j])))}
        if np.all(truth[f, j] * got[f, j] > 0):  # one sign: the error as a ratio too
            out[name]["median_abs_log_ratio"] = float(np.median(np.abs(np.log(
                got[f, j] / truth[f, j]))))
    return out


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="dataset folder (default: generate)")
    ap.add_argument("--sites", type=int, default=196)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--ratio-epochs", type=int, default=3,
                    help="epochs timed for the batched vs fold-after-fold ratio (0: skip)")
    ap.add_argument("--epochs", type=int, default=2000, help="full run (0: skip)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (0: torch's default; 1 was fastest on the shared 2-core "
                         "box, benchmarks/RESULTS.md)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--mapping", default="log", choices=["log", "sigmoid"])
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="another SPIE hyperparameter (VALUE read as YAML), e.g. "
                         "dropout_input=0.0; repeatable")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--save", default=None,
                    help="folder for the full run's networks, curves and predictions")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    tmp = tempfile.TemporaryDirectory()
    folder = Path(args.data) if args.data else generate(args.sites, args.years, 0,
                                                      Path(tmp.name) / "data")
    data = SiteData(folder)
    folds = list(make_folds(data.dataset.sites, args.folds, seed=0).folds())
    n_days = len(data._batch(dtype).dates)
    res: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                             "torch": torch.__version__, "threads": torch.get_num_threads(),
                             "device": device,
                             "gpu": torch.cuda.get_device_name() if device.startswith("cuda")
                             else None, "loadavg_start": os.getloadavg()},
                 "data": {"sites": len(data.site_ids), "days": n_days, "folds": len(folds),
                          "train_sites": [len(tr) for _, tr, _ in folds]},
                 "dtype": args.dtype, "mapping": args.mapping, "params": args.param}
    import yaml

    extra = {k: yaml.safe_load(v) for k, _, v in (p.partition("=") for p in args.param)}
    kw = {"device": device, "dtype": args.dtype, "mapping": args.mapping, **extra}
    print(f"{len(data.site_ids)} sites x {n_days} days, {len(folds)} folds, {args.dtype}, "
          f"{device}, {torch.get_num_threads()} threads, load {os.getloadavg()}", flush=True)

    if args.ratio_epochs:
        batched, mb = _epoch_seconds(data, folds, args.ratio_epochs, **kw)
        per_fold = [_epoch_seconds(data, [f], args.ratio_epochs, **kw)[0] for f in folds]
        sequential = float(np.sum(per_fold))
        res["ratio"] = {"epochs": args.ratio_epochs, "batched_s_per_epoch": batched,
                        "fold_after_fold_s_per_epoch": sequential,
                        "speedup": sequential / batched,
                        # all epochs of the run, warm-up and final evaluation included
                        "phases_s_per_epoch": {k: v / (args.ratio_epochs + 2)
                                               for k, v in mb.timings_.items()},
                        "loadavg": os.getloadavg()}
        steps_per_epoch = max(-(-len(tr) // 32) for _, tr, _ in folds)
        alone = model_alone(data, folds, 32, dtype, device)
        res["model_alone_per_full_step"] = alone
        res["steps_per_epoch"] = steps_per_epoch
        print(f"batched {batched:.3f} s/epoch, fold after fold {sequential:.3f} s/epoch: "
              f"x{sequential / batched:.2f}", flush=True)
        print("phases, s per epoch:", {k: round(v, 4) for k, v in
                                       res["ratio"]["phases_s_per_epoch"].items()}, flush=True)
        print("one full step (folds x 32 sites):", {k: round(v, 4) for k, v in alone.items()},
              flush=True)

    if args.epochs:
        from lue_spie.evaluate import evaluate_params

        m = SPIE(epochs=args.epochs, **kw)
        m.workdir = Path(tmp.name) / "work"
        log_every = max(1, args.epochs // 20)
        t_start = time.perf_counter()

        def report(epoch: int, info: dict) -> None:
            if epoch % log_every == 0:
                costs = [v for v in info["epoch_cost"].values() if np.isfinite(v)]
                print(f"  epoch {epoch}: {time.perf_counter() - t_start:.0f} s, median "
                      f"mini-batch cost {np.median(costs):.4f}, load "
                      f"{os.getloadavg()[0]:.1f}", flush=True)

        m.callback = report
        t0 = time.perf_counter()
        preds = m.fit_predict_folds(data, folds)
        total = time.perf_counter() - t0
        pred = pd.concat(preds.values(), ignore_index=True)
        sites = list(pred["site"])
        nse = evaluate_params(data.dataset, pred, sites=sites)["nse"]
        full = {"epochs": args.epochs, "total_s": total, "train_s": m.train_seconds_,
                "s_per_epoch": m.train_seconds_ / args.epochs,
                "heldout_median_nse": float(nse.median()), "loadavg_end": os.getloadavg(),
                "summary": m.summary_.to_dict(orient="records")}
        if data.dataset.truth is not None:
            full["truth_median_nse"] = float(evaluate_params(
                data.dataset, data.dataset.truth, sites=sites)["nse"].median())
            full["parameters_vs_truth"] = parameter_skill(data, pred)
        if args.save:
            m.save(args.save)
            pred.to_parquet(Path(args.save) / "predicted.parquet")
        res["full"] = full
        for name, v in full.get("parameters_vs_truth", {}).items():
            print(f"  {name:8s} r {v['r']:6.3f}  median |error| (scaled) "
                  f"{v['median_abs_error_scaled']:.4f}  median |log ratio| "
                  f"{v.get('median_abs_log_ratio', float('nan')):.3f}", flush=True)
        print(f"full: {args.epochs} epochs in {total:.0f} s ({full['s_per_epoch']:.3f} s/epoch)"
              f"; held-out median daily NSE {full['heldout_median_nse']:.3f}"
              + (f" (true parameters {full['truth_median_nse']:.3f})"
                 if "truth_median_nse" in full else ""), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2, default=float) + "\n")
    tmp.cleanup()


if __name__ == "__main__":
    main()

"""Set the ``paper`` world's dials by a procedure that never looks at SPIE.

The question: how hard must the virtual FLUXNET be for the paper's baselines to fail as they
do on its 196 real sites (each of the ten parameter baselines positive in daily NSE at no
more than 41 % of the sites, Figure 2), while site calibration still fits every site (median
in-sample daily NSE above 0.9, or within 0.03 of the true parameters')? SPIE is then run on
that world and its share is *measured*, a test of the paper's claim rather than a setting.

The procedure, in one dimension so that it chooses nothing but a single number:

1. The ``literature`` world (:data:`lue_spie.data.virtual.worlds.LITERATURE`) puts every dial
   at its published value (the data chapter's table of dials).
2. What is measured stays at its published value: record lengths and gaps (FLUXNET2015's
   site-years, the share of gap-filled half-hours) and the observation biases (the spread of
   fAPAR products, energy-balance closure, the disagreement of partitioning methods). What
   is measured for two of this model's 13 parameters only (the spread of eps_max and of Topt
   across flux sites) is the spread of its parameters between sites. A factor ``k``
   multiplies that spread (``literature.multiplied(UNCERTAIN, k)``), each term of the
   truth's spread alike, explained by features or not, so their proportions stay those of
   the literature world.
3. For a ``k``, one point is run (:func:`lue_spie.payoff.points.run_point`): the world is
   generated, calibrated, and the ten parameter baselines are cross-validated with the
   demo profile's settings. The eight cheap ones (grouping, similarity, regression) run
   first; only when none of them exceeds the target do the pooled optimisations (OPT-All,
   OPT-PFT) run as well.
4. ``k`` is bracketed (doubled while the baselines exceed the target with calibration at the
   noise ceiling, within ``--k-max``) and then bisected ``--tries`` times between the
   largest such ``k`` and the smallest one that met the target or whose calibration fell
   below the ceiling (:func:`search`); the chosen ``k`` is the smallest one that met the
   target and the calibration check: calibration's median in-sample daily NSE within 0.03
   of the world's noise ceiling (the noise-free observed signal against the observations,
   recorded by the generator) or above 0.9. The pooled optimisations run only on a try
   whose calibration passed that check. With ``--confirm`` it is run again at the demo size (196
   sites x 8 years); if the ten baselines exceed ``--confirm-max`` there, ``k`` grows by
   ``--confirm-step`` and the confirmation repeats (at most ``--confirm-tries`` times).

Three earlier designs were rejected. At 60 sites x 3 years (commits 893513b and 97d34e0, logs
not kept): moving every dial from its neutral value (records and gaps too: sites without a
single good day at twice the published values), and multiplying the parameters' spread
alone up to ``k = 4`` (the baselines still above the target there; the search stopped at
its ``--k-max`` of 4). At 196 sites x 8 years (``benchmarks/RESULTS.md``, sections on the
`paper` world): multiplying the parameters' spread *and* the observation biases by one
factor (``k`` = 3 and then 3.75), which met the baselines' target only with calibration
0.04-0.07 below the noise ceiling: multiplied, the biases make the observations unfittable
rather than the calibrations equifinal (a fAPAR product offset of -1 clipped at 0.01 for a
whole record, a respiration-shaped partitioning error of 85 % of mean GPP; calibration then
piles eps_max at its bound and still fails). The present design keeps the biases at their
published values, where calibration absorbs them, and raises ``--k-max`` so that the
parameters' spread alone can be searched far enough.

It reads only what :func:`~lue_spie.payoff.points.score_point` reads for the ten baselines:
the dataset's truth, the calibration table and the baselines' rows of the extrapolation
summary, in folders where SPIE never ran (a folder with SPIE results is refused).
``BASELINES`` cannot hold SPIE (checked), and ``tests/unit/test_set_paper_world.py`` runs a
try with SPIE booby-trapped and every table read recorded.

Every try is logged (its ``k``, its dial values, the truth's and calibration's medians and
every baseline's share and median) to ``OUT/tries.json`` and as a markdown table to
``OUT/tries.md`` for ``benchmarks/RESULTS.md``; a rerun reuses every finished point.

Usage (repository root)::

    .venv/bin/python benchmarks/set_paper_world.py --out /tmp/paper_world           # tune
    .venv/bin/python benchmarks/set_paper_world.py --out /tmp/paper_world --confirm # + 196 x 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lue_spie import extrapolate, store
from lue_spie.book.profiles import PROFILES, Profile
from lue_spie.calibrate import CalibrationSettings
from lue_spie.data.virtual.worlds import ALL_DIALS, GROUPS, World, get_world
from lue_spie.extrapolate import ExtrapolationSettings
from lue_spie.layout import Layout
from lue_spie.methods.base import paper_order
from lue_spie.payoff.points import (
    NOISE_CEILING,
    SITE_CALIB,
    TRUTH,
    PointSpec,
    run_point,
    score_point,
)

#: The ten parameter baselines: the paper's methods but SPIE and the P-model (which predicts
#: GPP, not parameters), in the paper's order.
BASELINES: tuple[str, ...] = tuple(m for m in paper_order() if m not in ("SPIE", "P-model"))
#: The dials the factor multiplies: the parameters' spread (the measured observation biases,
#: record lengths and gaps stay at their published values).
UNCERTAIN: tuple[str, ...] = GROUPS["parameters"]
#: The pooled optimisations, run only when the cheap baselines meet the target.
POOLED: tuple[str, ...] = ("OPT-All", "OPT-PFT")
#: The paper's share of sites with a positive daily NSE that no baseline exceeds (Figure 2).
TARGET = 0.41
#: How far below the world's noise ceiling (median daily NSE) calibration's may lie, unless
#: it is above :data:`CALIB_LEVEL` (in-sample fit at the noise ceiling, or at the paper's).
CALIB_TOLERANCE = 0.03
CALIB_LEVEL = 0.9


def _check_methods(methods: Sequence[str]) -> None:
    if "SPIE" in methods:
        raise ValueError("the dial-setting procedure must not run or read SPIE")


def world_at(k: float) -> World:
    """The literature world with its parameters' spread (:data:`UNCERTAIN`) multiplied by
    ``k``."""
    return get_world("literature").multiplied(UNCERTAIN, k, name=f"literature parameters*{k:g}")


def _settings(profile: Profile, methods: Sequence[str], device: str
              ) -> tuple[CalibrationSettings, ExtrapolationSettings]:
    _check_methods(methods)
    cal = profile.calibrate.replace(device=device)
    params: dict[str, dict[str, Any]] = {}
    for m in methods:
        p = json.loads(json.dumps(dict(profile.extrapolate.method_params.get(m, {}))))
        if "settings" in p and m in POOLED:
            p["settings"]["device"] = device
        if p:
            params[m] = p
    ex = ExtrapolationSettings(methods=tuple(methods), n_folds=profile.extrapolate.n_folds,
                               method_params=params)
    return cal, ex


def _calib_ok(scores: Any) -> bool:
    """Site calibration's median daily NSE within :data:`CALIB_TOLERANCE` of the noise
    ceiling's, or above :data:`CALIB_LEVEL`."""
    s = scores.set_index("method")["median_nse"]
    return bool(s[SITE_CALIB] >= s[NOISE_CEILING] - CALIB_TOLERANCE
                or s[SITE_CALIB] > CALIB_LEVEL)


def try_world(k: float, folder: Path, *, n_sites: int, n_years: int, seed: int,
              profile: Profile, device: str = "cpu", target: float = TARGET,
              log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run one try: the world at ``k``, its calibration and the baselines; the record."""
    world = world_at(k)
    spie = Layout(Path(folder)).extrapolation.method("SPIE").folder
    if Path(spie).exists():
        raise ValueError(f"{spie}: SPIE results in this try's folder; the dial-setting "
                         "procedure must not see them (give a fresh --out)")
    cheap = [m for m in BASELINES if m not in POOLED]
    t0 = time.perf_counter()
    cal, ex = _settings(profile, cheap, device)
    layout = run_point(folder, PointSpec(world, n_sites, n_years, seed, cal, ex), log=log)
    scores = score_point(layout, cheap)
    ran = list(cheap)
    if (_calib_ok(scores)
            and (scores.set_index("method").loc[cheap, "share_positive"] <= target).all()):
        cal, ex = _settings(profile, POOLED, device)
        extrapolate.run(layout, dataclasses.replace(ex, seed=seed), progress=False, log=log)
        scores = score_point(layout, list(BASELINES))
        ran = list(BASELINES)
    s = scores.set_index("method")
    base = s.loc[ran]
    truth_med, calib_med = s.loc[TRUTH, "median_nse"], s.loc[SITE_CALIB, "median_nse"]
    ceiling = s.loc[NOISE_CEILING, "median_nse"]
    calib_ok = _calib_ok(scores)
    met = bool(len(ran) == len(BASELINES) and (base["share_positive"] <= target).all()
               and calib_ok)
    return {"k": k, "n_sites": n_sites, "n_years": n_years, "seed": seed,
            "dials": world.dials(), "truth_median": truth_med, "ceiling_median": ceiling,
            "truth_share": s.loc[TRUTH, "share_positive"], "calib_median": calib_med,
            "calib_ok": calib_ok, "baselines": {m: {"share": float(base.loc[m, "share_positive"]),
                                                    "median": float(base.loc[m, "median_nse"])}
                                                for m in ran},
            "max_share": float(base["share_positive"].max()),
            "worst": str(base["share_positive"].idxmax()), "met": met,
            "seconds": round(time.perf_counter() - t0, 1), "folder": str(folder)}


def search(run: Callable[[float], dict[str, Any]], *, k_start: float, k_max: float,
           tries: int) -> tuple[float | None, list[dict[str, Any]]]:
    """Bracket and bisect ``k``: the smallest tried ``k`` whose record met the target.

    A try is one of three kinds: *met* (the baselines at or below the target, calibration at
    the noise ceiling: an upper bound), *too easy* (calibration at the ceiling, a baseline
    above the target: ``k`` must grow) or *too hard* (calibration below the ceiling: an upper
    bound that did not meet, the bisection looks below it). ``k`` doubles from ``k_start``
    while the tries are too easy (up to ``k_max``); then ``tries`` bisection steps between
    the largest too easy and the smallest other ``k``. ``None`` when no try met the target.
    """
    records: list[dict[str, Any]] = []
    lo, hi, best = None, k_start, None
    while True:
        r = run(hi)
        records.append(r)
        if r["met"]:
            best = hi
            break
        if not r.get("calib_ok", True):
            break
        lo = hi
        if hi >= k_max:
            return None, records
        hi = min(2 * hi, k_max)
    for _ in range(tries):
        mid = round(((0.0 if lo is None else lo) + hi) / 2, 3)
        r = run(mid)
        records.append(r)
        if r["met"]:
            hi = best = mid
        elif r.get("calib_ok", True):
            lo = mid
        else:
            hi = mid
    return best, records


def markdown(records: Sequence[dict[str, Any]]) -> str:
    """The tries as a markdown table (for benchmarks/RESULTS.md)."""
    heads = ["k", "size", "truth median", "noise ceiling", "calib median", *BASELINES,
             "max share", "met", "s"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for r in records:
        b = r["baselines"]
        cells = [f"{r['k']:g}", f"{r['n_sites']}x{r['n_years']}", f"{r['truth_median']:.3f}",
                 f"{r.get('ceiling_median', float('nan')):.3f}",
                 f"{r['calib_median']:.3f}" + ("" if r["calib_ok"] else " (!)"),
                 *[f"{100 * b[m]['share']:.0f} % ({b[m]['median']:.2f})" if m in b else "-"
                   for m in BASELINES],
                 f"{100 * r['max_share']:.0f} % ({r['worst']})", "yes" if r["met"] else "no",
                 f"{r['seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write(out: Path, records: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    store.atomic_write_json(out / "tries.json", {**extra, "tries": records})
    store.atomic_write_text(out / "tries.md", markdown(records))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="work folder (one folder per try)")
    p.add_argument("--profile", default="demo", choices=sorted(PROFILES),
                   help="book profile whose calibration and method settings are used")
    p.add_argument("--sites", type=int, default=98, help="sites of a tuning try (default 98)")
    p.add_argument("--years", type=int, default=4, help="years of a tuning try (default 4)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed (default: the profile's, that of its book's data)")
    p.add_argument("--k-start", type=float, default=1.0, help="first factor (default 1)")
    p.add_argument("--k-max", type=float, default=12.0, help="largest factor (default 12)")
    p.add_argument("--tries", type=int, default=3, help="bisection steps (default 3)")
    p.add_argument("--target", type=float, default=TARGET,
                   help=f"largest share of positive sites of any baseline (default {TARGET})")
    p.add_argument("--confirm", action="store_true",
                   help="run the chosen factor again at the demo size")
    p.add_argument("--confirm-sites", type=int, default=196)
    p.add_argument("--confirm-years", type=int, default=8)
    p.add_argument("--confirm-max", type=float, default=0.45,
                   help="largest share at the demo size (default 0.45)")
    p.add_argument("--confirm-step", type=float, default=1.15,
                   help="factor by which k grows when the confirmation fails")
    p.add_argument("--confirm-tries", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    profile = PROFILES[args.profile]
    seed = profile.seed if args.seed is None else args.seed
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    extra = {"command": " ".join(["set_paper_world.py", *(argv or sys.argv[1:])]),
             "profile": profile.name, "baselines": list(BASELINES), "target": args.target,
             "dials_at_k1": world_at(1.0).dials(), "all_dials": list(ALL_DIALS),
             "multiplied": list(UNCERTAIN),
             "git_commit": store.git_commit(), "load": _load()}
    records: list[dict[str, Any]] = []

    def run(k: float, n_sites: int = args.sites, n_years: int = args.years) -> dict[str, Any]:
        folder = out / f"k{k:g}_{n_sites}x{n_years}"
        print(f"try k = {k:g} ({n_sites} sites x {n_years} years) in {folder}", flush=True)
        r = try_world(k, folder, n_sites=n_sites, n_years=n_years, seed=seed, profile=profile,
                      device=args.device, target=args.target, log=lambda s: None)
        records.append(r)
        _write(out, records, extra)
        print(f"  max share {100 * r['max_share']:.0f} % ({r['worst']}), calibration "
              f"{r['calib_median']:.3f} vs truth {r['truth_median']:.3f}: "
              f"{'met' if r['met'] else 'not met'} ({r['seconds']:.0f} s)", flush=True)
        return r

    k, _ = search(run, k_start=args.k_start, k_max=args.k_max, tries=args.tries)
    if k is None:
        print(f"no factor up to {args.k_max:g} meets the target", flush=True)
        return 1
    print(f"chosen k = {k:g} at {args.sites} x {args.years}", flush=True)
    if args.confirm:
        for _ in range(args.confirm_tries + 1):
            r = run(k, args.confirm_sites, args.confirm_years)
            if r["met"] or (r["max_share"] <= args.confirm_max and r["calib_ok"]
                            and len(r["baselines"]) == len(BASELINES)):
                print(f"confirmed k = {k:g} at {args.confirm_sites} x {args.confirm_years}",
                      flush=True)
                break
            k = round(k * args.confirm_step, 3)
        else:
            print("not confirmed at the demo size", flush=True)
            return 1
    extra["chosen_k"] = k
    _write(out, records, extra)
    return 0


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    raise SystemExit(main())

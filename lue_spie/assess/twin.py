"""The structural-error twin: the same virtual FLUXNET with one switch flipped.

The paper could not know the true parameters; on the virtual FLUXNET we do, so the book can
ask whether the methods that simulate GPP best are also the ones closest to the truth, and
whether that changes when the LUE model is structurally wrong. The virtual FLUXNET generator
(:mod:`lue_spie.data.virtual`) draws the sites, the forcing and the true parameters from
random streams of their own, so flipping ``structural_error`` changes GPP_obs and nothing
else (tested): the *twin* of a results folder is the same dataset with the switch the other
way, calibrated and extrapolated with the same settings. Comparing the two isolates the
effect of structural error.

:func:`run_twin` builds the twin inside the results folder (``RESULTS/twin``, itself a
results folder: ``data/``, ``calibration/``, ``extrapolation/``), reusing the main run's
calibration settings (from the provenance of ``calibration.parquet``), its fold count and
seed, and each method's hyperparameters (from the provenance of the method's fold files).
Every step is resumable, so a rerun of the chapter costs nothing. Its cost is one more site
calibration plus the chosen methods (the book's profiles choose which: see
:class:`lue_spie.book.profiles.Profile`).

:func:`compare_worlds` puts the two assessments side by side, one row per world and method:
GPP skill (share of sites with positive daily NSE, median daily NSE) and the distance of the
method's parameters to the truth; :func:`ranking_agreement` says, per world, whether the
ranking by GPP skill follows the ranking by closeness to the truth (Spearman's rank
correlation) and which method leads each.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from lue_spie import calibrate, extrapolate, store
from lue_spie.assess.assessment import assess_results
from lue_spie.assess.inputs import SITE_CALIB, find_methods, load_results
from lue_spie.assess.settings import AssessSettings
from lue_spie.calibrate import CalibrationSettings
from lue_spie.data.io import load_dataset
from lue_spie.data.virtual import GENERATOR_ID, generate
from lue_spie.data.virtual.worlds import get_world
from lue_spie.execution import ExecutionSettings
from lue_spie.extrapolate import ExtrapolationSettings
from lue_spie.extrapolate.cv import read_folds
from lue_spie.layout import Layout

__all__ = ["WORLDS", "twin_methods", "run_twin", "has_twin", "compare_worlds",
           "ranking_agreement", "assess_worlds"]

#: World labels, by the value of the structural-error switch.
WORLDS = {False: "without structural error", True: "with structural error"}


def _layout(results: str | Path | Layout) -> Layout:
    return results if isinstance(results, Layout) else Layout(Path(results))


def _generator_meta(layout: Layout) -> dict[str, Any]:
    data = load_dataset(layout.data.folder)
    meta = data.truth_meta
    if data.truth is None or not meta or meta.get("generator") != GENERATOR_ID:
        raise ValueError(f"{layout.data.folder}: not a virtual FLUXNET (no "
                         f"{layout.data.truth_meta.name} of its generator); the "
                         "structural-error twin needs the generator")
    return meta


def twin_methods(results: str | Path | Layout,
                 wanted: Sequence[str] | None = None) -> list[str]:
    """The methods the twin runs: those of ``wanted`` (default: all) that the main run has.

    Methods that predict GPP only (the P-model) take part too, but only in the GPP columns.
    """
    if isinstance(wanted, str):
        raise ValueError(f"twin methods: expected a list of method names, got the string "
                         f"{wanted!r} (with papermill, pass lists with -y or `lue-spie book -p`)")
    found = list(find_methods(_layout(results).extrapolation))
    return found if wanted is None else [m for m in found if m in set(wanted)]


def _method_params(layout: Layout, method: str) -> dict[str, Any]:
    """The hyperparameters the main run used for ``method`` (provenance of fold 0)."""
    fold0 = layout.extrapolation.method(method).fold_params(0)
    params = store.read_provenance(fold0).get("settings", {}).get("params")
    if params is None:
        raise ValueError(f"{fold0}: no hyperparameters in its provenance; rerun `lue-spie "
                         f"extrapolate --methods {method}`")
    return dict(params)


def _calibration_settings(layout: Layout) -> tuple[CalibrationSettings, dict[str, Any]]:
    table = layout.calibration.table
    recorded = store.read_provenance(table).get("settings", {})
    if not recorded:
        raise ValueError(f"{table}: no calibration settings in its provenance; rerun the "
                         "calibration")
    names = {f.name for f in dataclasses.fields(CalibrationSettings)}
    settings = CalibrationSettings(**{k: v for k, v in recorded.items() if k in names})
    return settings, {"sites": recorded.get("sites"), "years": recorded.get("years")}


def run_twin(results: str | Path | Layout, *, methods: Sequence[str] | None = None,
             out: str | Path | Layout | None = None, progress: bool = False,
             log: Callable[[str], Any] = print,
             execution: ExecutionSettings | None = None) -> Path:
    """Build the structural-error twin of a results folder (see the module docstring).

    Args:
        results: The main results folder (virtual FLUXNET, calibrated and extrapolated).
        methods: Methods to rerun in the twin (default: every method of the main run).
        out: The twin's results folder (default ``RESULTS/twin``).
        progress: Show progress bars.
        log: Where progress lines go.
        execution: Where the calibration's and the methods' units run (default: in this
            process), as in the main run's chapters.

    Returns:
        The twin's results folder.

    Raises:
        ValueError: on real data, or when the main run lacks what the twin copies.
    """
    main = _layout(results)
    twin = main.twin if out is None else _layout(out)
    meta = _generator_meta(main)
    flipped = not bool(meta["structural_error"]["enabled"])
    data = twin.data
    target = {"seed": meta["seed"], "n_sites": meta["n_sites"], "n_years": meta["n_years"],
              "start_year": meta["start_year"]}
    have = {}
    if data.truth_meta.is_file():
        have = json.loads(data.truth_meta.read_text())
    # The twin lives in the main run's world (its dials); datasets written before worlds
    # existed are of the smooth one.
    world = get_world(meta.get("difficulty"))
    if {k: have.get(k) for k in target} != target \
            or have.get("structural_error", {}).get("enabled") != flipped \
            or have.get("generator_version") != meta.get("generator_version") \
            or get_world(have.get("difficulty")) != world:
        log(f"twin: generating the virtual FLUXNET {WORLDS[flipped]} ({meta['n_sites']} sites x "
            f"{meta['n_years']} years, seed {meta['seed']})")
        generate(int(meta["n_sites"]), int(meta["n_years"]), int(meta["seed"]), data.folder,
                 structural_error=flipped, start_year=int(meta["start_year"]), world=world)
    cal_settings, selection = _calibration_settings(main)
    log("twin: site calibration with the main run's settings")
    calibrate.run(twin, cal_settings, execution, sites=selection["sites"],
                  years=selection["years"], progress=progress, restart_on_mismatch=True, log=log)
    names = twin_methods(main, methods)
    if names:
        split = read_folds(main.extrapolation)
        extrap_prov = store.read_provenance(main.extrapolation.summary)
        years = extrap_prov.get("settings", {}).get("years")
        settings = ExtrapolationSettings(
            methods=tuple(names), n_folds=split.n_folds, seed=split.seed,
            years=tuple(years) if years else None,
            method_params={m: _method_params(main, m) for m in names})
        log(f"twin: {', '.join(names)} with the main run's hyperparameters")
        extrapolate.run(twin, settings, execution, progress=progress, log=log)
    return Path(twin.root)


def has_twin(results: str | Path | Layout) -> bool:
    """Whether ``RESULTS/twin`` holds a twin with a site calibration."""
    twin = _layout(results).twin
    return twin.data.truth_meta.is_file() and twin.calibration.table.is_file()


def assess_worlds(results: str | Path | Layout, *, twin: str | Path | Layout | None = None,
                  n_groups: int = 200, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assess the main run and its twin on the methods both hold; compare the worlds.

    Args:
        results: The main results folder.
        twin: The twin's results folder (default ``RESULTS/twin``).
        n_groups, seed: Settings of the likelihood P of each world.

    Returns:
        ``(worlds, agreement)``: :func:`compare_worlds` and :func:`ranking_agreement`.
    """
    results = _layout(results)
    twin = results.twin if twin is None else _layout(twin)
    main_in, twin_in = load_results(results), load_results(twin)
    compared = tuple(m for m in twin_in.methods if m in main_in.methods and m != SITE_CALIB)
    settings = AssessSettings(n_groups=n_groups, seed=seed, methods=compared, twin=False)
    flag = bool(main_in.dataset.truth_meta["structural_error"]["enabled"])
    worlds = compare_worlds({flag: assess_results(results, settings),
                             not flag: assess_results(twin, settings)})
    return worlds, ranking_agreement(worlds)


def compare_worlds(assessments: dict[bool, Any], methods: Sequence[str] | None = None
                   ) -> pd.DataFrame:
    """One row per world and method: GPP skill and distance to the true parameters.

    Args:
        assessments: Structural-error switch -> :class:`lue_spie.assess.assessment.Assessment` of
            that world.
        methods: Methods to compare (default: those assessed in every world).

    Returns:
        Columns ``world``, ``structural_error``, ``method``, ``share_positive_NSE``,
        ``median_NSE`` (daily), ``mean distance / range`` (NaN for a GPP-only method),
        ``rank_gpp`` (1 = best median daily NSE among the compared methods of that world)
        and ``rank_truth`` (1 = closest to the truth).
    """
    common = set.intersection(*(set(a.inputs.methods) for a in assessments.values()))
    names = [m for m in next(iter(assessments.values())).inputs.methods if m in common] \
        if methods is None else [m for m in methods if m in common]
    rows = []
    for flag in sorted(assessments):
        a = assessments[flag]
        h = a.headline.set_index("method")
        for m in names:
            rows.append({"world": WORLDS[flag], "structural_error": flag, "method": m,
                         "share_positive_NSE": h.at[m, "share_positive_NSE"],
                         "median_NSE": h.at[m, "median_NSE"],
                         "mean distance / range": h.at[m, "truth_distance"]
                         if "truth_distance" in h else np.nan})
    t = pd.DataFrame(rows)
    t["rank_gpp"] = t.groupby("world")["median_NSE"].rank(ascending=False, method="min")
    t["rank_truth"] = t.groupby("world")["mean distance / range"].rank(method="min")
    return t


def ranking_agreement(table: pd.DataFrame, *, exclude: Sequence[str] = ("site-calib",)
                      ) -> pd.DataFrame:
    """Per world: does better GPP go with parameters closer to the truth?

    Args:
        table: :func:`compare_worlds`.
        exclude: Methods left out (default: the site-calibration reference, which is fitted
            to each site and is no extrapolation).

    Returns:
        One row per world: ``world``, ``n_methods`` (with parameters), ``spearman`` (between
        median daily NSE and minus the distance: +1 when the best simulators are the closest
        to the truth), ``p_value``, ``best_gpp`` (method with the best median daily NSE),
        ``closest_to_truth``.
    """
    rows = []
    for world, d in table[~table["method"].isin(exclude)].groupby("world", sort=False):
        both = d.dropna(subset=["median_NSE", "mean distance / range"])
        rho = p = np.nan
        if len(both) >= 3:
            res = stats.spearmanr(both["median_NSE"], -both["mean distance / range"])
            rho, p = float(res.statistic), float(res.pvalue)
        rows.append({
            "world": world, "n_methods": len(both), "spearman": rho, "p_value": p,
            "best_gpp": d.sort_values("median_NSE", ascending=False)["method"].iloc[0]
            if d["median_NSE"].notna().any() else None,
            "closest_to_truth": both.sort_values("mean distance / range")["method"].iloc[0]
            if len(both) else None,
        })
    return pd.DataFrame(rows, columns=["world", "n_methods", "spearman", "p_value", "best_gpp",
                                       "closest_to_truth"])

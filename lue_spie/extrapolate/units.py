"""Units of work of the cross-validation: one method on one or more folds, written atomically.

A unit (:class:`UnitSpec`) is a method with its hyperparameters and the folds it runs
(``(fold, train_sites, test_sites)``). :func:`execute_unit` fits the method on each fold's
training sites, predicts the held-out sites, turns predicted vectors into daily GPP and the
calibration cost with :mod:`lue_spie.evaluate`, and writes per fold (names in
:class:`lue_spie.layout.MethodFiles`)

- the fold's parameter table: ``site, fold``, the 13 parameters (NaN for a GPP method),
  ``note``, and the held-out site's ``cost, nse, C_ideal, C_nonideal`` (for a GPP method
  only ``nse``);
- the fold's GPP table: ``site, date, GPP_sim``;

each with a provenance record whose ``settings.unit_key`` identifies the unit (method, its
hyperparameters, the fold's sites, the data and calibration checksums): a rerun skips a unit
whose files carry the same key. A unit depends only on its spec and the shared
:class:`~lue_spie.methods.SiteData`, so it can run in this process or on a Dask worker
(:mod:`lue_spie.execution`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lue_spie import store
from lue_spie.errors import LueSpieError
from lue_spie.evaluate import evaluate_params, simulate_params
from lue_spie.layout import ExtrapolationFiles, MethodFiles
from lue_spie.methods.base import Method, SiteData, get_method
from lue_spie.metrics import nse
from lue_spie.params import PARAMETERS

__all__ = ["UnitSpec", "unit_paths", "unit_done", "fold_damage", "execute_unit"]


def unit_paths(out: str | Path, method: str, fold: int) -> dict[str, Path]:
    """The two files of one (method, fold) in the extrapolation folder ``out``."""
    files = ExtrapolationFiles(Path(out)).method(method)
    return {"params": files.fold_params(fold), "gpp": files.fold_gpp(fold)}


@dataclasses.dataclass(frozen=True)
class UnitSpec:
    """One unit of work.

    Attributes:
        method: The method's paper name.
        params: Its hyperparameters (keyword arguments of the method's class).
        folds: ``(fold, train_sites, test_sites)`` for every fold the unit runs.
        out: The extrapolation results folder.
        context: What else identifies the inputs (data and calibration checksums, years);
            part of every fold's key.
    """

    method: str
    params: Mapping[str, Any]
    folds: tuple[tuple[int, tuple[str, ...], tuple[str, ...]], ...]
    out: str
    context: Mapping[str, Any]

    def fold_key(self, fold: int) -> str:
        """The key of one fold of this unit (what a rerun compares to skip it)."""
        k, train, test = next(f for f in self.folds if f[0] == fold)
        blob = json.dumps({"method": self.method, "params": self.params, "fold": k,
                           "train": sorted(train), "test": sorted(test),
                           "context": self.context}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def files(self) -> MethodFiles:
        """The method's results folder."""
        return ExtrapolationFiles(Path(self.out)).method(self.method)

    @property
    def label(self) -> str:
        """``method`` and its folds, for progress lines."""
        return f"{self.method} fold " + ",".join(str(k) for k, _, _ in self.folds)


#: The columns each of a fold's files must have to be trusted by a rerun.
_FOLD_COLUMNS = {"params": ("site", "fold", "nse", "note"), "gpp": ("site", "date", "GPP_sim")}


def fold_damage(spec: UnitSpec, fold: int) -> dict[str, str]:
    """Why each of the fold's files that is there cannot be trusted (cut short, changed
    since it was written, without its checksum, an unreadable provenance record, columns
    missing: :func:`lue_spie.store.verify`), by kind (``params``, ``gpp``, and SPIE's
    ``network`` and ``curves``); empty when every file there verifies. A rerun computes such a
    fold again."""
    damage = {}
    # A method's own results beside its fold files (SPIE's network and training curves) are
    # verified as well when they are there.
    own = {"network": spec.files.network(fold), "curves": spec.files.curves(fold)}
    for kind, path in {**unit_paths(spec.out, spec.method, fold), **own}.items():
        if path.exists():
            why = store.verify(path, columns=_FOLD_COLUMNS.get(kind))
            if why is not None:
                damage[kind] = why
    return damage


def unit_done(spec: UnitSpec, fold: int) -> bool:
    """Whether the fold's files exist, verify (:func:`fold_damage`) and carry this unit's
    key."""
    paths = unit_paths(spec.out, spec.method, fold)
    if not all(p.is_file() for p in paths.values()) or fold_damage(spec, fold):
        return False
    keys = [store.read_provenance(p).get("settings", {}).get("unit_key") for p in
            paths.values()]
    return all(k == spec.fold_key(fold) for k in keys)


def _build(spec: UnitSpec, workdir: Path) -> Method:
    method = get_method(spec.method, **dict(spec.params))
    method.attach(workdir=workdir, results_dir=Path(spec.files.folder))
    return method


def _gpp_nse(data: SiteData, gpp: pd.DataFrame, sites: Sequence[str]) -> np.ndarray:
    """Daily NSE of a GPP table against GPP_obs on good days, per site."""
    batch = data.forcing(sites)
    wide = (gpp.pivot(index="date", columns="site", values="GPP_sim")
            .reindex(index=batch.dates, columns=list(sites)).to_numpy(np.float64).T)
    return np.asarray(nse(batch.GPP_obs.cpu().numpy(), wide, batch.good.cpu().numpy()),
                      dtype=np.float64).reshape(len(sites))


def _write_fold(spec: UnitSpec, data: SiteData, fold: int, test: Sequence[str],
                pred: pd.DataFrame, seconds: float) -> dict[str, Path]:
    """Evaluate and write one fold's predictions."""
    pred = pred.set_index("site").loc[list(test)].reset_index() if "date" not in pred else pred
    if "date" in pred.columns:  # a GPP method
        gpp = pred[["site", "date", "GPP_sim"]].sort_values(["site", "date"], kind="stable")
        table = pd.DataFrame({"site": list(test), "fold": fold,
                              **{p: np.nan for p in PARAMETERS}, "note": "",
                              "nse": _gpp_nse(data, gpp, test)})
    else:
        batch = data.forcing(list(test))  # built once per run, shared by every unit
        scores = evaluate_params(batch, pred)
        gpp = simulate_params(batch, pred)
        table = pred.assign(fold=fold).merge(scores.drop(columns="n_good_days"), on="site")
        table = table[["site", "fold", *PARAMETERS, "note", "cost", "nse", "C_ideal",
                       "C_nonideal"]]
    settings = {"unit_key": spec.fold_key(fold), "method": spec.method,
                "params": dict(spec.params), "fold": fold, "n_train": len(next(
                    f[1] for f in spec.folds if f[0] == fold)), "n_test": len(test),
                "seconds": seconds, **dict(spec.context)}
    prov = store.make_provenance(f"extrapolate.{spec.method}", settings=settings,
                                 seed=spec.params.get("seed"))
    paths = unit_paths(spec.out, spec.method, fold)
    # GPP first, the parameter table (the unit's "done" marker with its key) last.
    out = {"gpp": store.write_parquet(gpp.reset_index(drop=True), paths["gpp"], prov)}
    out["params"] = store.write_parquet(table.reset_index(drop=True), paths["params"], prov)
    return out


def execute_unit(spec: UnitSpec, data: SiteData) -> dict[int, dict[str, Path]]:
    """Run one unit: fit, predict, evaluate and write every fold it holds.

    Folds whose files already carry this unit's key and verify are skipped (all folds of a
    ``"stacked"`` unit run again when one of them has to). How the pending folds run
    follows the method's ``folds`` keyword (:data:`lue_spie.methods.base.FOLDS`):
    ``"batched"`` and ``"stacked"`` methods fit and predict them in one
    :meth:`~lue_spie.methods.base.Method.fit_predict_folds` call (also a single fold, so
    that a fold's result does not depend on how the folds were grouped into units: its key
    does not); an ``"independent"`` method predicts every held-out site of the unit in one
    call (its prediction is the same in every fold); the others run fold after fold. The
    method gets its results folder for files of its own beside the fold files (SPIE's
    networks and training curves), which a rerun that skips the method leaves in place.

    Returns:
        Fold -> paths of the written files.
    """
    pending = [f for f in spec.folds if not unit_done(spec, f[0])]
    if not pending:
        return {}
    try:
        return _execute(spec, data, pending)
    except ValueError as err:  # a hyperparameter or data the method refuses: name the unit
        if err.args and isinstance(err.args[0], str) and not isinstance(err, LueSpieError):
            err.args = (f"{spec.label}: {err.args[0]} (hyperparameters: --param "
                        f"{spec.method}.NAME=VALUE)", *err.args[1:])
        raise


def _execute(spec: UnitSpec, data: SiteData,
             pending: list[tuple[int, Sequence[str], Sequence[str]]]
             ) -> dict[int, dict[str, Path]]:
    """:func:`execute_unit` for its pending folds."""
    written: dict[int, dict[str, Path]] = {}
    # Each unit its own work folder: units of one method may run at once on a Dask cluster.
    workdir = spec.files.unit_work_dir([k for k, _, _ in spec.folds])
    method = _build(spec, workdir)
    mode = type(method).folds
    if mode == "stacked":
        # Stacked folds train as one (SPIE: one stacked network, one data stream): a fold
        # trained again without its unit's other folds is not bit for bit the fold of the
        # whole stack, so a rerun that finds one fold missing or damaged trains them all.
        pending = list(spec.folds)
    if mode in ("batched", "stacked"):
        t0 = time.perf_counter()
        preds = method.fit_predict_folds(data, [(k, list(tr), list(te))
                                                for k, tr, te in pending])
        seconds = (time.perf_counter() - t0) / len(pending)
        for k, _, test in pending:
            written[k] = _write_fold(spec, data, k, test, preds[k], seconds)
    elif mode == "independent":
        t0 = time.perf_counter()
        every = [s for _, _, test in pending for s in test]
        pred = method.fit_predict(data, [], every)
        seconds = (time.perf_counter() - t0) / len(pending)
        for k, _, test in pending:
            written[k] = _write_fold(spec, data, k, test,
                                     pred[pred["site"].isin(set(test))], seconds)
    else:
        for k, train, test in pending:
            t0 = time.perf_counter()
            pred = _build(spec, workdir / f"fold{k}").fit_predict(data, list(train), list(test))
            written[k] = _write_fold(spec, data, k, test, pred, time.perf_counter() - t0)
    shutil.rmtree(workdir, ignore_errors=True)  # checkpoints of finished folds
    return written

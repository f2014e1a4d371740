"""The cross-validated comparison as a step: every method on every fold, resumable, in one call.

:func:`run` reads ``layout.data`` and ``layout.calibration``, makes (or reads) the ten-fold
split (:mod:`lue_spie.extrapolate.cv`), plans the units of work
(:mod:`~lue_spie.extrapolate.runner`; one per method and fold, or one per method when it runs
its folds together: see the ``folds`` keyword of :class:`~lue_spie.methods.base.Method`),
skips the (method, fold) pairs whose files already carry the same key, runs the rest (in this
process, or on a Dask cluster through :mod:`lue_spie.execution`), and finally gathers each
method's folds into one parameter table and one GPP table plus the summary of every method,
fold and held-out site (names in :class:`lue_spie.layout.ExtrapolationFiles` and
:class:`~lue_spie.layout.MethodFiles`). ``lue-spie extrapolate``
(:mod:`~lue_spie.extrapolate.cli`), the method chapters of the book and the structural-error
twin run it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lue_spie import store
from lue_spie.data.io import load_dataset
from lue_spie.execution import ExecutionSettings
from lue_spie.extrapolate.cv import (
    FOLD_COLUMNS,
    FoldSplit,
    make_folds,
    read_folds,
    write_folds,
)
from lue_spie.extrapolate.runner import gather, plan_units, run_units
from lue_spie.extrapolate.settings import ExtrapolationSettings
from lue_spie.extrapolate.units import fold_damage, unit_done
from lue_spie.layout import ExtrapolationFiles, Layout
from lue_spie.methods.base import SiteData, get_method, method_class

__all__ = ["ExtrapolationResult", "run", "read_method_results"]


@dataclasses.dataclass
class ExtrapolationResult:
    """What :func:`run` did.

    Attributes:
        out: The extrapolation folder.
        split: The fold split.
        ran: Units run in this call (labels) and their wall time in seconds.
        skipped: (method, fold) pairs whose results were already there.
        summary: The summary table (every method, fold and held-out site).
    """

    out: Path
    split: FoldSplit
    ran: dict[str, float]
    skipped: list[tuple[str, int]]
    summary: pd.DataFrame


def _checksum_files(paths: Sequence[Path]) -> dict[str, str | None]:
    return {p.name: store.sha256_file(p) if p.is_file() else None for p in paths}


def _split(data: SiteData, out: ExtrapolationFiles, n_folds: int, seed: int, log: Callable,
           sites: Sequence[str] | None = None) -> FoldSplit:
    """The split of ``out`` when it matches the data and settings, else a new one."""
    table = data.dataset.sites
    if sites is not None:
        table = table[table["site"].isin(data.check_sites(sites, "sites"))]
    fresh = make_folds(table, n_folds, seed)
    why = store.verify(out.folds, columns=FOLD_COLUMNS) if out.folds.exists() else None
    if why is not None:
        log(f"recomputed the split in {out.folds}: its file was unreadable ({why})")
    elif out.folds.is_file():
        old = read_folds(out)
        if old.checksum() == fresh.checksum():
            return old
        log(f"note: {out.folds} holds a split of other sites or settings; writing a new one "
            "(results of the old split no longer match and will be redone)")
    write_folds(fresh, out)
    return fresh


def run(
    layout: Layout,
    settings: ExtrapolationSettings | None = None,
    execution: ExecutionSettings | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], Any] = print,
) -> ExtrapolationResult:
    """Run the cross-validated comparison (see the module docstring).

    Args:
        layout: Where the dataset and the site calibration are (``layout.data``,
            ``layout.calibration``; the calibration is needed by the methods that learn from
            calibrated vectors) and the results go (``layout.extrapolation``).
        settings: What to run (default: :class:`ExtrapolationSettings` with its defaults).
        execution: Where the units run (default: in this process; see
            :class:`~lue_spie.execution.ExecutionSettings`); the results are the same.
        progress: Show a progress bar over units.
        log: Where progress lines go.

    Raises:
        TooFewSites: when the dataset has fewer sites than folds (one line).
        ValueError, KeyError, FileNotFoundError: bad input, naming it.
    """
    settings = settings or ExtrapolationSettings()
    execution = execution or ExecutionSettings()
    names = settings.method_names()
    for name in names:  # a bad hyperparameter is refused before anything is written
        get_method(name, **dict(settings.method_params.get(name, {})))
    data_files = layout.data
    dataset = load_dataset(data_files.folder)
    needs_cal = [n for n in names if method_class(n).learns_from == "calibration"]
    cal_path = None
    with contextlib.suppress(ValueError):  # no calibration folder given
        cal_path = layout.calibration.table
    given = layout.calibration_dir is not None  # named by the user: it must be there
    if cal_path is not None and (needs_cal or given or cal_path.is_file()):
        calibration = store.read_parquet(cal_path)
        store.check_calibration_of(cal_path, data_files)
    elif needs_cal:
        raise ValueError(f"methods {needs_cal} learn from site-calibrated vectors: give the "
                         "calibration folder (--calib DIR)")
    else:
        calibration, cal_path = None, None
    data = SiteData(dataset, calibration, years=settings.years)
    out = layout.extrapolation
    Path(out.folder).mkdir(parents=True, exist_ok=True)
    split = _split(data, out, settings.n_folds, settings.seed, log, settings.sites)
    context = {"data": _checksum_files([data_files.site_day, data_files.sites]),
               "calibration": store.sha256_file(cal_path) if cal_path else None,
               "years": list(settings.years) if settings.years else None,
               "split": split.checksum()}
    # On a cluster the units get an absolute folder: workers need not share our directory.
    folder = Path(out.folder).resolve() if execution.distributed else Path(out.folder)
    units = plan_units(settings, split, folder, context, cluster=execution.distributed)
    damaged = {(u.method, k): why for u in units for k, _, _ in u.folds
               for why in [fold_damage(u, k)] if why}
    skipped = [(u.method, k) for u in units for k, _, _ in u.folds if unit_done(u, k)]
    todo = [u for u in units if any(not unit_done(u, k) for k, _, _ in u.folds)]
    if skipped:
        log(f"{len(skipped)} (method, fold) result(s) already in {out.folder} with the same "
            "settings and data: skipped")
    ran = run_units(todo, data, execution, out, progress=progress, log=log)
    for (method, k), why in damaged.items():
        for kind, reason in why.items():
            log(f"recomputed fold {k} of {method}: its {kind} file was unreadable ({reason})")
    for name in names:  # each unit removed its own work folder; now their empty parent
        with contextlib.suppress(OSError):
            out.method(name).work_dir.rmdir()
    summary = gather(out, names, split, context)
    return ExtrapolationResult(out=Path(out.folder), split=split, ran=ran, skipped=skipped,
                               summary=summary)


def read_method_results(out: ExtrapolationFiles | str | Path,
                        method: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(params, gpp)`` of one method from an extrapolation folder.

    Raises:
        FileNotFoundError: naming the file and the command that writes it.
    """
    out = out if isinstance(out, ExtrapolationFiles) else ExtrapolationFiles(Path(out))
    files = out.method(method)
    try:
        return store.read_parquet(files.params), store.read_parquet(files.gpp)
    except FileNotFoundError:
        raise FileNotFoundError(f"{files.folder}: no results of method {method}; run `lue-spie "
                                f"extrapolate --methods {method} --out {out.folder}` first"
                                ) from None

"""When does SPIE pay off: a sweep over two dials of the virtual world (the step).

No study on real flux sites can ask under which conditions extrapolating parameters through
the model (SPIE) beats extrapolating calibrated parameters (the baselines): the conditions are
what they are. The virtual FLUXNET can set them. :func:`run` takes a grid over two dials (or
groups of dials) of a world (:class:`~lue_spie.payoff.settings.PayoffSettings`: by default
the feature-driven spread of the parameters against the biases and gaps that make calibrations
equifinal), and runs every point of it as one independent unit on the
:class:`~lue_spie.execution.Executor` (in this process or on Dask workers): generate,
calibrate, cross-validate SPIE and a few baselines (:func:`lue_spie.payoff.points.run_point`),
score (:func:`~lue_spie.payoff.points.score_point`). A finished point keeps its scores (their
provenance holds the point's key), so a rerun resumes with the points still to do; a point
that stopped half-way resumes inside its own steps.

The table (``layout.payoff``, :class:`~lue_spie.layout.PayoffFiles`) has one row per point and
method (the true parameters and site calibration included), with the point's dial values; the
figure (:func:`lue_spie.plots.payoff_sweep`) shows SPIE's margin over the best baseline and
every method's share of sites with a positive daily NSE along the two dials, the true
parameters' share as the ceiling.

A table made elsewhere (a larger sweep, ``lue-spie payoff --publish``) is shipped with the
package (:meth:`~lue_spie.layout.PayoffFiles.published`) with its provenance: the command,
the commit and the date; :func:`read_published` reads it, for the books whose profile does
not run the sweep.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lue_spie import store
from lue_spie.execution import ExecutionSettings, Executor
from lue_spie.layout import Layout, PayoffFiles, provenance_of
from lue_spie.payoff.points import PointSpec, run_point, score_point
from lue_spie.payoff.settings import PayoffSettings, SweepPoint

__all__ = ["PayoffResult", "run", "publish", "read_published", "sweep_table", "point_key"]


@dataclass
class PayoffResult:
    """What :func:`run` did.

    Attributes:
        table: Every point's scores (see the module docstring).
        ran: Labels of the points run in this call and their wall time in seconds.
        kept: Labels of the points whose scores were already there.
        files: Name -> path of the files written.
    """

    table: pd.DataFrame
    ran: dict[str, float]
    kept: list[str]
    files: dict[str, Path]


def _spec(settings: PayoffSettings, point: SweepPoint, device: str) -> PointSpec:
    return PointSpec(point.world, settings.n_sites, settings.n_years, settings.seed,
                     settings.calibration(device), settings.extrapolation(device))


def point_key(spec: PointSpec) -> str:
    """A digest of everything a point's scores depend on (its world, size, seed and
    settings), stored in the provenance of its scores."""
    blob = json.dumps({"world": spec.world.to_dict(), "n_sites": spec.n_sites,
                       "n_years": spec.n_years, "seed": spec.seed,
                       "calibration": {k: v for k, v in spec.calibration.to_dict().items()
                                       if k != "device"},
                       "methods": spec.methods(),
                       "method_params": {m: {k: v for k, v in p.items() if k != "device"}
                                         for m, p in spec.extrapolation.method_params.items()},
                       "n_folds": spec.extrapolation.n_folds},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _done(path: Path, key: str) -> bool:
    if not path.is_file():
        return False
    try:
        return store.read_provenance(path).get("settings", {}).get("key") == key
    except (OSError, json.JSONDecodeError):
        return False


def _point_unit(item: tuple[str, str, PointSpec, str], shared: Any) -> pd.DataFrame:
    """One point (a unit of the executor): run it in this process, score it, write the
    scores with the point's key."""
    folder, label, spec, key = item
    layout = run_point(folder, spec, log=lambda s: None)
    scores = score_point(layout, spec.methods())
    prov = store.make_provenance("payoff.point", settings={
        "key": key, "label": label, "world": spec.world.to_dict()}, seed=spec.seed)
    store.write_parquet(scores, PayoffFiles.point_scores_in(folder), prov)
    return scores


def sweep_table(settings: PayoffSettings, scores: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every point's scores in one table: the point, its two factors and every dial value,
    then the scores of each method (rows ``truth`` and ``site-calib`` included)."""
    rows = []
    for p in settings.points():
        if p.label not in scores:
            continue
        dials = p.world.dials()
        for r in scores[p.label].to_dict("records"):
            rows.append({"point": p.label, "x_dial": settings.x_dial, "x": p.x,
                         "y_dial": settings.y_dial, "y": p.y, **dials, **r})
    return pd.DataFrame(rows)


def run(layout: Layout, settings: PayoffSettings | None = None,
        execution: ExecutionSettings | None = None, *, device: str = "cpu",
        progress: bool = True, log: Callable[[str], Any] = print) -> PayoffResult:
    """Run the pay-off sweep into ``layout.payoff`` (see the module docstring).

    Args:
        layout: The results folder (the sweep goes to ``layout.payoff``).
        settings: The grid, methods and size (default: :class:`PayoffSettings`).
        execution: Where the points run (default: in this process; on Dask workers each
            point is one unit).
        device: Device of the CMA-ES searches and SPIE inside every point.
        progress: Show a progress bar over the points.
        log: Where progress lines go.

    Raises:
        ValueError: when ``settings.run`` is False (the published table is read with
            :func:`read_published` instead).
    """
    settings = settings or PayoffSettings()
    if not settings.run:
        raise ValueError("PayoffSettings.run = False: nothing to run; read the published "
                         "sweep with lue_spie.payoff.read_published()")
    execution = execution or ExecutionSettings()
    files = layout.payoff
    points = settings.points()
    items, kept, scores = [], [], {}
    for p in points:
        spec = _spec(settings, p, device)
        key = point_key(spec)
        folder = files.point(p.label)
        if execution.distributed:
            folder = folder.resolve()
        if _done(files.point_scores(p.label), key):
            kept.append(p.label)
            scores[p.label] = store.read_parquet(files.point_scores(p.label))
        else:
            items.append((str(folder), p.label, spec, key))
    if kept:
        log(f"{len(kept)} point(s) already scored in {files.points_dir}: kept")
    ran: dict[str, float] = {}
    files.points_dir.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    with Executor(execution, log=log) as ex:
        ex.check_paths(files.points_dir)
        t0 = time.perf_counter()
        for i, table in ex.map(_point_unit, items, labels=[it[1] for it in items],
                               desc="pay-off points", name="payoff-point", progress=progress):
            label = items[i][1]
            scores[label] = table
            ran[label] = round(time.perf_counter() - t0, 1)
    table = sweep_table(settings, scores)
    prov = store.make_provenance("payoff", settings=settings.to_dict(), seed=settings.seed)
    written = {"table": store.write_parquet(table, files.scores, prov),
               "csv": store.atomic_write_text(files.scores_csv, table.to_csv(index=False))}
    written["figure"] = _figure(table, files.figure)
    record = {"settings": settings.to_dict(), "execution": execution.describe(),
              "points": [p.label for p in points], "ran_s": ran, "kept": kept,
              "total_s": round(time.perf_counter() - t_all, 1),
              "files": {k: str(v) for k, v in written.items()}}
    written["record"] = store.atomic_write_json(files.record, record)
    return PayoffResult(table=table, ran=ran, kept=kept, files=written)


def _figure(table: pd.DataFrame, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from lue_spie.plots import payoff_sweep

    fig = payoff_sweep(table)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    return store.atomic_write_bytes(path, buf.getvalue())


def publish(layout: Layout, command: str, *, out: str | Path | None = None) -> Path:
    """Copy the sweep's table to the published table shipped with the package, with a
    provenance record that names the command that made it, the commit and the date.

    Args:
        layout: The results folder whose sweep is published.
        command: The command line that ran the sweep (recorded as it is).
        out: Where to write (default: :meth:`~lue_spie.layout.PayoffFiles.published`).

    Raises:
        FileNotFoundError: when the sweep has no table yet.
    """
    files = layout.payoff
    if not files.scores.is_file():
        raise FileNotFoundError(f"{files.scores}: no sweep table; run `lue-spie payoff` first")
    table = store.read_parquet(files.scores)
    made = store.read_provenance(files.scores)
    record = json.loads(files.record.read_text(encoding="utf-8")) \
        if files.record.is_file() else {}
    target = Path(out) if out is not None else PayoffFiles.published()
    target.parent.mkdir(parents=True, exist_ok=True)
    store.atomic_write_text(target, table.to_csv(index=False))
    prov = {"command": command, "git_commit": made.get("git_commit"),
            "created": made.get("created"), "platform": made.get("platform"),
            "versions": made.get("versions"), "settings": made.get("settings"),
            "execution": record.get("execution"), "total_s": record.get("total_s"),
            "sha256": store.sha256_file(target)}
    store.atomic_write_json(provenance_of(target.with_suffix("")), prov)
    return target


def read_published(path: str | Path | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The published sweep's table and its provenance (command, commit, date, settings).

    Raises:
        FileNotFoundError: when no sweep has been published.
        ValueError: when the table does not match the checksum in its provenance.
    """
    path = Path(path) if path is not None else PayoffFiles.published()
    prov_path = provenance_of(path.with_suffix(""))
    if not path.is_file() or not prov_path.is_file():
        raise FileNotFoundError(f"{path}: no published pay-off sweep; run `lue-spie payoff "
                                "--publish` (see benchmarks/RESULTS.md)")
    prov = json.loads(prov_path.read_text(encoding="utf-8"))
    if prov.get("sha256") != store.sha256_file(path):
        raise ValueError(f"{path}: its checksum differs from the one in {prov_path.name}; "
                         "publish the sweep again")
    return pd.read_csv(path), prov


"""The ``lue-spie maps`` step: parameter and GPP maps of a virtual continent.

:func:`run` reads a results folder (the towers' dataset, their site calibration and the
cross-validation's results), draws the continent in the towers' world
(:mod:`~lue_spie.maps.geography`, :mod:`~lue_spie.maps.world`), builds each method's
predictor from what the book trained (:mod:`~lue_spie.maps.predictors`), creates the CF Zarr
store (:mod:`~lue_spie.maps.product`) and runs one unit per chunk of the grid that holds land
(:mod:`~lue_spie.maps.tiles`), in this process or on a Dask cluster
(:mod:`lue_spie.execution`); a rerun skips the chunks already written with the same settings
and inputs. It then gathers the chunks' cell tables and measures the maps against the truth
(:mod:`~lue_spie.maps.skill`), and writes the tables (parquet with provenance, CSV; names in
:class:`lue_spie.layout.MapsTable`), the figures and the record ``maps.json`` into
``layout.maps``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lue_spie import store
from lue_spie.execution import ExecutionSettings, Executor
from lue_spie.layout import Layout, MapsFiles, MapsTable
from lue_spie.maps import world
from lue_spie.maps.geography import Continent, Grid, make_continent
from lue_spie.maps.predictors import build_predictors
from lue_spie.maps.product import ZARR_FORMAT, create_store, store_key, template
from lue_spie.maps.settings import TRUTH, MapsSettings
from lue_spie.maps.skill import (
    Applicability,
    error_by_distance,
    gpp_skill,
    identifiable,
    parameter_skill,
)
from lue_spie.maps.tiles import (
    MapContext,
    chunk_done,
    chunks_with_land,
    gather_chunks,
    run_chunk,
    unit_key,
)
from lue_spie.model import resolve_device

__all__ = ["MapsResult", "FIGURES", "run", "continent_of", "record_dates", "write_maps"]

#: The step's figures, by file stem: the continent, parameter, GPP and error maps, the
#: dissimilarity to the towers and the error by distance.
FIGURES: tuple[str, ...] = ("continent", "parameter_maps", "gpp_maps", "gpp_error_maps",
                            "dissimilarity_map", "error_by_distance")
#: Version of the store's layout (part of the run's key: a change rebuilds the store).
_STORE_LAYOUT = 1


@dataclasses.dataclass
class MapsResult:
    """What :func:`run` made.

    Attributes:
        out: The maps folder.
        store: The Zarr store.
        continent: The continent.
        cells: Every land cell: position, types, features, true and mapped parameters and
            mean GPP (columns ``<quantity>__<method>``), dissimilarity to the towers.
        tables: The error tables by stem (:class:`lue_spie.layout.MapsTable`).
        predictors: Method -> what was reused or refitted for it.
        ran: The chunks run in this call (``chunk``, ``cells``, ``cell_days``, ``seconds``).
        skipped: The chunks already written with the same key.
        timings: Seconds per phase.
        settings: The settings.
        dates: The days of the cells' record.
        threshold: The dissimilarity that bounds the area of applicability.
        written: File stem -> the files written for it (tables and figures).
    """

    out: Path
    store: Path
    continent: Continent
    cells: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    predictors: dict[str, str]
    ran: list[dict[str, Any]]
    skipped: list[tuple[int, int]]
    timings: dict[str, float]
    settings: MapsSettings
    dates: pd.DatetimeIndex
    threshold: float
    written: dict[str, list[Path]] = dataclasses.field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        """The mapped methods (without the truth)."""
        return list(self.predictors)

    def cell_days_per_second(self) -> float:
        """Cell-days made and mapped per second of wall time in this call's chunks."""
        total = sum(r["cell_days"] for r in self.ran)
        return total / self.timings["chunks"] if self.timings.get("chunks") else float("nan")


def continent_of(settings: MapsSettings) -> Continent:
    """The continent of the settings (its grid and seed)."""
    grid = Grid(settings.lat_min, settings.lat_max, settings.lon_min, settings.lon_max,
                settings.resolution)
    return make_continent(grid, settings.seed)


def record_dates(truth_meta: Mapping[str, Any], n_years: int | None) -> pd.DatetimeIndex:
    """The days of the cells' record: the towers' years, or ``n_years`` from their first."""
    start = int(truth_meta["start_year"])
    years = int(n_years if n_years is not None else truth_meta["n_years"])
    return pd.date_range(f"{start}-01-01", f"{start + years - 1}-12-31", freq="D")


def _checksums(paths: Sequence[Path]) -> dict[str, str | None]:
    return {Path(p).as_posix(): store.sha256_file(p) if Path(p).is_file() else None
            for p in paths}


def _folds(layout: Layout) -> dict[str, int] | None:
    path = layout.extrapolation.folds
    if not path.is_file():
        return None
    table = store.read_parquet(path)
    return {str(s): int(k) for s, k in zip(table["site"], table["fold"], strict=True)}


def run(layout: Layout, settings: MapsSettings | None = None,
        execution: ExecutionSettings | None = None, *, progress: bool = True,
        with_figures: bool = True, log: Callable[[str], Any] | None = print) -> MapsResult:
    """The ``lue-spie maps`` step (see the module docstring).

    Args:
        layout: The results folder: ``data`` (the towers: a virtual FLUXNET),
            ``calibration`` and ``extrapolation`` (what the methods reuse), ``maps`` (out).
        settings: The continent and the methods (default :class:`MapsSettings`).
        execution: Where the chunks run (default: in this process); the results are the
            same.
        progress: Show a progress bar over chunks.
        with_figures: Draw the figures.
        log: Where progress lines go (None: nowhere).

    Raises:
        FileNotFoundError: naming a missing input and the command that writes it.
        ValueError: for settings or inputs that do not fit (one line).
    """
    from lue_spie.data.io import load_dataset

    t_all = time.perf_counter()
    log = log or _quiet
    s = settings or MapsSettings()
    execution = execution or ExecutionSettings()
    timings: dict[str, float] = {}
    data = layout.data
    if not data.sites.is_file():
        raise FileNotFoundError(f"{data.folder}: no dataset ({data.sites.name}); the towers "
                                "come from it (run `lue-spie data synth` or the data chapter)")
    dataset = load_dataset(data.folder)
    towers_world = world.check_world(s.world, dataset.truth_meta)
    meta = dataset.truth_meta
    assert meta is not None  # check_world refuses a dataset without one
    dates = record_dates(meta, s.n_years)
    device = resolve_device(s.device)

    t0 = time.perf_counter()
    continent = continent_of(s)
    timings["continent"] = time.perf_counter() - t0
    d = continent.describe()
    log(f"maps: a continent of {d['land_cells']} land cells ({d['grid_cells']} grid cells of "
        f"{s.resolution:g} degrees), {len(dates)} days each, in the world {towers_world.name!r}")
    t0 = time.perf_counter()
    predictors = build_predictors(layout, s.methods, dataset, log=log)
    folds = _folds(layout)
    applicability = Applicability(dataset.sites, folds)
    timings["predictors"] = time.perf_counter() - t0

    files = layout.maps
    out = Path(files.folder)
    out.mkdir(parents=True, exist_ok=True)
    inputs = [data.sites, data.truth, data.truth_meta, layout.extrapolation.folds,
              *[p for pr in predictors.values() for p in pr.inputs]]
    inputs = list(dict.fromkeys(Path(p) for p in inputs))
    key_settings = {k: v for k, v in s.to_dict().items() if k != "device"}
    run_key = hashlib.sha256(json.dumps({
        "settings": key_settings, "inputs": _checksums(inputs),
        "generator": world.GENERATOR_VERSION, "store_layout": _STORE_LAYOUT,
        "zarr_format": ZARR_FORMAT}, sort_keys=True).encode()).hexdigest()

    structural = bool(meta.get("structural_error", {}).get("enabled", False))
    methods = (TRUTH, *predictors)
    if store_key(files.store) != run_key:
        if files.store.exists() or files.chunks_dir.exists():
            log(f"maps: {files.store} was made with other settings or inputs; making it anew")
        shutil.rmtree(files.chunks_dir, ignore_errors=True)
        attrs = _attributes(s, meta, structural, run_key)
        create_store(files.store, template(continent, dates, methods, chunk=s.chunk,
                                           time_chunk=s.time_chunk, attrs=attrs))
    tiles = chunks_with_land(continent, s.chunk)
    todo = [t for t in tiles if not chunk_done(files, t, unit_key(run_key, t))]
    for t in todo:
        table = files.chunk_table(*t)
        why = store.verify(table) if table.exists() else None
        if why is not None:
            log(f"maps: chunk {t[0]}-{t[1]} is made again: its table {table.name} {why}")
    skipped = [t for t in tiles if t not in set(todo)]
    if skipped:
        log(f"maps: {len(skipped)} of {len(tiles)} chunks already written with the same "
            "settings and inputs: skipped")

    folder = out.resolve() if execution.distributed else out
    ctx = MapContext(continent=continent, dates=dates, seed=s.seed, world=towers_world,
                     structural_error=structural, predictors=predictors,
                     applicability=applicability, chunk=s.chunk,
                     store=MapsFiles(folder).store, files=MapsFiles(folder), device=device,
                     run_key=run_key, settings=key_settings)
    ran: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    if todo:
        with Executor(execution, log=log) as ex:
            ex.check_paths(folder)
            shared = ex.share(ctx)
            for _, res in ex.map(run_chunk, todo, shared=shared, desc="maps",
                                 labels=[f"chunk {r}-{c}" for r, c in todo], name="map-chunk",
                                 progress=progress):
                ran.append(res)
    timings["chunks"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cells = gather_chunks(files, tiles)
    mapped = list(predictors)
    tables: dict[str, pd.DataFrame] = {}
    cal_file = None
    with contextlib.suppress(ValueError):  # no calibration folder given
        cal_file = layout.calibration.table
    ident = None
    if cal_file is not None and cal_file.is_file() and dataset.truth is not None:
        koeppen = dataset.sites.set_index("site")["koeppen"]
        ident = identifiable(dataset.truth, store.read_parquet(cal_file), koeppen,
                             s.identifiable_r2)
        tables[MapsTable.IDENTIFIABLE] = ident
    tables[MapsTable.GPP_SKILL] = gpp_skill(cells, mapped)
    tables[MapsTable.PARAMETER_SKILL] = parameter_skill(cells, mapped, ident)
    tables[MapsTable.DISTANCE] = error_by_distance(cells, mapped, s.distance_bins,
                                                   applicability.threshold)
    tables[MapsTable.TOWERS] = applicability.table()
    timings["skill"] = time.perf_counter() - t0
    result = MapsResult(out=out, store=files.store, continent=continent, cells=cells,
                        tables=tables, predictors={m: p.how for m, p in predictors.items()},
                        ran=ran, skipped=skipped, timings=timings, settings=s, dates=dates,
                        threshold=applicability.threshold)
    write_maps(result, files, inputs=inputs, figures=with_figures, log=log)
    timings["total"] = time.perf_counter() - t_all
    _write_record(result, files, inputs)
    return result


def _quiet(*_: Any) -> None:
    """A log that writes nothing."""


def _attributes(s: MapsSettings, meta: Mapping[str, Any], structural: bool,
                run_key: str) -> dict[str, Any]:
    """The store's global attributes (CF and ACDD names; no time stamp)."""
    from lue_spie import __version__

    return {
        "Conventions": "CF-1.10",
        "title": "A virtual continent: LUE-model parameters and GPP of parameter-"
                 "extrapolation methods, and the true values",
        "summary": "Daily gross primary productivity and the 13 parameters of a light-use-"
                   "efficiency model on a virtual continent drawn from the generator of the "
                   "virtual FLUXNET, for the truth of that world and for methods trained on "
                   "its towers (SPIE and baselines; Bao et al. 2023). Nothing here is "
                   "observed: it is a world whose truth is known everywhere.",
        "source": f"lue-spie {__version__} (lue-spie maps); virtual FLUXNET generator "
                  f"{world.GENERATOR_VERSION}, world {world.dataset_world(meta).name!r}"
                  + (", with the structural error" if structural else ""),
        "references": "Bao, S. et al. (2023), JAMES, doi:10.1029/2022MS003464",
        "institution": "lue-spie",
        "comment": "method = truth: the generator's true parameters and the noise-free GPP "
                   "they give; other methods: parameters predicted from each cell's features "
                   "(see the record maps.json beside the store for how each was trained)",
        "geospatial_lat_min": s.lat_min, "geospatial_lat_max": s.lat_max,
        "geospatial_lon_min": s.lon_min, "geospatial_lon_max": s.lon_max,
        "geospatial_lat_resolution": s.resolution, "geospatial_lon_resolution": s.resolution,
        "seed": s.seed, "towers_seed": int(meta.get("seed", -1)),
        "lue_spie_key": run_key,
    }


def write_maps(res: MapsResult, files: MapsFiles, *, inputs: Sequence[Path] = (),
               figures: bool = True, formats: Sequence[str] = ("png",),
               log: Callable[[str], Any] = lambda *_: None) -> dict[str, list[Path]]:
    """Write the cells table (parquet), the error tables (parquet + CSV) and the figures
    (PNG: the maps are raster images, which an SVG would only wrap).

    Returns:
        File stem -> the files written for it.
    """
    written: dict[str, list[Path]] = {}
    settings = res.settings.to_dict()
    ins = {Path(p).name: p for p in inputs}
    prov = store.make_provenance(f"maps.{MapsTable.CELLS}", settings=settings, inputs=ins,
                                 seed=res.settings.seed)
    written[MapsTable.CELLS] = [store.write_parquet(res.cells, files.table(MapsTable.CELLS),
                                                    prov)]
    for name, table in res.tables.items():
        prov = store.make_provenance(f"maps.{name}", settings=settings, inputs=ins,
                                     seed=res.settings.seed)
        written[name] = store.write_table(table, files.folder, name, prov)
    if figures:
        from lue_spie.plots import save_figure

        t0 = time.perf_counter()
        fig_dir = files.figures_dir
        fig_dir.mkdir(parents=True, exist_ok=True)
        for name, fig in _figures(res).items():
            written[name] = save_figure(fig, fig_dir / name, formats)
            log(f"  figure {name}")
        res.timings["figures"] = time.perf_counter() - t0
    res.written = written
    return written


def _figures(res: MapsResult) -> dict[str, Any]:
    """Every figure by file stem (:data:`FIGURES`)."""
    from lue_spie import plots
    from lue_spie.maps.product import open_maps

    ds = open_maps(res.store)
    with contextlib.closing(ds):
        figs = {
            "continent": plots.continent_map(ds),
            "parameter_maps": plots.parameter_maps(ds, ("eps_max", "Topt", "WI")),
            "gpp_maps": plots.gpp_maps(ds),
            "gpp_error_maps": plots.gpp_error_maps(ds),
            "dissimilarity_map": plots.dissimilarity_map(ds),
            "error_by_distance": plots.error_by_distance(res.tables[MapsTable.DISTANCE],
                                                         res.threshold),
        }
    return figs


def _write_record(res: MapsResult, files: MapsFiles, inputs: Sequence[Path]) -> None:
    """``maps.json``: settings, inputs, the continent, the predictors, timings, files."""
    written = res.written
    record = store.make_provenance("maps", settings=res.settings.to_dict(),
                                   inputs={Path(p).name: p for p in inputs},
                                   seed=res.settings.seed)
    record["continent"] = res.continent.describe()
    record["days"] = len(res.dates)
    record["first_day"] = f"{res.dates[0]:%Y-%m-%d}"
    record["predictors"] = res.predictors
    record["chunks"] = {"ran": len(res.ran), "skipped": len(res.skipped),
                        "cell_days_ran": int(sum(r["cell_days"] for r in res.ran))}
    record["cell_days_per_second"] = res.cell_days_per_second() if res.ran else None
    record["area_of_applicability_threshold"] = res.threshold
    record["timings_s"] = dict(res.timings)
    record["store"] = {"path": files.store.name, "zarr_format": ZARR_FORMAT,
                       "bytes": int(sum(p.stat().st_size for p in files.store.rglob("*")
                                        if p.is_file()))}
    record["files"] = {p.relative_to(files.folder).as_posix(): store.sha256_file(p)
                       for ps in written.values() for p in ps}
    store.atomic_write_json(files.record, record)

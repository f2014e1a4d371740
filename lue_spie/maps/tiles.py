"""One chunk of the continent, start to end: the unit of work of ``lue-spie maps``.

A chunk is a square of ``chunk`` x ``chunk`` grid cells (:func:`chunk_cells`). Its unit
(:func:`run_chunk`) draws the land cells' weather, soil, vegetation, features and true
parameters from the generator (:func:`lue_spie.maps.world.generate_cells`), asks every
method for their parameters (:mod:`lue_spie.maps.predictors`), measures their dissimilarity
to the towers (:class:`lue_spie.maps.skill.Applicability`), runs the LUE model with every
set of parameters (:func:`lue_spie.model.simulate`, GPP only, no gradients), writes its region
of the Zarr store (:func:`lue_spie.maps.product.write_tile`) and finally its table of cells,
the chunk's done marker (:meth:`lue_spie.layout.MapsFiles.chunk_table`, with the unit's key
in its provenance record). Memory grows with the chunk (cells x days), never with the
continent. A chunk depends only on its position and the shared context
(:class:`MapContext`), so it runs in this process or on a Dask worker, in any order, and a
rerun skips the chunks whose marker carries the same key (:func:`chunk_done`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lue_spie import store
from lue_spie.data.features import CONTINUOUS_FEATURES
from lue_spie.data.virtual.worlds import World
from lue_spie.layout import MapsFiles
from lue_spie.maps import world
from lue_spie.maps.geography import Continent
from lue_spie.maps.predictors import Predictor
from lue_spie.maps.product import tile_region, write_tile
from lue_spie.maps.settings import TRUTH
from lue_spie.maps.skill import Applicability, column
from lue_spie.model import FORCING_KEYS, prepare_forcing, simulate
from lue_spie.params import PARAMETERS

__all__ = ["MapContext", "chunk_cells", "chunks_with_land", "unit_key", "chunk_done",
           "run_chunk", "gather_chunks", "CELL_COLUMNS"]

#: The cells table's columns that describe a cell (then features, parameters, GPP).
CELL_COLUMNS: tuple[str, ...] = ("site", "row", "col", "lat", "lon", "elevation",
                                 "dist_coast", "cell_area", "PFT", "koeppen", "c4",
                                 "irrigated", "dissimilarity", "nearest_tower", "inside")


@dataclasses.dataclass
class MapContext:
    """What every chunk shares (sent once to each worker).

    Attributes:
        continent: The continent.
        dates: The days of the cells' record.
        seed: Seed of the cells' own streams.
        world: The generator's world (the towers', with its dials).
        structural_error: Whether the truth includes the structural error (as the towers').
        predictors: Method -> its predictor.
        applicability: The towers in feature space.
        chunk: Cells per chunk side.
        store: The Zarr store.
        files: The maps folder.
        device: Where the LUE model runs.
        run_key: The key of the whole run (settings and inputs).
        settings: The step's settings (for the markers' provenance).
    """

    continent: Continent
    dates: pd.DatetimeIndex
    seed: int
    world: World
    structural_error: bool
    predictors: dict[str, Predictor]
    applicability: Applicability
    chunk: int
    store: Path
    files: MapsFiles
    device: str
    run_key: str
    settings: dict[str, Any]

    @property
    def methods(self) -> tuple[str, ...]:
        """The store's ``source`` labels: the truth, then the mapped methods."""
        return (TRUTH, *self.predictors)


def chunk_cells(continent: Continent, chunk: int, tile: tuple[int, int]) -> pd.DataFrame:
    """The land cells of chunk ``tile`` (row-major order)."""
    lat_sl, lon_sl = tile_region(continent.grid.shape, chunk, tile)
    c = continent.cells
    sel = ((c["row"] >= lat_sl.start) & (c["row"] < lat_sl.stop)
           & (c["col"] >= lon_sl.start) & (c["col"] < lon_sl.stop))
    return c[sel].reset_index(drop=True)


def chunks_with_land(continent: Continent, chunk: int) -> list[tuple[int, int]]:
    """The chunks that hold at least one land cell, row-major."""
    rows = continent.cells["row"].to_numpy() // chunk
    cols = continent.cells["col"].to_numpy() // chunk
    return sorted({(int(r), int(c)) for r, c in zip(rows, cols, strict=True)})


def unit_key(run_key: str, tile: tuple[int, int]) -> str:
    """A chunk's key: the run's key and the chunk's position."""
    blob = json.dumps({"run": run_key, "chunk": list(tile)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def chunk_done(files: MapsFiles, tile: tuple[int, int], key: str) -> bool:
    """Whether the chunk's table is there, verifies (:func:`lue_spie.store.verify`: not cut
    short or changed since it was written) and carries the same key (then its region is
    written); a damaged one is computed again."""
    path = files.chunk_table(*tile)
    return store.verify(path) is None and store.read_provenance(path).get(
        "settings", {}).get("unit_key") == key


@torch.no_grad()
def _gpp(rec: world.CellRecord, params: Mapping[str, np.ndarray],
         device: str) -> dict[str, np.ndarray]:
    """Daily GPP ``(cells, days)`` of every parameter set (float64 model, float32 result):
    the methods' from the forcing they are given (the world's fAPAR product), the truth's
    from the canopy's true fAPAR and times the structural error's factor when there is
    one."""
    dev = torch.device(device)

    def prepared(forcing: Mapping[str, np.ndarray]) -> Any:
        return prepare_forcing({k: torch.as_tensor(np.ascontiguousarray(forcing[k]))
                                for k in FORCING_KEYS}, dtype=torch.float64, device=dev)

    given = prepared(rec.forcing)
    true = given if rec.true_fapar is None else prepared(rec.truth_forcing())
    structural = rec.structural
    out = {}
    for name, p in params.items():
        pf = true if name == TRUTH else given
        g = simulate(pf, torch.as_tensor(p, dtype=torch.float64, device=dev),
                     outputs=("GPP",))["GPP"].cpu().numpy()
        if name == TRUTH and structural is not None:
            g = g * structural
        out[name] = g.astype(np.float32)
    return out


def run_chunk(tile: tuple[int, int], ctx: MapContext) -> dict[str, Any]:
    """Make, map and write one chunk (see the module docstring).

    Returns:
        ``chunk``, ``cells``, ``cell_days`` and ``seconds``.
    """
    t0 = time.perf_counter()
    cells = chunk_cells(ctx.continent, ctx.chunk, tile)
    fields = ctx.continent.stage_fields(cells)
    rec = world.generate_cells(cells, fields, ctx.dates, ctx.seed,
                               structural_error=ctx.structural_error, world=ctx.world)
    sites = rec.sites
    params = {TRUTH: rec.truth}
    for name, predictor in ctx.predictors.items():
        params[name] = predictor.predict(sites)
    di, nearest = ctx.applicability.dissimilarity(sites)
    gpp = _gpp(rec, params, ctx.device)
    del rec

    region = tile_region(ctx.continent.grid.shape, ctx.chunk, tile)
    h, w = region[0].stop - region[0].start, region[1].stop - region[1].start
    r = cells["row"].to_numpy() - region[0].start
    c = cells["col"].to_numpy() - region[1].start
    methods = ctx.methods
    n_days = len(ctx.dates)

    def grid(values: np.ndarray) -> np.ndarray:  # (..., cells) -> (..., h, w), NaN at sea
        out = np.full((*values.shape[:-1], h, w), np.nan, dtype=np.float32)
        out[..., r, c] = values
        return out

    gpp_cube = np.full((len(methods), n_days, h, w), np.nan, dtype=np.float32)
    for i, m in enumerate(methods):
        gpp_cube[i][:, r, c] = gpp[m].T
    means = {m: gpp[m].astype(np.float64).mean(axis=1) for m in methods}
    del gpp
    inside = di <= ctx.applicability.threshold
    arrays = {"gpp": gpp_cube,
              "gpp_mean": grid(np.stack([means[m] for m in methods])),
              "dissimilarity": grid(di), "area_of_applicability": grid(inside.astype(float))}
    for j, p in enumerate(PARAMETERS):
        arrays[p] = grid(np.stack([params[m][:, j] for m in methods]))
    write_tile(ctx.store, region, arrays, methods)
    del arrays, gpp_cube

    table = sites[["site", "row", "col", "lat", "lon", "elevation", "dist_coast", "PFT",
                   "koeppen", "c4", "irrigated", *CONTINUOUS_FEATURES]].copy()
    table.insert(7, "cell_area", ctx.continent.grid.cell_area_km2()[cells["row"]] * 1e6)
    table.insert(table.columns.get_loc("irrigated") + 1, "dissimilarity", di)
    table.insert(table.columns.get_loc("dissimilarity") + 1, "nearest_tower", nearest)
    table.insert(table.columns.get_loc("nearest_tower") + 1, "inside", inside)
    extra = {column(m, p): params[m][:, j] for m in methods for j, p in enumerate(PARAMETERS)}
    extra.update({column(m, "gpp_mean"): means[m] for m in methods})
    table = pd.concat([table, pd.DataFrame(extra)], axis=1)
    seconds = time.perf_counter() - t0
    key = unit_key(ctx.run_key, tile)
    prov = store.make_provenance("maps.chunk", settings={
        "unit_key": key, "chunk": list(tile), "cells": len(cells), "days": n_days,
        "seconds": seconds, **ctx.settings}, seed=ctx.seed)
    store.write_parquet(table, ctx.files.chunk_table(*tile), prov)
    return {"chunk": tile, "cells": len(cells), "cell_days": len(cells) * n_days,
            "seconds": seconds}


def gather_chunks(files: MapsFiles, tiles: Sequence[tuple[int, int]]) -> pd.DataFrame:
    """The tables of the chunks, concatenated in row-major order of the cells."""
    tables = [store.read_parquet(files.chunk_table(*t)) for t in tiles]
    out = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return out.sort_values(["row", "col"], kind="stable").reset_index(drop=True)

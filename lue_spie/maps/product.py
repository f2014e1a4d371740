"""The maps as a gridded product: a chunked Zarr store that follows the CF conventions.

Gridded carbon-flux products (FLUXCOM, FLUXCOM-X, the P-model's GPP) come as NetCDF or Zarr
with CF metadata: ``lat``, ``lon`` and ``time`` coordinates with their standard names and
units, one variable per quantity with ``units``, ``long_name`` and, where the CF table has
one, a ``standard_name``. This store does the same, so xarray and cf_xarray (or any CF tool)
read it without knowing lue-spie:

=============================  ========================  ========================================
variable                       dimensions                content
=============================  ========================  ========================================
``gpp``                        source, time, lat, lon    daily GPP [g m-2 d-1, i.e. gC m-2 d-1 as
                                                         FLUXNET; the carbon is in the standard
                                                         name ``gross_primary_productivity_of_``
                                                         ``biomass_expressed_as_carbon``]
``gpp_mean``                   source, lat, lon          GPP averaged over the record
                                                         (``cell_methods: time: mean``)
``eps_max`` ... ``alpha_W``    source, lat, lon          the 13 parameters, in their units
``dissimilarity``              lat, lon                  distance to the nearest tower in feature
                                                         space over the towers' mean distance
``area_of_applicability``      lat, lon                  1 where the dissimilarity is within the
                                                         towers' own (0 outside)
``land_mask``                  lat, lon                  1 on land (``land_binary_mask``)
``elevation``                  lat, lon                  ``surface_altitude`` [m]
``distance_to_coast``          lat, lon                  [km]
``koeppen``, ``pft``           lat, lon                  flags (``flag_values``, ``flag_meanings``)
``cell_area``                  lat, lon                  ``cell_area`` [m2] (``cell_measures``)
=============================  ========================  ========================================

The ``source`` coordinate holds ``truth`` (the generator's true parameters and the GPP they
give, noise-free) and the mapped methods (not ``method``, which is a keyword of xarray's
``sel``: ``ds.sel(source="SPIE")``). Chunks: ``chunk`` x ``chunk`` cells in latitude and
longitude (the unit of work: each is written by one unit, so no two writers share a chunk),
``time_chunk`` days, one source. The store is written in Zarr format 2, the format that the
cloud copies of CMIP6 and the Pangeo catalogues use and every Zarr reader supports; Zarr
format 3 has no specified string type yet (for the ``source`` labels) nor consolidated
metadata.

The store carries no time stamp (its ``history`` is the step's record, ``maps.json``), so
the same settings and inputs give the same values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lue_spie.data import schema
from lue_spie.maps.geography import EARTH_RADIUS_KM, Continent
from lue_spie.params import PARAMETER_TABLE

__all__ = ["GPP_STANDARD_NAME", "GPP_UNITS", "ZARR_FORMAT", "PARAMETER_UNITS", "template",
           "create_store", "tile_region", "write_tile", "open_maps", "store_key"]

GPP_STANDARD_NAME = "gross_primary_productivity_of_biomass_expressed_as_carbon"
#: FLUXNET's daily GPP unit, gC m-2 d-1, in a form UDUNITS parses (the carbon is named by
#: the standard name).
GPP_UNITS = "g m-2 d-1"
ZARR_FORMAT = 2
_FILL_FLAG = np.int8(-1)

#: The parameters' units in UDUNITS form (dimensionless as ``1``, gC as g).
PARAMETER_UNITS: dict[str, str] = {
    p.name: {"-": "1", "gC MJ-1": "g MJ-1"}.get(p.unit, p.unit) for p in PARAMETER_TABLE}


def _coords(continent: Continent, dates: pd.DatetimeIndex,
            methods: Sequence[str]) -> dict[str, Any]:
    g = continent.grid
    h = g.resolution / 2
    return {
        "lat": ("lat", g.lat, {"standard_name": "latitude", "long_name": "latitude",
                               "units": "degrees_north", "axis": "Y", "bounds": "lat_bounds"}),
        "lon": ("lon", g.lon, {"standard_name": "longitude", "long_name": "longitude",
                               "units": "degrees_east", "axis": "X", "bounds": "lon_bounds"}),
        "time": ("time", dates, {"standard_name": "time", "long_name": "time", "axis": "T"}),
        "source": ("source", np.asarray(list(methods), dtype=str),
                   {"long_name": "source of the parameters: the truth of the virtual world or "
                                 "a parameter-extrapolation method"}),
        "lat_bounds": (("lat", "nv"), np.stack([g.lat - h, g.lat + h], axis=1),
                       {"units": "degrees_north"}),
        "lon_bounds": (("lon", "nv"), np.stack([g.lon - h, g.lon + h], axis=1),
                       {"units": "degrees_east"}),
    }


def _flags(values: np.ndarray, names: Sequence[str]) -> np.ndarray:
    out = np.full(values.shape, _FILL_FLAG, dtype=np.int8)
    for i, name in enumerate(names):
        out[values == name] = i
    return out


def template(continent: Continent, dates: pd.DatetimeIndex, methods: Sequence[str], *,
             chunk: int, time_chunk: int, attrs: Mapping[str, Any]) -> Any:
    """The store's dataset: static maps in memory, the mapped variables as lazy NaN arrays
    (written as metadata only by :func:`create_store`).

    Args:
        continent: The continent.
        dates: The days of the record.
        methods: ``truth`` and the mapped methods, in the store's order (the ``source``
            coordinate).
        chunk: Cells per chunk side.
        time_chunk: Days per chunk along time.
        attrs: Global attributes.
    """
    import dask.array as da
    import xarray as xr

    g = continent.grid
    n_lat, n_lon = g.shape
    n_m, n_t = len(methods), len(dates)
    land = continent.land
    area = np.repeat(g.cell_area_km2()[:, None] * 1e6, n_lon, axis=1)
    common = {"grid_mapping": "crs", "cell_measures": "area: cell_area"}

    def lazy(shape: tuple[int, ...], chunks: tuple[int, ...]) -> Any:
        return da.full(shape, np.nan, dtype=np.float32, chunks=chunks)

    data_vars: dict[str, Any] = {
        "crs": ((), np.int32(0), {"grid_mapping_name": "latitude_longitude",
                                  "semi_major_axis": EARTH_RADIUS_KM * 1000.0,
                                  "inverse_flattening": 0.0,
                                  "long_name": "a sphere of the mean Earth radius"}),
        "land_mask": (("lat", "lon"), land.astype(np.int8),
                      {"standard_name": "land_binary_mask", "long_name": "land", "units": "1",
                       "flag_values": np.array([0, 1], dtype=np.int8),
                       "flag_meanings": "sea land", **common}),
        "elevation": (("lat", "lon"), np.where(land, continent.maps["elevation"],
                                               np.nan).astype(np.float32),
                      {"standard_name": "surface_altitude", "long_name": "elevation",
                       "units": "m", **common}),
        "distance_to_coast": (("lat", "lon"), np.where(land, continent.maps["dist_coast"],
                                                       np.nan).astype(np.float32),
                              {"long_name": "great-circle distance to the nearest sea cell",
                               "units": "km", **common}),
        "koeppen": (("lat", "lon"), _flags(continent.maps["koeppen"], schema.KOEPPEN_TYPES),
                    {"long_name": "Koeppen-Geiger climate type", "_FillValue": _FILL_FLAG,
                     "flag_values": np.arange(len(schema.KOEPPEN_TYPES), dtype=np.int8),
                     "flag_meanings": " ".join(schema.KOEPPEN_TYPES), **common}),
        "pft": (("lat", "lon"), _flags(continent.maps["pft"], schema.PFTS),
                {"long_name": "plant functional type (IGBP)", "_FillValue": _FILL_FLAG,
                 "flag_values": np.arange(len(schema.PFTS), dtype=np.int8),
                 "flag_meanings": " ".join(schema.PFTS), **common}),
        "cell_area": (("lat", "lon"), area.astype(np.float64),
                      {"standard_name": "cell_area", "long_name": "area of the grid cell",
                       "units": "m2"}),
        "gpp": (("source", "time", "lat", "lon"),
                lazy((n_m, n_t, n_lat, n_lon), (1, time_chunk, chunk, chunk)),
                {"standard_name": GPP_STANDARD_NAME, "units": GPP_UNITS,
                 "long_name": "gross primary productivity (daily; gC m-2 d-1, as FLUXNET's "
                              "daily GPP)", **common}),
        "gpp_mean": (("source", "lat", "lon"), lazy((n_m, n_lat, n_lon), (1, chunk, chunk)),
                     {"units": GPP_UNITS, "cell_methods": "time: mean",
                      "long_name": "gross primary productivity averaged over the record "
                                   "(gC m-2 d-1)", **common}),
        "dissimilarity": (("lat", "lon"), lazy((n_lat, n_lon), (chunk, chunk)),
                          {"units": "1", "long_name": "dissimilarity index: distance to the "
                                                      "nearest tower in feature space over "
                                                      "the mean distance between towers",
                           **common}),
        "area_of_applicability": (("lat", "lon"), lazy((n_lat, n_lon), (chunk, chunk)),
                                  {"units": "1", "long_name": "1 where the dissimilarity is "
                                                              "within the towers' own, 0 "
                                                              "outside", **common}),
    }
    for p in PARAMETER_TABLE:
        data_vars[p.name] = (("source", "lat", "lon"), lazy((n_m, n_lat, n_lon),
                                                            (1, chunk, chunk)),
                             {"units": PARAMETER_UNITS[p.name],
                              "long_name": f"{p.meaning} ({p.name})", **common})
    ds = xr.Dataset(data_vars, coords=_coords(continent, dates, methods), attrs=dict(attrs))
    ds["time"].encoding.update({"units": f"days since {dates[0]:%Y-%m-%d}",
                                "calendar": "standard", "dtype": "int32"})
    return ds


def store_key(path: str | Path) -> str | None:
    """The key the store was made with (None when there is no readable store)."""
    import json

    meta = Path(path) / ".zattrs"
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text()).get("lue_spie_key")
    except (OSError, ValueError):
        return None


def create_store(path: str | Path, ds: Any) -> Path:
    """Write the store's metadata, coordinates and static maps (the mapped variables stay
    empty: NaN until their chunks are written); an existing store is replaced."""
    import shutil

    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_zarr(path, mode="w", compute=False, consolidated=True, zarr_format=ZARR_FORMAT)
    return path


def tile_region(shape: tuple[int, int], chunk: int, tile: tuple[int, int]
                ) -> tuple[slice, slice]:
    """The latitude and longitude slices of chunk ``tile`` (in chunks of the grid)."""
    r, c = tile
    return (slice(r * chunk, min((r + 1) * chunk, shape[0])),
            slice(c * chunk, min((c + 1) * chunk, shape[1])))


def write_tile(path: str | Path, region: tuple[slice, slice], arrays: Mapping[str, np.ndarray],
               methods: Sequence[str]) -> None:
    """Write one chunk's mapped variables (:func:`template`'s lazy ones) into the store.

    Args:
        path: The store.
        region: The chunk's latitude and longitude slices.
        arrays: Variable name -> values of the chunk (dimensions as in the store, NaN at sea).
        methods: The store's methods, to check the first axis.
    """
    import xarray as xr

    dims = {"gpp": ("source", "time", "lat", "lon"), "dissimilarity": ("lat", "lon"),
            "area_of_applicability": ("lat", "lon")}
    variables = {}
    for name, values in arrays.items():
        d = dims.get(name, ("source", "lat", "lon"))
        if d[0] == "source" and values.shape[0] != len(methods):
            raise ValueError(f"maps: {name} of a chunk has {values.shape[0]} sources, the "
                             f"store {len(methods)}")
        variables[name] = (d, np.asarray(values, dtype=np.float32))
    xr.Dataset(variables).to_zarr(Path(path), region={"lat": region[0], "lon": region[1]},
                                  mode="r+", consolidated=False, zarr_format=ZARR_FORMAT)


def open_maps(path: str | Path) -> Any:
    """The store as a lazy ``xarray.Dataset`` (dask arrays by the store's chunks).

    Raises:
        FileNotFoundError: naming the command that writes it.
    """
    import xarray as xr

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no maps store; run `lue-spie maps --results "
                                "RESULTS` (or the chapter Beyond the towers) first")
    return xr.open_zarr(path, consolidated=True, zarr_format=ZARR_FORMAT)

"""The virtual continent's geography: grid, land, relief, climate zones and vegetation.

A regular latitude-longitude grid (:class:`Grid`) over a box holds one continent, made from
smooth random fields (:class:`RandomFields`) and a few rules of physical geography; the
rules are ours, simple on purpose, and written down here:

- **Land** (:func:`make_continent`): a rounded continent, narrow in the tropics and wide in
  the middle latitudes (like the Americas or Eurasia drawn into one), whose coast is bent by a
  smooth random field, so it has bays, peninsulas and a few islands.
- **Relief**: lowlands that rise towards the interior, a mountain range along the west coast
  (some 300 km inland) and a high plateau in the subtropical interior.
- **Moisture** (a humidity index, about the log of precipitation over evaporation): wet
  tropics, a dry subtropical belt, moist westerlies in the middle latitudes that reach in
  from the west coast and dry out behind the mountains (a rain shadow), a humid east coast
  in the subtropics (monsoon), drier continental interiors, and a random field.
- **Warmth** (an equivalent latitude): the latitude plus the cooling of altitude (about 1
  degree per 110 m, as 4-6 K per km against 0.45-0.7 K per degree), milder towards the west
  coast (maritime), colder in the interior (continental), and a random field.
- **Koeppen-Geiger types** (:func:`koeppen_types`) from warmth and moisture, by rules in the
  spirit of the classification (Rubel et al. 2017), for the 14 types of the FLUXNET sites;
  **PFTs** (:func:`pft_map`) drawn for each type with the weights the virtual FLUXNET uses for
  its towers, in patches (smooth random fields), forests favoured where it is moist, grasses
  and shrubs where it is dry, wetlands in flat lowlands; **crops** are C4 and irrigated by the
  generator's rule.

Every field is evaluated at a cell's centre from its position alone (random Fourier
features of a Gaussian covariance: :class:`RandomFields`), so the same seed draws the same
continent on a coarse or a fine grid, and the fields a chunk of cells needs are computed for
that chunk alone. Only a few maps of the whole grid are kept (land, relief, distances to the
coasts, types): bytes per cell, not days.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from scipy.special import ndtr

from lue_spie.data import schema
from lue_spie.maps import world

__all__ = [
    "EARTH_RADIUS_KM",
    "FIELD_LENGTHS_KM",
    "Grid",
    "RandomFields",
    "Continent",
    "make_continent",
    "koeppen_types",
    "pft_map",
]

EARTH_RADIUS_KM = 6371.0
#: Correlation length [km] of each random field (a Gaussian covariance): coastline, relief,
#: moisture and warmth anomalies, vegetation patches, crop regimes, and the generator's
#: per-site draws (climate jitters, soil, deposition, unexplained site terms, and the fAPAR
#: product's offset and gain, which vary with the land cover and the retrieval's conditions,
#: at the scale of the vegetation patches' neighbourhoods).
FIELD_LENGTHS_KM: dict[str, float] = {
    "coast": 350.0, "relief": 500.0, "ridge": 800.0, "humid": 600.0, "warm": 700.0,
    "pft": 150.0, "crops": 100.0, "climate": 600.0, "soil": 200.0, "deposition": 800.0,
    "site_terms": 150.0, "fapar_product": 200.0,
}
#: Number of random Fourier modes per field.
_MODES = 256
_FIELD_SEED = 20_231_003  # a tag of the continent's fields among the seed's streams


@dataclasses.dataclass(frozen=True)
class Grid:
    """A regular latitude-longitude grid of cell centres.

    Attributes:
        lat_min, lat_max, lon_min, lon_max: The box [degrees north, degrees east].
        resolution: The cells' size [degrees].
    """

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float
    resolution: float

    def __post_init__(self) -> None:
        if not (-90.0 <= self.lat_min < self.lat_max <= 90.0):
            raise ValueError(f"maps: the box's latitudes must satisfy -90 <= lat_min < lat_max "
                             f"<= 90, got {self.lat_min}, {self.lat_max}")
        if not (-180.0 <= self.lon_min < self.lon_max <= 360.0):
            raise ValueError(f"maps: the box's longitudes must satisfy lon_min < lon_max, got "
                             f"{self.lon_min}, {self.lon_max}")
        if not self.resolution > 0:
            raise ValueError(f"maps: resolution must be > 0 degrees, got {self.resolution}")
        for name, span in (("latitude", self.lat_max - self.lat_min),
                           ("longitude", self.lon_max - self.lon_min)):
            n = span / self.resolution
            if abs(n - round(n)) > 1e-6 or round(n) < 4:
                raise ValueError(f"maps: the box's {name} span ({span:g} degrees) must be a "
                                 f"multiple of the resolution ({self.resolution:g}) of at "
                                 "least 4 cells")

    @property
    def lat(self) -> np.ndarray:
        """Latitudes of the cell centres (south to north)."""
        n = round((self.lat_max - self.lat_min) / self.resolution)
        return self.lat_min + self.resolution * (np.arange(n) + 0.5)

    @property
    def lon(self) -> np.ndarray:
        """Longitudes of the cell centres (west to east)."""
        n = round((self.lon_max - self.lon_min) / self.resolution)
        return self.lon_min + self.resolution * (np.arange(n) + 0.5)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_lat, n_lon)``."""
        return len(self.lat), len(self.lon)

    def cell_area_km2(self) -> np.ndarray:
        """Area of the cells of each row [km2] (a sphere)."""
        lat = np.radians(self.lat)
        h = math.radians(self.resolution) / 2
        return (EARTH_RADIUS_KM ** 2 * math.radians(self.resolution)
                * (np.sin(lat + h) - np.sin(lat - h)))


class RandomFields:
    """Smooth Gaussian random fields with unit variance, evaluated anywhere.

    Each field is a sum of ``_MODES`` cosine waves with random directions, wavenumbers
    drawn from the spectrum of a Gaussian covariance of correlation length ``L``, and random
    phases (random Fourier features): ``f(x) = sqrt(2/M) sum cos(k_m . x + phi_m)``. Positions
    are in km on a sinusoidal (equal-area) projection about the box's central meridian.

    Args:
        seed: The continent's seed.
        lon0: Central meridian of the projection [degrees].
    """

    def __init__(self, seed: int, lon0: float) -> None:
        self.seed = int(seed)
        self.lon0 = float(lon0)

    def _modes(self, name: str, index: int, length_km: float) -> tuple[np.ndarray, np.ndarray]:
        tag = [ord(c) for c in name]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _FIELD_SEED, index,
                                                            *tag]))
        k = rng.standard_normal((_MODES, 2)) / length_km
        phase = rng.uniform(0.0, 2.0 * math.pi, _MODES)
        return k, phase

    def xy(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Projected positions ``(n, 2)`` [km] of points."""
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        y = np.radians(lat) * EARTH_RADIUS_KM
        x = np.radians(lon - self.lon0) * EARTH_RADIUS_KM * np.cos(np.radians(lat))
        return np.stack([x, y], axis=-1)

    def field(self, name: str, lat: np.ndarray, lon: np.ndarray, *, index: int = 0,
              length_km: float | None = None, block: int = 8192) -> np.ndarray:
        """Field ``name`` (number ``index`` of its family) at the points, shape of ``lat``.

        Args:
            name: The field's family (a key of :data:`FIELD_LENGTHS_KM`).
            lat, lon: The points (same shape).
            index: Which field of the family.
            length_km: Correlation length (default: the family's).
            block: Points per block (bounds the memory of the evaluation).
        """
        L = FIELD_LENGTHS_KM[name] if length_km is None else float(length_km)
        k, phase = self._modes(name, index, L)
        pos = self.xy(np.ravel(lat), np.ravel(lon))
        out = np.empty(len(pos))
        for i in range(0, len(pos), block):
            out[i:i + block] = np.cos(pos[i:i + block] @ k.T + phase).sum(axis=1)
        return (out * math.sqrt(2.0 / _MODES)).reshape(np.shape(lat))

    def fields(self, name: str, count: int, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """``count`` independent fields of a family at the points: ``(n, count)``."""
        return np.stack([self.field(name, lat, lon, index=i) for i in range(count)], axis=-1)


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _row_distances(land: np.ndarray, dx_km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance [km] along each row to the nearest sea cell to the west and to the east (the
    box's edges count as sea)."""
    n_lat, n_lon = land.shape
    col = np.arange(n_lon)[None, :].repeat(n_lat, axis=0)
    west = np.maximum.accumulate(np.where(land, -1, col), axis=1)
    east = np.minimum.accumulate(np.where(land, n_lon, col)[:, ::-1], axis=1)[:, ::-1]
    return (col - west) * dx_km[:, None], (east - col) * dx_km[:, None]


def _barrier(land: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """Highest ground [m] between the west coast and each cell (the cell itself excluded)."""
    out = np.zeros(land.shape)
    running = np.zeros(land.shape[0])
    for j in range(land.shape[1]):
        out[:, j] = np.where(land[:, j], running, 0.0)
        running = np.where(land[:, j], np.maximum(running, elevation[:, j]), 0.0)
    return out


def _coast_distance(grid: Grid, land: np.ndarray) -> np.ndarray:
    """Great-circle distance [km] of each land cell to the nearest sea cell (0 at sea)."""
    lat2, lon2 = np.meshgrid(grid.lat, grid.lon, indexing="ij")

    def xyz(la: np.ndarray, lo: np.ndarray) -> np.ndarray:
        la, lo = np.radians(la), np.radians(lo)
        return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)

    sea = ~land
    out = np.zeros(land.shape)
    if not sea.any() or not land.any():
        return out
    tree = cKDTree(xyz(lat2[sea], lon2[sea]))
    chord, _ = tree.query(xyz(lat2[land], lon2[land]))
    out[land] = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
    return out


def koeppen_types(warm_lat: np.ndarray, humid: np.ndarray, elevation: np.ndarray,
                  dist_west: np.ndarray, dist_east: np.ndarray,
                  dist_coast: np.ndarray) -> np.ndarray:
    """Koeppen-Geiger type of each cell from its warmth (equivalent latitude), moisture
    (humidity index) and position (see the module docstring); arrays of one shape.

    Rules, first match wins: ET above 2800 m or at an equivalent latitude of 67 degrees and
    more; the dry types B where the humidity index is below -0.45 (BW below -1.1), hot (h)
    equatorward of 33 degrees and cold (k) poleward, up to 50 degrees; Af below 9 degrees
    where it is wet, Aw below 19; from 19 to 31 degrees Cwa near the east coast (monsoon) and
    Cfa elsewhere; from 31 to 45 degrees Cs within 900 km of the west coast (Csa below 39,
    Csb above), otherwise Cfa below 38 degrees; from 38 to 55 degrees Cfb near the west coast
    or the sea, Dfb inland; Dfc up to 67 degrees.
    """
    L = warm_lat
    out = np.full(L.shape, "Dfc", dtype=object)
    hot = L < 33.0
    rules = [
        (L < 67.0, "Dfc"),
        ((L < 55.0) & ((dist_west < 900.0) | (dist_coast < 250.0)), "Cfb"),
        ((L < 55.0) & ~((dist_west < 900.0) | (dist_coast < 250.0)), "Dfb"),
        (L < 38.0, "Cfa"),
        ((L >= 31.0) & (L < 45.0) & (dist_west < 900.0) & (L >= 39.0), "Csb"),
        ((L >= 31.0) & (L < 45.0) & (dist_west < 900.0) & (L < 39.0), "Csa"),
        ((L < 31.0) & (dist_east >= 700.0), "Cfa"),
        ((L < 31.0) & (dist_east < 700.0), "Cwa"),
        (L < 19.0, "Aw"),
        ((L < 9.0) & (humid > 0.6), "Af"),
        ((humid < -0.45) & (L < 50.0) & ~hot, "BSk"),
        ((humid < -0.45) & (L < 50.0) & hot, "BSh"),
        ((humid < -1.1) & (L < 50.0) & ~hot, "BWk"),
        ((humid < -1.1) & (L < 50.0) & hot, "BWh"),
        ((elevation > 2800.0) | (L >= 67.0), "ET"),
    ]
    for where, code in rules:  # later rules take precedence
        out[where] = code
    return out


#: Forests (favoured where it is moist) and open shrubs and grasses (where it is dry).
_FORESTS = ("ENF", "EBF", "DBF", "MF")
_DRY = ("OSH", "CSH", "GRA", "SAV", "WSA")


def pft_map(koeppen: np.ndarray, humid_anomaly: np.ndarray, elevation: np.ndarray,
            patches: np.ndarray) -> np.ndarray:
    """The PFT of each cell: for its Koeppen type the generator's weights
    ``P(PFT | type)`` (:data:`lue_spie.data.virtual.sites.PFT_SHARES` times
    :data:`~lue_spie.data.virtual.sites.KOEPPEN_BY_PFT`), tilted towards forests where the
    cell is moister than its type's norm and towards shrubs and grasses where it is drier,
    wetlands favoured below 300 m; the PFT with the largest log weight plus its patch field
    (``patches``, ``(cells, 11)`` smooth fields, one per PFT in the order of
    :data:`lue_spie.data.schema.PFTS`) wins. Evergreen needleleaf forest of type ET only in
    mountains (above 1200 m, subalpine), not in the arctic tundra.
    """
    pfts = list(schema.PFTS)
    total = {p: sum(world.KOEPPEN_BY_PFT[p].values()) for p in pfts}
    score = np.full((len(koeppen), len(pfts)), -np.inf)
    for j, p in enumerate(pfts):
        w = np.array([world.PFT_SHARES[p] * world.KOEPPEN_BY_PFT[p].get(k, 0.0) / total[p]
                      for k in koeppen])
        with np.errstate(divide="ignore"):
            s = np.log(w)
        if p in _FORESTS:
            s = s + 0.8 * humid_anomaly
        elif p in _DRY:
            s = s - 0.8 * humid_anomaly
        elif p == "WET":
            s = s + np.where(elevation < 300.0, 0.8, -1.5)
        if p == "ENF":
            s = np.where((koeppen == "ET") & (elevation < 1200.0), -np.inf, s)
        score[:, j] = s + 1.2 * patches[:, j]
    return np.asarray(pfts, dtype=object)[np.argmax(score, axis=1)]


@dataclasses.dataclass
class Continent:
    """A virtual continent on a grid (:func:`make_continent`).

    Attributes:
        grid: The grid.
        seed: The seed of every random field.
        land: ``(n_lat, n_lon)`` True on land.
        maps: 2-D maps of the grid: ``elevation`` [m], ``dist_coast`` [km], ``koeppen``,
            ``pft`` (strings, "" at sea), ``humid`` (humidity index) and ``warm_lat``
            (equivalent latitude [degrees]).
        cells: One row per land cell, in row-major order: ``site`` (``C<row>-<col>``),
            ``row``, ``col``, ``lat``, ``lon``, ``elevation``, ``dist_coast``, ``PFT``,
            ``koeppen``, ``koeppen_main``, ``highland``, ``subalpine``, ``c4``,
            ``irrigated`` (the columns the generator's stages read).
    """

    grid: Grid
    seed: int
    land: np.ndarray
    maps: dict[str, np.ndarray]
    cells: pd.DataFrame

    @property
    def fields_source(self) -> RandomFields:
        """The continent's random fields."""
        return RandomFields(self.seed, 0.5 * (self.grid.lon_min + self.grid.lon_max))

    def stage_fields(self, cells: pd.DataFrame) -> dict[str, np.ndarray]:
        """The coherent fields of the generator's per-site draws
        (:data:`lue_spie.maps.world.FIELD_DRAWS`) at some cells: stage -> ``(cells, k)``."""
        rf = self.fields_source
        lat, lon = cells["lat"].to_numpy(), cells["lon"].to_numpy()
        return {stage: rf.fields(stage, k, lat, lon) for stage, k in world.FIELD_DRAWS.items()}

    def describe(self) -> dict[str, Any]:
        """Counts of the continent, JSON-friendly: cells, land cells, types and PFTs."""
        c = self.cells
        return {"grid_cells": int(self.land.size), "land_cells": int(len(c)),
                "land_area_km2": float(np.sum(self.grid.cell_area_km2()[c["row"].to_numpy()])),
                "koeppen": {str(k): int(v) for k, v in c["koeppen"].value_counts().items()},
                "pft": {str(k): int(v) for k, v in c["PFT"].value_counts().items()}}


def make_continent(grid: Grid, seed: int) -> Continent:
    """Draw the continent on ``grid`` (see the module docstring for the rules).

    Raises:
        ValueError: when the box holds no land (a box away from the continent).
    """
    lat, lon = grid.lat, grid.lon
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    rf = RandomFields(seed, 0.5 * (grid.lon_min + grid.lon_max))
    u = (lon2 - grid.lon_min) / (grid.lon_max - grid.lon_min)
    v = (lat2 - grid.lat_min) / (grid.lat_max - grid.lat_min)

    # Land: a rounded shape, narrow in the south, bent by the coast field.
    half_width = 0.17 + 0.25 * _smoothstep(0.1, 0.45, v) - 0.12 * _smoothstep(0.7, 1.0, v)
    centre = 0.52 + 0.05 * np.sin(2.0 * math.pi * v)
    shape = 1.0 - np.abs((u - centre) / half_width) ** 2.5 - np.abs((v - 0.5) / 0.47) ** 4
    land = shape + 0.22 * rf.field("coast", lat2, lon2) > 0.0
    if not land.any():
        raise ValueError("maps: the box holds no land of the continent; enlarge it")

    dx = np.radians(grid.resolution) * EARTH_RADIUS_KM * np.cos(np.radians(lat))
    dist_west, dist_east = _row_distances(land, dx)
    dist_coast = _coast_distance(grid, land)

    # Relief: lowlands rising inland, a range along the west coast, a subtropical plateau.
    base = 120.0 + 500.0 * np.clip(dist_coast / 1500.0, 0.0, 1.0) \
        + 250.0 * rf.field("relief", lat2, lon2)
    ridge = 2800.0 * (0.8 + 0.15 * rf.field("ridge", lat2, lon2)) \
        * np.exp(-0.5 * ((dist_west - 320.0) / 150.0) ** 2) * _smoothstep(0.08, 0.2, v) \
        * (1.0 - _smoothstep(0.85, 0.95, v))
    plateau = 3800.0 * np.exp(-0.5 * (((u - 0.62) / 0.07) ** 2 + ((v - 0.42) / 0.06) ** 2))
    elevation = np.where(land, np.clip(base + ridge + plateau, 2.0, None), 0.0)
    barrier = _barrier(land, elevation)

    # Moisture: zonal belts, westerlies and their rain shadow, east-coast monsoon, interior.
    zonal = np.interp(lat2, [0, 8, 14, 20, 27, 35, 45, 55, 65, 75],
                      [1.6, 1.0, 0.2, -0.7, -1.3, -0.6, 0.3, 0.5, 0.4, 0.3])
    westerlies = _smoothstep(32.0, 42.0, lat2) * (1.0 - _smoothstep(62.0, 70.0, lat2))
    monsoon = _smoothstep(12.0, 18.0, lat2) * (1.0 - _smoothstep(34.0, 42.0, lat2))
    humid_noise = rf.field("humid", lat2, lon2)
    humid = (zonal + 0.9 * westerlies * np.exp(-dist_west / 600.0)
             - 0.9 * westerlies * np.clip(barrier / 2500.0, 0.0, 1.0)
             + 1.1 * monsoon * np.exp(-dist_east / 700.0)
             - 0.5 * np.clip((dist_coast - 300.0) / 1200.0, 0.0, 1.0)
             + 0.3 * np.clip(elevation / 2000.0, 0.0, 1.0) + 0.35 * humid_noise)

    # Warmth: latitude, altitude, maritime west coast, continental interior.
    warm_lat = (lat2 + elevation / 110.0 - 6.0 * np.exp(-dist_west / 500.0)
                + 3.0 * np.clip(dist_coast / 1500.0, 0.0, 1.0)
                + 1.5 * rf.field("warm", lat2, lon2))

    koeppen = np.where(land, koeppen_types(warm_lat, humid, elevation, dist_west, dist_east,
                                           dist_coast), "")
    rows, cols = np.nonzero(land)
    c_lat, c_lon = lat[rows], lon[cols]
    kg = koeppen[rows, cols].astype(str)
    patches = rf.fields("pft", len(schema.PFTS), c_lat, c_lon)
    pft = pft_map(kg, 0.35 * humid_noise[rows, cols], elevation[rows, cols], patches)
    crops = ndtr(rf.fields("crops", 2, c_lat, c_lon))
    c4, irrigated = world.crop_regimes(pft, kg, crops)
    elev = elevation[rows, cols]
    subalpine = (kg == "ET") & (pft == "ENF")
    highland = (kg == "ET") & ~subalpine & (elev >= 2800.0)
    width = max(3, len(str(max(grid.shape))))
    cells = pd.DataFrame({
        "site": [f"C{r:0{width}d}-{c:0{width}d}" for r, c in zip(rows, cols, strict=True)],
        "row": rows.astype(np.int64), "col": cols.astype(np.int64),
        "lat": c_lat, "lon": c_lon, "elevation": np.round(elev, 1),
        "dist_coast": dist_coast[rows, cols], "PFT": pft.astype(str), "koeppen": kg,
        "koeppen_main": [k[0] for k in kg], "highland": highland, "subalpine": subalpine,
        "c4": c4, "irrigated": irrigated,
    })
    pft2 = np.full(land.shape, "", dtype=object)
    pft2[rows, cols] = pft
    maps = {"elevation": elevation, "dist_coast": dist_coast, "koeppen": koeppen,
            "pft": pft2, "humid": np.where(land, humid, np.nan),
            "warm_lat": np.where(land, warm_lat, np.nan)}
    return Continent(grid=grid, seed=int(seed), land=land, maps=maps, cells=cells)


def describe_types(continent: Continent) -> Mapping[str, int]:
    """Land cells per Koeppen type (every type of the FLUXNET sites, zero where absent)."""
    counts = continent.cells["koeppen"].value_counts()
    return {k: int(counts.get(k, 0)) for k in schema.KOEPPEN_TYPES}

"""The virtual FLUXNET's world, as the continent uses it: the one door into the generator.

The continent's cells get their climate, weather, soil, vegetation, features and true
parameters from the very functions that make the towers of the virtual FLUXNET
(:mod:`lue_spie.data.virtual`), so that the networks trained on the towers and the maps of
the continent share one world. This module is the only one of :mod:`lue_spie.maps` that calls
the generator, including its private stage functions; the generator itself is not changed.

What differs from the towers is where the randomness comes from:

- **Spatially coherent draws** (:class:`FieldDraws`). The generator jitters each site's
  climate, draws its soil, its N/P deposition and the unexplained site terms of the truth
  from independent normal numbers. A cell of the continent gets smooth random fields instead
  (:mod:`lue_spie.maps.geography`), so that neighbouring cells resemble each other. A
  :class:`FieldDraws` stands in for the random generator in those four stage functions and
  hands out the cells' field values in the order the function asks for them; it refuses any
  other request, and :meth:`FieldDraws.finish` checks that everything was used, so a change
  of the generator's draws fails loudly here instead of silently changing the maps.
- **One random stream per cell** (:class:`RowStreams`, :func:`cell_streams`). The daily
  weather, phenology and NDVI noise of a cell come from generators seeded by ``(seed, row,
  column, stream)``: a cell is the same whatever chunk it is computed in and however many
  workers compute the chunks. The weather is generated cell by cell (its heat and drought
  episodes draw per site in a loop); the vegetation stages run on a whole chunk at once with
  :class:`RowStreams`, which draws every row from its own cell's stream.

**Worlds** (:mod:`lue_spie.data.virtual.worlds`). The cells are drawn in the towers' world:
:func:`check_world` finds it in the towers' ``truth.json`` (its dials, ``difficulty``) and
refuses another. Of a world's dials, those of the parameters reach the cells as they reach
the towers (``feature_spread`` and ``within_pft`` through
:func:`~lue_spie.data.virtual.truth.truth_parameters`, ``site_spread`` through the site terms),
and so does the fAPAR product: a cell's methods are given a product that differs from the
canopy's true fAPAR by an offset and a gain drawn, like the other per-site draws, from
smooth fields (:data:`FIELD_DRAWS` ``fapar_product``), and the cell's site features are
computed from that product as the towers' are, while its true GPP is made from the true
fAPAR (:attr:`CellRecord.true_fapar`). The dials of the flux observations (scale,
partitioning, record length, gaps) act on GPP_obs only, which a cell does not have: a map's
truth is the true GPP.

Crops: a cell of PFT CRO grows a C4 crop, and is irrigated, by the generator's crop rule
(:data:`lue_spie.data.virtual.sites.CROPS`), applied by :func:`crop_regimes` to the cells'
uniform fields (the generator applies it while it draws sites, so it cannot be called here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lue_spie.data.bucket import pet
from lue_spie.data.features import site_features_from_site_day
from lue_spie.data.virtual.drawn_features import _deposition, _soil
from lue_spie.data.virtual.generator import GENERATOR_ID, GENERATOR_VERSION
from lue_spie.data.virtual.observe import _fapar_product, _structural_factor
from lue_spie.data.virtual.sites import CLIMATES, CROPS, KOEPPEN_BY_PFT, PFT_SHARES
from lue_spie.data.virtual.soil_water import _soil_water, _water_holding_capacity
from lue_spie.data.virtual.truth import _site_terms, truth_parameters
from lue_spie.data.virtual.vegetation import _ndvi, _phenology
from lue_spie.data.virtual.weather import _forcing
from lue_spie.data.virtual.worlds import World, get_world, world_from_dict, world_names

__all__ = [
    "DEFAULT_WORLD",
    "WORLDS",
    "GENERATOR_ID",
    "GENERATOR_VERSION",
    "CLIMATES",
    "KOEPPEN_BY_PFT",
    "PFT_SHARES",
    "CROPS",
    "FIELD_DRAWS",
    "DAILY_STREAMS",
    "FieldDraws",
    "RowStreams",
    "cell_streams",
    "check_world",
    "dataset_world",
    "crop_regimes",
    "CellRecord",
    "generate_cells",
]

#: The world of a dataset whose ``truth.json`` names none (made before worlds existed).
DEFAULT_WORLD = "smooth"
#: The named worlds the cells can be drawn in (every registered world of the generator).
WORLDS: tuple[str, ...] = tuple(world_names())

#: The per-cell draws of each stage function that the continent makes spatially coherent:
#: stage -> number of standard normal fields it takes (in the order it draws them).
FIELD_DRAWS: dict[str, int] = {
    "climate": 9,     # lue_spie.data.virtual.sites._site_climate: the climate jitters
    "soil": 16,       # lue_spie.data.virtual.drawn_features._soil
    "deposition": 3,  # _deposition: NHx and NOy (correlated), then P
    "site_terms": 13,  # lue_spie.data.virtual.truth._site_terms: one per parameter
    "fapar_product": 2,  # lue_spie.data.virtual.observe._fapar_product: offset, log gain
}

#: The generator's random streams that each cell draws from on its own (daily series and
#: per-site jitters of the weather, the soil-water bucket and the vegetation).
DAILY_STREAMS: tuple[str, ...] = ("weather", "precip", "cloud", "humidity", "co2", "slow",
                                  "episodes", "yearly", "soil", "phenology", "ndvi")

#: The site-day columns the generator writes and the features are computed from.
_SITE_DAY_KEYS = ("T", "VPD", "CO2", "W", "PAR", "FAPAR", "CI", "SW_IN", "SW_IN_POT", "P",
                  "PA", "PPFD", "NDVI", "TMIN", "TMAX")


def check_world(world: str, truth_meta: Mapping[str, Any] | None) -> World:
    """The world to make cells in: the towers' world, checked against the one asked for.

    Args:
        world: A world's name, or ``""`` for the world of the towers' dataset.
        truth_meta: The towers' ``truth.json`` (None: not a virtual FLUXNET).

    Returns:
        The towers' world with its dials as their ``truth.json`` records them.

    Raises:
        ValueError: for a dataset that is not a virtual FLUXNET, one made by another version
            of the generator, or a world other than the towers' (one line each).
    """
    if truth_meta is None:
        raise ValueError("maps: the towers' dataset has no truth.json; the continent needs a "
                         "virtual FLUXNET (its generator and world) to be drawn from the same "
                         "world")
    if truth_meta.get("generator") != GENERATOR_ID:
        raise ValueError(f"maps: the towers' truth.json names the generator "
                         f"{truth_meta.get('generator')!r}, expected {GENERATOR_ID!r}")
    version = truth_meta.get("generator_version")
    if version != GENERATOR_VERSION:
        raise ValueError(f"maps: the towers' dataset was made by generator version {version!r}, "
                         f"this one is {GENERATOR_VERSION!r}; regenerate the dataset")
    made_in = dataset_world(truth_meta)
    if world and world != made_in.name:
        raise ValueError(f"maps: the towers' dataset was made in the world {made_in.name!r}, "
                         f"the continent is asked for in {world!r}; give world={made_in.name!r} "
                         "(or leave it empty for the towers' world)")
    return made_in


def dataset_world(truth_meta: Mapping[str, Any]) -> World:
    """The world a virtual FLUXNET was made in, with its dials (``truth.json``'s
    ``difficulty``; a dataset that records none was made in :data:`DEFAULT_WORLD`).

    Raises:
        ValueError: for a ``difficulty`` record that is not a world's.
    """
    record = truth_meta.get("difficulty")
    if record is None:
        return get_world(DEFAULT_WORLD)
    if not isinstance(record, Mapping):
        raise ValueError(f"maps: the towers' truth.json has a 'difficulty' of type "
                         f"{type(record).__name__}, expected a world's dials")
    return world_from_dict(record)


class FieldDraws:
    """Stands in for a random generator in one stage function of the generator: hands out
    given fields (one column per standard normal number a site would draw).

    Args:
        fields: ``(cells, k)`` values, each column a spatially coherent standard normal field
            (or anything the stage should receive in its place).
        stage: The stage's name, for error messages.

    Only ``standard_normal(size)`` and ``multivariate_normal(mean, cov, size)`` are served,
    with the cells on the first axis; each call takes the next columns.
    """

    def __init__(self, fields: np.ndarray, stage: str) -> None:
        self.fields = np.asarray(fields, dtype=np.float64)
        if self.fields.ndim != 2:
            raise ValueError(f"FieldDraws({stage}): fields must be (cells, k), got shape "
                             f"{self.fields.shape}")
        self.stage = stage
        self.used = 0

    def _take(self, n: int, k: int) -> np.ndarray:
        if n != self.fields.shape[0]:
            raise ValueError(f"FieldDraws({self.stage}): asked for {n} rows, holds "
                             f"{self.fields.shape[0]} cells")
        if self.used + k > self.fields.shape[1]:
            raise ValueError(f"FieldDraws({self.stage}): the stage draws more than the "
                             f"{self.fields.shape[1]} fields given; the generator changed, "
                             "update lue_spie.maps.world.FIELD_DRAWS")
        out = self.fields[:, self.used:self.used + k]
        self.used += k
        return out

    def standard_normal(self, size: int | tuple[int, ...]) -> np.ndarray:
        """The next field(s): ``size`` ``n`` gives ``(n,)``, ``(n, k)`` gives ``(n, k)``."""
        shape = (size,) if isinstance(size, int | np.integer) else tuple(size)
        if len(shape) == 1:
            return self._take(int(shape[0]), 1)[:, 0].copy()
        if len(shape) == 2:
            return self._take(int(shape[0]), int(shape[1])).copy()
        raise ValueError(f"FieldDraws({self.stage}): cannot serve a draw of shape {shape}")

    def multivariate_normal(self, mean: Sequence[float], cov: Sequence[Sequence[float]],
                            size: int) -> np.ndarray:
        """Correlated fields: the next ``len(mean)`` fields times the Cholesky factor of
        ``cov``, plus ``mean``."""
        m = np.asarray(mean, dtype=np.float64)
        chol = np.linalg.cholesky(np.asarray(cov, dtype=np.float64))
        return m + self._take(int(size), len(m)) @ chol.T

    def finish(self) -> None:
        """Check that the stage used every field (else the generator's draws changed)."""
        if self.used != self.fields.shape[1]:
            raise ValueError(f"FieldDraws({self.stage}): the stage used {self.used} of "
                             f"{self.fields.shape[1]} fields; the generator changed, update "
                             "lue_spie.maps.world.FIELD_DRAWS")


class RowStreams:
    """A random generator for stage functions that draw ``(cells, ...)`` arrays at once:
    row ``i`` of every draw comes from cell ``i``'s own generator.

    Args:
        generators: One ``numpy.random.Generator`` per cell, in row order.

    Every draw must have the cells on its first axis and scalar distribution parameters.
    """

    _METHODS = ("standard_normal", "normal", "random", "uniform", "gamma", "poisson",
                "integers")

    def __init__(self, generators: Sequence[np.random.Generator]) -> None:
        self.generators = list(generators)

    def __getattr__(self, name: str) -> Any:
        if name not in self._METHODS:
            raise AttributeError(f"RowStreams: no draw {name!r} (serves {self._METHODS})")

        def draw(*args: Any, size: int | tuple[int, ...] | None = None, **kw: Any) -> Any:
            if size is None and args and name in ("standard_normal", "random"):
                size, args = args[0], args[1:]
            elif size is None and len(args) >= 3 and name in ("normal", "uniform"):
                size, args = args[2], args[:2]
            elif size is None and len(args) >= 3 and name in ("gamma", "integers"):
                size, args = args[2], args[:2]
            if size is None:
                raise ValueError(f"RowStreams.{name}: give size= with the cells first")
            shape = (size,) if isinstance(size, int | np.integer) else tuple(size)
            if int(shape[0]) != len(self.generators):
                raise ValueError(f"RowStreams.{name}: {shape[0]} rows asked for, "
                                 f"{len(self.generators)} cells")
            if any(np.ndim(a) for a in (*args, *kw.values())):
                raise ValueError(f"RowStreams.{name}: only scalar parameters are served")
            rest = shape[1:]
            return np.stack([getattr(g, name)(*args, size=rest, **kw)
                             for g in self.generators])

        return draw


def cell_streams(seed: int, rows: Sequence[int], cols: Sequence[int],
                 names: Sequence[str] = DAILY_STREAMS) -> list[dict[str, np.random.Generator]]:
    """One generator per stream name for each cell ``(row, col)`` of the grid, seeded by
    ``SeedSequence([seed, row, col, k])`` with ``k`` the stream's position in ``names``."""
    return [{name: np.random.default_rng(np.random.SeedSequence([int(seed), int(r), int(c), k]))
             for k, name in enumerate(names)} for r, c in zip(rows, cols, strict=True)]


def crop_regimes(pft: np.ndarray, koeppen: np.ndarray,
                 uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """C4 and irrigated crops by the generator's rule (:data:`CROPS`), from two uniform
    fields ``uniforms`` ``(cells, 2)`` in place of its crop stream."""
    cro = pft == "CRO"
    c4 = cro & np.isin(koeppen, CROPS["c4_koeppen"]) & (uniforms[:, 0] < CROPS["c4_share"])
    dry = np.array([k[0] == "B" or k.startswith("Cs") for k in koeppen], dtype=bool)
    irrigated = (c4 & (dry | (uniforms[:, 1] < CROPS["irrigated_c4"]))) | (
        cro & ~c4 & dry & (uniforms[:, 1] < CROPS["irrigated_c3_dry"]))
    return c4, irrigated


class CellRecord:
    """What the generator makes of a set of cells.

    Attributes:
        sites: The cells as a sites table (``site``, PFT, Koeppen type, position, the
            regimes, and every site feature: BIO1-19, AI1-2, VIF1-11, N/P deposition, soil).
        forcing: ``(cells, days)`` arrays of the LUE model's inputs and the other daily
            series (keys as the site-day table's columns).
        truth: ``(cells, 13)`` true parameters (lag mask applied).
        structural: ``(cells, days)`` factor of the structural error (None when off).
        true_fapar: ``(cells, days)`` the canopy's true fAPAR, which makes the true GPP,
            when the world's fAPAR product (``forcing["FAPAR"]``, what the methods are given
            and the features are computed from) differs from it; None when they are one.
    """

    def __init__(self, sites: pd.DataFrame, forcing: dict[str, np.ndarray], truth: np.ndarray,
                 structural: np.ndarray | None, true_fapar: np.ndarray | None = None) -> None:
        self.sites = sites
        self.forcing = forcing
        self.truth = truth
        self.structural = structural
        self.true_fapar = true_fapar

    def truth_forcing(self) -> dict[str, np.ndarray]:
        """The forcing that makes the true GPP: ``forcing`` with the true fAPAR."""
        if self.true_fapar is None:
            return self.forcing
        return {**self.forcing, "FAPAR": self.true_fapar}


def generate_cells(cells: pd.DataFrame, fields: Mapping[str, np.ndarray], dates: pd.DatetimeIndex,
                   seed: int, *, structural_error: bool = False,
                   world: str | World = DEFAULT_WORLD) -> CellRecord:
    """Climate, daily forcing, soil, vegetation, features and true parameters of some cells.

    The stages of :func:`lue_spie.data.virtual.generator.make_tables`, in its order, with the
    cells' coherent fields (:class:`FieldDraws`) and their own streams (:class:`RowStreams`)
    in place of its random streams; no observation (GPP_obs, QC, gaps) is made.

    Args:
        cells: The cells as a sites table: ``site``, ``row``, ``col``, ``PFT``, ``koeppen``,
            ``koeppen_main``, ``lat``, ``lon``, ``elevation``, ``highland``, ``subalpine``,
            ``c4``, ``irrigated``.
        fields: For each stage of :data:`FIELD_DRAWS` the cells' fields ``(cells, k)``.
        dates: The days of the record.
        seed: Seed of the cells' own streams (:func:`cell_streams`).
        structural_error: Also make the structural error's factor (as the dataset did).
        world: The world (a name of :data:`WORLDS` or a
            :class:`~lue_spie.data.virtual.worlds.World`); see the module docstring for
            which of its dials reach the cells.
    """
    try:
        w = get_world(world)
    except ValueError as exc:
        raise ValueError(f"maps: {exc}") from None
    n = len(cells)
    streams = cell_streams(seed, cells["row"].to_numpy(), cells["col"].to_numpy())
    table = cells.reset_index(drop=True)

    # Weather, cell by cell: its episode draws loop over sites.
    parts: list[dict[str, np.ndarray]] = []
    for i in range(n):
        rngs: dict[str, Any] = dict(streams[i])
        rngs["climate"] = FieldDraws(fields["climate"][i:i + 1], "climate")
        parts.append(_forcing(rngs, table.iloc[[i]].reset_index(drop=True), dates))
        rngs["climate"].finish()
    f = {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}
    del parts

    PET = pet(f["SW_IN"], f["T"], f["PA"])
    AI1_pre = f["P"].sum(axis=1) / np.maximum(PET.sum(axis=1), 1e-9)
    soil_draws = FieldDraws(fields["soil"], "soil")
    soil = _soil(soil_draws, table, AI1_pre, f["T"].mean(axis=1))
    soil_draws.finish()
    whc = _water_holding_capacity(RowStreams([s["soil"] for s in streams]), table, soil)
    f["W"] = _soil_water(table, f["T"], f["P"], PET, whc, dates)
    del PET
    f["FAPAR"] = _phenology(RowStreams([s["phenology"] for s in streams]), table, f["T"],
                            f["W"], AI1_pre, dates)
    f["NDVI"] = _ndvi(RowStreams([s["ndvi"] for s in streams]), f["FAPAR"], f["cloud"])

    # The methods are given the world's fAPAR product (the generator's order: after NDVI,
    # before the features, which are computed from the product as the towers' are).
    true_fapar = None
    if w.biased_fapar:
        product_draws = FieldDraws(fields["fapar_product"], "fapar_product")
        product, _ = _fapar_product(product_draws, f["FAPAR"], w.fapar_offset_sd,
                                    w.fapar_gain_sd)
        product_draws.finish()
        true_fapar, f["FAPAR"] = f["FAPAR"], product

    site_day = pd.DataFrame({"site": np.repeat(table["site"].to_numpy(), len(dates)),
                             "date": np.tile(dates.to_numpy(), n)})
    for k in _SITE_DAY_KEYS:
        site_day[k] = f[k].reshape(-1)
    feats = site_features_from_site_day(site_day).reindex(table["site"].to_numpy())
    del site_day
    dep_draws = FieldDraws(fields["deposition"], "deposition")
    dep = _deposition(dep_draws, table)
    dep_draws.finish()

    sites = table.assign(whc=np.round(whc, 2))
    for frame in (feats, dep, soil):
        for c in frame.columns:
            sites[c] = frame[c].to_numpy()
    term_draws = FieldDraws(fields["site_terms"], "site_terms")
    e = _site_terms(term_draws, table["c4"].to_numpy(), w.site_spread)
    term_draws.finish()
    theta = truth_parameters(sites, e, feature_spread=w.feature_spread,
                             within_pft=w.within_pft)
    structural = None
    if structural_error:  # the generator's factor, of the canopy's true fAPAR
        structural = _structural_factor(
            f if true_fapar is None else {**f, "FAPAR": true_fapar}, dates)
    forcing = {k: f[k] for k in _SITE_DAY_KEYS}
    return CellRecord(sites, forcing, theta, structural, true_fapar)

"""Virtual FLUXNET: the project's embedded, deterministic default data (SPEC section 6).

:func:`make_tables` builds, and :func:`generate` writes, a dataset with exactly the schema of
the real FLUXNET path (:mod:`lue_spie.data.schema`), plus the known truth. This module
orchestrates the stages; each lives in a module of its own inside
:mod:`lue_spie.data.virtual`:

1. **Sites** (:mod:`~lue_spie.data.virtual.sites`): PFTs and Koeppen types in FLUXNET2015-like
   shares, with every PFT and Koeppen type from 14 sites on, latitudes and elevations
   consistent with their climate, C4 and irrigated crops.
2. **Daily weather** (:mod:`~lue_spie.data.virtual.weather`): T, TMIN, TMAX, VPD, P, SW_IN
   with SW_IN_POT from solar geometry, CI, PAR, PPFD, PA and CO2, with slow weather,
   year-to-year anomalies and heat/drought episodes.
3. **Soil and soil water** (:mod:`~lue_spie.data.virtual.drawn_features`,
   :mod:`~lue_spie.data.virtual.soil_water`): soil properties drawn first, from aridity and
   a first guess of BIO1, because the texture sets the soil-water bucket's capacity; then W
   from the bucket, with irrigation.
4. **Vegetation** (:mod:`~lue_spie.data.virtual.vegetation`): FAPAR phenology by PFT from the
   temperature and W, NDVI from FAPAR.
5. **Site features** computed from that forcing where the real ones are computed from
   climate and satellite series (BIO1-19, AI1-2, VIF1-11 by
   :func:`lue_spie.data.features.site_features_from_site_day`), and drawn where they are not
   (soil, N/P deposition: :mod:`~lue_spie.data.virtual.drawn_features`). Computed features
   describe the generated record, so they (and through them the truth) depend on
   ``n_years`` too.
6. **The truth** (:mod:`~lue_spie.data.virtual.truth`): each parameter a smooth nonlinear
   function of a few named features plus a PFT effect plus an unexplained site term.
7. **Observation** (:mod:`~lue_spie.data.virtual.observe`): GPP_obs = LUE(truth) x the
   optional structural error, with persistent, yearly and heteroscedastic noise; QC
   fractions and gaps.

**Worlds** (:mod:`~lue_spie.data.virtual.worlds`): a world's dials change stages 4, 6 and 7
(the fAPAR product given to the model, the spread of the truth, persistent observation
biases, record lengths and gaps). Each draws from random streams of its own, added after the
existing ones, and nothing is drawn for a dial at its neutral value: the ``smooth`` world
(the default) writes the same tables as the generator did before worlds existed.

``truth.json`` (:func:`_truth_meta`) records the truth, the noise and structural-error
settings, the shares and coverage pairs, and the generated world's regimes
(:func:`_world_record`).

**How real** (:mod:`lue_spie.data.realism`, default 196 sites x 10 years, seed 0, class
medians against the real sites of the shipped reference): MF of Koeppen C against CH-Lae
(real / 2.0.0 / 1.1.0): VPD anomaly sd 268 / 259 / 103 Pa, VPD seasonal range 615 / 615 /
279 Pa, GPP anomaly sd 2.49 / 1.81 / 1.43, year-to-year sd 0.54 / 0.49 / 0.16, corr(GPP, T)
0.66 / 0.75 / 0.87; subalpine ENF of Koeppen E against CH-Dav: 216 / 175 / 32 Pa, 307 / 411
/ 44 Pa, 1.42 / 1.52 / 1.02, 0.29 / 0.40 / 0.15, 0.76 / 0.82 / 0.79, mean T 3.5 / 3.5 / -8.0
degC. Mediterranean Cs sites spend a median 8 % of their days above 2000 Pa (0.1 % in
1.1.0). Known miss: boreal ENF of Koeppen D have a VPD seasonal range of about 570 Pa, 1.8 x
CH-Dav's, because their summers are warmer than CH-Dav's subalpine ones (tests/
test_realism.py lists it).

Everything is drawn from ``numpy.random.default_rng`` streams seeded by
``SeedSequence([seed, n_sites, n_years, stream])`` (:func:`_rngs`), so equal ``(n_sites,
n_years, seed, start_year, structural_error, world)`` give byte-identical parquet files;
timestamps live only in the ``*.provenance.json`` files. Each stage draws from streams of its
own, so flipping ``structural_error`` changes GPP_obs and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lue_spie.data import schema
from lue_spie.data.bucket import pet
from lue_spie.data.features import site_features_from_site_day
from lue_spie.data.virtual.drawn_features import _deposition, _soil
from lue_spie.data.virtual.observe import (
    NOISE,
    STRUCTURAL_ERROR,
    _fapar_product,
    _flux_bias,
    _gpp_lue,
    _half_hours,
    _observe,
    _qc,
    _records,
    _structural_factor,
)
from lue_spie.data.virtual.sites import COVERAGE, CROPS, PFT_SHARES, _draw_sites
from lue_spie.data.virtual.soil_water import _soil_water, _water_holding_capacity
from lue_spie.data.virtual.truth import _parameters_meta, _site_terms, truth_parameters
from lue_spie.data.virtual.vegetation import _ndvi, _phenology
from lue_spie.data.virtual.weather import WEATHER, _forcing
from lue_spie.data.virtual.worlds import World, get_world
from lue_spie.layout import DataFiles
from lue_spie.params import PARAMETERS
from lue_spie.progress import progress_bar

__all__ = [
    "GENERATOR_VERSION",
    "GENERATOR_ID",
    "VirtualFluxnet",
    "make_tables",
    "generate",
]

GENERATOR_VERSION = "2.1.0"

#: The ``generator`` entry of ``truth.json``, by which a dataset folder is recognised as a
#: virtual FLUXNET (the structural-error twin, :mod:`lue_spie.assess.twin`, checks it). It
#: names the generator, not where its code lives: it keeps the module's first name
#: ``lue_spie.data.synthetic`` so that dataset folders written before the code moved to
#: :mod:`lue_spie.data.virtual` stay valid.
GENERATOR_ID = "lue_spie.data.synthetic"

_STREAMS = ("sites", "climate", "weather", "precip", "cloud", "humidity", "co2", "phenology",
            "ndvi", "soil", "truth", "noise", "qc", "slow", "episodes", "yearly", "crops",
            "obs_error", "fapar_product", "flux_bias", "records")


def _rngs(seed: int, n_sites: int, n_years: int) -> dict[str, np.random.Generator]:
    """One random stream per name of :data:`_STREAMS`, seeded by its position there: a new
    stream goes at the end, since reordering would change every dataset."""
    return {name: np.random.default_rng(np.random.SeedSequence([seed, n_sites, n_years, k]))
            for k, name in enumerate(_STREAMS)}


_WORLD_COLUMNS = ["highland", "subalpine", "c4", "irrigated"]


def _world_record(sites: pd.DataFrame, f: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """What truth.json records about the generated world beyond the truth: site regimes that
    are not in the site features, and how often heat/drought episodes occurred."""
    ids = sites["site"].tolist()
    epi = f["episodes"]
    return {
        "weather": WEATHER,
        "crops": {k: (list(v) if isinstance(v, tuple) else v) for k, v in CROPS.items()},
        "c4_sites": [s for s, c in zip(ids, sites["c4"], strict=True) if c],
        "irrigated_sites": [s for s, c in zip(ids, sites["irrigated"], strict=True) if c],
        "subalpine_sites": [s for s, c in zip(ids, sites["subalpine"], strict=True) if c],
        "highland_sites": [s for s, c in zip(ids, sites["highland"], strict=True) if c],
        "episode_days_share": round(float((epi > 0.25).mean()), 4),
    }


def _truth_meta(seed: int, n_sites: int, n_years: int, start_year: int,
                structural_error: bool, world: World | None = None) -> dict[str, Any]:
    """The contents of ``truth.json`` (without ``world``, which :func:`make_tables` adds
    from :func:`_world_record`): the generator, the arguments, the world's dials
    (``difficulty``), the truth of each parameter
    (:func:`lue_spie.data.virtual.truth._parameters_meta`), the noise and structural-error
    settings, the PFT shares and the coverage pairs."""
    w = get_world(world)
    return {
        "generator": GENERATOR_ID,
        "generator_version": GENERATOR_VERSION,
        "seed": seed, "n_sites": n_sites, "n_years": n_years, "start_year": start_year,
        "difficulty": w.to_dict(),
        "parameters": _parameters_meta(feature_spread=w.feature_spread,
                                       within_pft=w.within_pft, site_spread=w.site_spread),
        "noise": {"model": "GPP_obs = GPP_true * (1 + e_p + e_y) + N(0, sd), sd = a + b * "
                           "GPP_true (gC m-2 d-1); e_p AR(1) with sd persistent_sd and e-folding "
                           "persistent_tau days, e_y one N(0, yearly_sd) value per site-year; "
                           "GPP_true = LUE(truth) x structural factor",
                  **NOISE},
        "structural_error": {"enabled": bool(structural_error), **STRUCTURAL_ERROR},
        "pft_shares": PFT_SHARES,
        "coverage": [list(c) for c in COVERAGE],
    }


@dataclass(frozen=True)
class VirtualFluxnet:
    """The four parts of a virtual FLUXNET dataset (in memory).

    Attributes:
        site_day: Tidy site-day table (schema-valid).
        sites: Sites table with features (schema-valid).
        truth: ``site`` + the 13 true parameters (physical units, lag mask applied).
        truth_meta: The truth's description (``truth.json``).
    """

    site_day: pd.DataFrame
    sites: pd.DataFrame
    truth: pd.DataFrame
    truth_meta: dict[str, Any]

    def __iter__(self) -> Iterator[Any]:
        """Unpack as ``site_day, sites, truth, truth_meta = make_tables(...)``."""
        return iter((self.site_day, self.sites, self.truth, self.truth_meta))


def _check_args(n_sites: int, n_years: int, seed: int, start_year: int) -> None:
    if int(n_sites) != n_sites or n_sites < 1:
        raise ValueError(f"n_sites must be a positive integer, got {n_sites!r}")
    if int(n_years) != n_years or n_years < 1:
        raise ValueError(f"n_years must be a positive integer, got {n_years!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not 1900 <= start_year <= 2100 - n_years:
        raise ValueError(f"start_year must lie in 1900..{2100 - n_years}, got {start_year!r}")


def make_tables(n_sites: int = 196, n_years: int = 10, seed: int = 0, *,
                structural_error: bool = False, start_year: int = 2005,
                progress: bool = False,
                world: str | World | Mapping[str, Any] | None = "smooth") -> VirtualFluxnet:
    """Build a virtual FLUXNET in memory (see the module docstring for the recipe).

    Args:
        n_sites: Number of sites (>= 14 guarantees every PFT and Koeppen type).
        n_years: Years per site (the forcing covers them all; a world's
            ``record_min_share`` shortens the GPP records).
        seed: Random seed; equal arguments give identical tables.
        structural_error: Add processes the LUE model lacks (:data:`STRUCTURAL_ERROR`).
        start_year: First calendar year.
        progress: Show a progress bar over the generation stages.
        world: The world's dials: a name of :data:`lue_spie.data.virtual.worlds.WORLDS`, a
            :class:`~lue_spie.data.virtual.worlds.World` or its dict (None: ``smooth``, the
            default).

    Returns:
        :class:`VirtualFluxnet` with schema-valid ``site_day`` and ``sites``.

    Raises:
        ValueError: for invalid arguments or an unknown world (naming the known ones).
    """
    _check_args(n_sites, n_years, seed, start_year)
    w = get_world(world)
    n_sites, n_years, seed = int(n_sites), int(n_years), int(seed)
    bar = progress_bar(total=7, desc="virtual FLUXNET", unit="stage", enabled=progress)
    rngs = _rngs(seed, n_sites, n_years)
    sites = _draw_sites(rngs["sites"], n_sites, rngs["crops"])
    dates = pd.date_range(f"{start_year}-01-01", f"{start_year + n_years - 1}-12-31", freq="D")
    n_days = len(dates)
    bar.update()

    f = _forcing(rngs, sites, dates)
    PET = pet(f["SW_IN"], f["T"], f["PA"])
    AI1_pre = f["P"].sum(axis=1) / np.maximum(PET.sum(axis=1), 1e-9)
    bar.update()

    # Soil first (texture sets the bucket), from aridity and a first guess of BIO1.
    soil = _soil(rngs["soil"], sites, AI1_pre, f["T"].mean(axis=1))
    whc = _water_holding_capacity(rngs["soil"], sites, soil)
    f["W"] = _soil_water(sites, f["T"], f["P"], PET, whc, dates)
    f["FAPAR"] = _phenology(rngs["phenology"], sites, f["T"], f["W"], AI1_pre, dates)
    f["NDVI"] = _ndvi(rngs["ndvi"], f["FAPAR"], f["cloud"])
    bar.update()

    site_ids = sites["site"].to_numpy()
    site_day = pd.DataFrame({
        "site": np.repeat(site_ids, n_days),
        "date": np.tile(dates.to_numpy(), n_sites),
    })
    biases: dict[str, np.ndarray] = {}
    # The model (and every method) is given a satellite fAPAR product; the canopy's true
    # fAPAR makes GPP. NDVI stays that of the canopy.
    product = f["FAPAR"]
    if w.biased_fapar:
        product, biases = _fapar_product(rngs["fapar_product"], f["FAPAR"],
                                         w.fapar_offset_sd, w.fapar_gain_sd)
    for k in ("T", "VPD", "CO2", "W", "PAR", "FAPAR", "CI", "SW_IN", "SW_IN_POT", "P", "PA",
              "PPFD", "NDVI", "TMIN", "TMAX"):
        site_day[k] = (product if k == "FAPAR" else f[k]).reshape(-1)

    feats = site_features_from_site_day(site_day).reindex(site_ids)
    dep = _deposition(rngs["soil"], sites)
    bar.update()

    world = _world_record(sites, f)
    sites_tab = sites.drop(columns=_WORLD_COLUMNS).assign(
        whc=np.round(whc, 2), first_year=start_year, last_year=start_year + n_years - 1,
        source="virtual")
    for c in feats.columns:
        sites_tab[c] = feats[c].to_numpy()
    for c in dep.columns:
        sites_tab[c] = dep[c].to_numpy()
    for c in soil.columns:
        sites_tab[c] = soil[c].to_numpy()

    e = _site_terms(rngs["truth"], sites["c4"].to_numpy(), w.site_spread)
    theta = truth_parameters(sites_tab, e, feature_spread=w.feature_spread,
                             within_pft=w.within_pft)
    bar.update()

    gpp = _gpp_lue(f, theta)
    if structural_error:
        gpp = gpp * _structural_factor(f, dates)
    if w.biased_flux:
        gpp, flux = _flux_bias(rngs["flux_bias"], gpp, f["T"], w.gpp_scale_sd, w.partition_sd)
        biases.update(flux)
    gpp_obs = _observe(rngs["noise"], rngs["obs_error"], gpp, dates)
    qc = _qc(rngs["qc"], (n_sites, n_days), f["T"], f["cloud"])
    missing = qc.pop("_missing")
    if w.short_records:
        rng = rngs["records"]
        outside, gapfilled, record = _records(rng, dates, n_sites, w.record_min_share,
                                              w.gap_share)
        missing = missing | outside
        low = _half_hours(rng.uniform(0.0, 0.75, (n_sites, n_days)))
        qc["GPP_QC"] = np.where(outside, 0.0, np.where(gapfilled, np.minimum(
            qc["GPP_QC"], low), qc["GPP_QC"]))
        biases.update(record)
    # A daily value outside the schema's plausible range is rejected, as flux QC would (it
    # happens only in worlds with a wide parameter spread and observation biases).
    spec = schema.SITE_DAY_SPEC["GPP_obs"]
    implausible = (gpp_obs < spec.vmin) | (gpp_obs > spec.vmax)
    if implausible.any():
        missing = missing | implausible
        qc["GPP_QC"] = np.where(implausible, 0.0, qc["GPP_QC"])
    gpp_obs = np.where(missing, np.nan, gpp_obs)
    site_day.insert(site_day.columns.get_loc("SW_IN"), "GPP_obs", gpp_obs.reshape(-1))
    for k in schema.QC_COLUMNS:
        site_day[k] = qc[k].reshape(-1)
    bar.update()

    site_day = schema.coerce_site_day(site_day)[list(schema.SITE_DAY_COLUMN_NAMES)]
    sites_tab = schema.coerce_sites(sites_tab)[list(schema.SITES_COLUMN_NAMES)]
    schema.validate_site_day(site_day, "virtual FLUXNET site_day")
    schema.validate_sites(sites_tab, "virtual FLUXNET sites")
    truth = pd.DataFrame(theta, columns=list(PARAMETERS))
    truth.insert(0, "site", site_ids.astype(str))
    truth = truth.sort_values("site", kind="stable").reset_index(drop=True)
    meta = _truth_meta(seed, n_sites, n_years, start_year, structural_error, w)
    world["noise_ceiling"] = _noise_ceiling(site_day, gpp, site_ids)
    if biases:
        world["site_observation"] = {
            "sites": [str(x) for x in site_ids],
            **{k: [round(float(x), 6) for x in v] for k, v in biases.items()}}
    meta["world"] = world
    bar.update()
    bar.close()
    return VirtualFluxnet(site_day, sites_tab, truth, meta)


def _noise_ceiling(site_day: pd.DataFrame, signal: np.ndarray,
                   site_ids: np.ndarray) -> dict[str, Any]:
    """The world's noise ceiling: each site's daily NSE of the noise-free observed signal
    (GPP as the site's flux processing delivers it, biases and structural error included,
    before the random errors) against GPP_obs on the good-quality days, and its median. No
    model can expect to beat it out of sample; calibration may pass it in sample only by
    fitting the noise."""
    from lue_spie.data.io import good_days
    from lue_spie.metrics import nse

    n = len(site_ids)
    good = good_days(site_day).to_numpy().reshape(n, -1)
    obs = site_day["GPP_obs"].to_numpy().reshape(n, -1)
    v = np.atleast_1d(np.asarray(nse(np.nan_to_num(obs), signal, mask=good), dtype=float))
    return {"definition": "daily NSE of the noise-free observed signal against GPP_obs on the "
                          "good-quality days, per site",
            "median": round(float(np.nanmedian(v)), 6) if np.isfinite(v).any() else None,
            "sites": [str(x) for x in site_ids],
            "nse": [None if not np.isfinite(x) else round(float(x), 6) for x in v]}


def _check_out(out: Path) -> None:
    """A dataset folder path must be a folder or not exist yet (nor sit under a file)."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                what = "the output folder" if p == out else f"a parent of {out}"
                raise ValueError(f"{p}: exists and is a file, not a folder ({what}); give a "
                                 "new or existing dataset folder")
            return


def generate(n_sites: int = 196, n_years: int = 10, seed: int = 0,
             out: str | Path | None = None, *, structural_error: bool = False,
             start_year: int = 2005, progress: bool = False,
             world: str | World | Mapping[str, Any] | None = "smooth") -> Path:
    """Generate a virtual FLUXNET and write it as a dataset folder.

    Writes ``site_day.parquet``, ``sites.parquet``, ``truth.parquet`` (each with its
    ``.provenance.json``) and ``truth.json`` atomically. The parquet files and truth.json are
    byte-identical for equal arguments; run-specific facts (time, git commit, versions) are
    only in the provenance records.

    Args:
        n_sites, n_years, seed, structural_error, start_year, progress, world: As
            :func:`make_tables`.
        out: Dataset folder; default ``data/virtual_<n_sites>x<n_years>_seed<seed>`` (with
            ``_<world>`` appended for a world other than ``smooth`` and ``_structural`` when
            ``structural_error``) under the current folder.

    Returns:
        The dataset folder.

    Raises:
        ValueError: when ``out`` (or a parent of it) is an existing file, checked before any
            generation.
    """
    from lue_spie.store import atomic_write_json, make_provenance, write_parquet

    w = get_world(world)
    if out is None:
        out = Path("data") / (f"virtual_{n_sites}x{n_years}_seed{seed}"
                              + ("" if w.name == "smooth" else f"_{w.name}")
                              + ("_structural" if structural_error else ""))
    out = Path(out)
    _check_out(out)                       # before the work, so a bad path fails at once
    vf = make_tables(n_sites, n_years, seed, structural_error=structural_error,
                     start_year=start_year, progress=progress, world=w)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"n_sites": n_sites, "n_years": n_years, "start_year": start_year,
                "structural_error": structural_error, "generator_version": GENERATOR_VERSION,
                "world": w.to_dict()}
    files = DataFiles(out)
    for path, table in ((files.site_day, vf.site_day), (files.sites, vf.sites),
                        (files.truth, vf.truth)):
        write_parquet(table, path, make_provenance("data.synth", settings=settings, seed=seed))
    atomic_write_json(files.truth_meta, vf.truth_meta)
    return out


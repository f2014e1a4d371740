"""How hard the virtual FLUXNET is: named worlds, each a set of documented dials.

The embedded generator (:mod:`lue_spie.data.virtual`) was first built as a *smooth* world:
each true parameter is a PFT base plus a few small feature terms plus a small unexplained site
term, the LUE model makes GPP, and GPP is observed with random noise only. In such a world
site calibration finds parameters close to the truth, and averaging calibrated vectors per
PFT already predicts GPP well at unseen sites. Real flux sites are harder, for reasons that
are each documented in the literature. A :class:`World` names one value per reason (a
*dial*); :data:`WORLDS` holds the named worlds:

- ``smooth``: the world as first built (every dial at its neutral value). Its tables are
  byte-identical to what the generator wrote before worlds existed.
- ``literature``: every dial at its published value (:data:`LITERATURE`).
- ``paper``: the literature world with the spread of its parameters (measured across flux
  sites for two of the 13 only, eps_max and Topt) multiplied by one factor
  (:data:`PAPER_FACTOR`), the smallest at which the ten parameter baselines fail about as
  often as on the paper's real sites, set by a procedure that reads only site calibration
  and baseline results (``benchmarks/set_paper_world.py``; the log of its tries is in
  ``benchmarks/RESULTS.md``).

The dials, by mechanism (each documented in :data:`DIALS` with its unit and anchor):

1. **Parameters that vary within a PFT, driven by site features** (``feature_spread``,
   ``within_pft``): the coefficients of the truth's feature terms are scaled, and further
   terms of features that vary within every PFT and climate type (soil, deposition,
   greenness) are added, some as products of two features (interactions). A method that
   reads the features can learn this variation; one that groups sites by PFT or climate
   cannot.
2. **Unexplained site variation** (``site_spread``): the site term no feature reveals is
   scaled; no method can learn it, so it caps every method alike.
3. **Persistent, site-specific observation biases** that calibration absorbs into the
   parameters: a site's fAPAR product differs from its canopy's true fAPAR by an offset and
   a gain of the seasonal amplitude (``fapar_offset_sd``, ``fapar_gain_sd``); its GPP_obs
   by a scale (energy-balance closure and the level of the flux partitioning,
   ``gpp_scale_sd``) and by a respiration-shaped term (the temperature sensitivity with
   which the partitioning extrapolates respiration, ``partition_sd``). Calibration fits the
   biased record, so the calibrated vectors of different sites hold different biases, and
   parameters that trade off against each other take them up in different proportions at
   different sites (equifinality).
4. **Record length and gaps** (``record_min_share``, ``gap_share``): short records and
   gap-filled days leave fewer good days to calibrate on, so calibrated vectors are less
   well identified.
5. **Structural error**: processes the LUE model lacks. It is not a dial of a world: it is
   the generator's ``structural_error`` switch, which the structural-error twin
   (:mod:`lue_spie.assess.twin`) flips for any world.

:func:`get_world` finds a world by name, :func:`register_world` adds one; a world with other
dial values is :meth:`World.replace`, :meth:`World.scaled` (dials moved from their neutral
value: the pay-off sweep makes its points so) or :meth:`World.multiplied`, and
:meth:`World.to_dict` / :func:`world_from_dict` carry it through ``truth.json`` and the
provenance records.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["World", "Dial", "DIALS", "ALL_DIALS", "GROUPS", "NEUTRAL", "WORLDS", "LITERATURE",
           "PAPER_FACTOR", "DEFAULT_WORLD", "dial_table", "world_indicators", "world_sentences",
           "dial_names", "get_world", "register_world", "world_from_dict", "world_names"]


@dataclass(frozen=True)
class Dial:
    """One dial of a :class:`World`: what it means and where its plausible value comes from.

    Attributes:
        name: The field of :class:`World`.
        unit: Its unit.
        mechanism: The process it stands for, in one sentence.
        anchor: The published number it is set against, in one sentence.
        citations: BibTeX keys of ``book/references.bib`` for the anchor.
        group: ``"parameters"``, ``"observation"`` or ``"identifiability"``.
    """

    name: str
    unit: str
    mechanism: str
    anchor: str
    citations: tuple[str, ...]
    group: str


@dataclass(frozen=True)
class World:
    """A virtual FLUXNET's difficulty: one value per dial (see the module docstring).

    Every dial's neutral value (the default) leaves the generator as it was: a world whose
    dials are all neutral writes the tables of the ``smooth`` world, byte for byte.

    Attributes:
        name: The world's name (``truth.json`` and the provenance record it).
        description: What the world is for, in one line.
        feature_spread: Factor on the coefficients of the truth's feature terms
            (:data:`lue_spie.data.virtual.truth.TRUTH`) [-]; 1 is the smooth world.
        within_pft: Factor on the within-PFT terms
            (:data:`lue_spie.data.virtual.truth.WITHIN_PFT`: soil, deposition and greenness
            features, single and in pairs) [-]; 0 leaves them out.
        site_spread: Factor on the standard deviation of the unexplained site term of every
            parameter [-]; 1 is the smooth world.
        fapar_offset_sd: Standard deviation of a site's additive offset of the fAPAR product
            against the canopy's true fAPAR [fAPAR units].
        fapar_gain_sd: Standard deviation of the logarithm of a site's gain of the product's
            seasonal amplitude (product = site mean + gain x (true - site mean) + offset) [-].
        gpp_scale_sd: Standard deviation of the logarithm of a site's scale of GPP_obs
            against the true GPP [-].
        partition_sd: Standard deviation of a site's respiration-shaped error of GPP_obs,
            ``c x mean GPP x 2^((T - mean T)/10)``, as the share ``c`` of the site's mean
            GPP [-].
        record_min_share: Each site's GPP record spans a random share of the years, drawn
            uniformly between this value and 1 (at least one year); GPP is missing outside
            it [-]. 1 gives every site the full record.
        gap_share: Mean share of a site's days whose GPP is gap-filled (QC below the
            good-quality threshold) in extra blocks [-]; each site's share is drawn
            uniformly between 0 and twice this value.
    """

    name: str
    description: str = ""
    feature_spread: float = 1.0
    within_pft: float = 0.0
    site_spread: float = 1.0
    fapar_offset_sd: float = 0.0
    fapar_gain_sd: float = 0.0
    gpp_scale_sd: float = 0.0
    partition_sd: float = 0.0
    record_min_share: float = 1.0
    gap_share: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"World.name = {self.name!r}: expected a non-empty string")
        for field, (lo, hi) in _RANGES.items():
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not lo <= float(value) <= hi or math.isnan(float(value)):
                raise ValueError(f"World.{field} = {value!r}: expected a number in "
                                 f"[{lo:g}, {hi:g}]")
            object.__setattr__(self, field, float(value))

    # -- what the generator asks -----------------------------------------------------------
    @property
    def biased_fapar(self) -> bool:
        """Whether the fAPAR product differs from the canopy's true fAPAR."""
        return self.fapar_offset_sd > 0.0 or self.fapar_gain_sd > 0.0

    @property
    def biased_flux(self) -> bool:
        """Whether GPP_obs carries a site's persistent scale or partitioning error."""
        return self.gpp_scale_sd > 0.0 or self.partition_sd > 0.0

    @property
    def short_records(self) -> bool:
        """Whether records are shortened or extra gaps are added."""
        return self.record_min_share < 1.0 or self.gap_share > 0.0

    def dials(self) -> dict[str, float]:
        """The dial values by name (every field but ``name`` and ``description``)."""
        return {d.name: getattr(self, d.name) for d in DIALS}

    def to_dict(self) -> dict[str, Any]:
        """The world as a JSON-friendly dict (:func:`world_from_dict` reads it back)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> World:
        """A copy with some fields changed (validated like a new world)."""
        return dataclasses.replace(self, **changes)

    def multiplied(self, dials: str | tuple[str, ...], factor: float, *,
                   name: str | None = None) -> World:
        """This world with some dials multiplied by ``factor`` (kept inside their valid
        ranges). For the spread dials (``feature_spread``, ``within_pft``, ``site_spread``)
        this multiplies every term of the truth's spread alike, explained or not, so their
        proportions stay; :meth:`scaled` moves dials from their neutral value instead.

        Args:
            dials: A dial name, a group name of :data:`GROUPS`, or a tuple of dial names.
            factor: The factor (>= 0).
            name: The new world's name (default: ``"<name>[<dials>*<factor>]"``).

        Raises:
            ValueError: for an unknown dial or group, or a negative factor.
        """
        return self._moved("multiplied", dials, factor, name, "*",
                           lambda d, f: getattr(self, d) * f)

    def scaled(self, dials: str | tuple[str, ...], factor: float, *,
               name: str | None = None) -> World:
        """This world with some dials moved from their neutral value by ``factor`` times
        this world's distance from it: ``neutral + factor x (value - neutral)`` (0: the
        smooth world's value, 1: this world's, 2: twice as far), kept inside the dial's
        valid range.

        Args:
            dials: A dial name, a group name of :data:`GROUPS`, or a tuple of dial names.
            factor: The factor (>= 0).
            name: The new world's name (default: ``"<name>[<dials>x<factor>]"``).

        Raises:
            ValueError: for an unknown dial or group, or a negative factor.
        """
        return self._moved("scaled", dials, factor, name, "x",
                           lambda d, f: NEUTRAL[d] + f * (getattr(self, d) - NEUTRAL[d]))

    def _moved(self, method: str, dials: str | tuple[str, ...], factor: float,
               name: str | None, sign: str, value: Callable[[str, float], float]) -> World:
        """The world with each of ``dials`` set to ``value(dial, factor)``, kept inside the
        dial's valid range (:meth:`multiplied` and :meth:`scaled`)."""
        names = dial_names(dials)
        if not factor >= 0:
            raise ValueError(f"World.{method}: factor = {factor!r}: expected a number >= 0")
        changes = {d: round(min(max(value(d, float(factor)), _RANGES[d][0]), _RANGES[d][1]), 10)
                   for d in names}
        label = dials if isinstance(dials, str) else "+".join(dials)
        return dataclasses.replace(self, name=name or f"{self.name}[{label}{sign}{factor:g}]",
                                   **changes)


#: The valid range of each dial.
_RANGES: dict[str, tuple[float, float]] = {
    "feature_spread": (0.0, math.inf), "within_pft": (0.0, math.inf),
    "site_spread": (0.0, math.inf), "fapar_offset_sd": (0.0, 0.5), "fapar_gain_sd": (0.0, 2.0),
    "gpp_scale_sd": (0.0, 2.0), "partition_sd": (0.0, 2.0), "record_min_share": (0.05, 1.0),
    "gap_share": (0.0, 0.45),
}

#: The dials, in the order of the data chapter's table.
DIALS: tuple[Dial, ...] = (
    Dial("feature_spread", "-",
         "parameters vary with climate, aridity and greenness more strongly than in the "
         "smooth world (factor on the truth's feature terms)",
         "the optimum temperature of GPP at flux sites is 23 +- 6 degC and rises with the "
         "local temperature; maximum light-use efficiency of C3 ecosystems is 1.48 +- 0.33 "
         "gC MJ-1 across sites (coefficient of variation 0.22)",
         ("huang2019topt", "gan2021lue"), "parameters"),
    Dial("within_pft", "-",
         "soil texture, soil nitrogen, N and P deposition and canopy greenness shift the "
         "parameters inside every PFT and climate type, alone and in pairs (factor on the "
         "within-PFT terms)",
         "parameters of an LUE model calibrated at FLUXNET sites relate to site "
         "characteristics beyond the vegetation class, each parameter to its own set",
         ("horn2011spatial", "horn2011identification"), "parameters"),
    Dial("site_spread", "-",
         "site properties no feature describes (species, stand age, management, history) "
         "(factor on the unexplained site term)",
         "same anchor as the feature terms: the share no feature explains is not known, so "
         "this dial moves with them",
         ("huang2019topt", "gan2021lue"), "parameters"),
    Dial("fapar_offset_sd", "fAPAR",
         "a satellite fAPAR product sits above or below the canopy's true fAPAR at a site, "
         "persistently (footprint mismatch, background, retrieval algorithm)",
         "fAPAR products disagree over forests by an absolute bias above 0.25 (RMSE above "
         "0.30), enough to change modelled GPP by up to 65 %; MODIS reads higher than other "
         "products over northern Eurasia",
         ("martinez2013fapar", "mccallum2010fapar"), "observation"),
    Dial("fapar_gain_sd", "-",
         "a product compresses or stretches a site's seasonal fAPAR cycle (log of the "
         "amplitude gain)",
         "the product with the highest values also has the weakest seasonal variation",
         ("martinez2013fapar",), "observation"),
    Dial("gpp_scale_sd", "-",
         "a site's GPP_obs is scaled by the lack of energy-balance closure and the level of "
         "its flux partitioning (log of the scale)",
         "turbulent fluxes at FLUXNET sites close the energy balance to about 80 % on "
         "average, differently at each site; whether CO2 fluxes are under- or overestimated "
         "depends on the site",
         ("wilson2002closure", "liu2006closure"), "observation"),
    Dial("partition_sd", "-",
         "the respiration a partitioning method extrapolates with a wrong temperature "
         "sensitivity ends up in GPP_obs, more in warm seasons (share of mean GPP)",
         "partitioning methods differ by up to 10 % in GPP at most sites, more at some; "
         "systematic errors dominate the uncertainty of annual GPP",
         ("desai2008partitioning", "lasslop2010partitioning"), "observation"),
    Dial("record_min_share", "-",
         "flux records differ in length (shortest record as a share of the years)",
         "FLUXNET2015 holds 1532 site-years at 212 sites, about 7 years per site, many "
         "sites far fewer",
         ("pastorello2020",), "identifiability"),
    Dial("gap_share", "-",
         "instrument failures and rejected low-turbulence periods leave gap-filled days "
         "that fail the good-quality rule (mean share of such days)",
         "eddy covariance records cover about 65 % of the half-hours of a year on average",
         ("falge2001gaps",), "identifiability"),
)

#: Each dial's neutral value: the smooth world's (where it does nothing).
NEUTRAL: dict[str, float] = {f.name: f.default for f in dataclasses.fields(World)
                             if f.name in _RANGES}

#: Groups of dials that move together in :meth:`World.scaled` (and the pay-off sweep):
#: ``parameters`` (the spread of the truth), ``heterogeneity`` (its feature-driven part
#: only), ``observation`` (the persistent biases), ``identifiability`` (records and gaps) and
#: ``equifinality`` (observation and identifiability: what makes calibrated vectors drift
#: along their trade-offs) and ``all``.
GROUPS: dict[str, tuple[str, ...]] = {
    "parameters": ("feature_spread", "within_pft", "site_spread"),
    "heterogeneity": ("feature_spread", "within_pft"),
    "observation": ("fapar_offset_sd", "fapar_gain_sd", "gpp_scale_sd", "partition_sd"),
    "identifiability": ("record_min_share", "gap_share"),
    "equifinality": ("fapar_offset_sd", "fapar_gain_sd", "gpp_scale_sd", "partition_sd",
                     "record_min_share", "gap_share"),
    "all": tuple(_RANGES),
}


def dial_names(dials: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The dials a name stands for: a group of :data:`GROUPS`, one dial, or several.

    Raises:
        ValueError: naming an unknown dial or group and the known ones.
    """
    if isinstance(dials, str):
        if dials in GROUPS:
            return GROUPS[dials]
        dials = (dials,)
    unknown = [d for d in dials if d not in _RANGES]
    if unknown:
        raise ValueError(f"dial(s) {unknown}: expected dials {list(_RANGES)} or groups "
                         f"{list(GROUPS)}")
    return tuple(dials)


#: The world of a dataset whose settings name none: the smooth world (so every dataset made
#: before worlds existed is one of it).
DEFAULT_WORLD = "smooth"

#: Every dial, in :data:`DIALS` order (what the ``paper`` world scales together).
ALL_DIALS: tuple[str, ...] = tuple(d.name for d in DIALS)

#: The world at the published values of :data:`DIALS` (each dial's anchor): the spread of the
#: parameters as large as measured across flux sites (C3 maximum light-use efficiency with a
#: coefficient of variation of 0.21 against the anchor's 0.22; optimum temperature with a
#: standard deviation of 6.0 degC against 6), more of it inside the PFTs and driven by
#: features, the unexplained part keeping the smooth world's share of it; fAPAR products off
#: by 0.1 and their amplitude by a fifth; GPP scales and partitioning errors of a tenth;
#: records of 20 % to all of the years and a quarter of the days gap-filled.
LITERATURE = World(
    "literature",
    "every dial at its published value (see the data chapter's table of dials)",
    feature_spread=1.0, within_pft=1.5, site_spread=1.35, fapar_offset_sd=0.10,
    fapar_gain_sd=0.20, gpp_scale_sd=0.10, partition_sd=0.10, record_min_share=0.20,
    gap_share=0.25)

#: The factor by which the ``paper`` world multiplies the spread of the parameters of
#: :data:`LITERATURE` (every feature term, within-PFT term and unexplained site term alike,
#: :meth:`World.multiplied`); the observation biases, record lengths and gaps, which are
#: measured, stay at their published values. Set by ``benchmarks/set_paper_world.py`` at the
#: demo size (196 sites x 8 years, demo settings; its log is in ``benchmarks/RESULTS.md``):
#: the smallest factor tried at which each of the ten parameter baselines is positive in
#: daily NSE at no more than 41 % of the sites (the paper's Figure 2) while site
#: calibration's median in-sample daily NSE stays within 0.03 of the world's noise ceiling.
#: An earlier design multiplied the observation biases as well (k = 3, then 3.75): it met the
#: baselines' target only with calibration 0.04-0.07 below the ceiling, because multiplied
#: biases make records the LUE model cannot fit (a fAPAR product clipped at its floor for a
#: whole record, partitioning errors of most of a site's mean GPP).
PAPER_FACTOR = 6.0

#: The named worlds (see the module docstring); :func:`register_world` adds more.
WORLDS: dict[str, World] = {
    "smooth": World(
        "smooth",
        "the world as first built: small, smooth parameter variation and random noise only"),
    "literature": LITERATURE,
    "paper": LITERATURE.multiplied(GROUPS["parameters"], PAPER_FACTOR, name="paper").replace(
        description="the literature world with the spread of its parameters multiplied until "
                    "the ten parameter baselines fail as often as on the paper's real sites"),
}


def register_world(world: World) -> World:
    """Add a named world to :data:`WORLDS` (a name is given once).

    Raises:
        ValueError: when a different world already has that name.
    """
    have = WORLDS.get(world.name)
    if have is not None and have != world:
        raise ValueError(f"world {world.name!r} is already registered with other dials")
    WORLDS[world.name] = world
    return world


def world_names() -> list[str]:
    """The names of the registered worlds."""
    return list(WORLDS)


def get_world(world: str | World | Mapping[str, Any] | None) -> World:
    """A world by name, a :class:`World` as it is, or one from :meth:`World.to_dict`'s dict
    (None: the default world).

    Raises:
        ValueError: for an unknown name (naming the known ones).
    """
    if world is None:
        return WORLDS[DEFAULT_WORLD]
    if isinstance(world, World):
        return world
    if isinstance(world, Mapping):
        return world_from_dict(world)
    if world not in WORLDS:
        raise ValueError(f"world {world!r}: expected one of {world_names()}")
    return WORLDS[world]


def world_from_dict(record: Mapping[str, Any]) -> World:
    """The world :meth:`World.to_dict` describes.

    Raises:
        ValueError: naming unknown fields.
    """
    fields = {f.name for f in dataclasses.fields(World)}
    unknown = sorted(set(record) - fields)
    if unknown:
        raise ValueError(f"world record: unknown field(s) {unknown}; expected {sorted(fields)}")
    return World(**dict(record))


def dial_table(world: str | World | Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The table of dials (the data chapter's): one row per dial with its group, unit, the
    value in ``world`` (default: ``paper``), in the smooth and the literature world, the
    mechanism, the anchor and the citation keys.

    Returns:
        A list of rows (dicts), in :data:`DIALS` order.
    """
    w = get_world(world if world is not None else "paper")
    return [{"dial": d.name, "group": d.group, "unit": d.unit, "this world": getattr(w, d.name),
             "smooth": NEUTRAL[d.name], "literature": getattr(LITERATURE, d.name),
             "mechanism": d.mechanism, "anchor": d.anchor,
             "citations": ", ".join(d.citations)} for d in DIALS]


def world_indicators(truth: pd.DataFrame, sites: pd.DataFrame, site_day: pd.DataFrame,
                     c4_sites: Sequence[str] = ()) -> dict[str, float]:
    """What a world's dials did to a generated dataset, in the numbers of its anchors.

    Args:
        truth: The true parameters (``site`` + the 13 columns).
        sites: The sites table (``site``, ``PFT``).
        site_day: The site-day table (``GPP_obs`` and the QC columns).
        c4_sites: The C4 crop sites (``truth.json``'s ``world.c4_sites``), left out of the
            spread compared with a C3 anchor.

    Returns:
        ``eps_max_cv_c3`` (coefficient of variation of the true maximum light-use efficiency
        over the C3 sites: the anchor of ``feature_spread``), ``eps_max_cv_within_pft`` (its
        median over PFTs), ``eps_max_pft_r2`` (the share of its variance the PFT means
        explain), ``topt_sd`` and ``topt_sd_within_pft`` (degC), ``good_day_share`` (days
        that pass the good-quality rule: the days calibration and assessment use) and
        ``good_days_per_site`` (their mean number per site).
    """
    from lue_spie.data.io import good_days

    t = truth.set_index("site")
    pft = sites.set_index("site").loc[t.index, "PFT"]
    eps, topt = t["eps_max"], t["Topt"]
    c3 = eps[~eps.index.isin(list(c4_sites))]
    within = eps.groupby(pft).std() / eps.groupby(pft).mean()
    resid = eps - eps.groupby(pft).transform("mean")
    return {
        "eps_max_cv_c3": float(c3.std() / c3.mean()),
        "eps_max_cv_within_pft": float(within.median()),
        "eps_max_pft_r2": float(1.0 - resid.var() / eps.var()),
        "topt_sd": float(topt.std()),
        "topt_sd_within_pft": float(topt.groupby(pft).std().median()),
        "good_day_share": float(good_days(site_day).mean()),
        "good_days_per_site": float(good_days(site_day).groupby(site_day["site"]).sum().mean()),
    }


def world_sentences(world: str | World | Mapping[str, Any] | None) -> dict[str, str]:
    """Two sentences for the book's introduction about a dataset's world.

    Returns:
        ``world_sentence`` (which world the build ran on, what its dials do) and
        ``world_levels`` (what that means for the levels of the methods' scores next to the
        paper's).
    """
    w = get_world(world)
    if w.dials() == NEUTRAL:
        return {
            "world_sentence": f"Its virtual world is `{w.name}`: the parameters vary little "
                              "within a plant functional type and GPP is observed with random "
                              "noise only (the data chapter's dials).",
            "world_levels": "In such a world a method with roughly the right parameters fits "
                            "most sites, so every method's level is higher than on real "
                            "towers; the `paper` world is the one whose dials make the "
                            "baselines fail about as often as on the paper's sites.",
        }
    if w.name == "paper" and w.dials() == WORLDS["paper"].dials():
        return {
            "world_sentence": "Its virtual world is `paper`: the literature world's dials with "
                              "the spread of the parameters between sites multiplied by "
                              f"{PAPER_FACTOR:g}, the factor chosen by a procedure "
                              "that reads only site calibration and the ten parameter "
                              "baselines, never SPIE, to make the baselines fail about as often "
                              "as on the paper's sites (its Figure 2; the data chapter's "
                              "dials).",
            "world_levels": "The baselines' shares of sites with a positive NSE were tuned "
                            "toward the paper's when the world was set; the table below gives "
                            "this run's next to the paper's, and where a baseline ends above "
                            "the paper's level it says so. SPIE's share and median are not "
                            "tuned: they are measured in this world, a test of the paper's "
                            "claim rather than a setting.",
        }
    return {
        "world_sentence": f"Its virtual world is `{w.name}` (the data chapter lists its dials "
                          "next to those of the smooth and the literature world).",
        "world_levels": "Its dials set how far the levels of the methods' scores can be "
                        "compared with the paper's; the `paper` world is the one set to make "
                        "the baselines fail about as often as on the paper's sites.",
    }

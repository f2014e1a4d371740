"""The virtual FLUXNET: a seeded generator of sites, weather, vegetation, true parameters and
observed GPP that writes the same tidy tables as the real FLUXNET reader (SPEC section 6).

One job per module: :mod:`~lue_spie.data.virtual.sites` (sites, PFT/Koeppen shares,
coverage, climates, crops), :mod:`~lue_spie.data.virtual.weather` (daily weather),
:mod:`~lue_spie.data.virtual.drawn_features` (soil and N/P deposition),
:mod:`~lue_spie.data.virtual.soil_water` (bucket capacity, irrigation, W),
:mod:`~lue_spie.data.virtual.vegetation` (FAPAR phenology, NDVI),
:mod:`~lue_spie.data.virtual.truth` (the true parameters and their drivers),
:mod:`~lue_spie.data.virtual.observe` (GPP_obs, noise, structural error, QC and gaps),
:mod:`~lue_spie.data.virtual.series` (AR(1) noise and smoothing they share) and
:mod:`~lue_spie.data.virtual.generator` (the orchestration: :func:`make_tables`,
:func:`generate`, ``truth.json``).
"""

from lue_spie.data.virtual.generator import (
    GENERATOR_ID,
    GENERATOR_VERSION,
    VirtualFluxnet,
    generate,
    make_tables,
)
from lue_spie.data.virtual.observe import NOISE, STRUCTURAL_ERROR
from lue_spie.data.virtual.sites import CLIMATES, COVERAGE, KOEPPEN_BY_PFT, PFT_SHARES
from lue_spie.data.virtual.truth import TRUTH, truth_parameters
from lue_spie.data.virtual.vegetation import PHENOLOGY

__all__ = [
    "GENERATOR_VERSION", "GENERATOR_ID", "PFT_SHARES", "KOEPPEN_BY_PFT", "COVERAGE", "CLIMATES",
    "PHENOLOGY", "TRUTH", "NOISE", "STRUCTURAL_ERROR", "VirtualFluxnet", "make_tables",
    "generate", "truth_parameters",
]

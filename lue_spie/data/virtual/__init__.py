"""The virtual FLUXNET: a seeded generator of sites, weather, vegetation, true parameters and
observed GPP that writes the same tidy tables as the real FLUXNET reader (SPEC section 6)."""

from lue_spie.data.virtual.generator import (
    CLIMATES,
    COVERAGE,
    GENERATOR_VERSION,
    KOEPPEN_BY_PFT,
    NOISE,
    PFT_SHARES,
    PHENOLOGY,
    STRUCTURAL_ERROR,
    TRUTH,
    VirtualFluxnet,
    _es_daily_cycle,
    _truth_meta,
    generate,
    make_tables,
    truth_parameters,
)

__all__ = [
    "GENERATOR_VERSION", "PFT_SHARES", "KOEPPEN_BY_PFT", "COVERAGE", "CLIMATES", "PHENOLOGY",
    "TRUTH", "NOISE", "STRUCTURAL_ERROR", "VirtualFluxnet", "make_tables", "generate",
    "truth_parameters", "_es_daily_cycle", "_truth_meta",
]

"""The settings of the maps of a virtual continent: one frozen object, every knob documented."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["MapsSettings", "DEFAULT_METHODS", "TRUTH"]

#: The methods mapped by default: SPIE and three baselines of three families.
DEFAULT_METHODS: tuple[str, ...] = ("SPIE", "PFTmean", "OPT-PFT", "sRF")
#: The label of the true parameters and GPP beside the methods' (the store's ``method``
#: coordinate, the tables' ``method`` column).
TRUTH = "truth"


@dataclasses.dataclass(frozen=True)
class MapsSettings:
    """How the continent is drawn, stored and mapped.

    Attributes:
        lat_min: Southern edge of the box [degrees north].
        lat_max: Northern edge of the box [degrees north].
        lon_min: Western edge of the box [degrees east].
        lon_max: Eastern edge of the box [degrees east].
        resolution: Size of a grid cell [degrees]; the box's spans must be multiples of it.
            The same seed draws the same continent at every resolution.
        chunk: Cells per side of a chunk (a square of the grid): the unit of work, of
            resuming and of the Zarr store's chunks in latitude and longitude; memory grows
            with it, not with the continent.
        time_chunk: Days per Zarr chunk along time.
        methods: The methods whose parameters are mapped: SPIE (its fold networks
            averaged), OPT-All and OPT-PFT (their fold vectors averaged), or a method that
            learns from site-calibrated vectors (PFTmean, Climmean, PFTmed, Climmed, sRF, mRF,
            mNN: refitted on all towers).
        world: The generator's world the continent is drawn in: ``""`` (the default) takes
            the world of the towers' dataset; a name must be that world's.
        n_years: Years of the cells' daily record (None: as many as the towers', from the
            towers' first year, so that features mean the same at cells and towers).
        distance_bins: Bins of the dissimilarity to the towers in the error-by-distance
            table (equal numbers of cells).
        identifiable_r2: A parameter counts as identifiable when the site calibration
            recovers it at the towers with at least this R2 against the truth.
        seed: Seed of the continent (its random fields and every cell's own streams).
        device: Where the LUE model runs on the cells (``auto``, ``cpu``, ``cuda``).
    """

    lat_min: float = 0.0
    lat_max: float = 70.0
    lon_min: float = -25.0
    lon_max: float = 50.0
    resolution: float = 0.5
    chunk: int = 16
    time_chunk: int = 365
    methods: tuple[str, ...] = DEFAULT_METHODS
    world: str = ""
    n_years: int | None = None
    distance_bins: int = 10
    identifiable_r2: float = 0.3
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("chunk", "time_chunk", "distance_bins"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or int(value) < 1:
                raise ValueError(f"maps: {name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.n_years is not None and (int(self.n_years) != self.n_years
                                         or int(self.n_years) < 1):
            raise ValueError(f"maps: n_years must be a positive integer or None, got "
                             f"{self.n_years!r}")
        if not 0.0 <= float(self.identifiable_r2) <= 1.0:
            raise ValueError(f"maps: identifiable_r2 must lie in [0, 1], got "
                             f"{self.identifiable_r2!r}")
        methods = tuple(str(m) for m in self.methods)
        if not methods:
            raise ValueError("maps: give at least one method to map")
        if len(set(methods)) != len(methods) or TRUTH in methods:
            raise ValueError(f"maps: methods must be distinct method names, got {methods}")
        object.__setattr__(self, "methods", methods)
        if int(self.seed) != self.seed or int(self.seed) < 0:
            raise ValueError(f"maps: seed must be a non-negative integer, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly settings (for records and keys)."""
        d = dataclasses.asdict(self)
        d["methods"] = list(self.methods)
        return d

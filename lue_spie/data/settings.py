"""The settings of the data step: which dataset the book runs on (SPEC section 6)."""

from __future__ import annotations

import dataclasses

__all__ = ["DataSettings"]


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """Which dataset the chapters share: a virtual FLUXNET, or the user's FLUXNET files.

    Attributes:
        source: ``"virtual"`` (generate a virtual FLUXNET) or the folder of a user's real
            FLUXNET2015 FULLSET daily files (see the book's real-data page).
        n_sites: Virtual FLUXNET: number of sites.
        n_years: Virtual FLUXNET: years per site.
        start_year: Virtual FLUXNET: first calendar year of the record.
        structural_error: Virtual FLUXNET: add a process the LUE model lacks to GPP_obs.
        world: Virtual FLUXNET: the world's dials by name (``smooth``: small, smooth
            parameter variation and random noise only; ``paper``: tuned so that the
            baselines fail about as often as on the paper's real sites; see
            :mod:`lue_spie.data.virtual.worlds`).
        sites_file: Real data: the site table (None: ``sites.csv`` in the data folder).
        fapar_file: Real data: the FAPAR table (None: the one ``fapar*.csv`` in the folder).
        features_file: Real data: an optional site-feature table.
        ndvi_file: Real data: an optional NDVI table (None: NDVI from FAPAR).
        missing_fapar: Real data: ``"skip"`` sites without FAPAR, or ``"error"``.
    """

    source: str = "virtual"
    n_sites: int = 24
    n_years: int = 3
    start_year: int = 2005
    structural_error: bool = False
    world: str = "smooth"
    sites_file: str | None = None
    fapar_file: str | None = None
    features_file: str | None = None
    ndvi_file: str | None = None
    missing_fapar: str = "skip"

    def __post_init__(self) -> None:
        if self.missing_fapar not in ("skip", "error"):
            raise ValueError(f"DataSettings.missing_fapar = {self.missing_fapar!r}: expected "
                             "'skip' or 'error'")
        if self.source == "virtual":
            from lue_spie.data.virtual.worlds import world_names

            if self.world not in world_names():
                raise ValueError(f"DataSettings.world = {self.world!r}: expected one of "
                                 f"{world_names()}")
        if self.source == "virtual" and (self.n_sites < 1 or self.n_years < 1):
            raise ValueError(f"DataSettings: a virtual FLUXNET needs n_sites >= 1 and "
                             f"n_years >= 1, got {self.n_sites} and {self.n_years}")

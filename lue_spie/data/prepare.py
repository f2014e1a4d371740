"""The dataset step of the book: write a virtual FLUXNET or read the user's FLUXNET files.

Both go through the data-source interface (:mod:`lue_spie.data.sources`): ``"virtual"`` is
the source of that name, a folder is a :class:`~lue_spie.data.sources.FluxnetFilesSource`
that finds its site and FAPAR tables in the folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lue_spie.data.sources import DataSource, FluxnetFilesSource, get_source

__all__ = ["prepare_dataset"]


def prepare_dataset(
    data_source: str,
    out: str | os.PathLike,
    *,
    n_sites: int = 24,
    n_years: int = 3,
    seed: int = 0,
    start_year: int = 2005,
    structural_error: bool = False,
    sites: Sequence[str] | None = None,
    years: Sequence[int] | None = None,
    sites_file: str | os.PathLike | None = None,
    fapar_file: str | os.PathLike | None = None,
    features_file: str | os.PathLike | None = None,
    ndvi_file: str | os.PathLike | None = None,
    missing_fapar: str = "skip",
) -> Path:
    """Write the dataset folder of the data chapter: a virtual FLUXNET or the user's files.

    Args:
        data_source: ``"virtual"``, or a folder with FLUXNET2015 FULLSET daily files.
        out: The dataset folder to write.
        n_sites, n_years, seed, start_year, structural_error: The virtual FLUXNET
            (:class:`lue_spie.data.sources.VirtualFluxnetSource`, which writes what
            :func:`lue_spie.data.virtual.generate` writes); unused for real data.
        sites, years: Real data only: read just these sites and years (virtual data are
            generated whole; later chapters select with their own ``sites``/``years``).
        sites_file: Real data: site table (default ``DATA_SOURCE/sites.csv``).
        fapar_file: Real data: FAPAR table (default: the one ``fapar*.csv`` in the folder).
        features_file, ndvi_file: Real data: optional feature and NDVI tables.
        missing_fapar: Real data: ``"skip"`` sites without FAPAR, or ``"error"``.

    Returns:
        The dataset folder.

    Raises:
        FileNotFoundError: for a missing folder or file, naming it.
        ValueError: when the FAPAR table cannot be found unambiguously.
    """
    out = Path(out)
    source: DataSource
    if data_source == "virtual":
        source = get_source("virtual", n_sites=int(n_sites), n_years=int(n_years),
                            seed=int(seed), start_year=int(start_year),
                            structural_error=bool(structural_error))
    else:
        source = FluxnetFilesSource.from_folder(
            data_source, sites_file=sites_file, fapar_file=fapar_file, features=features_file,
            ndvi=ndvi_file, years=None if years is None else [int(y) for y in years],
            site_ids=None if sites is None else list(sites), missing_fapar=missing_fapar)
    return source.write(out)

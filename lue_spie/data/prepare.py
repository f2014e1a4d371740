"""The dataset step of the book: write a virtual FLUXNET or read the user's FLUXNET files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

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
            (:func:`lue_spie.data.virtual.generate`); unused for real data.
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
    if data_source == "virtual":
        from lue_spie.data import virtual

        return virtual.generate(int(n_sites), int(n_years), int(seed), out,
                                  structural_error=bool(structural_error),
                                  start_year=int(start_year))
    from lue_spie.data.fluxnet import build_fluxnet_dataset

    src = Path(data_source)
    if not src.is_dir():
        raise FileNotFoundError(f"data_source {src}: no such folder (expected 'virtual' or a "
                                "folder of FLUXNET2015 FULLSET_DD files)")
    sites_csv = Path(sites_file) if sites_file else src / "sites.csv"
    if not sites_csv.is_file():
        raise FileNotFoundError(f"{sites_csv}: no site table; pass sites_file (see the book's "
                                "page 'Using real FLUXNET files')")
    if fapar_file:
        fapar = Path(fapar_file)
    else:
        found = sorted(src.glob("fapar*.csv"))
        if len(found) != 1:
            raise ValueError(f"{src}: expected exactly one fapar*.csv FAPAR table, found "
                             f"{[f.name for f in found]}; pass fapar_file")
        fapar = found[0]
    return build_fluxnet_dataset(
        src, fapar, sites_csv, out, features=features_file, ndvi=ndvi_file,
        years=None if years is None else [int(y) for y in years],
        site_ids=None if sites is None else list(sites), missing_fapar=missing_fapar)

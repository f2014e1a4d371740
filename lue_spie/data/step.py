"""The data step of the book: write a virtual FLUXNET or read the user's FLUXNET files.

Both go through the data-source interface (:mod:`lue_spie.data.sources`): ``"virtual"`` is
the source of that name, a folder is a :class:`~lue_spie.data.sources.FluxnetFilesSource`
that finds its site and FAPAR tables in the folder. :func:`run` writes ``layout.data``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lue_spie.data.settings import DataSettings
from lue_spie.data.sources import DataSource, FluxnetFilesSource, get_source
from lue_spie.layout import Layout

__all__ = ["run"]


def run(layout: Layout, settings: DataSettings | None = None, *, seed: int = 0,
        sites: Sequence[str] | None = None, years: Sequence[int] | None = None) -> Path:
    """Write the dataset folder of the book (``layout.data``): a virtual FLUXNET or the
    user's files.

    Args:
        layout: Where the dataset goes.
        settings: Which dataset (default: :class:`DataSettings` with its defaults, a small
            virtual FLUXNET).
        seed: The virtual FLUXNET's seed (unused for real data).
        sites, years: Real data only: read just these sites and years (virtual data are
            generated whole; later chapters select with their own ``sites``/``years``).

    Returns:
        The dataset folder.

    Raises:
        FileNotFoundError: for a missing folder or file, naming it.
        ValueError: when the FAPAR table cannot be found unambiguously.
    """
    s = settings or DataSettings()
    out = Path(layout.data.folder)
    source: DataSource
    if s.source == "virtual":
        source = get_source("virtual", n_sites=int(s.n_sites), n_years=int(s.n_years),
                            seed=int(seed), start_year=int(s.start_year),
                            structural_error=bool(s.structural_error), world=str(s.world))
    else:
        source = FluxnetFilesSource.from_folder(
            s.source, sites_file=s.sites_file, fapar_file=s.fapar_file,
            features=s.features_file, ndvi=s.ndvi_file,
            years=None if years is None else [int(y) for y in years],
            site_ids=None if sites is None else list(sites), missing_fapar=s.missing_fapar)
    return source.write(out)

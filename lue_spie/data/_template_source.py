"""Template for a third data source: copy this file to start one (it registers nothing).

A data source (:mod:`lue_spie.data.sources`) writes the tidy dataset folder every later step
reads. The class below is a complete, working example: it reads two CSV tables that are
already in the contract's columns (a ``site_day`` table and a ``sites`` table, see
:mod:`lue_spie.data.schema`) and writes them as a dataset folder. A real third source (e.g.
ICOS or AmeriFlux files) keeps its shape and replaces the reading.

Why the template registers nothing: a class registers itself only when its class statement
gives ``name=`` (``class MySource(DataSource, name="mine")``); :class:`_TemplateSource` has
no name, so importing this module leaves :func:`lue_spie.data.sources.registered_sources`
unchanged and ``get_source`` cannot build it by accident. It is still real code rather than
a code block in a docstring, so that ruff and the test suite check it
(``tests/unit/test_data_sources.py`` gives a subclass of it a name and loads what it writes).

To add a source:

1. Copy this file to ``lue_spie/data/<yours>.py`` (no leading underscore).
2. Rename :class:`_TemplateSource` (e.g. ``IcosSource``) and give it its registry name in the
   class statement: ``class IcosSource(DataSource, name="icos"):``.
3. Make the dataclass fields the settings a user chooses (paths, years, sites ...): they are
   the keyword arguments of ``get_source("icos", ...)`` and are recorded in the provenance
   through :meth:`~lue_spie.data.sources.DataSource.settings`. Keep them JSON-friendly.
4. Rewrite :meth:`_TemplateSource.write`: build the two tables in the contract's columns,
   units and dtypes (``schema.coerce_site_day`` / ``schema.coerce_sites`` set the dtypes and
   order), then let :func:`lue_spie.data.io.write_dataset` validate and write them with a
   provenance record. The ``sites.source`` column must be one of ``schema.SOURCES``
   (``"fluxnet"`` for tower data; add a value there for a new kind of origin).
5. Add ``"lue_spie.data.<yours>"`` to :data:`lue_spie.data.sources.SOURCE_MODULES`, so that
   ``get_source`` and ``registered_sources`` find the source without an import by hand.
6. Add a test that writes a tiny folder and loads it with
   :func:`lue_spie.data.io.load_dataset` (see ``tests/unit/test_data_sources.py``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pandas as pd

from lue_spie import store
from lue_spie.data import schema
from lue_spie.data.io import write_dataset
from lue_spie.data.sources import DataSource

__all__: list[str] = []


@dataclasses.dataclass(frozen=True)
class _TemplateSource(DataSource):  # a copy adds: name="<yours>"
    """Tidy CSV tables already in the contract's columns (an example source).

    Attributes:
        site_day_csv: The site-day table (CSV: ``site``, ``date`` and the site-day columns
            of :mod:`lue_spie.data.schema`).
        sites_csv: The sites table (CSV: every sites column; feature values may be empty).
    """

    site_day_csv: str | os.PathLike[str]
    sites_csv: str | os.PathLike[str]

    def write(self, out: str | os.PathLike[str], *, progress: bool = False) -> Path:
        """Read both tables, set the contract's dtypes, validate and write the folder.

        Args:
            out: The dataset folder (created when missing).
            progress: Unused (reading two tables needs no progress bar); a source that loops
                over sites shows one when it is True.

        Raises:
            FileNotFoundError: for a missing table.
            ValueError: when a table violates the schema (naming the file, column and
                problem); nothing is written then.
        """
        site_day = schema.coerce_site_day(pd.read_csv(self.site_day_csv, dtype={"site": str}))
        sites = schema.coerce_sites(pd.read_csv(self.sites_csv, dtype={"site": str}))
        provenance = store.make_provenance(
            f"data.{self.name or 'template'}", settings=self.settings(),
            inputs={"site_day": self.site_day_csv, "sites": self.sites_csv})
        return write_dataset(out, site_day, sites, provenance=provenance)

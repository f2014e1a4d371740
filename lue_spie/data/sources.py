"""Data sources: the one interface through which a dataset folder is made.

Every later step reads one tidy dataset folder (:mod:`lue_spie.data.io`: ``site_day.parquet``
and ``sites.parquet``, for the virtual FLUXNET also ``truth.parquet`` and ``truth.json``,
each table with its ``.provenance.json``). A :class:`DataSource` is what writes it: its
settings are constructor arguments, :meth:`DataSource.write` writes the folder and returns
it, :meth:`DataSource.settings` and :meth:`DataSource.to_dict` say what was asked for (for
provenance and for rebuilding the source with :func:`source_from_dict`).

Two sources ship with the project, both thin wrappers of the functions that did the work
before this interface existed, so their folders are byte for byte what those functions write:

- ``"virtual"`` (:class:`VirtualFluxnetSource`): the embedded virtual FLUXNET,
  :func:`lue_spie.data.virtual.generate`;
- ``"fluxnet"`` (:class:`FluxnetFilesSource`): FLUXNET2015 FULLSET daily files plus FAPAR
  and site tables, :func:`lue_spie.data.fluxnet.build_fluxnet_dataset`.

Registry: subclasses register themselves by the class keyword ``name=`` (filled by
``__init_subclass__``, as the methods do in :mod:`lue_spie.methods.base`); a subclass without
``name=`` is an intermediate class and is not registered. :func:`get_source` builds a source
by name, :func:`registered_sources` lists them. A third source is one module: copy
``lue_spie/data/_template_source.py`` (its docstring says how) and add the module to
:data:`SOURCE_MODULES` so that the registry finds it without an import by hand.

The book's data chapter (:func:`lue_spie.data.step.run`) and ``lue-spie data
synth`` / ``lue-spie data fluxnet`` (:mod:`lue_spie.data.cli`) go through this interface.
"""

from __future__ import annotations

import abc
import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from lue_spie.layout import FluxnetFolder
from lue_spie.registry import Registry

__all__ = [
    "SOURCE_MODULES",
    "DataSource",
    "VirtualFluxnetSource",
    "FluxnetFilesSource",
    "get_source",
    "source_class",
    "source_from_dict",
    "registered_sources",
]

#: Modules that hold further data sources (each registers its classes on import); the two
#: built-in sources live in this module. Add the module of a new source here.
SOURCE_MODULES: tuple[str, ...] = ()

def _load_all() -> None:
    import importlib

    for module in SOURCE_MODULES:
        importlib.import_module(module)


#: The data sources by name: the built-in ones first, others after, by name.
REGISTRY: Registry[DataSource] = Registry(
    "data source", load=_load_all,
    order=lambda name, cls: (("virtual", "fluxnet", name).index(name), name))


class DataSource(abc.ABC):
    """Base class of the data sources (see the module docstring).

    A subclass is usually a frozen dataclass whose fields are its settings; it implements
    :meth:`write` and registers with ``class MySource(DataSource, name="mine")``.

    Class attributes:
        name: The registry name (set by the class keyword ``name``).
    """

    name: ClassVar[str] = ""

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is None:
            return  # an intermediate class (or a template): not registered
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"data source {cls.__qualname__}: name must be a non-empty "
                             f"string, got {name!r}")
        abstract = sorted(m for m in DataSource.__abstractmethods__
                          if getattr(getattr(cls, m, None), "__isabstractmethod__", False))
        if abstract:
            raise TypeError(f"data source {name!r} ({cls.__qualname__}) does not implement "
                            f"{', '.join(abstract)}")
        REGISTRY.add(name, cls)
        cls.name = name

    # -- the interface -----------------------------------------------------------------------
    @abc.abstractmethod
    def write(self, out: str | os.PathLike[str], *, progress: bool = False) -> Path:
        """Write the dataset folder ``out`` and return its path.

        Args:
            out: The dataset folder (created when missing).
            progress: Show a progress bar.

        Returns:
            The folder, ready for :func:`lue_spie.data.io.load_dataset`.
        """

    def settings(self) -> dict[str, Any]:
        """The source's settings, JSON-friendly (paths as strings, sequences as lists): by
        default the init fields of a dataclass; a source that is no dataclass overrides
        this."""
        if dataclasses.is_dataclass(self):
            return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)
                    if f.init}
        return {}

    def to_dict(self) -> dict[str, Any]:
        """``{"source": name, "settings": settings()}``, the record a provenance keeps;
        :func:`source_from_dict` builds the source again from it."""
        return {"source": self.name, "settings": self.settings()}


def _jsonable(v: Any) -> Any:
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


# --------------------------------------------------------------------------------------------
# The two built-in sources
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VirtualFluxnetSource(DataSource, name="virtual"):
    """The embedded virtual FLUXNET (:mod:`lue_spie.data.virtual`).

    Writes what :func:`lue_spie.data.virtual.generate` writes, with the same defaults.

    Attributes:
        n_sites: Number of sites (>= 14 guarantees every PFT and Koeppen type).
        n_years: Years per site.
        seed: Random seed; equal settings give byte-identical tables.
        start_year: First calendar year.
        structural_error: Add processes the LUE model lacks to GPP_obs.
        world: The world's dials by name (:data:`lue_spie.data.virtual.worlds.WORLDS`).
    """

    n_sites: int = 196
    n_years: int = 10
    seed: int = 0
    start_year: int = 2005
    structural_error: bool = False
    world: str = "smooth"

    def write(self, out: str | os.PathLike[str], *, progress: bool = False) -> Path:
        """:func:`lue_spie.data.virtual.generate` into ``out`` (see :meth:`DataSource.write`).

        Raises:
            ValueError: for invalid settings, or when ``out`` (or a parent of it) is an
                existing file (checked before generating).
        """
        from lue_spie.data.virtual import generate

        return generate(self.n_sites, self.n_years, self.seed, out,
                        structural_error=self.structural_error, start_year=self.start_year,
                        progress=progress, world=self.world)


@dataclasses.dataclass(frozen=True)
class FluxnetFilesSource(DataSource, name="fluxnet"):
    """FLUXNET2015 FULLSET daily files with FAPAR and site tables
    (:mod:`lue_spie.data.fluxnet`).

    Writes what :func:`lue_spie.data.fluxnet.build_fluxnet_dataset` writes; the settings are
    its arguments (see :func:`lue_spie.data.fluxnet.read_fluxnet_dataset`), and all of them,
    defaults included, go to the provenance records. :meth:`from_folder` finds the site and
    FAPAR tables in the folder of the flux files, as the book's data chapter does.

    Attributes:
        src: Folder with the ``FLX_*_FULLSET_DD_*.csv`` files.
        fapar: FAPAR table (CSV).
        sites_csv: Site table (CSV).
        features: Optional feature table (CSV).
        ndvi: Optional NDVI table (CSV); without it NDVI is estimated from FAPAR.
        years: Calendar years to keep (None: all).
        site_ids: Sites to read (None: every site with a file).
        missing_fapar: ``"error"`` or ``"skip"`` for a site without FAPAR.
        min_swc_coverage: Soil-moisture coverage below which a site's W comes from the bucket.
        record_features: Fill the BIO, aridity and VIF features the feature table lacks from
            the flux record.
    """

    src: str | os.PathLike[str]
    fapar: str | os.PathLike[str]
    sites_csv: str | os.PathLike[str]
    features: str | os.PathLike[str] | None = None
    ndvi: str | os.PathLike[str] | None = None
    years: Sequence[int] | None = None
    site_ids: Sequence[str] | None = None
    missing_fapar: str = "error"
    min_swc_coverage: float = 0.8
    record_features: bool = True

    def __post_init__(self) -> None:
        # Immutable sequences, so that a source is a value (equal settings, equal sources).
        if self.years is not None:
            object.__setattr__(self, "years", tuple(int(y) for y in self.years))
        if self.site_ids is not None:
            object.__setattr__(self, "site_ids", tuple(str(s) for s in self.site_ids))

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str], *,
                    sites_file: str | os.PathLike[str] | None = None,
                    fapar_file: str | os.PathLike[str] | None = None,
                    **settings: Any) -> FluxnetFilesSource:
        """The source of a folder of FULLSET_DD files that also holds the site table
        (``sites.csv``) and one FAPAR table (``fapar*.csv``), unless given.

        Args:
            folder: Folder with the FULLSET_DD files.
            sites_file: Site table (default ``FOLDER/sites.csv``).
            fapar_file: FAPAR table (default: the one ``fapar*.csv`` in the folder).
            **settings: Further settings of :class:`FluxnetFilesSource`.

        Raises:
            FileNotFoundError: for a missing folder or site table, naming it.
            ValueError: when the FAPAR table cannot be found unambiguously.
        """
        src = Path(folder)
        if not src.is_dir():
            raise FileNotFoundError(f"data_source {src}: no such folder (expected 'virtual' or "
                                    "a folder of FLUXNET2015 FULLSET_DD files)")
        sites_csv = Path(sites_file) if sites_file else FluxnetFolder(src).sites
        if not sites_csv.is_file():
            raise FileNotFoundError(f"{sites_csv}: no site table; pass sites_file (see the "
                                    "book's page 'Using real FLUXNET files')")
        if fapar_file:
            fapar = Path(fapar_file)
        else:
            found = FluxnetFolder(src).fapar_tables()
            if len(found) != 1:
                raise ValueError(f"{src}: expected exactly one {FluxnetFolder.FAPAR_PATTERN} "
                                 f"FAPAR table, found "
                                 f"{[f.name for f in found]}; pass fapar_file")
            fapar = found[0]
        return cls(src, fapar, sites_csv, **settings)

    def write(self, out: str | os.PathLike[str], *, progress: bool = False) -> Path:
        """:func:`lue_spie.data.fluxnet.build_fluxnet_dataset` into ``out`` (see
        :meth:`DataSource.write`).

        Raises:
            FileNotFoundError: for a missing input.
            ValueError: for malformed input (naming the file, column and problem).
        """
        from lue_spie.data.fluxnet import build_fluxnet_dataset

        return build_fluxnet_dataset(
            self.src, self.fapar, self.sites_csv, out, features=self.features, ndvi=self.ndvi,
            years=None if self.years is None else list(self.years),
            site_ids=None if self.site_ids is None else list(self.site_ids),
            missing_fapar=self.missing_fapar, min_swc_coverage=self.min_swc_coverage,
            record_features=self.record_features, progress=progress)


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------
def registered_sources() -> dict[str, type[DataSource]]:
    """Every registered source by name: the built-in ones first, others after, by name."""
    return REGISTRY.classes()


def source_class(name: str) -> type[DataSource]:
    """The class registered as ``name``.

    Raises:
        KeyError: naming the unknown source and the known ones.
    """
    return REGISTRY.get(name)


def get_source(name: str, **settings: Any) -> DataSource:
    """A data source by its registry name with ``settings``.

    Raises:
        KeyError: for an unknown name (naming the known ones).
        ValueError: for a setting the source does not have (naming the valid ones).
    """
    return REGISTRY.build(name, **settings)


def source_from_dict(record: Mapping[str, Any]) -> DataSource:
    """The source that :meth:`DataSource.to_dict` describes.

    Raises:
        ValueError: when ``record`` has no ``source`` name.
    """
    if "source" not in record:
        raise ValueError(f"a data source record needs a 'source' name, got keys {list(record)}")
    return get_source(str(record["source"]), **dict(record.get("settings") or {}))

"""The results folder: the name of every file and folder that a step writes, in one place.

A book build (and a user who runs the steps one by one) fills one results folder::

    RESULTS/data/                   the dataset: site_day, sites (+ truth for virtual FLUXNET)
    RESULTS/model/example/          chapter 1's small example dataset
    RESULTS/calibration/            calibration, gpp_calib, convergence; checkpoint/, chunks/
    RESULTS/extrapolation/          folds, summary; <method>/ params, gpp, fold<k>.* (+ SPIE's
                                    networks and training curves)
    RESULTS/assessment/             one table per stem (parquet + CSV), figures/, the record
    RESULTS/importance/             one table per stem (parquet + CSV), figures/, the record
    RESULTS/maps/                   the virtual continent: continent.zarr (CF), chunks/, the
                                    cells and the error tables (parquet + CSV), figures/, the
                                    record
    RESULTS/twin/                   a whole results folder again: the structural-error twin
    RESULTS/payoff/                 the pay-off sweep: points/<label>/ (each a results folder),
                                    the table (parquet + CSV), figures/, the record

Every step reads and writes through the objects below, so a name is spelled once: a
:class:`Layout` for a results folder, and one small class per step folder
(:class:`DataFiles`, :class:`CalibrationFiles`, :class:`ExtrapolationFiles` with its
:class:`MethodFiles`, :class:`AssessmentFiles`, :class:`ImportanceFiles`,
:class:`MapsFiles`). A step run from the command line with folders of the user's choosing
(``lue-spie calibrate --data D --out O``) uses the step-folder classes on those folders;
the file names inside are the same.

Tables of the assessment, the importance analysis and the maps are named by the members of
:class:`AssessmentTable`, :class:`ImportanceTable` and :class:`MapsTable` (string enums: a
member is its file stem), so the step that writes a table and every reader name it the same
way.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Layout",
    "DataFiles",
    "FluxnetFolder",
    "CalibrationFiles",
    "ExtrapolationFiles",
    "MethodFiles",
    "AssessmentFiles",
    "ImportanceFiles",
    "MapsFiles",
    "MapsTable",
    "PayoffFiles",
    "ComparisonFiles",
    "BookSources",
    "BookBuild",
    "CourseFiles",
    "AssessmentTable",
    "TablesFolder",
    "ImportanceTable",
    "PROVENANCE_SUFFIX",
    "TABLE_SUFFIX",
    "provenance_of",
    "method_folder_name",
]

#: Suffix of a table of the results (a parquet file, whose schema a reader can check).
TABLE_SUFFIX = ".parquet"

#: Suffix of the provenance record beside a table: ``X.parquet`` -> ``X.provenance.json``.
PROVENANCE_SUFFIX = ".provenance.json"


def provenance_of(table: str | Path) -> Path:
    """The provenance record that belongs to a table (``X.parquet`` -> ``X.provenance.json``),
    or to another result file (``fold0.network.pt`` -> ``fold0.network.provenance.json``)."""
    table = Path(table)
    stem = table.name.removesuffix(".parquet").removesuffix(".pt")
    return table.with_name(stem + PROVENANCE_SUFFIX)


def _fold_of(path: Path) -> int:
    return int(path.name.removeprefix("fold").split(".")[0])


def _by_fold(paths: Iterator[Path]) -> list[Path]:
    """Files named ``fold<k>.*`` whose ``k`` is a number, ordered by ``k``."""
    return sorted((p for p in paths if p.name.removeprefix("fold").split(".")[0].isdigit()),
                  key=_fold_of)


def method_folder_name(method: str) -> str:
    """The folder name of a method's results (its paper name, safe for file systems)."""
    return method.replace("/", "_")


# ---------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class DataFiles:
    """A dataset folder (:mod:`lue_spie.data`): what every later step reads."""

    folder: Path

    SITE_DAY = "site_day.parquet"
    SITES = "sites.parquet"
    TRUTH = "truth.parquet"
    TRUTH_META = "truth.json"

    @property
    def site_day(self) -> Path:
        """The tidy site-day table (forcing, GPP_obs, QC)."""
        return Path(self.folder) / self.SITE_DAY

    @property
    def sites(self) -> Path:
        """The sites table (PFT, Koeppen type, features)."""
        return Path(self.folder) / self.SITES

    @property
    def truth(self) -> Path:
        """The true parameters (virtual FLUXNET only)."""
        return Path(self.folder) / self.TRUTH

    @property
    def truth_meta(self) -> Path:
        """How the virtual world was made (generator, settings, true drivers)."""
        return Path(self.folder) / self.TRUTH_META

    def inputs(self) -> dict[str, Path]:
        """The two files every step that reads a dataset records in its provenance, by the
        names the records use."""
        return {"site_day": self.site_day, "sites": self.sites}


@dataclass(frozen=True)
class FluxnetFolder:
    """A folder of a user's real FLUXNET files (an input: ``lue-spie data fluxnet --src``, the
    book's ``data_source``): the flux files, and by default its site and FAPAR tables."""

    folder: Path

    SITES = "sites.csv"
    FAPAR_PATTERN = "fapar*.csv"

    @property
    def sites(self) -> Path:
        """The site table (unless another is named)."""
        return Path(self.folder) / self.SITES

    def fapar_tables(self) -> list[Path]:
        """The FAPAR tables in the folder (one is expected), by name."""
        return sorted(Path(self.folder).glob(self.FAPAR_PATTERN))


# --------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class CalibrationFiles:
    """A site-calibration folder (:mod:`lue_spie.calibrate`)."""

    folder: Path

    TABLE = "calibration.parquet"
    GPP_CALIB = "gpp_calib.parquet"
    CONVERGENCE = "convergence.parquet"
    CHECKPOINT_DIR = "checkpoint"
    CHECKPOINT = "checkpoint.pkl"
    CHUNKS_DIR = "chunks"
    CHUNKS_RECORD = "run.json"

    @property
    def table(self) -> Path:
        """One row per site: status, the 13 parameters, cost terms, counters, edge flags."""
        return Path(self.folder) / self.TABLE

    @property
    def gpp_calib(self) -> Path:
        """Daily GPP simulated with the calibrated parameters (the site-calib reference)."""
        return Path(self.folder) / self.GPP_CALIB

    @property
    def convergence(self) -> Path:
        """Best cost per site and generation."""
        return Path(self.folder) / self.CONVERGENCE

    @property
    def checkpoint_dir(self) -> Path:
        """The in-process run's checkpoint folder."""
        return Path(self.folder) / self.CHECKPOINT_DIR

    @property
    def chunks_dir(self) -> Path:
        """The chunked (Dask) run's folder of finished chunks."""
        return Path(self.folder) / self.CHUNKS_DIR

    @staticmethod
    def checkpoint_in(folder: str | Path) -> Path:
        """The checkpoint file of a CMA-ES run whose checkpoint folder is ``folder``."""
        return Path(folder) / CalibrationFiles.CHECKPOINT

    @staticmethod
    def chunks_record_in(folder: str | Path) -> Path:
        """The record of a chunked run (settings, data, format) in its chunks folder."""
        return Path(folder) / CalibrationFiles.CHUNKS_RECORD

    @staticmethod
    def chunk_table_in(folder: str | Path, chunk: str) -> Path:
        """A finished chunk's calibration table."""
        return Path(folder) / f"{chunk}.calibration.parquet"

    @staticmethod
    def chunk_tables_in(folder: str | Path) -> list[Path]:
        """Every finished chunk's calibration table in a chunks folder, by name."""
        return sorted(Path(folder).glob("*.calibration.parquet"))

    @staticmethod
    def chunk_convergence_in(folder: str | Path, chunk: str) -> Path:
        """A finished chunk's convergence record."""
        return Path(folder) / f"{chunk}.convergence.parquet"

    @staticmethod
    def chunk_checkpoint_dir_in(folder: str | Path, chunk: str) -> Path:
        """A running chunk's checkpoint folder."""
        return Path(folder) / chunk


# ------------------------------------------------------------------------- extrapolation
@dataclass(frozen=True)
class MethodFiles:
    """The results of one method under cross-validation (``RESULTS/extrapolation/<method>``)."""

    folder: Path

    PARAMS = "params.parquet"
    GPP = "gpp.parquet"
    WORK_DIR = "work"

    @property
    def params(self) -> Path:
        """Every fold's predicted vectors and held-out cost terms, gathered."""
        return Path(self.folder) / self.PARAMS

    @property
    def gpp(self) -> Path:
        """Every fold's daily GPP of its held-out sites, gathered."""
        return Path(self.folder) / self.GPP

    def fold_params(self, fold: int) -> Path:
        """Fold ``fold``'s predicted vectors and held-out scores (the unit's done marker)."""
        return Path(self.folder) / f"fold{int(fold)}.params.parquet"

    def fold_gpp(self, fold: int) -> Path:
        """Fold ``fold``'s daily GPP of its held-out sites."""
        return Path(self.folder) / f"fold{int(fold)}.gpp.parquet"

    def folds(self) -> list[int]:
        """The folds with a parameter table in the folder, in order."""
        return [_fold_of(p) for p in _by_fold(Path(self.folder).glob("fold*.params.parquet"))]

    @property
    def work_dir(self) -> Path:
        """Where running units keep their checkpoints (removed when they finish)."""
        return Path(self.folder) / self.WORK_DIR

    def unit_work_dir(self, folds: Iterator[int] | list[int] | tuple[int, ...]) -> Path:
        """The checkpoint folder of the unit that runs ``folds``."""
        return self.work_dir / ("folds" + "-".join(str(int(k)) for k in folds))

    # SPIE's own results beside its fold files
    def network(self, fold: int) -> Path:
        """The fitted network of fold ``fold`` (SPIE)."""
        return Path(self.folder) / f"fold{int(fold)}.network.pt"

    def curves(self, fold: int) -> Path:
        """The training curves of fold ``fold`` (SPIE)."""
        return Path(self.folder) / f"fold{int(fold)}.curves.parquet"

    def networks(self) -> list[Path]:
        """Every fitted network in the folder, by fold (SPIE)."""
        return _by_fold(Path(self.folder).glob("fold*.network.pt"))

    def curves_files(self) -> list[Path]:
        """Every fold's training curves in the folder, by name (SPIE)."""
        return sorted(Path(self.folder).glob("fold*.curves.parquet"))

    @staticmethod
    def training_checkpoint_in(folder: str | Path) -> Path:
        """The checkpoint file of a training run in its work folder (SPIE)."""
        return Path(folder) / "spie_checkpoint.pt"


@dataclass(frozen=True)
class ExtrapolationFiles:
    """The cross-validated comparison (:mod:`lue_spie.extrapolate`)."""

    folder: Path

    FOLDS = "folds.parquet"
    SUMMARY = "summary.parquet"

    @property
    def folds(self) -> Path:
        """The split: site -> fold."""
        return Path(self.folder) / self.FOLDS

    @property
    def summary(self) -> Path:
        """Every method, fold and held-out site with its daily NSE."""
        return Path(self.folder) / self.SUMMARY

    def method(self, name: str) -> MethodFiles:
        """The folder of one method's results."""
        return MethodFiles(Path(self.folder) / method_folder_name(name))

    def method_folders(self) -> list[MethodFiles]:
        """Every method folder that holds gathered results (both tables), by folder name."""
        folder = Path(self.folder)
        if not folder.is_dir():
            return []
        found = [MethodFiles(d) for d in sorted(folder.iterdir()) if d.is_dir()]
        return [m for m in found if m.params.is_file() and m.gpp.is_file()]


@dataclass(frozen=True)
class ComparisonFiles:
    """The realism comparison of datasets with real sites (``lue-spie data compare --out``)."""

    folder: Path

    STEM = "compare"

    @property
    def table(self) -> Path:
        """The comparison table (class medians next to the real sites)."""
        return Path(self.folder) / f"{self.STEM}.parquet"

    @property
    def csv(self) -> Path:
        """The comparison table as CSV."""
        return Path(self.folder) / f"{self.STEM}.csv"

    @property
    def figure(self) -> Path:
        """The mean seasonal cycles next to the real sites."""
        return Path(self.folder) / f"{self.STEM}.png"

    def site_statistics(self, label: str) -> Path:
        """The per-site statistics of the dataset labelled ``label``."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", label)
        return Path(self.folder) / f"site_statistics_{safe}.parquet"


# ---------------------------------------------------------------------------- assessment
class AssessmentTable(enum.StrEnum):
    """The tables of the assessment (:mod:`lue_spie.assess`), by file stem."""

    HEADLINE = "headline"
    SITE_SCORES = "site_scores"
    SCORE_SUMMARY = "score_summary"
    SPATIAL_METRICS = "spatial_metrics"
    SPATIAL_SITE_MEANS = "spatial_site_means"
    NSE_BY_TYPE = "nse_by_type"
    NSE_BY_TYPE_SUMMARY = "nse_by_type_summary"
    LIKELIHOOD_P = "likelihood_P"
    LIKELIHOOD_AVERAGE = "likelihood_average"
    LIKELIHOOD_TABLE = "likelihood_table"
    LIKELIHOOD_GROUPS = "likelihood_groups"
    LIKELIHOOD_MEMBERS = "likelihood_members"
    PARAMS = "params"
    EDGE_SHARES = "edge_shares"
    PARAMETER_SKILL_CALIB = "parameter_skill_calib"
    PARAMETER_SKILL_TRUTH = "parameter_skill_truth"
    EQUIFINALITY_SUMMARY = "equifinality_summary"
    EQUIFINALITY_SITES = "equifinality_sites"
    TWIN_WORLDS = "twin_worlds"
    TWIN_AGREEMENT = "twin_agreement"


class ImportanceTable(enum.StrEnum):
    """The tables of the feature-importance analysis (:mod:`lue_spie.importance`)."""

    IMPORTANCE = "importance"
    BY_CLASS = "importance_by_class"
    METHOD_AGREEMENT = "method_agreement"
    FOLDS = "importance_folds"
    PD_CURVES = "pd_curves"
    SHAP_CHECK = "shap_check"
    DRIVERS = "drivers"
    DRIVER_SUMMARY = "driver_summary"


class MapsTable(enum.StrEnum):
    """The tables of the maps of the virtual continent (:mod:`lue_spie.maps`)."""

    CELLS = "cells"
    GPP_SKILL = "gpp_skill"
    PARAMETER_SKILL = "parameter_skill"
    IDENTIFIABLE = "identifiable"
    DISTANCE = "error_by_distance"
    TOWERS = "towers"


@dataclass(frozen=True)
class TablesFolder:
    """A folder of named tables (parquet with provenance, and CSV), figures and a record."""

    folder: Path

    FIGURES_DIR = "figures"

    def table(self, stem: str) -> Path:
        """The parquet file of table ``stem``."""
        return Path(self.folder) / f"{stem}.parquet"

    def csv(self, stem: str) -> Path:
        """The CSV copy of table ``stem``."""
        return Path(self.folder) / f"{stem}.csv"

    @property
    def figures_dir(self) -> Path:
        """Where the figures go (one file per figure and format)."""
        return Path(self.folder) / self.FIGURES_DIR


@dataclass(frozen=True)
class AssessmentFiles(TablesFolder):
    """The assessment's folder (``lue-spie assess``)."""

    RECORD = "assessment.json"

    @property
    def record(self) -> Path:
        """Settings, inputs with checksums, every file written, timings and the headline."""
        return Path(self.folder) / self.RECORD


@dataclass(frozen=True)
class ImportanceFiles(TablesFolder):
    """The feature-importance folder (``lue-spie importance``)."""

    RECORD = "importance.json"

    @property
    def record(self) -> Path:
        """Settings, inputs with checksums and every file written."""
        return Path(self.folder) / self.RECORD


@dataclass(frozen=True)
class MapsFiles(TablesFolder):
    """The maps of the virtual continent (``lue-spie maps``): the CF Zarr store, one table
    per finished chunk (the done markers), the gathered tables, figures and the record."""

    STORE = "continent.zarr"
    CHUNKS_DIR = "chunks"
    RECORD = "maps.json"

    @property
    def store(self) -> Path:
        """The Zarr store (CF conventions): parameters and daily GPP per method and the
        truth, on the continent's latitude-longitude grid."""
        return Path(self.folder) / self.STORE

    @property
    def chunks_dir(self) -> Path:
        """The tables of the finished chunks (each one the chunk's done marker)."""
        return Path(self.folder) / self.CHUNKS_DIR

    def chunk_table(self, row: int, col: int) -> Path:
        """The table of the cells of chunk ``(row, col)`` (in chunks of the grid)."""
        return self.chunks_dir / f"chunk{int(row):03d}-{int(col):03d}.parquet"

    def chunk_tables(self) -> list[Path]:
        """Every finished chunk's table, by name."""
        return sorted(self.chunks_dir.glob("chunk*.parquet"))

    @property
    def record(self) -> Path:
        """Settings, inputs with checksums, the continent, timings and every file written."""
        return Path(self.folder) / self.RECORD

class PayoffFiles(TablesFolder):
    """The pay-off sweep's folder (``lue-spie payoff``, :mod:`lue_spie.payoff`): one results
    folder per dial point, the table of every point's scores, its figure and the record."""

    POINTS_DIR = "points"
    TABLE = "payoff"
    POINT_SCORES = "scores.parquet"
    RECORD = "payoff.json"
    FIGURE = "payoff.png"
    #: The published table of a larger sweep, shipped with the package (with its provenance
    #: beside it), which the demo book shows.
    PUBLISHED = "payoff/published/payoff_sweep.csv"

    @property
    def points_dir(self) -> Path:
        """Where the points' results folders are."""
        return Path(self.folder) / self.POINTS_DIR

    def point(self, label: str) -> Path:
        """The results folder of the point ``label`` (data, calibration, extrapolation)."""
        return self.points_dir / re.sub(r"[^A-Za-z0-9_.=-]", "_", label)

    def point_scores(self, label: str) -> Path:
        """The scores of the point ``label`` (its done marker)."""
        return self.point_scores_in(self.point(label))

    @staticmethod
    def point_scores_in(folder: str | Path) -> Path:
        """The scores of the point whose results folder is ``folder``."""
        return Path(folder) / PayoffFiles.POINT_SCORES

    @property
    def scores(self) -> Path:
        """Every point's scores (parquet)."""
        return self.table(self.TABLE)

    @property
    def scores_csv(self) -> Path:
        """Every point's scores (CSV)."""
        return self.csv(self.TABLE)

    @property
    def figure(self) -> Path:
        """The pay-off figure."""
        return self.figures_dir / self.FIGURE

    @property
    def record(self) -> Path:
        """Settings, points, timings and every file written."""
        return Path(self.folder) / self.RECORD

    @classmethod
    def published(cls) -> Path:
        """The published sweep's table (CSV) in the package (:attr:`PUBLISHED`, relative to
        the package's folder)."""
        return Path(__file__).resolve().parent / cls.PUBLISHED

    @classmethod
    def published_provenance(cls) -> Path:
        """The published sweep's provenance record (command, commit, date, settings)."""
        return provenance_of(cls.published().with_suffix(""))


# -------------------------------------------------------------------------------- the book
@dataclass(frozen=True)
class BookSources:
    """The book's sources (a checkout of the repository, or a build's copy of them)."""

    root: Path

    NOTEBOOKS = "notebooks"
    TOC = "_toc.yml"
    CONFIG = "_config.yml"
    PAGES = "book"

    @property
    def notebooks_dir(self) -> Path:
        """The chapter notebooks."""
        return Path(self.root) / self.NOTEBOOKS

    def notebook(self, name: str) -> Path:
        """One chapter notebook (its file name)."""
        return self.notebooks_dir / name

    @property
    def toc(self) -> Path:
        """The table of contents (the chapters in reading order)."""
        return Path(self.root) / self.TOC

    @property
    def config(self) -> Path:
        """The Jupyter Book configuration."""
        return Path(self.root) / self.CONFIG

    @property
    def pages(self) -> Path:
        """The book's markdown pages and bibliography."""
        return Path(self.root) / self.PAGES


@dataclass(frozen=True)
class BookBuild:
    """A book build folder (``lue-spie book --build-dir``; ``build/book/<profile>`` by
    default): the executed chapters beside a copy of the pages, the HTML, the record."""

    folder: Path

    ROOT = "build/book"
    SRC = "src"
    HTML = "_build/html"
    RECORD = "pipeline.json"

    @classmethod
    def of(cls, profile: str) -> BookBuild:
        """The default build folder of a profile (relative to the working directory)."""
        return cls(Path(cls.ROOT) / profile)

    @property
    def src(self) -> BookSources:
        """The sources the book is built from: the executed chapters and the pages."""
        return BookSources(Path(self.folder) / self.SRC)

    def executed(self, notebook: str) -> Path:
        """The executed copy of a chapter."""
        return self.src.notebook(notebook)

    @property
    def html(self) -> Path:
        """The built HTML."""
        return Path(self.folder) / self.HTML

    def page(self, notebook: str) -> Path:
        """The HTML page of a chapter."""
        return self.html / BookSources.NOTEBOOKS / (notebook.removesuffix(".ipynb") + ".html")

    @property
    def record(self) -> Path:
        """What the build ran: profile, overrides, parameters, timings, versions."""
        return Path(self.folder) / self.RECORD


@dataclass(frozen=True)
class CourseFiles:
    """A course folder (``lue-spie course --out``): the copies to hand out and to teach from."""

    folder: Path

    STUDENT = "student"
    TEACHER = "teacher"
    RESULTS = "results"
    PAGE = "course.md"
    PAGE_HTML = "course.html"
    RECORD = "course.json"

    @property
    def student(self) -> Path:
        """Every chapter without its solutions (hand this folder out)."""
        return Path(self.folder) / self.STUDENT

    @property
    def teacher(self) -> Path:
        """Every chapter with its solutions."""
        return Path(self.folder) / self.TEACHER

    @property
    def page(self) -> Path:
        """The course page (goals, time and exercises of every chapter)."""
        return Path(self.folder) / self.PAGE

    @property
    def page_html(self) -> Path:
        """The course page as HTML."""
        return Path(self.folder) / self.PAGE_HTML

    @property
    def record(self) -> Path:
        """What the course was made from (profile, build, chapters and exercises)."""
        return Path(self.folder) / self.RECORD


# ------------------------------------------------------------------------- results folder
@dataclass(frozen=True)
class Layout:
    """A results folder: where each step of the book reads and writes.

    ``Layout("results/ci")`` puts every step's folder under one root (the book). A step run on
    folders of the user's choosing names them instead: ``Layout(data_dir=D,
    calibration_dir=O)`` (``lue-spie calibrate --data D --out O``); a folder that is neither
    given nor under a root raises a one-line error naming the option that sets it.

    Args:
        root: The results folder (optional when every folder a step needs is given).
        data_dir, calibration_dir, extrapolation_dir, assessment_dir, importance_dir, maps_dir: A
            step folder elsewhere than under ``root``.
    """

    root: Path | None = None
    data_dir: Path | None = None
    calibration_dir: Path | None = None
    extrapolation_dir: Path | None = None
    assessment_dir: Path | None = None
    importance_dir: Path | None = None
    maps_dir: Path | None = None

    DATA = "data"
    EXAMPLE = "model/example"
    CALIBRATION = "calibration"
    EXTRAPOLATION = "extrapolation"
    ASSESSMENT = "assessment"
    IMPORTANCE = "importance"
    MAPS = "maps"
    PAYOFF = "payoff"
    TWIN = "twin"
    RUN_RECORD = "run.json"
    ROOT = "results"

    @classmethod
    def of(cls, profile: str) -> Layout:
        """The default results folder of a book profile (relative to the working directory)."""
        return cls(Path(cls.ROOT) / profile)

    def __post_init__(self) -> None:
        for f in ("root", "data_dir", "calibration_dir", "extrapolation_dir", "assessment_dir",
                  "importance_dir", "maps_dir"):
            value = getattr(self, f)
            if value is not None:
                object.__setattr__(self, f, Path(value))

    def _folder(self, given: Path | None, name: str, what: str) -> Path:
        if given is not None:
            return given
        if self.root is None:
            raise ValueError(f"no {what} folder given (and no results folder to find it in)")
        return self.root / name

    @property
    def data(self) -> DataFiles:
        """The dataset."""
        return DataFiles(self._folder(self.data_dir, self.DATA, "dataset"))

    @property
    def example(self) -> DataFiles:
        """Chapter 1's small example dataset."""
        return DataFiles(self._folder(None, self.EXAMPLE, "example dataset"))

    @property
    def calibration(self) -> CalibrationFiles:
        """The site calibration."""
        return CalibrationFiles(self._folder(self.calibration_dir, self.CALIBRATION,
                                             "site-calibration"))

    @property
    def extrapolation(self) -> ExtrapolationFiles:
        """The methods under cross-validation."""
        return ExtrapolationFiles(self._folder(self.extrapolation_dir, self.EXTRAPOLATION,
                                               "extrapolation"))

    @property
    def assessment(self) -> AssessmentFiles:
        """The assessment's tables and figures."""
        return AssessmentFiles(self._folder(self.assessment_dir, self.ASSESSMENT,
                                            "assessment"))

    @property
    def importance(self) -> ImportanceFiles:
        """The feature-importance tables and figures."""
        return ImportanceFiles(self._folder(self.importance_dir, self.IMPORTANCE,
                                            "feature-importance"))

    @property
    def maps(self) -> MapsFiles:
        """The maps of the virtual continent."""
        return MapsFiles(self._folder(self.maps_dir, self.MAPS, "maps"))

    @property
    def payoff(self) -> PayoffFiles:
        """The pay-off sweep (its own results folders inside, one per dial point)."""
        return PayoffFiles(self._folder(None, self.PAYOFF, "pay-off sweep"))

    @property
    def twin(self) -> Layout:
        """The structural-error twin: a results folder of its own inside this one."""
        return Layout(self._folder(None, self.TWIN, "twin"))

    @property
    def run_record(self) -> Path:
        """The record of the book build that filled the folder (its settings)."""
        return self._folder(None, self.RUN_RECORD, "results")

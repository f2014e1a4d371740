"""The book pipeline: papermill-parameterised chapters, then a Jupyter Book build.

``lue-spie book --profile ci|demo|paper`` does, in order:

1. picks the profile (:data:`PROFILES`: data in code, one frozen dataclass each) and applies the
   ``-p NAME VALUE`` overrides (values parsed as YAML: ``-p n_sites 12``, ``-p sites "[A, B]"``);
2. runs every chapter notebook of ``notebooks/`` in order with papermill into
   ``BUILD/src/notebooks/``. Each notebook receives only the parameters its ``parameters`` cell
   declares. Chapters hand results to each other through files in the results folder
   (``RESULTS/data``, ``RESULTS/calibration`` ...), never through kernel state;
3. copies the book pages (``_config.yml``, ``_toc.yml``, ``book/``) beside the executed copies
   and builds the Jupyter Book (1.x) with execution off, warnings as errors (``-W``) and
   nitpicky cross-references (``-n``);
4. checks the HTML: a page for every chapter, every ``<img>`` present on disk, every figure of
   an executed notebook on its page, no error or stderr output block.

A failing cell fails the command with a message that names the notebook and the cell; the
executed copy (with the traceback) stays in the build folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import html.parser
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lue_spie.execution import ExecutionSettings, add_execution_arguments
from lue_spie.store import atomic_write_json, atomic_write_text, git_commit, package_versions

__all__ = [
    "Profile",
    "PROFILES",
    "BookError",
    "NotebookError",
    "get_profile",
    "parse_overrides",
    "chapter_notebooks",
    "notebook_parameters",
    "resolve_parameters",
    "find_source_root",
    "run_notebook",
    "run_pipeline",
    "build_book",
    "check_html",
    "register_cli",
]

#: Files and folders of the book besides the notebooks, relative to the source root.
BOOK_FILES: tuple[str, ...] = ("_config.yml", "_toc.yml", "book")
#: Notebook parameters that hold a path. They are injected relative to the source root, where
#: the kernels run, so that no page of the book shows an absolute path of the machine.
PATH_PARAMETERS: tuple[str, ...] = ("results", "data_source", "sites_file", "fapar_file",
                                    "features_file", "ndvi_file")


class BookError(RuntimeError):
    """The book pipeline failed (build or checks); the message says where and why."""


class NotebookError(BookError):
    """A cell of a chapter notebook raised; names the notebook and the cell.

    Attributes:
        notebook: File name of the notebook.
        cell_index: Index of the failing cell in the source notebook (0-based), or in the
            executed copy when the cell cannot be matched to the source.
        executed: Path of the executed copy, which holds the traceback.
    """

    def __init__(self, message: str, *, notebook: str, cell_index: int | None,
                 executed: Path) -> None:
        super().__init__(message)
        self.notebook = notebook
        self.cell_index = cell_index
        self.executed = executed


# ------------------------------------------------------------------------------------ profiles
@dataclass(frozen=True)
class Profile:
    """One way to run the book: the notebook parameters and what they cost.

    Every field except ``name`` and ``description`` is a notebook parameter of the same name
    (a notebook receives the ones its ``parameters`` cell declares).

    Attributes:
        name: Profile name (``ci``, ``demo``, ``paper``).
        description: What it is for and roughly how long it takes.
        data_source: ``"virtual"`` (generate a virtual FLUXNET) or the folder of a user's real
            FLUXNET2015 FULLSET daily files (see the book's real-data page).
        n_sites: Number of virtual sites to generate.
        n_years: Number of years per virtual site.
        start_year: First calendar year of the virtual record.
        structural_error: Add a process the LUE model lacks to the virtual GPP_obs.
        sites_file, fapar_file, features_file, ndvi_file: Real data only: the site, FAPAR,
            feature and NDVI tables (``None``: ``sites.csv`` and the one ``fapar*.csv`` in
            the data folder; no features; NDVI from FAPAR).
        missing_fapar: Real data only: ``"skip"`` sites without FAPAR, or ``"error"``.
        sites: Site subset (ids) for the data and calibration chapters; ``None`` = all.
        years: Years to use (list of ints); ``None`` = all.
        seed: Random seed of every chapter.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
        cmaes_popsize: CMA-ES population size per site (``None`` = pycma's default).
        cmaes_max_generations: CMA-ES generations per site (an upper bound).
        cmaes_restarts: Extra CMA-ES restarts (with a doubled population) per site.
        cmaes_dtype: Model precision of the CMA-ES searches (site calibration and the pooled
            optimisations): ``"float64"``, or ``"float32"``, 2-3x faster and tested to reach
            the float64 optimum (its sums over days and the cost stay in float64; see
            benchmarks/RESULTS.md). In float32 the rounding of a site's cost depends on which
            sites share its model call, so a run on Dask workers (other groupings) can end a
            search a few generations apart from the in-process run (float64 rounding differs
            far less: the same parameters in every test of :mod:`lue_spie.execution`).
        n_show: How many sites the chapters show in per-site figures.
        likelihood_groups: Site groups of the model likelihood P (paper: 200; seconds even
            at the paper's size, so every profile uses the paper's number).
        focus_method: Method of the parameter figures (``None``: SPIE when its results are
            there, else the best method by the share of sites with positive daily NSE).
        structural_twin: Build the structural-error twin in the parameters chapter: the same
            virtual FLUXNET with the generator's structural-error switch flipped, calibrated
            and extrapolated again with ``twin_methods`` (one more site calibration plus
            those methods; off in ``demo``, where it would add about as much as the
            calibration chapter costs).
        twin_methods: Methods the twin reruns (those the main run has).
        n_folds: Folds of the cross-validation over sites (paper: 10); the method chapters
            share one split.
        opt_max_generations: CMA-ES generations per pooled optimisation (OPT-All, OPT-PFT;
            an upper bound: the searches stop earlier when they converge).
        opt_restarts: Extra CMA-ES restarts (doubled population) per pooled optimisation.
        rf_trees: Trees per random forest of sRF and mRF (paper: 100).
        spie_epochs: SPIE's most epochs (paper: 2000; a fold stops earlier only when its
            mini-batch cost falls below 1e-2, which noisy data never allow). Every profile
            uses the paper's 2000: cut short, SPIE stops on equifinal vectors (on the ci
            data, 200 epochs gave a held-out median daily NSE of 0.62 instead of 0.72 and
            put eps_max and gamma six to eight times farther from the truth). With fewer
            training sites than the batch size (ci) an epoch is one Adam step, and the
            training cost still falls by 1-5 % over the last quarter of the 2000 epochs;
            the SPIE chapter shows the curves and that number per fold.
        spie_batch_size: SPIE's sites per mini-batch (paper: 32).
        spie_mapping: How SPIE's network outputs are mapped into the parameters' bounds:
            ``"log"`` (the default: log-uniform for kappa, sigmoid for the others; see the
            methods-decisions page) or ``"sigmoid"`` (every parameter, the paper's).
        pmodel_window_days: Acclimation memory of the P-model [d] (Mengoli et al. 2022: 15).
        workers: Dask worker processes for the chapters' independent units (site chunks,
            method x fold): 0 runs them in the notebook's kernel; N starts a local Dask
            cluster of N processes in each chapter that has such units. The results are the
            same (:mod:`lue_spie.execution`; with ``cmaes_dtype="float32"`` see there). The
            demo and paper profiles use 2, one per core of a 2-core machine.
        scheduler: Address of a running Dask scheduler to use instead (e.g. a dask-jobqueue
            cluster's); None for none.
        shap_background: Feature importance (chapter 11): SHAP background sites per fold
            (a seeded subsample of the fold's training sites); ``None``: all of them.
        pd_grid: Feature importance: grid points of a continuous feature's partial
            dependence curve.
    """

    name: str
    description: str
    data_source: str = "virtual"
    n_sites: int = 24
    n_years: int = 3
    start_year: int = 2005
    structural_error: bool = False
    sites_file: str | None = None
    fapar_file: str | None = None
    features_file: str | None = None
    ndvi_file: str | None = None
    missing_fapar: str = "skip"
    sites: tuple[str, ...] | None = None
    years: tuple[int, ...] | None = None
    seed: int = 42
    device: str = "auto"
    cmaes_popsize: int | None = None
    cmaes_max_generations: int = 100
    cmaes_restarts: int = 0
    cmaes_dtype: str = "float64"
    n_show: int = 4
    likelihood_groups: int = 200
    focus_method: str | None = None
    structural_twin: bool = True
    twin_methods: tuple[str, ...] = ("PFTmean", "Climmed", "Sitesim", "mRF", "SPIE")
    n_folds: int = 10
    opt_max_generations: int = 100
    opt_restarts: int = 0
    rf_trees: int = 100
    spie_epochs: int = 2000
    spie_batch_size: int = 32
    spie_mapping: str = "log"
    pmodel_window_days: float = 15.0
    workers: int = 0
    scheduler: str | None = None
    shap_background: int | None = None
    pd_grid: int = 20

    def parameters(self) -> dict[str, Any]:
        """The notebook parameters of this profile (JSON-friendly: tuples become lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("name", "description"):
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="ci",
            description="short runs for CI (24 sites x 3 years): the whole pipeline and the "
                        "book in about 10 minutes on 2 busy shared CPU cores, 2 of them "
                        "SPIE's 2000 epochs (chapter 8 and again in chapter 10's twin)",
            n_sites=24, n_years=3, cmaes_max_generations=100, n_show=4,
            n_folds=10, opt_max_generations=100, opt_restarts=0, rf_trees=100,
            spie_epochs=2000, spie_batch_size=32, spie_mapping="log",
            pmodel_window_days=15.0, pd_grid=10,
        ),
        Profile(
            name="demo",
            description="the paper's shape at reduced cost: its 196 sites with 8 of its 10 "
                        "years, shorter CMA-ES runs in float32 on two Dask workers, SPIE's "
                        "2000 epochs; about 17 minutes on 2 CPU cores (18 from a fresh clone "
                        "with set-up), 8 of them SPIE",
            n_sites=196, n_years=8, cmaes_max_generations=500, cmaes_restarts=1,
            cmaes_dtype="float32", workers=2,
            n_show=6, n_folds=10, opt_max_generations=400, opt_restarts=0, rf_trees=100,
            spie_epochs=2000, spie_batch_size=32, spie_mapping="log",
            pmodel_window_days=15.0, structural_twin=False, pd_grid=20,
        ),
        Profile(
            name="paper",
            description="the paper's size (196 sites x 10 years), long CMA-ES runs and the "
                        "structural-error twin of all twelve methods, on two Dask workers: "
                        "83 minutes on 2 CPU cores (measured; pooled optimisations 58 %)",
            n_sites=196, n_years=10, cmaes_max_generations=1000, cmaes_restarts=2, n_show=8,
            workers=2,
            n_folds=10, opt_max_generations=1000, opt_restarts=1, rf_trees=100,
            spie_epochs=2000, spie_batch_size=32, spie_mapping="log",
            pmodel_window_days=15.0,
            structural_twin=True, twin_methods=(
                "PFTmean", "Climmean", "PFTmed", "Climmed", "Sitesim", "OPT-All", "OPT-PFT",
                "sRF", "mRF", "mNN", "SPIE", "P-model"),
            pd_grid=50,
        ),
    )
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``.

    Raises:
        KeyError: naming the unknown profile and the known ones.
    """
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown book profile {name!r}; expected one of "
                       f"{sorted(PROFILES)}") from None


def parse_overrides(pairs: Sequence[Sequence[str]] | None) -> dict[str, Any]:
    """``-p NAME VALUE`` pairs to a dict; each VALUE is parsed as YAML (like papermill's ``-y``).

    ``"12"`` gives 12, ``"true"`` gives True, ``"null"`` gives None, ``"[A, B]"`` gives a list,
    anything else stays a string.

    Raises:
        ValueError: for a pair that is not exactly NAME VALUE or a VALUE that is not valid YAML.
    """
    out: dict[str, Any] = {}
    for pair in pairs or ():
        if len(pair) != 2:
            raise ValueError(f"-p expects NAME VALUE, got {list(pair)!r}")
        name, raw = pair
        if not name.isidentifier():
            raise ValueError(f"-p {name!r}: a parameter name must be a Python identifier")
        try:
            out[name] = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as err:
            raise ValueError(f"-p {name} {raw!r}: not a valid YAML value ({err})") from None
    return out


# ---------------------------------------------------------------------------------- notebooks
def find_source_root(start: str | os.PathLike | None = None) -> Path:
    """The folder holding ``_toc.yml``, ``_config.yml``, ``book/`` and ``notebooks/``.

    Looks in ``start`` (default: the working directory and its parents), then beside the
    installed package (an editable install of the repository).

    Raises:
        FileNotFoundError: when no such folder is found.
    """
    candidates: list[Path] = []
    here = Path(start) if start else Path.cwd()
    candidates += [here, *here.resolve().parents]
    candidates.append(Path(__file__).resolve().parents[1])
    for c in candidates:
        if (c / "_toc.yml").is_file() and (c / "notebooks").is_dir():
            return c
    raise FileNotFoundError(
        f"no book sources (_toc.yml and notebooks/) found in {here} or its parents, nor beside "
        "the lue_spie package; run from the lue-spie repository or pass --source DIR"
    )


def chapter_notebooks(root: str | os.PathLike) -> tuple[str, ...]:
    """The chapter notebooks listed in ``ROOT/_toc.yml``, in reading (and running) order.

    Raises:
        FileNotFoundError: when the table of contents is missing.
        ValueError: when it lists no notebook of ``notebooks/``.
    """
    toc_path = Path(root) / "_toc.yml"
    if not toc_path.is_file():
        raise FileNotFoundError(f"{toc_path}: no table of contents")
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8")) or {}
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            f = node.get("file")
            if isinstance(f, str) and f.startswith("notebooks/"):
                found.append(Path(f).name.removesuffix(".ipynb") + ".ipynb")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    if not found:
        raise ValueError(f"{toc_path}: lists no chapter notebook (files under notebooks/)")
    return tuple(found)


def notebook_parameters(path: str | os.PathLike) -> dict[str, Any]:
    """Names and default values declared in the notebook's ``parameters`` cell.

    Raises:
        ValueError: when the notebook has no cell tagged ``parameters``.
    """
    import papermill

    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb["cells"]):
        raise ValueError(f"{path}: no cell tagged 'parameters' (papermill needs one)")
    declared = papermill.inspect_notebook(str(path))
    return {name: info.get("default") for name, info in declared.items()}


def resolve_parameters(
    profile: Profile,
    overrides: Mapping[str, Any],
    declared: Mapping[str, Mapping[str, Any]],
    results: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
) -> dict[str, dict[str, Any]]:
    """The parameters injected into each notebook.

    Path parameters (:data:`PATH_PARAMETERS`, the results folder included) are given relative
    to ``root``, the folder the kernels run in, so the injected cell of every page shows a
    path such as ``results/ci`` rather than an absolute path of the machine.

    Args:
        profile: The chosen profile.
        overrides: ``-p`` values; each name must be declared by at least one notebook.
        declared: Notebook name -> the names its parameters cell declares.
        results: The results folder (relative to the working directory, or absolute).
        root: The kernels' working directory (default: the working directory).

    Returns:
        Notebook name -> {parameter: value}, holding only the names that notebook declares.

    Raises:
        ValueError: for an override that no notebook declares.
    """
    known = set().union(*[set(d) for d in declared.values()]) if declared else set()
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"-p {', '.join(unknown)}: no chapter declares such a parameter; the parameters "
            f"are {sorted(known)}"
        )
    values = profile.parameters()
    values.update(overrides)
    base = Path(root or Path.cwd()).resolve()
    values["results"] = _relative(Path(results), base)
    for name in PATH_PARAMETERS:
        v = values.get(name)
        if name != "results" and isinstance(v, str) and v != "virtual":
            values[name] = _relative(Path(v).expanduser(), base)
    return {nb: {k: values[k] for k in names if k in values} for nb, names in declared.items()}


def _relative(path: Path, base: Path) -> str:
    """``path`` (relative to the working directory, or absolute) relative to ``base``."""
    try:
        return Path(os.path.relpath(path.resolve(), base)).as_posix()
    except ValueError:  # another drive (Windows): nothing relative exists
        return str(path.resolve())


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()[:100]
    return source.strip().splitlines()[0][:100] if source.strip() else "(empty cell)"


def _source_cell_index(source_nb: Path, cell_id: str | None, code: str) -> int | None:
    """Index of the cell in the source notebook with this id (or, failing that, this code)."""
    cells = json.loads(source_nb.read_text(encoding="utf-8"))["cells"]
    for i, c in enumerate(cells):
        if cell_id is not None and c.get("id") == cell_id:
            return i
    for i, c in enumerate(cells):
        if "".join(c.get("source", "")) == code:
            return i
    return None


def run_notebook(
    source: str | os.PathLike,
    output: str | os.PathLike,
    parameters: Mapping[str, Any],
    *,
    cwd: str | os.PathLike | None = None,
    kernel_name: str = "python3",
    start_timeout: int = 120,
) -> float:
    """Execute one notebook with papermill; return the wall time in seconds.

    Raises:
        NotebookError: when a cell raises, naming the notebook, the cell (its index in the
            source notebook, its execution count and first line) and the error.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source, output = Path(source), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source), str(output), parameters=dict(parameters), kernel_name=kernel_name,
            progress_bar=False, cwd=str(cwd or output.parent), start_timeout=start_timeout,
        )
    except PapermillExecutionError as err:
        raise _notebook_error(source, output, err) from None
    _relative_papermill_paths(output, Path(cwd) if cwd else output.parent)
    return time.perf_counter() - t0


def _relative_papermill_paths(notebook: Path, base: Path) -> None:
    """papermill records the absolute input and output paths in the executed copy's metadata;
    the book offers that copy for download, so they are made relative to ``base``."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    meta = nb.get("metadata", {}).get("papermill", {})
    changed = False
    for key in ("input_path", "output_path"):
        if isinstance(meta.get(key), str) and os.path.isabs(meta[key]):
            meta[key] = _relative(Path(meta[key]), base.resolve())
            changed = True
    if changed:
        atomic_write_text(notebook, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _notebook_error(source: Path, output: Path, err: Any) -> NotebookError:
    # papermill inserts cells into the executed copy (the injected parameters, an error
    # banner), so its cell index does not point into the source notebook. The failing cell is
    # found by its execution count in the executed copy and then by its id (papermill keeps
    # cell ids) or its code in the source notebook.
    executed = json.loads(output.read_text(encoding="utf-8"))["cells"] if output.exists() else []
    cell = next((c for c in executed if c.get("cell_type") == "code"
                 and err.exec_count is not None and c.get("execution_count") == err.exec_count),
                {})
    code = "".join(cell.get("source", "")) or (err.source or "")
    idx = _source_cell_index(source, cell.get("id"), code)
    where = (f"cell {idx} of {source.name}" if idx is not None
             else f"cell {err.cell_index} of the executed copy")
    message = (
        f"notebook {source.name} failed in {where} (In [{err.exec_count}]: "
        f"`{_first_line(code)}`): {err.ename}: {err.evalue}\n"
        f"  the executed copy with the full traceback is {output}"
    )
    return NotebookError(message, notebook=source.name, cell_index=idx, executed=output)


# ------------------------------------------------------------------------------------ pipeline
@dataclass
class BookResult:
    """What :func:`run_pipeline` did.

    Attributes:
        build_dir: The build folder.
        html_dir: The built HTML (``None`` when the build was skipped).
        results: The results folder the chapters wrote to.
        timings: Seconds per notebook, plus ``"book"`` (the Jupyter Book build) and ``"total"``.
        parameters: Notebook name -> injected parameters.
    """

    build_dir: Path
    html_dir: Path | None
    results: Path
    timings: dict[str, float]
    parameters: dict[str, dict[str, Any]]


def _select(only: str | None, notebooks: Sequence[str]) -> list[str]:
    if only is None:
        return list(notebooks)
    key = only.removesuffix(".ipynb")
    hits = [nb for nb in notebooks
            if nb.removesuffix(".ipynb") == key or nb.split("_", 1)[0] == key.zfill(2)]
    if len(hits) != 1:
        raise ValueError(f"--only {only!r}: expected one of {list(notebooks)} (or its number)")
    return hits


def run_pipeline(
    profile: str | Profile = "ci",
    *,
    overrides: Mapping[str, Any] | None = None,
    build_dir: str | os.PathLike | None = None,
    results: str | os.PathLike | None = None,
    only: str | None = None,
    build: bool = True,
    source_root: str | os.PathLike | None = None,
    notebooks: Sequence[str] | None = None,
    log: Any = print,
) -> BookResult:
    """Run the chapters with papermill, then build and check the book.

    Args:
        profile: Profile name or object.
        overrides: Parameter overrides (name -> value).
        build_dir: Build folder (default ``build/book/<profile>``).
        results: Results folder the chapters share (default ``results/<profile>``).
        only: Run only this notebook (name, stem or number); the others' executed copies
            from an earlier run in the same build folder are reused for the book.
        build: Build the Jupyter Book after running the notebooks.
        source_root: Folder with ``_toc.yml``, ``_config.yml``, ``book/`` and ``notebooks/``.
        notebooks: The notebooks to run, in order (file names inside ``notebooks/``);
            default: the chapters listed in ``_toc.yml`` (:func:`chapter_notebooks`).
        log: Where progress lines go.

    Raises:
        NotebookError: a cell failed (names the notebook and the cell).
        BookError: the book build or the HTML checks failed.
        ValueError, KeyError, FileNotFoundError: bad arguments.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    root = find_source_root(source_root)
    build_dir = Path(build_dir or Path("build") / "book" / prof.name).resolve()
    results = Path(results or Path("results") / prof.name).resolve()
    src = build_dir / "src"
    t_start = time.perf_counter()
    notebooks = tuple(notebooks) if notebooks is not None else chapter_notebooks(root)

    missing = [nb for nb in notebooks if not (root / "notebooks" / nb).is_file()]
    if missing:
        raise FileNotFoundError(f"{root / 'notebooks'}: missing chapter notebook(s) {missing}")
    declared = {nb: notebook_parameters(root / "notebooks" / nb) for nb in notebooks}
    params = resolve_parameters(prof, dict(overrides or {}), declared, results, root=root)
    to_run = _select(only, notebooks)

    results.mkdir(parents=True, exist_ok=True)
    (src / "notebooks").mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    log(f"lue-spie book: profile {prof.name}; results in {results}; build in {build_dir}")
    for i, nb in enumerate(to_run, 1):
        log(f"[{i}/{len(to_run)}] running {nb} ...")
        # Kernels run in the source root: the injected paths are relative to it.
        timings[nb] = run_notebook(root / "notebooks" / nb, src / "notebooks" / nb, params[nb],
                                   cwd=root)
        log(f"[{i}/{len(to_run)}] {nb} done in {timings[nb]:.1f} s")
        _check_streams(src / "notebooks" / nb)

    html_dir = None
    if build:
        absent = [nb for nb in notebooks if not (src / "notebooks" / nb).is_file()]
        if absent:
            raise BookError(
                f"cannot build the book: no executed copy of {absent} in {src / 'notebooks'}; "
                "run the whole pipeline once (without --only) or pass --no-build"
            )
        t0 = time.perf_counter()
        html_dir = build_book(root, src, build_dir, notebooks=notebooks, log=log)
        timings["book"] = time.perf_counter() - t0
        log(f"book built in {timings['book']:.1f} s: {html_dir / 'index.html'}")
    timings["total"] = time.perf_counter() - t_start
    atomic_write_json(build_dir / "pipeline.json", {
        "profile": prof.name, "overrides": dict(overrides or {}), "only": only,
        "parameters": params, "timings_s": timings, "results": _relative(results, root),
        "html": _relative(html_dir, root) if html_dir else None, "git_commit": git_commit(),
        "versions": package_versions(("lue-spie", "papermill", "jupyter-book", "torch")),
    })
    log(f"lue-spie book: done in {timings['total']:.1f} s")
    return BookResult(build_dir, html_dir, results, timings, params)


def _check_streams(executed: Path) -> None:
    """Fail on output that would show as an error block in the book (stderr, tracebacks)."""
    cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    for i, c in enumerate(cells):
        for out in c.get("outputs", []):
            if out.get("output_type") == "error" or (
                    out.get("output_type") == "stream" and out.get("name") == "stderr"):
                text = "".join(out.get("text", "")) or out.get("evalue", "")
                raise NotebookError(
                    f"notebook {executed.name}: cell {i} (`{_first_line(''.join(c['source']))}`)"
                    f" wrote to stderr, which the book would show as an error block: "
                    f"{text.strip()[:300]!r}\n  executed copy: {executed}",
                    notebook=executed.name, cell_index=i, executed=executed)


# -------------------------------------------------------------------------------- book build
def build_book(
    root: Path, src: Path, build_dir: Path, *, notebooks: Sequence[str],
    log: Any = print,
) -> Path:
    """Copy the book pages beside the executed notebooks, build the HTML and check it.

    The build uses ``-W --keep-going -n``: any Sphinx warning (a broken cross-reference or
    citation, a missing file) fails it.

    Returns:
        The HTML folder.

    Raises:
        BookError: with the warnings of a failed build, or the problems the HTML checks found.
    """
    for name in BOOK_FILES:
        s, d = root / name, src / name
        if s.is_dir():
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(s, d, ignore=shutil.ignore_patterns(".*", "__pycache__"))
        else:
            shutil.copy2(s, d)
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build",
           str(src), "--path-output", str(build_dir), "--builder", "html", "--all",
           "-W", "--keep-going", "-n", "-q"]
    log("building the book: jupyter-book build -W -n --keep-going ...")
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}):\n{tail}")
    html_dir = build_dir / "_build" / "html"
    problems = check_html(html_dir, src, notebooks=notebooks)
    if problems:
        raise BookError("the built book has problems:\n  " + "\n  ".join(problems))
    return html_dir


class _PageParser(html.parser.HTMLParser):
    """Collects image sources and the classes of output blocks of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.bad_outputs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img" and a.get("src"):
            self.images.append(a["src"] or "")
        classes = set((a.get("class") or "").split())
        if classes & {"traceback", "stderr"} and classes & {"output", "cell_output"}:
            self.bad_outputs.append(" ".join(sorted(classes)))
        if "output" in classes and "error" in classes:
            self.bad_outputs.append(" ".join(sorted(classes)))


def _count_figures(executed: Path) -> int:
    cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    return sum(
        1 for c in cells for out in c.get("outputs", [])
        if out.get("output_type") in ("display_data", "execute_result")
        and any(k.startswith("image/") for k in out.get("data", {}))
    )


def check_html(html_dir: Path, src: Path, *, notebooks: Sequence[str]) -> list[str]:
    """Problems of a built book: missing pages, missing images, figures or error blocks.

    Args:
        html_dir: The built HTML folder.
        src: The book source folder (with the executed notebooks in ``notebooks/``).
        notebooks: The chapter notebooks.

    Returns:
        One line per problem (empty when the book is fine).
    """
    problems: list[str] = []
    if not (html_dir / "index.html").is_file():
        return [f"{html_dir}: no index.html"]
    for page in sorted(html_dir.rglob("*.html")):
        rel = page.relative_to(html_dir)
        if rel.parts[0] in ("_static", "_sources", "_images"):
            continue
        parser = _PageParser()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        for img in parser.images:
            if img.startswith(("data:", "http:", "https:")):
                continue
            target = (page.parent / img.split("#")[0].split("?")[0]).resolve()
            if not target.is_file() or target.stat().st_size == 0:
                problems.append(f"{rel}: image {img} is missing")
        for cls in parser.bad_outputs:
            problems.append(f"{rel}: an output block shows an error ({cls})")
    for nb in notebooks:
        stem = nb.removesuffix(".ipynb")
        page = html_dir / "notebooks" / f"{stem}.html"
        if not page.is_file():
            problems.append(f"chapter {nb}: no page {page.relative_to(html_dir)}")
            continue
        parser = _PageParser()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        n_fig = _count_figures(src / "notebooks" / nb)
        n_img = sum(1 for i in parser.images if "_images/" in i)
        if n_img < n_fig:
            problems.append(f"chapter {nb}: {n_fig} figure output(s) in the executed notebook "
                            f"but only {n_img} image(s) on its page")
    return problems


# ---------------------------------------------------------------------------------------- CLI
def _cli(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.parameters)
    workers, scheduler = getattr(args, "workers", 0), getattr(args, "scheduler", None)
    if workers or scheduler is not None:
        # Validated here, so that a bad value is one line before any chapter runs.
        execution = ExecutionSettings(workers=workers, scheduler=scheduler)
        overrides.update({"workers": execution.workers, "scheduler": execution.scheduler})
    try:
        run_pipeline(
            args.profile, overrides=overrides, build_dir=args.build_dir,
            results=args.results, only=args.only, build=not args.no_build,
            source_root=args.source,
        )
    except BookError as err:
        print(f"lue-spie book: error: {err}", file=sys.stderr)
        return 1
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``book`` sub-command to the ``lue-spie`` command line."""
    profiles = "\n".join(
        f"  {prof.name:6s} {prof.description}\n"
        f"         sites {prof.n_sites}, years {prof.n_years}, CMA-ES generations "
        f"{prof.cmaes_max_generations}, restarts {prof.cmaes_restarts}, SPIE epochs "
        f"{prof.spie_epochs}"
        for prof in PROFILES.values())
    p = subparsers.add_parser(
        "book", help="run the chapter notebooks with papermill and build the Jupyter Book",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the chapter notebooks in order with papermill (parameters from a\n"
                    "profile, -p overrides), then build the Jupyter Book from the executed\n"
                    "copies with warnings as errors and check the HTML.",
        epilog=f"profiles:\n{profiles}\n\nexamples:\n  lue-spie book --profile ci -p "
               "n_sites 12 -p seed 7 --results results/small --build-dir build/small\n"
               "  lue-spie book --profile paper --workers 2     # chapters' units on a "
               "local Dask cluster",
    )
    p.add_argument("--profile", default="ci", choices=sorted(PROFILES),
                   help="which parameter set to run (default: ci)")
    p.add_argument("-p", "--parameter", dest="parameters", nargs=2, action="append",
                   metavar=("NAME", "VALUE"),
                   help="override a notebook parameter (VALUE parsed as YAML); repeatable")
    p.add_argument("--build-dir", default=None,
                   help="build folder (default: build/book/PROFILE)")
    p.add_argument("--results", default=None,
                   help="results folder shared by the chapters (default: results/PROFILE)")
    p.add_argument("--only", default=None, metavar="NOTEBOOK",
                   help="run only this chapter (e.g. 03 or 03_calibration); the others' "
                        "executed copies in the build folder are reused")
    p.add_argument("--no-build", action="store_true",
                   help="run the notebooks but do not build the book")
    add_execution_arguments(p, what="the chapters' independent units (site chunks, method x "
                            "fold)", where="each chapter's kernel")
    p.add_argument("--source", default=None,
                   help="folder with _toc.yml, _config.yml, book/ and notebooks/ "
                        "(default: found from the working directory)")
    p.set_defaults(func=_cli)

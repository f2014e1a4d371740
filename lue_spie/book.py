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

from lue_spie.store import atomic_write_json, git_commit, package_versions

__all__ = [
    "NOTEBOOKS",
    "Profile",
    "PROFILES",
    "BookError",
    "NotebookError",
    "get_profile",
    "parse_overrides",
    "chapter_notebooks",
    "notebook_parameters",
    "find_source_root",
    "run_notebook",
    "run_pipeline",
    "build_book",
    "check_html",
    "setup_notebook",
    "prepare_dataset",
    "provenance_table",
    "ConvergenceRecorder",
    "run_site_calibration",
    "pick_sites",
    "obs_and_calib",
    "edge_share",
    "recovery_scores",
    "register_cli",
]

#: The chapters of the book, in the order they run (each may read what the ones before it
#: wrote). The pipeline takes them from ``_toc.yml`` (:func:`chapter_notebooks`); this is
#: the same list, for reference and tests.
NOTEBOOKS: tuple[str, ...] = ("01_lue_model.ipynb", "02_data.ipynb", "03_calibration.ipynb")
#: Files and folders of the book besides the notebooks, relative to the source root.
BOOK_FILES: tuple[str, ...] = ("_config.yml", "_toc.yml", "book")
#: Notebook parameters that hold a path: made absolute (relative to the working directory)
#: before they are injected, so notebooks can run from any folder.
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
        n_show: How many sites the chapters show in per-site figures.
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
    n_show: int = 4

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
            description="short runs for CI: the whole pipeline and the book in about 2 "
                        "minutes on 2 CPU cores",
            n_sites=24, n_years=3, cmaes_max_generations=100, n_show=4,
        ),
        Profile(
            name="demo",
            description="the paper's shape at reduced cost: its 196 sites with 8 of its 10 "
                        "years and shorter CMA-ES runs, about a quarter of an hour on 2 CPU "
                        "cores",
            n_sites=196, n_years=8, cmaes_max_generations=500, cmaes_restarts=1,
            n_show=6,
        ),
        Profile(
            name="paper",
            description="the paper's size (196 sites x 10 years) and long CMA-ES runs: "
                        "hours on a CPU (a GPU helps, see the README)",
            n_sites=196, n_years=10, cmaes_max_generations=1000, cmaes_restarts=2, n_show=8,
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
) -> dict[str, dict[str, Any]]:
    """The parameters injected into each notebook.

    Args:
        profile: The chosen profile.
        overrides: ``-p`` values; each name must be declared by at least one notebook.
        declared: Notebook name -> the names its parameters cell declares.
        results: The results folder (made absolute).

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
    values["results"] = str(Path(results).resolve())
    for name in PATH_PARAMETERS:
        v = values.get(name)
        if name != "results" and isinstance(v, str) and v != "virtual":
            values[name] = str(Path(v).expanduser().resolve())
    return {nb: {k: values[k] for k in names if k in values} for nb, names in declared.items()}


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
    return time.perf_counter() - t0


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
    params = resolve_parameters(prof, dict(overrides or {}), declared, results)
    to_run = _select(only, notebooks)

    results.mkdir(parents=True, exist_ok=True)
    (src / "notebooks").mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    log(f"lue-spie book: profile {prof.name}; results in {results}; build in {build_dir}")
    for i, nb in enumerate(to_run, 1):
        log(f"[{i}/{len(to_run)}] running {nb} ...")
        timings[nb] = run_notebook(root / "notebooks" / nb, src / "notebooks" / nb, params[nb],
                                   cwd=src / "notebooks")
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
        "parameters": params, "timings_s": timings, "results": str(results),
        "html": str(html_dir) if html_dir else None, "git_commit": git_commit(),
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
    root: Path, src: Path, build_dir: Path, *, notebooks: Sequence[str] = NOTEBOOKS,
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


def check_html(html_dir: Path, src: Path, *, notebooks: Sequence[str] = NOTEBOOKS) -> list[str]:
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


# --------------------------------------------------------------------------- chapter helpers
# Small computations the chapters need that belong to no single step: the provenance cell,
# the site calibration with its convergence record, and summaries of a calibration table.
def setup_notebook() -> None:
    """Settings every chapter applies in its imports cell.

    - tqdm's notebook progress bar needs ipywidgets, which the book does not install; the
      chapters run with progress bars off, so tqdm's warning about it (printed to stderr,
      which the book would show as an error block) is silenced;
    - pandas shows at most 30 rows and 4 significant decimals, so tables stay readable;
    - in a Jupyter kernel, matplotlib's inline support is switched on, so a figure returned
      by :mod:`lue_spie.plots` (a Figure outside pyplot) is shown as a PNG.
    """
    import warnings

    import pandas as pd

    warnings.filterwarnings("ignore", message="IProgress not found")
    try:
        from IPython import get_ipython
    except ImportError:  # not in IPython: nothing to set up for figures
        get_ipython = None  # type: ignore[assignment]
    shell = get_ipython() if get_ipython is not None else None
    if shell is not None:
        shell.run_line_magic("matplotlib", "inline")
    pd.set_option("display.max_rows", 30)
    pd.set_option("display.precision", 4)


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
            (:func:`lue_spie.data.synthetic.generate`); unused for real data.
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
        from lue_spie.data import synthetic

        return synthetic.generate(int(n_sites), int(n_years), int(seed), out,
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


def provenance_table(
    parameters: Mapping[str, Any], files: Sequence[str | os.PathLike] = ()
) -> Any:
    """The provenance cell of a chapter: parameters, package versions, git commit, checksums.

    Args:
        parameters: The chapter's parameters (name -> value).
        files: The data files the chapter read or wrote; each is listed with its sha256.

    Returns:
        A pandas DataFrame with columns ``kind``, ``name``, ``value``.
    """
    import pandas as pd

    from lue_spie.store import sha256_file

    rows: list[tuple[str, str, str]] = []
    rows += [("parameter", k, json.dumps(v, default=str)) for k, v in parameters.items()]
    versions = package_versions(("lue-spie", "torch", "numpy", "pandas", "pyarrow", "cma",
                                 "matplotlib", "papermill", "jupyter-book"))
    rows += [("package", k, str(v)) for k, v in versions.items()]
    rows.append(("code", "git commit", str(git_commit())))
    for f in files:
        f = Path(f)
        rows.append(("file sha256", str(f), sha256_file(f) if f.is_file() else "missing"))
    return pd.DataFrame(rows, columns=["kind", "name", "value"])


class ConvergenceRecorder:
    """A ``calibrate_sites`` callback that records each site's best cost per generation.

    Rows are (``site``, ``generation``, ``best_cost``, ``sigma``, ``popsize``), one per site and
    generation of that site's CMA-ES (restarts included). The record is written atomically
    to ``path`` every ``every`` generations and by :meth:`write`; a run resumed from a
    checkpoint appends to the record found at ``path``, so an interrupted and resumed run
    keeps its whole history.
    """

    def __init__(self, path: str | os.PathLike, *, every: int = 10) -> None:
        import pandas as pd

        self.path = Path(path)
        self.every = every
        self.rows: list[dict[str, Any]] = []
        if self.path.is_file():
            self.rows = pd.read_parquet(self.path).to_dict("records")
        self._seen = {(r["site"], int(r["generation"])) for r in self.rows}

    def __call__(self, generation: int, engine: Any) -> None:
        for u in engine.progress():
            key = (u["id"], u["generations"])
            if key in self._seen or u["generations"] == 0:
                continue
            self._seen.add(key)
            self.rows.append({"site": u["id"], "generation": u["generations"],
                              "best_cost": u["best_cost"], "sigma": u["sigma"],
                              "popsize": u["popsize"]})
        if self.every and generation % self.every == 0:
            self.write()

    def frame(self) -> Any:
        """The record as a DataFrame sorted by site and generation."""
        import pandas as pd

        cols = ["site", "generation", "best_cost", "sigma", "popsize"]
        df = pd.DataFrame(self.rows, columns=cols)
        return df.sort_values(["site", "generation"], kind="stable").reset_index(drop=True)

    def write(self) -> Path:
        """Write the record (atomically) and return its path."""
        from lue_spie.store import make_provenance, write_parquet

        return write_parquet(self.frame(), self.path,
                             make_provenance("calibrate.convergence"))


def run_site_calibration(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    sites: Sequence[str] | None = None,
    years: Sequence[int] | None = None,
    seed: int = 0,
    device: str = "auto",
    popsize: int | None = None,
    max_gen: int = 150,
    restarts: int = 0,
    log: Any = print,
) -> dict[str, Path]:
    """Calibrate every site of a dataset folder and write the results folder of the chapter.

    Runs :func:`lue_spie.calibrate.calibrate_sites` with a checkpoint in ``OUT/checkpoint``
    (resumed when the settings and data match; set aside with a note when they do not, e.g.
    after rerunning a chapter with other settings) and a :class:`ConvergenceRecorder`, then
    writes ``calibration.parquet``, ``gpp_calib.parquet`` and ``convergence.parquet`` (each
    with provenance) into ``out_dir``.

    Returns:
        Name -> path of the files written (``table``, ``gpp_calib``, ``convergence``).
    """
    from lue_spie.calibrate import (
        CheckpointMismatch,
        calibrate_sites,
        simulate_calibrated,
        write_results,
    )
    from lue_spie.data import load_dataset

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    dataset = load_dataset(data_dir)
    ckpt = out_dir / "checkpoint"
    conv_path = out_dir / "convergence.parquet"
    years = None if years is None else [int(y) for y in years]
    kwargs = dict(sites=None if sites is None else list(sites), years=years, seed=int(seed),
                  device=device, popsize=popsize, max_gen=int(max_gen),
                  restarts=int(restarts), checkpoint_dir=ckpt, progress=False)
    try:
        recorder = ConvergenceRecorder(conv_path) if ckpt.exists() else None
        if recorder is None:
            conv_path.unlink(missing_ok=True)
            recorder = ConvergenceRecorder(conv_path)
        result = calibrate_sites(dataset, callback=recorder, **kwargs)
    except CheckpointMismatch:
        log(f"note: the checkpoint in {ckpt} is from a run with other settings or data; "
            "starting afresh")
        shutil.rmtree(ckpt)
        conv_path.unlink(missing_ok=True)
        recorder = ConvergenceRecorder(conv_path)
        result = calibrate_sites(dataset, callback=recorder, **kwargs)
    gpp = simulate_calibrated(dataset, result.table, years=years)
    inputs = {"site_day": data_dir / "site_day.parquet", "sites": data_dir / "sites.parquet"}
    paths = write_results(result, out_dir, inputs=inputs, gpp_calib=gpp,
                          extra_settings={"sites": kwargs["sites"], "years": years})
    paths["convergence"] = recorder.write()
    ok = result.table["status"] == "ok"
    log(f"calibrated {int(ok.sum())} of {len(ok)} sites in {result.elapsed_s:.1f} s "
        f"({result.generations} generations, {result.n_evaluations} model evaluations)")
    return paths


def pick_sites(table: Any, n: int, *, by: str = "nse") -> list[str]:
    """``n`` calibrated sites spread evenly over the ranking by ``by`` (best to worst).

    With ``n >= 2`` the best and the worst site are always among them, so figures of a few
    sites show the whole range rather than a lucky draw.
    """
    import numpy as np

    ok = table[table["status"] == "ok"].sort_values(by, ascending=False, kind="stable")
    if len(ok) == 0 or n <= 0:
        return []
    idx = np.unique(np.round(np.linspace(0, len(ok) - 1, min(n, len(ok)))).astype(int))
    return ok["site"].iloc[idx].tolist()


def obs_and_calib(
    data_dir: str | os.PathLike, gpp_calib: Any, sites: Sequence[str], *,
    years: Sequence[int] | None = None,
) -> tuple[Any, Any, Any, Any]:
    """GPP_obs, GPP_calib and the good-day mask of some sites on a common daily grid.

    Args:
        data_dir: The dataset folder.
        gpp_calib: The tidy ``(site, date, GPP_calib)`` table of the calibration.
        sites: Site ids.
        years: Years (default: all).

    Returns:
        ``(dates, GPP_obs, GPP_calib, good)``: a DatetimeIndex and three arrays of shape
        ``(len(sites), days)`` (NaN where a site has no value).
    """
    import numpy as np

    from lue_spie.data import load_dataset, to_forcing

    ds = load_dataset(data_dir)
    fb = to_forcing(ds.site_day, sites=list(sites), years=years)
    wide = (gpp_calib[gpp_calib["site"].isin(sites)]
            .pivot(index="date", columns="site", values="GPP_calib")
            .reindex(index=fb.dates, columns=list(sites)))
    calib = wide.to_numpy(dtype=np.float64).T
    return fb.dates, fb.GPP_obs.cpu().numpy(), calib, fb.good.cpu().numpy()


def edge_share(table: Any) -> Any:
    """Share of sites whose calibrated value of each parameter lies on a bound.

    Only sites where the parameter is free count (the lag mask fixes ``alpha_T`` and
    ``alpha_W`` at 0 elsewhere); a parameter free nowhere gives NaN.

    Args:
        table: A calibration table (``status``, ``koeppen``, ``edge_<param>`` columns).

    Returns:
        A pandas Series indexed by parameter name.
    """
    import numpy as np
    import pandas as pd

    from lue_spie.params import PARAMETERS, lag_mask

    ok = table[table["status"] == "ok"]
    free = lag_mask(list(ok["koeppen"])) if len(ok) else np.zeros((0, len(PARAMETERS)), bool)
    out = {}
    for j, p in enumerate(PARAMETERS):
        n_free = int(free[:, j].sum())
        out[p] = float(ok[f"edge_{p}"].to_numpy(bool)[free[:, j]].sum() / n_free) \
            if n_free else float("nan")
    return pd.Series(out, name="share at a bound")


def recovery_scores(truth: Any, table: Any) -> Any:
    """How well calibration recovers the true parameters (virtual FLUXNET).

    For each parameter, over the sites where it is free: NSE and R2 of the calibrated against
    the true values, the median absolute error as a share of the parameter's range, and the
    number of sites.

    Returns:
        A pandas DataFrame indexed by parameter name.
    """
    import numpy as np
    import pandas as pd

    from lue_spie.metrics import nse, r2
    from lue_spie.params import BOUNDS, PARAMETERS, lag_mask

    ok = table[table["status"] == "ok"]
    m = truth.merge(ok, on="site", suffixes=("_true", ""))
    free = lag_mask(list(m["koeppen"])) if len(m) else np.zeros((0, len(PARAMETERS)), bool)
    rows = []
    for j, p in enumerate(PARAMETERS):
        t = m[f"{p}_true"].to_numpy(float)[free[:, j]]
        e = m[p].to_numpy(float)[free[:, j]]
        width = BOUNDS[j, 1] - BOUNDS[j, 0]
        rows.append({"parameter": p, "sites": int(len(t)),
                     "NSE": nse(t, e) if len(t) else np.nan,
                     "R2": r2(t, e) if len(t) else np.nan,
                     "median |error| / range": float(np.median(np.abs(e - t)) / width)
                     if len(t) else np.nan})
    return pd.DataFrame(rows).set_index("parameter")


# ---------------------------------------------------------------------------------------- CLI
def _cli(args: argparse.Namespace) -> int:
    try:
        run_pipeline(
            args.profile, overrides=parse_overrides(args.parameters), build_dir=args.build_dir,
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
        f"{prof.cmaes_max_generations}, restarts {prof.cmaes_restarts}"
        for prof in PROFILES.values())
    p = subparsers.add_parser(
        "book", help="run the chapter notebooks with papermill and build the Jupyter Book",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the chapter notebooks in order with papermill (parameters from a\n"
                    "profile, -p overrides), then build the Jupyter Book from the executed\n"
                    "copies with warnings as errors and check the HTML.",
        epilog=f"profiles:\n{profiles}\n\nexample:\n  lue-spie book --profile ci -p "
               "n_sites 12 -p seed 7 --results results/small --build-dir build/small",
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
    p.add_argument("--source", default=None,
                   help="folder with _toc.yml, _config.yml, book/ and notebooks/ "
                        "(default: found from the working directory)")
    p.set_defaults(func=_cli)

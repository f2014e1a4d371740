"""The book pipeline: papermill-parameterised chapters, then a Jupyter Book build.

``lue-spie book --profile ci|demo|paper`` (:mod:`lue_spie.book.cli`) does, in order:

1. picks the profile (:mod:`lue_spie.book.profiles`) and applies the ``-p NAME VALUE``
   overrides (values parsed as YAML and checked against the knob's type before anything runs);
2. runs every chapter notebook of ``notebooks/`` in order with papermill into the build
   folder (:mod:`lue_spie.book.execute`). Each notebook receives only the parameters its
   ``parameters`` cell declares. Chapters hand results to each other through files in the
   results folder (:class:`lue_spie.layout.Layout`), never through kernel state;
3. copies the book pages beside the executed copies and builds the Jupyter Book (1.x) with
   execution off, warnings as errors and nitpicky cross-references, then checks the HTML
   (:mod:`lue_spie.book.build`).

A failing cell fails the command with a message that names the notebook and the cell; the
executed copy (with the traceback) stays in the build folder.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lue_spie.book.build import build_book
from lue_spie.book.execute import (
    BookError,
    NotebookError,
    _first_line,
    _relative,
    chapter_notebooks,
    find_source_root,
    notebook_parameters,
    resolve_parameters,
    run_notebook,
)
from lue_spie.book.profiles import Profile, get_profile
from lue_spie.book.publish import PublishSettings
from lue_spie.book.rerun import write_run_record
from lue_spie.layout import BookBuild, BookSources, Layout
from lue_spie.store import atomic_write_json, git_commit, package_versions

__all__ = ["BookResult", "run_pipeline"]


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
    with_html: bool = True,
    source_root: str | os.PathLike | None = None,
    notebooks: Sequence[str] | None = None,
    publish: PublishSettings | None = None,
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
        with_html: Build the Jupyter Book after running the notebooks.
        source_root: Folder with ``_toc.yml``, ``_config.yml``, ``book/`` and ``notebooks/``.
        notebooks: The notebooks to run, in order (file names inside ``notebooks/``);
            default: the chapters listed in ``_toc.yml`` (:func:`chapter_notebooks`).
        publish: Repository and launch buttons of a published book (default: the profile's
            ``publish``, off unless it names a repository).
        log: Where progress lines go.

    Raises:
        NotebookError: a cell failed (names the notebook and the cell).
        BookError: the book build or the HTML checks failed.
        ValueError, KeyError, FileNotFoundError: bad arguments.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    root = find_source_root(source_root)
    sources = BookSources(root)
    build = BookBuild(Path(build_dir or BookBuild.of(prof.name).folder).resolve())
    build_dir = Path(build.folder)
    results = Path(results or Layout.of(prof.name).root).resolve()
    src = Path(build.src.root)
    t_start = time.perf_counter()
    notebooks = tuple(notebooks) if notebooks is not None else chapter_notebooks(root)

    missing = [nb for nb in notebooks if not sources.notebook(nb).is_file()]
    if missing:
        raise FileNotFoundError(f"{sources.notebooks_dir}: missing chapter notebook(s) "
                                f"{missing}")
    declared = {nb: notebook_parameters(sources.notebook(nb)) for nb in notebooks}
    params = resolve_parameters(prof, dict(overrides or {}), declared, results, root=root)
    to_run = _select(only, notebooks)

    results.mkdir(parents=True, exist_ok=True)
    # A chapter rerun by hand against this folder takes the settings it does not give from
    # this record (lue_spie.book.rerun).
    write_run_record(results, profile=prof.name, overrides=dict(overrides or {}),
                     parameters={k: v for p in params.values() for k, v in p.items()})
    build.src.notebooks_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    log(f"lue-spie book: profile {prof.name}; results in {results}; build in {build_dir}")
    for i, nb in enumerate(to_run, 1):
        log(f"[{i}/{len(to_run)}] running {nb} ...")
        # Kernels run in the source root: the injected paths are relative to it.
        timings[nb] = run_notebook(sources.notebook(nb), build.executed(nb), params[nb],
                                   cwd=root)
        log(f"[{i}/{len(to_run)}] {nb} done in {timings[nb]:.1f} s")
        _check_streams(build.executed(nb))

    html_dir = None
    if with_html:
        absent = [nb for nb in notebooks if not build.executed(nb).is_file()]
        if absent:
            raise BookError(
                f"cannot build the book: no executed copy of {absent} in "
                f"{build.src.notebooks_dir}; run the whole pipeline once (without --only) or "
                "pass --no-build"
            )
        t0 = time.perf_counter()
        html_dir = build_book(root, src, build_dir, notebooks=notebooks,
                              publish=publish or prof.publish, log=log)
        timings["book"] = time.perf_counter() - t0
        log(f"book built in {timings['book']:.1f} s: {html_dir / 'index.html'}")
    timings["total"] = time.perf_counter() - t_start
    atomic_write_json(build.record, {
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

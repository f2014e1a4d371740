"""Building the book from the executed chapters, and checking the HTML.

:func:`build_book` copies the book pages (``_config.yml``, ``_toc.yml``, ``book/``) beside the
executed copies and builds the Jupyter Book (1.x) with execution off, warnings as errors
(``-W``) and nitpicky cross-references (``-n``); :func:`check_html` then checks a page for
every chapter, every ``<img>`` present on disk, every figure of an executed notebook on its
page, and no error or stderr output block.
"""

from __future__ import annotations

import html.parser
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from lue_spie.book.execute import BookError
from lue_spie.book.publish import PublishSettings, configure
from lue_spie.layout import BookBuild, BookSources

__all__ = ["BOOK_FILES", "build_book", "check_html"]

#: Files and folders of the book besides the notebooks, relative to the source root.
BOOK_FILES: tuple[str, ...] = (BookSources.CONFIG, BookSources.TOC, BookSources.PAGES)


def build_book(
    root: Path, src: Path, build_dir: Path, *, notebooks: Sequence[str],
    publish: PublishSettings | None = None, log: Any = print,
) -> Path:
    """Copy the book pages beside the executed notebooks, build the HTML and check it.

    The build uses ``-W --keep-going -n``: any Sphinx warning (a broken cross-reference or
    citation, a missing file) fails it. With a ``publish`` naming a repository, the copied
    ``_config.yml`` turns on the repository and launch buttons
    (:func:`lue_spie.book.publish.configure`).

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
    if publish is not None and publish.published:
        config_file = src / BookSources.CONFIG
        config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        config_file.write_text(yaml.safe_dump(configure(config, publish), sort_keys=False),
                               encoding="utf-8")
        log(f"publishing buttons on: repository {publish.repository_url}")
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build",
           str(src), "--path-output", str(build_dir), "--builder", "html", "--all",
           "-W", "--keep-going", "-n", "-q"]
    log("building the book: jupyter-book build -W -n --keep-going ...")
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}):\n{tail}")
    html_dir = BookBuild(build_dir).html
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
        page = html_dir / BookSources.NOTEBOOKS / f"{stem}.html"
        if not page.is_file():
            problems.append(f"chapter {nb}: no page {page.relative_to(html_dir)}")
            continue
        parser = _PageParser()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        n_fig = _count_figures(BookSources(src).notebook(nb))
        n_img = sum(1 for i in parser.images if "_images/" in i)
        if n_img < n_fig:
            problems.append(f"chapter {nb}: {n_fig} figure output(s) in the executed notebook "
                            f"but only {n_img} image(s) on its page")
    return problems

"""The book: profiles, running the chapters, building the Jupyter Book (``lue-spie book``).

- :mod:`~lue_spie.book.profiles`: :class:`Profile`, composed of the steps' settings, and the
  ``ci``, ``demo`` and ``paper`` profiles; its knobs are the chapters' parameters;
- :mod:`~lue_spie.book.execute`: the chapters, their parameters, one chapter run with
  papermill;
- :mod:`~lue_spie.book.build`: the Jupyter Book build from the executed chapters and the HTML
  checks;
- :mod:`~lue_spie.book.pipeline`: all of it in order (:func:`run_pipeline`);
- :mod:`~lue_spie.book.chapter`: the helpers the chapter notebooks call (set-up, site
  picking, the provenance table);
- :mod:`~lue_spie.book.cli`: ``lue-spie book``.
"""

from lue_spie.book.build import build_book, check_html
from lue_spie.book.execute import (
    BookError,
    NotebookError,
    chapter_notebooks,
    declared_type,
    find_source_root,
    notebook_parameters,
    parse_overrides,
    resolve_parameters,
    run_notebook,
)
from lue_spie.book.pipeline import BookResult, run_pipeline
from lue_spie.book.profiles import PROFILES, Profile, get_profile

__all__ = [
    "Profile", "PROFILES", "BookError", "BookResult", "NotebookError", "get_profile",
    "parse_overrides", "chapter_notebooks", "notebook_parameters", "resolve_parameters",
    "declared_type",
    "find_source_root", "run_notebook", "run_pipeline", "build_book", "check_html",
]

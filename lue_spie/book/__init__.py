"""The book: profiles, the papermill pipeline, and the helpers the chapter notebooks use."""

from lue_spie.book.pipeline import (
    PROFILES,
    BookError,
    NotebookError,
    Profile,
    _check_streams,
    _cli,
    _select,
    build_book,
    chapter_notebooks,
    check_html,
    find_source_root,
    get_profile,
    notebook_parameters,
    parse_overrides,
    register_cli,
    resolve_parameters,
    run_notebook,
    run_pipeline,
)

__all__ = [
    "Profile", "PROFILES", "BookError", "NotebookError", "get_profile", "parse_overrides",
    "chapter_notebooks", "notebook_parameters", "resolve_parameters", "find_source_root",
    "run_notebook", "run_pipeline", "build_book", "check_html", "register_cli",
    "_check_streams", "_cli", "_select",
]

"""Numbers and sentences of the book's prose, glued from the chapters that compute them.

A chapter computes a value and *glues* it (myst-nb's ``glue``): the executed notebook keeps
it as an output under a key, and any page of the book pastes it with the ``glue:text`` role,
also from another page (``{glue:text}`../notebooks/09_assessment.ipynb::spie_median:s```).
The strict build fails on a key that no chapter glued, so a page cannot show a number its
build did not compute.

The values are glued as preformatted text (:func:`glue_text`): the code that computes a
number also decides how many digits it shows, and a missing value reads ``n/a``.
:func:`glued_values` reads the glued values back from an executed notebook, and
:func:`glue_references` lists the keys a page pastes, for the tests.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["glue_text", "glue_table", "glued_values", "glue_references", "format_value"]

#: A ``glue:text`` reference to another document: ``{glue:text}`DOC::KEY:FMT```.
_REFERENCE = re.compile(r"\{glue:text\}`(?P<doc>[^`:]+\.ipynb)::(?P<key>[\w.-]+):(?P<fmt>[^`]*)`")


def format_value(value: Any, fmt: str = "") -> str:
    """A value as the prose shows it: ``fmt`` applied; None and NaN read ``n/a``."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, fmt) if fmt else str(value)


def glue_text(key: str, value: Any, fmt: str = "") -> str:
    """Glue a value as text under ``key`` (nothing is displayed); returns the text.

    Args:
        key: The key pages paste it by.
        value: A number or a sentence.
        fmt: A format specification for numbers (``".3f"``, ``".0%"``).
    """
    from myst_nb import glue

    text = format_value(value, fmt)
    glue(key, text, display=False)
    return text


def glue_table(key: str, table: pd.DataFrame) -> pd.DataFrame:
    """Glue a table under ``key`` (pasted as HTML by the ``glue`` directive); returns it.

    The HTML is written in full (no cell is cut to pandas' display width), with the class
    that the book's theme styles tables of outputs by.
    """
    from IPython.display import HTML
    from myst_nb import glue

    glue(key, HTML(table.to_html(classes="dataframe", border=0, index_names=False)),
         display=False)
    return table


def glued_values(executed: str | Path) -> dict[str, str]:
    """Key -> glued text of an executed notebook (its text/plain, quotes removed)."""
    import ast

    nb = json.loads(Path(executed).read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []):
            meta = o.get("metadata", {}).get("scrapbook", {})
            if "name" in meta:
                key = f"{meta.get('mime_prefix', '')}text/plain"
                text = "".join(o.get("data", {}).get(key, ""))
                try:
                    value = ast.literal_eval(text)
                except (SyntaxError, ValueError):
                    value = text
                out[meta["name"]] = value if isinstance(value, str) else text
    return out


def glue_references(text: str) -> list[tuple[str, str, str]]:
    """The (document, key, format) of every cross-document ``glue:text`` role in a page."""
    return [(m["doc"], m["key"], m["fmt"]) for m in _REFERENCE.finditer(text)]

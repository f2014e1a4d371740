"""Reading what a check cell passes: the student's answer as a number, numbers, strings,
a month or a count, and the chapter's results folder. Each helper raises
:class:`~lue_spie.teaching.exercises.base.Hint` for an answer of the wrong form, so a
checker only judges answers it can read."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lue_spie.teaching.exercises.base import Hint


def _number(value: Any, what: str) -> float:
    """A real number from a Python/NumPy/torch scalar, or :class:`Hint`."""
    if isinstance(value, bool):
        raise Hint(f"expected a number for {what}, got {value!r}")
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, str):
        raise Hint(f"expected a number for {what}, got the string {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise Hint(f"expected a number for {what}, got {type(value).__name__}") from None
    if not math.isfinite(x):
        raise Hint(f"{what} is {x}, not a finite number")
    return x


def _numbers(value: Any, n: int, what: str) -> list[float]:
    """``n`` numbers from a sequence, array or tensor, or :class:`Hint`."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise Hint(f"expected {what}")
    items = list(value)
    if len(items) != n:
        raise Hint(f"expected {what}; got {len(items)} value(s)")
    return [_number(v, what) for v in items]


def _strings(value: Any, what: str) -> set[str]:
    """A set of strings from a list, set, array, Series or Index, or :class:`Hint`."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        raise Hint(f"expected {what}, not a whole table: take the column you need, e.g. "
                   "`table['PFT'].unique()`")
    if isinstance(value, str):
        return {value}
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, Iterable):
        raise Hint(f"expected {what}")
    out = set()
    for v in value:
        if not isinstance(v, str):
            raise Hint(f"expected {what}; {v!r} is not a string")
        out.add(v.strip())
    return out


_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")


def _month(value: Any, what: str) -> int:
    """A month 1-12 from a number or an English month name (or its first three letters)."""
    if isinstance(value, str):
        key = value.strip().lower()
        for i, name in enumerate(_MONTHS, 1):
            if key == name or (len(key) >= 3 and name.startswith(key)):
                return i
        raise Hint(f"{value!r} is not a month: give {what} as a number 1-12 or a name")
    x = _number(value, what)
    if x != int(x) or not 1 <= x <= 12:
        raise Hint(f"{x:g} is not a month: give {what} as a number 1-12 or a name")
    return int(x)


def _results(results: Any) -> Path:
    path = Path(results)
    if not path.is_dir():
        raise FileNotFoundError(f"results folder {path} not found (from the working "
                                f"directory {Path.cwd()}); pass the chapter's `results`")
    return path


def _count(value: Any, what: str) -> int:
    """A non-negative whole number, or :class:`Hint`."""
    x = _number(value, what)
    if x != int(x) or x < 0:
        raise Hint(f"{x:g} cannot be the answer: the answer is a count, a whole number "
                   "that is not negative.")
    return int(x)


def _string(value: Any, what: str, column: str | None = None, *,
            advice: str | None = None) -> str:
    """One string (a site id, PFT, parameter name), or :class:`Hint` naming the column (or
    giving ``advice``)."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if not isinstance(value, str):
        advice = advice or f"Take the `{column}` value of the row, not the whole row."
        raise Hint(f"expected {what}; got {type(value).__name__}. {advice}")
    return value.strip()

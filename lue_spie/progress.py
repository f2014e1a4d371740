"""Progress that fits where it goes: a bar in a terminal or notebook, plain lines in a log.

A tqdm bar redraws itself with carriage returns; written to a file or a CI log, every redraw
is a partial line. :func:`progress_bar` therefore picks by destination:

- a terminal (the stream is a TTY), or a Jupyter kernel with an interactive front end: a tqdm
  bar (``tqdm.auto``: the widget where ipywidgets is installed, else the text bar that
  Jupyter redraws in place);
- anything else (a pipe, a file, a CI log): :class:`LineProgress`, one plain line each time
  another tenth of the work is done (``LUE_SPIE_PROGRESS_EVERY`` sets the step in percent),
  and a last line with the total time.

``LUE_SPIE_PROGRESS=bar|lines|off`` overrides the choice (``off``: nothing at all).
Both kinds take the calls the package makes (``update``, ``set_postfix``,
``set_postfix_str``, ``close``, use as a context manager or an iterable wrapper).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

__all__ = ["LineProgress", "on_terminal", "progress_bar", "progress_mode"]

_MODES = ("bar", "lines", "off")


def progress_mode(file: IO[str] | None = None) -> str:
    """``"bar"``, ``"lines"`` or ``"off"`` for a stream (default: standard error)."""
    forced = os.environ.get("LUE_SPIE_PROGRESS", "").strip().lower()
    if forced:
        if forced not in _MODES:
            raise ValueError(f"LUE_SPIE_PROGRESS={forced!r}: expected one of {_MODES}")
        return forced
    if on_terminal(file):
        return "bar"
    return "bar" if _interactive_kernel() else "lines"


def on_terminal(file: IO[str] | None = None) -> bool:
    """Whether the stream (default: standard error) is a terminal.

    A default of "progress only where someone watches" uses this: a chapter run by
    papermill (whose kernel is not a terminal, and whose stderr the book would show as an
    error block) then reports nothing.
    """
    stream = file if file is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _interactive_kernel() -> bool:
    """In a Jupyter kernel that a person drives (papermill's runs are not)."""
    if "ipykernel" not in sys.modules or "papermill" in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class LineProgress:
    """A progress report as plain lines: ``desc: N% (n/total unit) T s, postfix``.

    Args:
        iterable: Optional iterable to wrap (its length is the total when not given).
        total: Amount of work.
        initial: Work already done (a resumed run).
        desc: What is being done.
        unit: Unit of the work.
        every: Percent of the total between two lines.
        file: Where the lines go (default: standard error).
    """

    def __init__(self, iterable: Iterable[Any] | None = None, *, total: float | None = None,
                 initial: float = 0, desc: str = "", unit: str = "it", every: float = 10.0,
                 file: IO[str] | None = None) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.n = iterable, total, initial
        self.desc, self.unit, self.every = desc, unit, every
        self.file = file
        self.postfix = ""
        self._t0 = time.perf_counter()
        self._next = self._threshold(initial)
        self._closed = False

    def _threshold(self, n: float) -> float:
        if not self.total:
            return float("inf")
        step = self.total * self.every / 100.0
        return (int(n / step) + 1) * step if step > 0 else float("inf")

    def _line(self, final: bool = False) -> str:
        head = f"{self.desc}: " if self.desc else ""
        elapsed = time.perf_counter() - self._t0
        if self.total:
            pct = 100.0 * self.n / self.total
            body = f"{pct:3.0f}% ({self.n:g}/{self.total:g} {self.unit})"
        else:
            body = f"{self.n:g} {self.unit}"
        tail = f", {self.postfix}" if self.postfix else ""
        return f"{head}{body} {elapsed:.0f} s{' done' if final else ''}{tail}"

    def _print(self, final: bool = False) -> None:
        print(self._line(final), file=self.file if self.file is not None else sys.stderr,
              flush=True)

    def update(self, n: float = 1) -> None:
        """Count ``n`` more units of work; print a line when another step is passed."""
        self.n += n
        if self.n >= self._next and (not self.total or self.n < self.total):
            self._print()
            self._next = self._threshold(self.n)

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True,
                    **kwargs: Any) -> None:
        """Extra ``name=value`` shown on the next line."""
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Extra text shown on the next line."""
        self.postfix = s

    def close(self) -> None:
        """Print the last line (once)."""
        if not self._closed:
            self._closed = True
            self._print(final=True)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LineProgress: nothing to iterate (no iterable given)")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()


class _Off(LineProgress):
    def _print(self, final: bool = False) -> None:
        pass


def progress_bar(iterable: Iterable[Any] | None = None, *, total: float | None = None,
                 initial: float = 0, desc: str = "", unit: str = "it", enabled: bool = True,
                 file: IO[str] | None = None) -> Any:
    """A progress report for the place it is written to (see the module docstring).

    Args:
        iterable: Optional iterable to wrap.
        total: Amount of work (default: the iterable's length).
        initial: Work already done.
        desc: What is being done.
        unit: Unit of the work.
        enabled: False: report nothing (the object still takes every call).
        file: The stream (default: standard error).
    """
    mode = progress_mode(file) if enabled else "off"
    if mode == "bar":
        try:  # the widget needs ipywidgets; tqdm.auto would warn on stderr without it
            import ipywidgets  # noqa: F401
            from tqdm.auto import tqdm
        except ImportError:
            from tqdm.std import tqdm
        return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, file=file)
    raw = os.environ.get("LUE_SPIE_PROGRESS_EVERY", "10")
    try:
        every = float(raw)
    except ValueError:
        every = -1.0
    if not 0 < every <= 100:
        raise ValueError(f"LUE_SPIE_PROGRESS_EVERY={raw!r}: expected a percentage in (0, 100]")
    cls = LineProgress if mode == "lines" else _Off
    return cls(iterable, total=total, initial=initial, desc=desc, unit=unit, every=every,
               file=file)

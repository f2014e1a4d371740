"""A chapter rerun by hand uses the settings of the build that filled its results folder.

``lue-spie book`` injects every parameter of every chapter and records them in the results
folder (:attr:`lue_spie.layout.Layout.run_record`). A reader who reruns one chapter with
papermill gives only a few (``-p results results/demo -p seed 7``); the chapter's own
defaults are those of the ``ci`` profile, so without this module a rerun against a ``demo``
folder would quietly run ``ci`` settings on ``demo`` data (a structural-error twin the demo
build left off, say). :func:`settle_parameters`, called in the cell after the parameters
cell, therefore takes every parameter the rerun did not give from the run record, and says
in one line which it took and which were given.

Which names were given is read from papermill's injected cell (its source starts with
``# Parameters``) in the kernel's input history; a chapter opened and run in Jupyter without
papermill has none, so it takes every recorded value.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lue_spie.layout import Layout
from lue_spie.store import atomic_write_json

__all__ = ["SettledParameters", "given_parameters", "settle_parameters", "write_run_record"]

#: The first line of the cell papermill injects below a notebook's ``parameters`` cell.
INJECTED_HEADER = "# Parameters"
#: Parameters that say where a chapter works, never taken from a record.
LOCATION = ("results",)


def write_run_record(results: str | Path, *, profile: str, parameters: Mapping[str, Any],
                     overrides: Mapping[str, Any]) -> Path:
    """Record the settings of a book build in its results folder (atomically).

    Args:
        results: The results folder.
        profile: The profile's name.
        parameters: Every knob's value as injected (name -> value, JSON-able).
        overrides: The ``-p`` values of the build.
    """
    path = Layout(results).run_record
    record = {"profile": profile, "overrides": dict(overrides),
              "parameters": {k: v for k, v in parameters.items() if k not in LOCATION}}
    atomic_write_json(path, record)
    return path


def given_parameters(history: list[str] | None = None) -> set[str] | None:
    """The names papermill injected into this kernel (None outside IPython).

    Args:
        history: Cell sources in execution order (default: this kernel's input history).
    """
    if history is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return None
        shell = get_ipython()
        if shell is None:
            return None
        history = list(shell.history_manager.input_hist_raw)
    names: set[str] = set()
    for source in history:
        lines = source.strip().splitlines()
        if lines and lines[0].strip() == INJECTED_HEADER:
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            names = {t.id for node in tree.body if isinstance(node, ast.Assign)
                     for t in node.targets if isinstance(t, ast.Name)}
    return names


@dataclass
class SettledParameters:
    """What :func:`settle_parameters` did.

    Attributes:
        profile: The profile the results folder was built with (None: no record).
        record: The run record's path (None: none found).
        given: Names the rerun gave (papermill's injected cell).
        from_record: Names taken from the record.
        differ: Of those, name -> recorded value where it differs from the chapter's default.
    """

    profile: str | None
    record: Path | None
    given: list[str] = field(default_factory=list)
    from_record: list[str] = field(default_factory=list)
    differ: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for the chapter's output."""
        given = ", ".join(self.given) or "none"
        if self.record is None:
            return ("Parameters: no run record in the results folder; this chapter's "
                    f"defaults (the ci profile's) apply to all but the given ({given}).")
        if not self.from_record:
            return f"Parameters: profile {self.profile}, all given by the book build."
        differ = ", ".join(f"{k}={v!r}" for k, v in self.differ.items()) or "none"
        return (f"Parameters: profile {self.profile} as recorded in the results folder, "
                f"except the given ({given}); recorded values that differ from this "
                f"chapter's defaults: {differ}.")


def settle_parameters(namespace: MutableMapping[str, Any], *,
                      history: list[str] | None = None, quiet: bool = False,
                      glue: bool = True) -> SettledParameters:
    """Fill the parameters a rerun did not give from the results folder's run record.

    Call it in the cell after the ``parameters`` cell with ``globals()``: the chapter's
    parameters are variables of the notebook. Names given by papermill (the injected cell)
    are kept; every other recorded parameter the chapter declares takes the recorded value.

    Args:
        namespace: The notebook's variables (``globals()``); must hold ``results``.
        history: Cell sources in execution order (default: the kernel's history).
        quiet: Do not print the one-line summary.
        glue: In a notebook, glue ``profile`` (the recorded profile, or ``"ci"`` without a
            record: the chapters' defaults) and ``results_dir`` (the results folder), so that
            a page's prose and rerun commands name the build that made them.

    Raises:
        ValueError: the run record exists but cannot be read (names the file).
    """
    results = Path(str(namespace["results"]))
    path = Layout(results).run_record
    given = given_parameters(history)
    given_names = sorted(given or ())
    if not path.is_file():
        out = SettledParameters(None, None, given_names)
    else:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            recorded = dict(record["parameters"])
            profile = str(record["profile"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a readable run record of a book build ({err}); "
                             "delete it to use this chapter's defaults") from None
        declared = [k for k in recorded if k in namespace and k not in LOCATION]
        not_given = [k for k in declared if given is None or k not in given]
        differ = {k: recorded[k] for k in not_given if namespace[k] != recorded[k]}
        for k in not_given:
            namespace[k] = recorded[k]
        out = SettledParameters(profile, path, given_names, not_given, differ)
    if not quiet:
        print(out.describe())
    if glue and given is not None:
        from lue_spie.book.glue import glue_text

        glue_text("profile", out.profile or "ci")
        glue_text("results_dir", results.as_posix())
    return out

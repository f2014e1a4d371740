"""What every chapter notebook shares: its set-up, site choice for figures, provenance cell.

Chapters compute nothing themselves (the package's step modules do); they call these three
helpers so that every chapter looks and records alike:

- :func:`setup_notebook` in the imports cell (quiet progress bars, compact tables, figures);
- :func:`pick_sites` to choose a few sites spread over a ranking for per-site figures;
- :func:`provenance_table` in the closing *Provenance* cell (parameters, versions, commit,
  checksums of the files read and written).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lue_spie.store import git_commit, package_versions, sha256_file

__all__ = ["setup_notebook", "pick_sites", "provenance_table"]


def setup_notebook(torch_threads: int = 1) -> None:
    """Settings every chapter applies in its imports cell.

    - tqdm's notebook progress bar needs ipywidgets, which the book does not install; the
      chapters run with progress bars off, so tqdm's warning about it (printed to stderr,
      which the book would show as an error block) is silenced;
    - pandas shows at most 30 rows and 4 significant decimals, so tables stay readable;
    - in a Jupyter kernel, matplotlib's inline support is switched on, so a figure returned
      by :mod:`lue_spie.plots` (a Figure outside pyplot) is shown as a PNG;
    - threads (:func:`lue_spie.execution.apply_threads`): torch computes with
      ``torch_threads`` threads (default 1, as the command line: torch's default thread count
      made the calibration chapter many times slower on a small busy machine, see
      benchmarks/RESULTS.md), the fused evaluation kernel of the CMA-ES searches with the
      cores the notebook's process may use (affinity and cgroup quota, never more); with
      ``workers`` each Dask worker gets its share of the cores instead.
    """
    import warnings

    from lue_spie.execution import apply_threads

    apply_threads(torch_threads=int(torch_threads))

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


def pick_sites(table: pd.DataFrame, n: int, *, by: str = "nse") -> list[str]:
    """``n`` sites spread evenly over the ranking by ``by`` (best to worst).

    Rows with a ``status`` column other than ``"ok"`` are left out. With ``n >= 2`` the best
    and the worst site are always among them, so figures of a few sites show the whole range
    rather than a lucky draw.
    """
    ok = table[table["status"] == "ok"] if "status" in table.columns else table
    ok = ok.dropna(subset=[by]).sort_values(by, ascending=False, kind="stable")
    if len(ok) == 0 or n <= 0:
        return []
    idx = np.unique(np.round(np.linspace(0, len(ok) - 1, min(n, len(ok)))).astype(int))
    return ok["site"].iloc[idx].tolist()


def _display_path(path: Path) -> str:
    """A path as the reader should see it: relative to the working directory when possible."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path.name


def provenance_table(
    parameters: Mapping[str, Any], files: Sequence[str | os.PathLike] = ()
) -> pd.DataFrame:
    """The provenance cell of a chapter: parameters, package versions, git commit, checksums.

    Args:
        parameters: The chapter's parameters (name -> value).
        files: The data files the chapter read or wrote; each is listed (relative to the
            working directory) with its sha256.

    Returns:
        A table with columns ``kind``, ``name``, ``value``.
    """
    rows: list[tuple[str, str, str]] = []
    rows += [("parameter", k, json.dumps(v, default=str)) for k, v in parameters.items()]
    versions = package_versions(("lue-spie", "torch", "numpy", "pandas", "pyarrow", "cma",
                                 "scikit-learn", "shap", "captum", "pyrealm", "matplotlib",
                                 "papermill", "jupyter-book"))
    rows += [("package", k, str(v)) for k, v in versions.items()]
    rows.append(("code", "git commit", str(git_commit())))
    for f in files:
        f = Path(f)
        rows.append(("file sha256", _display_path(f), sha256_file(f) if f.is_file()
                     else "missing"))
    return pd.DataFrame(rows, columns=["kind", "name", "value"])

"""Compare two results folders table by table: are the numbers of two runs the same?

    .venv/bin/python benchmarks/compare_results.py RESULTS_A RESULTS_B [--atol 0]

Every parquet table of A (checkpoints and unit work folders aside) is read with its twin in B
and compared column by column: numbers by their largest absolute difference (NaN equal to
NaN), everything else exactly. Wall-time columns (``seconds`` ...) are skipped: they are
not results. Prints one line per column that differs by more than ``--atol`` and exits 1
when any does (or when a table is missing on either side), 0 when the runs agree.

This is how a restructuring of the code is shown to leave the book's numbers unchanged: run
the same profile before and after into two folders, then compare them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

#: Columns that hold wall or CPU times, not results.
TIMING_COLUMNS = {"seconds", "seconds_SHAP", "seconds_LRP", "seconds_PD", "elapsed_s"}
#: Folders of running work (checkpoints) rather than results.
WORK_FOLDERS = {"work", "chunks", "checkpoint"}


def tables(root: Path) -> set[Path]:
    """The result tables below ``root``, relative to it."""
    return {p.relative_to(root) for p in root.rglob("*.parquet")
            if not WORK_FOLDERS & set(p.relative_to(root).parts)}


def column_differences(a: pd.DataFrame, b: pd.DataFrame) -> list[tuple[str, float]]:
    """``(column, largest difference)`` of every column that differs (inf: not comparable)."""
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return [(f"shape {a.shape} / {b.shape} or columns", float("inf"))]
    out = []
    for c in a.columns:
        if c in TIMING_COLUMNS:
            continue
        x, y = a[c], b[c]
        if pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x) \
                and pd.api.types.is_numeric_dtype(y):
            xv, yv = x.to_numpy(np.float64), y.to_numpy(np.float64)
            same_nan = np.isnan(xv) & np.isnan(yv)
            d = np.where(same_nan, 0.0, np.abs(xv - yv))
            worst = float(np.nan_to_num(d, nan=np.inf).max()) if len(d) else 0.0
            if worst > 0:
                out.append((c, worst))
        elif not x.fillna("<NA>").astype(str).equals(y.fillna("<NA>").astype(str)):
            out.append((c, float("inf")))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--atol", type=float, default=0.0,
                        help="largest absolute difference of a number taken as equal")
    args = parser.parse_args(argv)
    ta, tb = tables(args.a), tables(args.b)
    differ = []
    for rel in sorted(ta & tb):
        for column, worst in column_differences(pd.read_parquet(args.a / rel),
                                                pd.read_parquet(args.b / rel)):
            if worst > args.atol:
                differ.append((worst, str(rel), column))
    print(f"{len(ta & tb)} tables compared; only in A: {sorted(map(str, ta - tb))}; only in B: "
          f"{sorted(map(str, tb - ta))}; {len(differ)} column(s) differ by more than "
          f"{args.atol}")
    for worst, rel, column in sorted(differ, reverse=True):
        print(f"  {worst:.3g}  {rel}  {column}")
    return 1 if differ or ta != tb else 0


if __name__ == "__main__":
    sys.exit(main())

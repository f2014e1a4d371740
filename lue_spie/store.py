"""The results store: atomic file writes and JSON provenance records.

Every table a step hands to the next one (tidy data, calibrated parameters, predictions,
metrics) is a parquet file written atomically (to a temporary file in the same folder, then
renamed), so an interrupted run never leaves a half-written file. Next to each table
``NAME.parquet`` lies ``NAME.provenance.json``: what produced it (step, settings, seed),
from what (input files and their sha256), with which code (package versions, git commit).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from lue_spie.layout import TablesFolder, provenance_of

__all__ = [
    "sha256_file",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "write_parquet",
    "write_table",
    "read_parquet",
    "provenance_path",
    "read_provenance",
    "make_provenance",
    "git_commit",
    "package_versions",
]

_PACKAGES = ("lue-spie", "torch", "numpy", "pandas", "pyarrow", "cma", "scikit-learn", "shap",
             "captum", "pyrealm")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


_FILE_MODE = 0o644  # mkstemp creates 0600; results are meant to be shared and read


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, _FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays, torch tensors
        return obj.tolist()
    if isinstance(obj, (_dt.date, _dt.datetime)):
        return obj.isoformat()
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def provenance_path(table: str | os.PathLike) -> Path:
    """The provenance record that belongs to a table: ``X.parquet`` -> ``X.provenance.json``
    (:func:`lue_spie.layout.provenance_of`)."""
    return provenance_of(Path(table))


def write_parquet(
    df: pd.DataFrame, path: str | os.PathLike, provenance: Mapping[str, Any] | None = None
) -> Path:
    """Write ``df`` to ``path`` atomically, with its provenance record beside it.

    The table is written first; the record (which includes the table's own sha256) second, so
    a record always describes a complete table.
    """
    # Serialised in memory first, so a failing conversion never touches the file; then one
    # atomic write (temporary file, fsync, rename) as for every other result.
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    path = atomic_write_bytes(path, buffer.getvalue())
    if provenance is not None:
        record = dict(provenance)
        record["output"] = {"file": path.name, "sha256": sha256_file(path), "rows": len(df)}
        atomic_write_json(provenance_path(path), record)
    return path


def write_table(df: pd.DataFrame, folder: str | os.PathLike, name: str,
                provenance: Mapping[str, Any] | None = None) -> list[Path]:
    """``FOLDER/NAME.parquet`` (with its provenance record, :func:`write_parquet`) and the same
    table as ``FOLDER/NAME.csv`` for spreadsheets; both atomic. Returns the two paths."""
    files = TablesFolder(Path(folder))
    df = df.reset_index(drop=True)
    return [write_parquet(df, files.table(name), provenance),
            atomic_write_text(files.csv(name), df.to_csv(index=False))]


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a table from the store with a clear error when it is missing or incomplete."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such results file; run the step that writes it first "
            "(see `lue-spie --help`)"
        )
    df = pd.read_parquet(path)
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
        df = df[columns]
    return df


def read_provenance(table: str | os.PathLike) -> dict[str, Any]:
    """The provenance record of a table (empty dict when there is none)."""
    p = provenance_path(table)
    return json.loads(p.read_text()) if p.exists() else {}


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The current git commit of the project (with ``-dirty`` when the tree has changes)."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty.strip() else "")


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages that shape results."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _portable(path: Path) -> str:
    """A path for a record that may be shared: relative to the working directory when it lies
    below it, else the file name alone (the sha256 beside it identifies the file); never an
    absolute path of this machine."""
    try:
        rel = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path.name
    return rel.as_posix()


def make_provenance(
    step: str,
    *,
    settings: Mapping[str, Any] | None = None,
    inputs: Mapping[str, str | os.PathLike] | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """A provenance record for a result.

    Args:
        step: What produced the result (``"data.synth"``, ``"calibrate"`` ...).
        settings: The settings of the step (JSON-serialisable).
        inputs: Named input files; each is recorded with its sha256 and its path relative to
            the working directory (the file name alone when it lies elsewhere).
        seed: The random seed, if any.
    """
    ins = {}
    for name, p in (inputs or {}).items():
        p = Path(p)
        ins[name] = {"path": _portable(p), "sha256": sha256_file(p) if p.is_file() else None}
    return {
        "step": step,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "settings": dict(settings or {}),
        "inputs": ins,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "platform": platform.platform(),
    }

"""The results store: atomic file writes, JSON provenance records, and the checks that let a
step trust what it reads.

Every table a step hands to the next one (tidy data, calibrated parameters, predictions,
metrics) is a parquet file written atomically (to a temporary file in the same folder, then
renamed), so an interrupted run never leaves a half-written file. Next to each table
``NAME.parquet`` lies ``NAME.provenance.json``: what produced it (step, settings, seed),
from what (input files and their sha256), with which code (package versions, git commit), and
the table's own sha256.

Nothing is trusted unverified:

- :func:`read_parquet` compares a table with the checksum its record holds and turns a
  damaged or truncated file into one line naming it (:class:`~lue_spie.errors.DataError`);
- :func:`verify` says why a result cannot be kept (missing, no record, another checksum,
  unreadable, columns missing), so that a rerun recomputes that unit instead of trusting it;
- :func:`check_made_from` refuses a result made from other inputs than the ones given;
- :func:`check_output_folder` refuses an output place before any work starts (a file, a
  read-only file system, no permission, no space), and a write that fails anyway is one line
  naming the file (:class:`~lue_spie.errors.OutputError`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from pyarrow import ArrowException

from lue_spie.errors import DataError, OutputError, UsageError
from lue_spie.layout import TABLE_SUFFIX, DataFiles, TablesFolder, provenance_of

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
    "write_result_bytes",
    "verify",
    "recorded_inputs",
    "check_made_from",
    "check_calibration_of",
    "check_output_folder",
    "set_aside_damaged",
    "DAMAGED_SUFFIX",
    "tidy_output_folder",
    "folders_under",
    "explain_os_error",
    "MIN_FREE_BYTES",
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


#: Prefix and suffix of the temporary file of an atomic write (``.NAME.<random>.tmp``).
_TMP_SUFFIX = ".tmp"

#: What to do when a write fails, by the reason the system gives.
_WRITE_ADVICE = {
    errno.ENOSPC: "no space left on the device: free some, or give an output folder on "
                  "another file system, then run the same command again (what is written is "
                  "kept)",
    errno.EDQUOT: "over the disk quota: free some space, then run the same command again",
    errno.EROFS: "the file system is read-only: give an output folder on a writable one",
    errno.EACCES: "no permission to write there: give an output folder you can write to",
    errno.EPERM: "no permission to write there: give an output folder you can write to",
    errno.ENOTDIR: "a part of the path is a file, not a folder: give another output folder",
    errno.EEXIST: "a part of the path is a file, not a folder: give another output folder",
}


def _write_failed(path: Path, err: OSError) -> OutputError:
    """One line for a write that failed: the file, the system's reason and what to do."""
    reason = err.strerror or str(err)
    advice = _WRITE_ADVICE.get(err.errno or 0, "check the output folder")
    out = OutputError(f"{path}: cannot write ({reason}); {advice}")
    out.errno, out.strerror, out.filename = err.errno, reason, str(path)
    return out


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename).

    Raises:
        lue_spie.errors.OutputError: when the file cannot be written (no space, a read-only
            file system, no permission, a file where a folder should be): one line naming
            ``path``; the file that was there before, if any, is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX,
                                   dir=path.parent)
    except OSError as err:
        raise _write_failed(path, err) from err
    try:
        os.chmod(tmp, _FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise _write_failed(path, err) from err
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
    return write_result_bytes(path, buffer.getvalue(), provenance, rows=len(df))


def write_result_bytes(path: str | os.PathLike, data: bytes,
                       provenance: Mapping[str, Any] | None = None, *,
                       rows: int | None = None) -> Path:
    """Write a result file atomically, then its provenance record with the file's sha256
    (``output``: file, sha256 and, for a table, ``rows``), so that a later reader can verify
    it (:func:`verify`, :func:`read_parquet`).

    Without ``provenance`` a record left beside ``path`` by an earlier write is removed: it
    would describe another file.
    """
    data = bytes(data)
    record_path = provenance_path(path)
    # The old record goes first: a run killed before the new one is written leaves a file
    # without a record, which a rerun recomputes, never a record that vouches for a file it
    # did not describe.
    record_path.unlink(missing_ok=True)
    path = atomic_write_bytes(path, data)
    if provenance is not None:
        record = dict(provenance)
        record["output"] = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest()}
        if rows is not None:
            record["output"]["rows"] = int(rows)
        atomic_write_json(record_path, record)
    return path


def write_table(df: pd.DataFrame, folder: str | os.PathLike, name: str,
                provenance: Mapping[str, Any] | None = None) -> list[Path]:
    """``FOLDER/NAME.parquet`` (with its provenance record, :func:`write_parquet`) and the same
    table as ``FOLDER/NAME.csv`` for spreadsheets; both atomic. Returns the two paths."""
    files = TablesFolder(Path(folder))
    df = df.reset_index(drop=True)
    return [write_parquet(df, files.table(name), provenance),
            atomic_write_text(files.csv(name), df.to_csv(index=False))]


def _short(err: BaseException) -> str:
    """The first sentence of an error's message, for a one-line report."""
    text = " ".join(str(err).split())
    text = text.split(". ")[0].rstrip(".")
    return text.rsplit(": ", 1)[-1] if len(text) > 100 else text


def read_provenance(table: str | os.PathLike) -> dict[str, Any]:
    """The provenance record of a table (empty dict when there is none).

    Raises:
        lue_spie.errors.DataError: when the record is not valid JSON (naming the record).
    """
    p = provenance_path(table)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{p}: unreadable provenance record ({_short(err)}); run the step "
                        f"that writes {Path(table).name} again") from err
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{p}: not a valid provenance record (invalid JSON: {err.msg} at line "
                        f"{err.lineno}); run the step that writes {Path(table).name} again "
                        "(it recomputes what it cannot verify)") from err
    if not isinstance(record, dict):
        raise DataError(f"{p}: not a valid provenance record (a JSON {type(record).__name__}, "
                        f"not an object); run the step that writes {Path(table).name} again")
    return record


def _checksum_problem(path: Path, record: Mapping[str, Any]) -> str | None:
    """Why ``path`` does not match the checksum of its record (None when it does or the
    record holds none)."""
    output = record.get("output")
    if not isinstance(output, Mapping) or not output.get("sha256"):
        return None
    if output.get("file") not in (None, path.name):
        return f"its provenance record describes {output.get('file')}, not this file"
    if sha256_file(path) != output["sha256"]:
        return ("its checksum differs from the one recorded when it was written (changed or "
                "damaged since)")
    return None


def verify(path: str | os.PathLike, *, columns: Sequence[str] | None = None,
           require_record: bool = True) -> str | None:
    """Why a result file cannot be trusted, or None when it can.

    A result is trusted when it exists, its provenance record is readable and holds the
    file's sha256 (written by :func:`write_result_bytes`), the file matches it, and, for a
    table, the file reads as parquet with ``columns``. A step that finds a reason recomputes
    the result (and says why) instead of keeping it.

    Args:
        path: The result file.
        columns: Columns a table must have.
        require_record: Whether a file without a provenance record (or one without a
            checksum) is untrusted.

    Returns:
        A short reason (``"missing"``, ``"its checksum differs ..."``) or None.
    """
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        record = read_provenance(path)
    except DataError:
        return f"its provenance record {provenance_path(path).name} is unreadable"
    output = record.get("output") if record else None
    if require_record and not (isinstance(output, Mapping) and output.get("sha256")):
        return ("its provenance record holds no checksum" if provenance_path(path).exists()
                else "it has no provenance record")
    problem = _checksum_problem(path, record)
    if problem:
        return problem
    if path.suffix == TABLE_SUFFIX:
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except (ArrowException, OSError, ValueError) as err:
            return f"it is not a readable parquet file ({_short(err)})"
        missing = [c for c in columns or () if c not in names]
        if missing:
            return f"it lacks column(s) {missing}"
    return None


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None, *,
                 check: bool = True) -> pd.DataFrame:
    """Read a table from the store with a clear error when it is missing, damaged or
    incomplete.

    Args:
        path: The table.
        columns: Columns to return (each must be there).
        check: Compare the file with the checksum in its provenance record first (when the
            record holds one).

    Raises:
        FileNotFoundError: when the file is missing (naming it).
        lue_spie.errors.DataError: when the file does not match its recorded checksum, is not
            readable as parquet (truncated or damaged), or lacks a column: one line naming the
            file and what to do.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such results file; run the step that writes it first "
            "(see `lue-spie --help`)"
        )
    if check:
        problem = _checksum_problem(path, read_provenance(path))
        if problem:
            raise DataError(f"{path}: {problem}; run the step that writes it again (it "
                            "recomputes what it cannot verify)")
    try:
        df = pd.read_parquet(path)
    except (IsADirectoryError, PermissionError):
        raise
    except (ArrowException, OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable parquet file, damaged or cut short "
                        f"({_short(err)}); run the step that writes it again") from err
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
        df = df[columns]
    return df


def recorded_inputs(result: str | os.PathLike) -> dict[str, str | None]:
    """The inputs a result was made from, by name, with the sha256 its record holds."""
    inputs = read_provenance(result).get("inputs", {})
    if not isinstance(inputs, Mapping):
        return {}
    return {str(name): (v.get("sha256") if isinstance(v, Mapping) else None)
            for name, v in inputs.items()}


def check_made_from(result: str | os.PathLike, inputs: Mapping[str, str | os.PathLike], *,
                    what: str, fix: str) -> None:
    """Refuse a result made from other inputs than ``inputs``.

    Each named input that the result's provenance record lists (:func:`make_provenance`) must
    have the sha256 of the file given now; inputs the record does not list are not compared.

    Args:
        result: The result file (its record is read).
        inputs: Name -> the file the caller is about to combine with the result.
        what: The result in words (``"the site calibration"``).
        fix: What to do instead (a command).

    Raises:
        lue_spie.errors.DataError: one line naming the result, the inputs that differ and
            ``fix``.
    """
    recorded = recorded_inputs(result)
    differ = []
    for name, path in inputs.items():
        sha = recorded.get(name)
        if sha is not None and (not Path(path).is_file() or sha256_file(path) != sha):
            differ.append(Path(path))
    if differ:
        folders = sorted({str(p.parent) for p in differ})
        raise DataError(f"{result}: {what} was computed from other data than "
                        f"{', '.join(folders)} ({', '.join(p.name for p in differ)} "
                        f"differ); {fix}")


def check_calibration_of(table: str | os.PathLike, data: DataFiles) -> None:
    """Refuse a site calibration made from another dataset than ``data`` (the one check every
    step that combines a calibration with a dataset shares: extrapolate, assess).

    Args:
        table: The calibration table (``calibration.parquet``; its record lists the dataset
            files it read, :meth:`~lue_spie.layout.DataFiles.inputs`).
        data: The dataset the caller is about to combine it with.

    Raises:
        lue_spie.errors.DataError: one line naming the calibration, the dataset and the fix.
    """
    table = Path(table)
    check_made_from(table, data.inputs(), what="the site calibration",
                    fix=f"give the calibration of this dataset, or rerun `lue-spie calibrate "
                        f"--data {data.folder} --out {table.parent}` (or chapter 3)")


#: Suffix given to a damaged checkpoint set aside (:func:`set_aside_damaged`).
DAMAGED_SUFFIX = ".damaged"


def set_aside_damaged(path: str | os.PathLike, err: BaseException, *, what: str = "checkpoint",
                      log: Callable[[str], Any] | None = None) -> Path:
    """Move a damaged file (a checkpoint cut short or overwritten) out of the way, as
    ``NAME.damaged``, so that its unit starts afresh, and say so in one line.

    Args:
        path: The damaged file.
        err: What reading it raised (named in the line).
        what: The file in words (``"checkpoint"``, ``"SPIE checkpoint"``).
        log: Where the line goes (default: standard error).

    Returns:
        Where the file now lies.
    """
    path = Path(path)
    aside = path.with_name(path.name + DAMAGED_SUFFIX)
    os.replace(path, aside)
    reason = " ".join(str(err).split())[:200] or "cut short"
    line = (f"set aside the damaged {what} {path} as {aside.name} ({type(err).__name__}: "
            f"{reason}); restarting its unit from the beginning")
    if log is None:
        print(line, file=sys.stderr)
    else:
        log(line)
    return aside


#: An output place with less free space than this is refused before any work starts.
MIN_FREE_BYTES = 1 << 20


def _existing_ancestor(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return probe


def check_output_folder(folder: str | os.PathLike, option: str = "--out") -> Path:
    """Refuse an output folder that cannot be written, before any work starts.

    Args:
        folder: The folder a command writes to (it need not exist yet).
        option: How the user named it (``--out``), for the message.

    Returns:
        ``folder`` as a path.

    Raises:
        lue_spie.errors.UsageError: one line each for a path that exists as a file, a path
            under a file, a read-only file system, a folder without write permission, and
            a file system with less than :data:`MIN_FREE_BYTES` free.
    """
    folder = Path(folder)
    where = f"{option} {folder}"
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{where}: exists and is a file, not a folder; give a new or existing "
                         "folder")
    probe = _existing_ancestor(folder)
    if not probe.is_dir():
        raise UsageError(f"{where}: {probe} is a file, so no folder can be made under it; give "
                         "another folder")
    try:
        st = os.statvfs(probe)
    except OSError as err:
        raise UsageError(f"{where}: cannot be used ({err.strerror or err})") from err
    if st.f_flag & os.ST_RDONLY:
        raise UsageError(f"{where}: on a read-only file system ({probe}); give a folder on a "
                         "writable one")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{where}: no permission to write in {probe}; give a folder you can "
                         "write to")
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE_BYTES:
        raise UsageError(f"{where}: only {free // 1024} KiB free on its file system ({probe}); "
                         "free some space or give a folder on another file system")
    return folder


def folders_under(folder: str | os.PathLike) -> frozenset[Path]:
    """Every folder below ``folder`` (itself included) that exists now (for
    :func:`tidy_output_folder`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return frozenset()
    return frozenset([folder, *(Path(d) / n for d, names, _ in os.walk(folder)
                                for n in names)])


#: A temporary file of :func:`atomic_write_bytes` (``.NAME.<8 random characters>.tmp``).
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def tidy_output_folder(folder: str | os.PathLike, *, keep: frozenset[Path] = frozenset()
                       ) -> None:
    """Remove what an interrupted or failed run leaves in an output folder and nothing else:
    temporary files of atomic writes and the empty folders it made (``folder`` itself too
    when it is empty and not in ``keep``). Finished results stay for the next run.

    Args:
        folder: The output folder.
        keep: Folders that existed before the run (:func:`folders_under`): kept even when
            empty.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    for dirpath, _dirnames, filenames in os.walk(folder, topdown=False):
        here = Path(dirpath)
        for name in filenames:
            if _TEMPORARY.match(name):
                (here / name).unlink(missing_ok=True)
        if here in keep:
            continue
        with contextlib.suppress(OSError):  # not empty (rmdir refuses): kept
            here.rmdir()


def explain_os_error(err: OSError) -> str:
    """One line for an error of the system: the path first, the reason, what to do."""
    where = err.filename if err.filename is not None else "(no file named)"
    reason = err.strerror or str(err)
    advice = _WRITE_ADVICE.get(err.errno or 0)
    if isinstance(err, FileNotFoundError):
        advice = "check the path (a folder on the way does not exist)"
    return f"{where}: {reason}" + (f"; {advice}" if advice else "")


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

"""The data manifest (``data_manifest.yml``): every dataset the paper draws on.

:func:`load` reads the YAML file and validates it against :data:`ENTRY_SCHEMA` (required keys,
types, sha256 format, unique ids) into frozen dataclasses; a bad entry raises one ``ValueError``
naming the file, the entry id (or position) and the key. :func:`verify` looks for each
entry's files in a data folder and checks the sha256 of those that have one.

Where the manifest is found (first hit wins): the ``path`` argument; the environment variable
``LUE_SPIE_MANIFEST``; ``data_manifest.yml`` at the repository root (a source checkout or an
editable install); the copy shipped as package data in ``lue_spie/data/data_manifest.yml`` (a
symbolic link to the root file in the repository, resolved into a real file when a wheel is
built, so an installed package can load it too).
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lue_spie.store import sha256_file

MANIFEST_NAME = "data_manifest.yml"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

#: Required keys of an entry and their types (``None`` in a tuple = may be null).
ENTRY_SCHEMA: dict[str, tuple[type | None, ...]] = {
    "id": (str,),
    "description": (str,),
    "citation": (str,),
    "source_url": (str,),
    "doi": (str, None),
    "licence": (str,),
    "version": (str,),
    "files": (list,),
    "variables": (list,),
    "obtain": (str,),
    "reader": (str,),
}
#: Optional keys of an entry.
OPTIONAL_KEYS: dict[str, tuple[type | None, ...]] = {"generator": (dict,)}
#: Keys of a ``generator`` block (virtual FLUXNET).
GENERATOR_SCHEMA: dict[str, tuple[type, ...]] = {
    "module": (str,), "version": (str,), "default_seed": (int,), "n_sites": (int,),
    "n_years": (int,),
}


@dataclass(frozen=True)
class FileSpec:
    """An expected file: an exact ``name`` or a glob ``pattern``, and its sha256 (or None)."""

    pattern: str
    sha256: str | None
    exact: bool


@dataclass(frozen=True)
class Variable:
    name: str
    unit: str
    description: str


@dataclass(frozen=True)
class Entry:
    """One dataset of the manifest."""

    id: str
    description: str
    citation: str
    source_url: str
    doi: str | None
    licence: str
    version: str
    files: tuple[FileSpec, ...]
    variables: tuple[Variable, ...]
    obtain: str
    reader: str
    generator: Mapping[str, Any] | None = None

    def resolve_reader(self) -> Any:
        """Import and return the function named by ``reader`` (ImportError/AttributeError if
        it does not exist)."""
        module, _, attr = self.reader.rpartition(".")
        return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Manifest:
    """The whole manifest."""

    path: Path
    manifest_version: int
    entries: tuple[Entry, ...]

    def __getitem__(self, dataset_id: str) -> Entry:
        for e in self.entries:
            if e.id == dataset_id:
                return e
        raise KeyError(f"{self.path}: no dataset {dataset_id!r}; ids are {self.ids}")

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.entries]


def default_path() -> Path:
    """Where :func:`load` reads the manifest when no path is given (see module docstring)."""
    env = os.environ.get("LUE_SPIE_MANIFEST")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2] / MANIFEST_NAME
    if root.is_file():
        return root
    packaged = Path(__file__).resolve().parent / MANIFEST_NAME
    if packaged.is_file():
        return packaged
    raise FileNotFoundError(f"{MANIFEST_NAME} not found at the repository root ({root}) nor as "
                            f"package data ({packaged}); pass a path or set LUE_SPIE_MANIFEST")


def _type_ok(value: Any, types: tuple[type | None, ...]) -> bool:
    if value is None:
        return None in types
    real = tuple(t for t in types if t is not None)
    if isinstance(value, bool) and bool not in real:
        return False
    return isinstance(value, real)


def _type_names(types: tuple[type | None, ...]) -> str:
    return " or ".join("null" if t is None else t.__name__ for t in types)


def _parse_entry(raw: Any, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(raw).__name__}")
    label = f"{where} (id {raw['id']!r})" if isinstance(raw.get("id"), str) else where
    for key, types in ENTRY_SCHEMA.items():
        if key not in raw:
            raise ValueError(f"{label}: missing required key {key!r}")
        if not _type_ok(raw[key], types):
            raise ValueError(f"{label}: key {key!r} must be {_type_names(types)}, got "
                             f"{type(raw[key]).__name__}")
        if isinstance(raw[key], str) and not raw[key].strip() and key != "doi":
            raise ValueError(f"{label}: key {key!r} is empty")
    unknown = sorted(set(raw) - set(ENTRY_SCHEMA) - set(OPTIONAL_KEYS))
    if unknown:
        raise ValueError(f"{label}: unknown key(s) {unknown}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", raw["id"]):
        raise ValueError(f"{label}: key 'id' must be lower_snake_case, got {raw['id']!r}")
    if raw["doi"] is not None and not re.fullmatch(r"10\.\d{4,9}/\S+", raw["doi"]):
        raise ValueError(f"{label}: key 'doi' must look like 10.NNNN/..., got {raw['doi']!r}")
    if not re.match(r"https?://", raw["source_url"]):
        raise ValueError(f"{label}: key 'source_url' must be an http(s) URL")
    if not re.fullmatch(r"[A-Za-z_][\w.]*\.[A-Za-z_]\w*", raw["reader"]):
        raise ValueError(f"{label}: key 'reader' must be a dotted function name, got "
                         f"{raw['reader']!r}")
    if not raw["files"]:
        raise ValueError(f"{label}: key 'files' is empty")
    files = []
    for i, f in enumerate(raw["files"]):
        fw = f"{label}: files[{i}]"
        if not isinstance(f, dict):
            raise ValueError(f"{fw}: expected a mapping with 'name' or 'pattern' and 'sha256'")
        if ("name" in f) == ("pattern" in f):
            raise ValueError(f"{fw}: give exactly one of 'name' or 'pattern'")
        if "sha256" not in f:
            raise ValueError(f"{fw}: missing key 'sha256' (null when the file is not fixed)")
        unknown = sorted(set(f) - {"name", "pattern", "sha256"})
        if unknown:
            raise ValueError(f"{fw}: unknown key(s) {unknown}")
        sha = f["sha256"]
        if sha is not None and (not isinstance(sha, str) or not _SHA256.fullmatch(sha)):
            raise ValueError(f"{fw}: key 'sha256' must be 64 lowercase hex digits or null, got "
                             f"{sha!r}")
        pattern = f.get("name", f.get("pattern"))
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"{fw}: 'name'/'pattern' must be a non-empty string")
        if sha is not None and "pattern" in f:
            raise ValueError(f"{fw}: a sha256 needs an exact 'name', not a 'pattern'")
        files.append(FileSpec(pattern, sha, "name" in f))
    if not raw["variables"]:
        raise ValueError(f"{label}: key 'variables' is empty")
    variables = []
    for i, v in enumerate(raw["variables"]):
        vw = f"{label}: variables[{i}]"
        if not isinstance(v, dict) or set(v) != {"name", "unit", "description"}:
            raise ValueError(f"{vw}: expected keys name, unit, description")
        if not all(isinstance(v[k], str) for k in v):
            raise ValueError(f"{vw}: name, unit and description must be strings")
        variables.append(Variable(v["name"], v["unit"], v["description"]))
    generator = raw.get("generator")
    if generator is not None:
        if not isinstance(generator, dict):
            raise ValueError(f"{label}: key 'generator' must be a mapping")
        for key, types in GENERATOR_SCHEMA.items():
            if key not in generator:
                raise ValueError(f"{label}: generator: missing key {key!r}")
            if not _type_ok(generator[key], types):
                raise ValueError(f"{label}: generator: key {key!r} must be "
                                 f"{_type_names(types)}")
    return Entry(
        id=raw["id"], description=raw["description"].strip(), citation=raw["citation"].strip(),
        source_url=raw["source_url"], doi=raw["doi"], licence=raw["licence"],
        version=str(raw["version"]), files=tuple(files), variables=tuple(variables),
        obtain=raw["obtain"].strip(), reader=raw["reader"], generator=generator,
    )


def load(path: str | os.PathLike | None = None) -> Manifest:
    """Read and validate the data manifest.

    Raises:
        FileNotFoundError: when the file is missing.
        ValueError: for invalid YAML or an entry that breaks the schema (naming the file, the
            entry and the key).
    """
    p = Path(path) if path is not None else default_path()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: data manifest not found")
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{p}: not valid YAML ({err})") from err
    if not isinstance(doc, dict):
        raise ValueError(f"{p}: expected a mapping with 'manifest_version' and 'datasets'")
    for key in ("manifest_version", "datasets"):
        if key not in doc:
            raise ValueError(f"{p}: missing top-level key {key!r}")
    if not isinstance(doc["manifest_version"], int) or isinstance(doc["manifest_version"], bool):
        raise ValueError(f"{p}: 'manifest_version' must be an integer")
    if not isinstance(doc["datasets"], list) or not doc["datasets"]:
        raise ValueError(f"{p}: 'datasets' must be a non-empty list")
    entries = [_parse_entry(raw, f"{p}: datasets[{i}]") for i, raw in enumerate(doc["datasets"])]
    ids = [e.id for e in entries]
    dups = sorted({i for i in ids if ids.count(i) > 1})
    if dups:
        raise ValueError(f"{p}: duplicate dataset id(s) {dups}")
    return Manifest(p, doc["manifest_version"], tuple(entries))


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileCheck:
    """Result for one expected file (or one match of a pattern).

    ``status``: ``"ok"`` (checksum matches), ``"mismatch"`` (checksum differs), ``"present"``
    (found, no checksum to compare), ``"absent"`` (not found).
    """

    dataset: str
    pattern: str
    path: Path | None
    status: str
    expected: str | None = None
    actual: str | None = None


@dataclass(frozen=True)
class VerifyReport:
    data_dir: Path
    checks: tuple[FileCheck, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when no checksum mismatches (absent files are not an error)."""
        return not self.mismatches

    @property
    def mismatches(self) -> list[FileCheck]:
        return [c for c in self.checks if c.status == "mismatch"]

    def by_status(self, status: str) -> list[FileCheck]:
        return [c for c in self.checks if c.status == status]

    def format(self) -> str:
        lines = [f"data folder {self.data_dir}"]
        for c in self.checks:
            where = str(c.path.relative_to(self.data_dir)) if c.path else c.pattern
            extra = f" (expected {c.expected}, got {c.actual})" if c.status == "mismatch" else ""
            lines.append(f"  {c.status:8s} {c.dataset:26s} {where}{extra}")
        counts = {s: len(self.by_status(s)) for s in ("ok", "mismatch", "present", "absent")}
        lines.append("  " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        return "\n".join(lines)


def verify(manifest: Manifest, data_dir: str | os.PathLike, *,
           datasets: Sequence[str] | None = None, strict: bool = False) -> VerifyReport:
    """Look for each entry's files under ``data_dir`` (recursively) and check checksums.

    Args:
        manifest: From :func:`load`.
        data_dir: Folder to search.
        datasets: Only these dataset ids (default: all).
        strict: Raise ``ValueError`` on a checksum mismatch instead of only flagging it.

    Returns:
        A :class:`VerifyReport` with one :class:`FileCheck` per exact file and per pattern
        match (an unmatched pattern gives one ``"absent"`` check).
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data folder not found")
    entries = manifest.entries if datasets is None else [manifest[d] for d in datasets]
    all_files = sorted(p for p in root.rglob("*") if p.is_file())
    checks: list[FileCheck] = []
    for entry in entries:
        for spec in entry.files:
            hits = [p for p in all_files if (p.name == spec.pattern if spec.exact
                                             else fnmatch.fnmatch(p.name, spec.pattern))]
            if not hits:
                checks.append(FileCheck(entry.id, spec.pattern, None, "absent", spec.sha256))
                continue
            for p in hits:
                if spec.sha256 is None:
                    checks.append(FileCheck(entry.id, spec.pattern, p, "present"))
                    continue
                actual = sha256_file(p)
                status = "ok" if actual == spec.sha256 else "mismatch"
                if status == "mismatch" and strict:
                    raise ValueError(f"{p}: sha256 {actual} does not match the manifest entry "
                                     f"{entry.id!r} ({spec.sha256}); the file differs from the "
                                     "version the manifest describes")
                checks.append(FileCheck(entry.id, spec.pattern, p, status, spec.sha256, actual))
    return VerifyReport(root, tuple(checks))

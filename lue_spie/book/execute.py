"""Running the chapters: finding them, their parameters, and executing one with papermill.

Each chapter notebook has a cell tagged ``parameters`` (papermill's convention) that declares
the knobs it reads, under the names of :meth:`lue_spie.book.profiles.Profile.knobs`.
:func:`resolve_parameters` gives each notebook the values of its declared knobs from a
profile and the ``-p`` overrides (checked against the knobs' types before anything runs),
and :func:`run_notebook` executes it; a failing cell raises :class:`NotebookError`, which
names the notebook and the cell.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from lue_spie.book.profiles import Profile
from lue_spie.data.settings import DataSettings
from lue_spie.store import atomic_write_text

__all__ = [
    "BookError",
    "NotebookError",
    "PATH_PARAMETERS",
    "parse_overrides",
    "find_source_root",
    "chapter_notebooks",
    "notebook_parameters",
    "resolve_parameters",
    "run_notebook",
]

#: Notebook parameters that hold a path. They are injected relative to the source root, where
#: the kernels run, so that no page of the book shows an absolute path of the machine.
PATH_PARAMETERS: tuple[str, ...] = ("results", "data_source", "data_sites_file",
                                    "data_fapar_file", "data_features_file", "data_ndvi_file")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class BookError(RuntimeError):
    """The book pipeline failed (build or checks); the message says where and why."""


class NotebookError(BookError):
    """A cell of a chapter notebook raised; names the notebook and the cell.

    Attributes:
        notebook: File name of the notebook.
        cell_index: Index of the failing cell in the source notebook (0-based), or in the
            executed copy when the cell cannot be matched to the source.
        executed: Path of the executed copy, which holds the traceback.
    """

    def __init__(self, message: str, *, notebook: str, cell_index: int | None,
                 executed: Path) -> None:
        super().__init__(message)
        self.notebook = notebook
        self.cell_index = cell_index
        self.executed = executed


def parse_overrides(pairs: Sequence[Sequence[str]] | None) -> dict[str, Any]:
    """``-p NAME VALUE`` pairs to a dict; each VALUE is parsed as YAML (like papermill's ``-y``).

    ``"12"`` gives 12, ``"true"`` gives True, ``"null"`` gives None, ``"[A, B]"`` gives a list,
    anything else stays a string.

    Raises:
        ValueError: for a pair that is not exactly NAME VALUE or a VALUE that is not valid YAML.
    """
    out: dict[str, Any] = {}
    for pair in pairs or ():
        if len(pair) != 2:
            raise ValueError(f"-p expects NAME VALUE, got {list(pair)!r}")
        name, raw = pair
        if not name.isidentifier():
            raise ValueError(f"-p {name!r}: a parameter name must be a Python identifier")
        try:
            out[name] = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as err:
            raise ValueError(f"-p {name} {raw!r}: not a valid YAML value ({err})") from None
    return out


def find_source_root(start: str | os.PathLike | None = None) -> Path:
    """The folder holding ``_toc.yml``, ``_config.yml``, ``book/`` and ``notebooks/``.

    Looks in ``start`` (default: the working directory and its parents), then beside the
    installed package (an editable install of the repository).

    Raises:
        FileNotFoundError: when no such folder is found.
    """
    candidates: list[Path] = []
    here = Path(start) if start else Path.cwd()
    candidates += [here, *here.resolve().parents]
    candidates.append(Path(__file__).resolve().parents[2])  # the repository of an editable install
    for c in candidates:
        if (c / "_toc.yml").is_file() and (c / "notebooks").is_dir():
            return c
    raise FileNotFoundError(
        f"no book sources (_toc.yml and notebooks/) found in {here} or its parents, nor beside "
        "the lue_spie package; run from the lue-spie repository or pass --source DIR"
    )


def chapter_notebooks(root: str | os.PathLike) -> tuple[str, ...]:
    """The chapter notebooks listed in ``ROOT/_toc.yml``, in reading (and running) order.

    Raises:
        FileNotFoundError: when the table of contents is missing.
        ValueError: when it lists no notebook of ``notebooks/``.
    """
    toc_path = Path(root) / "_toc.yml"
    if not toc_path.is_file():
        raise FileNotFoundError(f"{toc_path}: no table of contents")
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8")) or {}
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            f = node.get("file")
            if isinstance(f, str) and f.startswith("notebooks/"):
                found.append(Path(f).name.removesuffix(".ipynb") + ".ipynb")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    if not found:
        raise ValueError(f"{toc_path}: lists no chapter notebook (files under notebooks/)")
    return tuple(found)


def notebook_parameters(path: str | os.PathLike) -> dict[str, Any]:
    """Names and default values declared in the notebook's ``parameters`` cell.

    Raises:
        ValueError: when the notebook has no cell tagged ``parameters``.
    """
    import papermill

    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb["cells"]):
        raise ValueError(f"{path}: no cell tagged 'parameters' (papermill needs one)")
    declared = papermill.inspect_notebook(str(path))
    return {name: info.get("default") for name, info in declared.items()}


def resolve_parameters(
    profile: Profile,
    overrides: Mapping[str, Any],
    declared: Mapping[str, Mapping[str, Any]],
    results: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
) -> dict[str, dict[str, Any]]:
    """The parameters injected into each notebook.

    Overrides of the profile's knobs (:meth:`~lue_spie.book.profiles.Profile.knobs`) are
    checked against the knob's type first. Path parameters (:data:`PATH_PARAMETERS`, the
    results folder included) are given relative
    to ``root``, the folder the kernels run in, so the injected cell of every page shows a
    path such as ``results/ci`` rather than an absolute path of the machine.

    Args:
        profile: The chosen profile.
        overrides: ``-p`` values; each name must be declared by at least one notebook.
        declared: Notebook name -> the names its parameters cell declares.
        results: The results folder (relative to the working directory, or absolute).
        root: The kernels' working directory (default: the working directory).

    Returns:
        For each notebook name, its parameters (name -> value), holding only the names that
        notebook declares.

    Raises:
        ValueError: for an override that no notebook declares.
        lue_spie.options.KnobError: for a value that does not fit its knob's type (one line
            naming the knob), before any notebook runs.
    """
    known = set().union(*[set(d) for d in declared.values()]) if declared else set()
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"-p {', '.join(unknown)}: no chapter declares such a parameter; the parameters "
            f"are {sorted(known)}"
        )
    knobs = profile.knobs()
    values = profile.parameters()
    for name, value in overrides.items():
        values[name] = _jsonable(knobs[name].coerce(value)) if name in knobs else value
    base = Path(root or Path.cwd()).resolve()
    values["results"] = _relative(Path(results), base)
    for name in PATH_PARAMETERS:
        v = values.get(name)
        if name != "results" and isinstance(v, str) and v != DataSettings().source:
            values[name] = _relative(Path(v).expanduser(), base)
    return {nb: {k: values[k] for k in names if k in values} for nb, names in declared.items()}


def _relative(path: Path, base: Path) -> str:
    """``path`` (relative to the working directory, or absolute) relative to ``base``."""
    try:
        return Path(os.path.relpath(path.resolve(), base)).as_posix()
    except ValueError:  # another drive (Windows): nothing relative exists
        return str(path.resolve())


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()[:100]
    return source.strip().splitlines()[0][:100] if source.strip() else "(empty cell)"


def _source_cell_index(source_nb: Path, cell_id: str | None, code: str) -> int | None:
    """Index of the cell in the source notebook with this id (or, failing that, this code)."""
    cells = json.loads(source_nb.read_text(encoding="utf-8"))["cells"]
    for i, c in enumerate(cells):
        if cell_id is not None and c.get("id") == cell_id:
            return i
    for i, c in enumerate(cells):
        if "".join(c.get("source", "")) == code:
            return i
    return None


def run_notebook(
    source: str | os.PathLike,
    output: str | os.PathLike,
    parameters: Mapping[str, Any],
    *,
    cwd: str | os.PathLike | None = None,
    kernel_name: str = "python3",
    start_timeout: int = 120,
) -> float:
    """Execute one notebook with papermill; return the wall time in seconds.

    Raises:
        NotebookError: when a cell raises, naming the notebook, the cell (its index in the
            source notebook, its execution count and first line) and the error.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source, output = Path(source), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source), str(output), parameters=dict(parameters), kernel_name=kernel_name,
            progress_bar=False, cwd=str(cwd or output.parent), start_timeout=start_timeout,
            kernel_manager_class=private_kernel_manager(),
        )
    except PapermillExecutionError as err:
        raise _notebook_error(source, output, err) from None
    _relative_papermill_paths(output, Path(cwd) if cwd else output.parent)
    return time.perf_counter() - t0


def private_kernel_manager() -> type:
    """The kernel manager the chapters run under: its kernel's traffic is not plain TCP.

    jupyter-client sends a kernel's code and outputs over local TCP sockets, unencrypted by
    default, and ipykernel says so on stderr for every chapter. This manager asks for
    CurveZMQ encryption where pyzmq has it and the kernel declares it
    (``transport_encryption="auto"``), and otherwise uses IPC sockets (Unix domain sockets in
    a private temporary folder), so the chapters' traffic is never plain TCP and the log
    holds no warning a reader cannot act on. It also skips the interrupt that jupyter-client
    sends an idle kernel before shutting it down (ipykernel logs it as an error).
    """
    import tempfile

    import zmq
    from jupyter_client import AsyncKernelManager
    from traitlets import default

    curve = zmq.has("curve")

    class PrivateKernelManager(AsyncKernelManager):
        async def _async_interrupt_kernel(self) -> None:
            # jupyter-client interrupts a kernel before asking it to shut down; a chapter's
            # kernel is idle by then, and the interrupt only makes ipykernel log
            # "KeyboardInterrupt caught in kernel" into the build's log.
            if getattr(self, "shutting_down", False):
                return
            await super()._async_interrupt_kernel()

        @default("transport_encryption")
        def _encrypt(self) -> str:
            return "auto" if curve else "disabled"

        @default("transport")
        def _transport(self) -> str:
            return "tcp" if curve or os.name == "nt" else "ipc"

        @default("ip")
        def _ip(self) -> str:
            if self.transport == "ipc":
                return os.path.join(tempfile.mkdtemp(prefix="lue-spie-kernel-"), "kernel")
            return "127.0.0.1"

    return PrivateKernelManager


def _relative_papermill_paths(notebook: Path, base: Path) -> None:
    """papermill records the absolute input and output paths in the executed copy's metadata;
    the book offers that copy for download, so they are made relative to ``base``."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    meta = nb.get("metadata", {}).get("papermill", {})
    changed = False
    for key in ("input_path", "output_path"):
        if isinstance(meta.get(key), str) and os.path.isabs(meta[key]):
            meta[key] = _relative(Path(meta[key]), base.resolve())
            changed = True
    if changed:
        atomic_write_text(notebook, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _notebook_error(source: Path, output: Path, err: Any) -> NotebookError:
    # papermill inserts cells into the executed copy (the injected parameters, an error
    # banner), so its cell index does not point into the source notebook. The failing cell is
    # found by its execution count in the executed copy and then by its id (papermill keeps
    # cell ids) or its code in the source notebook.
    executed = json.loads(output.read_text(encoding="utf-8"))["cells"] if output.exists() else []
    cell = next((c for c in executed if c.get("cell_type") == "code"
                 and err.exec_count is not None and c.get("execution_count") == err.exec_count),
                {})
    code = "".join(cell.get("source", "")) or (err.source or "")
    idx = _source_cell_index(source, cell.get("id"), code)
    where = (f"cell {idx} of {source.name}" if idx is not None
             else f"cell {err.cell_index} of the executed copy")
    message = (
        f"notebook {source.name} failed in {where} (In [{err.exec_count}]: "
        f"`{_first_line(code)}`): {err.ename}: {err.evalue}\n"
        f"  the executed copy with the full traceback is {output}"
    )
    return NotebookError(message, notebook=source.name, cell_index=idx, executed=output)

#!/usr/bin/env python3
"""The two set-up-and-run commands of lue-spie.

    python3.11 tasks.py book   # build the book on the embedded virtual FLUXNET (demo profile)
    python3.11 tasks.py test   # run the test suite

Both create (or refresh) a virtual environment in ``.venv`` from the pinned
``requirements.txt`` constrained by ``requirements-lock.txt``, install ``lue_spie`` into
it in editable mode, then run. Nothing but Python 3.11 is needed beforehand.
Extra arguments are passed on: ``tasks.py book --profile ci``, ``tasks.py test -k model``.

This file uses the standard library only (it runs before anything is installed).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("LUE_SPIE_VENV", ROOT / ".venv"))
STAMP = VENV / ".lue-spie-requirements.sha256"
PINNED = ("requirements.txt", "requirements-lock.txt", "pyproject.toml")


def _bin(name: str) -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / name


def _digest() -> str:
    h = hashlib.sha256()
    for name in PINNED:
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def _run(cmd: list[str | Path], **kw) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, **kw)


def ensure_venv() -> None:
    """Create ``.venv`` and install the pinned stack, unless it is already up to date."""
    if sys.version_info[:2] != (3, 11):
        sys.exit(
            f"tasks.py: Python 3.11 is required (found {sys.version.split()[0]}); "
            "run it as `python3.11 tasks.py ...`."
        )
    want = _digest()
    if STAMP.exists() and STAMP.read_text().strip() == want and _bin("python").exists():
        return
    print(f"tasks.py: setting up the virtual environment in {VENV}", flush=True)
    venv.EnvBuilder(with_pip=True, clear=_bin("python").exists()).create(VENV)
    py = _bin("python")
    steps = [
        [py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [py, "-m", "pip", "install", "--quiet", "-r", "requirements.txt",
         "-c", "requirements-lock.txt"],
        [py, "-m", "pip", "install", "--quiet", "--no-deps", "-e", "."],
    ]
    for cmd in steps:
        rc = _run(cmd)
        if rc != 0:
            sys.exit(f"tasks.py: set-up step failed (exit {rc}): {' '.join(map(str, cmd))}")
    STAMP.write_text(want + "\n")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"book", "test"}:
        print(__doc__)
        return 2
    what, rest = argv[0], argv[1:]
    ensure_venv()
    if what == "test":
        # pytest's own exit code is returned as is: 1 = failures, 5 = no test ran, both fail.
        return _run([_bin("python"), "-m", "pytest", *rest])
    if not any(a.startswith("--profile") for a in rest):
        rest = ["--profile", "demo", *rest]
    return _run([_bin("lue-spie"), "book", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

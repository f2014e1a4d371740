#!/usr/bin/env python3
"""The two set-up-and-run commands of lue-spie, and a third to read the chapters live.

    python3.11 tasks.py book   # build the book on the embedded virtual FLUXNET (demo profile)
    python3.11 tasks.py test   # run the test suite
    python3.11 tasks.py lab    # after `book`: open the chapters in JupyterLab

All create (or refresh) a virtual environment in ``.venv`` from the pinned
``requirements.txt`` constrained by ``requirements-lock.txt``, install ``lue_spie`` into
it in editable mode, then run. Nothing but Python 3.11 is needed beforehand.
Extra arguments are passed on: ``tasks.py book --profile ci``, ``tasks.py test -k model``;
``tasks.py lab --profile ci`` opens the chapters of a ci build, and arguments after ``--`` go
to JupyterLab (``tasks.py lab -- --port 8890``).

This file uses the standard library only (it runs before anything is installed).
"""

from __future__ import annotations

import argparse
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


def lab(rest: list[str]) -> int:
    """Open the chapters of a built book in JupyterLab (``lue-spie course``, then ``jupyter lab``).

    The first time, ``lue-spie course --link-results`` writes ``build/course/PROFILE``: the
    executed chapters with their outputs, without (``student/``) and with (``teacher/``) the
    solutions, linked to the results folder the book build filled, so nothing long reruns.
    """
    ours, theirs = (rest[: rest.index("--")], rest[rest.index("--") + 1:]) if "--" in rest \
        else (rest, [])
    parser = argparse.ArgumentParser(prog="tasks.py lab", epilog="arguments after -- go to "
                                     "JupyterLab, e.g. tasks.py lab -- --port 8890")
    parser.add_argument("--profile", default="demo", help="whose book build (default: demo)")
    profile = parser.parse_args(ours).profile
    if not (ROOT / "build" / "book" / profile / "src" / "notebooks").is_dir():
        sys.exit(f"tasks.py lab: no {profile} book build yet; run `python3.11 tasks.py book "
                 f"--profile {profile}` first")
    course = Path("build") / "course" / profile
    if (ROOT / course / "course.json").is_file():
        print(f"tasks.py: opening the course in {course}; after a new book build, refresh it "
              f"with `.venv/bin/lue-spie course --profile {profile} --out {course} "
              "--link-results --force`", flush=True)
    else:
        rc = _run([_bin("lue-spie"), "course", "--profile", profile, "--out", course,
                   "--link-results"])
        if rc != 0:
            return rc
    return _run([_bin("jupyter"), "lab", *theirs, course])


def _test_processes(rest: list[str]) -> list[str]:
    """pytest-xdist's ``-n``: two processes where this process may use two cores or more (the
    modules are shared out whole, tests/conftest.py), none on one core or when the caller
    chose (``-n``, ``--numprocesses``, ``-p no:xdist``)."""
    if any(a.startswith(("-n", "--numprocesses", "--dist")) or a == "no:xdist" for a in rest):
        return []
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return ["-n", "2"] if cores >= 2 else []


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"book", "test", "lab"}:
        print(__doc__)
        return 2
    what, rest = argv[0], argv[1:]
    ensure_venv()
    if what == "lab":
        return lab(rest)
    if what == "test":
        # pytest's own exit code is returned as is: 1 = failures, 5 = no test ran, both fail.
        return _run([_bin("python"), "-m", "pytest", *_test_processes(rest), *rest])
    if not any(a.startswith("--profile") for a in rest):
        rest = ["--profile", "demo", *rest]
    return _run([_bin("lue-spie"), "book", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

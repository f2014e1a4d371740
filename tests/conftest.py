"""Shared fixtures.

``ci_book``: the book built once per test session with ``lue-spie book --profile ci`` into a
temporary folder; the build test (tests/integration/test_book_build.py) and the browser test
(tests/integration/test_browser.py) both use it, so a test session builds the book once, not twice.
Set ``LUE_SPIE_BOOK_BUILD`` to the build folder of an earlier ``lue-spie book`` run to check
that build instead of making a new one (useful while working on the browser test).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def one_thread():
    """One torch thread for the test, restored after it (modules that run the model on small
    batches use it for every test: ``pytestmark = pytest.mark.usefixtures("one_thread")``).
    Extra threads only add overhead there, several times slower on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass(frozen=True)
class BuiltBook:
    """A built book: where it is and how the build went."""

    build_dir: Path
    html_dir: Path
    results: Path
    output: str
    elapsed_s: float


@pytest.fixture(scope="session")
def ci_book(tmp_path_factory: pytest.TempPathFactory) -> BuiltBook:
    """The ci-profile book, built once per session (or taken from ``LUE_SPIE_BOOK_BUILD``)."""
    given = os.environ.get("LUE_SPIE_BOOK_BUILD")
    if given:
        build = Path(given).resolve()
        html = build / "_build" / "html"
        if not (html / "index.html").is_file():
            pytest.fail(f"LUE_SPIE_BOOK_BUILD={given}: no built book in {html}")
        return BuiltBook(build, html, build / "results", "(reused)", 0.0)
    build = tmp_path_factory.mktemp("book_ci")
    results = build / "results"
    cmd = [sys.executable, "-m", "lue_spie.cli", "book", "--profile", "ci",
           "--build-dir", str(build), "--results", str(results)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"`lue-spie book --profile ci` failed (exit {proc.returncode}) after "
                    f"{elapsed:.0f} s:\n{output[-6000:]}")
    return BuiltBook(build, build / "_build" / "html", results, output, elapsed)

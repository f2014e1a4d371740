"""Shared fixtures.

``ci_book``: the book built once per test session with ``lue-spie book --profile ci`` into a
temporary folder; the build test (tests/integration/test_book_build.py) and the browser test
(tests/integration/test_browser.py) both use it, so a test session builds the book once, not twice.
Set ``LUE_SPIE_BOOK_BUILD`` to the build folder of an earlier ``lue-spie book`` run to check
that build instead of making a new one (useful while working on the browser test).

Parallel runs (``tasks.py test`` runs pytest-xdist on two processes): a module's tests run
in one process, so its module fixtures are built once (:func:`pytest_xdist_make_scheduler`;
xdist's own ``--dist loadgroup`` marks do not reach pytest 9's test ids); the book is built
once for the run, by the first process that needs it, under a file lock, while the other
runs the modules that do not need it (:func:`pytest_collection_modifyitems` orders them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


#: The test modules that use ``ci_book`` (read from their source: the controller of a
#: parallel run schedules before any process has collected a test).
BOOK_MODULES = frozenset(
    str(path.relative_to(ROOT).as_posix()) for path in sorted((ROOT / "tests").rglob("test_*.py"))
    if "ci_book" in path.read_text(encoding="utf-8"))
#: The module whose tests build the book first (the others of BOOK_MODULES run last).
BUILDS_THE_BOOK = "tests/integration/test_book_build.py"


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The order of a parallel run (a stable sort, the same in every process): the module that
    builds the book first, the modules without the book next, the book's other readers last,
    so that one process builds the book while the other runs everything that does not need
    it."""
    def rank(item: pytest.Item) -> int:
        module = _module(item.nodeid)
        return 0 if module == BUILDS_THE_BOOK else 2 if module in BOOK_MODULES else 1

    items.sort(key=rank)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: unknown with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Whole modules per process, in the collection's order (see
    :func:`pytest_collection_modifyitems`), not xdist's largest-first."""
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _module(nodeid)

    return ModuleScheduling(config, log)


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
    """The ci-profile book, built once per test run (or taken from ``LUE_SPIE_BOOK_BUILD``).

    In a parallel run the first process that needs it builds it in the run's shared
    temporary folder under a file lock; the others wait for it and read the record the
    builder left (a failed build fails their tests too, with the builder's output)."""
    given = os.environ.get("LUE_SPIE_BOOK_BUILD")
    if given:
        build = Path(given).resolve()
        html = build / "_build" / "html"
        if not (html / "index.html").is_file():
            pytest.fail(f"LUE_SPIE_BOOK_BUILD={given}: no built book in {html}")
        return BuiltBook(build, html, build / "results", "(reused)", 0.0)
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _build_ci_book(tmp_path_factory.mktemp("book_ci"))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # the same for every process of the run
    record = shared / "book_ci.json"
    with FileLock(str(shared / "book_ci.lock")):
        if not record.is_file():
            build = shared / "book_ci"
            build.mkdir()
            try:
                book = _build_ci_book(build)
                record.write_text(json.dumps({"ok": True, "output": book.output,
                                              "elapsed_s": book.elapsed_s}))
            except pytest.fail.Exception as failed:
                record.write_text(json.dumps({"ok": False, "output": str(failed)}))
                raise
    built = json.loads(record.read_text())
    if not built["ok"]:
        pytest.fail(f"the ci book's build failed in another test process:\n{built['output']}")
    build = shared / "book_ci"
    return BuiltBook(build, build / "_build" / "html", build / "results", built["output"],
                     built["elapsed_s"])


def _build_ci_book(build: Path) -> BuiltBook:
    """``lue-spie book --profile ci`` into ``build`` (results in ``build/results``)."""
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

"""Browser check of the built book: every page in a headless Chromium.

For each HTML page of the ci-profile book (built once per session by the ``ci_book``
fixture) served from a local HTTP server (127.0.0.1, a free port, stopped at the end):

- the page loads without console errors (Chromium's log at level SEVERE);
- every figure image (``_images/``) is loaded by the browser, and its PNG decodes to more
  than one colour (not blank);
- no output cell shows an error, a traceback or stderr;
- a full-page screenshot is saved to ``$LUE_SPIE_ARTIFACTS`` (default
  ``build/artifacts/screenshots``) as an artifact.

Tooling: Selenium driving Debian's ``chromium`` through ``chromium-driver``
(``apt-get install chromium chromium-driver``), fully offline. Without them the test is
skipped and says why.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import os
import shutil
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver", "chromedriver")
ERROR_SELECTORS = (".output.error", ".output.traceback", ".output.stderr",
                   ".cell_output .traceback", ".cell_output .stderr")


def _find(candidates: tuple[str, ...]) -> str | None:
    for c in candidates:
        path = c if os.path.isabs(c) and os.access(c, os.X_OK) else shutil.which(c)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser_tools() -> tuple[str, str]:
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("browser test skipped: the selenium package is not installed "
                    "(it is pinned in requirements.txt)")
    chromium = _find(CHROMIUM_CANDIDATES)
    driver = _find(DRIVER_CANDIDATES)
    if chromium is None or driver is None:
        missing = [n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p]
        pytest.skip(f"browser test skipped: {' and '.join(missing)} not found; install them "
                    "with `apt-get install chromium chromium-driver`")
    return chromium, driver


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def _serve(directory: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(ci_book) -> Iterator[str]:
    with _serve(ci_book.html_dir) as url:
        yield url


#: The repository and hub a published test book names (never contacted: links only).
REPOSITORY = "https://github.com/lue-spie/lue-spie"
HUB = "https://hub.example.org"


@pytest.fixture(scope="module")
def published_server(ci_book, browser_tools, tmp_path_factory) -> Iterator[str]:
    """The ci book's executed chapters built again as a published book (a repository named)."""
    from lue_spie.book import build_book, chapter_notebooks
    from lue_spie.book.publish import PublishSettings

    tmp = tmp_path_factory.mktemp("published")
    src = tmp / "src"
    shutil.copytree(ci_book.build_dir / "src" / "notebooks", src / "notebooks")
    html = build_book(ROOT, src, tmp / "out", notebooks=chapter_notebooks(ROOT),
                      publish=PublishSettings(repository_url=REPOSITORY, jupyterhub_url=HUB),
                      log=lambda _: None)
    with _serve(html) as url:
        yield url


@pytest.fixture(scope="module")
def driver(browser_tools) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_tools
    profile = tempfile.mkdtemp(prefix="lue-spie-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(chromedriver), options=options)
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _pages(html_dir: Path) -> list[str]:
    pages = []
    for p in sorted(html_dir.rglob("*.html")):
        rel = p.relative_to(html_dir)
        if rel.parts[0] in ("_static", "_sources", "_images"):
            continue
        pages.append(rel.as_posix())
    return pages


def _artifacts_dir() -> Path:
    d = Path(os.environ.get("LUE_SPIE_ARTIFACTS", ROOT / "build" / "artifacts" / "screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _not_blank(png: bytes) -> bool:
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    return any(lo != hi for lo, hi in img.getextrema())


def _wait_ready(drv) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(drv, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete")
    # MathJax typesets after load; wait for it where the page uses it.
    drv.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (window.MathJax && MathJax.startup && MathJax.startup.promise) {"
        "  MathJax.startup.promise.then(() => done(true), () => done(false));"
        "} else { done(true); }")


def test_every_page_in_a_browser(ci_book, server, driver):
    drv = driver
    drv.set_script_timeout(30)
    shots = _artifacts_dir()
    pages = _pages(ci_book.html_dir)
    assert "notebooks/03_calibration.html" in pages
    problems: list[str] = []
    n_figures = 0
    for page in pages:
        drv.get(f"{server}/{page}")
        _wait_ready(drv)
        for entry in drv.get_log("browser"):
            if entry.get("level") == "SEVERE":
                problems.append(f"{page}: console error: {entry.get('message')}")
        for img in drv.find_elements("css selector", "img"):
            src = img.get_attribute("src") or ""
            loaded = drv.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", img)
            if not loaded:
                problems.append(f"{page}: image not loaded: {src}")
                continue
            if "/_images/" in src:
                n_figures += 1
                with urllib.request.urlopen(src, timeout=30) as resp:
                    if not _not_blank(resp.read()):
                        problems.append(f"{page}: blank figure (one colour): {src}")
        for sel in ERROR_SELECTORS:
            found = drv.find_elements("css selector", sel)
            if found:
                problems.append(f"{page}: {len(found)} output block(s) matching {sel!r}: "
                                f"{found[0].text[:200]!r}")
        if "Traceback (most recent call last)" in drv.find_element("tag name", "body").text:
            problems.append(f"{page}: a traceback is shown")
        height = drv.execute_script(
            "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
        drv.set_window_size(1280, min(max(int(height), 900), 16000))
        drv.save_screenshot(str(shots / (page.replace("/", "__").removesuffix(".html")
                                         + ".png")))
        drv.set_window_size(1280, 900)
    assert not problems, "\n".join(problems)
    assert n_figures >= 10, f"only {n_figures} figures across the book"
    # The API reference is built from the docstrings, and the offline book launches nothing.
    assert "book/api/model.html" in pages
    drv.get(f"{server}/book/api/model.html")
    assert drv.find_elements("id", "lue_spie.model.lue.simulate")
    drv.get(f"{server}/notebooks/03_calibration.html")
    assert "mybinder.org" not in drv.page_source


def test_a_published_book_launches_every_chapter(ci_book, published_server, driver):
    from lue_spie.book import chapter_notebooks

    drv = driver
    problems: list[str] = []
    for nb in chapter_notebooks(ROOT):
        stem = nb.removesuffix(".ipynb")
        drv.get(f"{published_server}/notebooks/{stem}.html")
        _wait_ready(drv)
        for entry in drv.get_log("browser"):
            if entry.get("level") == "SEVERE":
                problems.append(f"{stem}: console error: {entry.get('message')}")
        links = [a.get_attribute("href") or "" for a in drv.find_elements("css selector", "a")]
        binder = (f"https://mybinder.org/v2/gh/lue-spie/lue-spie/main"
                  f"?urlpath=lab/tree/notebooks/{nb}")
        if binder not in links:
            problems.append(f"{stem}: no Binder launch link {binder}")
        hub = [u for u in links if u.startswith(f"{HUB}/hub/user-redirect/git-pull?")]
        if not hub or f"notebooks/{nb}" not in urllib.parse.unquote(hub[0]):
            problems.append(f"{stem}: no JupyterHub launch link to notebooks/{nb}")
        if REPOSITORY not in links:
            problems.append(f"{stem}: no repository button")
    assert not problems, "\n".join(problems)

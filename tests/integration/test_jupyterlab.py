"""JupyterLab starts from the project's environment and serves the chapters.

Starts ``jupyter lab`` headless on 127.0.0.1 (a free port, a token, no browser) over a copy of
the chapter notebooks, checks that it serves the lab page, opens a chapter through the
contents API, starts and stops a kernel, then shuts the server down through its API. The
server is killed if anything goes wrong, and its log is shown on failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lue_spie.book import chapter_notebooks, find_source_root

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120  # a shared 2-core machine can be slow to import the server
STOP_TIMEOUT_S = 30


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running JupyterLab server and a small client for its REST API."""

    def __init__(self, root: Path, home: Path) -> None:
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "jupyterlab.log"
        env = {
            **os.environ,
            # Nothing of the user's Jupyter set-up is read or written.
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            "PYTHONPATH": str(ROOT),
        }
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
               f"--port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
               # No extension manager: it would look up PyPI (no internet needed here).
               "--LabApp.extension_manager=readonly"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # CI containers run as root
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=root)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def request(self, method: str, path: str, body: Any = None,
                timeout: float = 30) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"token {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def json(self, method: str, path: str, body: Any = None) -> Any:
        status, raw = self.request(method, path, body)
        assert 200 <= status < 300, f"{method} {path}: HTTP {status}: {raw[:300]!r}"
        return json.loads(raw) if raw else None

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, _ = self.request("GET", "/api/status", timeout=5)
                if status == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        pytest.fail(f"jupyter lab did not answer within {START_TIMEOUT_S} s:\n{self.log()}")

    def stop(self) -> int | None:
        """Shut the server down through its API; kill it if it does not go."""
        try:
            if self.proc.poll() is None:
                try:
                    self.request("POST", "/api/shutdown", timeout=10)
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                try:
                    self.proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.proc.terminate()
                    try:
                        self.proc.wait(10)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.proc.wait(10)
                    return None  # it had to be stopped by a signal
            return self.proc.returncode
        finally:
            self._log.close()


@pytest.fixture
def lab(tmp_path):
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    source = find_source_root(ROOT)
    for nb in chapter_notebooks(source):
        shutil.copy2(source / "notebooks" / nb, root / "notebooks" / nb)
    server = Lab(root, tmp_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_jupyterlab_serves_the_chapters(lab):
    # The lab page itself.
    status, page = lab.request("GET", "/lab")
    assert status == 200, page[:300]
    text = page.decode()
    assert "<title>JupyterLab</title>" in text and "jupyter-config-data" in text

    # A chapter through the contents API, cell for cell as on disk.
    source = find_source_root(ROOT)
    chapter = chapter_notebooks(source)[0]
    model = lab.json("GET", f"/api/contents/notebooks/{chapter}?content=1&type=notebook")
    assert model["type"] == "notebook" and model["name"] == chapter
    on_disk = json.loads((source / "notebooks" / chapter).read_text())
    assert len(model["content"]["cells"]) == len(on_disk["cells"])
    assert model["content"]["cells"][0]["source"] == "".join(on_disk["cells"][0]["source"])
    listing = lab.json("GET", "/api/contents/notebooks")
    assert {f["name"] for f in listing["content"]} == set(chapter_notebooks(source))

    # The project's kernel starts from this environment, and stops.
    specs = lab.json("GET", "/api/kernelspecs")
    assert "python3" in specs["kernelspecs"]
    kernel = lab.json("POST", "/api/kernels", {"name": "python3"})
    try:
        state = lab.json("GET", f"/api/kernels/{kernel['id']}")["execution_state"]
        assert state in {"starting", "idle", "busy"}
    finally:
        status, _ = lab.request("DELETE", f"/api/kernels/{kernel['id']}")
    assert status == 204
    assert lab.json("GET", "/api/kernels") == []

    # A clean shutdown through the API.
    assert lab.stop() == 0, lab.log()


def test_myst_renders_in_the_lab(tmp_path):
    # The chapters' MyST ({cite:p}, {doc}, admonitions) reads as the book does only with the
    # jupyterlab-myst extension, installed, enabled and compatible with this JupyterLab.
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    out = subprocess.run([sys.executable, "-m", "jupyterlab.labextensions", "list"],
                         capture_output=True, text=True, env=env)
    listing = out.stdout + out.stderr
    line = next((ln for ln in listing.splitlines() if "jupyterlab-myst" in ln), "")
    assert "enabled" in line and "OK" in line, listing
    assert "is not compatible" not in listing, listing

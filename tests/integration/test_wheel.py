"""The package as a wheel: it builds, installs outside the checkout and answers ``--version``.

The wheel is built without build isolation (the pinned setuptools of ``.venv``) and installed
without its dependencies into a fresh virtual environment that borrows ``.venv``'s installed
packages (a ``.pth`` line: no download, no second torch); the command then runs in a folder
outside the repository, so it finds nothing of the checkout. The data manifest and the
realism reference travel inside the package.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from lue_spie import __version__

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(dist), str(ROOT)], check=True, capture_output=True)
    wheels = list(dist.glob("lue_spie-*.whl"))
    assert len(wheels) == 1, wheels
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    py = env / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], check=True, capture_output=True,
                               text=True).stdout.strip())
    # The dependencies come from this environment's site-packages (not its editable lue_spie,
    # whose finder is a .pth file there that a plain path line does not run).
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                    "--no-index", str(wheels[0])], check=True, capture_output=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    run = subprocess.run([str(env / "bin" / "lue-spie"), "--version"], cwd=outside,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"lue-spie {__version__}"
    where = subprocess.run([str(py), "-c", "import lue_spie, lue_spie.data.manifest as m; "
                            "print(lue_spie.__file__); print(m.load().path)"],
                           cwd=outside, capture_output=True, text=True, check=True)
    package, manifest = where.stdout.split()
    assert Path(package).is_relative_to(site) and not Path(package).is_relative_to(ROOT)
    assert Path(manifest).is_relative_to(site)

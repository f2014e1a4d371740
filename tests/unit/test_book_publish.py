"""The book's publishing option: repository and launch buttons only when a repository is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lue_spie.book.profiles import get_profile
from lue_spie.book.publish import PublishSettings, configure

ROOT = Path(__file__).resolve().parents[2]


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def test_the_default_book_is_offline_without_buttons():
    assert not get_profile("ci").publish.published
    theme = _config()["sphinx"]["config"]["html_theme_options"]
    assert not theme["use_repository_button"]
    assert not any(theme["launch_buttons"][k] for k in ("binderhub_url", "jupyterhub_url"))
    assert configure(_config(), PublishSettings()) == _config()


def test_a_repository_url_turns_on_repository_and_launch_buttons():
    pub = PublishSettings(repository_url="https://github.com/someone/lue-spie.git/",
                          branch="pages", jupyterhub_url="https://hub.example.org/")
    assert pub.repository_url == "https://github.com/someone/lue-spie"
    out = configure(_config(), pub)
    theme = out["sphinx"]["config"]["html_theme_options"]
    assert theme["repository_url"] == "https://github.com/someone/lue-spie"
    assert theme["repository_branch"] == "pages"
    assert theme["use_repository_button"] and theme["use_issues_button"]
    assert theme["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert theme["launch_buttons"]["jupyterhub_url"] == "https://hub.example.org"
    assert theme["launch_buttons"]["thebe"] is False
    # The rest of the theme options and of the configuration are kept.
    assert theme["search_bar_text"] == _config()["sphinx"]["config"]["html_theme_options"][
        "search_bar_text"]
    assert out["sphinx"]["config"]["extensions"] == _config()["sphinx"]["config"]["extensions"]
    assert out["repository"]["url"] == pub.repository_url


@pytest.mark.parametrize("kwargs, word", [
    ({"repository_url": "github.com/a/b"}, "repository_url"),
    ({"repository_url": "https://example.org/a/b"}, "repository_url"),
    ({"repository_url": "https://github.com/a"}, "repository_url"),
    ({"jupyterhub_url": "hub.example.org"}, "jupyterhub_url"),
    ({"branch": "a branch"}, "branch"),
    ({"notebook_interface": "vscode"}, "notebook_interface"),
])
def test_bad_publishing_settings_name_the_setting(kwargs, word):
    with pytest.raises(ValueError, match=word):
        PublishSettings(**kwargs)


def test_the_cli_refuses_a_bad_repository_url_before_running_anything(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lue_spie.cli", "book", "--profile", "ci",
         "--repository-url", "not-a-url", "--build-dir", str(tmp_path / "b"),
         "--results", str(tmp_path / "r")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "repository_url 'not-a-url'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()

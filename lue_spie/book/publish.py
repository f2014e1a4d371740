"""Publishing settings of the book: the repository it comes from and where chapters launch.

The default build is offline and has no repository or launch buttons (they would link to
the internet). A book published from a repository (the GitHub workflow passes
``--repository-url https://github.com/OWNER/NAME``) turns on Jupyter Book's repository and
issues buttons and, on every chapter page, launch buttons: Binder (the ``binder/``
environment, pinned to ``requirements-lock.txt``) and, when a hub is named, JupyterHub
(through nbgitpuller). :func:`configure` writes these into the copy of ``_config.yml`` the
build uses; the sources are never edited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["PublishSettings", "configure"]

_REPOSITORY = re.compile(r"^https://(github\.com|gitlab\.com|bitbucket\.org)/[\w.-]+/[\w.-]+$")
_HTTP_URL = re.compile(r"^https?://[\w.-]+(:\d+)?(/[\w./-]*)?$")


@dataclass(frozen=True)
class PublishSettings:
    """Where a published book comes from and where its chapters launch.

    Attributes:
        repository_url: The repository the book is built from
            (``https://github.com/OWNER/NAME``, GitLab or Bitbucket); empty: an offline book
            without repository or launch buttons.
        branch: The branch the launch buttons open.
        binderhub_url: The BinderHub that builds ``binder/`` (``https://mybinder.org``);
            empty: no Binder button.
        jupyterhub_url: A JupyterHub with nbgitpuller (``https://hub.example.org``); empty:
            no JupyterHub button.
        notebook_interface: ``"jupyterlab"`` or ``"classic"``: which interface a launched
            chapter opens in.
    """

    repository_url: str = ""
    branch: str = "main"
    binderhub_url: str = "https://mybinder.org"
    jupyterhub_url: str = ""
    notebook_interface: str = "jupyterlab"

    def __post_init__(self) -> None:
        url = self.repository_url.rstrip("/").removesuffix(".git")
        object.__setattr__(self, "repository_url", url)
        if url and not _REPOSITORY.match(url):
            raise ValueError(f"repository_url {self.repository_url!r}: expected "
                             "https://github.com/OWNER/NAME (or gitlab.com, bitbucket.org)")
        for name in ("binderhub_url", "jupyterhub_url"):
            value = getattr(self, name).rstrip("/")
            object.__setattr__(self, name, value)
            if value and not _HTTP_URL.match(value):
                raise ValueError(f"{name} {value!r}: expected an http(s) address such as "
                                 "https://mybinder.org")
        if not re.fullmatch(r"[\w./-]+", self.branch):
            raise ValueError(f"branch {self.branch!r}: expected a git branch name")
        if self.notebook_interface not in ("jupyterlab", "classic"):
            raise ValueError(f"notebook_interface {self.notebook_interface!r}: expected "
                             "'jupyterlab' or 'classic'")

    @property
    def published(self) -> bool:
        """Whether the book names its repository (and so shows its buttons)."""
        return bool(self.repository_url)

    def with_overrides(self, **values: Any) -> PublishSettings:
        """A copy with the given fields replaced (None values are ignored)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def configure(config: dict[str, Any], publish: PublishSettings) -> dict[str, Any]:
    """The Jupyter Book configuration with the publishing buttons set (a new dict).

    ``_config.yml`` sets Sphinx's ``html_theme_options`` in full (they replace those Jupyter
    Book derives from ``html:`` and ``launch_buttons:``), so the buttons are set there, and
    in the top-level sections for a reader of the written configuration.
    """
    out = {**config}
    if not publish.published:
        return out
    launch = {
        "notebook_interface": publish.notebook_interface,
        "binderhub_url": publish.binderhub_url,
        "jupyterhub_url": publish.jupyterhub_url,
        "colab_url": "",
        "deepnote_url": "",
        "thebe": False,
    }
    out["repository"] = {"url": publish.repository_url, "branch": publish.branch,
                         "path_to_book": ""}
    out["launch_buttons"] = {**out.get("launch_buttons", {}), **launch}
    out["html"] = {**out.get("html", {}), "use_repository_button": True,
                   "use_issues_button": True}
    sphinx = {**out.get("sphinx", {})}
    sphinx_config = {**sphinx.get("config", {})}
    theme = {**sphinx_config.get("html_theme_options", {})}
    theme.update({
        "repository_url": publish.repository_url,
        "repository_branch": publish.branch,
        "path_to_docs": "",
        "use_repository_button": True,
        "use_issues_button": True,
        "launch_buttons": {**theme.get("launch_buttons", {}), **launch},
    })
    sphinx_config["html_theme_options"] = theme
    sphinx["config"] = sphinx_config
    out["sphinx"] = sphinx
    return out

"""The API reference: every module on a page, and the cross-reference resolver of its build."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest
import yaml

import lue_spie
from lue_spie.book.apidoc import MISSING, _unsplit, resolve_object

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "book" / "api"
#: Templates to copy (a method, a data source) and the figures' private style.
NOT_DOCUMENTED = {"lue_spie.methods._template", "lue_spie.data._template_source",
                  "lue_spie.plots._style"}


def _documented() -> list[str]:
    return [m for page in sorted(API.glob("*.md"))
            for m in re.findall(r"^\.\. automodule:: (\S+)$", page.read_text(), re.M)]


def test_every_module_of_the_package_has_its_entry_once():
    modules = {m.name for m in pkgutil.walk_packages(lue_spie.__path__, "lue_spie.")}
    documented = _documented()
    assert len(documented) == len(set(documented)), "a module is documented twice"
    missing = sorted(modules - NOT_DOCUMENTED - set(documented))
    assert not missing, f"modules absent from book/api/*.md: {missing}"
    assert not set(documented) - modules, "book/api/ names a module that does not exist"


def test_the_api_pages_are_in_the_table_of_contents_and_the_build_loads_autodoc():
    toc = (ROOT / "_toc.yml").read_text()
    for page in API.glob("*.md"):
        assert f"book/api/{page.stem}" in toc, page.name
    extensions = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"][
        "extensions"]
    assert {"sphinx.ext.autodoc", "sphinx.ext.napoleon", "lue_spie.book.apidoc"} <= set(
        extensions)


@pytest.mark.parametrize("line, expected", [
    ("Bounds (shape (13, 2)): lower, upper", "Bounds (shape (13, 2)) \u2014 lower, upper"),
    ("One row per site: columns a, b", "One row per site \u2014 columns a, b"),
    ("Fewest points (SPEC 4: fewer are left out).", "Fewest points (SPEC 4 \u2014 fewer are "
                                                    "left out)."),
    ("dict[str, float]: the scores", "dict[str, float]: the scores"),
    (":class:`Likelihood`: the table", ":class:`Likelihood`: the table"),
    ("Uses ``a: b`` inside code", "Uses ``a: b`` inside code"),
])
def test_prose_before_a_colon_is_not_read_as_a_type(line, expected):
    assert _unsplit(line) == expected


def test_references_resolve_to_where_objects_are_defined():
    from lue_spie.model.lue import simulate

    assert resolve_object("lue_spie.model.simulate", None) is simulate
    # A short name inside a module's docstring, read in that module.
    assert resolve_object("simulate", "lue_spie.model") is simulate
    assert resolve_object("run", "lue_spie.calibrate.step") is importlib.import_module(
        "lue_spie.calibrate.step").run
    # External names resolve to their objects (the build leaves them unlinked) ...
    assert resolve_object("Path", "lue_spie.store") is Path
    # ... and a name that exists nowhere resolves to nothing, so the build fails on it.
    assert resolve_object("lue_spie.model.no_such_function", None) is MISSING
    assert resolve_object("no_such_name", "lue_spie.model") is MISSING

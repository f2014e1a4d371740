"""The project's publishing files agree with the formats they follow and with each other:
CITATION.cff (Citation File Format 1.2.0), .zenodo.json (Zenodo deposit metadata), the CI
workflow that tests, builds and deploys the book, the Binder environment (repo2docker) and
the book's Open Research page.

Offline by design: CITATION.cff is validated against a copy of the CFF 1.2.0 JSON schema in
tests/unit/data/ (source and licence in its README.md) with ``jsonschema``, which the lock
pins as a dependency of nbformat.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from lue_spie.layout import BookBuild

ROOT = Path(__file__).resolve().parents[2]
CFF_SCHEMA = Path(__file__).resolve().parent / "data" / "citation-file-format-1.2.0.schema.json"
PAPER_DOI = "10.1029/2022MS003464"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


class _CffLoader(yaml.SafeLoader):
    """A safe YAML loader that keeps dates as strings (the CFF schema wants strings)."""


_CffLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _cff() -> dict:
    return yaml.load((ROOT / "CITATION.cff").read_text(encoding="utf-8"), Loader=_CffLoader)


def _zenodo() -> dict:
    return json.loads((ROOT / ".zenodo.json").read_text(encoding="utf-8"))


def _norm(name: str) -> str:
    """A distribution name in the normal form of PEP 503."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _exact_pins(text: str) -> dict[str, str]:
    """``name==version`` lines of a requirements file (comments and option lines skipped)."""
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*==\s*(\S+)", line)
        assert m, f"not an exact pin: {line!r}"
        pins[_norm(m.group(1))] = m.group(2)
    return pins


# --- CITATION.cff ---------------------------------------------------------------------------


def test_the_shipped_schema_is_cff_1_2_0():
    schema = json.loads(CFF_SCHEMA.read_text(encoding="utf-8"))
    assert schema["$id"] == "https://citation-file-format.github.io/1.2.0/schema.json"
    jsonschema.Draft7Validator.check_schema(schema)


def test_citation_cff_is_valid_cff_1_2_0():
    schema = json.loads(CFF_SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(_cff()), key=str)
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors)


def test_citation_cff_describes_this_package():
    cff = _cff()
    assert cff["cff-version"] == "1.2.0"
    assert cff["type"] == "software"
    assert cff["version"] == PYPROJECT["version"]
    assert cff["license"] == PYPROJECT["license"]["text"] == "MIT"
    # The authors of pyproject.toml, as an entity (a team, not a person).
    assert [a.get("name") for a in cff["authors"]] == [a["name"] for a in PYPROJECT["authors"]]
    assert cff["keywords"] and cff["abstract"].strip()
    assert "repository-code" not in cff or cff["repository-code"].startswith("https://")


def test_citation_cff_cites_the_paper():
    cff = _cff()
    works = cff.get("references", []) + [cff.get("preferred-citation") or {}]
    paper = next(w for w in works if w.get("doi") == PAPER_DOI)
    assert paper["type"] == "article"
    assert paper["journal"] == "Journal of Advances in Modeling Earth Systems"
    assert (paper["year"], paper["volume"]) == (2023, 15)
    assert [a["family-names"] for a in paper["authors"]] == [
        "Bao", "Alonso", "Wang", "Gensheimer", "De", "Carvalhais"]


# --- .zenodo.json ---------------------------------------------------------------------------


def test_zenodo_metadata():
    z = _zenodo()
    assert z["upload_type"] == "software"
    assert z["license"] == "MIT"
    assert z["version"] == PYPROJECT["version"]
    assert z["creators"] and all(c.get("name", "").strip() for c in z["creators"])
    assert [c["name"] for c in z["creators"]] == [a["name"] for a in PYPROJECT["authors"]]
    assert z["title"] == _cff()["title"]
    assert z["description"].strip() and z["keywords"]
    paper = [r for r in z["related_identifiers"] if r["identifier"] == PAPER_DOI]
    assert paper and paper[0]["relation"] in {"isSupplementTo", "references"}
    assert paper[0]["scheme"] == "doi"


# --- the CI workflow of the book ------------------------------------------------------------


def _workflow() -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())


def _steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def _uses(job: dict, action: str) -> list[dict]:
    return [s for s in _steps(job) if s.get("uses", "").split("@")[0] == action]


def test_workflow_runs_on_push_and_pull_request():
    wf = _workflow()
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert "push" in triggers and "pull_request" in triggers
    assert wf["permissions"] == {"contents": "read"}


def test_workflow_tests_and_builds_the_book_with_python_3_11():
    jobs = _workflow()["jobs"]
    runs = {name: " ".join(s.get("run", "") for s in _steps(job)) for name, job in jobs.items()}
    # The test command of the README, through .ci/run (which installs chromium first).
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert "python3.11 tasks.py test" in ci_run and "chromium-driver" in ci_run
    assert any(".ci/run" in r or "python3.11 tasks.py test" in r for r in runs.values())
    book = next(job for name, job in jobs.items() if "python3.11 tasks.py book" in runs[name])
    (setup,) = _uses(book, "actions/setup-python")
    assert str(setup["with"]["python-version"]) == "3.11"
    assert setup["with"]["cache"] == "pip"
    (upload,) = _uses(book, "actions/upload-pages-artifact")
    assert Path(upload["with"]["path"]) == BookBuild.of("demo").html
    # The published book names its repository, which turns its launch buttons on.
    assert "--repository-url" in runs[next(n for n in jobs if jobs[n] is book)]


def test_workflow_deploys_pages_only_from_main():
    jobs = _workflow()["jobs"]
    (deploy,) = [job for job in jobs.values() if _uses(job, "actions/deploy-pages")]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert "refs/heads/main" in deploy["if"] and "push" in deploy["if"]
    needs = deploy["needs"] if isinstance(deploy["needs"], list) else [deploy["needs"]]
    assert {"book"} <= set(needs)


# --- Binder (repo2docker) -------------------------------------------------------------------


def test_binder_pins_are_the_lock():
    binder = (ROOT / "binder" / "requirements.txt").read_text()
    pins = _exact_pins(binder)
    lock = _exact_pins((ROOT / "requirements-lock.txt").read_text())
    # torch comes from the PyTorch CPU index: the lock's 2.13.0 is the CPU wheel of the
    # reference machine (its version reads 2.13.0+cpu); from PyPI alone, pip would take the
    # CUDA build and its nvidia-* wheels, which the lock does not hold.
    assert lock["torch"] == "2.13.0"
    assert pins["torch"] == "2.13.0+cpu"
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in binder.splitlines()
    public = {name: version.split("+", 1)[0] for name, version in pins.items()}
    wrong = {n: (v, lock.get(n)) for n, v in public.items() if lock.get(n) != v}
    assert not wrong, f"binder pins that differ from the lock (binder, lock): {wrong}"
    assert set(pins) == set(lock), f"lock pins missing: {sorted(set(lock) - set(pins))}"


def test_binder_file_is_self_contained():
    # repo2docker installs binder/requirements.txt before it copies the repository in, so the
    # file may not point at other files of the repository.
    for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        assert not line.startswith(("-r", "-c", "-e", "--requirement", "--constraint", ".")), line


def test_binder_python_and_package():
    binder = ROOT / "binder"
    assert (binder / "runtime.txt").read_text().strip() == "python-3.11"
    post = binder / "postBuild"
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
    text = post.read_text()
    assert text.startswith("#!/bin/bash") and "set -e" in text
    assert re.search(r"pip install .*--no-deps.* (-e )?\.$", text, re.M)
    # With a binder/ folder, repo2docker ignores the root's environment files: one route only.
    assert not (binder / "environment.yml").exists()


# --- the Open Research page -----------------------------------------------------------------


def test_open_research_page_is_in_the_book():
    toc = (ROOT / "_toc.yml").read_text()
    assert re.search(r"^\s*- file: book/open-research\s*$", toc, re.M)


def test_open_research_page_lists_every_data_source_and_its_licence():
    page = " ".join((ROOT / "book" / "open-research.md").read_text(encoding="utf-8").split())
    manifest = yaml.safe_load((ROOT / "data_manifest.yml").read_text())
    for ds in manifest["datasets"]:
        assert f"`{ds['id']}`" in page, ds["id"]
        assert " ".join(str(ds["licence"]).split()) in page, ds["id"]


def test_open_research_citations_exist():
    page = (ROOT / "book" / "open-research.md").read_text(encoding="utf-8")
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    keys = set(re.findall(r"^@\w+\{([^,\s]+),", bib, re.M))
    cited = {k.strip() for group in re.findall(r"\{cite:[pt]\}`([^`]+)`", page)
             for k in group.split(",")}
    assert cited and not cited - keys, f"not in references.bib: {sorted(cited - keys)}"


@pytest.mark.parametrize("name", ["CITATION.cff", ".zenodo.json", "README.md"])
def test_the_paper_doi_is_given(name):
    assert PAPER_DOI in (ROOT / name).read_text(encoding="utf-8")

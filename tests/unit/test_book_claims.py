"""The book's prose: statements about the paper say where the paper makes them, and no page
carries numbers or profile sizes typed by hand where the build computes them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lue_spie.book.glue import glue_references

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "book").glob("*.md"))
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))

#: Where in the paper a statement is made.
LOCATION = re.compile(r"(section|Figure|Table|abstract|supplement|\bS\d)", re.I)
#: Mentions of "paper" that are not statements about what the paper says, with the reason.
NOT_CLAIMS = {
    r"on paper": "a pencil-and-paper exercise",
    r"next to the paper": "a heading: the comparison table follows",
    r"`paper` profile|paper profile|--profile paper|results/paper": "the profile's name",
    r"`paper` world|paper world": "the virtual world's name",
    r"study by \{cite": "the book's first sentence names the study",
    r"the paper it reproduces|Cite the study|How to cite": "how to cite",
    r"where the paper makes it|where the paper is silent": "says where locations and choices are",
    r"test the paper's claims": "what the chapters do",
    r"readers of the paper": "who the book is for",
    r"The study itself is|the paper for the method": "how to cite",
}
#: Phrases that stale, hand-typed or untrue prose had; none may come back.
STALE = (
    "24 virtual sites", "the `ci` profile:", "few dozen", "the `ci` book", "`demo` profile leaves",
    "results/ci_seed7", "median daily NSE\nof about 0.95", "below 41 % for every other",
    "sigmoid (paper)", "paper's sigmoid", "boreal\nand polar sites (Koeppen main groups D and E)",
    "comes first by every measure, as", "18 minutes", "83 minutes",
)
#: In the chapters a rerun command names the build's folder (RESULTS), never one profile's.
STALE_IN_CHAPTERS = ("results/ci", "results/demo", "results/paper")


def _markdown(path: Path) -> list[tuple[str, str]]:
    if path.suffix == ".md":
        return [(path.name, path.read_text(encoding="utf-8"))]
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [(f"{path.name} cell {i}", "".join(c["source"])) for i, c in enumerate(nb["cells"])
            if c["cell_type"] == "markdown"]


def _sentences(text: str) -> list[str]:
    flat = re.sub(r"\s*\n\s*", " ", text)
    return re.split(r"(?<=[.!?])\s+(?=[A-Z*{(#])", flat)


@pytest.mark.parametrize("path", [*CHAPTERS, *PAGES], ids=lambda p: p.name)
def test_statements_about_the_paper_say_where(path):
    missing = []
    for where, text in _markdown(path):
        for s in _sentences(text):
            if not re.search(r"\bpaper\b|bao2023spie", s) or LOCATION.search(s):
                continue
            if any(re.search(p, s) for p in NOT_CLAIMS):
                continue
            missing.append(f"{where}: {s[:160]}")
    assert not missing, "statements about the paper without a location:\n" + "\n".join(missing)


@pytest.mark.parametrize("path", [*CHAPTERS, *PAGES], ids=lambda p: p.name)
def test_no_stale_prose(path):
    stale = (*STALE, *STALE_IN_CHAPTERS) if path.suffix == ".ipynb" else STALE
    found = [(where, s) for where, text in _markdown(path) for s in stale if s in text]
    assert not found, found


def test_the_profiles_table_of_the_rerun_page_is_the_code_s():
    from lue_spie.book.profiles import PROFILES

    text = (ROOT / "book" / "rerun.md").read_text(encoding="utf-8")
    rows = {m[0]: [c.strip() for c in m[1].split("|")]
            for m in re.findall(r"^\| `(\w+)` \|(.*)\|$", text, re.M) if m[0] in PROFILES}
    assert set(rows) == set(PROFILES)
    for name, prof in PROFILES.items():
        opt = prof.extrapolate.method_params["OPT-All"]["settings"]
        expected = [
            f"{prof.data.n_sites} x {prof.data.n_years}",
            f"{prof.calibrate.max_gen}, {prof.calibrate.restarts}, {prof.calibrate.dtype}",
            f"{opt['max_gen']}, {opt['restarts']}",
            str(prof.extrapolate.method_params["SPIE"]["epochs"]),
            "yes" if prof.twin.enabled else "no",
            str(prof.execution.workers),
        ]
        assert rows[name] == expected, (name, rows[name], expected)


def test_the_introduction_types_no_result():
    """Every number of the introduction's findings is glued from a chapter."""
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    body = intro[intro.index("## What this build finds"):intro.index("## Who this is for")]
    body = re.sub(r"\{glue:text\}`[^`]*`|\{doc\}`[^`]*`|\{cite:[pt]\}`[^`]*`", "", body)
    body = re.sub(r"section \d+(\.\d+)*|Figure \d+|196 real sites", "", body)
    numbers = re.findall(r"\d+(?:\.\d+)?\s?%?", re.sub(r"```\{glue:\}.*?```", "", body,
                                                         flags=re.S))
    assert numbers == [], numbers
    refs = glue_references(intro)
    assert {k for _, k, _ in refs} >= {"ranking", "margin", "baselines", "truth", "n_sites",
                                      "calib_median_nse", "truth_median_nse"}
    for doc, _, fmt in refs:
        assert (ROOT / "book" / doc).resolve().is_file(), doc
        assert fmt == "s", "glued values are preformatted text: use the format `s`"


def test_every_glued_key_a_page_pastes_is_glued_by_its_chapter():
    glued: dict[str, set[str]] = {}
    for nb_path in CHAPTERS:
        code = "".join("".join(c["source"]) for c in json.loads(nb_path.read_text())["cells"]
                       if c["cell_type"] == "code")
        keys = set(re.findall(r"glue_(?:text|table)\(\s*\"([\w.-]+)\"", code))
        if "settle_parameters(globals())" in code:
            keys |= {"profile", "results_dir"}
        glued[nb_path.name] = keys
    for path in [*CHAPTERS, *PAGES]:
        for where, text in _markdown(path):
            for doc, key, _ in glue_references(text):
                assert key in glued[Path(doc).name], f"{where}: {doc}::{key} is glued nowhere"
            for key in re.findall(r"\{glue:text\}`([\w-]+):(?!:)[^`]*`", text):
                assert key in glued[path.name], f"{where}: {key} is glued nowhere"
            for key, doc in re.findall(r"```\{glue:\} ([\w.-]+)\n:doc: ([^\n]+)", text):
                assert key in glued[Path(doc).name], f"{where}: {doc}::{key} is glued nowhere"

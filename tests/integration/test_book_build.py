"""Integration: the whole ci-profile book pipeline (papermill chapters + Jupyter Book)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lue_spie import book

CHAPTERS = book.chapter_notebooks(book.find_source_root())
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_every_page_is_built(ci_book):
    html = ci_book.html_dir
    assert (html / "index.html").is_file()
    for page in ("intro", "rerun", "real-data", "methods-decisions", "exercises",
                 "bibliography"):
        assert (html / "book" / f"{page}.html").is_file(), page
    for nb in CHAPTERS:
        assert (html / "notebooks" / nb.replace(".ipynb", ".html")).is_file(), nb


def test_checks_pass_on_the_built_book(ci_book):
    # The pipeline ran these checks already; run them again on the result so a regression
    # in the checks or the copy step shows up here too.
    assert book.check_html(ci_book.html_dir, ci_book.build_dir / "src",
                           notebooks=CHAPTERS) == []


def test_chapters_have_figures_and_no_error_output(ci_book):
    for nb in CHAPTERS:
        executed = json.loads((ci_book.build_dir / "src" / "notebooks" / nb).read_text())
        outputs = [o for c in executed["cells"] for o in c.get("outputs", [])]
        assert not [o for o in outputs if o["output_type"] == "error"], nb
        assert not [o for o in outputs
                    if o["output_type"] == "stream" and o["name"] == "stderr"], nb
        pngs = [o for o in outputs if "image/png" in o.get("data", {})]
        assert len(pngs) >= 3, f"{nb}: only {len(pngs)} figure(s)"


def test_results_flow_through_files(ci_book):
    # Chapter 2 writes the dataset, chapter 3 the calibration: both as files with provenance.
    data = ci_book.results / "data"
    calib = ci_book.results / "calibration"
    for f in (data / "site_day.parquet", data / "sites.parquet", data / "truth.parquet",
              calib / "calibration.parquet", calib / "gpp_calib.parquet",
              calib / "convergence.parquet"):
        assert f.is_file(), f
        assert f.with_name(f.name.replace(".parquet", ".provenance.json")).is_file(), f
    import pandas as pd

    table = pd.read_parquet(calib / "calibration.parquet")
    assert len(table) == book.PROFILES["ci"].data.n_sites
    assert (table["status"] == "ok").all()


def test_pipeline_record(ci_book):
    if ci_book.output == "(reused)":
        pytest.skip("reusing an earlier build (LUE_SPIE_BOOK_BUILD)")
    record = json.loads((ci_book.build_dir / "pipeline.json").read_text())
    assert record["profile"] == "ci"
    assert set(record["timings_s"]) >= {*CHAPTERS, "book", "total"}
    injected = record["parameters"]["03_calibration.ipynb"]
    assert injected["calibrate_max_gen"] == book.PROFILES["ci"].calibrate.max_gen
    root = book.find_source_root()
    assert (root / injected["results"]).resolve() == ci_book.results.resolve()
    assert not Path(injected["results"]).is_absolute()
    print(f"ci book pipeline: {record['timings_s']}")


def test_broken_citation_or_reference_fails_the_build(ci_book, tmp_path):
    import shutil

    root = book.find_source_root()
    src_root = tmp_path / "root"
    shutil.copytree(root / "book", src_root / "book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, src_root / name)
    intro = src_root / "book" / "intro.md"
    intro.write_text(intro.read_text() + "\nSee {cite:p}`no_such_key_2099` and "
                     "{doc}`no-such-page`.\n")
    src = tmp_path / "src"
    shutil.copytree(ci_book.build_dir / "src" / "notebooks", src / "notebooks")
    with pytest.raises(book.BookError) as info:
        book.build_book(src_root, src, tmp_path / "out", notebooks=CHAPTERS,
                        log=lambda _: None)
    msg = str(info.value)
    assert "no_such_key_2099" in msg
    assert "no-such-page" in msg


def test_no_absolute_path_of_the_machine_in_the_book_or_results(ci_book):
    # The rendered pages (the injected parameters cell, printed paths, provenance tables) and
    # the results' provenance records must not carry the folder the book was built in.
    import re

    # An absolute path starts the string (a relative path may contain the same characters
    # after "../", e.g. "../../tmp/x" for a build folder outside the repository).
    absolute = re.compile("|".join(rf"(?<![\w.]){re.escape(str(p.resolve()))}"
                                   for p in (book.find_source_root(), ci_book.build_dir)))
    # The pages and the executed notebooks the book offers for download (_sources).
    offered = [*ci_book.html_dir.rglob("*.html"), *ci_book.html_dir.rglob("*.ipynb")]
    assert any(p.suffix == ".ipynb" for p in offered)
    for page in offered:
        text = page.read_text(encoding="utf-8", errors="replace")
        hit = absolute.search(text)
        assert hit is None, f"{page.name}: ...{text[max(0, hit.start() - 80):hit.end()]}"
    for record in ci_book.results.rglob("*.provenance.json"):
        text = record.read_text()
        hit = absolute.search(text)
        # Results written by the book's chapters record their inputs relative to the root.
        assert hit is None, f"{record}: ...{text[max(0, hit.start() - 80):hit.end()]}"


def test_the_glued_numbers_are_those_of_the_results_files(ci_book):
    import pandas as pd

    from lue_spie.assess.claims import findings
    from lue_spie.book.glue import glued_values
    from lue_spie.layout import AssessmentTable, Layout

    executed = ci_book.build_dir / "src" / "notebooks"
    layout = Layout(ci_book.results)
    headline = pd.read_parquet(layout.assessment.table(AssessmentTable.HEADLINE))
    g9 = glued_values(executed / "09_assessment.ipynb")
    facts = findings(headline)
    assert {k: g9[k] for k in facts} == facts
    calibration = pd.read_parquet(layout.calibration.table)
    ok = calibration[calibration["status"] == "ok"]
    g3 = glued_values(executed / "03_calibration.ipynb")
    assert g3["calib_median_nse"] == f"{ok['nse'].median():.3f}"
    g2 = glued_values(executed / "02_data.ipynb")
    assert g2["n_sites"] == str(len(pd.read_parquet(layout.data.sites)))
    # The introduction shows the chapters' sentences, not text of its own.
    import html as html_lib
    import re

    page = (ci_book.html_dir / "book" / "intro.html").read_text(encoding="utf-8")
    text = html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page)))
    text = text.replace("\u2019", "'")
    for key in ("ranking", "margin", "baselines", "truth"):
        assert facts[key] in text, key


def test_a_rerun_against_a_results_folder_takes_its_recorded_settings(ci_book, tmp_path):
    """papermill with only `results` and `seed` runs with the settings the folder records."""
    import shutil
    import subprocess
    import sys

    from lue_spie.layout import Layout

    results = tmp_path / "results"
    shutil.copytree(ci_book.results, results)
    record_path = Layout(results).run_record
    record = json.loads(record_path.read_text())
    assert record["profile"] == "ci" and record["parameters"]["twin_enabled"] is True
    # Recorded as a build that left the twin off (as the demo profile does).
    record["profile"] = "demo"
    record["parameters"]["twin_enabled"] = False
    record_path.write_text(json.dumps(record))
    root = book.find_source_root()
    out = tmp_path / "10_parameters.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", str(root / "notebooks" / "10_parameters.ipynb"),
         str(out), "-p", "results", str(results), "-p", "seed", "7", "--no-progress-bar"],
        cwd=root, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "Parameters: profile demo as recorded in the results folder" in text
    assert "twin_enabled=False" in text
    assert "The twin is off" in text


def test_the_build_log_holds_nothing_a_reader_cannot_act_on(ci_book):
    """No carriage-return progress, no kernel transport warning, no shutdown interrupt."""
    log = ci_book.output
    if log == "(reused)":
        pytest.skip("the book build was reused (LUE_SPIE_BOOK_BUILD): its log is not here")
    assert "\r" not in log
    assert "without encryption" not in log
    assert "KeyboardInterrupt" not in log
    assert "Traceback" not in log


def test_no_page_of_the_ci_book_speaks_of_another_profile_s_size_or_folder(ci_book):
    """The ci book's chapters and introduction name only the ci build's sizes and folders.

    The page on rerunning (its profile table) and the decisions page (a recorded experiment)
    describe other profiles on purpose and are not scanned.
    """
    import html as html_lib
    import re

    forbidden = re.compile(
        r"results/(demo|paper)|196 (virtual )?sites|\b196 x (8|10)\b|\b(8|10) years\b"
        r"|the (demo|paper) (book|build)|few dozen")
    pages = [ci_book.html_dir / "book" / "intro.html",
             *sorted((ci_book.html_dir / "notebooks").glob("*.html"))]
    found = []
    for page in pages:
        text = html_lib.unescape(re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8")))
        text = re.sub(r"\s+", " ", text)
        for m in forbidden.finditer(text):
            found.append(f"{page.name}: ...{text[max(0, m.start() - 60):m.end() + 40]}...")
    assert not found, "\n".join(found)

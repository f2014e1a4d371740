"""Fast tests of the book pipeline: profiles, parameters, notebook execution and checks.

The notebook tests use tiny temporary notebooks (a kernel start each, a few seconds); the
whole book is built in tests/integration/test_book_build.py.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from lue_spie import book
from lue_spie.book import cli as book_cli
from lue_spie.book import pipeline

ROOT = Path(__file__).resolve().parents[2]
#: The chapters, read from the table of contents (the one list of chapters).
CHAPTERS = book.chapter_notebooks(ROOT)


def _notebook(path: Path, cells: list[tuple[str, str, list[str]]]) -> Path:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, src, tags) in enumerate(cells):
        cell = new_markdown_cell(src) if kind == "md" else new_code_cell(src)
        cell.id = f"cell{i}"
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# ------------------------------------------------------------------------------------ profiles
def test_profiles_are_frozen_data():
    assert set(book.PROFILES) == {"ci", "demo", "paper"}
    ci = book.get_profile("ci")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ci.data = None  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ci.data.n_sites = 3  # type: ignore[misc]
    assert (ci.data.n_sites, ci.data.n_years) == (24, 3)
    paper = book.get_profile("paper")
    assert (paper.data.n_sites, paper.data.n_years) == (196, 10)
    demo = book.get_profile("demo")
    assert ci.data.n_sites < demo.data.n_sites <= paper.data.n_sites
    assert (ci.data.n_sites * ci.data.n_years < demo.data.n_sites * demo.data.n_years
            < paper.data.n_sites * paper.data.n_years)
    assert ci.calibrate.max_gen < demo.calibrate.max_gen < paper.calibrate.max_gen


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(KeyError, match="ci.*demo.*paper"):
        book.get_profile("fast")


def test_profile_parameters_are_json_friendly():
    p = dataclasses.replace(book.get_profile("ci"), sites=("VF-001", "VF-002"), years=(2005,))
    params = p.parameters()
    assert params["sites"] == ["VF-001", "VF-002"] and params["years"] == [2005]
    assert "name" not in params and "description" not in params
    json.dumps(params)


#: Parameters of the chapters that are not knobs of a profile: the results folder, and chapter
#: 1's example record (a small world of its own, not the book's dataset).
CHAPTER_ONLY = {"results", "example_years", "example_koeppen"}


def test_a_chapter_parameter_is_a_profile_knob_with_the_ci_value():
    # One name and one default for a knob: a chapter's parameter is the profile's knob of the
    # same name (the settings field it sets), and its default in the notebook is the ci
    # profile's value (a chapter run on its own runs the ci profile).
    knobs = book.get_profile("ci").knobs()
    for nb in book.chapter_notebooks(ROOT):
        for name, default in book.notebook_parameters(ROOT / "notebooks" / nb).items():
            if name in CHAPTER_ONLY:
                continue
            assert name in knobs, f"{nb}: parameter {name} is not a knob of the profiles"
            value = ast.literal_eval(default) if isinstance(default, str) else default
            assert value == knobs[name].value, (nb, name, value, knobs[name].value)


def test_every_knob_a_profile_sets_is_read_by_a_chapter():
    declared = set()
    for nb in book.chapter_notebooks(ROOT):
        declared |= set(book.notebook_parameters(ROOT / "notebooks" / nb))
    default = book.Profile(name="default", description="").knobs()
    for profile in book.PROFILES.values():
        knobs = profile.knobs()
        set_here = {n for n, k in knobs.items() if n not in default
                    or k.value != default[n].value}
        assert not set_here - declared, (profile.name, set_here - declared)
    assert "results" in declared


def test_knobs_carry_the_settings_names_and_descriptions():
    knobs = book.get_profile("demo").knobs()
    assert knobs["calibrate_max_gen"].value == 500
    assert knobs["calibrate_max_gen"].field == "max_gen"
    assert "generations" in knobs["calibrate_max_gen"].doc
    assert knobs["spie_epochs"].value == 2000 and knobs["workers"].value == 2
    assert knobs["opt_all_max_gen"].value == 400 and knobs["twin_enabled"].value is False
    with pytest.raises(ValueError, match="-p data_n_sites: .*expected an integer"):
        knobs["data_n_sites"].coerce("notanumber")


# ---------------------------------------------------------------------------------- parameters
def test_parse_overrides_reads_yaml_values():
    got = book.parse_overrides([["data_n_sites", "12"], ["data_structural_error", "true"],
                                ["sites", "[VF-001, VF-002]"], ["device", "cpu"],
                                ["years", "null"], ["data_source", "/data/fluxnet"]])
    assert got == {"data_n_sites": 12, "data_structural_error": True,
                   "sites": ["VF-001", "VF-002"],
                   "device": "cpu", "years": None, "data_source": "/data/fluxnet"}


@pytest.mark.parametrize("pairs, match", [
    ([["data_n_sites"]], "NAME VALUE"),
    ([["1bad", "3"]], "identifier"),
    ([["sites", "[a, b"]], "YAML"),
])
def test_parse_overrides_rejects_bad_input(pairs, match):
    with pytest.raises(ValueError, match=match):
        book.parse_overrides(pairs)


def test_resolve_parameters_injects_only_declared_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    declared = {"a.ipynb": {"results": None, "seed": None},
                "b.ipynb": {"results": None, "data_source": None, "data_n_sites": None}}
    got = book.resolve_parameters(book.get_profile("ci"),
                                  {"data_n_sites": 5, "data_source": "flux"}, declared, "res")
    # Paths are injected relative to the kernels' folder (here the working directory): no
    # absolute path of the machine reaches a page of the book.
    assert got["a.ipynb"] == {"results": "res", "seed": 42}
    assert got["b.ipynb"] == {"results": "res", "data_source": "flux", "data_n_sites": 5}
    below = book.resolve_parameters(book.get_profile("ci"), {}, declared,
                                    tmp_path / "out" / "res", root=tmp_path / "src")
    assert below["a.ipynb"]["results"] == "../out/res"
    virtual = book.resolve_parameters(book.get_profile("ci"), {}, declared, "res")
    assert virtual["b.ipynb"]["data_source"] == "virtual"


def test_resolve_parameters_rejects_unknown_override():
    declared = {"a.ipynb": {"results": None, "seed": None}}
    with pytest.raises(ValueError, match="n_epochs.*no chapter declares"):
        book.resolve_parameters(book.get_profile("ci"), {"n_epochs": 3}, declared, "res")


def test_resolve_parameters_checks_a_value_before_anything_runs():
    declared = {"a.ipynb": {"results": None, "data_n_sites": None, "twin_methods": None}}
    with pytest.raises(ValueError, match="-p data_n_sites: .*'notanumber'.*an integer"):
        book.resolve_parameters(book.get_profile("ci"), {"data_n_sites": "notanumber"},
                                declared, "res")
    got = book.resolve_parameters(book.get_profile("ci"), {"twin_methods": ["mRF"]},
                                  declared, "res")
    assert got["a.ipynb"]["twin_methods"] == ["mRF"]


def test_notebook_without_parameters_cell_is_refused(tmp_path):
    path = _notebook(tmp_path / "x.ipynb", [("code", "x = 1", [])])
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        book.notebook_parameters(path)


def test_chapter_notebooks_follow_the_toc():
    assert CHAPTERS[:3] == ("01_lue_model.ipynb", "02_data.ipynb", "03_calibration.ipynb")
    assert all((ROOT / "notebooks" / nb).is_file() for nb in CHAPTERS)
    # Every notebook in notebooks/ is a chapter of the book (none forgotten in the TOC).
    assert sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")) == sorted(CHAPTERS)


def test_only_selects_by_name_stem_or_number():
    nbs = ("01_lue_model.ipynb", "02_data.ipynb", "03_calibration.ipynb")
    assert pipeline._select("03", nbs) == ["03_calibration.ipynb"]
    assert pipeline._select("3", nbs) == ["03_calibration.ipynb"]
    assert pipeline._select("02_data", nbs) == ["02_data.ipynb"]
    assert pipeline._select("01_lue_model.ipynb", nbs) == ["01_lue_model.ipynb"]
    with pytest.raises(ValueError, match="--only"):
        pipeline._select("17", nbs)


# ----------------------------------------------------------------------------- the chapters
@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_follows_the_template(name):
    nb = json.loads((ROOT / "notebooks" / name).read_text())
    cells = nb["cells"]
    md = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    # Outputs stripped in git.
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in cells if c["cell_type"] == "code")
    # Project Pythia layout, exercises with folded solutions, provenance at the end.
    headings = [h for h in ("## Overview", "## Prerequisites", "## Imports", "## Summary",
                            "### What's next", "## Exercises", "## Provenance")
                if h not in md]
    assert not headings, f"{name}: missing sections {headings}"
    assert md.index("## Overview") < md.index("## Summary") < md.index("## Exercises")
    assert ":class: dropdown" in md
    assert "provenance_table" in code[-1]
    # One parameters cell; the chapter computes through lue_spie only (no model code).
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    assert not any("def " in c or "lambda" in c or "class " in c for c in code)
    assert "{cite:" in md


# ------------------------------------------------------------------------- running notebooks
def test_run_notebook_injects_parameters(tmp_path):
    src = _notebook(tmp_path / "src" / "tiny.ipynb", [
        ("code", "n = 1\nlabel = 'default'", ["parameters"]),
        ("code", "from pathlib import Path\nPath('out.txt').write_text(f'{label}:{n * 2}')",
         []),
    ])
    out = tmp_path / "run" / "tiny.ipynb"
    seconds = book.run_notebook(src, out, {"n": 21, "label": "injected"})
    assert seconds > 0
    assert (tmp_path / "run" / "out.txt").read_text() == "injected:42"
    executed = json.loads(out.read_text())
    tags = [c.get("metadata", {}).get("tags", []) for c in executed["cells"]]
    assert ["injected-parameters"] in tags


def test_failing_cell_names_the_notebook_and_the_cell(tmp_path):
    src = _notebook(tmp_path / "src" / "broken.ipynb", [
        ("code", "n = 1", ["parameters"]),
        ("md", "Some text.", []),
        ("code", "# compute something\nvalue = int('not a number')", []),
        ("code", "print('never reached')", []),
    ])
    out = tmp_path / "run" / "broken.ipynb"
    with pytest.raises(book.NotebookError) as info:
        book.run_notebook(src, out, {"n": 2})
    err = info.value
    msg = str(err)
    assert err.notebook == "broken.ipynb" and err.cell_index == 2
    assert "broken.ipynb" in msg and "cell 2" in msg
    assert "value = int('not a number')" in msg
    assert "ValueError" in msg and "invalid literal" in msg
    assert str(out) in msg and out.is_file()


def test_pipeline_passes_results_between_chapters_through_files(tmp_path):
    root = tmp_path / "book"
    _notebook(root / "notebooks" / "01_first.ipynb", [
        ("code", "results = 'r'\nseed = 0", ["parameters"]),
        ("code", "from pathlib import Path\n"
                 "Path(results).mkdir(parents=True, exist_ok=True)\n"
                 "(Path(results) / 'first.txt').write_text(str(seed * 10))", []),
    ])
    _notebook(root / "notebooks" / "02_second.ipynb", [
        ("code", "results = 'r'", ["parameters"]),
        ("code", "from pathlib import Path\n"
                 "value = int((Path(results) / 'first.txt').read_text())\n"
                 "(Path(results) / 'second.txt').write_text(str(value + 1))", []),
    ])
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: C\n    chapters:\n"
        "      - file: notebooks/01_first\n      - file: notebooks/02_second\n")
    lines: list[str] = []
    result = book.run_pipeline(
        "ci", overrides={"seed": 7}, build_dir=tmp_path / "build",
        results=tmp_path / "results", with_html=False, source_root=root, log=lines.append)
    assert (tmp_path / "results" / "second.txt").read_text() == "71"
    assert list(result.parameters) == ["01_first.ipynb", "02_second.ipynb"]
    assert result.parameters["02_second.ipynb"] == {"results": "../results"}
    assert set(result.timings) == {"01_first.ipynb", "02_second.ipynb", "total"}
    record = json.loads((tmp_path / "build" / "pipeline.json").read_text())
    assert record["parameters"]["01_first.ipynb"]["seed"] == 7
    assert any("02_second.ipynb done" in line for line in lines)
    # --only reruns one chapter; building needs every chapter's executed copy.
    (tmp_path / "results" / "second.txt").unlink()
    book.run_pipeline("ci", build_dir=tmp_path / "build2", results=tmp_path / "results",
                      only="02", with_html=False, source_root=root, log=lines.append)
    assert (tmp_path / "results" / "second.txt").read_text() == "71"
    with pytest.raises(book.BookError, match="no executed copy"):
        book.run_pipeline("ci", build_dir=tmp_path / "build3", results=tmp_path / "results",
                          only="02", with_html=True, source_root=root, log=lines.append)


def test_stderr_output_fails_with_the_cell(tmp_path):
    nb = new_notebook()
    cell = new_code_cell("import warnings; warnings.warn('careful')")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="UserWarning: careful")]
    nb.cells = [new_code_cell("x = 1"), cell]
    path = tmp_path / "warns.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(book.NotebookError, match="warns.ipynb: cell 1 .*stderr.*careful"):
        pipeline._check_streams(path)


# --------------------------------------------------------------------------------- HTML checks
def _site(tmp_path: Path, page_body: str, n_figures: int) -> tuple[Path, Path]:
    html = tmp_path / "html"
    src = tmp_path / "src"
    (html / "notebooks").mkdir(parents=True)
    (html / "_images").mkdir()
    (html / "index.html").write_text("<html></html>")
    (html / "_images" / "fig.png").write_bytes(b"\x89PNG not empty")
    (html / "notebooks" / "ch.html").write_text(f"<html><body>{page_body}</body></html>")
    nb = new_notebook()
    cell = new_code_cell("plot()")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "AAAA"})
                    for _ in range(n_figures)]
    nb.cells = [cell]
    (src / "notebooks").mkdir(parents=True)
    nbformat.write(nb, src / "notebooks" / "ch.ipynb")
    return html, src


def test_check_html_accepts_a_good_page(tmp_path):
    html, src = _site(tmp_path, '<img src="../_images/fig.png"/>', 1)
    assert book.check_html(html, src, notebooks=["ch.ipynb"]) == []


def test_check_html_finds_missing_images_and_figures(tmp_path):
    html, src = _site(tmp_path, '<img src="../_images/gone.png"/>', 2)
    problems = book.check_html(html, src, notebooks=["ch.ipynb"])
    assert any("gone.png is missing" in p for p in problems)
    assert any("2 figure output(s)" in p and "only 1 image(s)" in p for p in problems)


def test_check_html_finds_error_blocks_and_missing_pages(tmp_path):
    html, src = _site(tmp_path, '<div class="output traceback">Traceback</div>'
                      '<img src="../_images/fig.png"/>', 1)
    problems = book.check_html(html, src, notebooks=["ch.ipynb", "other.ipynb"])
    assert any("shows an error" in p for p in problems)
    assert any("chapter other.ipynb: no page" in p for p in problems)


# ------------------------------------------------------------------------------------------ CLI
def test_cli_parses_the_book_command():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    book_cli.register_cli(sub)
    args = parser.parse_args(["book", "--profile", "demo", "-p", "data_n_sites", "12", "-p",
                              "seed", "3", "--only", "03", "--build-dir", "b",
                              "--results", "r"])
    assert args.profile == "demo" and args.only == "03"
    assert book.parse_overrides(args.parameters) == {"data_n_sites": 12, "seed": 3}
    assert args.func is book_cli._cli
    with pytest.raises(SystemExit):
        parser.parse_args(["book", "--profile", "huge"])


def test_cli_reports_a_failing_notebook_in_one_message(tmp_path, capsys):
    root = tmp_path / "book"
    _notebook(root / "notebooks" / "01_bad.ipynb", [
        ("code", "results = 'r'", ["parameters"]),
        ("code", "raise RuntimeError('chapter broke')", []),
    ])
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/01_bad\n")
    from lue_spie.cli import main

    rc = main(["book", "--profile", "ci", "--build-dir", str(tmp_path / "b"), "--results",
               str(tmp_path / "r"), "--no-build", "--source", str(root)])
    err = capsys.readouterr().err
    assert rc == 1
    line = err.strip().splitlines()[-1]  # one line under the command line's rule
    assert line.startswith("lue-spie book: error: ")
    assert "01_bad.ipynb failed in cell 1" in line and "RuntimeError: chapter broke" in line
    assert "the executed copy with the full traceback is" in line


def test_chapter_helpers_on_a_small_table():
    import pandas as pd

    from lue_spie.book.chapter import pick_sites
    from lue_spie.parameter_skill import edge_share
    from lue_spie.params import PARAMETERS

    rows = []
    for site, koeppen, edge in (("A", "Cfb", True), ("B", "Dfb", False), ("C", "BSk", True)):
        rec = {"site": site, "koeppen": koeppen, "status": "ok", "nse": {"A": 0.9, "B": 0.5,
                                                                          "C": 0.7}[site]}
        rec.update({p: 1.0 for p in PARAMETERS})
        rec.update({f"edge_{p}": False for p in PARAMETERS})
        rec["edge_Topt"] = edge
        rec["edge_alpha_T"] = koeppen == "Dfb"
        rows.append(rec)
    table = pd.DataFrame(rows)
    share = edge_share(table)
    assert share["Topt"] == pytest.approx(2 / 3)
    assert share["alpha_T"] == 1.0  # only the D site counts for alpha_T
    assert share["eps_max"] == 0.0
    assert pick_sites(table, 2) == ["A", "B"]
    assert pick_sites(table, 5) == ["A", "C", "B"]


# ------------------------------------------------------------------------------ real FLUXNET
FLUXNET = ROOT.parent / "shared" / "fluxnet"


@pytest.mark.realdata
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.skipif(not FLUXNET.is_dir(), reason="../shared/fluxnet (real FLUXNET files) absent")
def test_data_and_calibration_chapters_run_on_real_fluxnet_files(tmp_path):
    # The folder holds two FULLSET_DD files, sites.csv and a FAPAR table for CH-Lae only:
    # CH-Dav has no FAPAR and is skipped (missing_fapar = "skip").
    result = book.run_pipeline(
        "ci", overrides={"data_source": str(FLUXNET), "years": [2010, 2011, 2012],
                         "calibrate_max_gen": 20},
        build_dir=tmp_path / "build", results=tmp_path / "results", with_html=False,
        notebooks=("02_data.ipynb", "03_calibration.ipynb"), log=lambda _: None)
    import pandas as pd

    sites = pd.read_parquet(result.results / "data" / "sites.parquet")
    assert sites["site"].tolist() == ["CH-Lae"] and (sites["source"] == "fluxnet").all()
    assert not (result.results / "data" / "truth.parquet").exists()
    table = pd.read_parquet(result.results / "calibration" / "calibration.parquet")
    assert table["site"].tolist() == ["CH-Lae"] and table["status"].tolist() == ["ok"]
    executed = (tmp_path / "build" / "src" / "notebooks" / "03_calibration.ipynb").read_text()
    assert "Real data: there are no true parameters to compare with." in executed


def test_chapter_kernels_talk_encrypted_or_over_private_sockets():
    import zmq

    from lue_spie.book.execute import private_kernel_manager

    km = private_kernel_manager()(kernel_name="python3")
    if zmq.has("curve"):
        assert km.transport == "tcp" and km.transport_encryption == "auto"
    else:
        assert km.transport == "ipc" and km.ip.endswith("kernel")


def test_resolve_parameters_names_every_bad_override_in_one_line():
    # example_years is no knob: its type is the one its default declares in the cell.
    declared = {"a.ipynb": {"results": None, "data_n_sites": "24", "example_years": "2",
                            "example_koeppen": '"Dfb"'}}
    with pytest.raises(ValueError) as info:
        book.resolve_parameters(book.get_profile("ci"),
                                {"n_sites": 3, "data_n_sites": "notanumber",
                                 "example_years": "two", "example_koeppen": "BWh"},
                                declared, "res")
    line = str(info.value)
    assert "\n" not in line
    assert "n_sites: no chapter declares" in line
    assert "data_n_sites" in line and "'notanumber'" in line
    assert "example_years: 'two' is not int" in line and "a.ipynb" in line
    assert "example_koeppen:" not in line  # a string where a string is declared fits
    got = book.resolve_parameters(book.get_profile("ci"), {"example_years": 3}, declared, "res")
    assert got["a.ipynb"]["example_years"] == 3


def test_declared_type_reads_the_default_of_a_parameters_cell():
    assert book.declared_type("24") is int
    assert book.declared_type('"Dfb"') is str
    assert book.declared_type("0.5") is float
    assert book.declared_type("None") is None
    assert book.declared_type("Path('x')") is None

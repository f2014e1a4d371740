"""Course copies of the chapters: the exercise convention, the two copies and the course
(lue_spie.teaching.convention, .copies and .course; ``lue-spie course``).

Unit tests build small notebooks in memory: the convention checks, the two copies, the
nbgrader metadata and the rewriting of paths. The integration tests run ``lue-spie course``
on the ci-profile book (the session's ``ci_book``) and look at what it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from lue_spie.book import find_source_root
from lue_spie.teaching import convention, copies, course

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------- a small chapter
def _chapter(exercise_cells: list | None = None, *, overview: bool = True,
             injected: str | None = None) -> nbformat.NotebookNode:
    cells = [new_markdown_cell("# A small chapter\n\nWhat it is about.", id="c00")]
    if overview:
        cells += [
            new_markdown_cell("## Overview\n\n1. The first thing, told over\n   two lines.\n"
                              "2. The second thing, see {doc}`01_lue_model`.", id="c01"),
            new_markdown_cell("## Prerequisites\n\n| Concepts | Importance | Notes |\n"
                              "| --- | --- | --- |\n| {doc}`01_lue_model` | Necessary | x |\n"
                              "| pandas | Helpful | tables |\n\n"
                              "- **Time to learn**: 25 minutes\n", id="c02")]
    params = new_code_cell('results = "results/ci"  # the results folder', id="c03")
    params.metadata["tags"] = ["parameters"]
    cells.append(params)
    if injected is not None:
        inj = new_code_cell(f"# Parameters\nresults = {injected!r}\nseed = 1\n", id="inj")
        inj.metadata["tags"] = ["injected-parameters"]
        cells.append(inj)
    cells.append(new_markdown_cell("## Exercises\n\nSome words first.", id="c10"))
    cells += exercise_cells if exercise_cells is not None else _good_exercises()
    cells.append(new_markdown_cell("## Provenance", id="c90"))
    return new_notebook(cells=cells)


def _tagged(cell, *tags):
    cell.metadata["tags"] = list(tags)
    if cell.cell_type == "code" and "solution" in tags:
        cell.metadata["mystnb"] = dict(convention.SOLUTION_PROMPTS)
    elif cell.cell_type == "code" and "check" in tags:
        cell.metadata["mystnb"] = dict(convention.CHECK_PROMPTS)
    return cell


def _good_exercises() -> list:
    return [
        _tagged(new_markdown_cell("**1. Half a bell.** Where is f_T one half? Assign the pair "
                                  "to `answer`.", id="e1"), "exercise"),
        _tagged(new_code_cell("# the pair (low, high)\n### BEGIN SOLUTION\nimport math\n"
                              "answer = (20 - 6 * math.acosh(2), 20 + 6 * math.acosh(2))\n"
                              "### END SOLUTION\nprint('done')", id="e1s"),
                "solution", "hide-cell"),
        _tagged(new_code_cell('from lue_spie.teaching import exercises\n\n'
                              'exercises.check("01.1", answer)', id="e1c"), "check",
                "hide-cell"),
        _tagged(new_markdown_cell(":::{admonition} Solution\n:class: dropdown\nBecause cosh z "
                                  "equals two there, a distinctive sentence.\n:::", id="e1t"),
                "solution"),
        _tagged(new_markdown_cell("**2. Why.** Explain.", id="e2"), "exercise"),
        _tagged(new_markdown_cell(":::{admonition} Solution\n:class: dropdown\nAnother "
                                  "distinctive explanation.\n:::", id="e2t"), "solution"),
    ]


def _problems(nb, name="01_small.ipynb") -> list[str]:
    try:
        convention.read_chapter(nb, name)
    except convention.ConventionError as err:
        return err.problems
    return []


# --------------------------------------------------------------------------- convention
def test_the_book_chapters_follow_the_convention():
    assert convention.lint_sources(ROOT) == []


def test_reading_a_chapter():
    chapter = convention.read_chapter(_chapter(), "01_small.ipynb",
                                      titles={"01_lue_model": "The LUE model"})
    assert chapter.title == "A small chapter" and chapter.number == 1
    assert chapter.goals == ("The first thing, told over two lines.",
                             "The second thing, see chapter 1, The LUE model.")
    assert chapter.time == "25 minutes" and chapter.minutes == 25
    assert chapter.prerequisites == (("chapter 1, The LUE model", "Necessary"),
                                     ("pandas", "Helpful"))
    e1, e2 = chapter.exercises
    assert (e1.exercise_id, e1.title, e1.checkable) == ("01.1", "Half a bell", True)
    assert (e2.exercise_id, e2.title, e2.checkable) == ("01.2", "Why", False)
    assert len(e1.code_solutions) == len(e1.checks) == len(e1.text_solutions) == 1


@pytest.mark.parametrize("edit, expected", [
    (lambda cells: cells[4].__setitem__("source", "**3. Why.** Explain."), "numbered 3"),
    (lambda cells: cells[2].__setitem__("source", 'exercises.check("01.2", answer)'),
     "belongs to exercise 01.1"),
    (lambda cells: cells[1].metadata.__setitem__("tags", ["solution"]), "hide-cell"),
    (lambda cells: cells[1].__setitem__("source", "answer = 1"), "BEGIN SOLUTION"),
    (lambda cells: cells[1].__setitem__("source", "### BEGIN SOLUTION\nanswer = 1"),
     "without 'END SOLUTION'"),
    (lambda cells: cells.insert(2, new_code_cell("x = 1", id="loose")), "untagged code"),
    (lambda cells: cells[3].metadata.__setitem__("tags", []), "tag it 'solution'"),
    (lambda cells: cells[3].__setitem__("source", "Solution: 42"), "folded admonition"),
    (lambda cells: cells.pop(1), "a check follows a code solution"),
    (lambda cells: cells[2].__setitem__("source", "exercises.check(answer)"),
     "exercise id as a string"),
    (lambda cells: cells[1].metadata.__setitem__("tags", ["solution", "check", "hide-cell"]),
     "one role"),
    (lambda cells: cells[2].metadata.__setitem__("tags", ["check"]), "tag the check 'hide-cell'"),
    (lambda cells: cells[2].metadata.pop("mystnb"), "'Show the check'"),
    (lambda cells: cells[1].metadata.pop("mystnb"), "'Show the solution'"),
])
def test_convention_problems_are_named(edit, expected):
    cells = _good_exercises()
    edit(cells)
    problems = _problems(_chapter(cells))
    assert any(expected in p for p in problems), problems


def test_unknown_checker_and_missing_context_are_named():
    cells = _good_exercises()
    cells[2].source = 'exercises.check("99.1", answer)'
    assert any("no checker for exercise '99.1'" in p
               for p in _problems(_chapter(cells), "99_small.ipynb"))
    # As chapter 3: its checker needs results=.
    cells[2].source = 'exercises.check("03.1", answer)'
    assert any("needs ['results']" in p for p in _problems(_chapter(cells), "03_small.ipynb"))


def test_missing_overview_time_and_exercises_are_named():
    nb = _chapter([], overview=False)
    problems = _problems(nb, "01_x.ipynb")
    assert any("Overview" in p for p in problems)
    assert any("Prerequisites" in p for p in problems)
    assert any("no question" in p for p in problems)
    old_style = _chapter([])
    old_style.cells[-2].source = ("## Exercises\n\n1. **Q.** Why?\n\n:::{admonition} Solution\n"
                                  ":class: dropdown\nBecause.\n:::")
    assert any("its own cell" in p for p in _problems(old_style, "01_x.ipynb"))
    stray = _chapter()
    stray.cells[0].metadata["tags"] = ["exercise"]
    assert any("outside the Exercises section" in p for p in _problems(stray, "01_x.ipynb"))


def test_lint_names_unreadable_notebooks(tmp_path):
    bad = tmp_path / "01_bad.ipynb"
    bad.write_text("{not json")
    assert convention.lint_chapter(bad)[0].startswith("01_bad.ipynb: cannot be read")


# ---------------------------------------------------------------------------- the copies
def test_strip_solution_like_nbgrader():
    src = "# keep\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\ny = x\n"
    assert copies.strip_solution(src) == "# keep\n" + copies.CODE_STUB + "\ny = x"
    indented = ("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
                "### BEGIN SOLUTION\nz = 2\n### END SOLUTION")
    assert copies.strip_solution(indented) == (
        "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
        "# YOUR CODE HERE\nraise NotImplementedError()")
    assert copies.strip_solution("answer = 42") == copies.CODE_STUB
    assert copies.strip_solution("text", copies.TEXT_STUB) == "YOUR ANSWER HERE"


def test_student_and_teacher_copies():
    nb, name = _chapter(), "01_small.ipynb"
    solution = next(c for c in nb.cells if c.id == "e1s")
    solution.outputs = [nbformat.v4.new_output("stream", text="12.1 27.9\n")]
    solution.execution_count = 7
    check = next(c for c in nb.cells if c.id == "e1c")
    check.outputs = [nbformat.v4.new_output("stream", text="Right (exercise 01.1): yes\n")]
    chapter = convention.read_chapter(nb, name)
    teacher = copies.teacher_copy(nb, chapter)
    student = copies.student_copy(nb, chapter)
    for copy in (teacher, student):
        nbformat.validate(copy)
        assert copies.nbgrader_problems(copy) == []
        assert [c.id for c in copy.cells] == [c.id for c in nb.cells]  # ids kept
    t = {c.id: c for c in teacher.cells}
    s = {c.id: c for c in student.cells}
    assert t["e1s"].source == solution.source and t["e1s"].outputs
    assert s["e1s"].source == "# the pair (low, high)\n" + copies.CODE_STUB + "\nprint('done')"
    assert s["e1s"].outputs == [] and s["e1s"].execution_count is None
    assert s["e1s"].metadata["tags"] == ["answer"] and "mystnb" not in s["e1s"].metadata
    assert s["e1c"].source == check.source and s["e1c"].outputs == []
    assert s["e1c"].metadata["editable"] is False
    # Folded in the book, open in the student's copy.
    assert t["e1c"].metadata["tags"] == ["check", "hide-cell"]
    assert s["e1c"].metadata["tags"] == ["check"] and "mystnb" not in s["e1c"].metadata
    assert s["e1t"].source == copies.TEXT_STUB and s["e2t"].source == copies.TEXT_STUB
    assert "distinctive" not in nbformat.writes(student)
    assert "distinctive" in nbformat.writes(teacher)
    assert "distinctive" in nbformat.writes(nb)  # the source notebook is left alone
    meta = {i: c.metadata["nbgrader"] for i, c in s.items() if "nbgrader" in c.metadata}
    assert meta["e1"] == {"grade": False, "grade_id": "ex01_1_question", "locked": True,
                          "schema_version": 3, "solution": False, "task": False}
    assert meta["e1s"]["solution"] and not meta["e1s"]["grade"]  # autograded answer
    assert meta["e1c"]["grade"] and meta["e1c"]["locked"] and meta["e1c"]["points"] == 1
    assert meta["e1t"]["grade"] and meta["e1t"]["solution"] and meta["e1t"]["points"] == 1
    assert {c.metadata["nbgrader"]["grade_id"] for c in student.cells
            if "nbgrader" in c.metadata} == {
        "ex01_1_question", "ex01_1_answer", "ex01_1_check", "ex01_1_text",
        "ex01_2_question", "ex01_2_text"}


def test_nbgrader_metadata_problems_are_found():
    def nb_with(meta, cell_type="code"):
        cell = new_code_cell("x") if cell_type == "code" else new_markdown_cell("x")
        cell.metadata["nbgrader"] = meta
        return {"cells": [cell]}

    good = {"grade": True, "grade_id": "a", "locked": True, "points": 1,
            "schema_version": 3, "solution": False}
    assert copies.nbgrader_problems(nb_with(good)) == []
    assert copies.nbgrader_problems(nb_with({**good, "points": None}))
    assert copies.nbgrader_problems(nb_with({k: v for k, v in good.items() if k != "points"}))
    assert copies.nbgrader_problems(nb_with({**good, "grade_id": "a b"}))
    assert copies.nbgrader_problems(nb_with({**good, "extra": 1}))
    assert copies.nbgrader_problems(nb_with({**good, "schema_version": 2}))
    assert copies.nbgrader_problems(nb_with({**good, "grade_id": ""}))
    assert copies.nbgrader_problems(nb_with(good, "markdown"))  # graded, not a solution
    two = {"cells": nb_with(good)["cells"] * 2}
    assert any("duplicate" in p for p in copies.nbgrader_problems(two))


def test_relocate_results_rewrites_parameters_and_outputs():
    nb = _chapter(injected="/abs/build/results")
    out = new_code_cell("print(1)", id="p1")
    out.outputs = [
        nbformat.v4.new_output("stream", text="/abs/build/results/data: 24 sites\n"),
        nbformat.v4.new_output("display_data", data={
            "text/html": "<td>/abs/build/results/data/x.parquet</td>",
            "text/plain": "/abs/build/src/notebooks/a.ipynb"})]
    nb.cells.insert(5, out)
    nb.metadata["papermill"] = {"parameters": {"results": "/abs/build/results"},
                                "input_path": "/abs/src/notebooks/05.ipynb",
                                "output_path": "/abs/build/src/notebooks/05.ipynb"}
    old = copies.relocate_results(nb, "results", also={"/abs/build/src/notebooks": "."})
    assert old == "/abs/build/results"
    # A relative folder (as the book's kernels saw it) is rewritten as a whole path only.
    rel = _chapter(injected="results/ci")
    out = new_code_cell("print(1)", id="p2")
    out.outputs = [nbformat.v4.new_output(
        "stream", text="results/ci/data: 24 sites; results/cities and my_results/ci stay\n"),
        nbformat.v4.new_output("display_data", data={  # a table cuts long paths short
            "text/html": "<td>/abs/build/res...</td>", "text/plain": "/abs/build/results/d..."})]
    rel.cells.insert(5, out)
    assert copies.relocate_results(rel, "results") == "results/ci"
    assert rel.cells[5].outputs[0]["text"] == (
        "results/data: 24 sites; results/cities and my_results/ci stay\n")
    cut = _chapter(injected="/abs/build/results")
    cut.cells.insert(5, out)
    copies.relocate_results(cut, "results")
    assert cut.cells[5].outputs[1]["data"] == {"text/html": "<td>results/...</td>",
                                               "text/plain": "results/d..."}
    injected = next(c for c in nb.cells
                    if "injected-parameters" in c.metadata.get("tags", []))
    assert "results = 'results'" in injected.source and "seed = 1" in injected.source
    assert nb.metadata["papermill"]["parameters"]["results"] == "results"
    assert nb.metadata["papermill"]["output_path"] == "05.ipynb"
    text = nbformat.writes(nb)
    assert "/abs/" not in text
    assert "results/data: 24 sites" in text and "./a.ipynb" in text


def test_course_page_lists_goals_time_and_exercises():
    chapter = convention.read_chapter(_chapter(), "01_small.ipynb")
    page = course.course_page([chapter], profile="ci")
    for text in ("## 1. A small chapter", "25 minutes", "The first thing, told over two lines.",
                 "1. Half a bell (01.1; checks itself", "2. Why (01.2; answer in words",
                 "teacher/01_small.ipynb", "nbgrader generate_assignment"):
        assert text in page, text
    student = course.course_page([chapter], profile="ci", student=True)
    assert "teacher" not in student.lower() and "(01_small.ipynb)" in student


# -------------------------------------------------------------------------- the command
def _lue_spie(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "lue_spie.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=env)


def test_without_a_build_it_says_what_to_run_first(tmp_path):
    proc = _lue_spie("course", "--profile", "ci", "--build-dir", str(tmp_path / "nothing"),
                     "--out", str(tmp_path / "course"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "lue-spie book --profile ci" in lines[0], proc.stderr
    assert not (tmp_path / "course").exists()


def test_check_flag_lints_the_sources():
    proc = _lue_spie("course", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 problem(s)" in proc.stdout


@pytest.fixture(scope="module")
def ci_course(ci_book, tmp_path_factory):
    out = tmp_path_factory.mktemp("course") / "ci"
    proc = _lue_spie("course", "--profile", "ci", "--build-dir", str(ci_book.build_dir),
                     "--results", str(ci_book.results), "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, ci_book, proc.stdout


@pytest.mark.integration
def test_course_folder_layout(ci_course):
    out, book_, stdout = ci_course
    chapters = course._build_chapters(book_.build_dir, find_source_root(ROOT))
    for sub in ("student", "teacher"):
        assert sorted(p.name for p in (out / sub).glob("*.ipynb")) == sorted(chapters)
        assert (out / sub / "results" / "data" / "site_day.parquet").is_file()
        assert (out / sub / "results" / "calibration" / "calibration.parquet").is_file()
    assert (out / "course.md").is_file() and (out / "course.html").is_file()
    assert (out / "student" / "course.md").is_file()
    record = json.loads((out / "course.json").read_text())
    assert record["profile"] == "ci" and record["results"] == "copy"
    assert [c["notebook"] for c in record["chapters"]] == list(chapters)
    assert "jupyter lab" in stdout


@pytest.mark.integration
def test_student_copies_hold_no_solution_and_teacher_copies_do(ci_course):
    out, book_, _ = ci_course
    for teacher_path in sorted((out / "teacher").glob("*.ipynb")):
        teacher = nbformat.read(teacher_path, as_version=4)
        student = nbformat.read(out / "student" / teacher_path.name, as_version=4)
        chapter = convention.read_chapter(teacher, teacher_path.name)
        student_text = nbformat.writes(student)
        s_cells = {c.id: c for c in student.cells}
        for ex in chapter.exercises:
            for i in ex.code_solutions:
                t = teacher.cells[i]
                assert convention.BEGIN_SOLUTION in t.source
                region = t.source.split(convention.BEGIN_SOLUTION, 1)[1].split(
                    convention.END_SOLUTION, 1)[0]
                s = s_cells[t.id]
                assert "raise NotImplementedError()" in s.source and s.outputs == []
                student_lines = {ln.strip() for ln in s.source.splitlines()}
                for line in region.splitlines()[1:]:
                    if line.strip() and not line.strip().startswith("#"):
                        assert line.strip() not in student_lines, (teacher_path.name, line)
            for i in ex.checks:
                t = teacher.cells[i]
                assert "".join(o.get("text", "") for o in t.outputs).startswith("Right")
                assert s_cells[t.id].outputs == [] and s_cells[t.id].source == t.source
            for i in ex.text_solutions:
                t = teacher.cells[i]
                assert s_cells[t.id].source == copies.TEXT_STUB
                body = [ln for ln in t.source.splitlines()
                        if len(ln) > 40 and not ln.startswith((":::", ":class:", "```", "."))]
                for line in body:
                    assert line not in student_text, (teacher_path.name, line)


@pytest.mark.integration
def test_copies_are_valid_with_nbgrader_metadata_and_relative_results(ci_course):
    out, book_, _ = ci_course
    for path in sorted((out / "student").glob("*.ipynb")) + sorted(
            (out / "teacher").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert copies.nbgrader_problems(nb) == [], path
        chapter = convention.read_chapter(nb, path.name) if "teacher" in path.parts else None
        graded = [c for c in nb.cells if "nbgrader" in c.metadata]
        assert graded and all(c.metadata["nbgrader"]["schema_version"] == 3 for c in graded)
        if chapter is not None:
            n_cells = sum(1 + len(e.code_solutions) + len(e.checks) + len(e.text_solutions)
                          for e in chapter.exercises)
            assert len(graded) == n_cells
        params = copies._parameter_cell(nb)
        assert copies._assigned_string(params.source, "results")[1] == "results"
        assert nb.metadata["papermill"]["parameters"]["results"] == "results"
        text = path.read_text()
        as_built = os.path.relpath(book_.results, ROOT)  # how the book's kernels saw it
        for old in {str(book_.build_dir), str(book_.results), as_built}:
            assert old not in text, (path, old)


@pytest.mark.integration
def test_course_page_comes_from_the_chapters(ci_course):
    out, book_, _ = ci_course
    page = (out / "course.md").read_text()
    html = (out / "course.html").read_text()
    notebooks = {p.name: nbformat.read(p, as_version=4)
                 for p in sorted((out / "teacher").glob("*.ipynb"))}
    titles = convention.chapter_titles(notebooks)
    for name, nb in notebooks.items():
        chapter = convention.read_chapter(nb, name, titles)
        assert chapter.time and chapter.time in page
        assert chapter.goals and all(g in page for g in chapter.goals)
        for e in chapter.exercises:
            assert f"{e.number}. {e.title} ({e.exercise_id};" in page
        assert f'href="student/{name}"' in html


@pytest.mark.integration
def test_an_existing_course_is_kept_unless_forced(ci_course, tmp_path):
    out, book_, _ = ci_course
    args = ["course", "--profile", "ci", "--build-dir", str(book_.build_dir), "--out", str(out)]
    proc = _lue_spie(*args)
    assert proc.returncode == 1 and "--force" in proc.stderr
    proc = _lue_spie(*args, "--force")
    assert proc.returncode == 0, proc.stderr
    linked = tmp_path / "linked"
    proc = _lue_spie("course", "--profile", "ci", "--build-dir", str(book_.build_dir),
                     "--out", str(linked), "--link-results")
    assert proc.returncode == 0, proc.stderr
    link = linked / "student" / "results"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve() == book_.results.resolve()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    proc = _lue_spie("course", "--profile", "ci", "--build-dir", str(book_.build_dir),
                     "--out", str(other))
    assert proc.returncode == 1 and "holds other files" in proc.stderr

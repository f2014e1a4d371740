"""Teaching with the book: student and teacher copies of the chapters, and a course page.

``lue-spie course --profile ci|demo --out DIR`` takes the executed chapters of a built book
(``BUILD/src/notebooks`` of ``lue-spie book --profile P``), so the notebooks open with their
outputs, and writes::

    DIR/course.md, course.html   the course page: goals, time and exercises of every chapter
    DIR/course.json              the same, for tools
    DIR/student/                 hand this folder out: every chapter without its solutions,
        NN_name.ipynb            answer cells where the solutions were, self-checking cells,
        course.md                the course page (student view)
        results/                 a copy of the build's results folder
    DIR/teacher/                 every chapter with its solutions (nbgrader's "source"
        NN_name.ipynb            version), the results beside it (hard links to the
        results/                 student copy's files where the file system allows)

The ``results`` parameter of every copy points at ``results`` (relative: Jupyter runs a
notebook in its own folder), and the build's absolute paths in the outputs are rewritten the
same way, so the copies carry no path of the machine that built them. Nothing long reruns
in class: the outputs are there, and a chapter rerun in JupyterLab reads the copied results
(the calibration resumes from its checkpoint).

The exercise convention (every chapter follows it; ``lue-spie course --check`` lints it)
--------------------------------------------------------------------------------------------
The section ``## Exercises`` of a chapter (after *What's next*, before *Provenance*) holds,
for each exercise N, in this order:

1. **Question**: one markdown cell tagged ``exercise`` that starts with ``**N. Title.**``
   (N counts from 1 in the chapter). A checkable exercise says what to assign to ``answer``.
2. **Code solution** (optional; needed for a checkable exercise): a code cell tagged
   ``solution`` and ``hide-cell`` (Jupyter Book folds it, input and output, behind a
   "Show the solution" button: add ``"mystnb": {"code_prompt_show": "Show the solution",
   "code_prompt_hide": "Hide the solution"}`` to its metadata, or run :func:`tidy_chapter`).
   The answer lines sit between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
   (nbgrader's markers) and assign the answer to ``answer``; lines outside the markers (a
   comment saying what to compute) stay in the student copy.
3. **Check** (only after a code solution): a code cell tagged ``check``::

       from lue_spie.teaching import exercises

       exercises.check("03.1", answer, results=results)

   with the exercise id ``"CC.N"`` (CC = the notebook's two-digit prefix) and the context
   its checker in :mod:`lue_spie.teaching.exercises` needs. The book build executes solution and
   check, so every build tests every checker on the teacher's solution (a wrong solution or
   a broken checker fails the build).
4. **Text solution** (optional; the only solution of a question without a checkable
   answer): a markdown cell tagged ``solution`` holding a folded admonition
   (``:::{admonition} Solution`` + ``:class: dropdown``).

Untagged code is not allowed in the section (it would reach the students); untagged
markdown is, unless it looks like a solution.

What the copies get:

============== ===================================== ==================================
cell           student copy                          nbgrader metadata (both copies)
============== ===================================== ==================================
question       kept, read-only                       locked
code solution  the marked lines become               solution (autograded answer when a
               ``# YOUR CODE HERE`` /                check follows, else manually
               ``raise NotImplementedError()``;      graded with 1 point)
               outputs cleared
check          kept (outputs cleared), read-only     grade + locked, 1 point (a test
                                                     cell: it raises when wrong)
text solution  replaced by ``YOUR ANSWER HERE``      solution + grade, 1 point (manual)
============== ===================================== ==================================

A teacher who uses nbgrader puts a teacher copy into ``source/<assignment>/`` and runs
``nbgrader generate_assignment``; nbgrader itself is not needed for anything else.
"""

from __future__ import annotations

import argparse
import ast
import copy
import datetime as _dt
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "TAG_EXERCISE",
    "TAG_SOLUTION",
    "TAG_CHECK",
    "CODE_STUB",
    "TEXT_STUB",
    "ConventionError",
    "ExerciseCells",
    "Chapter",
    "CourseResult",
    "read_chapter",
    "chapter_titles",
    "lint_chapter",
    "lint_sources",
    "strip_solution",
    "student_copy",
    "teacher_copy",
    "nbgrader_problems",
    "relocate_results",
    "course_page",
    "make_course",
    "tidy_chapter",
    "register_cli",
]

TAG_EXERCISE = "exercise"
TAG_SOLUTION = "solution"
TAG_CHECK = "check"
#: Tags that make Jupyter Book fold a code cell (``hide-cell`` folds its output too).
HIDE_TAGS: tuple[str, ...] = ("hide-cell", "hide-input")
#: The answer-cell tag that replaces ``solution`` in the student copy.
TAG_ANSWER = "answer"
BEGIN_SOLUTION = "BEGIN SOLUTION"
END_SOLUTION = "END SOLUTION"
#: nbgrader's stubs (ClearSolutions, Python and markdown).
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"
NBGRADER_SCHEMA_VERSION = 3
#: Where a course copy's results folder lies, relative to the notebook.
RESULTS_NAME = "results"
SOLUTION_PROMPTS = {"code_prompt_show": "Show the solution",
                    "code_prompt_hide": "Hide the solution"}

_QUESTION = re.compile(r"^\s*\*\*(\d+)\.\s*(.+?)\*\*")
_TIME = re.compile(r"\*\*Time to learn\*\*\s*:?\s*(.+)", re.IGNORECASE)
_ROLE = re.compile(r"\{([a-z:]+)\}`([^`]*)`")


class ConventionError(ValueError):
    """A chapter does not follow the exercise convention; the message lists every problem."""

    def __init__(self, notebook: str, problems: Sequence[str]) -> None:
        self.notebook = notebook
        self.problems = list(problems)
        super().__init__(f"{notebook} does not follow the exercise convention "
                         "(see book/exercises.md):\n  " + "\n  ".join(self.problems))


# ------------------------------------------------------------------------- reading a chapter
@dataclass(frozen=True)
class ExerciseCells:
    """One exercise of a chapter and the indices of its cells.

    Attributes:
        exercise_id: ``"CC.N"``.
        number: N.
        title: The bold title of the question.
        question: Index of the question cell.
        code_solutions: Indices of the code solution cells.
        checks: Indices of the check cells.
        text_solutions: Indices of the markdown solution cells.
    """

    exercise_id: str
    number: int
    title: str
    question: int
    code_solutions: tuple[int, ...] = ()
    checks: tuple[int, ...] = ()
    text_solutions: tuple[int, ...] = ()

    @property
    def checkable(self) -> bool:
        """Whether the answer checks itself (a check cell follows the solution)."""
        return bool(self.checks)


@dataclass(frozen=True)
class Chapter:
    """What the course page says about a chapter, read from its own cells.

    Attributes:
        notebook: File name (``03_calibration.ipynb``).
        number: The two-digit prefix as an int.
        title: The first heading.
        goals: The items of the Overview cell.
        time: The Prerequisites cell's "Time to learn" (e.g. ``"40 minutes"``).
        minutes: ``time`` in minutes (None when it does not parse).
        prerequisites: (concept, importance) rows of the Prerequisites table.
        exercises: The exercises in order.
    """

    notebook: str
    number: int
    title: str
    goals: tuple[str, ...]
    time: str | None
    minutes: int | None
    prerequisites: tuple[tuple[str, str], ...]
    exercises: tuple[ExerciseCells, ...]

    @property
    def stem(self) -> str:
        return self.notebook.removesuffix(".ipynb")


def _tags(cell: Mapping[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []) or [])


def _source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _heading(cell: Mapping[str, Any], level: int) -> str | None:
    """The text of a markdown cell's first line when it is a heading of this level."""
    if cell.get("cell_type") != "markdown":
        return None
    first = _source(cell).lstrip().split("\n", 1)[0]
    prefix = "#" * level + " "
    return first[len(prefix):].strip() if first.startswith(prefix) else None


def chapter_number(notebook: str) -> int:
    """The two-digit prefix of a chapter file name as an int (``03_x.ipynb`` -> 3).

    Raises:
        ValueError: when the name has no two-digit prefix.
    """
    m = re.match(r"^(\d{2})_", Path(notebook).name)
    if not m:
        raise ValueError(f"{notebook}: a chapter's file name starts with two digits and '_'")
    return int(m.group(1))


def _plain(text: str, titles: Mapping[str, str] | None = None) -> str:
    """MyST roles to plain text: {doc}`02_data` -> the chapter title, others -> their text."""
    def role(m: re.Match[str]) -> str:
        name, target = m.group(1), m.group(2)
        if name == "doc":
            stem = Path(target).name
            if stem in (titles or {}):
                title = titles[stem]  # type: ignore[index]
                return f"chapter {int(stem[:2])}, {title}" if stem[:2].isdigit() else title
            return stem.replace("-", " ").replace("_", " ")
        if name.startswith("cite"):
            return ""
        return target

    return re.sub(r"\s+\.", ".", _ROLE.sub(role, text)).strip()


def _list_items(text: str) -> list[str]:
    """The items of the first markdown list in ``text`` (continuation lines joined)."""
    items: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^\s*(?:\d+\.|[-*])\s+(.*)$", line)
        if m:
            items.append(m.group(1).strip())
        elif items and line.startswith((" ", "\t")) and line.strip():
            items[-1] += " " + line.strip()
        elif items and not line.strip():
            continue
    return items


def _minutes(text: str) -> int | None:
    total, found = 0, False
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(hours?|h\b|minutes?|mins?)", text):
        found = True
        total += round(float(value) * (60 if unit.startswith("h") else 1))
    return total if found else None


def _check_call(source: str) -> tuple[ast.Call | None, str | None]:
    """The ``check(...)`` call of a check cell and a problem description (or None)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        return None, f"does not parse ({err.msg}, line {err.lineno})"
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and (
        (isinstance(n.func, ast.Attribute) and n.func.attr == "check")
        or (isinstance(n.func, ast.Name) and n.func.id == "check"))]
    if len(calls) != 1:
        return None, f"must call exercises.check(...) exactly once (found {len(calls)} calls)"
    call = calls[0]
    if not call.args or not (isinstance(call.args[0], ast.Constant)
                             and isinstance(call.args[0].value, str)):
        return None, "the first argument of check() must be the exercise id as a string"
    if len(call.args) < 2:
        return None, "check() takes the answer as its second argument"
    return call, None


def _solution_regions(source: str) -> tuple[int, str | None]:
    """Number of BEGIN/END SOLUTION regions and a problem (unbalanced markers) or None."""
    depth, regions = 0, 0
    for line in source.splitlines():
        if BEGIN_SOLUTION in line:
            if depth:
                return regions, f"a second '{BEGIN_SOLUTION}' before '{END_SOLUTION}'"
            depth = 1
        elif END_SOLUTION in line:
            if not depth:
                return regions, f"'{END_SOLUTION}' without '{BEGIN_SOLUTION}'"
            depth, regions = 0, regions + 1
    if depth:
        return regions, f"'{BEGIN_SOLUTION}' without '{END_SOLUTION}'"
    return regions, None


def read_chapter(nb: Mapping[str, Any], notebook: str,
                 titles: Mapping[str, str] | None = None) -> Chapter:
    """Read a chapter's title, goals, time and exercises, checking the convention.

    Args:
        nb: The notebook (an nbformat node or the parsed JSON).
        notebook: Its file name (gives the chapter number).
        titles: Chapter stem -> title, to write ``{doc}`` references as titles.

    Raises:
        ConventionError: listing every problem found.
    """
    from lue_spie.teaching import exercises

    problems: list[str] = []
    try:
        number = chapter_number(notebook)
    except ValueError as err:
        raise ConventionError(notebook, [str(err)]) from None
    cells = list(nb["cells"])
    title = next((h for c in cells if (h := _heading(c, 1))), None)
    if title is None:
        problems.append("no title (a first markdown cell starting with '# ')")

    def section(name: str) -> tuple[int, int] | None:
        start = next((i for i, c in enumerate(cells) if _heading(c, 2) == name), None)
        if start is None:
            return None
        end = next((i for i in range(start + 1, len(cells)) if _heading(cells[i], 2)),
                   len(cells))
        return start, end

    goals: list[str] = []
    overview = section("Overview")
    if overview is None:
        problems.append("no '## Overview' cell (its list gives the learning goals)")
    else:
        text = "\n".join(_source(c) for c in cells[overview[0]:overview[1]]
                         if c.get("cell_type") == "markdown")
        goals = [_plain(g, titles) for g in _list_items(text.split("\n", 1)[-1])]
        if not goals:
            problems.append("the Overview has no list of what the chapter covers")
    time_text, prereqs = None, []
    prerequisites = section("Prerequisites")
    if prerequisites is None:
        problems.append("no '## Prerequisites' cell (it gives the 'Time to learn')")
    else:
        text = "\n".join(_source(c) for c in cells[prerequisites[0]:prerequisites[1]])
        m = _TIME.search(text)
        if m:
            time_text = m.group(1).strip().rstrip(".")
        else:
            problems.append("the Prerequisites cell has no '**Time to learn**: N minutes'")
        for line in text.splitlines():
            parts = [p.strip() for p in line.strip().strip("|").split("|")]
            if (line.lstrip().startswith("|") and len(parts) >= 2 and parts[0]
                    and parts[0] != "Concepts" and not set(parts[0]) <= {"-", ":", " "}):
                prereqs.append((_plain(parts[0], titles), parts[1]))

    exercise_list: list[ExerciseCells] = []
    ex_section = section("Exercises")
    tagged = {i for i, c in enumerate(cells)
              if set(_tags(c)) & {TAG_EXERCISE, TAG_SOLUTION, TAG_CHECK}}
    if ex_section is None:
        problems.append("no '## Exercises' section")
        start, end = len(cells), len(cells)
    else:
        start, end = ex_section
        if set(_tags(cells[start])) & {TAG_EXERCISE, TAG_SOLUTION, TAG_CHECK}:
            problems.append(f"cell {start}: the '## Exercises' heading cell holds no exercise "
                            "itself (one cell per question, tagged 'exercise')")
        if "dropdown" in _source(cells[start]) or re.search(
                r"^\s*\d+\.\s+\*\*", _source(cells[start]), re.M):
            problems.append(f"cell {start}: the '## Exercises' cell holds questions or "
                            "solutions; put each question in its own cell tagged 'exercise' "
                            "and each solution in a cell tagged 'solution'")
    for i in sorted(tagged):
        if not start < i < end:
            problems.append(f"cell {i}: tagged {_tags(cells[i])} outside the Exercises section")

    current: dict[str, Any] | None = None

    def close() -> None:
        if current is not None:
            exercise_list.append(ExerciseCells(
                current["id"], current["number"], current["title"], current["question"],
                tuple(current["code"]), tuple(current["checks"]), tuple(current["text"])))

    for i in range(start + 1, end):
        c = cells[i]
        tags = set(_tags(c))
        kind = c.get("cell_type")
        src = _source(c)
        roles = tags & {TAG_EXERCISE, TAG_SOLUTION, TAG_CHECK}
        if len(roles) > 1:
            problems.append(f"cell {i}: tagged {sorted(roles)}; a cell has one role")
            continue
        if TAG_EXERCISE in tags:
            close()
            n = len(exercise_list) + 1
            m = _QUESTION.match(src)
            if kind != "markdown":
                problems.append(f"cell {i}: an 'exercise' cell is markdown")
            if not m:
                problems.append(f"cell {i}: a question starts with '**{n}. Title.**'")
                ex_title = f"Exercise {n}"
            else:
                ex_title = m.group(2).strip().rstrip(".").strip()
                if int(m.group(1)) != n:
                    problems.append(f"cell {i}: question numbered {m.group(1)}, but it is "
                                    f"exercise {n} of the chapter")
            current = {"id": f"{number:02d}.{n}", "number": n, "title": ex_title,
                       "question": i, "code": [], "checks": [], "text": []}
            continue
        if current is None:
            if kind == "code" or roles:
                problems.append(f"cell {i}: before the first question; start each exercise "
                                "with a markdown cell tagged 'exercise'")
            continue
        if TAG_SOLUTION in tags and kind == "code":
            if current["checks"]:
                problems.append(f"cell {i}: a code solution after the check of exercise "
                                f"{current['id']}; put the check last")
            n_regions, bad = _solution_regions(src)
            if bad:
                problems.append(f"cell {i}: {bad}")
            elif n_regions == 0:
                problems.append(f"cell {i}: a code solution marks its answer lines with "
                                f"'### {BEGIN_SOLUTION}' and '### {END_SOLUTION}'")
            if not tags & set(HIDE_TAGS):
                problems.append(f"cell {i}: tag the code solution 'hide-cell' too, so the "
                                "book folds it")
            current["code"].append(i)
        elif TAG_SOLUTION in tags:
            if "dropdown" not in src:
                problems.append(f"cell {i}: a markdown solution is a folded admonition "
                                "(':::{admonition} Solution' with ':class: dropdown')")
            current["text"].append(i)
        elif TAG_CHECK in tags:
            if kind != "code":
                problems.append(f"cell {i}: a 'check' cell is code")
                continue
            if not current["code"]:
                problems.append(f"cell {i}: a check follows a code solution (the cell where "
                                "the student writes the answer)")
            call, bad = _check_call(src)
            if bad:
                problems.append(f"cell {i}: {bad}")
            else:
                assert call is not None
                given = call.args[0].value  # type: ignore[attr-defined]
                if given != current["id"]:
                    problems.append(f"cell {i}: checks exercise {given!r}, but it belongs to "
                                    f"exercise {current['id']}")
                elif given not in exercises.REGISTRY:
                    problems.append(f"cell {i}: no checker for exercise {given!r} in "
                                    "lue_spie.teaching.exercises; add one (see its docstring)")
                else:
                    need = set(exercises.REGISTRY[given].context)
                    passed = {k.arg for k in call.keywords if k.arg}
                    if need - passed:
                        problems.append(f"cell {i}: the checker of {given} needs "
                                        f"{sorted(need - passed)} as keyword argument(s)")
            current["checks"].append(i)
        elif kind == "code":
            problems.append(f"cell {i}: untagged code in the Exercises section would reach "
                            "the students; tag it 'solution' (and 'hide-cell') or move it")
        elif "dropdown" in src or re.search(r"admonition\}\s*Solution", src):
            problems.append(f"cell {i}: looks like a solution; tag it 'solution'")
    close()
    if ex_section is not None and not exercise_list:
        problems.append("the Exercises section has no question (a markdown cell tagged "
                        "'exercise')")
    if problems:
        raise ConventionError(notebook, problems)
    return Chapter(notebook, number, _plain(title or notebook, titles), tuple(goals),
                   time_text, _minutes(time_text or ""), tuple(prereqs),
                   tuple(exercise_list))


def chapter_titles(notebooks: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Chapter stem -> title (its first heading), for ``{doc}`` references between chapters."""
    out = {}
    for name, nb in notebooks.items():
        first = next((h for c in nb["cells"] if (h := _heading(c, 1))), None)
        out[Path(name).name.removesuffix(".ipynb")] = first or name
    return out


def lint_chapter(path: str | os.PathLike) -> list[str]:
    """Problems of one chapter notebook with the convention (empty when it follows it)."""
    import nbformat

    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 (any unreadable notebook is one problem)
        return [f"{path.name}: cannot be read as a notebook ({err})"]
    try:
        read_chapter(nb, path.name)
    except ConventionError as err:
        return [f"{path.name}: {p}" for p in err.problems]
    return []


def lint_sources(root: str | os.PathLike | None = None) -> list[str]:
    """Problems of every chapter listed in ``ROOT/_toc.yml`` (default: the repository)."""
    from lue_spie.book.pipeline import chapter_notebooks, find_source_root

    root = find_source_root(root)
    out: list[str] = []
    for nb in chapter_notebooks(root):
        out += lint_chapter(root / "notebooks" / nb)
    return out


def tidy_chapter(path: str | os.PathLike) -> bool:
    """Give every code solution of a chapter the tags and prompts of the convention.

    Adds ``hide-cell`` to code cells tagged ``solution`` that have no hide tag and the
    "Show the solution" prompts; writes the notebook only when something changed.

    Returns:
        Whether the file changed.
    """
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type != "code" or TAG_SOLUTION not in _tags(cell):
            continue
        tags = _tags(cell)
        if not set(tags) & set(HIDE_TAGS):
            cell.metadata["tags"] = [*tags, "hide-cell"]
            changed = True
        mystnb = cell.metadata.setdefault("mystnb", {})
        for key, value in SOLUTION_PROMPTS.items():
            if key not in mystnb:
                mystnb[key] = value
                changed = True
    if changed:
        from lue_spie.store import atomic_write_text

        atomic_write_text(path, nbformat.writes(nb))
    return changed


# ------------------------------------------------------------------------ the two copies
def strip_solution(source: str, stub: str = CODE_STUB) -> str:
    """Replace each BEGIN/END SOLUTION region by ``stub`` (indented like the marker).

    Lines outside the regions stay. A cell without markers is replaced as a whole, as
    nbgrader's ClearSolutions does.
    """
    lines = source.splitlines()
    if not any(BEGIN_SOLUTION in line for line in lines):
        return stub
    out: list[str] = []
    inside = False
    for line in lines:
        if BEGIN_SOLUTION in line:
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + s for s in stub.splitlines()]
        elif END_SOLUTION in line:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def _nbgrader(grade_id: str, *, grade: bool, solution: bool, locked: bool,
              points: float | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"grade": grade, "grade_id": grade_id, "locked": locked,
                            "schema_version": NBGRADER_SCHEMA_VERSION, "solution": solution,
                            "task": False}
    if grade:
        meta["points"] = points if points is not None else 1
    return meta


def _points(cell: Mapping[str, Any]) -> float | None:
    """Points a chapter author set in the cell's own nbgrader metadata, if any."""
    p = cell.get("metadata", {}).get("nbgrader", {}).get("points")
    return p if isinstance(p, int | float) else None


def _mark(nb: Any, chapter: Chapter) -> None:
    """Add nbgrader metadata to the exercise cells (in place)."""
    for ex in chapter.exercises:
        base = f"ex{chapter.number:02d}_{ex.number}"
        cells = nb.cells
        cells[ex.question].metadata["nbgrader"] = _nbgrader(
            f"{base}_question", grade=False, solution=False, locked=True)
        for k, i in enumerate(ex.code_solutions, 1):
            suffix = "" if k == 1 else str(k)
            cells[i].metadata["nbgrader"] = _nbgrader(
                f"{base}_answer{suffix}", grade=not ex.checkable, solution=True, locked=False,
                points=_points(cells[i]))
        for k, i in enumerate(ex.checks, 1):
            suffix = "" if k == 1 else str(k)
            cells[i].metadata["nbgrader"] = _nbgrader(
                f"{base}_check{suffix}", grade=True, solution=False, locked=True,
                points=_points(cells[i]))
        for k, i in enumerate(ex.text_solutions, 1):
            suffix = "" if k == 1 else str(k)
            cells[i].metadata["nbgrader"] = _nbgrader(
                f"{base}_text{suffix}", grade=True, solution=True, locked=False,
                points=_points(cells[i]))


def teacher_copy(nb: Any, chapter: Chapter) -> Any:
    """The chapter with its solutions and outputs, exercise cells marked for nbgrader."""
    out = copy.deepcopy(nb)
    _mark(out, chapter)
    return out


def student_copy(nb: Any, chapter: Chapter) -> Any:
    """The chapter without solutions: answer cells in their place, checks kept.

    Code solutions keep the lines outside their BEGIN/END SOLUTION markers and get
    nbgrader's stub; text solutions become ``YOUR ANSWER HERE`` cells; outputs of solution
    and check cells are cleared; questions and checks are read-only.
    """
    out = teacher_copy(nb, chapter)
    for ex in chapter.exercises:
        for i in ex.code_solutions:
            cell = out.cells[i]
            cell.source = strip_solution(cell.source)
            cell.outputs, cell.execution_count = [], None
            _student_tags(cell)
        for i in ex.checks:
            cell = out.cells[i]
            cell.outputs, cell.execution_count = [], None
            cell.metadata["editable"] = False
            cell.metadata["deletable"] = False
        for i in ex.text_solutions:
            cell = out.cells[i]
            cell.source = TEXT_STUB
            _student_tags(cell)
        q = out.cells[ex.question]
        q.metadata["editable"] = False
        q.metadata["deletable"] = False
    return out


def _student_tags(cell: Any) -> None:
    tags = [t for t in _tags(cell) if t != TAG_SOLUTION and t not in HIDE_TAGS]
    cell.metadata["tags"] = [*tags, TAG_ANSWER]
    cell.metadata.pop("mystnb", None)


def nbgrader_problems(nb: Mapping[str, Any]) -> list[str]:
    """Problems of the nbgrader cell metadata of a notebook (schema version 3 rules).

    The JSON schema (required keys, types, the grade_id pattern, no extra keys) and
    nbgrader's own rules: a grade_id where a cell is graded, a solution or locked; points
    where graded; markdown cells graded if and only if they are solutions; unique grade ids.
    Written here because nbgrader is an optional dependency.
    """
    import jsonschema

    schema = {
        "type": "object",
        "properties": {
            "schema_version": {"type": "integer", "minimum": 3, "maximum": 3},
            "grade": {"type": "boolean"}, "locked": {"type": "boolean"},
            "solution": {"type": "boolean"}, "task": {"type": "boolean"},
            "grade_id": {"type": "string", "pattern": r"^[a-zA-Z0-9_\-]*$"},
            "points": {"type": "number", "minimum": 0},
            "checksum": {"type": "string", "minLength": 32, "maxLength": 32},
            "cell_type": {"type": "string", "enum": ["raw", "code", "markdown"]},
        },
        "required": ["schema_version", "grade", "locked", "solution"],
        "additionalProperties": False,
    }
    problems: list[str] = []
    seen: set[str] = set()
    for i, cell in enumerate(nb["cells"]):
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            continue
        try:
            jsonschema.validate(dict(meta), schema)
        except jsonschema.ValidationError as err:
            problems.append(f"cell {i}: {err.message}")
            continue
        grade, solution, locked = meta["grade"], meta["solution"], meta["locked"]
        if grade or solution or locked:
            gid = meta.get("grade_id", "")
            if not gid:
                problems.append(f"cell {i}: no grade_id")
            elif gid in seen:
                problems.append(f"cell {i}: duplicate grade_id {gid!r}")
            seen.add(gid)
        if grade and "points" not in meta:
            problems.append(f"cell {i}: graded but no points")
        if cell.get("cell_type") == "markdown" and not meta.get("task", False) and (
                grade != solution):
            problems.append(f"cell {i}: a markdown cell is graded if and only if it is a "
                            "solution")
    return problems


# ------------------------------------------------------------------------ paths in copies
def _assigned_string(source: str, name: str) -> tuple[int, str] | None:
    """(line index, value) of the last ``name = "..."`` in a cell, or None."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    hit = None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == name
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            hit = (node.lineno - 1, node.value.value)
    return hit


def _parameter_cell(nb: Any) -> Any | None:
    """The cell whose values the kernel uses: papermill's injected one, else ``parameters``."""
    for tag in ("injected-parameters", "parameters"):
        for cell in nb.cells:
            if cell.cell_type == "code" and tag in _tags(cell):
                return cell
    return None


def _replace_in_outputs(nb: Any, old: str, new: str) -> None:
    """Replace the path ``old`` by ``new`` in every text output, as a whole path only.

    A table may show the path cut short (pandas ends a long cell with ``...``): such a
    prefix of ``old`` becomes ``new/...``.
    """
    old = old.rstrip("/")
    before = r"(?<![\w.~/-])"
    whole = re.compile(before + re.escape(old) + r"(?![\w.-])")
    prefixes = "|".join(re.escape(old[:k]) for k in range(len(old) - 1, 7, -1))
    cut = re.compile(before + f"(?:{prefixes})" + r"(?:\.\.\.|\u2026)") if prefixes else None

    def sub(text: str) -> str:
        text = whole.sub(lambda _: new, text)
        return cut.sub(lambda _: f"{new}/...", text) if cut is not None else text

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out and isinstance(out["text"], str):
                out["text"] = sub(out["text"])
            for key, value in out.get("data", {}).items():
                if key.startswith("text/") and isinstance(value, str):
                    out["data"][key] = sub(value)


def relocate_results(nb: Any, new: str = RESULTS_NAME, *,
                     also: Mapping[str, str] | None = None) -> str | None:
    """Point an executed chapter at a results folder beside it (in place).

    Rewrites the ``results`` assignment of the cell the kernel uses (papermill's injected
    parameters, or the parameters cell), papermill's record of it, and every occurrence of
    the old folder (absolute, or relative to where the book's kernels ran) in the outputs,
    so the copy shows the paths a student sees and none of the machine that built it.

    Args:
        nb: An executed chapter.
        new: The new value (relative to the notebook's folder).
        also: Further absolute paths to rewrite in the outputs (old -> new), e.g. the build's
            notebook folder.

    Returns:
        The old value of ``results``, or None when the chapter has no such parameter.
    """
    cell = _parameter_cell(nb)
    old = None
    if cell is not None:
        hit = _assigned_string(cell.source, "results")
        if hit is not None:
            line, old = hit
            lines = cell.source.splitlines()
            lines[line] = (f"results = {new!r}  # the results folder beside this notebook "
                           "(lue-spie course)")
            cell.source = "\n".join(lines)
    pm = nb.metadata.get("papermill")
    if pm is not None:
        if "results" in pm.get("parameters", {}):
            old = old or pm["parameters"]["results"]
            pm["parameters"]["results"] = new
        for key in ("input_path", "output_path"):
            if pm.get(key):
                pm[key] = Path(pm[key]).name
    replacements = dict(also or {})
    if old and old.rstrip("/") not in ("", ".", new):
        replacements[old.rstrip("/")] = new
    for a, b in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
        _replace_in_outputs(nb, a, b)
    return old


def _absolute_path_parameters(nb: Any) -> dict[str, str]:
    """Path-like parameters of the kernel's parameter cell that are absolute."""
    from lue_spie.book.pipeline import PATH_PARAMETERS

    cell = _parameter_cell(nb)
    out = {}
    if cell is None:
        return out
    for name in PATH_PARAMETERS:
        hit = _assigned_string(cell.source, name)
        if hit and os.path.isabs(hit[1]):
            out[name] = hit[1]
    return out


# --------------------------------------------------------------------------- course page
def _fmt_minutes(minutes: int) -> str:
    h, m = divmod(minutes, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def course_page(chapters: Sequence[Chapter], *, profile: str, student: bool = False,
                made: str | None = None) -> str:
    """The course page in markdown: per chapter its goals, time and exercises.

    Args:
        chapters: The chapters in order.
        profile: The book profile the copies come from.
        student: The students' view (links into the same folder, no teacher copy).
        made: When the course was made (shown in the header).
    """
    total = sum(c.minutes or 0 for c in chapters)
    n_ex = sum(len(c.exercises) for c in chapters)
    n_check = sum(1 for c in chapters for e in c.exercises if e.checkable)
    lines = [
        "# Course: learning LUE model parameters from site properties",
        "",
        f"{len(chapters)} chapters of the SPIE companion book, about {_fmt_minutes(total)} of "
        f"reading plus exercises; {n_ex} exercises, {n_check} of them check themselves. "
        f"The notebooks come with their outputs from a `{profile}` build of the book, and "
        "the results folder they read lies beside them, so nothing long has to run.",
        "",
    ]
    if made:
        lines += [f"Made {made} with `lue-spie course --profile {profile}`.", ""]
    lines += [
        "## How to work",
        "",
        "- Open the folder in JupyterLab (`jupyter lab`) and read a chapter from the top; "
        "its cells have run already, rerun any of them to explore.",
        "- To answer its exercises, run the chapter first (*Run > Run All Cells*; it stops at "
        "the first exercise, where your code is missing). It reads the results folder beside "
        "the notebooks, so this takes seconds to minutes.",
        "- The exercises are at the end of each chapter. Where a cell says "
        "`# YOUR CODE HERE`, replace `raise NotImplementedError()` by your code and assign "
        "your answer to `answer`; then run the check cell below it. It replies *Right* or "
        "says what to look at, never the answer itself.",
        "- Where a cell says `YOUR ANSWER HERE`, write your answer in words (double-click "
        "the cell).",
        "",
        "| chapter | time to learn | exercises (self-checking) |",
        "|---|---|---|",
    ]
    for c in chapters:
        n_c = sum(1 for e in c.exercises if e.checkable)
        lines.append(f"| {c.number}. {c.title} | {c.time or '?'} | {len(c.exercises)} "
                     f"({n_c}) |")
    lines.append("")
    for c in chapters:
        student_link = f"{c.notebook}" if student else f"student/{c.notebook}"
        links = f"[notebook]({student_link})" if student else (
            f"[student copy]({student_link}), [teacher copy](teacher/{c.notebook})")
        lines += [f"## {c.number}. {c.title}", "",
                  f"Time to learn: {c.time or 'not given'}. {links}.", "",
                  "What you will learn:", ""]
        lines += [f"- {g}" for g in c.goals]
        if c.prerequisites:
            lines += ["", "Prerequisites: " + "; ".join(
                f"{concept} ({importance.lower()})" for concept, importance in c.prerequisites)
                + "."]
        lines += ["", "Exercises:", ""]
        for e in c.exercises:
            how = ("checks itself: `exercises.check(\"" + e.exercise_id + "\", answer, ...)`"
                   if e.checkable else "answer in words or code")
            lines.append(f"{e.number}. {e.title} ({e.exercise_id}; {how})")
        lines.append("")
    if not student:
        lines += [
            "## For the teacher",
            "",
            "- `student/` is the folder to hand out: the chapters without solutions, this "
            "page and the results folder. `teacher/` holds the same chapters with the "
            "solutions.",
            "- The exercise cells carry nbgrader metadata (schema version 3): to grade with "
            "nbgrader, put a teacher copy into `source/<assignment>/` of your nbgrader course "
            "and run `nbgrader generate_assignment <assignment>`; check cells are autograder "
            "tests (1 point), `YOUR ANSWER HERE` cells are graded by hand (1 point).",
            "",
        ]
    return "\n".join(lines)


def _html(markdown: str, title: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown)
    body = re.sub(r'href="([^"]+)\.md"', r'href="\1.html"', body)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{title}</title>\n<style>body{{font-family:sans-serif;max-width:52em;"
        "margin:2em auto;padding:0 1em;line-height:1.5}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .6em}code{background:#f4f4f4}</style>\n"
        f"</head>\n<body>\n{body}</body>\n</html>\n"
    )


# ---------------------------------------------------------------------------- make_course
@dataclass
class CourseResult:
    """What :func:`make_course` wrote.

    Attributes:
        out: The course folder.
        chapters: The chapters, in order.
        student: Paths of the student copies.
        teacher: Paths of the teacher copies.
        notes: Things the teacher should know (printed by the CLI).
    """

    out: Path
    chapters: list[Chapter]
    student: list[Path] = field(default_factory=list)
    teacher: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def _place_results(results: Path, dest: Path, *, link: bool,
                   copy_function: Callable[[str, str], object] = shutil.copy2) -> str:
    """Put the results folder at ``dest``: a relative symlink (``link``) or a copy."""
    if link:
        try:
            dest.symlink_to(os.path.relpath(results, dest.parent), target_is_directory=True)
            return "link"
        except (OSError, ValueError):
            pass  # no symlinks here, or no relative path (another drive): copy instead
    shutil.copytree(results, dest, copy_function=copy_function,
                    ignore=shutil.ignore_patterns(".*.tmp", "__pycache__"))
    return "copy"


def _build_chapters(build: Path, source_root: str | os.PathLike | None) -> tuple[str, ...]:
    from lue_spie.book.pipeline import chapter_notebooks, find_source_root

    if (build / "src" / "_toc.yml").is_file():
        return chapter_notebooks(build / "src")
    return chapter_notebooks(find_source_root(source_root))


def make_course(
    profile: str,
    out: str | os.PathLike,
    *,
    build_dir: str | os.PathLike | None = None,
    results: str | os.PathLike | None = None,
    link_results: bool = False,
    force: bool = False,
    source_root: str | os.PathLike | None = None,
    log: Callable[[str], Any] = print,
) -> CourseResult:
    """Write the student and teacher copies of every chapter and the course page.

    Args:
        profile: The book profile whose build to use (``ci``, ``demo`` ...).
        out: The course folder to write.
        build_dir: The book build (default ``build/book/PROFILE``).
        results: The results folder of that build (default: the one its ``pipeline.json``
            names, relative to the source root; else ``results/PROFILE``).
        link_results: Link the results folder (a relative symlink) instead of copying it:
            the notebooks then read and write the build's own results.
        force: Replace a course already in ``out`` (its notebooks' edits are lost).
        source_root: Where ``_toc.yml`` is, when the build folder has none.
        log: Where progress lines go.

    Raises:
        FileNotFoundError: no build or no results (the message names the command to run).
        FileExistsError: ``out`` holds a course (without ``force``) or other files.
        ConventionError: a chapter does not follow the exercise convention.
        ValueError: the build is of another profile, or a chapter has error outputs.
    """
    import nbformat

    from lue_spie.book.pipeline import find_source_root, get_profile
    from lue_spie.store import atomic_write_json, atomic_write_text, git_commit

    prof = get_profile(profile)
    build = Path(build_dir or Path("build") / "book" / prof.name)
    executed_dir = build / "src" / "notebooks"
    run_first = f"run `lue-spie book --profile {prof.name}` first" + (
        f" (with --build-dir {build_dir})" if build_dir else " (or pass --build-dir)")
    if not executed_dir.is_dir():
        raise FileNotFoundError(f"no executed chapters in {executed_dir}: {run_first}")
    record_path = build / "pipeline.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if record.get("profile") not in (None, prof.name):
        raise ValueError(f"{build} holds a {record['profile']!r} build, not {prof.name!r}; "
                         f"pass --profile {record['profile']} or another --build-dir")
    if results is not None:
        results_dir = Path(results)
    elif record.get("results"):
        # pipeline.json gives it relative to the source root, where the kernels ran.
        results_dir = Path(record["results"])
        if not results_dir.is_absolute():
            results_dir = find_source_root(source_root) / results_dir
    else:
        results_dir = Path("results") / prof.name
    if not results_dir.is_dir():
        raise FileNotFoundError(f"no results folder {results_dir}: {run_first}")
    notebooks = _build_chapters(build, source_root)
    missing = [nb for nb in notebooks if not (executed_dir / nb).is_file()]
    if missing:
        raise FileNotFoundError(f"no executed copy of {missing} in {executed_dir}: "
                                f"{run_first}")

    out = Path(out)
    stamp = out / "course.json"
    if out.exists() and any(out.iterdir()):
        if not stamp.is_file():
            raise FileExistsError(f"{out} exists and holds other files; choose another --out")
        if not force:
            made = json.loads(stamp.read_text()).get("made", "?")
            raise FileExistsError(f"{out} already holds a course (made {made}); pass --force "
                                  "to replace it (edits in its notebooks are lost)")
    # Read every chapter first: a chapter that breaks the convention stops before writing.
    executed = {nb: nbformat.read(executed_dir / nb, as_version=4) for nb in notebooks}
    titles = chapter_titles(executed)
    chapters = [read_chapter(executed[nb], nb, titles) for nb in notebooks]
    result = CourseResult(out, chapters)
    for nb_name, nb in executed.items():
        errors = [i for i, c in enumerate(nb.cells) for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        if errors:
            raise ValueError(f"{executed_dir / nb_name}: cell {errors[0]} has an error output; "
                             f"rebuild the book ({run_first.removeprefix('run ')})")

    for sub in ("student", "teacher"):
        target = out / sub
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
    (out / "student").mkdir(parents=True)
    (out / "teacher").mkdir(parents=True)

    for chapter in chapters:
        nb = executed[chapter.notebook]
        for name, value in _absolute_path_parameters(nb).items():
            if name != "results":
                result.notes.append(f"{chapter.notebook}: parameter {name} = {value} is a "
                                    "path of this machine; rerunning the chapter elsewhere "
                                    "needs that file")
        relocate_results(nb, RESULTS_NAME, also={str(executed_dir.resolve()): "."})
        for kind, make, paths in (("student", student_copy, result.student),
                                  ("teacher", teacher_copy, result.teacher)):
            copy_nb = make(nb, chapter)
            nbformat.validate(copy_nb)
            problems = nbgrader_problems(copy_nb)
            if problems:  # a bug of this module, not of the chapter
                raise RuntimeError(f"{chapter.notebook} ({kind}): invalid nbgrader "
                                   f"metadata: {problems}")
            path = out / kind / chapter.notebook
            atomic_write_text(path, nbformat.writes(copy_nb))
            paths.append(path)
        log(f"  {chapter.notebook}: {len(chapter.exercises)} exercises "
            f"({sum(e.checkable for e in chapter.exercises)} self-checking)")

    how = _place_results(results_dir.resolve(), out / "student" / RESULTS_NAME,
                         link=link_results)
    _place_results(results_dir.resolve() if how == "link" else out / "student" / RESULTS_NAME,
                   out / "teacher" / RESULTS_NAME, link=how == "link",
                   copy_function=_link_or_copy)
    made = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    page = course_page(chapters, profile=prof.name, made=made)
    atomic_write_text(out / "course.md", page + "\n")
    atomic_write_text(out / "course.html", _html(page, "Course: SPIE companion"))
    atomic_write_text(out / "student" / "course.md",
                      course_page(chapters, profile=prof.name, student=True, made=made) + "\n")
    atomic_write_json(stamp, {
        "made": made, "profile": prof.name, "results": how,
        "build": os.path.relpath(build.resolve(), out.resolve()),
        "build_git_commit": record.get("git_commit"), "git_commit": git_commit(),
        "chapters": [{**{k: v for k, v in asdict(c).items() if k != "exercises"},
                      "exercises": [{"id": e.exercise_id, "number": e.number,
                                     "title": e.title, "checkable": e.checkable}
                                    for e in c.exercises]} for c in chapters],
    })
    return result


# -------------------------------------------------------------------------------------- CLI
def _cli(args: argparse.Namespace) -> int:
    if args.check:
        problems = lint_sources(args.source)
        for p in problems:
            print(p)
        print(f"lue-spie course --check: {len(problems)} problem(s)")
        return 1 if problems else 0
    if not args.out:
        print("lue-spie course: error: --out DIR is required (or --check)", file=sys.stderr)
        return 2
    try:
        res = make_course(args.profile, args.out, build_dir=args.build_dir,
                          results=args.results, link_results=args.link_results,
                          force=args.force, source_root=args.source)
    except (ConventionError, FileExistsError) as err:
        print(f"lue-spie course: error: {err}", file=sys.stderr)
        return 1
    for note in res.notes:
        print(f"note: {note}")
    n_ex = sum(len(c.exercises) for c in res.chapters)
    print(f"lue-spie course: {len(res.chapters)} chapters, {n_ex} exercises -> {res.out}/ "
          "(student/ to hand out, teacher/ with the solutions, course.md)")
    print(f"open it with: jupyter lab {res.out}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``course`` sub-command to the ``lue-spie`` command line."""
    from lue_spie.book.pipeline import PROFILES

    p = subparsers.add_parser(
        "course", help="student and teacher copies of the chapters, and a course page",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Make a course from a built book: every chapter without its solutions\n"
                    "(student/) and with them (teacher/), each with the results folder of\n"
                    "the build beside it, and a course page (goals, time, exercises).",
        epilog="example:\n  lue-spie book --profile ci\n"
               "  lue-spie course --profile ci --out build/course/ci\n"
               "  jupyter lab build/course/ci\n\n"
               "check that the chapters follow the exercise convention:\n"
               "  lue-spie course --check",
    )
    p.add_argument("--profile", default="ci", choices=sorted(PROFILES),
                   help="the book profile whose build to use (default: ci)")
    p.add_argument("--out", default=None, help="the course folder to write")
    p.add_argument("--build-dir", default=None,
                   help="the book build (default: build/book/PROFILE)")
    p.add_argument("--results", default=None,
                   help="the build's results folder (default: from its pipeline.json, else "
                        "results/PROFILE)")
    p.add_argument("--link-results", action="store_true",
                   help="link the results folder instead of copying it (the notebooks then "
                        "read and write the build's results)")
    p.add_argument("--force", action="store_true",
                   help="replace a course already in --out")
    p.add_argument("--check", action="store_true",
                   help="only check that the chapter notebooks follow the exercise "
                        "convention (no build needed)")
    p.add_argument("--source", default=None,
                   help="folder with _toc.yml and notebooks/ (default: found from the "
                        "working directory)")
    p.set_defaults(func=_cli)


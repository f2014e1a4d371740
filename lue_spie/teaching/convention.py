"""The exercise convention of a chapter: reading it (:func:`read_chapter`), linting it
(:func:`lint_chapter`, :func:`lint_sources`) and tidying it (:func:`tidy_chapter`).

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
3. **Check** (only after a code solution): a code cell tagged ``check`` and ``hide-cell``
   (folded like the solution, since in the book it runs on the solution's answer, behind a
   "Show the check" button: ``"mystnb": {"code_prompt_show": "Show the check",
   "code_prompt_hide": "Hide the check"}``; :func:`tidy_chapter` adds both)::

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
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "TAG_EXERCISE",
    "TAG_SOLUTION",
    "TAG_CHECK",
    "ConventionError",
    "ExerciseCells",
    "Chapter",
    "read_chapter",
    "chapter_titles",
    "lint_chapter",
    "lint_sources",
    "tidy_chapter",
]

TAG_EXERCISE = "exercise"
TAG_SOLUTION = "solution"
TAG_CHECK = "check"
#: Tags that make Jupyter Book fold a code cell (``hide-cell`` folds its output too).
HIDE_TAGS: tuple[str, ...] = ("hide-cell", "hide-input")
BEGIN_SOLUTION = "BEGIN SOLUTION"
END_SOLUTION = "END SOLUTION"
SOLUTION_PROMPTS = {"code_prompt_show": "Show the solution",
                    "code_prompt_hide": "Hide the solution"}
#: The labels of a folded check cell (its output confirms the book's solution).
CHECK_PROMPTS = {"code_prompt_show": "Show the check", "code_prompt_hide": "Hide the check"}

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
        time: The Prerequisites cell's "Time to learn" (a duration in words and
            numbers, as the chapter gives it).
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
            problems += _prompt_problems(i, c, SOLUTION_PROMPTS, "code solution")
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
            if not tags & set(HIDE_TAGS):
                problems.append(f"cell {i}: tag the check 'hide-cell' too: in the book it "
                                "runs on the solution, and its reply must stay folded")
            problems += _prompt_problems(i, c, CHECK_PROMPTS, "check")
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
    from lue_spie.book.execute import chapter_notebooks, find_source_root

    root = find_source_root(root)
    out: list[str] = []
    for nb in chapter_notebooks(root):
        out += lint_chapter(root / "notebooks" / nb)
    return out


def _prompt_problems(i: int, cell: Any, prompts: Mapping[str, str], what: str) -> list[str]:
    meta = cell.get("metadata", {}).get("mystnb", {}) or {}
    if any(meta.get(k) != v for k, v in prompts.items()):
        return [f"cell {i}: a {what} is folded behind the button "
                f"{prompts['code_prompt_show']!r} (its metadata 'mystnb': {dict(prompts)}; "
                "lue_spie.teaching.convention.tidy_chapter adds it)"]
    return []


def tidy_chapter(path: str | os.PathLike) -> bool:
    """Give every code solution and check of a chapter the tags and prompts of the convention.

    Adds ``hide-cell`` to code cells tagged ``solution`` or ``check`` that have no hide tag,
    and the "Show the solution" / "Show the check" prompts; writes the notebook only when
    something changed.

    Returns:
        Whether the file changed.
    """
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        tags = _tags(cell)
        if cell.cell_type != "code" or not set(tags) & {TAG_SOLUTION, TAG_CHECK}:
            continue
        prompts = SOLUTION_PROMPTS if TAG_SOLUTION in tags else CHECK_PROMPTS
        if not set(tags) & set(HIDE_TAGS):
            cell.metadata["tags"] = [*tags, "hide-cell"]
            changed = True
        mystnb = cell.metadata.setdefault("mystnb", {})
        for key, value in prompts.items():
            if mystnb.get(key) != value:
                mystnb[key] = value
                changed = True
    if changed:
        from lue_spie.store import atomic_write_text

        atomic_write_text(path, nbformat.writes(nb))
    return changed


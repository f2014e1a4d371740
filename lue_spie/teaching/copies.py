"""The student and teacher copies of a chapter, made from its executed notebook in memory:
the solutions taken out (:func:`student_copy`), nbgrader metadata added to the exercise
cells (:func:`teacher_copy`, checked by :func:`nbgrader_problems`), and the results
folder and the build's paths rewritten to the copy's own (:func:`relocate_results`).

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

import ast
import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lue_spie.layout import CourseFiles
from lue_spie.teaching.convention import (
    BEGIN_SOLUTION,
    END_SOLUTION,
    HIDE_TAGS,
    TAG_SOLUTION,
    Chapter,
    _tags,
)

__all__ = [
    "CODE_STUB",
    "TEXT_STUB",
    "strip_solution",
    "student_copy",
    "teacher_copy",
    "nbgrader_problems",
    "relocate_results",
]

#: The answer-cell tag that replaces ``solution`` in the student copy.
TAG_ANSWER = "answer"
#: nbgrader's stubs (ClearSolutions, Python and markdown).
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"
NBGRADER_SCHEMA_VERSION = 3
#: Where a course copy's results folder lies, relative to the notebook.
RESULTS_NAME = CourseFiles.RESULTS


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
            # Folded in the book (its reply there is the solution's); open for the student.
            cell.metadata["tags"] = [t for t in _tags(cell) if t not in HIDE_TAGS]
            cell.metadata.pop("mystnb", None)
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
    from lue_spie.book.execute import PATH_PARAMETERS

    cell = _parameter_cell(nb)
    out = {}
    if cell is None:
        return out
    for name in PATH_PARAMETERS:
        hit = _assigned_string(cell.source, name)
        if hit and os.path.isabs(hit[1]):
            out[name] = hit[1]
    return out


"""The course: student and teacher copies of every chapter, and a course page.

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

The chapters follow the exercise convention of :mod:`~lue_spie.teaching.convention`;
the copies are made by :mod:`~lue_spie.teaching.copies`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lue_spie.layout import BookBuild, CourseFiles, Layout
from lue_spie.teaching.convention import Chapter, chapter_titles, read_chapter
from lue_spie.teaching.copies import (
    RESULTS_NAME,
    _absolute_path_parameters,
    nbgrader_problems,
    relocate_results,
    student_copy,
    teacher_copy,
)

__all__ = [
    "CourseResult",
    "course_page",
    "make_course",
]


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
    from lue_spie.book.execute import chapter_notebooks, find_source_root

    src = BookBuild(build).src
    if src.toc.is_file():
        return chapter_notebooks(src.root)
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

    from lue_spie.book.execute import find_source_root
    from lue_spie.book.profiles import get_profile
    from lue_spie.store import atomic_write_json, atomic_write_text, git_commit

    prof = get_profile(profile)
    book_build = BookBuild(Path(build_dir)) if build_dir else BookBuild.of(prof.name)
    build = Path(book_build.folder)
    executed_dir = book_build.src.notebooks_dir
    run_first = f"run `lue-spie book --profile {prof.name}` first" + (
        f" (with --build-dir {build_dir})" if build_dir else " (or pass --build-dir)")
    if not executed_dir.is_dir():
        raise FileNotFoundError(f"no executed chapters in {executed_dir}: {run_first}")
    record_path = book_build.record
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if record.get("profile") not in (None, prof.name):
        raise ValueError(f"{build} holds a {record['profile']!r} build, not {prof.name!r}; "
                         f"pass --profile {record['profile']} or another --build-dir")
    if results is not None:
        results_dir = Path(results)
    elif record.get("results"):
        # The build's record gives it relative to the source root, where the kernels ran.
        results_dir = Path(record["results"])
        if not results_dir.is_absolute():
            results_dir = find_source_root(source_root) / results_dir
    else:
        results_dir = Path(Layout.of(prof.name).root)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"no results folder {results_dir}: {run_first}")
    notebooks = _build_chapters(build, source_root)
    missing = [nb for nb in notebooks if not (executed_dir / nb).is_file()]
    if missing:
        raise FileNotFoundError(f"no executed copy of {missing} in {executed_dir}: "
                                f"{run_first}")

    out = Path(out)
    files = CourseFiles(out)
    stamp = files.record
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

    for target in (files.student, files.teacher):
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)

    for chapter in chapters:
        nb = executed[chapter.notebook]
        for name, value in _absolute_path_parameters(nb).items():
            if name != "results":
                result.notes.append(f"{chapter.notebook}: parameter {name} = {value} is a "
                                    "path of this machine; rerunning the chapter elsewhere "
                                    "needs that file")
        relocate_results(nb, RESULTS_NAME, also={str(executed_dir.resolve()): "."})
        for kind, make, paths in ((files.STUDENT, student_copy, result.student),
                                  (files.TEACHER, teacher_copy, result.teacher)):
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

    how = _place_results(results_dir.resolve(), files.student / RESULTS_NAME,
                         link=link_results)
    _place_results(results_dir.resolve() if how == "link" else files.student / RESULTS_NAME,
                   files.teacher / RESULTS_NAME, link=how == "link",
                   copy_function=_link_or_copy)
    made = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    page = course_page(chapters, profile=prof.name, made=made)
    atomic_write_text(files.page, page + "\n")
    atomic_write_text(files.page_html, _html(page, "Course: SPIE companion"))
    atomic_write_text(CourseFiles(files.student).page,
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


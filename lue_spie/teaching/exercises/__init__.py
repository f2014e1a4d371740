"""Answers that check themselves: one checker per exercise with a checkable answer.

A student writes the answer of an exercise into a variable and calls::

    from lue_spie.teaching import exercises
    exercises.check("03.1", answer, results=results)

``"03.1"`` is exercise 1 of chapter 3 (chapter = the two-digit prefix of the notebook's file
name, exercise = its number in the chapter's Exercises section). The reply is a message:

- right: it prints ``Right (exercise 03.1): ...`` and returns. The message says why the
  answer is right or what it means, never the answer itself: a book build runs the check
  cells on the teacher's solution and shows that message under the folded solution;
- not (yet) right: it raises :class:`NotYetRight`, an ``AssertionError`` whose message says
  what to look at, never the expected answer. In Jupyter only that message shows (no
  traceback); in a book build the chapter fails, so every build tests every checker on the
  teacher's solution; under nbgrader the check cell is a test cell and scores 0.

:func:`feedback` gives the same verdict as a :class:`Feedback` object without printing or
raising (for tests and tools).

Checkers compute the expected answer from the data the student sees: the chapter's results
folder (passed as ``results=``) and the functions of the package, with a tolerance, so they
follow a rerun with other parameters and never hold a hard-coded number. The only constants
are the ones the question itself gives (e.g. ``T_opt = 20 degC``).

Adding a checker (chapter authors): in the module of the chapter's group (below), subclass
:class:`Exercise` with the exercise id as a class keyword; the subclass registers itself (the
same pattern as pyrealm's registries) when its module is imported::

    class WorstSite(Exercise, exercise_id="03.1"):
        title = "Reading the table"
        expects = "the site id (a string) with the lowest NSE"
        context = ("results",)

        def judge(self, answer, *, results):
            ...
            if right:
                return self.right("why it is right, not what it is")
            return self.hint("what to look at")

``judge`` receives the answer after the common checks (not ``None`` or ``...``) and the
context names listed in ``context`` (optional ones in ``optional``); it may also raise
:class:`Hint` from a helper. Its messages must not contain the expected answer, nor a number
or name from which it can be read off: the confirmation explains, and a hint may name what
the student gave and the mistake it shows (a sign, a unit, the wrong column). Nor may
``expects`` give an example value that could be the answer. ``tests/unit/test_exercises.py``
checks the confirmation and the hints of every registered checker for the answer in every
form a message could print it in (a float rounded to 1-4 decimals or as a percentage, a
count in digits or words, a month by name).

The modules: :mod:`~lue_spie.teaching.exercises.base` (the registry, :class:`Feedback`, the
errors and the functions above), :mod:`~lue_spie.teaching.exercises.answers` (reading an
answer: ``_number``, ``_strings``, ``_month`` ...), and the checkers by chapter:
:mod:`~lue_spie.teaching.exercises.model` (chapter 1), :mod:`~lue_spie.teaching.exercises.data`
(2), :mod:`~lue_spie.teaching.exercises.calibration` (3),
:mod:`~lue_spie.teaching.exercises.methods` (4-8),
:mod:`~lue_spie.teaching.exercises.assessment` (9-10) and
:mod:`~lue_spie.teaching.exercises.importance` (11). A new chapter module is added to the
imports below, or its checkers are never registered.
"""

# Importing a chapter module registers its checkers. They are named here rather than found
# with pkgutil: the set of checkers is then visible to a reader and to static tools, and a
# helper module in this folder is never imported by accident.
from lue_spie.teaching.exercises import assessment as assessment
from lue_spie.teaching.exercises import calibration as calibration
from lue_spie.teaching.exercises import data as data
from lue_spie.teaching.exercises import importance as importance
from lue_spie.teaching.exercises import methods as methods
from lue_spie.teaching.exercises import model as model
from lue_spie.teaching.exercises.base import (
    REGISTRY,
    Exercise,
    Feedback,
    Hint,
    NotYetRight,
    Uncheckable,
    UnknownExercise,
    check,
    describe,
    exercise_ids,
    feedback,
    get,
)

__all__ = [
    "Exercise",
    "Feedback",
    "Hint",
    "NotYetRight",
    "UnknownExercise",
    "Uncheckable",
    "REGISTRY",
    "check",
    "feedback",
    "get",
    "exercise_ids",
    "describe",
]

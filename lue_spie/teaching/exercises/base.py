"""The registry of checkers and the verdict machinery: :class:`Exercise` and its
registration, :class:`Feedback`, the errors a check raises, and the functions a
notebook calls (:func:`check`, :func:`feedback`, :func:`get`, :func:`exercise_ids`,
:func:`describe`)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

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

#: Exercise id -> checker class, filled by :meth:`Exercise.__init_subclass__`.
REGISTRY: dict[str, type[Exercise]] = {}

_ID = re.compile(r"^\d{2}\.\d+$")


@dataclass(frozen=True)
class Feedback:
    """The verdict on one answer.

    Attributes:
        exercise_id: The exercise (``"03.1"``).
        ok: Whether the answer is right (within the checker's tolerance).
        message: What the student reads: a confirmation, or what to look at.
    """

    exercise_id: str
    ok: bool
    message: str
    checkable: bool = True

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        head = "Right" if self.ok else "Not yet" if self.checkable else "Cannot check"
        return textwrap.fill(f"{head} (exercise {self.exercise_id}): {self.message}", width=88,
                             break_on_hyphens=False, break_long_words=False)


class NotYetRight(AssertionError):
    """Raised by :func:`check` for an answer that is not right (yet).

    An ``AssertionError``, so that nbgrader scores the check cell as failed and a book build
    stops. In IPython only the message is shown, without a traceback.
    """

    def __init__(self, verdict: Feedback) -> None:
        super().__init__(str(verdict))
        self.feedback = verdict

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of formatting a traceback: the student sees the hint only.
        return [str(self.feedback)]


class UnknownExercise(LookupError):
    """No checker is registered under this id."""


class Hint(Exception):  # a message for the student, not an error of the code
    """Raised inside a checker to reply with a hint (the answer is not right)."""


class Uncheckable(Exception):
    """Raised inside a checker when the chapter's data cannot define the answer.

    For example a correlation across sites on a run with one or two sites (a user's own
    FLUXNET folder): :func:`check` then says so instead of failing the cell.
    """


class Exercise:
    """Base class of the checkers; a subclass with ``exercise_id=...`` registers itself.

    Class attributes of a checker:
        title: The exercise's title in its chapter.
        expects: What the answer is, in words (shown when the answer has the wrong form).
        context: Names the checker needs besides the answer (``results`` ...).
        optional: Names it also accepts (each may be left out or None).
    """

    exercise_id: ClassVar[str]
    title: ClassVar[str] = ""
    expects: ClassVar[str] = ""
    context: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, exercise_id: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if exercise_id is None:  # an intermediate base class: not registered
            return
        if not _ID.match(exercise_id):
            raise ValueError(f"{cls.__name__}: exercise id {exercise_id!r} must look like "
                             "'03.1' (two-digit chapter, dot, exercise number)")
        if exercise_id in REGISTRY and REGISTRY[exercise_id].__qualname__ != cls.__qualname__:
            raise ValueError(f"{cls.__name__}: exercise {exercise_id} already has a checker, "
                             f"{REGISTRY[exercise_id].__name__}")
        if not cls.expects:
            raise ValueError(f"{cls.__name__}: say in `expects` what the answer of "
                             f"exercise {exercise_id} is")
        cls.exercise_id = exercise_id
        REGISTRY[exercise_id] = cls

    # -------------------------------------------------------------- what a checker implements
    def judge(self, answer: Any, **context: Any) -> Feedback:
        """The verdict on ``answer`` (not None); use :meth:`right` and :meth:`hint`."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------ helpers
    def right(self, message: str) -> Feedback:
        """A positive verdict.

        ``message`` says why the answer is right or what it means, without the answer: a book
        build prints it under the folded solution.
        """
        return Feedback(self.exercise_id, True, message)

    def hint(self, message: str) -> Feedback:
        """A negative verdict with what to look at (never the expected answer)."""
        return Feedback(self.exercise_id, False, message)

    def evaluate(self, answer: Any, **context: Any) -> Feedback:
        """Common checks (an answer is there, the context is complete), then :meth:`judge`.

        Raises:
            TypeError: for a missing or unknown context name (a mistake in the check cell,
                not in the answer).
        """
        missing = [name for name in self.context if context.get(name) is None]
        if missing:
            names = ", ".join(f"{n}={n}" for n in missing)
            raise TypeError(f"exercise {self.exercise_id}: the check needs {names} (the "
                            f"chapter's variable(s) of that name), e.g. "
                            f'exercises.check("{self.exercise_id}", answer, {names})')
        unknown = sorted(set(context) - set(self.context) - set(self.optional))
        if unknown:
            raise TypeError(f"exercise {self.exercise_id}: unexpected argument(s) {unknown}; "
                            f"it takes {list(self.context) + list(self.optional)}")
        if answer is None or answer is Ellipsis:
            return self.hint(f"no answer yet: assign {self.expects} to `answer` in the cell "
                             "above, run it, then run this check again.")
        try:
            return self.judge(answer, **context)
        except Hint as h:
            return self.hint(str(h))
        except Uncheckable as u:
            return Feedback(self.exercise_id, False, str(u), checkable=False)


def exercise_ids() -> list[str]:
    """The ids of every registered checker, sorted by chapter and number."""
    return sorted(REGISTRY, key=lambda i: tuple(int(p) for p in i.split(".")))


def get(exercise_id: str) -> Exercise:
    """The checker of an exercise.

    Raises:
        UnknownExercise: naming the id and the ids that have a checker.
    """
    exercise_id = str(exercise_id).strip()
    try:
        return REGISTRY[exercise_id]()
    except KeyError:
        hint = " (write the id as a string like '03.1')" if not _ID.match(exercise_id) else ""
        raise UnknownExercise(f"no checker for exercise {exercise_id!r}{hint}; exercises with "
                              f"a checker: {', '.join(exercise_ids())}") from None


def feedback(exercise_id: str, answer: Any, **context: Any) -> Feedback:
    """The verdict on an answer, without printing or raising (see :func:`check`)."""
    return get(exercise_id).evaluate(answer, **context)


def check(exercise_id: str, answer: Any, **context: Any) -> None:
    """Check an answer: print a confirmation, or raise :class:`NotYetRight` with a hint.

    Args:
        exercise_id: ``"CC.N"``: chapter CC (two digits), exercise N.
        answer: The student's answer.
        **context: What the checker needs from the chapter, e.g. ``results=results``.

    Raises:
        NotYetRight: the answer is not right (the message says what to look at).
        UnknownExercise: no checker has this id.
        TypeError: the context is incomplete.
    """
    verdict = feedback(exercise_id, answer, **context)
    if not verdict.ok and verdict.checkable:
        raise NotYetRight(verdict)
    print(verdict)



def describe(ids: Iterable[str] | None = None) -> Mapping[str, Mapping[str, Any]]:
    """Id -> title, expected answer and context names of each (or the given) checker."""
    return {i: {"title": REGISTRY[i].title, "expects": REGISTRY[i].expects,
                "context": list(REGISTRY[i].context), "optional": list(REGISTRY[i].optional)}
            for i in (ids if ids is not None else exercise_ids())}

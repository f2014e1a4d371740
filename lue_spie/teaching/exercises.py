"""Answers that check themselves: one checker per exercise with a checkable answer.

A student writes the answer of an exercise into a variable and calls

    from lue_spie.teaching import exercises
    exercises.check("03.1", answer, results=results)

``"03.1"`` is exercise 1 of chapter 3 (chapter = the two-digit prefix of the notebook's file
name, exercise = its number in the chapter's Exercises section). The reply is a message:

- right: it prints ``Right (exercise 03.1): ...`` and returns;
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

Adding a checker (chapter authors): subclass :class:`Exercise` with the exercise id as a
class keyword; the subclass registers itself (the same pattern as pyrealm's registries)::

    class WorstSite(Exercise, exercise_id="03.1"):
        title = "Reading the table"
        expects = "the site id (a string) with the lowest NSE"
        context = ("results",)

        def judge(self, answer, *, results):
            ...
            if right:
                return self.right("... your answer restated ...")
            return self.hint("what to look at")

``judge`` receives the answer after the common checks (not ``None`` or ``...``) and the
context names listed in ``context`` (optional ones in ``optional``); it may also raise
:class:`Hint` from a helper. Its messages must not contain the expected answer:
``tests/test_exercises.py`` checks that for every registered checker.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
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
        """A positive verdict."""
        return Feedback(self.exercise_id, True, message)

    def hint(self, message: str) -> Feedback:
        """A negative verdict with what to look at."""
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


# ------------------------------------------------------------------------ reading answers
def _number(value: Any, what: str) -> float:
    """A real number from a Python/NumPy/torch scalar, or :class:`Hint`."""
    if isinstance(value, bool):
        raise Hint(f"expected a number for {what}, got {value!r}")
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, str):
        raise Hint(f"expected a number for {what}, got the string {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise Hint(f"expected a number for {what}, got {type(value).__name__}") from None
    if not math.isfinite(x):
        raise Hint(f"{what} is {x}, not a finite number")
    return x


def _numbers(value: Any, n: int, what: str) -> list[float]:
    """``n`` numbers from a sequence, array or tensor, or :class:`Hint`."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise Hint(f"expected {what}")
    items = list(value)
    if len(items) != n:
        raise Hint(f"expected {what}; got {len(items)} value(s)")
    return [_number(v, what) for v in items]


def _strings(value: Any, what: str) -> set[str]:
    """A set of strings from a list, set, array, Series or Index, or :class:`Hint`."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        raise Hint(f"expected {what}, not a whole table: take the column you need, e.g. "
                   "`table['PFT'].unique()`")
    if isinstance(value, str):
        return {value}
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, Iterable):
        raise Hint(f"expected {what}")
    out = set()
    for v in value:
        if not isinstance(v, str):
            raise Hint(f"expected {what}; {v!r} is not a string")
        out.add(v.strip())
    return out


_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")


def _month(value: Any, what: str) -> int:
    """A month 1-12 from a number or an English month name (or its first three letters)."""
    if isinstance(value, str):
        key = value.strip().lower()
        for i, name in enumerate(_MONTHS, 1):
            if key == name or (len(key) >= 3 and name.startswith(key)):
                return i
        raise Hint(f"{value!r} is not a month: give {what} as a number 1-12 or a name")
    x = _number(value, what)
    if x != int(x) or not 1 <= x <= 12:
        raise Hint(f"{x:g} is not a month: give {what} as a number 1-12 or a name")
    return int(x)


def _results(results: Any) -> Path:
    path = Path(results)
    if not path.is_dir():
        raise FileNotFoundError(f"results folder {path} not found (from the working "
                                f"directory {Path.cwd()}); pass the chapter's `results`")
    return path


def _subset(dataset: Any, sites: Sequence[str] | None, years: Sequence[int] | None
            ) -> tuple[Any, Any]:
    """The site-day and site tables of a dataset, restricted like the chapters do."""
    site_day, site_table = dataset.site_day, dataset.sites
    if sites is not None:
        site_day = site_day[site_day["site"].isin(list(sites))]
        site_table = site_table[site_table["site"].isin(list(sites))]
    if years is not None:
        site_day = site_day[site_day["date"].dt.year.isin([int(y) for y in years])]
    return site_day, site_table


# ------------------------------------------------------------------ chapter 1: the LUE model
class HalfMaximumTemperature(Exercise, exercise_id="01.1"):
    """f_T = 0.5 for T_opt = 20 degC and k_T = 6 (the values the question gives)."""

    title = "Half-maximum temperature"
    expects = "the two temperatures [degC] where f_T = 0.5, as a pair (low, high)"
    Topt: ClassVar[float] = 20.0
    kT: ClassVar[float] = 6.0
    tolerance: ClassVar[float] = 0.15  # degC: answers rounded to 0.1 degC pass

    def _f_T(self, T: float) -> float:
        import torch

        from lue_spie.model import f_T

        t = torch.tensor(T, dtype=torch.float64)
        return float(f_T(t, torch.tensor(self.Topt, dtype=torch.float64),
                         torch.tensor(self.kT, dtype=torch.float64)))

    def _expected(self) -> tuple[float, float]:
        from scipy.optimize import brentq

        # f_T falls monotonically from 1 at Topt; the root is found on the model's own code.
        d = brentq(lambda x: self._f_T(self.Topt + x) - 0.5, 0.0, 20.0 * self.kT, xtol=1e-10)
        return self.Topt - d, self.Topt + d

    def judge(self, answer: Any) -> Feedback:
        lo, hi = sorted(_numbers(answer, 2, self.expects))
        e_lo, e_hi = self._expected()
        f_lo, f_hi = self._f_T(lo), self._f_T(hi)
        if abs(lo - e_lo) <= self.tolerance and abs(hi - e_hi) <= self.tolerance:
            return self.right(f"f_T is {f_lo:.3f} at {lo:.2f} degC and {f_hi:.3f} at "
                              f"{hi:.2f} degC, half its maximum on both sides of T_opt.")
        centre = 0.5 * (lo + hi)
        if abs(centre - self.Topt) > self.tolerance:
            raise Hint(f"f_T is symmetric around T_opt = {self.Topt:g} degC, so the two "
                       "temperatures lie at the same distance below and above it; yours are "
                       f"centred on {centre:.2f} degC.")
        half = 0.5 * (hi - lo)
        if abs(half - self.kT * math.log(2.0)) <= self.tolerance:
            raise Hint("that would be right if f_T were exp(-|z|) with z = (T - T_opt)/k_T; "
                       "it is not: write 2 e^-z / (1 + e^-2z) as 1/cosh(z) and solve "
                       "cosh(z) = 2.")
        direction = "further from" if f_lo > 0.5 else "closer to"
        raise Hint(f"f_T is {f_lo:.3f} at {lo:.2f} degC and {f_hi:.3f} at {hi:.2f} degC, not "
                   f"0.5: move both temperatures {direction} T_opt. Check with `model.f_T`.")


class HalfVPD(Exercise, exercise_id="01.2"):
    """The VPD at which the VPD factor of f_VPD is 0.5, for kappa = -0.0004 Pa-1, c_a = C_a0."""

    title = "VPD and CO2"
    expects = "the VPD [Pa] at which the VPD factor of f_VPD is 0.5 (one number)"
    kappa: ClassVar[float] = -0.0004  # Pa-1, given in the question
    rel_tolerance: ClassVar[float] = 0.01

    def _factor(self, vpd: float) -> float:
        import torch

        from lue_spie.model import f_VPD
        from lue_spie.params import ILLUSTRATIVE

        def t(x: float) -> torch.Tensor:
            return torch.tensor(float(x), dtype=torch.float64)

        ca0 = ILLUSTRATIVE["Ca0"]  # c_a = C_a0: the CO2 ratio is 1 whatever its value
        vpd_part, _ = f_VPD(t(vpd), t(ca0), t(self.kappa), t(ca0), t(ILLUSTRATIVE["Ckappa"]),
                            t(ILLUSTRATIVE["Cm"]))
        return float(vpd_part)

    def _expected(self) -> float:
        from scipy.optimize import brentq

        return brentq(lambda v: self._factor(v) - 0.5, 0.0, 1e6, xtol=1e-8)

    def judge(self, answer: Any) -> Feedback:
        vpd = _number(answer, self.expects)
        expected = self._expected()
        if abs(vpd - expected) <= self.rel_tolerance * expected:
            return self.right(f"the VPD factor is {self._factor(vpd):.3f} at VPD = {vpd:.0f} "
                              "Pa.")
        if vpd <= 0:
            raise Hint("VPD is a deficit, a positive number (in Pa).")
        if abs(vpd * 1000.0 - expected) <= self.rel_tolerance * expected:
            raise Hint("check the units: VPD is in Pa in this model (kappa is in Pa-1), not "
                       "in kPa.")
        direction = "higher" if self._factor(vpd) > 0.5 else "lower"
        raise Hint(f"at VPD = {vpd:.4g} Pa the VPD factor is {self._factor(vpd):.3f}, not 0.5; "
                   f"the half-point is at a {direction} VPD. With c_a = C_a0 the factor is "
                   "exp(kappa VPD).")


class LagSeason(Exercise, exercise_id="01.3"):
    """Months of the largest fall and rise of GPP when alpha_T = 0.9 at the example site."""

    title = "Lags"
    expects = ("a pair (month of the largest fall, month of the largest rise) of the monthly "
               "mean GPP with alpha_T = 0.9 against the true vector, months as 1-12 or names")
    context = ("results", "site")
    #: A month counts as right when its mean change is within this share of the extreme one
    #: (two neighbouring months can be about equally affected).
    share: ClassVar[float] = 0.15

    def _monthly_change(self, results: Any, site: str) -> Any:
        import pandas as pd
        import torch

        from lue_spie.data import load_dataset, to_forcing
        from lue_spie.model import simulate
        from lue_spie.params import PARAMETERS, index

        example = load_dataset(_results(results) / "model" / "example")
        if example.truth is None or site not in set(example.truth["site"]):
            raise FileNotFoundError(f"{example.path}: no true parameters of site {site!r}")
        truth = example.truth.set_index("site").loc[site, list(PARAMETERS)]
        fb = to_forcing(example.site_day, sites=[site])
        true_vec = torch.tensor(truth.to_numpy(dtype=float, copy=True), dtype=torch.float64)
        lagged = true_vec.clone()
        lagged[index("alpha_T")] = 0.9
        gpp = simulate(fb.forcing, torch.stack([true_vec, lagged]))["GPP"]
        diff = (gpp[1] - gpp[0]).cpu().numpy()
        return pd.Series(diff, index=fb.dates).groupby(fb.dates.month).mean()

    def judge(self, answer: Any, *, results: Any, site: str) -> Feedback:
        if hasattr(answer, "tolist"):
            answer = answer.tolist()
        if isinstance(answer, str) or not isinstance(answer, Sequence) or len(answer) != 2:
            raise Hint(f"expected {self.expects}")
        fall, rise = _month(answer[0], "the month of the largest fall"), _month(
            answer[1], "the month of the largest rise")
        change = self._monthly_change(results, site)
        worst, best = float(change.min()), float(change.max())
        ok_fall = change.get(fall, 0.0) <= (1 - self.share) * worst < 0
        ok_rise = change.get(rise, 0.0) >= (1 - self.share) * best > 0
        name = {i: m.capitalize() for i, m in enumerate(_MONTHS, 1)}
        if ok_fall and ok_rise:
            return self.right(f"GPP falls most in {name[fall]} and rises most in {name[rise]}: "
                              "the smoothed temperature lags behind the seasonal cycle.")
        problems = []
        for label, m, ok in (("fall", fall, ok_fall), ("rise", rise, ok_rise)):
            if not ok:
                c = float(change.get(m, 0.0))
                sense = "rises" if c > 0 else "falls"
                problems.append(f"in {name[m]} (your month of the largest {label}) the mean "
                                f"GPP {sense} by {abs(c):.2f} gC m-2 d-1, and another month "
                                f"changes more")
        raise Hint("; ".join(problems) + ". Compare the monthly means of the two runs "
                   "(e.g. `pd.Series(diff, index=fb.dates).groupby(fb.dates.month).mean()`).")


# ----------------------------------------------------------------------- chapter 2: the data
class _DataExercise(Exercise):
    """Checkers that read the dataset of the data chapter, restricted like the chapter."""

    context = ("results",)
    optional = ("sites", "years")

    def tables(self, results: Any, sites: Any = None, years: Any = None) -> tuple[Any, Any]:
        from lue_spie.data import load_dataset

        return _subset(load_dataset(_results(results) / "data"), sites, years)


class AridPFTs(_DataExercise, exercise_id="02.1"):
    """The PFTs with at least one site in an arid climate (Koeppen main group B)."""

    title = "Climate and latitude"
    expects = "the PFTs (e.g. a list or set of codes such as 'GRA') of the arid-climate sites"

    def judge(self, answer: Any, *, results: Any, sites: Any = None,
              years: Any = None) -> Feedback:
        given = _strings(answer, self.expects)
        _, site_table = self.tables(results, sites, years)
        expected = set(site_table.loc[site_table["koeppen_main"] == "B", "PFT"])
        if given == expected:
            return self.right(f"the {len(given)} PFT(s) with arid sites in this run.")
        known = set(site_table["PFT"])
        foreign = sorted(given - known)
        if foreign:
            raise Hint(f"{foreign} occur nowhere in this run's site table; use the PFT codes "
                       "of the column `PFT`.")
        extra = sorted(given - expected)
        parts = []
        if extra:
            parts.append(f"no site of {', '.join(extra)} has koeppen_main == 'B'")
        missing = len(expected - given)
        if missing:
            parts.append(f"{missing} PFT(s) with arid sites are missing")
        raise Hint("; ".join(parts) + ". Select the rows of the site table whose "
                   "`koeppen_main` is 'B' and look at their PFTs.")


class QualityFlag(_DataExercise, exercise_id="02.2"):
    """The quality flag that fails (<= 0.8) on the largest share of site-days."""

    title = "Good days"
    expects = "the name of one quality column (a column name of QC_COLUMNS, as a string)"
    #: Flags within this share of site-days of the worst one count as right (near ties).
    tolerance: ClassVar[float] = 0.002

    def judge(self, answer: Any, *, results: Any, sites: Any = None,
              years: Any = None) -> Feedback:
        from lue_spie.data import QC_COLUMNS

        if not isinstance(answer, str):
            raise Hint(f"expected {self.expects}")
        flag = answer.strip()
        if flag not in QC_COLUMNS:
            raise Hint(f"{flag!r} is not a quality column: take one of the names in "
                       "QC_COLUMNS")
        site_day, _ = self.tables(results, sites, years)
        qc = site_day[list(QC_COLUMNS)]
        # A flag removes a day where it is not above 0.8; a missing value removes it too
        # (good_days), while `qc <= 0.8` would not count it: either reading is accepted.
        fails = [(~(qc > 0.8)).mean(), (qc <= 0.8).mean()]
        if any(f[flag] >= f.max() - self.tolerance for f in fails):
            return self.right(f"{flag} fails on {fails[0][flag]:.1%} of the site-days, more "
                              "than any other flag.")
        raise Hint(f"{flag} fails (<= 0.8) on {fails[0][flag]:.1%} of the site-days; another "
                   "flag fails more often. Compute the share of site-days at or below 0.8 "
                   "for every column of QC_COLUMNS.")


class AridityMoisture(_DataExercise, exercise_id="02.3"):
    """Spearman correlation across sites between AI1 and the site mean of W."""

    title = "Aridity and soil water"
    expects = ("the rank (Spearman) correlation across sites between AI1 and the mean "
               "relative soil moisture W of each site (one number)")
    tolerance: ClassVar[float] = 0.01

    def judge(self, answer: Any, *, results: Any, sites: Any = None,
              years: Any = None) -> Feedback:
        site_day, site_table = self.tables(results, sites, years)
        table = site_table.set_index("site")
        table = table.assign(W=site_day.groupby("site")["W"].mean()).dropna(subset=["AI1", "W"])
        if len(table) < 3:
            raise Uncheckable(f"a correlation across sites needs three sites or more; this "
                              f"run has {len(table)} with AI1 and W.")
        rho = _number(answer, self.expects)
        if not -1.0 <= rho <= 1.0:
            raise Hint(f"{rho:.3g} cannot be a correlation: it lies between -1 and 1.")
        spearman = float(table["AI1"].corr(table["W"], method="spearman"))
        pearson = float(table["AI1"].corr(table["W"], method="pearson"))
        if abs(rho - spearman) <= self.tolerance:
            return self.right(f"a rank correlation of {rho:.2f} across {len(table)} sites.")
        if abs(rho - pearson) <= self.tolerance:
            raise Hint("that is the linear (Pearson) correlation; the exercise asks for the "
                       "rank correlation: `.corr(..., method='spearman')`.")
        if abs(rho + spearman) <= self.tolerance:
            raise Hint("the sign is wrong: think about which way W moves as AI1 (precipitation "
                       "over potential evaporation) grows.")
        raise Hint(f"{rho:.3f} is off. Take one point per site: AI1 from the site table and the "
                   "mean of W over the site's days, then their Spearman correlation.")


# ----------------------------------------------------------------- chapter 3: calibration
class WorstSite(Exercise, exercise_id="03.1"):
    """The calibrated site with the lowest NSE."""

    title = "Reading the table"
    expects = "the id (a string such as 'VF-001') of the calibrated site with the lowest NSE"
    context = ("results",)

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.store import read_parquet

        site = _string(answer, self.expects, "site")
        table = read_parquet(_results(results) / "calibration" / "calibration.parquet",
                             columns=["site", "status", "nse"])
        if site not in set(table["site"]):
            raise Hint(f"there is no site {site!r} in the calibration table.")
        row = table.set_index("site").loc[site]
        if row["status"] != "ok":
            raise Hint(f"the calibration of {site} failed (status {row['status']!r}); only "
                       "sites with status 'ok' count.")
        ok = table[table["status"] == "ok"]
        lower = int((ok["nse"] < row["nse"] - 1e-12).sum())
        if lower == 0:
            return self.right(f"{site} has the lowest NSE ({row['nse']:.3f}) of the "
                              f"{len(ok)} calibrated sites.")
        if int((ok["nse"] > row["nse"] + 1e-12).sum()) == 0:
            raise Hint(f"{site} has the highest NSE; sort ascending.")
        raise Hint(f"{site} has NSE {row['nse']:.3f}, and {lower} calibrated site(s) have a "
                   "lower one. Sort the sites with status 'ok' by `nse`.")


# ------------------------------------------------- chapters 4-7: the extrapolation methods
#: The lag parameters, free only at some sites (Koeppen D and E, B): left out of distances
#: between vectors whose lags are free at different sites.
_LAGS = ("alpha_T", "alpha_W")


def _count(value: Any, what: str) -> int:
    """A non-negative whole number, or :class:`Hint`."""
    x = _number(value, what)
    if x != int(x) or x < 0:
        raise Hint(f"{x:g} cannot be the answer: the answer is a count (0, 1, 2, ...).")
    return int(x)


def _string(value: Any, what: str, column: str | None = None, *,
            advice: str | None = None) -> str:
    """One string (a site id, PFT, parameter name), or :class:`Hint` naming the column (or
    giving ``advice``)."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if not isinstance(value, str):
        advice = advice or f"Take the `{column}` value of the row, not the whole row."
        raise Hint(f"expected {what}; got {type(value).__name__}. {advice}")
    return value.strip()


class _MethodExercise(Exercise):
    """Checkers that read the extrapolation folder of the method chapters."""

    context = ("results",)

    @staticmethod
    def out(results: Any) -> Path:
        return _results(results) / "extrapolation"

    def predictions(self, results: Any, methods: Sequence[str]) -> Any:
        from lue_spie.extrapolate import views

        return views.load_predictions(self.out(results), list(methods))

    def split_sites(self, results: Any) -> Any:
        """The sites table of the split (``site, PFT, koeppen, main_group, fold, ...``)."""
        from lue_spie.extrapolate.cv import read_folds

        return read_folds(self.out(results)).table

    @staticmethod
    def calibration(results: Any) -> Any:
        from lue_spie.store import read_parquet

        return read_parquet(_results(results) / "calibration" / "calibration.parquet")


class FallbackCount(_MethodExercise, exercise_id="04.1"):
    """The number of held-out sites that PFTmean predicted with its fallback."""

    title = "Counting fallbacks"
    expects = ("the number (a whole number) of held-out sites that PFTmean predicted with "
               "its fallback")

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.extrapolate import views

        n = _count(answer, self.expects)
        grouping = ["PFTmean", "Climmean", "PFTmed", "Climmed", "Sitesim"]
        counts = views.fallback_counts(self.predictions(results, grouping))["fallbacks"]
        expected = int(counts["PFTmean"])
        if n == expected:
            return self.right(f"PFTmean used its fallback at {n} held-out site(s): in their "
                              "folds no training site shares their PFT.")
        single = self.split_sites(results)["single_type"].fillna("")
        if n == int(counts["Climmean"]):
            raise Hint("that is how often the climate methods (Climmean, Climmed) fall back; "
                       "PFTmean groups by PFT.")
        if n == int(counts.sum()):
            raise Hint("that counts the fallbacks of all five methods of the chapter; take "
                       "the row of PFTmean.")
        if n == int((single != "").sum()):
            raise Hint("that counts every site alone of its PFT *or* of its main climate "
                       "group; PFTmean groups by PFT only.")
        more = "fewer" if n > expected else "more"
        raise Hint(f"{n} is not right: PFTmean fell back at {more} sites. Count PFTmean's "
                   "predictions whose `note` says 'fallback' (`views.fallback_counts`), and "
                   "compare with the sites alone of their PFT (`split.single_type_sites`).")


class LeastSimilarDonor(_MethodExercise, exercise_id="04.2"):
    """The donor of the held-out site with the lowest Sitesim similarity D."""

    title = "A donor"
    expects = ("the id (a string, as in the column `site`) of the site that gave Sitesim's "
               "vector to the held-out site with the lowest similarity D")

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.extrapolate import views

        site = _string(answer, self.expects, "donor")
        donors = views.sitesim_donors(self.predictions(results, ["Sitesim"])).dropna(
            subset=["D"])
        lowest = float(donors["D"].min())
        least = donors[donors["D"] <= lowest + 1e-12]
        if site in set(least["donor"]):
            row = least[least["donor"] == site].iloc[0]
            return self.right(f"{site} gave its vector to {row['site']} (D = {row['D']:.3f}), "
                              "the least similar pair of the run.")
        if site in set(least["site"]):
            raise Hint(f"{site} is the held-out site with the lowest D itself; the question "
                       "asks for the site that gave it its vector (the column `donor`).")
        if site not in set(self.split_sites(results)["site"]):
            raise Hint(f"there is no site {site!r} in this run; use an id of the `donor` "
                       "column of the donors table.")
        given = donors[donors["donor"] == site]
        if given.empty:
            raise Hint(f"{site} gave its vector to no held-out site in this run; look at the "
                       "column `donor` of `views.sitesim_donors(predictions)`.")
        if float(given["D"].min()) >= float(donors["D"].max()) - 1e-12:
            raise Hint(f"{site} is the donor of the most similar pair; sort by `D` ascending.")
        raise Hint(f"{site} gave its vector to held-out site(s) with D = "
                   f"{float(given['D'].min()):.3f}; another pair is less similar. Sort the "
                   "donors table by `D` and take the donor of the first row.")


class MedianMinusMean(_MethodExercise, exercise_id="04.3"):
    """PFTmed's median held-out daily NSE minus PFTmean's."""

    title = "Mean or median"
    expects = ("the median held-out daily NSE of PFTmed minus that of PFTmean (one number, "
               "positive when the median vectors fit better)")
    tolerance: ClassVar[float] = 0.005

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.extrapolate import views

        x = _number(answer, self.expects)
        methods = ["PFTmean", "PFTmed", "Climmean", "Climmed"]
        nse = views.heldout_nse(self.predictions(results, methods)).dropna(subset=["nse"])
        by_method = nse.groupby("method")["nse"]
        median, mean = by_method.median(), by_method.mean()
        expected = float(median["PFTmed"] - median["PFTmean"])
        if abs(x - expected) <= self.tolerance:
            better = "better" if x > 0 else "worse" if x < 0 else "as well"
            return self.right(f"a difference of {x:+.3f}: the median vectors fit {better} "
                              "than the mean vectors at the typical held-out site.")
        if abs(x + expected) <= self.tolerance:
            raise Hint("the sign is wrong: subtract PFTmean's median NSE from PFTmed's.")
        if abs(x - float(mean["PFTmed"] - mean["PFTmean"])) <= self.tolerance:
            raise Hint("that is the difference of the mean NSE; the question asks for the "
                       "medians, which a few very poor sites do not drag down.")
        if abs(x - float(median["Climmed"] - median["Climmean"])) <= self.tolerance:
            raise Hint("that compares the climate methods; take PFTmed and PFTmean.")
        raise Hint(f"{x:.3f} is off. Take the column `median` of `views.nse_summary(nse_table)` "
                   "for PFTmed and for PFTmean and subtract the second from the first.")


class PooledVectorCount(_MethodExercise, exercise_id="05.1"):
    """The number of different OPT-All vectors (lags aside)."""

    title = "How many vectors"
    expects = ("the number (a whole number) of different OPT-All vectors this run produced, "
               "the lags alpha_T and alpha_W left aside")

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.params import PARAMETERS

        n = _count(answer, self.expects)
        p = self.predictions(results, ["OPT-All", "OPT-PFT"])
        core = [q for q in PARAMETERS if q not in _LAGS]
        opt_all = p[p["method"] == "OPT-All"]
        expected = len(opt_all[core].drop_duplicates())
        if n == expected:
            return self.right(f"{n} different vectors, each given to every held-out site of "
                              "its fold (with the site's own lag mask).")
        if n == 1:
            raise Hint("every held-out site of a fold gets the same vector, but is it the same "
                       "vector in every fold? Count the distinct rows of OPT-All's predictions "
                       "(without the lags).")
        if n == len(opt_all):
            raise Hint("that counts the held-out sites; several of them share one vector. "
                       "Count the distinct rows of OPT-All's predictions (without the lags).")
        if n == len(opt_all[list(PARAMETERS)].drop_duplicates()):
            raise Hint("that counts the lag masks too: a held-out site gets its own lags. "
                       "Leave out alpha_T and alpha_W.")
        opt_pft = p[p["method"] == "OPT-PFT"]
        if n == len(opt_pft[core].drop_duplicates()):
            raise Hint("that is the number of OPT-PFT vectors; the question is about OPT-All.")
        raise Hint(f"{n} is not right. Count the distinct rows of OPT-All's predictions over "
                   "the eleven parameters other than the lags "
                   "(`drop_duplicates`), or look at `vectors_all`.")


class FarthestPFT(_MethodExercise, exercise_id="05.2"):
    """The PFT whose mean OPT-PFT vector lies farthest from the mean OPT-All vector."""

    title = "The most different PFT"
    expects = ("the PFT (a string, a code of the column `PFT`) whose OPT-PFT vector lies "
               "farthest from the OPT-All vector in the scaled space (lags left out)")
    #: PFTs within this distance of the farthest one count as right (near ties).
    tolerance: ClassVar[float] = 0.005

    def distances(self, results: Any, with_lags: bool = False) -> Any:
        from lue_spie.extrapolate import views
        from lue_spie.params import PARAMETERS

        p = self.predictions(results, ["OPT-All", "OPT-PFT"])
        sites = self.split_sites(results)
        names = list(PARAMETERS) if with_lags else [q for q in PARAMETERS if q not in _LAGS]
        centre = views.pooled_vectors(p, "OPT-All", sites)[names].mean()
        by_pft = views.pooled_vectors(p, "OPT-PFT", sites, by="PFT").groupby("group")[
            names].mean()
        return ((by_pft - centre) ** 2).sum(axis=1, min_count=1) ** 0.5

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        pft = _string(answer, self.expects, "group")
        distance = self.distances(results)
        if pft not in distance.index:
            if pft in set(self.split_sites(results)["PFT"]):
                raise Hint(f"{pft} has no OPT-PFT vector of its own: its only site is "
                           "predicted with the fallback. Compare the PFTs of `vectors_pft`.")
            raise Hint(f"{pft!r} is not a PFT of this run; use the codes of the column `PFT` "
                       "of the sites table.")
        d = float(distance[pft])
        if d >= float(distance.max()) - self.tolerance:
            return self.right(f"the OPT-PFT vector of {pft} lies {d:.3f} from the OPT-All "
                              "vector in the scaled space, farther than any other PFT's.")
        with_lags = self.distances(results, with_lags=True)
        if float(with_lags[pft]) >= float(with_lags.max()) - self.tolerance:
            raise Hint("that is the farthest with the lags included; the lags are free at "
                       "some sites only, so leave alpha_T and alpha_W out of the distance.")
        if d <= float(distance.min()) + self.tolerance:
            raise Hint(f"the vector of {pft} lies closest to the OPT-All vector; the question "
                       "asks for the farthest.")
        raise Hint(f"the vector of {pft} lies {d:.3f} from the OPT-All vector; another PFT's "
                   "lies farther. Average the scaled vectors over the folds (per PFT for "
                   "OPT-PFT) and take the Euclidean distance over the eleven parameters "
                   "without the lags.")


class BestLearntParameter(_MethodExercise, exercise_id="06.1"):
    """The parameter sRF predicts best against the calibrated values (NSE across sites)."""

    title = "The best-learnt parameter"
    expects = ("the name of the parameter (a string, one of lue_spie.params.PARAMETERS) that "
               "sRF predicts best against the site-calibrated values, by NSE across held-out "
               "sites")
    tolerance: ClassVar[float] = 1e-6

    def scores(self, results: Any, reference: str) -> Any:
        from lue_spie.data import load_dataset
        from lue_spie.extrapolate import views

        dataset = load_dataset(_results(results) / "data")
        overview = views.recovery_overview(self.predictions(results, ["sRF"]),
                                           self.calibration(results), dataset.sites,
                                           dataset.truth)
        s = overview[(overview["method"] == "sRF") & (overview["reference"] == reference)]
        return s.set_index("parameter")["NSE"]

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.params import PARAMETERS

        name = _string(answer, self.expects, "parameter")
        if name not in PARAMETERS:
            raise Hint(f"{name!r} is not a parameter name; use one of the names of "
                       "lue_spie.params.PARAMETERS (the column `parameter` of `overview`).")
        nse = self.scores(results, "calibrated")
        if name not in nse.index or not math.isfinite(nse[name]):
            raise Hint(f"{name} has no NSE for sRF in this run (it is free at too few "
                       "held-out sites); compare the parameters that have one.")
        valid = nse.dropna()
        if nse[name] >= float(valid.max()) - self.tolerance:
            return self.right(f"sRF predicts {name} with an NSE of {nse[name]:.2f} across "
                              "held-out sites, the best of the 13 parameters.")
        truth = self.scores(results, "truth").dropna()
        if len(truth) and name in truth.index and truth[name] >= truth.max() - self.tolerance:
            raise Hint(f"{name} is the one sRF predicts best against the true values; the "
                       "question asks about the site-calibrated values, the targets sRF was "
                       "trained on (reference 'calibrated').")
        if nse[name] <= float(valid.min()) + self.tolerance:
            raise Hint(f"{name} is the parameter sRF predicts worst; sort descending.")
        raise Hint(f"sRF predicts {name} with an NSE of {nse[name]:.2f}; another parameter has "
                   "a higher one. Take the rows of `overview` with method 'sRF' and reference "
                   "'calibrated' and the largest `NSE`.")


class CloseParametersPoorGPP(_MethodExercise, exercise_id="06.4"):
    """Among the 5 sites with sRF vectors closest to the calibrated ones, the largest NSE loss."""

    title = "Good parameters, poor GPP"
    expects = ("the id (a string, as in the column `site`) of the held-out site that loses "
               "the most daily NSE against site calibration among the five whose sRF vectors lie "
               "closest to their calibrated vectors")
    n_closest: ClassVar[int] = 5  # given in the question

    def table(self, results: Any) -> Any:
        from lue_spie.extrapolate import views

        predictions = self.predictions(results, ["sRF"])
        calibration = self.calibration(results)
        sites = self.split_sites(results)
        pred = views.scaled_parameters(predictions, sites).set_index("site")
        cal = views.scaled_parameters(calibration, sites).set_index("site")
        distance = (pred - cal.reindex(pred.index)).abs().mean(axis=1)
        nse = views.heldout_nse(predictions, calibration).pivot(index="site", columns="method",
                                                                values="nse")
        loss = nse[views.SITE_CALIBRATION] - nse["sRF"]
        return distance.to_frame("distance").assign(loss=loss.reindex(distance.index))

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        site = _string(answer, self.expects, "site")
        t = self.table(results)
        if site not in t.index:
            raise Hint(f"there is no held-out site {site!r} of sRF in this run.")
        closest = t.dropna(subset=["distance"]).nsmallest(self.n_closest, "distance")
        if site not in closest.index:
            raise Hint(f"the sRF vector of {site} is not among the {self.n_closest} closest "
                       f"to their calibrated vectors (its mean scaled difference is "
                       f"{t.at[site, 'distance']:.3f}). Take the mean absolute difference "
                       "over the free parameters in the scaled space, then the "
                       f"{self.n_closest} smallest.")
        loss = float(t.at[site, "loss"])
        if loss >= float(closest["loss"].max()) - 1e-9:
            return self.right(f"{site}: its sRF vector differs from the calibrated one by "
                              f"{t.at[site, 'distance']:.3f} of the ranges on average, yet "
                              f"it loses {loss:.2f} of daily NSE.")
        side = "below" if loss >= 0 else "above"
        raise Hint(f"the daily NSE of sRF at {site} is {abs(loss):.2f} {side} site "
                   f"calibration's; another of the {self.n_closest} closest sites loses more.")


class AcclimationMemory(Exercise, exercise_id="07.1"):
    """The weight alpha of the newest day and the e-folding time of the running mean."""

    title = "The memory of acclimation"
    expects = ("a pair (alpha, n): the weight of the newest day in the running mean [d-1] "
               "and the days after which a step has closed all but 1/e of the gap")
    window_days: ClassVar[float] = 15.0  # given in the question (Mengoli et al. 2022)
    rel_tolerance: ClassVar[float] = 0.005  # three significant digits

    def _expected(self) -> tuple[float, float]:
        from lue_spie.methods.pmodel import PModelSettings

        alpha = PModelSettings(window_days=self.window_days).alpha
        # After n days the gap left by a step is (1 - alpha)^n; it is 1/e at:
        return alpha, -1.0 / math.log1p(-alpha)

    def _close(self, x: float, y: float) -> bool:
        return abs(x - y) <= self.rel_tolerance * abs(y)

    def judge(self, answer: Any) -> Feedback:
        alpha, n = _numbers(answer, 2, self.expects)
        e_alpha, e_n = self._expected()
        if self._close(alpha, e_alpha) and self._close(n, e_n):
            return self.right(f"alpha = {alpha:.4f} d-1; after {n:.1f} days (1 - alpha)^n = "
                              f"{(1 - e_alpha) ** n:.3f}, about 1/e.")
        if alpha > 1 and 0 < n <= 1:
            raise Hint("the order: give alpha first, then the number of days.")
        problems = []
        if not self._close(alpha, e_alpha):
            if not 0 < alpha <= 1:
                problems.append(f"alpha = {alpha:g} cannot be the weight of a day in a running "
                                "mean: it lies between 0 and 1")
            else:
                problems.append(f"alpha = {alpha:.4g} is not the weight of the newest day for "
                                f"a window of {self.window_days:g} days (see the equation of "
                                "R_t in the chapter)")
        if not self._close(n, e_n):
            if self._close(n, self.window_days):
                problems.append("the e-folding time is not the window itself: solve "
                                "(1 - alpha)^n = 1/e for n")
            elif self._close(n, math.log(2.0) * e_n):
                problems.append("that is the half-life (half the gap closed); the question "
                                "asks for all but 1/e of it")
            elif n <= 0:
                problems.append("the number of days is positive")
            else:
                left = (1.0 - e_alpha) ** n
                problems.append(f"after {n:.4g} days the gap left is (1 - alpha)^n = "
                                f"{left:.3f} of the step, not 1/e = {math.exp(-1):.3f}")
        raise Hint("; ".join(problems) + ".")


class ColdDays(Exercise, exercise_id="07.3"):
    """The P-model's GPP over the observed GPP, summed over the good days below 0 degC."""

    title = "Cold days"
    expects = ("the ratio (one number) of the P-model's GPP to the observed GPP, both summed "
               "over the good days below 0 degC")
    context = ("results",)
    optional = ("years",)
    freezing: ClassVar[float] = 0.0  # degC, given in the question
    rel_tolerance: ClassVar[float] = 0.01

    def ratios(self, results: Any, years: Any = None) -> dict[str, float]:
        """The ratio from the chapter's bins (weighted by days) and from the days themselves,
        and two slips: bin means not weighted by days, and the bin across 0 degC included."""
        from lue_spie.data import load_dataset
        from lue_spie.extrapolate import views
        from lue_spie.store import read_parquet

        root = _results(results)
        dataset = load_dataset(root / "data")
        gpp = {"P-model": read_parquet(root / "extrapolation" / "P-model" / "gpp.parquet")}
        binned = views.gpp_by_temperature(dataset, gpp, years=years)
        # One bin from far below to freezing: the good days below 0 degC, outside the
        # chapter's coldest bin too.
        days = views.gpp_by_temperature(dataset, gpp, years=years,
                                        bins=(-100.0, self.freezing))

        def weighted(t: Any) -> float:
            return float((t["P-model"] * t["days"]).sum() / (t["GPP_obs"] * t["days"]).sum())

        cold = binned[binned["T"] < self.freezing]
        across = binned[binned["T"] - self.freezing < 1.0 + 1e-9]
        out = {"binned": weighted(cold), "unweighted": float(cold["P-model"].mean()
                                                             / cold["GPP_obs"].mean()),
               "across": weighted(across)}
        if len(days):
            out["days"] = weighted(days)
        return out

    def _close(self, x: float, y: float) -> bool:
        return math.isfinite(y) and abs(x - y) <= self.rel_tolerance * abs(y)

    def judge(self, answer: Any, *, results: Any, years: Any = None) -> Feedback:
        x = _number(answer, self.expects)
        r = self.ratios(results, years)
        if self._close(x, r["binned"]) or self._close(x, r.get("days", math.nan)):
            more = "more" if x > 1 else "less"
            return self.right(f"on the good days below 0 degC the P-model simulates {x:.2f} "
                              f"times the observed GPP: {more} than the sites photosynthesise.")
        if x > 0 and self._close(1.0 / x, r["binned"]):
            raise Hint("that is the observed GPP over the P-model's; the question asks for "
                       "the P-model's over the observed.")
        if self._close(x, r["unweighted"]):
            raise Hint("weight each bin by its number of days (the column `days`): the ratio "
                       "of the sums over the days, not of the bin means.")
        if self._close(x, r["across"]):
            raise Hint("the bin centred at 1 degC lies above freezing; take the bins below "
                       "0 degC only.")
        if x <= 0:
            raise Hint("both sums are of GPP over many days, positive numbers; so is their "
                       "ratio.")
        direction = "high" if x > r["binned"] else "low"
        raise Hint(f"{x:.3g} is too {direction}. Multiply the mean GPP of each bin below "
                   "0 degC by its `days`, sum, and divide the P-model's sum by the observed "
                   "one.")


# ------------------------------------------------------------------------ chapter 8: SPIE
class SPIEMargin(_MethodExercise, exercise_id="08.1"):
    """SPIE's median held-out daily NSE minus the best median of the other methods."""

    title = "SPIE's margin"
    expects = ("SPIE's median held-out daily NSE minus the largest median held-out daily NSE "
               "among the other extrapolation methods of the results folder (one number, "
               "positive when SPIE leads)")
    tolerance: ClassVar[float] = 0.005

    def medians(self, results: Any) -> tuple[Any, Any]:
        """Median and mean held-out daily NSE per method, site calibration included."""
        from lue_spie.extrapolate import views

        out = self.out(results)
        methods = views.available_methods(out)
        if "SPIE" not in methods:
            raise Uncheckable("SPIE has no results on the current split in this results "
                              "folder; run the chapter from the top first.")
        nse = views.heldout_nse(views.load_predictions(out, methods),
                                self.calibration(results)).dropna(subset=["nse"])
        g = nse.groupby("method")["nse"]
        return g.median(), g.mean()

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.extrapolate.views import SITE_CALIBRATION

        x = _number(answer, self.expects)
        median, mean = self.medians(results)
        others = median.drop(index=["SPIE", SITE_CALIBRATION], errors="ignore")
        if others.empty:
            raise Uncheckable("SPIE is the only extrapolation method in this results folder: "
                              "there is nothing to compare it with yet (run the method "
                              "chapters 4-7 first).")
        expected = float(median["SPIE"] - others.max())
        if abs(x - expected) <= self.tolerance:
            lead = "leads" if x > 0 else "trails" if x < 0 else "ties with"
            return self.right(f"a margin of {x:+.3f}: SPIE {lead} the best of the other "
                              f"{len(others)} methods at the typical held-out site.")
        if abs(x + expected) <= self.tolerance:
            raise Hint("the sign is wrong: subtract the best other method's median from "
                       "SPIE's.")
        if SITE_CALIBRATION in median.index and abs(
                x - float(median["SPIE"] - median[SITE_CALIBRATION])) <= self.tolerance:
            raise Hint("site calibration is the in-sample reference, not an extrapolation "
                       "method: leave it out of the comparison.")
        other_means = mean.drop(index=["SPIE", SITE_CALIBRATION], errors="ignore")
        if abs(x - float(mean["SPIE"] - other_means.max())) <= self.tolerance:
            raise Hint("that uses the mean NSE; the question asks for medians, which a few "
                       "very poor sites do not drag down.")
        if abs(x - float(median["SPIE"])) <= self.tolerance:
            raise Hint("that is SPIE's own median; the question asks for its difference to "
                       "the best other method.")
        if any(abs(x - float(median["SPIE"] - v)) <= self.tolerance for v in others):
            raise Hint("that is the difference to one of the other methods, but not to the "
                       "one with the largest median.")
        raise Hint(f"{x:.3f} is off. Take the column `median` of the NSE summary, drop SPIE "
                   "and the site-calibration row, and subtract the largest remaining value "
                   "from SPIE's.")


class CloserThanCalibration(_MethodExercise, exercise_id="08.2"):
    """The parameters SPIE predicts closer to the truth than site calibration does."""

    title = "Closer to the truth than calibration"
    expects = ("a list of parameter names (strings of lue_spie.params.PARAMETERS): those for "
               "which SPIE's held-out predictions lie closer to the true values than the "
               "site-calibrated values do, by median |error| / range")
    tolerance: ClassVar[float] = 1e-9

    def distances(self, results: Any) -> Any:
        """Per parameter: median |error| / range against the truth, of SPIE and of site
        calibration (columns ``SPIE``, ``site calibration``)."""
        from lue_spie.data import load_dataset
        from lue_spie.extrapolate import views

        dataset = load_dataset(_results(results) / "data")
        if dataset.truth is None:
            raise Uncheckable("real data has no true parameters: this exercise needs the "
                              "virtual FLUXNET.")
        overview = views.recovery_overview(self.predictions(results, ["SPIE"]),
                                           self.calibration(results), dataset.sites,
                                           dataset.truth)
        truth = overview[overview["reference"] == "truth"]
        return truth.pivot(index="parameter", columns="method",
                           values="median |error| / range")

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.extrapolate.views import SITE_CALIBRATION
        from lue_spie.params import PARAMETERS

        names = _strings(answer, self.expects)
        unknown = sorted(names - set(PARAMETERS))
        if unknown:
            raise Hint(f"{unknown} are not parameter names; use the names of "
                       "lue_spie.params.PARAMETERS (the column `parameter` of `overview`).")
        d = self.distances(results).dropna(subset=["SPIE", SITE_CALIBRATION])
        diff = d["SPIE"] - d[SITE_CALIBRATION]
        closer = set(diff.index[diff < -self.tolerance])
        ties = set(diff.index[diff.abs() <= self.tolerance])
        unscored = sorted(names - set(d.index))
        if unscored:
            raise Hint(f"{unscored} have no score in this run (fixed by the lag mask at the "
                       "held-out sites, or too few sites); leave them out.")
        if closer <= names <= closer | ties:
            return self.right(f"SPIE is closer to the truth than site calibration for "
                              f"{len(names)} of the {len(d)} scored parameters.")
        farther = set(diff.index[diff > self.tolerance])
        if names and names <= farther:
            raise Hint("those are the parameters where site calibration is closer; the "
                       "question asks for those where SPIE is.")
        missing, extra = closer - names, names - closer - ties
        parts = []
        if extra:
            parts.append(f"{sorted(extra)} {'is' if len(extra) == 1 else 'are'} not closer "
                         "under SPIE")
        if missing:
            parts.append(f"{len(missing)} parameter(s) where SPIE is closer "
                         f"{'is' if len(missing) == 1 else 'are'} missing")
        raise Hint("; ".join(parts) + ". Compare the rows 'SPIE' and 'site calibration' of "
                   "the truth reference in `overview`, column `median |error| / range`.")


# ------------------------------------------------------------------ chapter 9: assessment
class MostPositiveSites(Exercise, exercise_id="09.1"):
    """The extrapolation method with a positive daily NSE at the most sites."""

    title = "Reading the heat map"
    expects = ("the name (a string such as 'PFTmean') of the extrapolation method with a "
               "positive daily NSE at the most sites")
    context = ("results",)

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.store import read_parquet

        name = _string(answer, self.expects, "method")
        scores = read_parquet(_results(results) / "assessment" / "site_scores.parquet",
                              columns=["method", "site", "scale", "NSE"])
        daily = scores[scores["scale"] == "daily"]
        counts = (daily["NSE"] > 0).groupby(daily["method"]).sum()
        extrapolation = counts.drop("site-calib", errors="ignore")
        if name not in counts.index:
            raise Hint(f"there is no method {name!r} in this run; use a name of the `method` "
                       "column of the headline table.")
        if name == "site-calib" and len(extrapolation):
            raise Hint("site-calib is the reference, fitted to each site's own record: leave "
                       "it out and compare the extrapolation methods.")
        if name == "site-calib":
            return self.right("no extrapolation method has been run yet, so site-calib "
                              f"({counts[name]} sites) is the only row.")
        n = int(counts[name])
        if n >= int(extrapolation.max()):
            ties = int((extrapolation == n).sum())
            return self.right(f"{name} has a positive daily NSE at {n} sites"
                              + (", more than any other extrapolation method." if ties == 1
                                 else f", as many as {ties - 1} other method(s)."))
        raise Hint(f"{name} has a positive daily NSE at {n} sites, and another extrapolation "
                   "method at more. Count the sites with NSE > 0 at the daily scale per "
                   "method (the column n_positive_NSE of the headline table).")


# ---------------------------------------------------- chapter 10: parameters, equifinality
class BoundParameter(Exercise, exercise_id="10.1"):
    """The parameter whose calibrated values lie on a bound at the largest share of sites."""

    title = "Bound hits"
    expects = ("the name (a string such as 'Topt') of the parameter whose calibrated values "
               "lie on a bound at the largest share of the sites where it is free")
    context = ("results",)
    tolerance: ClassVar[float] = 1e-9  # shares are ratios of counts: ties are exact

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.assess.parameters import edge_shares
        from lue_spie.params import PARAMETERS
        from lue_spie.store import read_parquet

        name = _string(answer, self.expects, "parameter")
        if name not in PARAMETERS:
            raise Hint(f"{name!r} is not a parameter name; use one of lue_spie.params."
                       "PARAMETERS (e.g. 'eps_max').")
        table = read_parquet(_results(results) / "calibration" / "calibration.parquet")
        ok = table[table["status"] == "ok"]
        shares = edge_shares(ok[["site", *PARAMETERS]].assign(method="site-calib"),
                             ok.set_index("site")["koeppen"]).set_index("parameter")["share"]
        share = shares[name]
        if not math.isfinite(share):
            raise Hint(f"{name} is fixed at 0 at every calibrated site (the lag rule), so it "
                       "is never free to hit a bound.")
        if share >= shares.max() - self.tolerance:
            return self.right(f"{name} lies on a bound at {share:.0%} of the sites where it is "
                              "free, the largest share of the 13 parameters.")
        raise Hint(f"{name} lies on a bound at {share:.0%} of the sites where it is free; "
                   "another parameter does so more often. Count, per parameter, the sites "
                   "within 1 % of the range from a bound, over the sites where it is free "
                   "(`edge_shares`).")


# ---------------------------------------------------------- chapter 11: feature importance
class _ImportanceExercise(Exercise):
    """Checkers that read the tables of the importance chapter (``RESULTS/importance``)."""

    context = ("results",)

    def table(self, results: Any, name: str) -> Any:
        from lue_spie.importance.step import IMPORTANCE_DIR
        from lue_spie.store import read_parquet

        path = _results(results) / IMPORTANCE_DIR / f"{name}.parquet"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no importance table; run the chapter's analysis "
                                    "cell (or `lue-spie importance --results RESULTS`) first")
        return read_parquet(path)

    @staticmethod
    def text(answer: Any, expects: str) -> str:
        return _string(answer, expects, advice="Take the name from the table (a string), "
                       "not the whole row or a number.")


class TopFeatureClass(_ImportanceExercise, exercise_id="11.1"):
    """The feature class with the largest mean normalised importance over all parameters."""

    title = "The most important class"
    expects = "the name of a feature class (a string, as in the column `feature_class`)"

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.data.features import FEATURE_NAMES

        given = self.text(answer, self.expects)
        table = self.table(results, "importance_by_class")
        overall = table[table["parameter"] == "all"].set_index("feature_class")
        names = {c.lower(): c for c in overall.index}
        if given.lower() not in names:
            if given in FEATURE_NAMES:
                raise Hint(f"{given!r} is a single feature; the question asks for the class "
                           "of features that matters most (Figure 8 groups the features).")
            raise Hint(f"{given!r} is not a feature class of this run; take a value of the "
                       "column `feature_class`.")
        cls = names[given.lower()]
        mean = overall["mean"]
        if mean[cls] >= mean.max() - 1e-12:
            return self.right(f"{cls} has the largest mean normalised importance over all "
                              f"parameters ({mean[cls]:.2f}, {int(overall.loc[cls, 'n_features'])}"
                              " features).")
        if overall["sum"][cls] >= overall["sum"].max() - 1e-12:
            raise Hint(f"{cls} has the largest *sum* over its features, but it also has many "
                       "features; Figure 8 ranks the classes by the mean over their features.")
        if overall["max"][cls] >= overall["max"].max() - 1e-12:
            raise Hint(f"{cls} holds the single most important feature, but Figure 8 ranks "
                       "the classes by the mean over their features.")
        raise Hint(f"the mean importance of {cls} ({mean[cls]:.2f}) is not the largest: read "
                   "the left panel of Figure 8, or sort the rows of the class table whose "
                   "parameter is 'all' by the column `mean`.")


class TopShapFeature(_ImportanceExercise, exercise_id="11.2"):
    """The feature that SHAP ranks first for Topt (fold mean of the normalised values)."""

    title = "What drives T_opt?"
    expects = "the name of a feature (a string, as in the column `feature`)"
    parameter: ClassVar[str] = "Topt"
    method: ClassVar[str] = "SHAP"

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.data.features import FEATURE_CLASSES
        from lue_spie.params import PARAMETERS

        given = self.text(answer, self.expects)
        table = self.table(results, "importance")
        sub = table[table["parameter"] == self.parameter].set_index("feature")
        if given not in sub.index:
            if given in PARAMETERS:
                raise Hint(f"{given!r} is a parameter; the question asks which input feature "
                           f"of the network matters most for {self.parameter}.")
            if given in FEATURE_CLASSES:
                raise Hint(f"{given!r} is a class of features; give one feature (a value of "
                           "the column `feature`).")
            raise Hint(f"{given!r} is not an input of the networks; take a value of the column "
                       "`feature` (names are case-sensitive).")
        values = sub[self.method].astype(float)
        if values[given] >= values.max() - 1e-12:
            return self.right(f"{self.method} ranks {given} first for {self.parameter} "
                              f"(normalised mean |SHAP| {values[given]:.2f} over the folds).")
        for other in ("combined", "LRP", "PD"):
            if other in sub.columns and sub[other].astype(float).idxmax() == given:
                raise Hint(f"{given} is the first feature of the column {other!r}; the "
                           f"question asks about {self.method}: sort by that column.")
        overall = table[table["parameter"] == "all"]
        if len(overall) and overall.set_index("feature")["combined"].idxmax() == given:
            raise Hint(f"{given} is the most important feature over all parameters; select "
                       f"the rows of {self.parameter} first.")
        rank = int((values > values[given] + 1e-12).sum()) + 1
        raise Hint(f"{self.method} ranks {given} number {rank} for {self.parameter}; look for "
                   "the first.")


def describe(ids: Iterable[str] | None = None) -> Mapping[str, Mapping[str, Any]]:
    """Id -> title, expected answer and context names of each (or the given) checker."""
    return {i: {"title": REGISTRY[i].title, "expects": REGISTRY[i].expects,
                "context": list(REGISTRY[i].context), "optional": list(REGISTRY[i].optional)}
            for i in (ids if ids is not None else exercise_ids())}

"""Answers that check themselves: one checker per exercise with a checkable answer.

A student writes the answer of an exercise into a variable and calls

    from lue_spie import exercises
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

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        head = "Right" if self.ok else "Not yet"
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
    if not verdict.ok:
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
        rho = _number(answer, self.expects)
        if not -1.0 <= rho <= 1.0:
            raise Hint(f"{rho:.3g} cannot be a correlation: it lies between -1 and 1.")
        site_day, site_table = self.tables(results, sites, years)
        table = site_table.set_index("site")
        table = table.assign(W=site_day.groupby("site")["W"].mean()).dropna(subset=["AI1", "W"])
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

        if hasattr(answer, "item") and getattr(answer, "ndim", 1) == 0:
            answer = answer.item()
        if not isinstance(answer, str):
            raise Hint(f"expected {self.expects}; got {type(answer).__name__}. Take the "
                       "`site` value of the row, not the whole row.")
        site = answer.strip()
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


# ------------------------------------------------------------------ chapter 9: assessment
class MostPositiveSites(Exercise, exercise_id="09.1"):
    """The extrapolation method with a positive daily NSE at the most sites."""

    title = "Reading the heat map"
    expects = ("the name (a string such as 'PFTmean') of the extrapolation method with a "
               "positive daily NSE at the most sites")
    context = ("results",)

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.store import read_parquet

        if hasattr(answer, "item") and getattr(answer, "ndim", 1) == 0:
            answer = answer.item()
        if not isinstance(answer, str):
            raise Hint(f"expected {self.expects}; got {type(answer).__name__}. Take the "
                       "`method` value of the row, not the whole row.")
        name = answer.strip()
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
        from lue_spie.assess_params import edge_shares
        from lue_spie.params import PARAMETERS
        from lue_spie.store import read_parquet

        if hasattr(answer, "item") and getattr(answer, "ndim", 1) == 0:
            answer = answer.item()
        if not isinstance(answer, str):
            raise Hint(f"expected {self.expects}; got {type(answer).__name__}. Take the "
                       "`parameter` value of the row, not the whole row.")
        name = answer.strip()
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
        from lue_spie.importance import IMPORTANCE_DIR
        from lue_spie.store import read_parquet

        path = _results(results) / IMPORTANCE_DIR / f"{name}.parquet"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no importance table; run the chapter's analysis "
                                    "cell (or `lue-spie importance --results RESULTS`) first")
        return read_parquet(path)

    @staticmethod
    def text(answer: Any, expects: str) -> str:
        if hasattr(answer, "item") and getattr(answer, "ndim", 1) == 0:
            answer = answer.item()
        if not isinstance(answer, str):
            raise Hint(f"expected {expects}; got {type(answer).__name__}. Take the name "
                       "from the table (a string), not the whole row or a number.")
        return answer.strip()


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

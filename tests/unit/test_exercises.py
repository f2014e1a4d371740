"""The self-checking exercises (lue_spie.teaching.exercises).

Unit tests run every checker on a small virtual FLUXNET written here: the right answer,
computed in the test the way the chapter's solution computes it, passes, and its confirmation
does not state it (the built book prints that confirmation under a folded solution); wrong
answers fail, and their hints do not state the right answer either. The integration test
does the same with the teacher's own solutions: it executes the student copies of the
ci-profile book's chapters with the teacher's answer cells pasted in, records every answer
the check cells receive, then runs each checker on it and on wrong variants of it.
"""

from __future__ import annotations

import ast
import calendar
import math
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lue_spie.data import QC_COLUMNS, load_dataset, virtual
from lue_spie.layout import Layout
from lue_spie.teaching import convention, copies, course, exercises
from lue_spie.teaching.exercises import answers

SEED = 42


# ------------------------------------------------------------------ wrong answers per checker
# For each checker: wrong variants of the right answer, each with the strings its message must
# not contain (renderings of the right answer the student did not give).
def _fmt(x: float) -> set[str]:
    """How a message could print ``x`` (at least three significant digits)."""
    out = {f"{x:.2f}", f"{x:.3f}"}
    if abs(x) >= 10:
        out.add(f"{x:.1f}")
    if abs(x) >= 1000:
        out.add(f"{x:.0f}")
    return out


def _wrong_01_1(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    lo, hi = sorted(a)
    slip = 6.0 * math.log(2.0)
    forbid = _fmt(lo) | _fmt(hi)
    return [((lo - 1.0, hi + 1.0), forbid), ((lo + 1.0, hi - 1.0), forbid),
            ((lo + 2.0, hi + 2.0), forbid), ((20.0 - slip, 20.0 + slip), forbid),
            ((lo,), forbid), ("12 and 28", forbid)]


def _wrong_01_2(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    forbid = _fmt(a) | {f"{a / 1000:.3f}"}
    return [(a * 1.1, forbid), (a * 0.8, forbid), (a / 1000.0, forbid), (-a, forbid),
            (str(round(a)), set())]  # echoing what the student gave is no leak


def _wrong_01_3(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    fall, rise = a
    names = {m: calendar.month_name[m] for m in range(1, 13)}

    def forbid(given: tuple[int, int]) -> set[str]:
        return {names[m] for m in (fall, rise) if m not in given}

    shifted = ((fall + 5) % 12 + 1, rise)
    return [((rise, fall), forbid((rise, fall))), (shifted, forbid(shifted)),
            ((fall, (rise + 5) % 12 + 1), forbid((fall, (rise + 5) % 12 + 1))),
            ((fall,), set()), ((13, rise), forbid((13, rise)))]


def _site_table(ctx: dict) -> pd.DataFrame:
    return load_dataset(Path(ctx["results"]) / "data").sites


def _wrong_02_1(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    right = set(a)
    others = sorted(set(_site_table(ctx)["PFT"]) - right)
    out: list[tuple[Any, set[str]]] = [({"XYZ"} | right, set())]
    if right:
        dropped = sorted(right)[0]
        out.append((right - {dropped}, {f"'{dropped}'", f" {dropped}"}))
        out.append(([], {f"'{p}'" for p in right}))
    if others:
        out.append((right | {others[0]}, set()))
    return out


def _wrong_02_2(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    other = next(c for c in QC_COLUMNS if c != a)
    return [(other, {a}), ("GPP", {a}), (3, {a}), ([a], set())]


def _wrong_02_3(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    ds = load_dataset(Path(ctx["results"]) / "data")
    t = ds.sites.set_index("site").assign(W=ds.site_day.groupby("site")["W"].mean())
    pearson = float(t["AI1"].corr(t["W"]))
    forbid = _fmt(a)
    out = [(-a, forbid), (a - 0.2 if a > -0.8 else a + 0.2, forbid), (1.5, forbid),
           ("high", forbid)]
    if abs(pearson - a) > 0.03:
        out.append((pearson, forbid))
    return out


def _wrong_03_1(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    table = pd.read_parquet(Path(ctx["results"]) / "calibration" / "calibration.parquet")
    ok = table[table["status"] == "ok"].sort_values("nse")
    best, middle = ok["site"].iloc[-1], ok["site"].iloc[len(ok) // 2]
    return [(best, {a}), (middle, {a}), ("XX-999", {a}), (ok.iloc[[0]], {a}), (3.0, {a})]


def _wrong_09_1(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    scores = pd.read_parquet(Path(ctx["results"]) / "assessment" / "site_scores.parquet")
    daily = scores[scores["scale"] == "daily"]
    counts = (daily["NSE"] > 0).groupby(daily["method"]).sum().drop("site-calib")
    always = [("NoSuchMethod", {a}), (3, {a}), (pd.Series({"method": a}), {a})]
    if a == "site-calib":  # no extrapolation method run yet: the reference is the answer
        return always
    worse = [m for m in counts.index if counts[m] < counts[a]]
    return [("site-calib", {a}), *always, *[(m, {a}) for m in worse[:3]]]


def _wrong_10_1(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    return [("alpha_T", {a}), ("Tmax", {a}), (0.5, {a}), (pd.Series({"parameter": a}), {a}),
            *[(p, {a}) for p in ("eps_max", "Cm") if p != a]]


def _count_leaks(n: int) -> set[str]:
    """How a message could state a count ``n``."""
    return {f"{n} site", f"{n} held-out", f"{n} vector", f"{n} different", f"at {n} "}


def _wrong_04_1(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    forbid = _count_leaks(a)
    out = [(a + 1, forbid), (a + 3, forbid), (-1, forbid), (a + 0.5, forbid), ("four", forbid),
           ([a], forbid)]
    return out + ([(a - 1, forbid)] if a > 0 else [])


def _wrong_04_2(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    from lue_spie.extrapolate import views

    out = Path(ctx["results"]) / "extrapolation"
    donors = views.sitesim_donors(views.load_predictions(out, ["Sitesim"])).dropna(subset=["D"])
    donors = donors.sort_values("D")
    target = donors["site"].iloc[0]
    others = [d for d in donors["donor"].iloc[::-1] if d != a][:2]
    return [(target, {a}), *[(d, {a}) for d in others], ("XX-999", {a}), (3, {a}),
            (donors.iloc[0], {a})]


def _wrong_04_3(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    forbid = _fmt(a) | {f"{a:+.3f}"}
    out = [(a + 0.1, forbid), (a - 0.05, forbid), (str(round(a, 3)), set()), (math.nan, forbid)]
    return out + ([(-a, forbid)] if abs(a) > 0.01 else [])


def _wrong_05_1(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    from lue_spie.extrapolate import views

    p = views.load_predictions(Path(ctx["results"]) / "extrapolation", ["OPT-All"])
    forbid = _count_leaks(a)
    out = [(1, forbid), (a + 1, forbid), (0, forbid), ("ten", forbid), (2.5, forbid)]
    return out + ([(len(p), forbid)] if len(p) != a else [])


def _wrong_05_2(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    checker = exercises.get("05.2")
    distance = checker.distances(ctx["results"])
    wrong = distance[distance < distance.max() - 2 * checker.tolerance].sort_values()
    picks = list(dict.fromkeys([*wrong.index[:1], *wrong.index[-1:]]))
    return [*[(g, {a}) for g in picks], ("XYZ", {a}), (3, {a}), (pd.Series({"group": a}), {a})]


def _wrong_06_1(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    nse = exercises.get("06.1").scores(ctx["results"], "calibrated").dropna().sort_values()
    lower = [p for p in nse.index if nse[p] < nse.max() - 1e-3]
    picks = list(dict.fromkeys([*lower[:1], *lower[len(lower) // 2:][:1]]))
    return [*[(p, {a}) for p in picks], ("Tmax", {a}), (0.5, {a}),
            (pd.Series({"parameter": a}), {a})]


def _wrong_06_4(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    t = exercises.get("06.4").table(ctx["results"]).dropna(subset=["distance"])
    closest = t.nsmallest(5, "distance")
    near = closest[closest["loss"] < closest["loss"].max() - 1e-6].index[:2]
    far = t.drop(closest.index).index[-1:]
    return [*[(s, {a}) for s in [*near, *far]], ("XX-999", {a}), (1.0, {a})]


def _wrong_07_1(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    alpha, n = a
    forbid = {f"{alpha:.4f}", f"{alpha:.3g}", f"{n:.3g}", f"{n:.2f}"}
    return [((alpha, 15.0), forbid), ((alpha, n * math.log(2.0)), forbid), ((n, alpha), forbid),
            ((15.0, n), forbid), ((alpha * 1.2, n), forbid), ((alpha, n * 1.2), forbid),
            ((alpha,), forbid), ("0.07 and 14", forbid), ((-alpha, -n), forbid)]


def _wrong_07_3(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    ratios = exercises.get("07.3").ratios(ctx["results"], ctx.get("years"))
    forbid = _fmt(a) | {f"{a:.3g}"}
    out = [(1 / a, forbid), (a * 1.1, forbid), (a * 0.9, forbid), (-a, forbid),
           ("1.3", set()), ((a, a), forbid)]
    slips = [ratios[k] for k in ("unweighted", "across")
             if abs(ratios[k] - a) > 0.03 * abs(a)]
    return out + [(x, forbid) for x in slips]


def _importance_table(ctx: dict, name: str) -> pd.DataFrame:
    return pd.read_parquet(Path(ctx["results"]) / "importance" / f"{name}.parquet")


def _wrong_11_1(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    t = _importance_table(ctx, "importance_by_class")
    overall = t[t["parameter"] == "all"].set_index("feature_class")
    # A wrong class whose name contains the right one (BioClim for Clim) is echoed in its
    # message: no leak, but the substring test could not tell.
    others = [c for c in overall.index if c != a and a not in c]
    out: list[tuple[Any, set[str]]] = [(c, {a}) for c in others]
    return out + [(a.lower() + "x", {a}), ("BIO1", {a}), (3, {a}), (overall, {a})]


def _wrong_11_2(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    t = _importance_table(ctx, "importance")
    topt = t[t["parameter"] == "Topt"].sort_values("SHAP", ascending=False)
    out: list[tuple[Any, set[str]]] = [(topt["feature"].iloc[1], {a}),
                                       (topt["feature"].iloc[-1], {a})]
    for col in ("combined", "LRP", "PD"):
        top = topt.sort_values(col, ascending=False)["feature"].iloc[0]
        if top != a:
            out.append((top, {a}))
    overall = t[t["parameter"] == "all"].sort_values("combined", ascending=False)
    if overall["feature"].iloc[0] != a:
        out.append((overall["feature"].iloc[0], {a}))
    # Names that contain the right one (BIO10 for BIO1) are echoed, not leaked: left out.
    out = [(w, f) for w, f in out if a not in w]
    return out + [("Topt", {a}), ("BioClim", {a}), ("bio1x", {a}), (1.0, {a})]


def _wrong_08_1(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    forbid = _fmt(a) | {f"{a:+.3f}"}
    out = [(a + 0.1, forbid), (a - 0.05, forbid), (str(round(a, 3)), set()),
           (math.nan, forbid), ((a, a), forbid)]
    return out + ([(-a, forbid)] if abs(a) > 0.01 else [])


def _wrong_08_2(a: Any, ctx: dict) -> list[tuple[Any, set[str]]]:
    from lue_spie.extrapolate.views import SITE_CALIBRATION

    d = exercises.get("08.2").distances(ctx["results"]).dropna(
        subset=["SPIE", SITE_CALIBRATION])
    diff = d["SPIE"] - d[SITE_CALIBRATION]
    farther = sorted(diff.index[diff > 1e-6])
    right = sorted(a)

    def forbid(given: list[str]) -> set[str]:  # right names the student did not give
        return {f"'{p}'" for p in right if p not in given}

    out: list[tuple[Any, set[str]]] = [(["Tmax", *right], set()), (0.5, forbid([])),
                                       (pd.DataFrame({"parameter": right}), forbid([]))]
    if right:
        out.append((right[1:], forbid(right[1:])))
    if farther:
        out.append(([*right, farther[0]], set()))
        out.append((farther, forbid(farther)))
    return out


WRONG: dict[str, Callable[[Any, dict], list[tuple[Any, set[str]]]]] = {
    "01.1": _wrong_01_1, "01.2": _wrong_01_2, "01.3": _wrong_01_3, "02.1": _wrong_02_1,
    "02.2": _wrong_02_2, "02.3": _wrong_02_3, "03.1": _wrong_03_1,
    "04.1": _wrong_04_1, "04.2": _wrong_04_2, "04.3": _wrong_04_3, "05.1": _wrong_05_1,
    "05.2": _wrong_05_2, "06.1": _wrong_06_1, "06.4": _wrong_06_4, "07.1": _wrong_07_1,
    "07.3": _wrong_07_3, "08.1": _wrong_08_1, "08.2": _wrong_08_2, "09.1": _wrong_09_1,
    "10.1": _wrong_10_1, "11.1": _wrong_11_1,
    "11.2": _wrong_11_2,
}


# ---------------------------------------------------------- replies that state the answer
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                 "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen",
                 "sixteen", "seventeen", "eighteen", "nineteen", "twenty")


def _answer_forms(answer: Any, *, strict: bool = True) -> set[str]:
    """How a reply could state ``answer``.

    A string as it is; a whole number in digits or in words; a float without its sign,
    rounded to 1-4 decimals (and to a whole number from 10 up), to 2-4 significant digits and
    as a percentage; a list, tuple, set or array, each of its items. Any other answer (a
    boolean, a table) raises when ``strict``: such an exercise goes into ``IMPLIED_BY_RIGHT``
    with the reason; otherwise it has no forms (a wrong answer of another type echoes none).
    """
    if isinstance(answer, str):
        text = answer.strip()
        return {text} if text else set()
    if isinstance(answer, bool | np.bool_):
        if strict:
            raise TypeError(f"a boolean answer ({answer!r}) is stated by any confirmation")
        return set()
    if isinstance(answer, int | np.integer):
        n = abs(int(answer))
        return {str(n), *_NUMBER_WORDS[n:n + 1]}
    if isinstance(answer, float | np.floating):
        x = abs(float(answer))
        if not math.isfinite(x):
            return set()
        forms = {f"{x:.{d}f}" for d in range(1, 5)} | {f"{x:.{d}%}" for d in range(3)}
        forms |= {g for g in (f"{x:.{d}g}" for d in range(2, 5)) if "." in g and "e" not in g}
        if x >= 10:
            forms.add(f"{x:.0f}")
        return forms
    if isinstance(answer, list | tuple | set | frozenset | np.ndarray):
        return set().union(*(_answer_forms(a, strict=strict) for a in answer))
    if strict:
        raise TypeError(f"no forms for an answer of type {type(answer).__name__}")
    return set()


def _month_forms(answer: Any, *, strict: bool = True) -> set[str]:
    """The month names (in full and abbreviated) of a pair of months (exercise 01.3)."""
    if isinstance(answer, str) or not isinstance(answer, list | tuple | np.ndarray):
        if strict:
            raise TypeError(f"expected a pair of months, got {answer!r}")
        return set()
    out = set()
    for month in answer:
        try:
            i = answers._month(month, "a month")
        except exercises.Hint:
            continue
        out |= {calendar.month_name[i], calendar.month_abbr[i]}
    return out


#: Exercises whose answers a reply would state otherwise than as their Python value.
FORMS: dict[str, Callable[..., set[str]]] = {"01.3": _month_forms}

#: Exercises whose confirmation may state the answer, each with the reason (a boolean answer,
#: or a choice among so few options that any confirmation implies it). None at present: every
#: confirmation is tested.
IMPLIED_BY_RIGHT: dict[str, str] = {}


def _states(message: str, form: str) -> bool:
    """Whether ``form`` stands in ``message`` as a token of its own: not inside a longer name
    (BIO1 in BIO10) or number (0.35 in 10.35, 12 in 12.10); a sign before a number counts."""
    return re.search(rf"(?<![\w.]){re.escape(form)}(?!\w|\.\d)", message) is not None


def _stated(message: str, forms: set[str]) -> list[str]:
    return sorted(f for f in forms if _states(message, f))


def assert_right_and_wrong(exercise_id: str, answer: Any, context: dict,
                           wrong: Callable[[Any, dict], list[tuple[Any, set[str]]]] | None = None
                           ) -> None:
    """The right answer passes, and its confirmation states neither the answer (in any of its
    forms) nor, for a collection, how many items it has; every wrong variant of ``WRONG`` (or
    ``wrong``), and no answer at all, fails with a hint that states neither its forbidden
    strings nor the right answer (except forms the wrong answer itself holds: echoing what
    the student gave is no leak)."""
    forms_of = FORMS.get(exercise_id, _answer_forms)
    forms = forms_of(answer)
    verdict = exercises.feedback(exercise_id, answer, **context)
    assert verdict.ok, f"{exercise_id}: the right answer {answer!r} was refused: {verdict}"
    if exercise_id not in IMPLIED_BY_RIGHT:
        told = set(forms)
        if isinstance(answer, list | set | frozenset | np.ndarray) and all(
                isinstance(a, str) for a in answer):
            told |= _answer_forms(len(answer))  # how many items: a part of the answer
        leaked = _stated(verdict.message, told)
        assert not leaked, (f"{exercise_id}: the confirmation of {answer!r} states {leaked}: "
                            f"{verdict}")
    variants = (wrong or WRONG[exercise_id])(answer, context)
    for given, forbidden in [(None, set()), *variants]:
        verdict = exercises.feedback(exercise_id, given, **context)
        assert not verdict.ok, f"{exercise_id}: the wrong answer {given!r} passed: {verdict}"
        assert verdict.message.strip(), exercise_id
        echoed = forms_of(given, strict=False)
        if isinstance(given, str):
            echoed |= {f for f in forms if _states(given, f)}
        leaked = sorted(s for s in forbidden if s in verdict.message)
        leaked += _stated(verdict.message, forms - echoed)
        assert not leaked, f"{exercise_id}: the hint for {given!r} states {leaked}: {verdict}"


def test_every_checker_has_wrong_answers_to_test():
    assert set(WRONG) == set(exercises.REGISTRY)
    assert set(ANSWERS) == set(exercises.REGISTRY)  # and an expected answer
    assert set(IMPLIED_BY_RIGHT) <= set(exercises.REGISTRY)


# ---------------------------------------------------------------------------------- registry
def test_registry_entries_are_described():
    assert exercises.exercise_ids() == sorted(
        exercises.REGISTRY, key=lambda i: tuple(map(int, i.split("."))))
    for i, cls in exercises.REGISTRY.items():
        assert cls.exercise_id == i
        assert cls.title and cls.expects, i
    assert exercises.describe(["03.1"])["03.1"]["context"] == ["results"]


def test_unknown_exercise_names_the_known_ones():
    with pytest.raises(exercises.UnknownExercise, match="01.1.*03.1"):
        exercises.check("09.9", 1)
    with pytest.raises(exercises.UnknownExercise, match="as a string"):
        exercises.check(3.1, "x")  # type: ignore[arg-type]


def test_a_second_checker_for_an_id_and_a_bad_id_are_refused():
    before = dict(exercises.REGISTRY)
    with pytest.raises(ValueError, match="already has a checker"):
        class Again(exercises.Exercise, exercise_id="01.1"):
            expects = "x"
    with pytest.raises(ValueError, match="must look like"):
        class Bad(exercises.Exercise, exercise_id="1.1"):
            expects = "x"
    with pytest.raises(ValueError, match="expects"):
        class Vague(exercises.Exercise, exercise_id="98.1"):
            pass
    assert exercises.REGISTRY == before


def test_a_new_checker_registers_itself_and_check_reports():
    class Answer42(exercises.Exercise, exercise_id="99.1"):
        title = "The answer"
        expects = "a number"

        def judge(self, answer):
            if answers._number(answer, self.expects) == 42:
                return self.right("that is the answer.")
            raise exercises.Hint("think bigger.")

    try:
        assert exercises.get("99.1").title == "The answer"
        assert exercises.feedback("99.1", 42)
        verdict = exercises.feedback("99.1", 41)
        assert not verdict and verdict.message == "think bigger."
        with pytest.raises(exercises.NotYetRight) as info:
            exercises.check("99.1", 41)
        assert isinstance(info.value, AssertionError)  # nbgrader scores the test cell 0
        # In IPython only the hint shows, no traceback.
        assert info.value._render_traceback_() == ["Not yet (exercise 99.1): think bigger."]
        assert not exercises.feedback("99.1", "42")  # a string is not a number
        for empty in (None, ...):
            assert "no answer yet" in exercises.feedback("99.1", empty).message
    finally:
        exercises.REGISTRY.pop("99.1")


def test_check_prints_when_right(capsys):
    exercises.check("01.2", math.log(2.0) / 0.0004)
    assert capsys.readouterr().out.startswith("Right (exercise 01.2)")


def test_missing_or_unknown_context_is_a_mistake_of_the_check_cell():
    with pytest.raises(TypeError, match="results=results"):
        exercises.check("03.1", "VF-001")
    with pytest.raises(TypeError, match="unexpected"):
        exercises.check("01.1", (1, 2), results="x")


# ------------------------------------------------------------- checkers on a small dataset
@pytest.fixture(scope="module")
def small_results(tmp_path_factory) -> Path:
    """A results folder as the chapters write it: data, the example site, a calibration."""
    results = tmp_path_factory.mktemp("results")
    virtual.generate(24, 1, SEED, results / "data")
    virtual.generate(14, 2, SEED, results / "model" / "example", start_year=2005)
    sites = load_dataset(results / "data").sites["site"]
    rng = np.random.default_rng(SEED)
    table = pd.DataFrame({"site": sites, "status": "ok",
                          "nse": rng.uniform(0.3, 0.99, len(sites))})
    table.loc[3, "status"] = "failed"
    table.loc[3, "nse"] = -5.0  # lowest, but failed: it must not count
    (results / "calibration").mkdir()
    table.to_parquet(results / "calibration" / "calibration.parquet")
    return results


def _example_site(results: Path) -> str:
    example = load_dataset(results / "model" / "example")
    candidates = example.sites[example.sites["koeppen"] == "Dfb"]
    return str((candidates if len(candidates) else example.sites)["site"].iloc[0])


def _answer_01_1(_: None) -> tuple[Any, dict]:
    z = math.acosh(2.0)
    return (20 - 6 * z, 20 + 6 * z), {}


def test_01_1_half_maximum_temperature():
    assert exercises.feedback("01.1", [27.9, 12.1])  # rounded, any order, any sequence
    assert "cosh" in exercises.feedback("01.1", (20 - 6 * math.log(2), 20 + 6 * math.log(2))
                                        ).message
    assert "symmetric" in exercises.feedback("01.1", (10.0, 28.0)).message


def _answer_01_2(_: None) -> tuple[Any, dict]:
    return math.log(2.0) / 0.0004, {}


def test_01_2_half_vpd():
    assert exercises.feedback("01.2", 1733)  # rounded to the pascal
    assert "kPa" in exercises.feedback("01.2", math.log(2.0) / 0.4).message


def _answer_01_3(results: Path) -> tuple[Any, dict]:
    import torch

    from lue_spie import model, plots
    from lue_spie.data import to_forcing

    site = _example_site(results)
    example = load_dataset(results / "model" / "example")
    truth = example.truth.set_index("site").loc[site]
    fb = to_forcing(example.site_day, sites=[site])
    gpp = {}
    for label, vector in {"true": truth, "lag": {**truth, "alpha_T": 0.9}}.items():
        p = torch.as_tensor(plots.as_vector(vector))[None, :]
        gpp[label] = model.simulate(fb.forcing, p)["GPP"][0].numpy()
    monthly = pd.Series(gpp["lag"] - gpp["true"], index=fb.dates).groupby(fb.dates.month).mean()
    return (int(monthly.idxmin()), int(monthly.idxmax())), {"results": results, "site": site}


def test_01_3_lag_months(small_results):
    answer, context = _answer_01_3(small_results)
    names = (calendar.month_name[answer[0]], calendar.month_abbr[answer[1]].lower())
    assert exercises.feedback("01.3", names, **context)  # month names work too


def _answer_02_1(results: Path) -> tuple[Any, dict]:
    sites = load_dataset(results / "data").sites
    return set(sites.loc[sites["koeppen_main"] == "B", "PFT"]), {"results": results}


def test_02_1_arid_pfts(small_results):
    sites = load_dataset(small_results / "data").sites
    answer, ctx = _answer_02_1(small_results)
    assert answer, "the fixture should hold arid sites"
    assert exercises.feedback("02.1", sorted(answer), **ctx)
    assert exercises.feedback("02.1", pd.Series(sorted(answer) * 2), **ctx)  # duplicates ok
    assert "whole table" in exercises.feedback("02.1", sites, **ctx).message
    # The checker follows the chapter's site subset.
    subset = sites.loc[sites["koeppen_main"] != "B", "site"].tolist()
    assert exercises.feedback("02.1", set(), results=small_results, sites=subset)
    assert_right_and_wrong("02.1", set(), {"results": small_results, "sites": subset})


def _answer_02_2(results: Path) -> tuple[Any, dict]:
    site_day = load_dataset(results / "data").site_day
    return (site_day[list(QC_COLUMNS)] <= 0.8).mean().idxmax(), {"results": results}


def test_02_2_quality_flag(small_results):
    answer, ctx = _answer_02_2(small_results)
    other = next(c for c in QC_COLUMNS if c != answer)
    assert "another flag" in exercises.feedback("02.2", other, **ctx).message


def _answer_02_3(results: Path) -> tuple[Any, dict]:
    ds = load_dataset(results / "data")
    by_site = ds.sites.set_index("site").assign(W=ds.site_day.groupby("site")["W"].mean())
    return by_site["AI1"].corr(by_site["W"], method="spearman"), {"results": results}


def test_02_3_aridity_and_moisture(small_results):
    ds = load_dataset(small_results / "data")
    by_site = ds.sites.set_index("site").assign(W=ds.site_day.groupby("site")["W"].mean())
    answer, ctx = _answer_02_3(small_results)
    assert exercises.feedback("02.3", np.float64(answer), **ctx)
    pearson = by_site["AI1"].corr(by_site["W"])
    if abs(pearson - answer) > 0.03:
        assert "Pearson" in exercises.feedback("02.3", pearson, **ctx).message
    # Two sites cannot define a rank correlation: the check says so and does not fail.
    two = ds.sites["site"].tolist()[:2]
    verdict = exercises.feedback("02.3", float("nan"), results=small_results, sites=two)
    assert not verdict.ok and not verdict.checkable and "three sites" in verdict.message
    exercises.check("02.3", float("nan"), results=small_results, sites=two)  # no raise
    with pytest.raises(exercises.NotYetRight):
        exercises.check("02.3", 0.5 if answer < 0 else -0.5, **ctx)


def _answer_03_1(results: Path) -> tuple[Any, dict]:
    table = pd.read_parquet(results / "calibration" / "calibration.parquet")
    ok = table[table["status"] == "ok"]
    return ok.sort_values("nse")["site"].iloc[0], {"results": results}


def test_03_1_worst_site(small_results):
    table = pd.read_parquet(small_results / "calibration" / "calibration.parquet")
    ok = table[table["status"] == "ok"]
    answer, ctx = _answer_03_1(small_results)
    assert "failed" in exercises.feedback("03.1", table["site"].iloc[3], **ctx).message
    assert "highest" in exercises.feedback(
        "03.1", ok.sort_values("nse")["site"].iloc[-1], **ctx).message
    assert exercises.feedback("03.1", np.str_(answer), **ctx)


def _site_scores() -> pd.DataFrame:
    """Site scores of the assessment: the reference and four methods on 20 sites."""
    rng = np.random.default_rng(SEED)
    sites = [f"VF-{i:03d}" for i in range(20)]
    share = {"site-calib": 0.95, "PFTmean": 0.4, "mRF": 0.7, "Sitesim": 0.55, "P-model": 0.2}
    return pd.DataFrame([{"method": m, "site": s, "scale": scale,
                          "NSE": rng.uniform(0.05, 0.9) if rng.uniform() < p
                          else -rng.uniform(0.05, 2)}
                         for m, p in share.items() for s in sites
                         for scale in ("daily", "weekly")])


@pytest.fixture(scope="module")
def scores_results(tmp_path_factory) -> Path:
    """A results folder with the assessment's site scores (``_site_scores``) only."""
    results = tmp_path_factory.mktemp("scores")
    (results / "assessment").mkdir()
    _site_scores().to_parquet(results / "assessment" / "site_scores.parquet")
    return results


def _answer_09_1(results: Path) -> tuple[Any, dict]:
    scores = pd.read_parquet(results / "assessment" / "site_scores.parquet")
    daily = scores[scores["scale"] == "daily"]
    counts = (daily["NSE"] > 0).groupby(daily["method"]).sum().drop("site-calib")
    return counts.idxmax(), {"results": results}


def test_09_1_most_positive_sites(scores_results, tmp_path):
    answer, ctx = _answer_09_1(scores_results)
    assert "reference" in exercises.feedback("09.1", "site-calib", **ctx).message
    # Before the method chapters ran, site-calib is the only row and the only answer.
    (tmp_path / "assessment").mkdir()
    only = _site_scores().query("method == 'site-calib'")
    only.to_parquet(tmp_path / "assessment" / "site_scores.parquet")
    assert exercises.feedback("09.1", "site-calib", results=tmp_path)
    assert_right_and_wrong("09.1", "site-calib", {"results": tmp_path})


def _write_bound_table(results: Path, *, alpha_T_on_bound: bool) -> None:
    """A calibration table of 20 sites where kT lies on a bound at 6 sites of 20 and Topt at
    3; with ``alpha_T_on_bound``, alpha_T lies on its bound at each of the 5 sites where it is
    free (share 1)."""
    from lue_spie.params import LOWER, PARAMETERS, UPPER, index

    rng = np.random.default_rng(SEED)
    n = 20
    koeppen = ["Dfb", "BSk", "Cfb", "Cfa"] * (n // 4)
    values = LOWER + (UPPER - LOWER) * rng.uniform(0.1, 0.9, (n, 13))
    values[:6, index("kT")] = UPPER[index("kT")]
    values[:3, index("Topt")] = LOWER[index("Topt")]
    values[:, index("alpha_T")] = np.where([c.startswith("D") for c in koeppen],
                                           0.0 if alpha_T_on_bound else 0.5, 0.0)
    values[:, index("alpha_W")] = np.where([c.startswith("B") for c in koeppen],
                                           values[:, index("alpha_W")], 0.0)
    table = pd.DataFrame(values, columns=list(PARAMETERS))
    table.insert(0, "site", [f"VF-{i:03d}" for i in range(n)])
    table.insert(1, "koeppen", koeppen)
    table.insert(2, "status", "ok")
    (results / "calibration").mkdir(exist_ok=True)
    table.to_parquet(results / "calibration" / "calibration.parquet")


@pytest.fixture(scope="module")
def bounds_results(tmp_path_factory) -> Path:
    """A results folder with a calibration table where kT hits a bound most often."""
    results = tmp_path_factory.mktemp("bounds")
    _write_bound_table(results, alpha_T_on_bound=False)
    return results


def _answer_10_1(results: Path) -> tuple[Any, dict]:
    return "kT", {"results": results}  # set by _write_bound_table


def test_10_1_bound_parameter(bounds_results, tmp_path):
    answer, ctx = _answer_10_1(bounds_results)
    assert exercises.feedback("10.1", answer, **ctx)
    assert "not a parameter" in exercises.feedback("10.1", "Tmax", **ctx).message
    assert "another parameter" in exercises.feedback("10.1", "Topt", **ctx).message
    # alpha_T on its lower bound at every site where it is free: share 1, the largest.
    _write_bound_table(tmp_path, alpha_T_on_bound=True)
    assert exercises.feedback("10.1", "alpha_T", results=tmp_path)
    assert not exercises.feedback("10.1", "kT", results=tmp_path)


# ------------------------------------------- chapters 4-7: a small run of the methods
METHODS_4_7 = ("PFTmean", "Climmean", "PFTmed", "Climmed", "Sitesim", "OPT-All", "OPT-PFT",
               "sRF", "P-model")


@pytest.fixture(scope="module")
def method_results(tmp_path_factory) -> Path:
    """A results folder with data, a short site calibration and the methods of chapters 4-7."""
    import torch

    from lue_spie import calibrate, extrapolate
    from lue_spie.calibrate import CalibrationSettings
    from lue_spie.extrapolate import ExtrapolationSettings

    torch.set_num_threads(1)
    results = tmp_path_factory.mktemp("methods")
    virtual.generate(16, 1, SEED, results / "data")
    calibrate.run(Layout(results), CalibrationSettings(max_gen=15, device="cpu"),
                  log=lambda *_: None)
    cmaes = {"settings": {"max_gen": 4, "device": "cpu"}}
    settings = ExtrapolationSettings(
        methods=METHODS_4_7, n_folds=4, seed=SEED,
        method_params={"OPT-All": cmaes, "OPT-PFT": cmaes, "sRF": {"n_estimators": 20}})
    extrapolate.run(Layout(results), settings, progress=False, log=lambda *_: None)
    return results


def _predictions(results: Path, methods: list[str]) -> pd.DataFrame:
    from lue_spie.extrapolate import views

    return views.load_predictions(results / "extrapolation", methods)


def _answer_04_1(results: Path) -> tuple[Any, dict]:
    from lue_spie.extrapolate import views

    counts = views.fallback_counts(_predictions(results, list(METHODS_4_7[:5])))
    return int(counts.loc["PFTmean", "fallbacks"]), {"results": results}


@pytest.mark.slow
def test_04_1_fallback_count(method_results):
    from lue_spie.extrapolate import views

    counts = views.fallback_counts(_predictions(method_results, list(METHODS_4_7[:5])))
    answer, ctx = _answer_04_1(method_results)
    assert exercises.feedback("04.1", np.int64(answer), **ctx)
    assert exercises.feedback("04.1", float(answer), **ctx)
    climate = int(counts.loc["Climmean", "fallbacks"])
    if climate != answer:
        assert "climate" in exercises.feedback("04.1", climate, **ctx).message


def _answer_04_2(results: Path) -> tuple[Any, dict]:
    from lue_spie.extrapolate import views

    donors = views.sitesim_donors(_predictions(results, ["Sitesim"])).sort_values("D")
    return donors["donor"].iloc[0], {"results": results}


@pytest.mark.slow
def test_04_2_least_similar_donor(method_results):
    from lue_spie.extrapolate import views

    donors = views.sitesim_donors(_predictions(method_results, ["Sitesim"])).sort_values("D")
    worst = donors.iloc[0]
    ctx = {"results": method_results}
    assert exercises.feedback("04.2", f" {worst['donor']} ", **ctx)  # spaces do not matter
    assert "itself" in exercises.feedback("04.2", worst["site"], **ctx).message


def _answer_04_3(results: Path) -> tuple[Any, dict]:
    from lue_spie.extrapolate import views

    table = views.heldout_nse(_predictions(results, ["PFTmean", "PFTmed"]))
    median = table.groupby("method")["nse"].median()
    return float(median["PFTmed"] - median["PFTmean"]), {"results": results}


@pytest.mark.slow
def test_04_3_median_minus_mean(method_results):
    answer, ctx = _answer_04_3(method_results)
    assert exercises.feedback("04.3", round(answer, 3), **ctx)  # three decimals are enough
    if abs(answer) > 0.01:
        assert "sign" in exercises.feedback("04.3", -answer, **ctx).message


def _answer_05_1(results: Path) -> tuple[Any, dict]:
    from lue_spie.params import PARAMETERS

    p = _predictions(results, ["OPT-All"])
    core = [q for q in PARAMETERS if q not in ("alpha_T", "alpha_W")]
    return len(p[core].drop_duplicates()), {"results": results}


@pytest.mark.slow
def test_05_1_pooled_vector_count(method_results):
    p = _predictions(method_results, ["OPT-All"])
    answer, ctx = _answer_05_1(method_results)
    assert answer == 4  # one per fold: the fixture's n_folds
    assert "held-out sites" in exercises.feedback("05.1", len(p), **ctx).message


def _pft_distances(results: Path) -> pd.Series:
    """The distance of each PFT's mean OPT-PFT vector from the mean OPT-All vector (scaled,
    lags left out)."""
    from lue_spie.extrapolate import views
    from lue_spie.extrapolate.cv import read_folds
    from lue_spie.params import PARAMETERS

    p = _predictions(results, ["OPT-All", "OPT-PFT"])
    sites = read_folds(results / "extrapolation").table
    core = [q for q in PARAMETERS if q not in ("alpha_T", "alpha_W")]
    centre = views.pooled_vectors(p, "OPT-All", sites)[core].mean()
    by_pft = views.pooled_vectors(p, "OPT-PFT", sites, by="PFT").groupby("group")[core].mean()
    return ((by_pft - centre) ** 2).sum(axis=1) ** 0.5


def _answer_05_2(results: Path) -> tuple[Any, dict]:
    return _pft_distances(results).idxmax(), {"results": results}


@pytest.mark.slow
def test_05_2_farthest_pft(method_results):
    from lue_spie.extrapolate.cv import read_folds

    sites = read_folds(method_results / "extrapolation").table
    distance = _pft_distances(method_results)
    ctx = {"results": method_results}
    if len(distance) > 2:
        assert "closest" in exercises.feedback("05.2", distance.idxmin(), **ctx).message
    alone = set(sites["PFT"]) - set(distance.index)
    if alone:
        message = exercises.feedback("05.2", sorted(alone)[0], **ctx).message
        assert "fallback" in message


def _srf_nse(results: Path) -> pd.Series:
    """sRF's NSE across held-out sites per parameter, against the calibrated values."""
    from lue_spie.extrapolate import views

    ds = load_dataset(results / "data")
    calibration = pd.read_parquet(results / "calibration" / "calibration.parquet")
    overview = views.recovery_overview(_predictions(results, ["sRF"]), calibration,
                                       ds.sites, ds.truth)
    s = overview[(overview["method"] == "sRF") & (overview["reference"] == "calibrated")]
    return s.set_index("parameter")["NSE"]


def _answer_06_1(results: Path) -> tuple[Any, dict]:
    return _srf_nse(results).idxmax(), {"results": results}


@pytest.mark.slow
def test_06_1_best_learnt_parameter(method_results):
    ctx = {"results": method_results}
    worst = _srf_nse(method_results).idxmin()
    assert "worst" in exercises.feedback("06.1", worst, **ctx).message


def _answer_06_4(results: Path) -> tuple[Any, dict]:
    from lue_spie.extrapolate import views

    ds = load_dataset(results / "data")
    calibration = pd.read_parquet(results / "calibration" / "calibration.parquet")
    srf = _predictions(results, ["sRF"])
    pred = views.scaled_parameters(srf, ds.sites).set_index("site")
    cal = views.scaled_parameters(calibration, ds.sites).set_index("site")
    distance = (pred - cal.reindex(pred.index)).abs().mean(axis=1)
    nse = views.heldout_nse(srf, calibration).pivot(index="site", columns="method",
                                                    values="nse")
    loss = (nse["site calibration"] - nse["sRF"]).loc[distance.nsmallest(5).index]
    return loss.idxmax(), {"results": results}


@pytest.mark.slow
def test_06_4_close_parameters_poor_gpp(method_results):
    answer, ctx = _answer_06_4(method_results)
    checker = exercises.get("06.4")
    far = checker.table(method_results).dropna(subset=["distance"]).nlargest(1, "distance")
    assert "not among" in exercises.feedback("06.4", far.index[0], **ctx).message


def _answer_07_1(_: None) -> tuple[Any, dict]:
    alpha = 1 / 15
    return (alpha, -1 / math.log(1 - alpha)), {}


def test_07_1_acclimation_memory():
    (alpha, n), _ = _answer_07_1(None)
    answer = (alpha, n)
    assert exercises.feedback("07.1", [0.0667, 14.5])  # three significant digits
    assert exercises.feedback("07.1", np.array([0.06667, 14.49]))
    assert "half-life" in exercises.feedback("07.1", (alpha, answer[1] * math.log(2))).message
    assert "window" in exercises.feedback("07.1", (alpha, 15)).message
    assert "order" in exercises.feedback("07.1", answer[::-1]).message


def _answer_07_3(results: Path) -> tuple[Any, dict]:
    from lue_spie.extrapolate import views

    ds = load_dataset(results / "data")
    gpp = pd.read_parquet(results / "extrapolation" / "P-model" / "gpp.parquet")
    t = views.gpp_by_temperature(ds, {"P-model": gpp})
    cold = t[t["T"] < 0]
    ratio = (cold["P-model"] * cold["days"]).sum() / (cold["GPP_obs"] * cold["days"]).sum()
    return float(ratio), {"results": results}


@pytest.mark.slow
def test_07_3_cold_days(method_results):
    ds = load_dataset(method_results / "data")
    gpp = pd.read_parquet(method_results / "extrapolation" / "P-model" / "gpp.parquet")
    answer, ctx = _answer_07_3(method_results)
    assert "observed GPP over" in exercises.feedback("07.3", 1 / answer, **ctx).message
    # Computed from the days themselves (also those below the coldest bin) it passes too.
    batch = ds.forcing_batch(sites=sorted(gpp["site"].unique()))
    good = batch.good.numpy() & (batch.forcing["T"].numpy() < 0)
    sim = (gpp.pivot(index="date", columns="site", values="GPP_sim")
           .reindex(index=batch.dates, columns=sorted(gpp["site"].unique())).to_numpy().T)
    by_day = sim[good].sum() / batch.GPP_obs.numpy()[good].sum()
    assert exercises.feedback("07.3", by_day, **ctx)
    # The checker follows the chapter's years (the fixture has one).
    year = int(ds.site_day["date"].dt.year.iloc[0])
    assert exercises.feedback("07.3", answer, years=[year], **ctx)


# ------------------------------------------------ chapter 8: SPIE beside the other methods
@pytest.fixture(scope="module")
def spie_results(method_results, tmp_path_factory) -> Path:
    """The methods' results folder with a short SPIE run on the same split added (a copy)."""
    import shutil

    import torch

    from lue_spie import extrapolate
    from lue_spie.extrapolate import ExtrapolationSettings

    torch.set_num_threads(1)
    results = tmp_path_factory.mktemp("spie") / "results"
    shutil.copytree(method_results, results)
    settings = ExtrapolationSettings(
        methods=("SPIE",), n_folds=4, seed=SEED,
        method_params={"SPIE": {"epochs": 30, "device": "cpu", "checkpoint_every": 0}})
    extrapolate.run(Layout(results), settings, progress=False, log=lambda *_: None)
    return results


def _median_nse(results: Path) -> pd.Series:
    """The median held-out daily NSE of every method of the results folder."""
    from lue_spie.extrapolate import views

    out = results / "extrapolation"
    calibration = pd.read_parquet(results / "calibration" / "calibration.parquet")
    predictions = views.load_predictions(out, views.available_methods(out))
    return views.nse_summary(views.heldout_nse(predictions, calibration))["median"]


def _answer_08_1(results: Path) -> tuple[Any, dict]:
    from lue_spie.extrapolate import views

    median = _median_nse(results)
    others = median.drop(index=["SPIE", views.SITE_CALIBRATION])
    return float(median["SPIE"] - others.max()), {"results": results}


@pytest.mark.slow
def test_08_1_spie_margin(spie_results):
    from lue_spie.extrapolate import views

    median = _median_nse(spie_results)
    answer, ctx = _answer_08_1(spie_results)
    assert exercises.feedback("08.1", round(answer, 3), **ctx)  # three decimals are enough
    if abs(median["SPIE"] - median[views.SITE_CALIBRATION] - answer) > 0.01:
        reference = median["SPIE"] - median[views.SITE_CALIBRATION]
        assert "reference" in exercises.feedback("08.1", reference, **ctx).message


@pytest.mark.slow
def test_08_1_cannot_check_without_spie(method_results):
    verdict = exercises.feedback("08.1", 0.1, results=method_results)
    assert not verdict.ok and not verdict.checkable
    assert "SPIE has no results" in verdict.message


def _spie_minus_calibration(results: Path) -> pd.Series:
    """Per parameter: SPIE's median |error| / range against the truth minus site
    calibration's."""
    from lue_spie.extrapolate import views

    ds = load_dataset(results / "data")
    calibration = pd.read_parquet(results / "calibration" / "calibration.parquet")
    predictions = views.load_predictions(results / "extrapolation", ["SPIE"])
    overview = views.recovery_overview(predictions, calibration, ds.sites, ds.truth)
    dist = overview[overview["reference"] == "truth"].pivot(
        index="parameter", columns="method", values="median |error| / range")
    return (dist["SPIE"] - dist[views.SITE_CALIBRATION]).dropna()


def _answer_08_2(results: Path) -> tuple[Any, dict]:
    diff = _spie_minus_calibration(results)
    return sorted(diff.index[diff < 0]), {"results": results}


@pytest.mark.slow
def test_08_2_closer_than_calibration(spie_results):
    diff = _spie_minus_calibration(spie_results)
    answer, ctx = _answer_08_2(spie_results)
    assert exercises.feedback("08.2", set(answer), **ctx)  # any collection of names
    assert exercises.feedback("08.2", np.array(answer, dtype=object), **ctx)
    farther = sorted(diff.index[diff > 0])
    if farther:
        message = exercises.feedback("08.2", farther, **ctx).message
        assert "site calibration is closer" in message


@pytest.fixture(scope="module")
def importance_results(tmp_path_factory) -> Path:
    """RESULTS/importance as the importance chapter writes it (the two tables the checkers
    read), with values chosen so that every kind of wrong answer occurs: the class with the
    largest mean is not the one with the largest sum nor the one with the largest maximum,
    and SHAP, LRP, PD, their average and the overall ranking each put another feature first
    for Topt."""
    from lue_spie.data.features import FEATURE_CLASSES

    results = tmp_path_factory.mktemp("importance_results")
    rng = np.random.default_rng(SEED)
    rows = []
    for p in ("Topt", "kT", "all"):
        for cls, cols in FEATURE_CLASSES.items():
            for f in cols:
                rows.append({"parameter": p, "feature": f, "feature_class": cls,
                             **{m: rng.uniform(0.0, 0.5) for m in ("SHAP", "LRP", "PD")}})
    imp = pd.DataFrame(rows)
    firsts = {"SHAP": ("Topt", "BIO5"), "LRP": ("Topt", "BIO10"), "PD": ("Topt", "AI1")}
    for m, (p, f) in firsts.items():
        imp.loc[(imp["parameter"] == p) & (imp["feature"] == f), m] = 1.0
    imp["combined"] = imp[["SHAP", "LRP", "PD"]].mean(axis=1)
    imp.loc[(imp["parameter"] == "Topt") & (imp["feature"] == "BIO12"), "combined"] = 0.9
    imp.loc[(imp["parameter"] == "all") & (imp["feature"] == "VIF1"), "combined"] = 0.95
    by_class = pd.DataFrame({
        "parameter": "all", "feature_class": list(FEATURE_CLASSES),
        "n_features": [len(c) for c in FEATURE_CLASSES.values()],
        "mean": [0.10, 0.05, 0.30, 0.40, 0.35, 0.33],
        "max": [0.90, 0.20, 0.60, 0.70, 0.50, 0.65]})
    by_class["sum"] = by_class["mean"] * by_class["n_features"]
    (results / "importance").mkdir()
    imp.to_parquet(results / "importance" / "importance.parquet")
    by_class.to_parquet(results / "importance" / "importance_by_class.parquet")
    return results


def _answer_11_1(results: Path) -> tuple[Any, dict]:
    t = pd.read_parquet(results / "importance" / "importance_by_class.parquet")
    return t.set_index("feature_class")["mean"].idxmax(), {"results": results}


def test_11_1_top_feature_class(importance_results):
    answer, ctx = _answer_11_1(importance_results)
    assert answer == "VIF"
    assert exercises.feedback("11.1", "vif", **ctx)  # any case
    assert "*sum*" in exercises.feedback("11.1", "BioClim", **ctx).message
    assert "single most important" in exercises.feedback("11.1", "PFT", **ctx).message
    assert "single feature" in exercises.feedback("11.1", "VIF1", **ctx).message


def _answer_11_2(results: Path) -> tuple[Any, dict]:
    t = pd.read_parquet(results / "importance" / "importance.parquet")
    topt = t[t["parameter"] == "Topt"]
    return topt.loc[topt["SHAP"].idxmax(), "feature"], {"results": results}


def test_11_2_top_shap_feature_of_topt(importance_results):
    answer, ctx = _answer_11_2(importance_results)
    assert answer == "BIO5"
    assert exercises.feedback("11.2", np.str_(answer), **ctx)
    assert "'LRP'" in exercises.feedback("11.2", "BIO10", **ctx).message
    assert "'combined'" in exercises.feedback("11.2", "BIO12", **ctx).message
    assert "over all parameters" in exercises.feedback("11.2", "VIF1", **ctx).message
    assert "is a parameter" in exercises.feedback("11.2", "Topt", **ctx).message


def test_a_missing_importance_table_is_named(small_results):
    with pytest.raises(FileNotFoundError, match="no importance table"):
        exercises.check("11.1", "VIF", results=small_results)


def test_a_missing_results_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        exercises.check("03.1", "VF-001", results=tmp_path / "nowhere")


# ------------------------------------------- every checker: no reply gives the answer away
#: Exercise id -> (the fixture of its results folder, or None; the expected answer and the
#: check cell's context, computed from that folder as the chapter's solution computes them).
ANSWERS: dict[str, tuple[str | None, Callable[[Any], tuple[Any, dict]]]] = {
    "01.1": (None, _answer_01_1), "01.2": (None, _answer_01_2),
    "01.3": ("small_results", _answer_01_3), "02.1": ("small_results", _answer_02_1),
    "02.2": ("small_results", _answer_02_2), "02.3": ("small_results", _answer_02_3),
    "03.1": ("small_results", _answer_03_1),
    "04.1": ("method_results", _answer_04_1), "04.2": ("method_results", _answer_04_2),
    "04.3": ("method_results", _answer_04_3), "05.1": ("method_results", _answer_05_1),
    "05.2": ("method_results", _answer_05_2), "06.1": ("method_results", _answer_06_1),
    "06.4": ("method_results", _answer_06_4), "07.1": (None, _answer_07_1),
    "07.3": ("method_results", _answer_07_3),
    "08.1": ("spie_results", _answer_08_1), "08.2": ("spie_results", _answer_08_2),
    "09.1": ("scores_results", _answer_09_1), "10.1": ("bounds_results", _answer_10_1),
    "11.1": ("importance_results", _answer_11_1), "11.2": ("importance_results", _answer_11_2),
}

_SLOW_FIXTURES = {"method_results", "spie_results"}


def _each_registered_checker() -> list[Any]:
    slow = [pytest.mark.slow]
    return [pytest.param(i, marks=slow if ANSWERS.get(i, (None,))[0] in _SLOW_FIXTURES else [])
            for i in exercises.exercise_ids()]


@pytest.mark.parametrize("exercise_id", _each_registered_checker())
def test_no_reply_states_the_answer(exercise_id, request):
    """For every registered checker: the expected answer passes and the confirmation does not
    state it; no hint (to the wrong answers of ``WRONG``, or to no answer) states it."""
    if exercise_id not in ANSWERS:
        pytest.fail(f"exercise {exercise_id} has no expected answer to test its replies with: "
                    "add a function computing it to ANSWERS")
    fixture, expected = ANSWERS[exercise_id]
    answer, context = expected(request.getfixturevalue(fixture) if fixture else None)
    assert_right_and_wrong(exercise_id, answer, context)


def _leaky_checker(exercise_id: str, right: Callable[[Any], str],
                   hint: Callable[[Any], str]) -> type[exercises.Exercise]:
    """A checker of a number whose confirmation and hint are made by ``right``/``hint``."""

    class Leaky(exercises.Exercise, exercise_id=exercise_id):
        title = "A leaky checker"
        expects = "a number"

        def judge(self, answer: Any) -> exercises.Feedback:
            x = answers._number(answer, self.expects)
            if abs(x - 0.4567) < 1e-3:
                return self.right(right(x))
            raise exercises.Hint(hint(x))

    return Leaky


@pytest.mark.parametrize(("right", "hint", "leak"), [
    (lambda x: f"a value of {x:.2f}.", lambda x: "no.", "0.46"),
    (lambda x: f"a value of {-x:+.1f}.", lambda x: "no.", "0.5"),
    (lambda x: f"{x:.0%} of the sites.", lambda x: "no.", "46%"),
    (lambda x: "that is it.", lambda x: f"{x:.3f} is off; try 0.457.", "0.457"),
    (lambda x: "that is it.", lambda x: "expected a number, the 0.4567 of the table", "0.4567"),
])
def test_the_leak_check_catches_a_reply_that_states_the_answer(right, hint, leak):
    _leaky_checker("99.2", right, hint)
    try:
        with pytest.raises(AssertionError, match=re.escape(repr([leak]))):
            assert_right_and_wrong("99.2", 0.4567, {},
                                   wrong=lambda a, ctx: [(a + 0.1, set()), ("x", set())])
        # The same checker with replies that state nothing passes.
        exercises.REGISTRY.pop("99.2")
        _leaky_checker("99.2", lambda x: "that is it.", lambda x: f"{x:.3f} is off.")
        assert_right_and_wrong("99.2", 0.4567, {},
                               wrong=lambda a, ctx: [(a + 0.1, set()), ("0.46", set())])
    finally:
        exercises.REGISTRY.pop("99.2", None)


def test_answer_forms_and_tokens():
    assert {"0.5", "0.46", "0.457", "0.4567", "46%", "45.7%"} <= _answer_forms(-0.4567)
    assert {"1733", "1732.9", "1732.87"} <= _answer_forms(1732.868)
    assert _answer_forms(4) == {"4", "four"}
    assert _answer_forms(["GRA", "ENF"]) == {"GRA", "ENF"}
    assert _month_forms((3, "sep")) == {"March", "Mar", "September", "Sep"}
    with pytest.raises(TypeError):
        _answer_forms(True)
    assert _states("a margin of -0.46.", "0.46") and _states("(VF-003)", "VF-003")
    assert not _states("BIO10 first", "BIO1") and not _states("at 10.46", "0.46")
    assert not _states("at 12.10 degC", "12") and not _states("0.467", "0.46")
    assert _states("at 28.", "28")


# ------------------------------------------------ the teacher's solutions, in the chapters
def _context_code(check_source: str) -> tuple[str, str, str]:
    """(exercise id, answer expression, context dict expression) of a check cell."""
    call, problem = convention._check_call(check_source)
    assert call is not None, problem
    pairs = ", ".join(f"{k.arg!r}: {ast.unparse(k.value)}" for k in call.keywords)
    return call.args[0].value, ast.unparse(call.args[1]), "{" + pairs + "}"


@pytest.mark.integration
@pytest.mark.slow
def test_teacher_solutions_pass_and_wrong_answers_fail(ci_book, tmp_path):
    """Execute the student copies with the teacher's answers pasted in; judge what they got."""
    import nbformat
    from nbclient import NotebookClient

    out = tmp_path / "course"
    made = course.make_course("ci", out, build_dir=ci_book.build_dir,
                              results=ci_book.results, log=lambda _: None)
    record_dir = tmp_path / "answers"
    record_dir.mkdir()
    seen: dict[str, tuple[Any, dict]] = {}
    for chapter, student_path, teacher_path in zip(made.chapters, made.student, made.teacher,
                                                   strict=True):
        student = nbformat.read(student_path, as_version=4)
        teacher = {c.id: c for c in nbformat.read(teacher_path, as_version=4).cells}
        cells = []
        for cell in student.cells:
            if copies.TAG_ANSWER in cell.metadata.get("tags", []) and cell.cell_type == "code":
                cell.source = teacher[cell.id].source  # the student writes the teacher's answer
            cells.append(cell)
            if convention.TAG_CHECK in cell.metadata.get("tags", []):
                ex_id, answer_expr, ctx_expr = _context_code(cell.source)
                target = record_dir / f"{ex_id}.pkl"
                cells.append(nbformat.v4.new_code_cell(
                    "import pickle as _pickle\nfrom pathlib import Path as _Path\n"
                    f"_ctx = {ctx_expr}\n"
                    "_ctx = {k: str(_Path(v).resolve()) if k == 'results' else v "
                    "for k, v in _ctx.items()}\n"
                    f"with open({str(target)!r}, 'wb') as _f:\n"
                    f"    _pickle.dump(({answer_expr}, _ctx), _f)"))
        student.cells = cells
        NotebookClient(student, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(student_path.parent)}}).execute()
        checks = [c for c in student.cells if convention.TAG_CHECK in c.metadata.get("tags", [])]
        assert len(checks) == sum(e.checkable for e in chapter.exercises)
        for c in checks:
            text = "".join(o.get("text", "") for o in c.outputs)
            assert text.startswith("Right (exercise"), (chapter.notebook, c.source, c.outputs)
        for e in chapter.exercises:
            if e.checkable:
                with open(record_dir / f"{e.exercise_id}.pkl", "rb") as f:
                    seen[e.exercise_id] = pickle.load(f)
    # Every checker of the book's chapters is used by a check cell, and each one passes the
    # teacher's answer and refuses wrong ones without revealing the right one.
    chapters = {f"{c.number:02d}" for c in made.chapters}
    assert set(seen) == {i for i in exercises.REGISTRY if i.split(".")[0] in chapters}
    for ex_id, (answer, context) in sorted(seen.items()):
        assert_right_and_wrong(ex_id, answer, context)

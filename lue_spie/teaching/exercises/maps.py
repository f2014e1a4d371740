"""Checkers of chapter 12, beyond the towers: the tables of the maps step."""

from __future__ import annotations

from typing import Any

from lue_spie.layout import MapsTable
from lue_spie.teaching.exercises.answers import _number, _results, _string
from lue_spie.teaching.exercises.base import Exercise, Feedback, Hint


class _MapsExercise(Exercise):
    """Checkers that read the tables of the maps chapter (``RESULTS/maps``)."""

    context = ("results",)

    def table(self, results: Any, name: str) -> Any:
        from lue_spie.layout import Layout
        from lue_spie.store import read_parquet

        path = Layout(_results(results)).maps.table(name)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no maps table; run the chapter's maps cell (or "
                                    "`lue-spie maps --results RESULTS`) first")
        return read_parquet(path)


class BestMap(_MapsExercise, exercise_id="12.1"):
    """The method whose map of mean annual GPP has the smallest RMSE against the truth."""

    title = "The best map"
    expects = "the name of a method (a string, as in the column `method`)"

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        given = _string(answer, self.expects, advice="Take the name from the table (a "
                        "string), not the whole row or a number.")
        skill = self.table(results, MapsTable.GPP_SKILL).set_index("method")
        if given not in skill.index:
            if given == "truth":
                raise Hint("the truth is what the maps are measured against; the question "
                           "asks which method comes closest to it.")
            raise Hint(f"{given!r} is not a mapped method of this run; take a value of the "
                       "column `method` of the GPP error table.")
        rmse = skill["rmse"].astype(float)
        if rmse[given] <= rmse.min() + 1e-9:
            return self.right("that method has the smallest map-wide RMSE of mean annual GPP; "
                              "the RMSE counts a map's bias as error, which R2 does not.")
        if skill["r2"].astype(float).idxmax() == given:
            raise Hint(f"{given} has the largest R2, which ignores a bias; the question asks "
                       "for the smallest RMSE.")
        raise Hint(f"the RMSE of {given} ({rmse[given]:.0f} gC m-2 yr-1) is not the smallest: "
                   "sort the GPP error table by `rmse`.")


class ShareInside(_MapsExercise, exercise_id="12.2"):
    """The share of the land cells inside the towers' area of applicability."""

    title = "Inside the area of applicability"
    expects = "a share between 0 and 1 (a number)"

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        share = _number(answer, self.expects)
        cells = self.table(results, MapsTable.CELLS)
        truth = float(cells["inside"].mean())
        if abs(share - truth) <= 0.005:
            return self.right(f"that share of the {len(cells)} land cells lies inside the "
                              "area of applicability; outside it the maps extrapolate beyond "
                              "the features the towers cover.")
        if 1.0 < share <= 100.0 and abs(share / 100.0 - truth) <= 0.005:
            raise Hint("that looks like a percentage; give the share as a number between 0 "
                       "and 1.")
        if abs((1.0 - share) - truth) <= 0.005:
            raise Hint("that is the share of the cells *outside* the area of applicability.")
        w = cells["cell_area"]
        if abs(share - float((w * cells["inside"]).sum() / w.sum())) <= 0.005:
            raise Hint("that is the share of the land *area*; the question counts cells.")
        raise Hint("count the cells whose column `inside` is True and divide by the number "
                   "of land cells (the cells table has one row per land cell).")

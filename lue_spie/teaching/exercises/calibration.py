"""Checkers of chapter 3, calibration: the calibration table."""

from __future__ import annotations

from typing import Any

from lue_spie.layout import Layout
from lue_spie.teaching.exercises.answers import _results, _string
from lue_spie.teaching.exercises.base import Exercise, Feedback, Hint


class WorstSite(Exercise, exercise_id="03.1"):
    """The calibrated site with the lowest NSE."""

    title = "Reading the table"
    expects = ("the id (a string, as in the column `site`) of the calibrated site with the "
               "lowest NSE")
    context = ("results",)

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.store import read_parquet

        site = _string(answer, self.expects, "site")
        table = read_parquet(Layout(_results(results)).calibration.table,
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
            return self.right("that is the site with the lowest NSE of the calibrated sites; "
                              "look at its `stop_reason` and its `n_good_days` in the table "
                              "to see why.")
        if int((ok["nse"] > row["nse"] + 1e-12).sum()) == 0:
            raise Hint(f"{site} has the highest NSE; sort ascending.")
        raise Hint(f"{site} has NSE {row['nse']:.3f}, and {lower} calibrated site(s) have a "
                   "lower one. Sort the sites with status 'ok' by `nse`.")

"""Checkers of chapters 9 and 10, the assessment: site scores, and the parameters
(bound hits, equifinality)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from lue_spie.layout import AssessmentTable, Layout
from lue_spie.teaching.exercises.answers import _results, _string
from lue_spie.teaching.exercises.base import Exercise, Feedback, Hint


# ------------------------------------------------------------------ chapter 9: assessment
class MostPositiveSites(Exercise, exercise_id="09.1"):
    """The extrapolation method with a positive daily NSE at the most sites."""

    title = "Reading the heat map"
    expects = ("the name (a string, as in the column `method`) of the extrapolation method "
               "with a positive daily NSE at the most sites")
    context = ("results",)

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.store import read_parquet

        name = _string(answer, self.expects, "method")
        scores = read_parquet(Layout(_results(results)).assessment.table(
            AssessmentTable.SITE_SCORES),
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
            return self.right("no extrapolation method has been run yet, so the reference is "
                              "the only row; run the method chapters and look again.")
        n = int(counts[name])
        if n >= int(extrapolation.max()):
            lead = ("as many sites as the best other extrapolation method (a tie)"
                    if int((extrapolation == n).sum()) > 1
                    else "more sites than any other extrapolation method")
            return self.right("that method predicts daily GPP better than the site's mean (a "
                              f"positive NSE) at {lead}: it fails least often, which its "
                              "median NSE need not show.")
        raise Hint(f"another extrapolation method has a positive daily NSE at more sites than "
                   f"{name}. Count the sites with NSE > 0 at the daily scale per method (the "
                   "column n_positive_NSE of the headline table).")


# ---------------------------------------------------- chapter 10: parameters, equifinality
class BoundParameter(Exercise, exercise_id="10.1"):
    """The parameter whose calibrated values lie on a bound at the largest share of sites."""

    title = "Bound hits"
    expects = ("the name (a string of lue_spie.params.PARAMETERS) of the parameter whose "
               "calibrated values lie on a bound at the largest share of the sites where it is "
               "free")
    context = ("results",)
    tolerance: ClassVar[float] = 1e-9  # shares are ratios of counts: ties are exact

    def judge(self, answer: Any, *, results: Any) -> Feedback:
        from lue_spie.parameter_skill import edge_shares
        from lue_spie.params import PARAMETERS
        from lue_spie.store import read_parquet

        name = _string(answer, self.expects, "parameter")
        if name not in PARAMETERS:
            raise Hint(f"{name!r} is not a parameter name; use one of lue_spie.params."
                       "PARAMETERS (the column `parameter` of `edges`).")
        table = read_parquet(Layout(_results(results)).calibration.table)
        ok = table[table["status"] == "ok"]
        shares = edge_shares(ok[["site", *PARAMETERS]].assign(method="site-calib"),
                             ok.set_index("site")["koeppen"]).set_index("parameter")["share"]
        share = shares[name]
        if not math.isfinite(share):
            raise Hint(f"{name} is fixed at 0 at every calibrated site (the lag rule), so it "
                       "is never free to hit a bound.")
        if share >= shares.max() - self.tolerance:
            return self.right("that parameter lies on a bound at a larger share of the sites "
                              "where it is free than any other: the data push it against its "
                              "range, so either the range is too narrow or the parameter is "
                              "poorly identified there (equifinality).")
        raise Hint(f"{name} lies on a bound at {share:.0%} of the sites where it is free; "
                   "another parameter does so more often. Count, per parameter, the sites "
                   "within 1 % of the range from a bound, over the sites where it is free "
                   "(`edge_shares`).")

"""Checkers of chapters 4-8, the extrapolation methods: grouping and similarity, pooled
optimisation, regression, the P-model and SPIE, read from the extrapolation folder."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from lue_spie.layout import Layout
from lue_spie.teaching.exercises.answers import (
    _count,
    _number,
    _numbers,
    _results,
    _string,
    _strings,
)
from lue_spie.teaching.exercises.base import Exercise, Feedback, Hint, Uncheckable

#: The lag parameters, free only at some sites (Koeppen D and E, B): left out of distances
#: between vectors whose lags are free at different sites.
_LAGS = ("alpha_T", "alpha_W")


class _MethodExercise(Exercise):
    """Checkers that read the extrapolation folder of the method chapters."""

    context = ("results",)

    @staticmethod
    def out(results: Any) -> Path:
        return Path(Layout(_results(results)).extrapolation.folder)

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

        return read_parquet(Layout(_results(results)).calibration.table)


# ------------------------------------------------- chapters 4-7: the extrapolation methods
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
            return self.right("PFTmean falls back where no training site of the fold shares "
                              "the held-out site's PFT, so there is no group mean to give: a "
                              "PFT with a single site, or one whose sites all fell into the "
                              "same fold.")
        single = self.split_sites(results)["single_type"].fillna("")
        if n == int(counts["Climmean"]):
            raise Hint("that is how often the climate methods (Climmean, Climmed) fall back; "
                       "PFTmean groups by PFT.")
        if n == int(counts.sum()):
            raise Hint("that counts the fallbacks of all the grouping methods of the "
                       "chapter; take the row of PFTmean.")
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
            return self.right("that donor is the training site most similar to the held-out "
                              "site with the lowest D, and still the pair is the least "
                              "similar of the run: that held-out site has no close neighbour "
                              "in feature space, so Sitesim's prediction there rests on a "
                              "distant analogue.")
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
            return self.right("the median NSE looks at the typical held-out site, which a few "
                              "very poor sites do not drag down; its sign says whether the "
                              "median vectors, less pulled by outlying calibrations, fit "
                              "better there than the mean vectors.")
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
            return self.right("OPT-All fits one vector to the training sites of a fold and "
                              "gives it to every held-out site of that fold, each with its "
                              "own lag mask: the lags aside, the held-out sites of a fold "
                              "share their vector.")
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
                   "the parameters other than the lags (`drop_duplicates`), or look at "
                   "`vectors_all`.")


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
            return self.right("the vector pooled over that PFT's training sites lies farther "
                              "from the one pooled over all sites than any other PFT's: its "
                              "sites want parameters unlike the typical site's, so one vector "
                              "for all sites suits them least.")
        with_lags = self.distances(results, with_lags=True)
        if float(with_lags[pft]) >= float(with_lags.max()) - self.tolerance:
            raise Hint("that is the farthest with the lags included; the lags are free at "
                       "some sites only, so leave alpha_T and alpha_W out of the distance.")
        if d <= float(distance.min()) + self.tolerance:
            raise Hint(f"the vector of {pft} lies closest to the OPT-All vector; the question "
                       "asks for the farthest.")
        raise Hint(f"the vector of {pft} lies {d:.3f} from the OPT-All vector; another PFT's "
                   "lies farther. Average the scaled vectors over the folds (per PFT for "
                   "OPT-PFT) and take the Euclidean distance over the parameters without "
                   "the lags.")


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

        dataset = load_dataset(Layout(_results(results)).data.folder)
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
            return self.right("sRF predicts that parameter best against the site-calibrated "
                              "values (the largest NSE across held-out sites): its calibrated "
                              "values follow the site features closely enough for the forest "
                              "to learn them. Compare with its score against the true values.")
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
            return self.right("among the sites whose sRF vector lies closest to their "
                              "calibrated one, that site loses the most daily NSE: a small "
                              "difference in a parameter GPP is sensitive to can cost more "
                              "than a large one in a parameter it hardly uses (equifinality, "
                              "chapter 10).")
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
            return self.right("the running mean weights the newest day by alpha and each older "
                              "day by a further factor 1 - alpha, so a step in the conditions "
                              "is followed gradually: after that many days all but 1/e of the "
                              "gap is closed, about how long acclimation lags the weather.")
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

        root = Layout(_results(results))
        dataset = load_dataset(root.data.folder)
        gpp = {"P-model": read_parquet(root.extrapolation.method("P-model").gpp)}
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
            return self.right("that is the P-model's GPP over the observed, both summed over "
                              "the good days below 0 degC: above 1 the model photosynthesises "
                              "more on frozen days than the sites do, below 1 less. The "
                              "ratio per bin, beside site calibration's, shows which part of "
                              "the model is responsible.")
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
            return self.right("the margin compares SPIE with the best of the other "
                              "extrapolation methods at the typical held-out site: positive "
                              "where SPIE leads, negative where it trails. Chapter 9 shows at "
                              "which sites the order changes.")
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
        """Per parameter: median absolute error / range against the truth, of SPIE and of site
        calibration (columns ``SPIE``, ``site calibration``)."""
        from lue_spie.data import load_dataset
        from lue_spie.extrapolate import views

        dataset = load_dataset(Layout(_results(results)).data.folder)
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
            return self.right("for those parameters SPIE's held-out predictions lie closer to "
                              "the true values than calibration on the site's own record: "
                              "where a site's data constrain a parameter poorly, learning "
                              "across sites helps; for the others the site's own record wins.")
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

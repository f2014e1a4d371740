"""Checkers of chapter 2, the data: the site table and the site-days of the chapter's
dataset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from lue_spie.layout import Layout
from lue_spie.teaching.exercises.answers import _number, _results, _strings
from lue_spie.teaching.exercises.base import Exercise, Feedback, Hint, Uncheckable


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


class _DataExercise(Exercise):
    """Checkers that read the dataset of the data chapter, restricted like the chapter."""

    context = ("results",)
    optional = ("sites", "years")

    def tables(self, results: Any, sites: Any = None, years: Any = None) -> tuple[Any, Any]:
        from lue_spie.data import load_dataset

        return _subset(load_dataset(Layout(_results(results)).data.folder), sites, years)


class AridPFTs(_DataExercise, exercise_id="02.1"):
    """The PFTs with at least one site in an arid climate (Koeppen main group B)."""

    title = "Climate and latitude"
    expects = ("the PFTs of the arid-climate sites (a list or set of codes of the column "
               "`PFT`)")

    def judge(self, answer: Any, *, results: Any, sites: Any = None,
              years: Any = None) -> Feedback:
        given = _strings(answer, self.expects)
        _, site_table = self.tables(results, sites, years)
        expected = set(site_table.loc[site_table["koeppen_main"] == "B", "PFT"])
        if given == expected:
            return self.right("those are exactly the PFTs with a site in Koeppen main group B "
                              "(arid). A PFT and a climate group sort the sites in different "
                              "ways: the grouping methods of the split chapter try each.")
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
            return self.right("that flag fails (at most 0.8, or missing) on more site-days "
                              "than any other, so it removes the most days from the "
                              "calibration; look at which sites and seasons it removes.")
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
            return self.right("the rank correlation uses only the order of the sites, so a few "
                              "very arid or very wet sites cannot dominate it as they can a "
                              "linear (Pearson) correlation; compare the two.")
        if abs(rho - pearson) <= self.tolerance:
            raise Hint("that is the linear (Pearson) correlation; the exercise asks for the "
                       "rank correlation: `.corr(..., method='spearman')`.")
        if abs(rho + spearman) <= self.tolerance:
            raise Hint("the sign is wrong: think about which way W moves as AI1 (precipitation "
                       "over potential evaporation) grows.")
        raise Hint(f"{rho:.3f} is off. Take one point per site: AI1 from the site table and the "
                   "mean of W over the site's days, then their Spearman correlation.")

"""Checkers of chapter 11, feature importance: the importance tables of the chapter."""

from __future__ import annotations

from typing import Any, ClassVar

from lue_spie.layout import ImportanceTable
from lue_spie.teaching.exercises.answers import _results, _string
from lue_spie.teaching.exercises.base import Exercise, Feedback, Hint


class _ImportanceExercise(Exercise):
    """Checkers that read the tables of the importance chapter (``RESULTS/importance``)."""

    context = ("results",)

    def table(self, results: Any, name: str) -> Any:
        from lue_spie.layout import Layout
        from lue_spie.store import read_parquet

        path = Layout(_results(results)).importance.table(name)
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
        table = self.table(results, ImportanceTable.BY_CLASS)
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
            return self.right("that class has the largest mean normalised importance over its "
                              "features and all parameters; the mean, not the sum, keeps a "
                              "class of many features from leading by their number alone.")
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
        table = self.table(results, ImportanceTable.IMPORTANCE)
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
            return self.right(f"{self.method} ranks that feature first for {self.parameter} "
                              "(the fold mean of its normalised mean |SHAP|); compare with the "
                              "columns LRP and PD to see whether the methods agree on it.")
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

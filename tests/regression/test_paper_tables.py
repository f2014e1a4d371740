"""The ci book's paper tables, pinned: a change that moves a result says so in its diff.

The ci profile's book (built once per test session, ``tests/conftest.py``) produces the
paper's headline numbers at a small size: per method the daily NSE (median, share of sites
above 0), the spatial NSE, the model likelihood P and the distance to the true parameters,
the median NSE at the four time scales, and the feature classes of SPIE's importance. Each is
compared with the snapshot beside this file (``test_paper_tables/``, written by
pytest-regressions) at the tolerances below. A change of the code that moves a number fails
here; if the move is intended, regenerate the snapshots with

    .venv/bin/python -m pytest tests/regression --force-regen

and commit them with the change, saying in the message why the numbers moved.

Tolerances (absolute): NSE, R2 and shares 0.01 (the ci runs are seeded and float64 on the CPU:
the same machine gives the same numbers; another CPU may round differently and a CMA-ES
search may then take another path); the likelihood P 0.05 (a share of 200 site groups);
normalised importance 0.03.
"""

from __future__ import annotations

import pytest

from lue_spie import store
from lue_spie.layout import AssessmentTable, ImportanceTable, Layout

pytestmark = [pytest.mark.regression, pytest.mark.integration, pytest.mark.slow]

SCORE = {"atol": 0.01, "rtol": 0.0}
LIKELIHOOD = {"atol": 0.05, "rtol": 0.0}
IMPORTANCE = {"atol": 0.03, "rtol": 0.0}


@pytest.fixture(scope="module")
def tables(ci_book):
    layout = Layout(ci_book.results)
    return {
        "headline": store.read_parquet(layout.assessment.table(AssessmentTable.HEADLINE)),
        "summary": store.read_parquet(layout.assessment.table(AssessmentTable.SCORE_SUMMARY)),
        "classes": store.read_parquet(layout.importance.table(ImportanceTable.BY_CLASS)),
    }


def test_headline_per_method(tables, dataframe_regression):
    h = tables["headline"].set_index("method")
    pinned = h[["n_evaluated", "share_positive_NSE", "median_NSE", "spatial_NSE", "P",
                "truth_distance"]].astype(float)
    dataframe_regression.check(pinned, default_tolerance=SCORE,
                               tolerances={"P": LIKELIHOOD})


def test_median_nse_at_every_time_scale(tables, dataframe_regression):
    s = tables["summary"]
    pinned = s.pivot(index="method", columns="scale", values="median_NSE")
    pinned = pinned.loc[list(dict.fromkeys(s["method"]))]
    dataframe_regression.check(pinned.astype(float), default_tolerance=SCORE)


def test_importance_by_feature_class(tables, dataframe_regression, data_regression):
    c = tables["classes"]
    overall = c[c["parameter"] == "all"].set_index("feature_class")
    dataframe_regression.check(overall[["mean", "SHAP", "LRP", "PD"]].astype(float),
                               default_tolerance=IMPORTANCE)
    # The ranking of the classes is what the chapter's text and Figure 8 report.
    data_regression.check({"classes_by_mean_importance": list(
        overall.sort_values("mean", ascending=False).index)})

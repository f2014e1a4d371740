"""A method of one's own is one class: defined here, it runs through `extrapolate` and `assess`
into the same tables as the paper's twelve.

The toy method predicts the median calibrated vector of all training sites for every held-out
site (the simplest grouping: one group). The runner learns from its class keywords alone what
it needs (a calibration, one unit per fold), the registry finds it by its name, and the
assessment treats it as any other method. The template (``lue_spie/methods/_template.py``),
given a name, runs the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
import torch

from lue_spie import calibrate, extrapolate, store
from lue_spie.assess import AssessSettings
from lue_spie.assess import step as assess_step
from lue_spie.calibrate import CalibrationSettings
from lue_spie.data import virtual
from lue_spie.extrapolate import ExtrapolationSettings
from lue_spie.layout import AssessmentTable, Layout
from lue_spie.methods import Method, SiteData, finish_params, params_frame, registered_methods
from lue_spie.methods._template import TemplateMethod
from lue_spie.params import PARAMETERS

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class MedianOfAll(Method, name="Toy-median", family="grouping"):
    """The median calibrated vector of all training sites, for every held-out site."""

    shrink: float = 0.0

    def fit(self, data: SiteData, train_sites: Sequence[str]) -> MedianOfAll:
        cal = data.calibrated(data.check_sites(train_sites, "training sites"))
        self.vector_ = cal[list(PARAMETERS)].median().to_numpy(np.float64)
        return self

    def predict(self, data: SiteData, sites: Sequence[str]) -> pd.DataFrame:
        sites = data.check_sites(sites)
        koeppen = list(data.sites.loc[sites, "koeppen"])
        return params_frame(sites, finish_params(np.tile(self.vector_, (len(sites), 1)),
                                                 koeppen))


@dataclasses.dataclass
class TemplateCopy(TemplateMethod, name="Toy-template"):
    """The template, registered under a name as a copy of it would be."""


def test_a_method_of_ones_own_runs_into_every_table(tmp_path):
    torch.set_num_threads(1)
    assert {"Toy-median", "Toy-template"} <= set(registered_methods())
    assert MedianOfAll.learns_from == "calibration" and MedianOfAll.folds == "each"
    root = tmp_path / "results"
    layout = Layout(root)
    virtual.generate(14, 1, 4, layout.data.folder)
    calibrate.run(layout, CalibrationSettings(max_gen=20, device="cpu"), log=lambda *_: None)
    methods = ("PFTmean", "Toy-median", "Toy-template")
    result = extrapolate.run(layout, ExtrapolationSettings(methods=methods, n_folds=5, seed=1),
                             progress=False, log=lambda *_: None)
    assert list(dict.fromkeys(result.summary["method"])) == list(methods)
    files = layout.extrapolation.method("Toy-median")
    params = store.read_parquet(files.params)
    assert len(params) == 14 and params["nse"].notna().all()
    # Its hyperparameters are recorded like any method's (a rerun with others runs again).
    prov = store.read_provenance(files.fold_params(0))
    assert prov["settings"]["params"] == {"shrink": 0.0}

    a, written = assess_step.run(layout, AssessSettings(n_groups=10), with_figures=True)
    assert a.inputs.methods == ("site-calib", *methods)
    headline = store.read_parquet(layout.assessment.table(AssessmentTable.HEADLINE))
    row = headline.set_index("method").loc["Toy-median"]
    assert row["n_evaluated"] == 14 and np.isfinite(row["median_NSE"])
    assert np.isfinite(row["P"]) and np.isfinite(row["truth_distance"])
    skill = store.read_parquet(layout.assessment.table(AssessmentTable.PARAMETER_SKILL_TRUTH))
    assert {"Toy-median", "Toy-template"} <= set(skill["method"])
    assert "figures/fig2_nse_sites" in written

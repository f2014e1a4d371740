"""Small runs of the steps with pinned outputs: the virtual world, the LUE model, a site
calibration and a baseline (fast; pytest-regressions snapshots in ``test_pinned_runs/``).

Each is seeded and run in float64 on one torch thread, so the same code gives the same
numbers; the tolerances only absorb the last bits a different CPU may round differently. A
change that moves a number fails here first, long before the book would show it; regenerate
with ``--force-regen`` when the move is intended and say why in the commit.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from lue_spie.calibrate import CalibrationSettings, calibrate_sites
from lue_spie.data import Dataset, virtual
from lue_spie.evaluate import evaluate_params
from lue_spie.methods import SiteData, get_method
from lue_spie.model import simulate
from lue_spie.params import PARAMETERS

pytestmark = [pytest.mark.regression, pytest.mark.usefixtures("one_thread")]

TIGHT = {"atol": 1e-9, "rtol": 1e-9}
SEARCH = {"atol": 1e-6, "rtol": 1e-6}


@pytest.fixture(scope="module")
def world():
    vf = virtual.make_tables(12, 1, 11)
    return Dataset(path=Path("(memory)"), site_day=vf.site_day, sites=vf.sites, truth=vf.truth,
                   truth_meta=vf.truth_meta)


def test_virtual_world(world, dataframe_regression):
    sd = world.site_day
    by_site = sd.groupby("site")[["T", "VPD", "W", "PAR", "FAPAR", "GPP_obs"]].mean()
    truth = world.truth.set_index("site")[list(PARAMETERS)]
    dataframe_regression.check(by_site.join(truth), default_tolerance=TIGHT)


def test_lue_model_with_the_true_parameters(world, dataframe_regression):
    batch = world.forcing_batch(dtype=torch.float64)
    truth = world.truth.set_index("site").loc[batch.sites, list(PARAMETERS)]
    out = simulate(batch.forcing, torch.tensor(truth.to_numpy(), dtype=torch.float64))
    table = pd.DataFrame({k: out[k].mean(-1).numpy() for k in ("GPP", "fT", "fVPD", "fW",
                                                                "fL", "fCI")},
                         index=pd.Index(batch.sites, name="site"))
    dataframe_regression.check(table, default_tolerance=TIGHT)


def test_site_calibration(world, dataframe_regression):
    settings = CalibrationSettings(max_gen=15, seed=3, device="cpu", dtype="float64")
    res = calibrate_sites(world, settings, sites=list(world.sites["site"][:4]))
    t = res.table.set_index("site")[[*PARAMETERS, "cost", "nse", "generations"]]
    dataframe_regression.check(t.astype(float), default_tolerance=SEARCH)


def test_a_baseline_through_the_model(world, dataframe_regression):
    data = SiteData(world, world.truth.assign(status="ok"))
    sites = list(world.sites["site"])
    pred = get_method("PFTmean").fit_predict(data, sites[:8], sites[8:])
    scores = evaluate_params(data.forcing(sites[8:]), pred).set_index("site")
    dataframe_regression.check(scores[["cost", "nse", "C_ideal", "C_nonideal"]],
                               default_tolerance=SEARCH)

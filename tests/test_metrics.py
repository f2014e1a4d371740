"""NSE, R2 and NRMSE: NumPy and torch versions, masks, NaN handling, degenerate series."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lue_spie.metrics import nrmse, nrmse_torch, nse, nse_torch, r2, r2_torch

OBS = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
SIM = np.array([1.5, 2.0, 2.5, 4.5, 4.0])


def test_known_values():
    # sse = 0.25 + 0 + 0.25 + 0.25 + 1 = 1.75; sst = 10
    assert nse(OBS, SIM) == pytest.approx(1.0 - 1.75 / 10.0)
    assert nse(OBS, OBS) == pytest.approx(1.0)
    assert nse(OBS, np.full(5, 3.0)) == pytest.approx(0.0)
    assert r2(OBS, SIM) == pytest.approx(np.corrcoef(OBS, SIM)[0, 1] ** 2)
    assert r2(OBS, 2.0 * OBS + 1.0) == pytest.approx(1.0)
    assert nrmse(OBS, SIM) == pytest.approx(np.sqrt(1.75 / 5.0) / 3.0)


@pytest.mark.parametrize("np_fn,t_fn", [(nse, nse_torch), (r2, r2_torch),
                                         (nrmse, nrmse_torch)])
def test_torch_matches_numpy_batched_and_masked(np_fn, t_fn):
    rng = np.random.default_rng(0)
    obs = rng.uniform(0, 10, (3, 4, 50))
    sim = obs + rng.normal(0, 1, (3, 4, 50))
    mask = rng.uniform(size=(3, 4, 50)) > 0.3
    obs[0, 0, :5] = np.nan  # missing observations are ignored
    expect = np_fn(obs, sim, mask)
    got = t_fn(torch.as_tensor(obs), torch.as_tensor(sim), torch.as_tensor(mask)).numpy()
    assert expect.shape == (3, 4)
    np.testing.assert_allclose(got, expect, rtol=1e-12)
    # A mask equals dropping the masked days.
    i, j = 1, 2
    keep = mask[i, j] & np.isfinite(obs[i, j])
    assert np_fn(obs[i, j], sim[i, j], mask[i, j]) == pytest.approx(
        np_fn(obs[i, j][keep], sim[i, j][keep]))


def test_broadcast_obs_against_population():
    rng = np.random.default_rng(1)
    obs = rng.uniform(0, 5, (2, 1, 30))
    sim = obs + rng.normal(0, 0.5, (2, 6, 30))
    out = nse_torch(torch.as_tensor(obs), torch.as_tensor(sim))
    assert out.shape == (2, 6)
    assert out[1, 3].item() == pytest.approx(nse(obs[1, 0], sim[1, 3]))


def test_too_few_points_and_constant_obs_give_nan():
    mask = np.array([True, True, True, False, False])
    assert np.isnan(nse(OBS, SIM, mask))  # 3 < 4 points
    assert np.isnan(nse(np.full(5, 2.0), SIM))  # zero variance
    assert np.isnan(r2(OBS, np.full(5, 2.0)))  # zero variance of sim
    assert np.isnan(nrmse(np.zeros(5), SIM))  # zero mean
    assert torch.isnan(nse_torch(torch.as_tensor(OBS), torch.as_tensor(SIM),
                                 torch.as_tensor(mask)))
    assert nse(OBS, SIM, mask, min_points=3) == pytest.approx(
        nse(OBS[:3], SIM[:3], min_points=3))


def test_nan_in_sim_or_obs_ignored_and_gradients_finite():
    obs = torch.tensor([1.0, np.nan, 3.0, 4.0, 5.0, 2.0], dtype=torch.float64)
    sim = torch.tensor([1.2, 7.0, 2.9, 4.1, 4.5, 2.2], dtype=torch.float64, requires_grad=True)
    for fn in (nse_torch, r2_torch, nrmse_torch):
        value = fn(obs, sim)
        value.backward()
        assert torch.isfinite(value)
        assert torch.isfinite(sim.grad).all()
        assert sim.grad[1] == 0.0  # the missing day does not pull
        sim.grad = None
    # A perfect fit keeps a finite NRMSE gradient (sqrt at 0 guarded).
    s = obs.nan_to_num(0.0).clone().requires_grad_(True)
    nrmse_torch(obs, s).backward()
    assert torch.isfinite(s.grad).all()


def test_float32():
    o = torch.as_tensor(OBS, dtype=torch.float32)
    s = torch.as_tensor(SIM, dtype=torch.float32)
    assert nse_torch(o, s).dtype == torch.float32
    assert nse_torch(o, s).item() == pytest.approx(nse(OBS, SIM), rel=1e-6)

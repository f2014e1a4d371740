"""NSE, R2 and NRMSE: NumPy and torch versions, masks, NaN handling, degenerate series."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score

from lue_spie.metrics import (
    Moments,
    all_metrics,
    nrmse,
    nrmse_torch,
    nse,
    nse_torch,
    r2,
    r2_torch,
)

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


# --------------------------------------------------------------------------------------------
# Moments / all_metrics (assessment)
# --------------------------------------------------------------------------------------------


def test_all_metrics_hand_computed():
    got = all_metrics(OBS, SIM)
    assert got["NSE"] == pytest.approx(1.0 - 1.75 / 10.0)
    # mean(sim) = 2.9; cov = sum((o-3)(s-2.9)) = 2.8 + 0.9 + 0 + 1.6 + 2.2 = 7.5
    # ss_sim = 1.96 + 0.81 + 0.16 + 2.56 + 1.21 = 6.7 -> R2 = 7.5^2 / (10 * 6.7)
    assert got["R2"] == pytest.approx(7.5**2 / (10.0 * 6.7))
    assert got["NRMSE"] == pytest.approx(np.sqrt(1.75 / 5.0) / 3.0)


def test_all_metrics_against_sklearn_and_corrcoef():
    rng = np.random.default_rng(3)
    obs = rng.gamma(2.0, 2.0, (4, 7, 200))
    sim = 0.8 * obs + rng.normal(0, 1.5, obs.shape) + 0.5
    got = all_metrics(obs, sim)
    for i in range(4):
        for j in range(7):
            o, s = obs[i, j], sim[i, j]
            assert got["NSE"][i, j] == pytest.approx(r2_score(o, s), rel=1e-12)
            assert got["R2"][i, j] == pytest.approx(np.corrcoef(o, s)[0, 1] ** 2, rel=1e-12)
            assert got["NRMSE"][i, j] == pytest.approx(
                np.sqrt(np.mean((s - o) ** 2)) / o.mean(), rel=1e-12)


def test_all_metrics_equal_single_metric_functions_with_mask_and_nan():
    rng = np.random.default_rng(4)
    obs = rng.uniform(0, 10, (6, 120))
    sim = obs[None] + rng.normal(0, 2, (3, 6, 120))  # methods x sites x days
    mask = rng.uniform(size=(6, 120)) > 0.4
    obs[1, :30] = np.nan
    sim[2, 3, 10:20] = np.nan
    mask[4, :] = False
    mask[5, :] = np.arange(120) < 3  # 3 points: too few
    got = all_metrics(obs, sim, mask)
    for name, fn in (("NSE", nse), ("R2", r2), ("NRMSE", nrmse)):
        expect = fn(obs, sim, mask)
        assert got[name].shape == (3, 6)
        np.testing.assert_allclose(got[name], expect, rtol=1e-12)
        assert np.isnan(got[name][:, 4]).all() and np.isnan(got[name][:, 5]).all()


def test_moments_segments_and_pooling():
    rng = np.random.default_rng(5)
    obs = rng.uniform(1, 5, (2, 30))
    sim = obs + rng.normal(0, 0.7, (2, 30))
    mask = rng.uniform(size=(2, 30)) > 0.2
    starts = np.array([0, 7, 12, 25])
    seg = Moments.from_series(obs, sim, mask, starts=starts)
    assert seg.shape == (2, 4)
    bounds = np.append(starts, 30)
    for k in range(4):
        part = slice(bounds[k], bounds[k + 1])
        whole = Moments.from_series(obs[:, part], sim[:, part], mask[:, part])
        for f in ("n", "mean_obs", "mean_sim", "ss_obs", "ss_sim", "sp", "sse"):
            np.testing.assert_allclose(getattr(seg, f)[:, k], getattr(whole, f), rtol=1e-12,
                                       atol=1e-12)
    # Pooling the segments equals the whole series.
    pooled = seg.pool(axis=-1).metrics(min_points=1)
    direct = all_metrics(obs, sim, mask, min_points=1)
    for name in ("NSE", "R2", "NRMSE"):
        np.testing.assert_allclose(pooled[name], direct[name], rtol=1e-12)
    # Pooling across a leading axis too (e.g. site-years of a group), through indexing.
    sub = seg[:, [0, 2]].pool(axis=-1)
    keep = np.zeros(30, dtype=bool)
    keep[0:7] = True
    keep[12:25] = True
    np.testing.assert_allclose(sub.metrics(1)["NSE"],
                               all_metrics(obs, sim, mask & keep, min_points=1)["NSE"],
                               rtol=1e-12)


def test_moments_accurate_for_a_large_offset():
    # Raw power sums would lose every digit here; centred sums keep NSE exact enough.
    obs = 1e7 + np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    sim = 1e7 + np.array([1.5, 2.0, 2.5, 4.5, 4.0])
    assert all_metrics(obs, sim)["NSE"] == pytest.approx(1.0 - 1.75 / 10.0, rel=1e-9)


def test_moments_bad_starts():
    with pytest.raises(ValueError, match="starts"):
        Moments.from_series(OBS, SIM, starts=[1, 3])
    with pytest.raises(ValueError, match="starts"):
        Moments.from_series(OBS, SIM, starts=[0, 3, 3])

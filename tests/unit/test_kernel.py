"""The fused evaluation kernel (lue_spie.model.kernel) against the float64 oracle and the torch
path, and whole searches through both paths; the thread policy that runs it.

Tolerances, as the paths' arithmetic allows: float64 within 1e-10 (relative) of the oracle
and 1e-12 (cost units) of the torch path; float32 within a few float32 ulps of the torch path
(1e-5 of a series' scale; costs, formed in float64 from float32 GPP, within 1e-6 relative);
CMA-ES searches through both paths identical (same generations, parameters to 1e-9 in
float64; in float32 to 1e-3 of the scaled range, where a rank swap between two candidates a
float32 ulp apart can change a late generation).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from _forcing import random_forcing, random_params
from numba import njit

from lue_spie import execution
from lue_spie.calibrate import CalibrationSettings, calibrate_pooled, calibrate_sites
from lue_spie.calibrate.engine import Engine, Unit
from lue_spie.cost import population_cost, population_path, prepare_cost
from lue_spie.data import Dataset, virtual
from lue_spie.model import kernel, prepare_forcing, simulate
from lue_spie.model.fused import _fused_forward
from lue_spie.model.reference import simulate_reference
from lue_spie.params import PARAMETERS, from_scaled, index, to_scaled

pytestmark = pytest.mark.usefixtures("one_thread")

KEYS = ("GPP", "fT", "fVPD", "fVPD_VPD", "fVPD_CO2", "fW", "fL", "fCI", "Tf", "Wf")


@njit(error_model="numpy")
def _exp_all(x, out):
    for i in range(x.shape[0]):
        out[i] = kernel.vexp(x[i])


@pytest.mark.parametrize("dtype,lo,hi", [(np.float32, -110.0, 95.0),
                                         (np.float64, -760.0, 720.0)])
def test_vexp_within_one_ulp_and_keeps_specials(dtype, lo, hi):
    x = np.concatenate([np.linspace(lo, hi, 400_001),
                        np.random.default_rng(0).uniform(-3, 3, 100_000)]).astype(dtype)
    got = np.empty_like(x)
    _exp_all(x, got)
    with np.errstate(over="ignore"):
        ref = np.exp(x.astype(np.float64)).astype(dtype)
    tiny = np.finfo(dtype).tiny
    normal = np.isfinite(ref) & (ref >= tiny)
    ulp = np.spacing(ref[normal]).astype(np.float64)
    assert np.max(np.abs(got[normal].astype(np.float64) - ref[normal]) / ulp) <= 1.0
    small = np.isfinite(ref) & (ref < tiny)  # subnormal results and underflow to 0
    assert np.max(np.abs(got[small] - ref[small])) <= np.spacing(dtype(0))
    assert np.array_equal(np.isinf(got), np.isinf(ref))
    special = np.array([np.nan, np.inf, -np.inf, 0.0], dtype=dtype)
    out = np.empty_like(special)
    _exp_all(special, out)
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == 0.0 and out[3] == 1.0


def _oracle(forcing, params):
    return simulate_reference({k: v.double().numpy() for k, v in forcing.items()},
                              params.double().numpy())


@pytest.mark.parametrize("seed", range(4))
def test_kernel_simulate_matches_oracle_and_torch_float64(seed):
    f = random_forcing(8, 500, seed)
    f["PAR"][:, ::9] = 0.0  # days without light: APAR = 0, GPP = 0
    p = random_params(8, seed)
    with torch.no_grad():
        got = simulate(f, p)  # the kernel: CPU, no gradient
        torch_path = _fused_forward(prepare_forcing(f), p, frozenset(KEYS))
    ref = _oracle(f, p)
    for k in KEYS:
        a, b = got[k].numpy(), ref[k]
        keep = np.abs(b) > 1e-290  # (a product of subnormal numbers has no relative precision)
        assert np.max(np.abs(a[keep] - b[keep]) / np.abs(b[keep])) <= 1e-10, k
        assert np.array_equal(a == 0, b == 0) or k in ("Tf", "Wf"), k
        t = torch_path[k].expand_as(got[k]).numpy()
        assert np.max(np.abs(a - t)) <= 1e-12 * max(1.0, np.abs(t).max()), k
    assert (got["GPP"][:, ::9] == 0).all()


@pytest.mark.parametrize("seed", range(3))
def test_kernel_simulate_float32_matches_oracle_and_torch(seed):
    f = {k: v.float() for k, v in random_forcing(6, 400, seed).items()}
    p = random_params(6, seed).float()
    with torch.no_grad():
        got = simulate(f, p)
        torch_path = _fused_forward(prepare_forcing(f), p, frozenset(KEYS))
    ref = _oracle(f, p)
    for k in KEYS:
        a = got[k].numpy().astype(np.float64)
        assert got[k].dtype == torch.float32
        scale = np.abs(ref[k]).max()
        assert np.max(np.abs(a - ref[k])) <= 1e-5 * scale, k
        t = torch_path[k].expand_as(got[k]).numpy().astype(np.float64)
        assert np.max(np.abs(a - t)) <= 1e-5 * scale, k


def test_kernel_simulate_broadcasts_populations_and_subsets():
    f = random_forcing(4, 300, 1)
    pop = torch.stack([random_params(4, s) for s in range(3)], dim=1)  # (4, 3, 13)
    pf = prepare_forcing(f).unsqueeze(1)  # (4, 1, D)
    with torch.no_grad():
        got = simulate(pf, pop, outputs=("GPP", "fW", "Tf", "APAR"))
        for j in range(3):
            one = simulate(f, pop[:, j], outputs=("GPP", "fW", "Tf"))
            for k in ("GPP", "fW", "Tf"):
                torch.testing.assert_close(got[k][:, j], one[k], rtol=0, atol=0)
    assert set(got) == {"GPP", "fW", "Tf", "APAR"}
    assert got["GPP"].shape == (4, 3, 300) and got["APAR"].shape == (4, 3, 300)


def _case(dtype, n_sites=6, pop=7, days=365, seed=0, lags=True):
    """Forcing with frost, dry air and dry soil and light-free days; noisy observations with
    gaps (NaN) and bad days; a population, lags on or off."""
    f = random_forcing(n_sites, days, seed)
    f["T"] = f["T"] - 15.0  # frost on many days
    f["W"] = f["W"] * 0.05  # dry soil on some
    f["PAR"][:, ::11] = 0.0
    g = torch.Generator().manual_seed(seed)
    params = from_scaled(torch.rand(n_sites, pop, 13, generator=g, dtype=torch.float64))
    if not lags:
        params[..., index("alpha_T")] = params[..., index("alpha_W")] = 0.0
    else:
        params[:, :2, index("alpha_T")] = 0.0
    with torch.no_grad():
        obs = simulate(f, params[:, 0])["GPP"] * 1.1 + 0.2 * torch.randn(
            n_sites, days, generator=g, dtype=torch.float64)
    obs[:, ::13] = float("nan")
    good = torch.rand(n_sites, days, generator=g) > 0.2
    return ({k: v.to(dtype) for k, v in f.items()}, params.to(dtype), obs.to(dtype), good)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("lags", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_population_cost_kernel_equals_torch_path(dtype, lags, seed):
    f, params, obs, good = _case(dtype, seed=seed, lags=lags)
    data = prepare_cost(f, obs, good)
    k = population_cost(data, params, path="kernel")
    t = population_cost(data, params, path="torch")
    rtol, atol = (0.0, 1e-12) if dtype == torch.float64 else (1e-6, 1e-6)
    for key in ("cost", "nse", "C_ideal", "C_nonideal"):
        torch.testing.assert_close(k[key], t[key], rtol=rtol, atol=atol)
    assert torch.equal(k["n_good"], t["n_good"])
    assert (t["C_nonideal"] > 0).any()  # every stress bites somewhere
    rows = [4, 0, 4, 2]  # repeated sites: the rows of pooled groups
    kr = population_cost(data, params[rows], sites=rows, path="kernel")
    torch.testing.assert_close(kr["cost"], k["cost"][rows], rtol=0, atol=0)


def test_population_cost_auto_path_and_errors():
    f, params, obs, good = _case(torch.float64, n_sites=2, pop=3)
    data = prepare_cost(f, obs, good)
    auto = population_cost(data, params)
    torch.testing.assert_close(auto["cost"], population_cost(data, params, path="kernel")["cost"],
                               rtol=0, atol=0)
    with population_path("torch"):
        torch.testing.assert_close(
            population_cost(data, params)["cost"],
            population_cost(data, params, path="torch")["cost"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="path must be"):
        population_cost(data, params, path="numpy")
    with pytest.raises(ValueError, match="expected 'auto'"), population_path("gpu"):
        pass


@pytest.fixture(scope="module")
def world():
    vf = virtual.make_tables(8, 1, 5)
    return Dataset(path=Path("(memory)"), site_day=vf.site_day, sites=vf.sites, truth=vf.truth,
                   truth_meta=vf.truth_meta)


def _scaled(table):
    return to_scaled(table[list(PARAMETERS)].to_numpy(np.float64))


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-9), ("float32", 1e-3)])
def test_site_calibration_identical_through_both_paths(world, dtype, tol):
    s = CalibrationSettings(max_gen=60, seed=2, device="cpu", dtype=dtype, restarts=1)
    sites = list(world.sites["site"][:4])
    out = {}
    for path in ("torch", "kernel"):
        with population_path(path):
            out[path] = calibrate_sites(world, s, sites=sites).table
    a, b = out["torch"], out["kernel"]
    assert list(a["generations"]) == list(b["generations"])
    np.testing.assert_allclose(_scaled(a), _scaled(b), rtol=0, atol=tol)
    np.testing.assert_allclose(a["cost"], b["cost"], rtol=0, atol=1e-12 if tol < 1e-6 else 1e-5)


def test_opt_all_search_identical_through_both_paths(world):
    s = CalibrationSettings(max_gen=40, seed=5, device="cpu", dtype="float64")
    sites = list(world.sites["site"])
    groups = {"fold0/all": sites[:6], "fold1/all": sites[2:]}
    out = {}
    for path in ("torch", "kernel"):
        with population_path(path):
            out[path] = calibrate_pooled(world, groups, s).units
    a, b = out["torch"], out["kernel"]
    assert list(a["generations"]) == list(b["generations"])
    np.testing.assert_allclose(a[list(PARAMETERS)].to_numpy(), b[list(PARAMETERS)].to_numpy(),
                               rtol=1e-9, atol=0)
    np.testing.assert_allclose(a["cost"], b["cost"], rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------ the engine
def test_pycma_leaves_the_global_generator_alone():
    # The engine no longer saves and restores numpy's global state around every ask/tell;
    # this is the property it relies on (with its options: bounds, own randn, seed NaN),
    # through restarts with larger populations. The engine also checks it every generation.
    import cma

    np.random.seed(123)  # noqa: NPY002
    before = np.random.get_state()  # noqa: NPY002
    for seed, pop in ((0, None), (1, 22)):
        rng = np.random.RandomState(seed)  # noqa: NPY002
        opts = {"bounds": [0.0, 1.0], "randn": rng.randn, "seed": np.nan, "verbose": -9,
                "maxiter": 200, "tolfun": 1e-6, "tolx": 1e-4, "tolfunhist": 1e-7}
        if pop:
            opts["popsize"] = pop
        es = cma.CMAEvolutionStrategy(rng.uniform(0.1, 0.9, 12), 0.25, opts)
        while not es.stop():
            X = es.ask()
            es.tell(X, [float(np.sum((np.asarray(x) - 0.97) ** 2)) for x in X])
    after = np.random.get_state()  # noqa: NPY002
    assert after[2] == before[2] and np.array_equal(after[1], before[1])


def test_scalar_bound_transform_is_pycmas_bit_for_bit():
    import cma

    from lue_spie.calibrate.engine import _ScalarBoundTransform

    rng = np.random.default_rng(0)
    ours, theirs = _ScalarBoundTransform([0.0, 1.0]), cma.BoundTransform([0.0, 1.0])
    X = np.concatenate([rng.normal(0.5, s, (3000, 12)) for s in (0.05, 0.4, 3.0, 80.0)])
    X[:4] = [[0.0] * 12, [1.0] * 12, [-0.05] * 12, [1.05] * 12]
    for x in X:
        assert np.array_equal(ours.repair(x), theirs.repair(x))
    # And a whole search: the same trajectory with either handler.
    best = []
    for handler in (_ScalarBoundTransform, cma.BoundTransform):
        rs = np.random.RandomState(3)  # noqa: NPY002
        es = cma.CMAEvolutionStrategy(np.full(12, 0.5), 0.3, {
            "bounds": [0.0, 1.0], "BoundaryHandler": handler, "randn": rs.randn,
            "seed": np.nan, "verbose": -9, "maxiter": 150})
        while not es.stop():
            X = es.ask()
            es.tell(X, [float(np.sum((np.asarray(x) - 0.99) ** 2)) for x in X])
        best.append(es.result.xbest)
    assert np.array_equal(best[0], best[1])


def test_restart_only_when_it_can_converge():
    class _ES:
        countiter = 120

    s = CalibrationSettings(max_gen=200, restarts=2, device="cpu")
    u = Unit(id="x", rows=[0], free=np.ones(13, bool), rng=np.random.RandomState(0),  # noqa: NPY002
             np_state=(), es=_ES(), generations=120)
    engine = Engine.__new__(Engine)
    engine.s = s
    assert not engine._restart_pays(u)  # 80 generations left for a run that took 120
    u.generations = 60
    assert engine._restart_pays(u)
    engine.s = s.replace(restart_min_generations="any")
    u.generations = 199
    assert engine._restart_pays(u)
    with pytest.raises(ValueError, match="restart_min_generations"):
        CalibrationSettings(restart_min_generations="never")


# ----------------------------------------------------------------------------- the threads
def test_usable_cores_never_above_affinity_or_quota(tmp_path, monkeypatch):
    n = execution.usable_cores()
    assert 1 <= n <= len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert execution._cgroup_cpus(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert execution._cgroup_cpus(tmp_path) is None
    monkeypatch.setattr(execution, "_cgroup_cpus", lambda: 1.5)
    assert execution.usable_cores() == 1


def test_apply_threads_caps_at_the_cores():
    import numba

    before = torch.get_num_threads()
    try:
        got = execution.apply_threads(kernel=10_000, torch_threads=10_000)
        cores = execution.usable_cores()
        assert got["kernel"] == numba.get_num_threads() <= cores
        assert got["torch"] == torch.get_num_threads() <= cores
        assert execution.apply_threads(kernel=1)["kernel"] == 1
    finally:
        torch.set_num_threads(before)
        execution.apply_threads()


def test_host_shares_divide_cores_between_workers_of_a_host():
    workers = {"tcp://a:1": {"host": "a", "nthreads": 1}, "tcp://a:2": {"host": "a", "nthreads": 1},
               "tcp://b:1": {"host": "b", "nthreads": 4}}
    cores = {"tcp://a:1": 2, "tcp://a:2": 2, "tcp://b:1": 16}
    assert execution._host_shares(cores, workers) == {"tcp://a:1": 1, "tcp://a:2": 1,
                                                      "tcp://b:1": 4}
    assert execution._host_shares({"tcp://a:1": 1, "tcp://a:2": 1}, dict(
        list(workers.items())[:2])) == {"tcp://a:1": 1, "tcp://a:2": 1}
    with pytest.raises(ValueError, match="kernel_threads"):
        execution.ExecutionSettings(kernel_threads=-1)

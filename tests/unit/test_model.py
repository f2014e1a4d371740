"""Tests of lue_spie.model against the step-by-step NumPy oracle, gradients and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _forcing import random_forcing, random_params

from lue_spie import model
from lue_spie.model import scratch
from lue_spie.model.lag import _scan
from lue_spie.model.reference import simulate_reference
from lue_spie.params import BOUNDS, PARAMETERS, index

KEYS = ("GPP", "fT", "fVPD", "fVPD_VPD", "fVPD_CO2", "fW", "fL", "fCI", "Tf", "Wf", "APAR")


def _rel_err(a: np.ndarray, b: np.ndarray, floor: float = 0.0) -> float:
    """Largest |a - b| / |b| over entries with |b| > floor (b the float64 oracle)."""
    a = np.asarray(a, dtype=np.float64)
    keep = np.abs(b) > floor
    return float(np.max(np.abs(a[keep] - b[keep]) / np.abs(b[keep]))) if keep.any() else 0.0


def _oracle(forcing, params):
    return simulate_reference({k: v.double().numpy() for k, v in forcing.items()},
                              params.double().numpy())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_oracle_float64(seed):
    f = random_forcing(5, 400, seed)
    p = random_params(5, seed)
    out = model.simulate(f, p)
    ref = _oracle(f, p)
    for k in KEYS:
        assert out[k].dtype == torch.float64
        assert _rel_err(out[k].numpy(), ref[k]) <= 1e-10, k


@pytest.mark.parametrize("seed", [0, 3])
def test_matches_oracle_float32(seed):
    f64 = random_forcing(5, 400, seed)
    p64 = random_params(5, seed)
    f32 = {k: v.float() for k, v in f64.items()}
    p32 = p64.float()
    out = model.simulate(f32, p32)
    # The oracle sees exactly the float32-rounded inputs. Entries below 1e-6 are left out:
    # there an exponent argument x of magnitude > ~14 makes float32's own conditioning
    # (|x| * 6e-8 per rounding) the limit, and such GPP values are physically zero.
    ref = _oracle(f32, p32)
    for k in KEYS:
        assert out[k].dtype == torch.float32
        # Everywhere, errors are within 1e-5 of the series' scale (this also covers Tf and
        # Wf, signed drivers whose pointwise relative error is meaningless where they cross 0).
        assert float(np.max(np.abs(out[k].numpy() - ref[k]))) <= 1e-5 * np.abs(ref[k]).max()
        if k not in ("Tf", "Wf"):
            assert _rel_err(out[k].numpy(), ref[k], floor=1e-6) <= 1e-5, k


def test_lag_extremes_and_long_records_do_not_overflow():
    # 25 years of days with alpha at both ends of its range, float32 and float64.
    n = 25 * 365
    x = torch.as_tensor(np.random.default_rng(5).normal(10, 8, (3, n)))
    alpha = torch.tensor([0.0, 0.5, 0.9], dtype=torch.float64)
    ref = model.lag_filter(x, alpha, method="loop")
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        y = model.lag_filter(x.to(dtype), alpha.to(dtype))
        assert torch.isfinite(y).all()
        scale = ref.abs().max()
        assert float((y.double() - ref).abs().max() / scale) <= tol
    # alpha = 0 is the identity, exactly.
    assert torch.equal(model.lag_filter(x, torch.tensor(0.0, dtype=x.dtype)), x)


@pytest.mark.parametrize("days", [1, 2, 3, 7, 64, 65, 1000])
def test_scan_equals_loop_values_and_gradients(days):
    g = torch.Generator().manual_seed(days)
    x = torch.randn(4, days, dtype=torch.float64, generator=g, requires_grad=True)
    alpha = torch.tensor([0.0, 0.3, 0.75, 0.9], dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, days, dtype=torch.float64, generator=g)
    ys = model.lag_filter(x, alpha, "scan")
    yl = model.lag_filter(x, alpha, "loop")
    torch.testing.assert_close(ys, yl, rtol=1e-12, atol=1e-12)
    # With one day alpha is unused (y = x): allow_unused, and compare zeros then.
    gs = torch.autograd.grad((ys * w).sum(), (x, alpha), allow_unused=True)
    gl = torch.autograd.grad((yl * w).sum(), (x, alpha), allow_unused=True)
    for a, b in zip(gs, gl, strict=True):
        a = torch.zeros_like(alpha) if a is None else a
        b = torch.zeros_like(alpha) if b is None else b
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_gradcheck_params_float64():
    f = random_forcing(3, 40, seed=7)
    p = random_params(3, seed=7, alphas=(0.0, 0.45, 0.9)).requires_grad_(True)

    def gpp(params):
        return model.simulate(f, params, validate=False)["GPP"]

    assert torch.autograd.gradcheck(gpp, (p,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradcheck_forcing_float64():
    f = random_forcing(2, 25, seed=8)
    p = random_params(2, seed=8, alphas=(0.3, 0.8))
    keys = model.FORCING_KEYS
    # Keep CI away from the clip and VPD/CO2 positive so finite differences are smooth.
    f["CI"] = f["CI"].clamp(0.05, 0.95)
    inputs = tuple(f[k].clone().requires_grad_(True) for k in keys)

    def gpp(*xs):
        return model.simulate(dict(zip(keys, xs, strict=True)), p, validate=False)["GPP"]

    assert torch.autograd.gradcheck(gpp, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradient_finite_at_masked_lags():
    # A masked lag parameter is exactly 0: its gradient (and all others) must be finite.
    f = random_forcing(2, 200, seed=9)
    p = random_params(2, seed=9, alphas=(0.0, 0.0)).requires_grad_(True)
    model.simulate(f, p)["GPP"].sum().backward()
    assert torch.isfinite(p.grad).all()


def test_ideal_conditions_identity():
    n_sites, n_days = 4, 30
    rng = np.random.default_rng(11)
    p = np.tile(BOUNDS.mean(axis=1), (n_sites, 1))
    p[:, index("gamma")] = 0.0
    p[:, index("mu")] = 0.001
    p[:, index("kW")] = -30.0
    p[:, index("WI")] = 0.01
    p[:, index("eps_max")] = rng.uniform(0.5, 9.5, n_sites)
    p[:, index("Topt")] = rng.uniform(5, 35, n_sites)
    p[:, index("alpha_T")] = [0.0, 0.9, 0.3, 0.6]
    params = torch.as_tensor(p)
    PAR = torch.as_tensor(rng.uniform(1, 15, (n_sites, n_days)))
    FAPAR = torch.as_tensor(rng.uniform(0.1, 1, (n_sites, n_days)))
    ones = torch.ones(n_sites, n_days, dtype=torch.float64)
    forcing = {
        "T": params[:, index("Topt"), None] * ones,
        "VPD": 0.0 * ones,
        "CO2": params[:, index("Ca0"), None] * ones,
        "W": 1.0 * ones,  # W >> WI with kW = -30: fW = 1 / (1 + e^-29.7)
        "PAR": PAR,
        "FAPAR": FAPAR,
        "CI": ones,
    }
    out = model.simulate(forcing, params)
    for k in ("fT", "fVPD", "fL", "fCI"):
        torch.testing.assert_close(out[k], ones, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out["fW"], ones, rtol=1e-12, atol=1e-12)
    expected = PAR * FAPAR * params[:, index("eps_max"), None]
    torch.testing.assert_close(out["GPP"], expected, rtol=1e-10, atol=0.0)


def test_broadcast_population_equals_per_site():
    f = random_forcing(3, 120, seed=12)
    pop = torch.stack([random_params(3, seed=s) for s in range(5)], dim=1)  # (3, 5, 13)
    out = model.simulate({k: v[:, None, :] for k, v in f.items()}, pop)
    assert out["GPP"].shape == (3, 5, 120)
    for j in range(5):
        single = model.simulate(f, pop[:, j])
        for k in KEYS:
            torch.testing.assert_close(out[k][:, j], single[k], rtol=1e-13, atol=1e-13)


def test_forcing_is_moved_to_params_dtype():
    f = random_forcing(2, 10, seed=13, dtype=torch.float64)
    out = model.simulate(f, random_params(2, seed=13).float())
    assert all(v.dtype == torch.float32 for v in out.values())


def test_ci_clip_keeps_clear_days_productive():
    f = random_forcing(2, 10, seed=14)
    f["CI"] = torch.zeros_like(f["CI"])
    p = random_params(2, seed=14)
    out = model.simulate(f, p)
    expected = torch.full_like(out["fCI"], 1e-3) ** p[:, index("mu"), None]
    torch.testing.assert_close(out["fCI"], expected)
    assert (out["fCI"] > 0).all()


def test_co2_denominator_guard():
    f = random_forcing(1, 5, seed=15)
    p = random_params(1, seed=15)
    p[0, index("Ca0")], p[0, index("Cm")] = 390.0, 100.0
    f["CO2"] = torch.full_like(f["CO2"], 290.0)  # ca - Ca0 + Cm = 0
    out = model.simulate(f, p)
    assert torch.isfinite(out["GPP"]).all()
    torch.testing.assert_close(out["fVPD_CO2"], torch.full_like(out["fVPD_CO2"], -99.0))


class TestErrors:
    def setup_method(self):
        self.f = random_forcing(3, 20, seed=16)
        self.p = random_params(3, seed=16)

    def test_missing_forcing_key(self):
        del self.f["CI"]
        with pytest.raises(KeyError, match=r"missing key\(s\) \['CI'\]"):
            model.simulate(self.f, self.p)

    def test_mismatched_forcing_shapes(self):
        self.f["VPD"] = self.f["VPD"][:, :10]
        with pytest.raises(ValueError, match=r"forcing\['VPD'\]: shape \(3, 10\) differs"):
            model.simulate(self.f, self.p)

    def test_wrong_param_shape(self):
        with pytest.raises(ValueError, match=r"params: expected shape \(sites, 13\)"):
            model.simulate(self.f, self.p[:, :12])

    def test_params_not_a_tensor(self):
        with pytest.raises(TypeError, match="params: expected a torch.Tensor"):
            model.simulate(self.f, self.p.numpy())

    def test_non_broadcastable_batch(self):
        with pytest.raises(ValueError, match="does not broadcast"):
            model.simulate(self.f, self.p[:2])

    def test_nan_parameter(self):
        self.p[1, index("WI")] = float("nan")
        with pytest.raises(ValueError, match="'WI' is nan"):
            model.simulate(self.f, self.p)

    def test_parameter_out_of_bounds(self):
        self.p[0, index("alpha_W")] = 0.95
        with pytest.raises(ValueError, match=r"'alpha_W' = 0.95 .* outside its bounds"):
            model.simulate(self.f, self.p)

    def test_nan_forcing(self):
        self.f["T"][0, 3] = float("nan")
        with pytest.raises(ValueError, match=r"forcing\['T'\]: 1 non-finite"):
            model.simulate(self.f, self.p)

    def test_empty_day_axis(self):
        f = {k: v[:, :0] for k, v in self.f.items()}
        with pytest.raises(ValueError, match="expected shape"):
            model.simulate(f, self.p)

    def test_bad_lag_method(self):
        with pytest.raises(ValueError, match="method must be"):
            model.lag_filter(self.f["T"], torch.tensor(0.5, dtype=torch.float64), "fft")


def test_output_keys_and_shapes():
    f = random_forcing(2, 15, seed=17)
    out = model.simulate(f, random_params(2, seed=17))
    assert set(model.OUTPUT_KEYS) <= set(out)
    assert all(out[k].shape == (2, 15) for k in model.OUTPUT_KEYS)
    assert PARAMETERS[0] == "eps_max"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    f = random_forcing(4, 730, seed=18)
    p = random_params(4, seed=18)
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        cpu = model.simulate({k: v.to(dtype) for k, v in f.items()}, p.to(dtype))
        pc = p.to(dtype).cuda().requires_grad_(True)
        gpu = model.simulate({k: v.to(dtype).cuda() for k, v in f.items()}, pc)
        assert gpu["GPP"].device.type == "cuda"
        assert _rel_err(gpu["GPP"].detach().cpu().numpy(), cpu["GPP"].double().numpy()) <= tol
        gpu["GPP"].sum().backward()
        assert torch.isfinite(pc.grad).all()


def test_lag_filter_gradcheck_and_second_order():
    g = torch.Generator().manual_seed(21)
    x = torch.randn(3, 37, dtype=torch.float64, generator=g, requires_grad=True)
    alpha = torch.tensor([0.0, 0.5, 0.9], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model.lag_filter, (x, alpha))
    assert torch.autograd.gradgradcheck(model.lag_filter, (x, alpha))


def test_finite_forcing_whose_sum_overflows_is_accepted():
    f = {k: v.float() for k, v in random_forcing(2, 10, seed=22).items()}
    f["PAR"][:, :] = 3e38  # absurd but finite: the sum overflows, the values do not
    out = model.simulate(f, random_params(2, seed=22).float())
    assert out["GPP"].shape == (2, 10)


def test_resolve_device():
    assert model.resolve_device("cpu") == "cpu"
    assert model.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        model.resolve_device("gpu")
    with pytest.raises(ValueError, match="device must be"):
        model.resolve_device("cudafoo")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            model.resolve_device("cuda")


# ------------------------------------------------------------------ fused model and blocked scan
def _loop_recurrence(b, a, y0=None, reverse=False, scale=None):
    """Reference for lag._scan: the recursion one day at a time (float64)."""
    b = b * (1.0 if scale is None else scale)
    y = torch.empty_like(b)
    prev = torch.zeros(b.shape[0], dtype=b.dtype) if y0 is None else y0[:, 0]
    days = range(b.shape[1] - 1, -1, -1) if reverse else range(b.shape[1])
    for t in days:
        prev = a[:, 0] * prev + b[:, t]
        y[:, t] = prev
    return y


@pytest.mark.parametrize("days", [1, 2, 15, 16, 17, 31, 32, 33, 255, 256, 257, 1000, 3652])
@pytest.mark.parametrize("reverse", [False, True])
def test_blocked_scan_equals_recursion(days, reverse):
    g = torch.Generator().manual_seed(days)
    b = torch.randn(6, days, dtype=torch.float64, generator=g)
    a = torch.tensor([[0.0], [1e-3], [0.3], [0.75], [0.9], [1.0]], dtype=torch.float64)
    y0 = torch.randn(6, 1, dtype=torch.float64, generator=g)
    scale = 1.0 - a + 0.1
    for kwargs in ({}, {"y0": y0}, {"scale": scale}, {"y0": y0, "scale": scale}):
        ref = _loop_recurrence(b, a, reverse=reverse, **kwargs)
        got = _scan(b, a, reverse=reverse, **kwargs)
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
        # The differentiable (out-of-place) variant gives the same numbers.
        bg = b.clone().requires_grad_(True)
        torch.testing.assert_close(_scan(bg, a, reverse=reverse, **kwargs).detach(), ref,
                                   rtol=1e-12, atol=1e-12)


def _weights(out, seed):
    """Random upstream weights for every differentiable output (a loss touching them all)."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, dtype=v.dtype, generator=g) for k, v in out.items()
            if k != "APAR"}


def _grads(forcing, params, method, seed, outputs=None):
    p = params.clone().requires_grad_(True)
    out = model.simulate(forcing, p, validate=False, method=method, outputs=outputs)
    w = _weights(out, seed)
    loss = sum((out[k] * w[k]).sum() for k in w)
    (grad,) = torch.autograd.grad(loss, p)
    return {k: v.detach() for k, v in out.items()}, grad


CASES = {
    # forcing (sites, days) with params (sites, 13): SPIE's mini-batch
    "sites": lambda f, P: (f, P(4, 0)),
    # a CMA-ES population: forcing (sites, 1, days), params (sites, pop, 13)
    "population": lambda f, P: ({k: v[:, None] for k, v in f.items()},
                                torch.stack([P(4, s) for s in range(3)], dim=1)),
    # ten folds at once: params (folds, sites, 13) broadcast over forcing (sites, days)
    "folds": lambda f, P: (f, torch.stack([P(4, s) for s in range(2)], dim=0)),
    # one vector for every site (a pooled optimisation)
    "shared": lambda f, P: (f, P(1, 5)[0]),
    # folds without any lag: the drivers stay smaller than the batch
    "folds_no_lag": lambda f, P: (f, torch.stack([P(4, s) for s in range(2)], dim=0)
                                  * torch.tensor([1.0] * 11 + [0.0, 0.0], dtype=torch.float64)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_equals_composable_values_and_gradients(case, monkeypatch):
    # Small blocks, so that the block-by-block passes over the leading axis are exercised.
    monkeypatch.setattr(scratch, "BLOCK_BYTES", 3 * 200 * 8)
    f = random_forcing(4, 200, seed=30)

    def P(n, seed):  # mixed lags: some rows 0 (not filtered), others free
        return random_params(n, seed=seed, alphas=(0.0, 0.6, 0.0, 0.9))

    forcing, params = CASES[case](f, P)
    ref_out, ref_grad = _grads(forcing, params, "composable", seed=1)
    out, grad = _grads(forcing, params, "auto", seed=1)
    for k in model.OUTPUT_KEYS:
        torch.testing.assert_close(out[k], ref_out[k], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-9)
    # GPP alone (the common case) and a subset of outputs.
    for outputs in (("GPP",), ("GPP", "fT", "fVPD_VPD", "fW", "APAR"), ("Tf", "fVPD")):
        _, g_ref = _grads(forcing, params, "composable", seed=2, outputs=outputs)
        _, g = _grads(forcing, params, "auto", seed=2, outputs=outputs)
        torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-9)


def test_fused_gradcheck_every_output():
    f = model.prepare_forcing(random_forcing(3, 40, seed=31))
    p = random_params(3, seed=31, alphas=(0.0, 0.45, 0.9)).requires_grad_(True)
    keys = [k for k in model.OUTPUT_KEYS if k != "APAR"]

    def all_outputs(params):
        out = model.simulate(f, params, validate=False)
        return tuple(out[k] for k in keys)

    assert torch.autograd.gradcheck(all_outputs, (p,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_fused_gradient_edge_cases():
    # eps_max = 0 (GPP = 0 but d GPP / d eps_max is not), CO2 far below Ca0 - Cm (the
    # denominator's guard binds on some days), and every lag at 0 with a gradient.
    f = random_forcing(3, 60, seed=32)
    f["CO2"][0, :30] = 280.0
    p = random_params(3, seed=32, alphas=(0.0, 0.0, 0.0))
    p[0, index("eps_max")] = 0.0
    p[0, index("Ca0")], p[0, index("Cm")] = 390.0, 100.0
    _, g_ref = _grads(f, p, "composable", seed=3)
    _, g = _grads(f, p, "auto", seed=3)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-9)
    assert g[0, index("eps_max")] != 0


def test_fused_has_no_second_derivative_but_composable_does():
    f = random_forcing(2, 30, seed=33)
    p = random_params(2, seed=33, alphas=(0.3, 0.8)).requires_grad_(True)
    with pytest.raises(RuntimeError, match="method='composable'"):
        torch.autograd.grad(model.simulate(f, p)["GPP"].sum(), p, create_graph=True)

    def gpp(params):
        return model.simulate(f, params, validate=False, method="composable")["GPP"]

    assert torch.autograd.gradgradcheck(gpp, (p,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_prepared_forcing_equals_mapping_and_selects():
    f = random_forcing(5, 90, seed=34)
    p = random_params(5, seed=34)
    pf = model.prepare_forcing(f)
    a, b = model.simulate(f, p), model.simulate(pf, p)
    for k in model.OUTPUT_KEYS:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    # (The lag filter's matrix products may round differently for another batch: 1 ulp.)
    sub = model.simulate(pf.select([4, 1]), p[[4, 1]])
    torch.testing.assert_close(sub["GPP"], a["GPP"][[4, 1]], rtol=1e-14, atol=0)
    sl = model.simulate(pf.select(slice(1, 3)), p[1:3])
    torch.testing.assert_close(sl["GPP"], a["GPP"][1:3], rtol=1e-14, atol=0)
    assert pf.unsqueeze(1).shape == (5, 1, 90)
    f32 = pf.to(torch.float32)
    assert f32.dtype == torch.float32 and f32.co2_min.dtype == torch.float32
    assert pf.to(torch.float64) is pf
    # simulate moves a prepared forcing to the parameters' dtype.
    assert model.simulate(pf, p.float())["GPP"].dtype == torch.float32


def test_scratch_gpp_matches_and_is_reused():
    pf = model.prepare_forcing(random_forcing(3, 50, seed=35)).unsqueeze(1)
    pop = torch.stack([random_params(3, seed=s, alphas=(0.0, 0.5, 0.9)) for s in range(4)],
                      dim=1)
    ref = model.simulate(pf, pop)
    days = torch.tensor([[0, 5, 49], [3, 3, 7], [10, 20, 30]]).unsqueeze(1)  # (3, 1, K)
    for _ in range(3):  # the second and third calls reuse the cached memory
        with model.scratch_gpp(pf, pop, {"fT": days, "fW": days}) as (gpp, at):
            torch.testing.assert_close(gpp, ref["GPP"], rtol=1e-13, atol=0)
            for k in ("fT", "fW"):
                expect = torch.gather(ref[k], -1, days.expand(3, 4, 3))
                torch.testing.assert_close(at[k], expect, rtol=1e-14, atol=0)
            gpp.zero_()  # allowed: scratch memory
    with pytest.raises(ValueError, match="at_days can hold"):
        with model.scratch_gpp(pf, pop, {"GPP": days}):
            pass
    model.clear_scratch()


def test_outputs_subset_and_bad_names():
    f = random_forcing(2, 20, seed=36)
    out = model.simulate(f, random_params(2, seed=36), outputs=("GPP", "Wf"))
    assert list(out) == ["GPP", "Wf"] and out["Wf"].shape == (2, 20)
    with pytest.raises(ValueError, match="outputs must be"):
        model.simulate(f, random_params(2, seed=36), outputs=("GPP", "gpp"))
    with pytest.raises(ValueError, match="method must be"):
        model.simulate(f, random_params(2, seed=36), method="fast")

"""The calibration cost: each term on hand-made cases, NaN safety, pooling, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lue_spie.cost import (
    W_IDEAL,
    calibration_cost,
    ideal_constraint,
    nonideal_constraint,
)
from lue_spie.metrics import nse
from lue_spie.model import simulate
from lue_spie.params import ILLUSTRATIVE, PARAMETERS, index

BASE = torch.tensor([ILLUSTRATIVE[p] for p in PARAMETERS], dtype=torch.float64)


def _with(**values: float) -> torch.Tensor:
    p = BASE.clone()
    for k, v in values.items():
        p[index(k)] = v
    return p


def test_ideal_constraint_terms_hand_made():
    # Steep fW with its optimum at the dry end reaches 1 on the Wf ramp (shortfall ~ e^-29).
    steep = _with(kW=-30.0, WI=0.02)
    terms = ideal_constraint(steep, return_terms=True)
    for k in ("fT", "fVPD_VPD", "fL"):
        assert terms[k].item() == pytest.approx(0.0, abs=1e-12)
    assert terms["fW"].item() == pytest.approx(1.0 - 1.0 / (1.0 + math.exp(-30 * 0.98)),
                                               abs=1e-15)
    # Shallow fW with its optimum at the wet end cannot reach 1: max at Wf = 1.
    shallow = _with(kW=-5.0, WI=0.99)
    expect = 1.0 - 1.0 / (1.0 + math.exp(-5.0 * (1.0 - 0.99)))
    got = ideal_constraint(shallow, return_terms=True)
    assert got["fW"].item() == pytest.approx(expect, rel=1e-12)
    assert got["C_ideal"].item() == pytest.approx(expect, rel=1e-12)
    assert ideal_constraint(shallow).item() == pytest.approx(expect, rel=1e-12)


def test_ideal_constraint_fT_independent_of_ramp_resolution():
    # Topt between ramp points and a sharp peak (kT = 1): still exactly 1 at the peak.
    p = _with(Topt=17.123, kT=1.0)
    assert ideal_constraint(p, n_ramp=7, return_terms=True)["fT"].item() == pytest.approx(
        0.0, abs=1e-15)


def test_ideal_constraint_batched_and_apar_max_tensor():
    p = torch.stack([_with(kW=-5.0, WI=0.99), _with(kW=-30.0, WI=0.02)]).reshape(2, 1, 13)
    p = p.expand(2, 3, 13)
    out = ideal_constraint(p, apar_max=torch.tensor([[10.0], [5.0]], dtype=torch.float64))
    assert out.shape == (2, 3)
    assert out[0, 0] > 0.4 and out[1, 2] < 1e-10


def _hand_sim(fT, fVPD_VPD, fW):
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    return {"GPP": t([1.0] * len(fT)), "fT": t(fT), "fVPD_VPD": t(fVPD_VPD), "fW": t(fW)}


def test_nonideal_constraint_hand_made():
    forcing = {
        "T": torch.tensor([-5.0, -1.0, 10.0, 20.0], dtype=torch.float64),
        "VPD": torch.tensor([100.0, 2500.0, 3000.0, 500.0], dtype=torch.float64),
        "W": torch.tensor([0.005, 0.5, 0.5, 0.001], dtype=torch.float64),
    }
    sim = _hand_sim(fT=[0.5, 0.1, 0.9, 1.0],  # cold days: excess 0.3 and 0
                    fVPD_VPD=[1.0, 0.95, 0.8, 1.0],  # dry days: excess 0.05 and 0
                    fW=[0.7, 0.9, 0.9, 0.25])  # very dry soil: excess 0.5 and 0.05
    terms = nonideal_constraint(sim, forcing, return_terms=True)
    assert terms["fT"].item() == pytest.approx(0.3 / 4)
    assert terms["fVPD_VPD"].item() == pytest.approx(0.05 / 4)
    assert terms["fW"].item() == pytest.approx(0.55 / 4)
    assert terms["C_nonideal"].item() == pytest.approx((0.3 + 0.05 + 0.55) / 4)
    # A mask restricts the considered days (and the divisor).
    mask = torch.tensor([True, True, False, False])
    masked = nonideal_constraint(sim, forcing, mask, return_terms=True)
    assert masked["fT"].item() == pytest.approx(0.3 / 2)
    assert masked["fW"].item() == pytest.approx(0.5 / 2)
    # No stress, no penalty.
    calm = {"T": torch.full((4,), 15.0, dtype=torch.float64),
            "VPD": torch.full((4,), 500.0, dtype=torch.float64),
            "W": torch.full((4,), 0.5, dtype=torch.float64)}
    assert nonideal_constraint(sim, calm).item() == 0.0


def _forcing(n_sites=2, days=200, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    f = {
        "T": 10 - 15 * np.cos(2 * np.pi * t / 365) + rng.normal(0, 2, (n_sites, days)),
        "VPD": rng.uniform(0, 3000, (n_sites, days)),
        "CO2": np.full((n_sites, days), 400.0),
        "W": rng.uniform(0.0, 1.0, (n_sites, days)),
        "PAR": rng.uniform(1, 12, (n_sites, days)),
        "FAPAR": rng.uniform(0.2, 0.9, (n_sites, days)),
        "CI": rng.uniform(0, 1, (n_sites, days)),
    }
    return {k: torch.as_tensor(v, dtype=torch.float64) for k, v in f.items()}


def test_calibration_cost_combines_terms_with_weights():
    f = _forcing()
    # Site 0: shallow fW that cannot reach 1, and a flat fT near 5 degC that stays high on
    # frost days (both constraints bite); site 1: the illustrative vector (neither does).
    p = torch.stack([_with(kW=-5.0, WI=0.99, Topt=5.0, kT=20.0), BASE]).unsqueeze(1)
    fb = {k: v.unsqueeze(1) for k, v in f.items()}
    sim = simulate(fb, p)
    obs = sim["GPP"].detach() * 1.1 + 0.2
    good = torch.ones_like(obs, dtype=torch.bool)
    out = calibration_cost(sim, obs, good, p, fb, w_ideal=10.0, w_nonideal=3.0)
    assert out["cost"].shape == (2, 1)
    expect_nse = nse(obs.numpy(), sim["GPP"].detach().numpy())
    np.testing.assert_allclose(out["nse"].detach().numpy(), expect_nse, rtol=1e-12)
    recomposed = (1 - out["nse"]) + 10.0 * out["C_ideal"] + 3.0 * out["C_nonideal"]
    torch.testing.assert_close(out["cost"], recomposed)
    np.testing.assert_allclose(out["C_ideal"].detach().numpy(),
                               ideal_constraint(p).numpy(), rtol=1e-12)
    assert out["C_ideal"][0, 0] > 0.4  # the shallow fW site
    assert out["C_nonideal"][0, 0] > 0.01  # fT above 0.2 on frost days
    assert out["C_nonideal"][1, 0] == 0.0
    assert (out["n_good"] == 200).all()


def test_perfect_fit_costs_only_constraints_and_defaults():
    f = _forcing(1)
    p = _with(kW=-30.0, WI=0.02).reshape(1, 13)
    sim = simulate(f, p)
    good = torch.ones(1, 200, dtype=torch.bool)
    out = calibration_cost(sim, sim["GPP"].detach(), good, p, f)
    assert out["nse"].item() == pytest.approx(1.0)
    assert out["cost"].item() == pytest.approx(W_IDEAL * out["C_ideal"].item()
                                               + out["C_nonideal"].item(), abs=1e-12)


def test_good_days_nan_obs_and_too_few_days():
    f = _forcing(1, 50)
    p = BASE.reshape(1, 13)
    sim = simulate(f, p)
    obs = sim["GPP"].detach().clone() + 0.1 * torch.randn(1, 50, generator=torch.Generator()
                                                           .manual_seed(0), dtype=torch.float64)
    good = torch.ones(1, 50, dtype=torch.bool)
    good[0, :10] = False
    obs[0, :5] = float("nan")  # NaN on bad days: ignored
    obs[0, 20] = float("nan")  # NaN on a good day: treated as missing
    out = calibration_cost(sim, obs, good, p, f)
    assert torch.isfinite(out["cost"]).all()
    assert out["n_good"].item() == 39
    keep = good[0].numpy() & np.isfinite(obs[0].numpy())
    assert out["nse"].item() == pytest.approx(nse(obs[0].numpy()[keep],
                                                  sim["GPP"][0].detach().numpy()[keep]))
    few = torch.zeros_like(good)
    few[0, 30:33] = True
    assert torch.isnan(calibration_cost(sim, obs, few, p, f)["cost"]).all()


def test_nan_simulation_on_good_day_gives_nan_cost():
    f = _forcing(1, 30)
    p = BASE.reshape(1, 13)
    sim = dict(simulate(f, p))
    gpp = sim["GPP"].detach().clone()
    obs = gpp + 0.1
    gpp[0, 3] = float("nan")
    sim["GPP"] = gpp
    good = torch.ones(1, 30, dtype=torch.bool)
    assert torch.isnan(calibration_cost(sim, obs, good, p, f)["cost"]).all()
    good[0, 3] = False  # not on a good day: ignored
    assert torch.isfinite(calibration_cost(sim, obs, good, p, f)["cost"]).all()


def test_pooled_cost_is_mean_of_site_costs():
    f = _forcing(3, 120)
    fb = {k: v.unsqueeze(1) for k, v in f.items()}
    p = torch.stack([BASE, _with(Topt=25.0), _with(kT=3.0)]).unsqueeze(0)  # (1, pop=3, 13)
    p = p.expand(3, 3, 13)  # the same 3 candidates at the 3 sites
    sim = simulate(fb, p)
    obs = simulate(fb, BASE.reshape(1, 1, 13).expand(3, 1, 13))["GPP"] * 0.9
    good = torch.ones_like(obs, dtype=torch.bool)
    per_site = calibration_cost(sim, obs, good, p, fb)
    pooled = calibration_cost(sim, obs, good, p, fb, reduce_sites=0)
    assert pooled["cost"].shape == (3,)
    torch.testing.assert_close(pooled["cost"], per_site["cost"].mean(0))


def test_cost_is_differentiable_with_masked_nan_obs():
    f = _forcing(2, 100)
    fb = {k: v.unsqueeze(1) for k, v in f.items()}
    p = torch.stack([BASE, _with(Topt=25.0)]).unsqueeze(1).clone().requires_grad_(True)
    sim = simulate(fb, p)
    obs = sim["GPP"].detach() * 0.8
    obs[..., :7] = float("nan")
    good = torch.ones_like(obs, dtype=torch.bool)
    good[..., :7] = False
    out = calibration_cost(sim, obs, good, p, fb)
    out["cost"].sum().backward()
    assert torch.isfinite(p.grad).all()
    assert p.grad.abs().sum() > 0


def test_float32_close_to_float64():
    f = _forcing(1, 365)
    p = BASE.reshape(1, 13)
    obs = simulate(f, p)["GPP"] * 1.05
    good = torch.ones(1, 365, dtype=torch.bool)
    c64 = calibration_cost(simulate(f, p), obs, good, p, f)["cost"].item()
    p32 = p.float()
    f32 = {k: v.float() for k, v in f.items()}
    c32 = calibration_cost(simulate(f32, p32), obs.float(), good, p32, f32)["cost"].item()
    assert c32 == pytest.approx(c64, rel=1e-4, abs=1e-5)

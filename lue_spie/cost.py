"""The calibration cost: the one cost function of the project (SPEC section 2).

Site calibration (CMA-ES), the pooled optimisation methods (OPT-All, OPT-PFT) and SPIE
training all minimise the same quantity, computed here in torch (batched, differentiable)::

    cost = (1 - NSE) + w_ideal * C_ideal + w_nonideal * C_nonideal

``1 - NSE`` [-]
    Nash-Sutcliffe efficiency between ``GPP_obs`` and the simulated GPP over the site's
    good-quality days only (SPEC section 4). 0 for a perfect fit.

``C_ideal`` [-] ("ecological" constraint), weight ``w_ideal`` (default 1e3, dimensionless)
    Each sensitivity function must be able to reach 1 under ideal conditions. On ramps of the
    driver (T -5..40 degC for fT; VPD 4500..0 Pa at ca = 400 ppm for the VPD part of fVPD;
    Wf 0..1 for fW; APAR 0..max for fL) the maximum of each function is taken, and
    ``C_ideal = sum_f |1 - max f|`` (sum of four dimensionless shortfalls). With the paper's
    bounds the VPD part (maximum 1 at VPD = 0) and fL (maximum 1 at APAR = 0) always reach 1,
    and fT reaches 1 at Tf = Topt (inside the ramp); the term that can bite is fW, whose
    maximum at Wf = 1 is ``1 / (1 + exp(kW (1 - WI)))``, i.e. it forbids an optimal soil
    moisture WI near 1 with a shallow slope kW. The large weight makes it a hard constraint.
    Because the logistic fW never reaches 1 exactly, the term also acts as a soft barrier that
    favours steep kW: a shortfall of 1e-4 costs 0.1, as much as 0.1 of NSE. With virtual
    FLUXNET 1.0.0 (whose true kW, WI left a median shortfall of about 1e-4) this pulled the
    calibrated kW away from the truth (20 sites, 500 generations: kW within 0.05 of the truth
    in the scaled space at 15 % of sites with w_ideal = 1e3, at 75 % with w_ideal = 0; median
    NSE 0.939 either way); since 1.1.0 the virtual truth satisfies the constraint (shortfall
    at most 1e-5) and kW's median error halved (benchmarks/RESULTS.md). It is kept as the
    SPEC states it; pass ``w_ideal`` to study it.

``C_nonideal`` [-] ("dynamic" constraint), weight ``w_nonideal`` (default 1, dimensionless)
    Under clear stress a function must constrain GPP: the excess of fT above 0.2 on days
    with T < 0 degC, of the VPD part of fVPD above 0.9 on days with VPD > 2000 Pa, and of fW
    above 0.2 on days with W < 0.01. Each excess ``max(0, f - threshold)`` is summed over the
    considered days and divided by the number of considered days (so the term is a mean
    excess per day, independent of the record length, and 0 when the stress never occurs);
    the three means are added.

Adapted from a public re-implementation of the Bao et al. (2022) LUE model; the weights are
arguments of :func:`calibration_cost` and are documented in the book's methods chapter.

All functions broadcast over leading batch axes: the simulation has shape ``(*batch, days)``
and the parameters ``(*batch, 13)``; forcing and observations broadcast against ``(*batch,
days)`` (e.g. ``(sites, 1, days)`` against a population ``(sites, pop, 13)``).

The fast path for CMA-ES populations (site calibration, OPT-All, OPT-PFT) computes the same
cost without keeping any simulated series: :func:`prepare_cost` gathers once per set of sites
what does not depend on the parameters (:class:`CostData`: the prepared forcing, the
observations on the good days, their sum of squares about the mean, the days under each
stress), and :func:`population_cost` evaluates a ``(sites, pop, 13)`` population: on the CPU
by the fused kernel (:mod:`lue_spie.model.kernel`: one pass over the days per site and
candidate, the cost terms accumulated on the fly, nothing of size candidates x days stored),
elsewhere by torch operations block by block in scratch memory. Both are tested equal to
:func:`calibration_cost` and to each other (``tests/unit/test_cost.py``,
``tests/unit/test_kernel.py``); :func:`population_path` picks one for whole searches.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from lue_spie.metrics import MIN_POINTS, nse_torch
from lue_spie.model import PreparedForcing
from lue_spie.params import N_PARAMS, index

__all__ = [
    "W_IDEAL",
    "W_NONIDEAL",
    "RAMP_T",
    "RAMP_VPD",
    "RAMP_CA",
    "RAMP_WF",
    "STRESS",
    "ideal_constraint",
    "nonideal_constraint",
    "calibration_cost",
    "CostData",
    "prepare_cost",
    "population_cost",
    "population_path",
    "batch_cost",
]

#: Default weight of the ideal-conditions ("ecological") constraint [-].
W_IDEAL = 1e3
#: Default weight of the non-ideal ("dynamic") constraint [-].
W_NONIDEAL = 1.0
#: Ramp of temperature for fT [degC].
RAMP_T = (-5.0, 40.0)
#: Ramp of VPD for the VPD part of fVPD [Pa] (from dry to saturated).
RAMP_VPD = (4500.0, 0.0)
#: Atmospheric CO2 on the VPD ramp [ppm].
RAMP_CA = 400.0
#: Ramp of the lagged relative soil moisture Wf for fW [-].
RAMP_WF = (0.0, 1.0)
#: Stress thresholds of the non-ideal constraint: (forcing key, condition, threshold, output
#: key of simulate, largest allowed value of the function).
STRESS = (
    ("T", "<", 0.0, "fT", 0.2),
    ("VPD", ">", 2000.0, "fVPD_VPD", 0.9),
    ("W", "<", 0.01, "fW", 0.2),
)

_I = {name: index(name) for name in ("Topt", "kT", "kappa", "Ca0", "Ckappa", "Cm", "kW", "WI",
                                     "gamma")}



def _ramp(lo: float, hi: float, n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.linspace(lo, hi, n, dtype=like.dtype, device=like.device)


def ideal_constraint(
    params: torch.Tensor,
    *,
    apar_max: float | torch.Tensor = 20.0,
    n_ramp: int = 201,
    return_terms: bool = False,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """The ideal-conditions constraint ``sum_f |1 - max_ramp f|`` (unweighted) [-].

    Args:
        params: Physical parameters, shape ``(*batch, 13)``.
        apar_max: Upper end of the APAR ramp [MJ m-2 d-1]: a number or a tensor broadcastable
            to ``batch`` (e.g. the site's largest APAR). fL is largest at APAR = 0, so this only
            sets the ramp's extent.
        n_ramp: Points per ramp. fT peaks at ``Tf = Topt``, which is added to its ramp (clamped
            to the ramp) so the result does not depend on the ramp's resolution.
        return_terms: Return a dict with each function's shortfall (``"fT"``, ``"fVPD_VPD"``,
            ``"fW"``, ``"fL"``) and their sum (``"C_ideal"``) instead of the sum alone.

    Returns:
        Tensor of shape ``batch`` (or the dict of such tensors). Differentiable in ``params``.
    """
    from lue_spie.model import f_L, f_T, f_VPD, f_W

    # Always in float64: the shortfalls are small differences from 1 (e.g. 1e-4 for fW) that
    # float32 resolves only to ~1e-7 absolute, i.e. 1e-4 of cost after the weight 1e3. The
    # ramps are tiny, so this costs nothing; the result is cast back to params' dtype.
    out_dtype = params.dtype
    params = params.to(torch.float64)
    if isinstance(apar_max, torch.Tensor):
        apar_max = apar_max.to(torch.float64)
    p = {k: params[..., i].unsqueeze(-1) for k, i in _I.items()}
    # fT: ramp T -5..40 degC plus the peak Tf = Topt (clamped to the ramp).
    t = _ramp(*RAMP_T, n_ramp, params).expand(*params.shape[:-1], n_ramp)
    t = torch.cat([t, p["Topt"].clamp(*RAMP_T)], dim=-1)
    max_fT = f_T(t, p["Topt"], p["kT"]).amax(-1)
    # VPD part of fVPD: VPD 4500..0 Pa at ca = 400 ppm.
    vpd = _ramp(*RAMP_VPD, n_ramp, params)
    ca = torch.full_like(vpd, RAMP_CA)
    vpd_part, _ = f_VPD(vpd, ca, p["kappa"], p["Ca0"], p["Ckappa"], p["Cm"])
    max_fVPD = vpd_part.amax(-1)
    # fW: Wf 0..1.
    max_fW = f_W(_ramp(*RAMP_WF, n_ramp, params), p["kW"], p["WI"]).amax(-1)
    # fL: APAR 0..apar_max.
    frac = _ramp(0.0, 1.0, n_ramp, params)
    amax = torch.as_tensor(apar_max, dtype=params.dtype, device=params.device)
    apar = frac * amax.unsqueeze(-1) if amax.ndim else frac * amax
    max_fL = f_L(apar, p["gamma"]).amax(-1)
    terms = {
        "fT": (1.0 - max_fT).abs(),
        "fVPD_VPD": (1.0 - max_fVPD).abs(),
        "fW": (1.0 - max_fW).abs(),
        "fL": (1.0 - max_fL).abs(),
    }
    total = terms["fT"] + terms["fVPD_VPD"] + terms["fW"] + terms["fL"]
    if return_terms:
        return {k: v.to(out_dtype) for k, v in {**terms, "C_ideal": total}.items()}
    return total.to(out_dtype)


def nonideal_constraint(
    sim: Mapping[str, torch.Tensor],
    forcing: Mapping[str, torch.Tensor],
    mask: torch.Tensor | None = None,
    *,
    return_terms: bool = False,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """The non-ideal ("dynamic") constraint (unweighted) [-].

    For each stress in :data:`STRESS` (T < 0 degC -> fT <= 0.2; VPD > 2000 Pa -> VPD part of
    fVPD <= 0.9; W < 0.01 -> fW <= 0.2): the excess ``max(0, f - threshold)`` summed over the
    considered days, divided by the number of considered days; the three are added.

    Args:
        sim: Output of :func:`lue_spie.model.simulate`, each ``(*batch, days)``.
        forcing: Forcing with at least ``T``, ``VPD``, ``W``, broadcastable to ``(*batch, days)``.
        mask: Optional boolean mask of considered days (default: every day), broadcastable.
        return_terms: Return a dict of the three terms and their sum (``"C_nonideal"``).

    Returns:
        Tensor of shape ``batch`` (or a dict of such tensors).
    """
    terms = {}
    ref = sim["GPP"]
    zero = torch.zeros((), dtype=ref.dtype, device=ref.device)
    if mask is not None:
        mask = mask.to(device=ref.device, dtype=torch.bool)
        n_days = mask.broadcast_to(ref.shape).sum(-1).to(ref.dtype).clamp_min(1.0)
    else:
        n_days = torch.full(ref.shape[:-1], float(ref.shape[-1]), dtype=ref.dtype,
                            device=ref.device)
    for key, op, limit, out_key, threshold in STRESS:
        x = forcing[key].to(device=ref.device, dtype=ref.dtype)
        stressed = x < limit if op == "<" else x > limit
        if mask is not None:
            stressed = stressed & mask
        excess = torch.where(stressed, torch.relu(sim[out_key] - threshold), zero)
        terms[out_key] = excess.sum(-1) / n_days
    total = terms["fT"] + terms["fVPD_VPD"] + terms["fW"]
    if return_terms:
        return {**terms, "C_nonideal": total}
    return total


def calibration_cost(
    sim: Mapping[str, torch.Tensor],
    GPP_obs: torch.Tensor,
    good: torch.Tensor,
    params: torch.Tensor,
    forcing: Mapping[str, torch.Tensor],
    *,
    w_ideal: float = W_IDEAL,
    w_nonideal: float = W_NONIDEAL,
    nonideal_mask: torch.Tensor | None = None,
    apar_max: float | torch.Tensor | None = None,
    reduce_sites: int | None = None,
    min_good: int = MIN_POINTS,
) -> dict[str, torch.Tensor]:
    """The calibration cost ``(1 - NSE) + w_ideal C_ideal + w_nonideal C_nonideal``.

    Args:
        sim: Output of :func:`lue_spie.model.simulate` for ``params``; ``sim["GPP"]`` has shape
            ``(*batch, days)`` [gC m-2 d-1].
        GPP_obs: Observed GPP [gC m-2 d-1], broadcastable to ``(*batch, days)``; NaN = missing.
        good: Boolean good-quality-day mask (SPEC section 4), broadcastable likewise. Only
            these days enter the NSE.
        params: The physical parameters that produced ``sim``, shape ``(*batch, 13)``.
        forcing: The forcing given to ``simulate`` (needs ``T``, ``VPD``, ``W``).
        w_ideal: Weight of ``C_ideal`` [-] (default 1e3: a hard constraint).
        w_nonideal: Weight of ``C_nonideal`` [-] (default 1).
        nonideal_mask: Days considered by the non-ideal constraint (default: ``good``).
        apar_max: End of the APAR ramp of the ideal constraint; default: the largest simulated
            APAR of each batch element (``sim["APAR"]``), else 20 MJ m-2 d-1.
        reduce_sites: If given, the batch axis over which the returned quantities are
            averaged: a pooled cost (one parameter vector for a group of sites, as OPT-All and
            OPT-PFT use) is the mean of the per-site costs. A NaN site makes the mean NaN:
            leave out sites with fewer than ``min_good`` good days before pooling.
        min_good: Fewest good days for a defined NSE (fewer gives NaN cost).

    Returns:
        Dict of tensors of shape ``batch`` (reduced over ``reduce_sites`` when given):
        ``"cost"``, ``"nse"``, ``"C_ideal"`` and ``"C_nonideal"`` (both unweighted),
        ``"n_good"`` (good days with an observation). ``cost`` is NaN where the NSE is
        undefined (too few good days, constant observations) or the simulation is not finite
        on a good day.
    """
    gpp = sim["GPP"]
    obs = GPP_obs.to(device=gpp.device, dtype=gpp.dtype)
    good = good.to(device=gpp.device, dtype=torch.bool) & torch.isfinite(obs)
    nse = nse_torch(obs, gpp, good, min_points=min_good)
    bad_sim = (good & ~torch.isfinite(gpp)).any(-1)
    if apar_max is None:
        apar_max = sim["APAR"].detach().amax(-1) if "APAR" in sim else 20.0
    c_ideal = ideal_constraint(params, apar_max=apar_max)
    c_nonideal = nonideal_constraint(sim, forcing, good if nonideal_mask is None
                                     else nonideal_mask)
    cost = (1.0 - nse) + w_ideal * c_ideal + w_nonideal * c_nonideal
    cost = torch.where(bad_sim, torch.full_like(cost, float("nan")), cost)
    n_good = good.broadcast_to(gpp.shape).sum(-1)
    out = {"cost": cost, "nse": nse, "C_ideal": c_ideal, "C_nonideal": c_nonideal,
           "n_good": n_good}
    if reduce_sites is not None:
        out = {k: v.to(gpp.dtype).mean(reduce_sites) for k, v in out.items()}
    return out


# ------------------------------------------------------------------------ population fast path
def _ideal_constraint_extremes(params: torch.Tensor, apar_max: torch.Tensor) -> torch.Tensor:
    """:func:`ideal_constraint` (default ramps) evaluated at the few points that matter.

    Each ramp maximum is attained at a point of the ramp known in advance, so evaluating
    there gives the same number without the 4 x 201-point ramps: fT is unimodal with its
    peak at ``Topt``, and the ramp's maximum is at the point closest to Topt, which is
    ``clamp(Topt)`` (added to the ramp by :func:`ideal_constraint`); the VPD part
    ``exp(kappa r VPD)`` and the logistic fW are monotone in their driver, so their maxima
    are at an end of the ramp; fL ``1 / (1 + gamma APAR)`` is monotone for gamma >= 0 (for
    gamma < 0, outside the bounds, the ramps are evaluated). Tested equal to
    :func:`ideal_constraint`.

    Args:
        params: ``(*batch, 13)``.
        apar_max: Broadcastable to ``batch``.

    Returns:
        ``C_ideal`` of shape ``batch`` in the dtype of ``params``.
    """
    from lue_spie.model import f_L, f_T, f_VPD, f_W

    if bool((params[..., _I["gamma"]] < 0).any()):
        return ideal_constraint(params, apar_max=apar_max)
    out_dtype = params.dtype
    f64 = torch.float64
    params = params.to(f64)
    p = {k: params[..., i].unsqueeze(-1) for k, i in _I.items()}
    max_fT = f_T(p["Topt"].clamp(*RAMP_T), p["Topt"], p["kT"])[..., 0]
    vpd = torch.tensor(RAMP_VPD, dtype=f64, device=params.device)
    vpd_part, _ = f_VPD(vpd, torch.full_like(vpd, RAMP_CA), p["kappa"], p["Ca0"], p["Ckappa"],
                        p["Cm"])
    wf = torch.tensor(RAMP_WF, dtype=f64, device=params.device)
    amax = torch.as_tensor(apar_max, dtype=f64, device=params.device)
    apar = torch.stack(torch.broadcast_tensors(torch.zeros_like(amax), amax), dim=-1)
    terms = (1.0 - max_fT).abs() + (1.0 - vpd_part.amax(-1)).abs()
    terms = terms + (1.0 - f_W(wf, p["kW"], p["WI"]).amax(-1)).abs()
    terms = terms + (1.0 - f_L(apar, p["gamma"]).amax(-1)).abs()
    return terms.to(out_dtype)


@dataclasses.dataclass(frozen=True, eq=False)
class CostData:
    """What the calibration cost needs that does not depend on the parameters, per site.

    Built once per set of sites by :func:`prepare_cost`; :func:`population_cost` evaluates
    populations of parameter vectors against it. Every tensor has the sites on its first axis.

    Attributes:
        forcing: Prepared forcing ``(sites, days)`` (:class:`lue_spie.model.PreparedForcing`).
        obs: ``GPP_obs`` on the days that enter the NSE, 0 elsewhere ``(sites, days)``.
        use: 1 on the days that enter the NSE (good quality and observed), else 0.
        n_good: Number of those days ``(sites,)``.
        sst: Sum of squares of ``obs`` about its mean over those days ``(sites,)`` (float64).
        ss_obs: Sum of squares of ``obs`` over those days ``(sites,)`` (float64).
        stress_days: Per entry of :data:`STRESS`, the days under that stress that the
            non-ideal constraint considers, ``(sites, K)`` indices padded with 0.
        stress_weight: Matching ``1 / n_days`` weights, 0 on the padding.
        stress_count: Matching numbers of days ``(sites,)``.
        apar_max: Largest APAR of each site (the end of the ideal constraint's APAR ramp).
        w_ideal, w_nonideal, min_good: As for :func:`calibration_cost`.
    """

    forcing: PreparedForcing
    obs: torch.Tensor
    use: torch.Tensor
    n_good: torch.Tensor
    sst: torch.Tensor
    ss_obs: torch.Tensor
    stress_days: tuple[torch.Tensor, ...]
    stress_weight: tuple[torch.Tensor, ...]
    stress_count: tuple[torch.Tensor, ...]
    apar_max: torch.Tensor
    w_ideal: float = W_IDEAL
    w_nonideal: float = W_NONIDEAL
    min_good: int = MIN_POINTS
    _packed: Any = dataclasses.field(default=None, repr=False, compare=False)

    def packed(self) -> Any:
        """The per-site arrays of the fused kernel (:func:`lue_spie.model.pack_cost`), packed
        at the first call and kept: CostData is read-only once evaluated."""
        if self._packed is None:
            from lue_spie.model import pack_cost

            shape = tuple(self.obs.shape)
            stressed = []
            for days, count in zip(self.stress_days, self.stress_count, strict=True):
                real = (torch.arange(days.shape[-1], device=days.device)
                        < count.unsqueeze(-1)).to(torch.int32)
                hits = torch.zeros(shape, dtype=torch.int32, device=days.device)
                stressed.append(hits.scatter_add_(-1, days, real) > 0)
            object.__setattr__(self, "_packed", pack_cost(self.forcing, self.obs, self.use,
                                                          stressed))
        return self._packed

    @property
    def n_sites(self) -> int:  # noqa: D102
        return int(self.obs.shape[0])

    @property
    def dtype(self) -> torch.dtype:  # noqa: D102
        return self.obs.dtype

    @property
    def device(self) -> torch.device:  # noqa: D102
        return self.obs.device

    def select(self, sites: slice | Sequence[int] | torch.Tensor) -> CostData:
        """The data of a subset of the sites (a slice gives views, indices give copies)."""
        if isinstance(sites, slice):
            pick = lambda v: v[sites]  # noqa: E731
            forcing = self.forcing.select(sites)
        else:
            idx = torch.as_tensor(sites, dtype=torch.long, device=self.device)
            pick = lambda v: v.index_select(0, idx)  # noqa: E731
            forcing = self.forcing.select(idx)
        return dataclasses.replace(
            self, forcing=forcing, obs=pick(self.obs), use=pick(self.use),
            n_good=pick(self.n_good), sst=pick(self.sst), ss_obs=pick(self.ss_obs),
            stress_days=tuple(pick(v) for v in self.stress_days),
            stress_weight=tuple(pick(v) for v in self.stress_weight),
            stress_count=tuple(pick(v) for v in self.stress_count),
            apar_max=pick(self.apar_max), _packed=None)


def prepare_cost(
    forcing: Mapping[str, torch.Tensor] | PreparedForcing,
    GPP_obs: torch.Tensor,
    good: torch.Tensor,
    *,
    w_ideal: float = W_IDEAL,
    w_nonideal: float = W_NONIDEAL,
    nonideal_mask: torch.Tensor | None = None,
    min_good: int = MIN_POINTS,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> CostData:
    """Gather once what :func:`population_cost` needs for a set of sites.

    Args:
        forcing: Forcing ``(sites, days)`` (mapping or prepared; validated when a mapping).
        GPP_obs: Observed GPP ``(sites, days)`` [gC m-2 d-1], NaN = missing.
        good: Good-quality-day mask ``(sites, days)``.
        w_ideal, w_nonideal, nonideal_mask, min_good: As for :func:`calibration_cost`.
        dtype, device: Working precision and device (default: those of the forcing).

    Returns:
        A :class:`CostData`.
    """
    from lue_spie.model import prepare_forcing

    pf = prepare_forcing(forcing, dtype=dtype, device=device)
    if pf.T.ndim != 2:
        raise ValueError(f"prepare_cost: expected forcing of shape (sites, days), got "
                         f"{tuple(pf.shape)}")
    dtype, device = pf.dtype, pf.device
    shape = tuple(pf.shape)
    obs = torch.as_tensor(GPP_obs).to(device=device, dtype=dtype)
    good = torch.as_tensor(good).to(device=device, dtype=torch.bool)
    for what, x in (("GPP_obs", obs), ("good", good)):
        if tuple(x.shape) != shape:
            raise ValueError(f"prepare_cost: {what} has shape {tuple(x.shape)}, expected the "
                             f"forcing's (sites, days) = {shape}")
    good = good & torch.isfinite(obs)
    obs0 = torch.where(good, obs, torch.zeros((), dtype=dtype, device=device))
    n_good = good.sum(-1)
    # Sum of squares about the mean over the NSE's days, in float64 (as nse_torch defines it).
    o64 = obs0.to(torch.float64)
    mean = o64.sum(-1, keepdim=True) / n_good.clamp_min(1).unsqueeze(-1)
    sst = torch.where(good, o64 - mean, torch.zeros((), dtype=torch.float64,
                                                   device=device)).square().sum(-1)
    mask = good if nonideal_mask is None else torch.as_tensor(nonideal_mask).to(
        device=device, dtype=torch.bool).broadcast_to(shape)
    n_days = mask.sum(-1).to(dtype).clamp_min(1.0)
    days, weights, counts = [], [], []
    for key, op, limit, _out_key, _threshold in STRESS:
        x = getattr(pf, key)
        stressed = (x < limit if op == "<" else x > limit) & mask
        count = stressed.sum(-1)
        k = max(int(count.max()) if count.numel() else 0, 1)
        # Stable sort puts each site's stressed days first, in order: the first k are kept.
        order = torch.sort(stressed.to(torch.uint8), dim=-1, descending=True, stable=True)
        idx = order.indices[:, :k].contiguous()
        real = torch.arange(k, device=device) < count.unsqueeze(-1)
        days.append(torch.where(real, idx, torch.zeros_like(idx)))
        weights.append(real.to(dtype) / n_days.unsqueeze(-1))
        counts.append(count)
    return CostData(forcing=pf, obs=obs0, use=good.to(dtype), n_good=n_good, sst=sst,
                    ss_obs=o64.square().sum(-1),
                    stress_days=tuple(days), stress_weight=tuple(weights),
                    stress_count=tuple(counts), apar_max=pf.APAR.amax(-1),
                    w_ideal=float(w_ideal), w_nonideal=float(w_nonideal),
                    min_good=int(min_good))


def _population_blocks(data: CostData, params: torch.Tensor, rows: torch.Tensor | None,
                       step: int, Tf: torch.Tensor, Wf: torch.Tensor, sse: torch.Tensor,
                       c_nonideal: torch.Tensor) -> None:
    """The block loop of :func:`population_cost` (lags already applied to ``Tf``, ``Wf``):
    fills ``sse`` and ``c_nonideal`` in place."""
    from lue_spie.model import scratch_gpp

    n, pop, _ = params.shape
    # Per-block bookkeeping kept to a few operations (it is paid once per block).
    counts = [c.cpu().numpy() for c in data.stress_count]
    order = None if rows is None else rows.cpu().numpy()
    for start in range(0, n, step):
        stop = min(start + step, n)
        if rows is None:
            def pick(v, start=start, stop=stop):
                return v[start:stop]
            block_counts = [c[start:stop] for c in counts]
        else:
            idx = rows[start:stop]

            def pick(v, idx=idx):
                return v.index_select(0, idx)
            block_counts = [c[order[start:stop]] for c in counts]
        # The stressed days of this block (padding beyond each site's count has weight 0).
        stress = {}
        for j, (_key, _op, _limit, out_key, threshold) in enumerate(STRESS):
            k = int(block_counts[j].max()) if stop > start else 0
            if k:
                stress[out_key] = (pick(data.stress_days[j][:, :k]).unsqueeze(1), threshold,
                                   pick(data.stress_weight[j][:, :k]).unsqueeze(-1))
        forcing = dataclasses.replace(
            data.forcing.apply(lambda v, pick=pick: pick(v).unsqueeze(1)),
            T=Tf[start:stop], W=Wf[start:stop])
        with scratch_gpp(forcing, params[start:stop],
                         {k: v[0] for k, v in stress.items()}) as (gpp, on_days):
            # Sum of squared errors over the NSE's days, sum(obs^2) - 2 sum(obs sim) +
            # sum(sim^2) accumulated in float64 (in place: the block is scratch). With a
            # float32 model, candidates whose GPP is tiny against the observations (a flat
            # region of the cost) still get distinct costs, as in float64: sim - obs in
            # float32 would round every such candidate to the same number, and pycma stops
            # on "flat fitness" (measured: 2 of 196 virtual sites, one of them stuck at
            # NSE -1.6).
            g = gpp.mul_(pick(data.use).unsqueeze(1))
            s_obs_sim = torch.sum(g * pick(data.obs).unsqueeze(1), dim=-1, dtype=torch.float64)
            s_sim2 = torch.sum(g.square_(), dim=-1, dtype=torch.float64)
            sse[start:stop] = pick(data.ss_obs).unsqueeze(-1) - 2.0 * s_obs_sim + s_sim2
        # Non-ideal constraint: the mean excess over the considered days, stressed days only.
        for out_key, (_idx, threshold, weight) in stress.items():
            excess = on_days[out_key].sub_(threshold).clamp_min_(0.0)
            c_nonideal[start:stop] += torch.bmm(excess, weight).squeeze(-1).double()


_PATH = {"default": "auto"}


@contextlib.contextmanager
def population_path(path: str) -> Iterator[None]:
    """Make ``path`` (``"auto"``, ``"kernel"`` or ``"torch"``) the default of
    :func:`population_cost` inside the ``with`` block: the tests and benchmarks run whole
    searches (site calibration, OPT-All) through either path to compare them."""
    if path not in ("auto", "kernel", "torch"):
        raise ValueError(f"population_path: expected 'auto', 'kernel' or 'torch', got {path!r}")
    before = _PATH["default"]
    _PATH["default"] = path
    try:
        yield
    finally:
        _PATH["default"] = before


@torch.no_grad()
def population_cost(
    data: CostData,
    params: torch.Tensor,
    *,
    sites: Sequence[int] | torch.Tensor | None = None,
    block_sites: int | None = None,
    path: str | None = None,
) -> dict[str, torch.Tensor]:
    """The calibration cost of a population of parameter vectors at each site (no gradient).

    Equal to ``calibration_cost(simulate(forcing, params), GPP_obs, good, params, forcing)``
    with the forcing and observations given a population axis (``(sites, 1, days)``) and the
    settings of :func:`prepare_cost`, up to rounding, but without keeping any simulated
    series: blocks of sites are simulated in scratch memory and reduced at once (sum of
    squared errors over the good days, the non-ideal excesses on the stressed days only, the
    ideal constraint at the points where its ramp maxima lie).

    Args:
        data: From :func:`prepare_cost`.
        params: Physical parameters ``(n, pop, 13)`` in the working dtype and device (no
            validation: the hot loop of CMA-ES).
        sites: Which of the data's sites each of the n rows is (indices, repeats allowed, e.g.
            the sites of pooled groups); default: all sites in order (n = data.n_sites).
        block_sites: Rows per model call of the torch path (default: cache-sized,
            :func:`lue_spie.model.block_rows`).
        path: ``"auto"``: the fused kernel (:mod:`lue_spie.model.kernel`: one pass over the
            days per site and candidate, on the threads :func:`lue_spie.execution.apply_threads`
            gave it) where it applies (CPU, float32 or float64), else the torch path;
            ``"kernel"`` or ``"torch"`` to choose (tests and benchmarks compare the two);
            None: the default set by :func:`population_path` (``"auto"``).

    Returns:
        Dict of ``(n, pop)`` tensors: ``"cost"``, ``"nse"``, ``"C_ideal"``, ``"C_nonideal"``
        (unweighted) and ``"n_good"``, as :func:`calibration_cost` returns them, the first
        four in float64 whatever the model's dtype: the model may run in float32 (2-3x
        faster, and as accurate as CMA-ES needs: tests/unit/test_cost.py), while the sums over
        days and the cost are formed in float64, so that close candidates keep distinct
        costs.
    """
    from lue_spie.model import kernel_applies

    path = _PATH["default"] if path is None else path
    if path not in ("auto", "kernel", "torch"):
        raise ValueError(f"population_cost: path must be 'auto', 'kernel' or 'torch', got "
                         f"{path!r}")
    if params.ndim != 3 or params.shape[-1] != N_PARAMS:
        raise ValueError(f"population_cost: params must have shape (sites, pop, 13), got "
                         f"{tuple(params.shape)}")
    n, pop, _ = params.shape
    if sites is None:
        if n != data.n_sites:
            raise ValueError(f"population_cost: params has {n} rows for {data.n_sites} sites; "
                             "pass sites= to evaluate a subset")
        rows = None
    else:
        rows = torch.as_tensor(sites, dtype=torch.long, device=data.device)
        if rows.shape != (n,):
            raise ValueError(f"population_cost: {tuple(rows.shape)} site indices for {n} rows")
    params = params.to(dtype=data.dtype, device=data.device)
    use_kernel = path == "kernel" or (path == "auto" and kernel_applies(params))
    if use_kernel:
        sse, c_nonideal = _kernel_terms(data, params, rows)
    else:
        sse, c_nonideal = _torch_terms(data, params, rows, block_sites)
    sst = (data.sst if rows is None else data.sst.index_select(0, rows)).unsqueeze(-1)
    n_good = (data.n_good if rows is None else data.n_good.index_select(0, rows))
    apar_max = data.apar_max if rows is None else data.apar_max.index_select(0, rows)
    ok = (n_good >= data.min_good).unsqueeze(-1) & (sst > 0)
    nse = torch.where(ok, 1.0 - sse / torch.where(ok, sst, 1.0),
                      torch.full_like(sst, float("nan")))
    c_ideal = _ideal_constraint_extremes(params.double(), apar_max.double().unsqueeze(-1))
    cost = (1.0 - nse) + data.w_ideal * c_ideal + data.w_nonideal * c_nonideal
    # A non-finite simulation on a good day makes the cost NaN (as calibration_cost does).
    cost = torch.where(torch.isfinite(sse), cost, torch.full_like(cost, float("nan")))
    return {"cost": cost, "nse": nse, "C_ideal": c_ideal, "C_nonideal": c_nonideal,
            "n_good": n_good.unsqueeze(-1).expand(n, pop)}


def _kernel_terms(data: CostData, params: torch.Tensor,
                  rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of squared errors and the non-ideal constraint by the fused kernel, ``(n, pop)``
    float64 each."""
    import numpy as np

    from lue_spie.model import kernel_population_sums

    n = params.shape[0]
    site_of = np.arange(n, dtype=np.int64) if rows is None else rows.cpu().numpy()
    thresholds = [threshold for *_, threshold in STRESS]
    sums = kernel_population_sums(data.packed(), params, site_of, thresholds)
    idx = torch.from_numpy(site_of)
    ss_obs = data.ss_obs.index_select(0, idx).unsqueeze(-1)
    sse = ss_obs - 2.0 * sums[..., 0] + sums[..., 1]
    c_nonideal = torch.zeros_like(sse)
    for j in range(len(STRESS)):
        # 1 / (days the constraint considers) of each site (0 where the stress never occurs,
        # whose sum is 0 too).
        weight = data.stress_weight[j][:, 0].double().index_select(0, idx).unsqueeze(-1)
        c_nonideal += sums[..., 2 + j] * weight
    return sse, c_nonideal


def _torch_terms(data: CostData, params: torch.Tensor, rows: torch.Tensor | None,
                 block_sites: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of squared errors and the non-ideal constraint by torch operations (any device),
    ``(n, pop)`` float64 each."""
    from lue_spie.model import block_rows, scratch_lagged

    n, pop, _ = params.shape
    # Rows that filter neither driver, only T, only W, or both are evaluated apart, so that an
    # unfiltered driver stays one series per site (broadcast over the population) instead of
    # being copied for every candidate.
    i_T, i_W = index("alpha_T"), index("alpha_W")
    kind = ((params[..., i_T] != 0).any(-1).to(torch.int8)
            + 2 * (params[..., i_W] != 0).any(-1).to(torch.int8))
    kinds = torch.unique(kind)
    if len(kinds) > 1:
        site_of = rows if rows is not None else torch.arange(n, device=data.device)
        parts = []
        for k in kinds.tolist():
            idx = (kind == k).nonzero().squeeze(-1)
            parts.append((idx, _torch_terms(data, params.index_select(0, idx),
                                            site_of.index_select(0, idx), block_sites)))
        out = []
        for j in range(2):
            value = parts[0][1][j]
            out.append(value.new_empty((n, *value.shape[1:])))
            for idx, part in parts:
                out[j].index_copy_(0, idx, part[j])
        return out[0], out[1]
    n_days = data.obs.shape[-1]
    step = block_sites or block_rows(pop * n_days * data.obs.element_size(), data.device)
    sse = params.new_empty(n, pop, dtype=torch.float64)
    c_nonideal = params.new_zeros(n, pop, dtype=torch.float64)
    # The lag filters run once for the whole population (their cost is mostly per call); the
    # blocks then see the filtered drivers and zero lags.
    drivers = {k: (getattr(data.forcing, k) if rows is None else
                   getattr(data.forcing, k).index_select(0, rows)).unsqueeze(1)
               for k in ("T", "W")}
    with scratch_lagged(drivers["T"], params[..., i_T]) as Tf, \
            scratch_lagged(drivers["W"], params[..., i_W]) as Wf:
        lag_free = params
        if Tf is not drivers["T"] or Wf is not drivers["W"]:
            lag_free = params.clone()
            lag_free[..., [i_T, i_W]] = 0.0
        _population_blocks(data, lag_free, rows, step, Tf, Wf, sse, c_nonideal)
    return sse, c_nonideal


def batch_cost(
    data: CostData,
    params: torch.Tensor,
    *,
    sites: Sequence[int] | torch.Tensor | slice | None = None,
) -> dict[str, torch.Tensor]:
    """The calibration cost, differentiable in ``params`` (gradient-based training, SPIE).

    Equal (values and gradients, up to rounding) to ``calibration_cost(simulate(forcing,
    params), GPP_obs, good, params, forcing)`` with the settings of :func:`prepare_cost`, but
    cheaper: the fused model returns only what the cost reads, and the observations, their
    masks and the stressed days come prepared, so the cost adds a handful of passes over the
    days to the model's forward and backward pass.

    Args:
        data: From :func:`prepare_cost`.
        params: Physical parameters ``(*lead, n, 13)`` (e.g. ``(folds, batch_sites, 13)``);
            the n rows are the sites ``sites`` of the data.
        sites: Which of the data's sites (indices or a slice; default: all).

    Returns:
        Dict of tensors of shape ``(*lead, n)``: ``"cost"``, ``"nse"``, ``"C_ideal"``,
        ``"C_nonideal"`` and ``"n_good"``, as :func:`calibration_cost` returns them
        (reduce them yourself, e.g. ``out["cost"].mean(-1)`` for a mini-batch).
    """
    from lue_spie.model import simulate

    part = data if sites is None else data.select(sites)
    params = params.to(dtype=data.dtype, device=data.device)
    sim = simulate(part.forcing, params, validate=False,
                   outputs=("GPP", "fT", "fVPD_VPD", "fW"))
    d = (sim["GPP"] - part.obs) * part.use  # 0 on the days outside the NSE
    sse = torch.linalg.vecdot(d, d)
    lead = sse.shape
    sst = part.sst.to(data.dtype).expand(lead)
    n_good = part.n_good.expand(lead)
    ok = (n_good >= data.min_good) & (sst > 0)
    nse = torch.where(ok, 1.0 - sse / torch.where(ok, sst, torch.ones_like(sst)),
                      torch.full_like(sse, float("nan")))
    c_nonideal = torch.zeros_like(sse)
    for j, (_key, _op, _limit, out_key, threshold) in enumerate(STRESS):
        k = int(part.stress_count[j].max()) if part.n_sites else 0
        if k == 0:
            continue
        f = sim[out_key]
        idx = part.stress_days[j][:, :k].expand(*f.shape[:-1], k)
        excess = torch.relu(torch.gather(f, -1, idx) - threshold)
        c_nonideal = c_nonideal + (excess * part.stress_weight[j][:, :k]).sum(-1)
    c_ideal = _ideal_constraint_extremes(params, part.apar_max)
    cost = (1.0 - nse) + data.w_ideal * c_ideal + data.w_nonideal * c_nonideal
    cost = torch.where(torch.isfinite(sse), cost, torch.full_like(cost, float("nan")))
    return {"cost": cost, "nse": nse, "C_ideal": c_ideal, "C_nonideal": c_nonideal,
            "n_good": n_good}

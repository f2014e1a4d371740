"""Evaluation of the model without gradients: the hot path of populations (CMA-ES).

:func:`scratch_gpp` computes GPP alone, with fewer passes over the days than all the outputs
take (a shared exponential for fV and fCI, divisions instead of reciprocals), into scratch
memory, together with the few values the calibration cost needs on the stressed days;
:func:`scratch_lagged` filters the drivers of a whole batch once, into scratch memory, so that
blocks of it can then be evaluated with zero lags. :func:`lue_spie.cost.population_cost`
reduces each block of a population at once. Nothing here records autograd operations.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch

from lue_spie.model.equations import _I, CO2_DENOMINATOR_MIN, _columns, _log_ca0
from lue_spie.model.forcing import PreparedForcing, _co2_guard_binds
from lue_spie.model.lag import _lag_rows
from lue_spie.model.scratch import _SCRATCH, _bshape

__all__ = ["scratch_gpp", "scratch_lagged"]


def _gpp_block(
    pf: PreparedForcing, params: torch.Tensor, at_days: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GPP alone, with the fewest passes over the days (no autograd recording).

    GPP = fV fCI fW eps fC / (cosh(z) (1/APAR + gamma)): the VPD and cloudiness factors share
    one exponential, fT's and fL's reciprocals become divisions, APAR cancels into fL's
    denominator and eps_max into the CO2 factor: 20 passes and 4 transcendental functions,
    against 31 and 5 for all the outputs. ``fT``, ``fVPD_VPD`` and ``fW`` are also returned
    on the days given in ``at_days`` (name -> ``(*batch_f, K)`` day indices).

    Returns:
        GPP (from the scratch cache: give it back) and the dict of ``(*batch, K)`` values.
    """
    p = _columns(params)
    shape = (*_bshape(pf.shape[:-1], params.shape[:-1]), pf.shape[-1])
    temps: list[torch.Tensor] = []

    def tmp(size: tuple[int, ...] = shape) -> torch.Tensor:
        t = _SCRATCH.take(size, pf.T)
        temps.append(t)
        return t

    def lagged(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        if not bool((alpha != 0).any()):
            return x
        size = (*_bshape(x.shape[:-1], alpha.shape), x.shape[-1])
        return _lag_rows(x, alpha, out=tmp(size))

    def on_days(name: str, x: torch.Tensor) -> torch.Tensor:
        idx = at_days[name]
        return torch.gather(x, -1, idx.expand(*shape[:-1], idx.shape[-1]))

    at: dict[str, torch.Tensor] = {}
    Tf = lagged(pf.T, params[..., _I["alpha_T"]])
    Wf = lagged(pf.W, params[..., _I["alpha_W"]])
    cosh = tmp()
    torch.sub(Tf, p["Topt"], out=cosh).div_(p["kT"]).cosh_()
    if "fT" in at_days:
        at["fT"] = on_days("fT", cosh).reciprocal_()
    gpp = _SCRATCH.take(shape, pf.T)  # r VPD, then fV fCI, then GPP
    torch.mul(pf.log_ca, p["Ckappa"], out=gpp).add_(p["Ckappa"] * _log_ca0(p["Ca0"]))
    gpp.exp_().mul_(pf.VPD)
    if "fVPD_VPD" in at_days:
        at["fVPD_VPD"] = on_days("fVPD_VPD", gpp).mul_(p["kappa"]).exp_()
    gpp.mul_(p["kappa"]).addcmul_(pf.log_CI, p["mu"]).exp_()
    work = tmp()
    torch.mul(Wf, -p["kW"], out=work).add_(p["kW"] * p["WI"]).sigmoid_()
    if "fW" in at_days:
        at["fW"] = on_days("fW", work)
    gpp.mul_(work)
    den = tmp()
    torch.sub(pf.CO2, p["Ca0"], out=work)
    torch.add(work, p["Cm"], out=den)
    if _co2_guard_binds(pf, p):
        den.clamp_min_(CO2_DENOMINATOR_MIN)
    work.div_(den)
    gpp.mul_(work.add_(1.0).mul_(p["eps_max"]))
    inv_apar = torch.reciprocal(pf.APAR, out=tmp(pf.APAR.shape))
    gpp.div_(cosh).div_(torch.add(inv_apar, p["gamma"], out=den))
    _SCRATCH.give(*temps)
    return gpp, at


@contextlib.contextmanager
def scratch_lagged(x: torch.Tensor, alpha: torch.Tensor) -> Iterator[torch.Tensor]:
    """The lag filter of ``x (*batch_x, D)`` with ``alpha (*batch_a)``, without autograd, in
    scratch memory valid inside the ``with`` block only (``x`` itself when every alpha is 0).

    For hot loops that evaluate a batch block by block: a lag filter's cost is mostly per
    call, so filter the whole batch once, then give the blocks slices of the result and zero
    lags (as :func:`lue_spie.cost.population_cost` does).
    """
    if not bool((alpha != 0).any()):
        yield x
        return
    out = _SCRATCH.take((*_bshape(x.shape[:-1], alpha.shape), x.shape[-1]), x)
    try:
        with torch.no_grad():
            yield _lag_rows(x, alpha, out=out)
    finally:
        _SCRATCH.give(out)


@contextlib.contextmanager
def scratch_gpp(
    forcing: PreparedForcing,
    params: torch.Tensor,
    at_days: Mapping[str, torch.Tensor] | None = None,
) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """GPP in reusable scratch memory, valid inside the ``with`` block only (no gradient).

    The cheapest evaluation of the model, for hot loops that reduce GPP right away (the
    calibration cost of a CMA-ES population, :func:`lue_spie.cost.population_cost`): it
    makes about two thirds of the passes over the days that :func:`simulate` makes, and the
    array comes from, and goes back to, a cache instead of being allocated afresh. It may be
    modified in place; keep no reference to it (or to a view of it) after the block. No
    input is validated. Evaluate blocks of rows (:func:`block_rows`) for speed.

    Args:
        forcing: Prepared forcing ``(*batch_f, D)``.
        params: Physical parameters ``(*batch_p, 13)`` (dtype and device of the forcing).
        at_days: Optional ``{"fT" | "fVPD_VPD" | "fW": (*batch_f, K) day indices}``: those
            sensitivity functions are returned on those days only.

    Yields:
        ``(GPP, values)``: GPP of shape ``broadcast(batch_f, batch_p) + (D,)`` and a dict of
        ``(*batch, K)`` tensors (ordinary tensors, free to keep).
    """
    at_days = dict(at_days or {})
    unknown = sorted(set(at_days) - {"fT", "fVPD_VPD", "fW"})
    if unknown:
        raise ValueError(f"scratch_gpp: at_days can hold 'fT', 'fVPD_VPD' and 'fW', got "
                         f"{unknown}")
    with torch.no_grad():
        gpp, at = _gpp_block(forcing, params.detach(), at_days)
    try:
        yield gpp, at
    finally:
        _SCRATCH.give(gpp)

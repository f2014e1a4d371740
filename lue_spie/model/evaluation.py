"""Evaluation of the model without gradients: the hot path of populations (CMA-ES).

On the CPU, in float32 or float64, every no-gradient evaluation goes through the fused kernel
(:mod:`lue_spie.model.kernel`): :func:`kernel_simulate` is the no-gradient path of
:func:`lue_spie.model.simulate`, :func:`pack_cost` and :func:`kernel_population_sums` that of
:func:`lue_spie.cost.population_cost`. :func:`kernel_applies` says where that is. The torch
functions below are the same evaluation in torch operations: the path on CUDA, and the
reference the kernel is tested against.

:func:`scratch_gpp` computes GPP alone, with fewer passes over the days than all the outputs
take (a shared exponential for fV and fCI, divisions instead of reciprocals), into scratch
memory, together with the few values the calibration cost needs on the stressed days;
:func:`scratch_lagged` filters the drivers of a whole batch once, into scratch memory, so that
blocks of it can then be evaluated with zero lags. :func:`lue_spie.cost.population_cost`
reduces each block of a population at once. Nothing here records autograd operations.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch

from lue_spie.execution import ensure_threads
from lue_spie.model import kernel
from lue_spie.model.equations import _I, CA_REF, CO2_DENOMINATOR_MIN, _columns, _log_ca0
from lue_spie.model.forcing import PreparedForcing, _co2_guard_binds
from lue_spie.model.lag import _lag_rows
from lue_spie.model.scratch import _SCRATCH, _bshape

__all__ = ["scratch_gpp", "scratch_lagged", "kernel_applies", "kernel_simulate", "pack_cost",
           "kernel_population_sums"]

#: The forcing series the kernels read, in their argument order.
_SERIES_IN = ("T", "W", "VPD", "CO2", "APAR", "log_CI", "log_ca")


def kernel_applies(x: torch.Tensor) -> bool:
    """Whether the fused kernel evaluates tensors like ``x`` (CPU, float32 or float64)."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _log_ca0_np(ca0: np.ndarray) -> np.ndarray:
    """``log(Ca0 / CA_REF)`` in float64, rounded to the dtype of ``ca0`` (as :func:`_log_ca0`)."""
    return np.log(ca0.astype(np.float64) / CA_REF).astype(ca0.dtype)


def kernel_simulate(pf: PreparedForcing, params: torch.Tensor,
                    want: Sequence[str]) -> dict[str, torch.Tensor]:
    """The model's outputs ``want`` by the fused kernel (no gradient; see :func:`kernel_applies`).

    Forcing ``(*batch_f, D)`` and parameters ``(*batch_p, 13)`` broadcast as in
    :func:`lue_spie.model.simulate`: each row of the broadcast batch is one (forcing row,
    parameter vector) pair, computed in one pass over the days. ``APAR`` is the prepared
    forcing's own series.

    Returns:
        Name -> tensor of shape ``broadcast(batch_f, batch_p) + (D,)`` (``APAR``: the forcing's
        series, broadcastable to it).
    """
    ensure_threads()
    batch_f, n_days = tuple(pf.shape[:-1]), pf.shape[-1]
    batch = _bshape(batch_f, params.shape[:-1])
    n_rows = math.prod(batch)
    n_f = math.prod(batch_f)
    # The forcing row of every broadcast row, and the parameters of every row.
    site_of = torch.arange(n_f).reshape((1,) * (len(batch) - len(batch_f)) + batch_f)
    site_of = site_of.expand(batch).reshape(-1).numpy().astype(np.int64)
    P = params.detach().expand(*batch, params.shape[-1]).reshape(n_rows, params.shape[-1])
    P = np.ascontiguousarray(P.numpy())
    series = [np.ascontiguousarray(getattr(pf, k).reshape(n_f, n_days).numpy())
              for k in _SERIES_IN]
    wanted = [k for k in kernel.SERIES if k in want and k != "APAR"]
    slot = np.array([wanted.index(k) if k in wanted else -1 for k in kernel.SERIES],
                    dtype=np.int64)
    out = np.empty((len(wanted), n_rows, n_days), dtype=P.dtype)
    if n_rows and n_days:  # (the kernel reads day 0 of every row)
        kernel.simulate_rows(*series, site_of, P, _log_ca0_np(P[:, 4]), slot, out)
    res = {k: torch.from_numpy(out[i]).reshape(*batch, n_days) for i, k in enumerate(wanted)}
    if "APAR" in want:
        res["APAR"] = pf.APAR
    return res


def pack_cost(pf: PreparedForcing, obs: torch.Tensor, use: torch.Tensor,
              stressed: Sequence[torch.Tensor]) -> kernel.KernelData:
    """Pack what the population kernel reads of a set of sites (once per cost data).

    Args:
        pf: Prepared forcing ``(sites, days)``.
        obs: Observations on the NSE's days, 0 elsewhere; ``use``: 1 on those days, else 0.
        stressed: Boolean ``(sites, days)`` masks of the days on which the non-ideal
            constraint considers fT, the VPD part of fVPD and fW (in that order).
    """
    def np_(x: torch.Tensor) -> np.ndarray:
        return x.detach().cpu().numpy()

    return kernel.pack_forcing(*(np_(getattr(pf, k)) for k in _SERIES_IN), obs=np_(obs),
                               use=np_(use), stress_T=np_(stressed[0]),
                               stress_W=np_(stressed[2]), stress_V=np_(stressed[1]))


def kernel_population_sums(packed: kernel.KernelData, params: torch.Tensor,
                           site_of: np.ndarray, thresholds: Sequence[float]) -> torch.Tensor:
    """The population kernel's sums (:func:`lue_spie.model.kernel.population_sums`).

    Args:
        packed: From :func:`pack_cost`.
        params: Physical parameters ``(rows, pop, 13)`` in the packed dtype.
        site_of: ``(rows,)`` int64 site of each row.
        thresholds: Largest allowed fT, VPD part and fW under stress.

    Returns:
        ``(rows, pop, 5)`` float64: sum(obs sim), sum(sim^2) and the fT, VPD-part and fW
        excess sums.
    """
    ensure_threads()
    P = np.ascontiguousarray(params.detach().numpy())
    out = np.zeros((*P.shape[:2], 5), dtype=np.float64)
    if P.size == 0 or packed.forcing.shape[-1] == 0:  # (the kernel reads day 0 of every row)
        return torch.from_numpy(out)
    kernel.population_sums(packed.forcing, np.ascontiguousarray(site_of, dtype=np.int64), P,
                           _log_ca0_np(P[..., 4]), packed.vpd_days, packed.n_vpd,
                           np.asarray(thresholds, dtype=P.dtype), out)
    return torch.from_numpy(out)


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

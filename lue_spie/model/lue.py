"""Running the LUE model: :func:`simulate` (all outputs, differentiable) and its devices.

:func:`simulate` validates its inputs, prepares the forcing (:mod:`lue_spie.model.forcing`)
and runs either the fused model (:mod:`lue_spie.model.fused`: one autograd node with an
analytic backward pass, gradients with respect to the parameters) or the composable one
defined here: every step a differentiable torch operation, for gradients with respect to the
forcing, for higher-order gradients and for the sequential lag filter
(``lag_method="loop"``). :func:`resolve_device` turns ``"auto"`` into a device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import torch

from lue_spie.model.equations import OUTPUT_KEYS, _co2_part, _columns, _vpd_part, f_L, f_T, f_W
from lue_spie.model.evaluation import kernel_applies, kernel_simulate
from lue_spie.model.forcing import PreparedForcing, _validate_forcing, prepare_forcing
from lue_spie.model.fused import _fused_forward, _FusedLUE
from lue_spie.model.lag import lag_filter
from lue_spie.model.scratch import _bshape
from lue_spie.params import N_PARAMS, PARAMETERS, check_params

__all__ = ["simulate", "resolve_device"]


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when PyTorch sees a GPU, else ``"cpu"``; others unchanged.

    Raises:
        ValueError: for a device other than auto, cpu, cuda or cuda:N, or for cuda without a
            GPU.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but PyTorch sees no CUDA GPU")
    return device


def _simulate_composable(pf: PreparedForcing, params: torch.Tensor,
                         lag_method: str) -> dict[str, torch.Tensor]:
    """The model as a chain of differentiable torch operations (any-order gradients with
    respect to the parameters and, through :func:`prepare_forcing`, the forcing)."""
    p = _columns(params)
    Tf = lag_filter(pf.T, p["alpha_T"][..., 0], method=lag_method)
    Wf = lag_filter(pf.W, p["alpha_W"][..., 0], method=lag_method)
    fT = f_T(Tf, p["Topt"], p["kT"])
    fVPD_VPD = _vpd_part(pf.VPD, pf.log_ca, p["kappa"], p["Ca0"], p["Ckappa"])
    fVPD_CO2 = _co2_part(pf.CO2, p["Ca0"], p["Cm"])
    fVPD = fVPD_VPD * fVPD_CO2
    fW = f_W(Wf, p["kW"], p["WI"])
    fL = f_L(pf.APAR, p["gamma"])
    fCI = torch.exp(p["mu"] * pf.log_CI)
    GPP = pf.APAR * p["eps_max"] * fT * fVPD * fW * fL * fCI
    return {"GPP": GPP, "fT": fT, "fVPD": fVPD, "fVPD_VPD": fVPD_VPD, "fVPD_CO2": fVPD_CO2,
            "fW": fW, "fL": fL, "fCI": fCI, "Tf": Tf, "Wf": Wf, "APAR": pf.APAR}


def _validate_params(params: torch.Tensor, forcing_shape: torch.Size) -> None:
    if params.ndim < 1 or params.shape[-1] != N_PARAMS:
        raise ValueError(f"params: expected shape (sites, {N_PARAMS}) with the parameters "
                         f"{PARAMETERS} on the last axis, got {tuple(params.shape)}")
    try:
        torch.broadcast_shapes(forcing_shape[:-1], params.shape[:-1])
    except RuntimeError:
        raise ValueError(f"params batch shape {tuple(params.shape[:-1])} does not broadcast "
                         f"with the forcing batch shape {tuple(forcing_shape[:-1])}") from None
    check_params(params, "params")


_METHODS = ("auto", "fused", "composable")


def simulate(
    forcing: Mapping[str, torch.Tensor] | PreparedForcing,
    params: torch.Tensor,
    *,
    validate: bool = True,
    lag_method: str = "scan",
    method: str = "auto",
    outputs: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Run the LUE model.

    Args:
        forcing: Maps each of :data:`FORCING_KEYS` to a tensor of shape ``(*batch_f, days)``
            in SPEC units (T degC, VPD Pa, CO2 ppm, W 0-1, PAR MJ m-2 d-1, FAPAR 0-1, CI 0-1),
            or a :class:`PreparedForcing` from :func:`prepare_forcing` (faster in loops: the
            parameter-independent parts are computed once). Tensors are moved to the dtype
            and device of ``params``.
        params: Physical parameters ``(*batch_p, 13)`` in :data:`~lue_spie.params.PARAMETERS`
            order. ``batch_f`` and ``batch_p`` broadcast: forcing ``(sites, 1, days)`` with
            params ``(sites, pop, 13)`` evaluates a CMA-ES population per site in one call.
        validate: Check keys, shapes, finiteness and parameter bounds, raising a clear error
            (set False inside hot loops once the inputs are known to be good).
        lag_method: ``"scan"`` (blocked recurrence) or ``"loop"`` (sequential reference; uses
            the composable implementation).
        method: ``"auto"`` (default): the fused implementation (one autograd node with an
            analytic backward pass, gradients with respect to ``params``; without a gradient
            on the CPU, the fused kernel of :mod:`lue_spie.model.kernel`, one pass over the
            days), or the composable one when the forcing itself requires a gradient or
            ``lag_method="loop"``.
            ``"composable"`` forces the chain of differentiable torch operations (needed for
            second derivatives); ``"fused"`` refuses forcing that requires a gradient.
        outputs: Names of :data:`OUTPUT_KEYS` to return (default: all). Asking only for what
            is used (e.g. ``("GPP",)``, or the cost's ``("GPP", "fT", "fVPD_VPD", "fW",
            "APAR")``) saves memory and time.

    Returns:
        Dict of tensors of shape ``(*batch, days)``: ``GPP`` [gC m-2 d-1], the sensitivity
        functions ``fT, fVPD, fW, fL, fCI``, the two factors of fVPD (``fVPD_VPD``,
        ``fVPD_CO2``), the lagged drivers ``Tf, Wf`` and ``APAR`` [MJ m-2 d-1]. Several may be
        broadcast views (``expand``) of smaller tensors: copy before writing into them.
    """
    if not isinstance(params, torch.Tensor):
        raise TypeError(f"params: expected a torch.Tensor of shape (sites, 13), got "
                        f"{type(params).__name__}")
    outputs = OUTPUT_KEYS if outputs is None else tuple(dict.fromkeys(outputs))
    unknown = [k for k in outputs if k not in OUTPUT_KEYS]
    if unknown or not outputs:
        raise ValueError(f"simulate: outputs must be a non-empty subset of {OUTPUT_KEYS}, got "
                         f"unknown {unknown}")
    if method not in _METHODS:
        raise ValueError(f"simulate: method must be one of {_METHODS}, got {method!r}")
    if lag_method not in ("scan", "loop"):
        raise ValueError(f"simulate: lag_method must be 'scan' or 'loop', got {lag_method!r}")
    prepared = isinstance(forcing, PreparedForcing)
    if validate and not prepared:
        _validate_forcing(forcing)
    pf = prepare_forcing(forcing, dtype=params.dtype, device=params.device, validate=False)
    if validate:
        _validate_params(params, pf.shape)
    forcing_grad = torch.is_grad_enabled() and any(
        getattr(pf, f.name).requires_grad for f in dataclasses.fields(pf))
    if method == "fused" and (forcing_grad or lag_method == "loop"):
        raise ValueError("simulate(method='fused'): the fused model differentiates with respect "
                         "to the parameters only and uses the blocked lag filter; use "
                         "method='composable' for forcing gradients or lag_method='loop'")
    if method == "composable" or forcing_grad or lag_method == "loop":
        out = _simulate_composable(pf, params, lag_method)
    elif torch.is_grad_enabled() and params.requires_grad:
        res = _FusedLUE.apply(params, pf, outputs)
        out = dict(zip(outputs, (res,) if isinstance(res, torch.Tensor) else res, strict=True))
    elif kernel_applies(params):
        out = kernel_simulate(pf, params, outputs)
    else:
        out = _fused_forward(pf, params.detach(), frozenset(outputs))
    shape = (*_bshape(pf.shape[:-1], params.shape[:-1]), pf.shape[-1])
    return {k: out[k].expand(shape) for k in outputs}

"""The light-use-efficiency (LUE) model of GPP in PyTorch (paper section 2.1, SPEC section 1).

    GPP = PAR * FAPAR * eps_max * fT * fVPD * fW * fL * fCI          [gC m-2 d-1]

with the lagged drivers

    Tf(t) = (1 - alpha_T) T(t) + alpha_T Tf(t-1),   Tf(0) = T(0)
    Wf(t) = (1 - alpha_W) W(t) + alpha_W Wf(t-1),   Wf(0) = W(0)

and the five sensitivity functions

    fT   = 2 exp(-(Tf - Topt)/kT) / (1 + exp(-(Tf - Topt)/kT)^2)
    fVPD = exp(kappa (Ca0/ca)^Ckappa VPD) * (1 + (ca - Ca0)/(ca - Ca0 + Cm))
    fW   = 1 / (1 + exp(kW (Wf - WI)))
    fL   = 1 / (1 + gamma APAR),       APAR = PAR * FAPAR
    fCI  = CI^mu,                      CI clipped to [0.001, 1]

Everything is batched: forcing of shape ``(*batch, days)``, parameters ``(*batch, 13)``
(batch shapes broadcast), float32 or float64, CPU or CUDA, differentiable with respect to
the parameters (and the forcing).

The lag filters are first-order linear recurrences. Instead of a Python loop over days they
are computed with a log-depth parallel scan (Hillis & Steele 1986; Blelloch 1990) of the
affine maps ``y -> a*y + b``: ``ceil(log2(days))`` vectorised steps that only multiply and add
numbers in ``[0, 1]`` times the data, so nothing can overflow for any alpha in ``[0, 1]`` and
any record length (powers of alpha only shrink), and the values and gradients equal the
sequential recursion up to rounding. :func:`lag_filter` with ``method="loop"`` is the
sequential recursion itself, kept for tests and the benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from lue_spie.params import N_PARAMS, PARAMETERS, check_params

__all__ = [
    "FORCING_KEYS",
    "OUTPUT_KEYS",
    "CI_MIN",
    "CO2_DENOMINATOR_MIN",
    "simulate",
    "lag_filter",
    "f_T",
    "f_VPD",
    "f_W",
    "f_L",
    "f_CI",
    "resolve_device",
]

#: Forcing variables and their units: T [degC], VPD [Pa], CO2 [ppm], W relative soil
#: moisture [0-1], PAR [MJ m-2 d-1], FAPAR [0-1], CI cloudiness index [0-1].
FORCING_KEYS: tuple[str, ...] = ("T", "VPD", "CO2", "W", "PAR", "FAPAR", "CI")
#: Keys of the dict returned by :func:`simulate`.
OUTPUT_KEYS: tuple[str, ...] = (
    "GPP", "fT", "fVPD", "fVPD_VPD", "fVPD_CO2", "fW", "fL", "fCI", "Tf", "Wf", "APAR",
)
#: Lower clip of the cloudiness index before the power, so that a clear day (CI = 0) does not
#: zero GPP (SPEC section 1).
CI_MIN: float = 1e-3
#: The CO2 term's denominator ``ca - Ca0 + Cm`` is kept at or above this value [ppm]. It only
#: binds for CO2 far below pre-industrial levels (ca < Ca0 - Cm + 1 <= 291 ppm).
CO2_DENOMINATOR_MIN: float = 1.0


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


# --------------------------------------------------------------------------- sensitivity functions
def f_T(Tf: torch.Tensor, Topt: torch.Tensor, kT: torch.Tensor) -> torch.Tensor:
    """Temperature sensitivity, 1 at ``Tf == Topt``, symmetric, decaying like ``exp(-|z|)``.

    ``2 e^z / (1 + e^{2z})`` with ``z = -(Tf - Topt)/kT`` is even in ``z``; it is evaluated as
    ``2 e^{-|z|} / (1 + e^{-2|z|})``, which cannot overflow and has finite gradients for any
    temperature.
    """
    e = torch.exp(-torch.abs((Tf - Topt) / kT))
    return 2.0 * e / (1.0 + e * e)


def f_VPD(
    VPD: torch.Tensor,
    ca: torch.Tensor,
    kappa: torch.Tensor,
    Ca0: torch.Tensor,
    Ckappa: torch.Tensor,
    Cm: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """VPD and CO2 sensitivity, returned as its two factors ``(vpd_part, co2_part)``.

    ``vpd_part = exp(kappa (Ca0/ca)^Ckappa VPD)`` (at most 1 for VPD >= 0, kappa < 0);
    ``co2_part = 1 + (ca - Ca0)/(ca - Ca0 + Cm)`` (above 1 when ca > Ca0). ``fVPD`` is their
    product. VPD in Pa, ca and Ca0 and Cm in ppm, kappa in Pa-1.
    """
    # (Ca0/ca)^Ckappa as exp(Ckappa log(Ca0/ca)) (both positive): same value, but avoids
    # pow's costly backward pass for a tensor exponent. The ratio is formed before the log
    # so that float32 keeps its precision (log Ca0 - log ca would cancel).
    vpd_part = torch.exp(kappa * torch.exp(Ckappa * torch.log(Ca0 / ca)) * VPD)
    denominator = torch.clamp(ca - Ca0 + Cm, min=CO2_DENOMINATOR_MIN)
    co2_part = 1.0 + (ca - Ca0) / denominator
    return vpd_part, co2_part


def f_W(Wf: torch.Tensor, kW: torch.Tensor, WI: torch.Tensor) -> torch.Tensor:
    """Soil-moisture sensitivity ``1 / (1 + exp(kW (Wf - WI)))`` (a logistic; kW < 0)."""
    return torch.sigmoid(-kW * (Wf - WI))


def f_L(APAR: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Light-saturation sensitivity ``1 / (1 + gamma APAR)``, APAR in MJ m-2 d-1."""
    return 1.0 / (1.0 + gamma * APAR)


def f_CI(CI: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Cloudiness sensitivity ``CI^mu`` with CI clipped to ``[CI_MIN, 1]``."""
    # exp(mu log CI) equals the power for CI > 0 (guaranteed by the clip) and differentiates
    # more cheaply than pow with a tensor exponent.
    return torch.exp(mu * torch.log(torch.clamp(CI, CI_MIN, 1.0)))


# --------------------------------------------------------------------------------- lag filter
def _affine_scan(b: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """Inclusive Hillis-Steele scan of ``y(0) = b(0)``, ``y(t) = slope * y(t-1) + b(t)``.

    Day t is the affine map ``y -> slope*y + b(t)`` (day 0: slope 0). Composing map t after
    map s gives ``(A_t A_s, A_t B_s + B_t)``; after the step with shift d every position holds
    the composition of the last ``2d`` maps, so ``ceil(log2(days))`` vectorised steps give
    every prefix. Because the slope is constant in time, the composed slope of a window of d
    maps is simply ``slope**d`` (positions whose window reaches day 0 are already final), so
    one number per series is carried and squared at each step: only products of numbers in
    ``[0, 1]`` appear, which can underflow to 0 but never overflow.

    Args:
        b: ``(*batch, days)``.
        slope: ``(*batch, 1)``, values in ``[0, 1]``.
    """
    days = b.shape[-1]
    d = 1
    while d < days:
        # Positions t >= d take the window of d maps ending at t - d; positions t < d are final.
        b = torch.cat([b[..., :d], torch.addcmul(b[..., d:], slope, b[..., :-d])], dim=-1)
        slope = slope * slope
        d *= 2
    return b


class _LagFilterScan(torch.autograd.Function):
    """Lag filter by :func:`_affine_scan` with an analytic (adjoint) backward pass.

    Written as an autograd Function because recording the scan's ``log2(days)`` steps for
    autograd costs several times the forward pass; the adjoint of a linear recurrence is the
    same recurrence run backwards in time, so the backward pass is one more scan:

        lambda(t) = g(t) + alpha * lambda(t+1)                      (reverse-time scan)
        dL/dx(0) = lambda(0),  dL/dx(t) = (1 - alpha) lambda(t)     (t >= 1)
        dL/dalpha = sum_{t>=1} lambda(t) * (y(t-1) - x(t))

    The backward pass is built from differentiable torch operations, so higher-order
    gradients work too.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:  # noqa: D102
        a = alpha.unsqueeze(-1)
        b = torch.cat([x[..., :1], (1.0 - a) * x[..., 1:]], dim=-1)
        y = _affine_scan(b, a)
        ctx.save_for_backward(x, alpha, y)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        x, alpha, y = ctx.saved_tensors
        a = alpha.unsqueeze(-1)
        lam = _LagFilterScanReverse.apply(g, alpha)
        grad_x = torch.cat([lam[..., :1], (1.0 - a) * lam[..., 1:]], dim=-1)
        grad_alpha = (lam[..., 1:] * (y[..., :-1] - x[..., 1:])).sum(-1)
        return grad_x, grad_alpha


class _LagFilterScanReverse(torch.autograd.Function):
    """``lambda(t) = g(t) + alpha * lambda(t+1)`` (the adjoint scan), itself differentiable."""

    @staticmethod
    def forward(ctx, g: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:  # noqa: D102
        lam = _affine_scan(g.flip(-1), alpha.unsqueeze(-1)).flip(-1)
        ctx.save_for_backward(alpha, lam)
        return lam

    @staticmethod
    def backward(ctx, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        # lam = M^T g with M the forward recursion y(t) = alpha y(t-1) + g(t): the adjoint of
        # the reverse scan is the forward scan; d lam(t)/d alpha = lam(t+1) + alpha d lam(t+1).
        alpha, lam = ctx.saved_tensors
        mu = _affine_scan(h, alpha.unsqueeze(-1))
        grad_alpha = (mu[..., :-1] * lam[..., 1:]).sum(-1)
        return mu, grad_alpha


def _lag_filter_scan(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The lag filter with the parallel scan (values and gradients as the recursion)."""
    return _LagFilterScan.apply(x, alpha.expand(x.shape[:-1]))


def _lag_filter_loop(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The sequential recursion, one day at a time (reference and benchmark baseline)."""
    alpha = alpha.expand(x.shape[:-1])
    out = [x[..., 0]]
    for t in range(1, x.shape[-1]):
        out.append((1.0 - alpha) * x[..., t] + alpha * out[-1])
    return torch.stack(out, dim=-1)


def lag_filter(x: torch.Tensor, alpha: torch.Tensor, method: str = "scan") -> torch.Tensor:
    """Exponential lag filter ``y(t) = (1 - alpha) x(t) + alpha y(t-1)``, ``y(0) = x(0)``.

    Args:
        x: Driver of shape ``(*batch, days)``.
        alpha: Lag coefficient in ``[0, 1]``, shape broadcastable to ``batch``.
        method: ``"scan"`` (parallel, default) or ``"loop"`` (sequential reference).

    Returns:
        The filtered driver, shape ``(*broadcast(batch), days)``.
    """
    if x.shape[-1] == 0:
        raise ValueError("lag_filter: the day axis (last axis) is empty")
    alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
    batch = torch.broadcast_shapes(x.shape[:-1], alpha.shape)
    x = x.expand(*batch, x.shape[-1])
    if method == "scan":
        # Rows with alpha == 0 need no filtering (y = x exactly), so the scan runs only on the
        # others: in a calibration batch most rows have alpha fixed at 0 by the lag mask.
        # Skipped when alpha needs a gradient (d y / d alpha is not 0 at alpha = 0).
        if alpha.requires_grad and torch.is_grad_enabled():
            return _lag_filter_scan(x, alpha)
        lagged = (alpha != 0).expand(batch)
        if bool(lagged.all()):
            return _lag_filter_scan(x, alpha)
        if not bool(lagged.any()):
            return x
        out = x.clone()
        out[lagged] = _lag_filter_scan(x[lagged], alpha.expand(batch)[lagged])
        return out
    if method == "loop":
        return _lag_filter_loop(x, alpha)
    raise ValueError(f"lag_filter: method must be 'scan' or 'loop', got {method!r}")


# ---------------------------------------------------------------------------------- simulate
def _validate(forcing: Mapping[str, torch.Tensor], params: torch.Tensor) -> None:
    if not isinstance(params, torch.Tensor):
        raise TypeError(f"params: expected a torch.Tensor of shape (sites, 13), got "
                        f"{type(params).__name__}")
    if params.ndim < 1 or params.shape[-1] != N_PARAMS:
        raise ValueError(f"params: expected shape (sites, {N_PARAMS}) with the parameters "
                         f"{PARAMETERS} on the last axis, got {tuple(params.shape)}")
    missing = [k for k in FORCING_KEYS if k not in forcing]
    if missing:
        raise KeyError(f"forcing: missing key(s) {missing}; expected all of {FORCING_KEYS}")
    shape = None
    for k in FORCING_KEYS:
        v = forcing[k]
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"forcing[{k!r}]: expected a torch.Tensor, got {type(v).__name__}")
        if v.ndim < 1 or v.shape[-1] == 0:
            raise ValueError(f"forcing[{k!r}]: expected shape (sites, days), got "
                             f"{tuple(v.shape)}")
        if shape is None:
            shape = v.shape
        elif v.shape != shape:
            raise ValueError(f"forcing[{k!r}]: shape {tuple(v.shape)} differs from "
                             f"forcing[{FORCING_KEYS[0]!r}] {tuple(shape)}; all forcing "
                             "variables must share one (sites, days) shape")
        # Fast path: any NaN or inf makes the sum non-finite (isfinite().all() costs 40x more);
        # only then count, which also clears a sum that merely overflowed.
        if not bool(torch.isfinite(v.sum())):
            n_bad = int((~torch.isfinite(v)).sum())
            if n_bad:
                raise ValueError(f"forcing[{k!r}]: {n_bad} non-finite value(s); gap-fill the "
                                 "forcing before simulating (lue_spie.data.to_forcing does)")
    try:
        torch.broadcast_shapes(shape[:-1], params.shape[:-1])
    except RuntimeError:
        raise ValueError(f"params batch shape {tuple(params.shape[:-1])} does not broadcast "
                         f"with the forcing batch shape {tuple(shape[:-1])}") from None
    check_params(params, "params")


def simulate(
    forcing: Mapping[str, torch.Tensor], params: torch.Tensor, *, validate: bool = True,
    lag_method: str = "scan",
) -> dict[str, torch.Tensor]:
    """Run the LUE model.

    Args:
        forcing: Maps each of :data:`FORCING_KEYS` to a tensor of shape ``(*batch_f, days)``
            in SPEC units (T degC, VPD Pa, CO2 ppm, W 0-1, PAR MJ m-2 d-1, FAPAR 0-1, CI 0-1).
            Tensors are moved to the dtype and device of ``params``.
        params: Physical parameters ``(*batch_p, 13)`` in :data:`~lue_spie.params.PARAMETERS`
            order. ``batch_f`` and ``batch_p`` broadcast: forcing ``(sites, 1, days)`` with
            params ``(sites, pop, 13)`` evaluates a CMA-ES population per site in one call.
        validate: Check keys, shapes, finiteness and parameter bounds, raising a clear error
            (set False inside hot loops once the inputs are known to be good).
        lag_method: ``"scan"`` (parallel) or ``"loop"`` (sequential reference).

    Returns:
        Dict of tensors of shape ``(*batch, days)``: ``GPP`` [gC m-2 d-1], the sensitivity
        functions ``fT, fVPD, fW, fL, fCI``, the two factors of fVPD (``fVPD_VPD``,
        ``fVPD_CO2``), the lagged drivers ``Tf, Wf`` and ``APAR`` [MJ m-2 d-1].
    """
    if validate:
        _validate(forcing, params)
    f = {k: forcing[k].to(dtype=params.dtype, device=params.device) for k in FORCING_KEYS}
    p = {name: params[..., i : i + 1] for i, name in enumerate(PARAMETERS)}  # (*batch_p, 1)

    Tf = lag_filter(f["T"], p["alpha_T"][..., 0], method=lag_method)
    Wf = lag_filter(f["W"], p["alpha_W"][..., 0], method=lag_method)
    APAR = f["PAR"] * f["FAPAR"]

    fT = f_T(Tf, p["Topt"], p["kT"])
    fVPD_VPD, fVPD_CO2 = f_VPD(f["VPD"], f["CO2"], p["kappa"], p["Ca0"], p["Ckappa"], p["Cm"])
    fVPD = fVPD_VPD * fVPD_CO2
    fW = f_W(Wf, p["kW"], p["WI"])
    fL = f_L(APAR, p["gamma"])
    fCI = f_CI(f["CI"], p["mu"])
    GPP = APAR * p["eps_max"] * fT * fVPD * fW * fL * fCI
    out = {"GPP": GPP, "fT": fT, "fVPD": fVPD, "fVPD_VPD": fVPD_VPD, "fVPD_CO2": fVPD_CO2,
           "fW": fW, "fL": fL, "fCI": fCI, "Tf": Tf, "Wf": Wf, "APAR": APAR}
    shape = GPP.shape
    return {k: v.expand(shape) for k, v in out.items()}

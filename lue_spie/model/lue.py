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

How it is made fast (``benchmarks/bench_model.py``; measured numbers in
``benchmarks/RESULTS.md``):

* **Prepared forcing.** What does not depend on the parameters is computed once per set of
  sites by :func:`prepare_forcing`: APAR, log CI (clipped) and ``log(CA_REF / ca)``. With the
  split ``log(Ca0/ca) = log(Ca0/CA_REF) + log(CA_REF/ca)`` the CO2 ratio costs one number per
  parameter vector plus a precomputed series, and both terms are small, so float32 keeps its
  precision. :func:`simulate` accepts a :class:`PreparedForcing` or a plain mapping (prepared
  on the fly).
* **One fused autograd node.** When gradients are wanted with respect to the parameters only
  (calibration by gradient, SPIE training), the whole model is one
  :class:`torch.autograd.Function` whose backward pass is written out: GPP is a product of
  factors, so ``d GPP / d theta = GPP * d log f / d theta`` for the factor f that theta enters,
  and each parameter's gradient is one sum over days. No graph of some forty elementwise
  operations is recorded, and only the arrays the backward pass needs are kept. The
  composable implementation (every step a differentiable torch operation) is kept for
  gradients with respect to the forcing, for higher-order gradients and for the sequential
  lag filter (``lag_method="loop"``); the tests check the two against each other and against
  finite differences (gradcheck).
* **A blocked lag filter.** The first-order recurrence is solved block by block: each block of
  16 days is one small triangular matrix product (batched ``bmm``, running at matrix-multiply
  speed), and the block-end values are themselves a recurrence of 16x fewer terms, solved the
  same way (recursively) and added back with one rank-one update. This does ``O(days)``
  memory traffic instead of the ``O(days log days)`` of a Hillis-Steele scan, uses only powers
  ``alpha**k`` of numbers in ``[0, 1]`` (no overflow for any record length), and reproduces the
  sequential recursion up to rounding. Rows whose lag is 0 are not filtered at all.
* **Scratch memory and blocks.** Temporaries come from a small cache of reused tensors: a
  fresh multi-megabyte tensor costs a page fault per 4 KiB every call, which was half the
  time of a forward + backward pass. Large batches are processed block by block over the
  leading batch axis (:data:`BLOCK_BYTES` per array) to bound the working memory, with the
  lag filters applied once for the whole batch first (their cost is mostly per call).
* **The leanest GPP for CMA-ES.** :func:`scratch_gpp` computes GPP alone with about two thirds
  of the passes (shared exponential for fV and fCI, divisions instead of reciprocals) into
  scratch memory, and the few values the calibration cost needs on the stressed days;
  :func:`lue_spie.cost.population_cost` reduces each block of a population at once.

Public API: :func:`simulate` (all outputs, differentiable), :func:`prepare_forcing` /
:class:`PreparedForcing` (once per set of sites), :func:`scratch_gpp` (no-grad hot loops),
:func:`lag_filter`, the sensitivity functions ``f_*``, :func:`block_rows`, :func:`clear_scratch`
and :func:`resolve_device`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch

from lue_spie.params import N_PARAMS, PARAMETERS, check_params

__all__ = [
    "FORCING_KEYS",
    "OUTPUT_KEYS",
    "CI_MIN",
    "CO2_DENOMINATOR_MIN",
    "CA_REF",
    "PreparedForcing",
    "prepare_forcing",
    "simulate",
    "lag_filter",
    "f_T",
    "f_VPD",
    "f_W",
    "f_L",
    "f_CI",
    "resolve_device",
    "scratch_gpp",
    "scratch_lagged",
    "block_rows",
    "BLOCK_BYTES",
    "clear_scratch",
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
#: Reference CO2 [ppm] splitting ``log(Ca0/ca) = log(Ca0/CA_REF) + log(CA_REF/ca)``: the
#: middle of Ca0's range, so that both terms are small (no cancellation in float32).
CA_REF: float = 365.0

_I = {name: i for i, name in enumerate(PARAMETERS)}
#: Days per block of the blocked lag filter (measured on 196 x 3650: 16 beats 8 and 32).
_SCAN_BLOCK = 16


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


def _log_ca0(Ca0: torch.Tensor) -> torch.Tensor:
    """``log(Ca0 / CA_REF)``, evaluated in float64 (a few numbers) and rounded once."""
    return torch.log(Ca0.to(torch.float64) / CA_REF).to(Ca0.dtype)


def _log_ca(ca: torch.Tensor) -> torch.Tensor:
    """``log(CA_REF / ca) = -log1p((ca - CA_REF) / CA_REF)``, accurate in float32.

    ``ca - CA_REF`` is exact (both are within a factor of two of each other) and log1p of a
    small number keeps its relative precision, so the result is within about 3e-8 of the
    true value (as good as a float64 log rounded to float32, at float32 speed).
    """
    return torch.log1p((ca - CA_REF) / CA_REF).neg_()


def _vpd_part(VPD: torch.Tensor, log_ca: torch.Tensor, kappa: torch.Tensor, Ca0: torch.Tensor,
              Ckappa: torch.Tensor) -> torch.Tensor:
    """``exp(kappa (Ca0/ca)^Ckappa VPD)`` from ``log_ca = log(CA_REF / ca)``."""
    # (Ca0/ca)^Ckappa = exp(Ckappa (log(Ca0/CA_REF) + log(CA_REF/ca))): both logs are small
    # and accurate (see _log_ca, _log_ca0), so float32 keeps its precision, and exp(e log b)
    # differentiates more cheaply than pow with a tensor exponent.
    return torch.exp(kappa * torch.exp(Ckappa * (_log_ca0(Ca0) + log_ca)) * VPD)


def _co2_part(ca: torch.Tensor, Ca0: torch.Tensor, Cm: torch.Tensor) -> torch.Tensor:
    """``1 + (ca - Ca0) / max(ca - Ca0 + Cm, CO2_DENOMINATOR_MIN)``."""
    return 1.0 + (ca - Ca0) / torch.clamp(ca - Ca0 + Cm, min=CO2_DENOMINATOR_MIN)


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
    vpd_part = _vpd_part(VPD, _log_ca(ca), kappa, Ca0, Ckappa)
    return vpd_part, _co2_part(ca, Ca0, Cm)


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


def _bshape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """``torch.broadcast_shapes(a, b)`` for valid shapes, without its Python overhead (the
    hot paths call it several times per block)."""
    a, b = tuple(a), tuple(b)
    if a == b:
        return a
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + a
    b = (1,) * (n - len(b)) + b
    return tuple(y if x == 1 else x for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------------------------ scratch memory
class _Scratch:
    """A small cache of CPU scratch tensors, reused across calls.

    A fresh multi-megabyte tensor costs more than the arithmetic done in it: the C allocator
    hands large blocks back to the operating system when they are freed, and the next call
    pays a page fault (and zero-filling) for every 4 KiB it touches again. On the reference
    machine that was half the time of a forward + backward pass. Temporaries that never leave
    this module are therefore taken from and given back to this cache; tensors that reach the
    caller (outputs, tensors saved for a backward pass) are ordinary allocations. CUDA has its
    own caching allocator, so the cache is bypassed there. Thread-safe; bounded in size.
    """

    def __init__(self, max_bytes: int = 1 << 30):
        self.max_bytes = max_bytes
        self._free: dict[tuple, list[torch.Tensor]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` with the dtype and device of ``like``."""
        if like.device.type == "cpu":
            key = (tuple(shape), like.dtype)
            with self._lock:
                free = self._free.get(key)
                if free:
                    t = free.pop()
                    self._bytes -= t.nbytes
                    return t
        return torch.empty(tuple(shape), dtype=like.dtype, device=like.device)

    def give(self, *tensors: torch.Tensor | None) -> None:
        """Return tensors obtained from :meth:`take` (no reference to them may remain)."""
        with self._lock:
            for t in tensors:
                if t is None or t.device.type != "cpu" or self._bytes + t.nbytes > self.max_bytes:
                    continue
                self._free.setdefault((tuple(t.shape), t.dtype), []).append(t)
                self._bytes += t.nbytes

    def clear(self) -> None:
        """Release every cached tensor."""
        with self._lock:
            self._free.clear()
            self._bytes = 0


_SCRATCH = _Scratch()


def clear_scratch() -> None:
    """Release the scratch memory the model keeps between calls (at most 1 GiB, CPU only)."""
    _SCRATCH.clear()


# --------------------------------------------------------------------------------- lag filter
@functools.lru_cache(maxsize=64)
def _toeplitz_index(n: int, device: torch.device) -> torch.Tensor:
    """``idx[j, i] = i - j`` for ``i >= j``, else ``n + 1`` (a column of zeros)."""
    k = torch.arange(n, device=device)
    d = k[None, :] - k[:, None]
    return torch.where(d >= 0, d, n + 1)


def _block_matrix(
    a: torch.Tensor, n: int, scale: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``M[r, j, i] = scale_r * a_r**(i - j)`` for ``i >= j`` else 0, and the powers.

    Args:
        a: ``(R, 1)`` slopes; scale: ``(R, 1)`` or None.

    Returns:
        ``M`` of shape ``(R, n, n)`` (upper triangular) and ``a**k`` for k = 0..n, ``(R, n+1)``.
    """
    k = torch.arange(n + 1, dtype=a.dtype, device=a.device)
    powers = torch.pow(a, k)  # 0**0 = 1: a = 0 gives the identity
    table = powers if scale is None else powers * scale
    table = torch.cat([table, table.new_zeros(table.shape[0], 1)], dim=1)
    return table[:, _toeplitz_index(n, a.device)], powers


def _scan(
    b: torch.Tensor,
    a: torch.Tensor,
    *,
    y0: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
    reverse: bool = False,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Solve a first-order linear recurrence with a constant slope per row, blocked.

    Forward: ``y(t) = a y(t-1) + s b(t)`` for t = 0..D-1 with ``y(-1) = y0``.
    Reverse: ``y(t) = a y(t+1) + s b(t)`` for t = D-1..0 with ``y(D) = y0`` (the adjoint).
    ``y0`` defaults to 0 and ``s`` (``scale``) to 1.

    The days are cut into blocks of ``_SCAN_BLOCK`` (the last one may be shorter); within a
    block the recurrence from a zero state is one triangular matrix product ``b_block @ M``
    (``M[j, i] = s a**(i-j)``), batched over rows and blocks. The true values at the block
    ends obey the same recurrence with slope ``a**B`` over the blocks, solved by this
    function (16 times shorter: two or three levels in all), and ``a**(i+1)`` times the value
    carried into each block is added to it. Work and memory traffic are linear in the number
    of days; the only numbers formed are powers of ``a``, in ``[0, 1]`` for a lag.

    Args:
        b: ``(R, D)`` inputs (rows may be strided; the day axis must have stride 1).
        a: ``(R, 1)`` slopes.
        y0: ``(R, 1)`` state before the first (after the last) day.
        scale: ``(R, 1)`` factor applied to ``b`` (folded into the block matrix).
        reverse: Run backwards in time.
        out: Optional ``(R, D)`` buffer for the result (day axis contiguous), not ``b``.

    Returns:
        ``(R, D)``. Differentiable (out-of-place operations are used when an input requires
        a gradient and grad mode is on).
    """
    n_rows, n_days = b.shape
    block = min(_SCAN_BLOCK, n_days)
    n_blocks, rest = divmod(n_days, block)
    full = n_blocks * block
    m, powers = _block_matrix(a, block, scale)
    if reverse:
        m = m.mT
    graph = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (b, a, y0, scale))
    # Every block from a zero state (a contiguous result: bmm is fastest that way).
    local = torch.bmm(b[:, :full].view(n_rows, n_blocks, block), m)
    tail = None
    if rest:
        tail = torch.bmm(b[:, full:].unsqueeze(1), m[:, :rest, :rest]).squeeze(1)
    up = powers[:, 1 : block + 1]  # a**1 .. a**B
    if not reverse:
        ends = local[:, :, block - 1]  # block ends from a zero state
        if n_blocks > 1:  # true values at the block ends: the same recurrence, slope a**B
            ends = _scan(ends.contiguous(), powers[:, block:], y0=y0)
        elif y0 is not None:
            ends = torch.addcmul(ends, y0, powers[:, block:])
        first = y0 if y0 is not None else ends.new_zeros(n_rows, 1)
        carry = torch.cat([first, ends[:, :-1]], dim=1)  # value carried into each block
        factor = up
        if rest:
            tail = torch.addcmul(tail, ends[:, -1:], up[:, :rest])
    else:
        down = up.flip(-1)  # a**B .. a**1
        if rest and y0 is not None:
            tail = torch.addcmul(tail, y0, down[:, block - rest :])
        last = tail[:, :1] if rest else y0  # state after the last full block
        starts = local[:, :, 0]  # block starts from a zero state
        if n_blocks > 1:  # true values at the block starts
            starts = _scan(starts.contiguous(), powers[:, block:], y0=last, reverse=True)
        elif last is not None:
            starts = torch.addcmul(starts, last, powers[:, block:])
        after = last if last is not None else starts.new_zeros(n_rows, 1)
        carry = torch.cat([starts[:, 1:], after], dim=1)  # value carried into each block
        factor = down
    if graph:
        main = torch.addcmul(local, carry.unsqueeze(-1), factor.unsqueeze(1))
        main = main.reshape(n_rows, full)
        return torch.cat([main, tail], dim=1) if rest else main
    # The carries are added while writing the result in place (one pass).
    out = b.new_empty(n_rows, n_days) if out is None else out
    torch.addcmul(local, carry.unsqueeze(-1), factor.unsqueeze(1),
                  out=out[:, :full].view(n_rows, n_blocks, block))
    if rest:
        out[:, full:] = tail
    return out


def _lag_rows(x: torch.Tensor, alpha: torch.Tensor, out: torch.Tensor | None = None
              ) -> torch.Tensor:
    """Lag filter of ``x (*batch_x, D)`` with ``alpha (*batch_a)`` (no autograd recording).

    Rows whose alpha is 0 are left alone (``y = x`` exactly); when no row is lagged and no
    ``out`` is given, ``x`` itself is returned (not broadcast). Otherwise the result, of shape
    ``broadcast(batch_x, batch_a) + (D,)``, is written into ``out`` (when given).
    """
    lagged = alpha != 0
    n_days = x.shape[-1]
    batch = _bshape(x.shape[:-1], alpha.shape)
    if not bool(lagged.any()):
        return x if out is None else out.copy_(x.expand(*batch, n_days))
    out = x.new_empty((*batch, n_days)) if out is None else out
    flat = out.view(-1, n_days)
    a = alpha.expand(batch).reshape(-1, 1)
    if bool(lagged.all()):
        src = None
        if x.shape[:-1] == batch:
            rows = x.reshape(-1, n_days)
        else:  # broadcast rows (a population at one site): a copy to filter
            src = _SCRATCH.take((*batch, n_days), x)
            src.copy_(x.expand(*batch, n_days))
            rows = src.view(-1, n_days)
        _scan(rows, a, y0=rows[:, :1], scale=1.0 - a, out=flat)
        _SCRATCH.give(src)
        return out
    out.copy_(x.expand(*batch, n_days))
    idx = lagged.expand(batch).reshape(-1).nonzero().squeeze(-1)
    rows, a = flat.index_select(0, idx), a.index_select(0, idx)
    flat.index_copy_(0, idx, _scan(rows, a, y0=rows[:, :1], scale=1.0 - a))
    return out


def _lag_alpha_grad(
    h: torch.Tensor, x: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor
) -> torch.Tensor:
    """``dL/dalpha`` of ``y = lag_filter(x, alpha)`` given ``h = dL/dy`` (``h`` is consumed).

    The adjoint ``lambda(t) = h(t) + alpha lambda(t+1)`` is a reverse recursion (none where
    alpha is 0), and ``dL/dalpha = sum_{t>=1} lambda(t) (y(t-1) - x(t))``.
    """
    batch = h.shape[:-1]
    n_days = h.shape[-1]
    if n_days == 1:
        return h.new_zeros(batch)
    lagged = alpha != 0
    lam = h
    if bool(lagged.any()):
        a = alpha.expand(batch).reshape(-1, 1)
        flat = h.reshape(-1, n_days)
        if bool(lagged.all()):
            lam = _scan(flat, a, reverse=True, out=_SCRATCH.take(flat.shape, h))
        else:
            lam = flat.clone()
            idx = lagged.expand(batch).reshape(-1).nonzero().squeeze(-1)
            lam.index_copy_(0, idx, _scan(flat.index_select(0, idx), a.index_select(0, idx),
                                          reverse=True))
        lam = lam.view(h.shape)
    step_shape = _bshape(y.shape, x.shape)[:-1] + (n_days - 1,)
    step = _SCRATCH.take(step_shape, h)
    torch.sub(y[..., :-1], x[..., 1:], out=step)
    if step.shape == lam[..., 1:].shape:
        grad = step.mul_(lam[..., 1:]).sum(-1)
    else:  # an unfiltered driver smaller than the batch (e.g. shared by folds)
        grad = torch.linalg.vecdot(lam[..., 1:], step)
    _SCRATCH.give(step, lam if lam is not h else None)
    return grad


class _LagFilterScan(torch.autograd.Function):
    """Lag filter by :func:`_scan` with an analytic (adjoint) backward pass.

    Written as an autograd Function because recording the scan's steps for autograd costs
    several times the forward pass; the adjoint of a linear recurrence is the same recurrence
    run backwards in time, so the backward pass is one more scan:

        lambda(t) = g(t) + alpha * lambda(t+1)                      (reverse-time scan)
        dL/dx(0) = lambda(0),  dL/dx(t) = (1 - alpha) lambda(t)     (t >= 1)
        dL/dalpha = sum_{t>=1} lambda(t) * (y(t-1) - x(t))

    The forward pass solves ``y(t) = alpha y(t-1) + (1 - alpha) x(t)`` from the state
    ``y(-1) = x(0)``, which gives ``y(0) = x(0)``. The backward pass is built from
    differentiable torch operations, so higher-order gradients work too.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:  # noqa: D102
        a = alpha.reshape(-1, 1)
        rows = x.reshape(-1, x.shape[-1])
        y = _scan(rows, a, y0=rows[:, :1], scale=1.0 - a).view(x.shape)
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
        lam = _scan(g.reshape(-1, g.shape[-1]), alpha.reshape(-1, 1), reverse=True)
        lam = lam.view(g.shape)
        ctx.save_for_backward(alpha, lam)
        return lam

    @staticmethod
    def backward(ctx, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        # lam = M^T g with M the forward recursion y(t) = alpha y(t-1) + g(t): the adjoint of
        # the reverse scan is the forward scan; d lam(t)/d alpha = lam(t+1) + alpha d lam(t+1).
        alpha, lam = ctx.saved_tensors
        mu = _scan(h.reshape(-1, h.shape[-1]), alpha.reshape(-1, 1)).view(h.shape)
        grad_alpha = (mu[..., :-1] * lam[..., 1:]).sum(-1)
        return mu, grad_alpha


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
        method: ``"scan"`` (blocked, default) or ``"loop"`` (sequential reference).

    Returns:
        The filtered driver, shape ``(*broadcast(batch), days)``. Differentiable in ``x`` and
        ``alpha`` (to any order).
    """
    if x.shape[-1] == 0:
        raise ValueError("lag_filter: the day axis (last axis) is empty")
    alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
    batch = _bshape(x.shape[:-1], alpha.shape)
    x = x.expand(*batch, x.shape[-1])
    if method == "scan":
        # Rows with alpha == 0 need no filtering (y = x exactly). Skipped when alpha needs a
        # gradient (d y / d alpha is not 0 at alpha = 0).
        if torch.is_grad_enabled() and (alpha.requires_grad or x.requires_grad):
            return _LagFilterScan.apply(x.contiguous(), alpha.expand(batch).contiguous())
        return _lag_rows(x, alpha.expand(batch))
    if method == "loop":
        return _lag_filter_loop(x, alpha)
    raise ValueError(f"lag_filter: method must be 'scan' or 'loop', got {method!r}")


# --------------------------------------------------------------------------- prepared forcing
@dataclasses.dataclass(frozen=True, eq=False)
class PreparedForcing:
    """Forcing with everything that does not depend on the parameters computed once.

    Build it with :func:`prepare_forcing` once per set of sites and pass it to
    :func:`simulate` (or to :func:`lue_spie.cost.prepare_cost`) instead of the raw forcing:
    it saves the per-call conversions and it has been validated. All tensors share one shape
    ``(*batch, days)`` (``co2_min``: ``(*batch, 1)``), dtype and device.

    Attributes:
        T: Air temperature [degC].
        W: Relative soil moisture [0-1].
        VPD: Vapour pressure deficit [Pa].
        CO2: Atmospheric CO2 ``ca`` [ppm].
        APAR: ``PAR * FAPAR`` [MJ m-2 d-1].
        log_CI: ``log(clip(CI, CI_MIN, 1))`` [-].
        log_ca: ``log(CA_REF / ca)`` [-].
        co2_min: Smallest ``ca`` of each series [ppm] (tells whether the guard of the CO2
            term's denominator can bind for a parameter vector).
    """

    T: torch.Tensor
    W: torch.Tensor
    VPD: torch.Tensor
    CO2: torch.Tensor
    APAR: torch.Tensor
    log_CI: torch.Tensor
    log_ca: torch.Tensor
    co2_min: torch.Tensor

    @property
    def shape(self) -> torch.Size:
        """``(*batch, days)``."""
        return self.T.shape

    @property
    def dtype(self) -> torch.dtype:  # noqa: D102
        return self.T.dtype

    @property
    def device(self) -> torch.device:  # noqa: D102
        return self.T.device

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> PreparedForcing:
        """The same forcing with ``fn`` applied to every tensor (e.g. a selection of rows)."""
        return PreparedForcing(**{f.name: fn(getattr(self, f.name))
                                  for f in dataclasses.fields(self)})

    def to(self, dtype: torch.dtype | None = None,
           device: torch.device | str | None = None) -> PreparedForcing:
        """The same forcing in another dtype and/or on another device (self when unchanged)."""
        dtype = self.dtype if dtype is None else dtype
        device = self.device if device is None else torch.device(device)
        if dtype == self.dtype and torch.device(device) == self.device:
            return self
        return self.apply(lambda v: v.to(device=device, dtype=dtype))

    def select(self, index: int | slice | Sequence[int] | torch.Tensor) -> PreparedForcing:
        """The series of a subset of the first batch axis (sites), e.g. a mini-batch.

        ``index`` is a slice (a view, no copy) or integer indices (a copy).
        """
        if isinstance(index, slice):
            return self.apply(lambda v: v[index])
        if isinstance(index, int):
            index = [index]
        idx = torch.as_tensor(index, dtype=torch.long, device=self.device)
        return self.apply(lambda v: v.index_select(0, idx))

    def unsqueeze(self, dim: int) -> PreparedForcing:
        """Insert a batch axis (``dim`` counts batch axes only, from 0): e.g. ``unsqueeze(1)``
        turns ``(sites, days)`` into ``(sites, 1, days)`` to broadcast against a population
        of parameter vectors ``(sites, pop, 13)``."""
        n_batch = len(self.shape) - 1
        if not -n_batch - 1 <= dim <= n_batch:
            raise ValueError(f"PreparedForcing.unsqueeze: dim {dim} out of range for "
                             f"{n_batch} batch axes")
        d = dim if dim >= 0 else dim - 1
        return self.apply(lambda v: v.unsqueeze(d))


def _validate_forcing(forcing: Mapping[str, torch.Tensor]) -> None:
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


def prepare_forcing(
    forcing: Mapping[str, torch.Tensor] | PreparedForcing,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    validate: bool = True,
) -> PreparedForcing:
    """Validate the forcing and compute its parameter-independent parts once.

    Args:
        forcing: Maps each of :data:`FORCING_KEYS` to a tensor of shape ``(*batch, days)``
            in SPEC units (T degC, VPD Pa, CO2 ppm, W 0-1, PAR MJ m-2 d-1, FAPAR 0-1, CI 0-1),
            or an already prepared forcing (then only converted).
        dtype: Working precision (default: that of ``forcing["T"]``); float32 or float64.
        device: Device (default: that of ``forcing["T"]``).
        validate: Check keys, shapes and finiteness, raising a clear error.

    Returns:
        A :class:`PreparedForcing` in ``dtype`` on ``device``.
    """
    if isinstance(forcing, PreparedForcing):
        return forcing.to(dtype, device)
    if validate:
        _validate_forcing(forcing)
    ref = forcing["T"]
    dtype = ref.dtype if dtype is None else dtype
    device = ref.device if device is None else device
    f = {k: torch.as_tensor(forcing[k]).to(device=device, dtype=dtype) for k in FORCING_KEYS}
    ca = f["CO2"]
    return PreparedForcing(
        T=f["T"], W=f["W"], VPD=f["VPD"], CO2=ca,
        APAR=f["PAR"] * f["FAPAR"],
        log_CI=torch.log(torch.clamp(f["CI"], CI_MIN, 1.0)),
        log_ca=_log_ca(ca),
        co2_min=ca.amin(-1, keepdim=True),
    )


# ------------------------------------------------------------------------------ fused model
def _columns(params: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each parameter as a ``(*batch, 1)`` column (broadcasts against ``(*batch, days)``)."""
    return {name: params[..., i : i + 1] for i, name in enumerate(PARAMETERS)}


#: Arrays the backward pass of :class:`_FusedLUE` reads (besides the outputs asked for).
_SAVED = frozenset({"GPP", "fVPD_CO2", "fW", "fL", "Tf", "Wf", "_vr", "_rest"})
#: Names :func:`_forward_block` can produce.
_BLOCK_KEYS = frozenset(OUTPUT_KEYS) | _SAVED
#: Bytes of one array per block of rows on the CPU (bounds the working memory of a large
#: batch; 196 sites x 3650 days in float32 is one block). Smaller, cache-sized blocks did not
#: pay on the shared 2-core reference machine: the per-call overhead of the extra operations
#: outweighed the cache gain (benchmarks/RESULTS.md). On CUDA: at most 256 MiB per array.
BLOCK_BYTES = 1 << 22
_CUDA_BLOCK_BYTES = 1 << 28


def block_rows(row_bytes: int, device: torch.device | str) -> int:
    """Rows of ``row_bytes`` bytes (of one array) per block on ``device`` (at least 1)."""
    limit = BLOCK_BYTES if torch.device(device).type == "cpu" else _CUDA_BLOCK_BYTES
    return max(1, limit // max(int(row_bytes), 1))


def _co2_guard_binds(pf: PreparedForcing, p: dict[str, torch.Tensor]) -> bool:
    """Whether ``ca - Ca0 + Cm < CO2_DENOMINATOR_MIN`` can happen (from each series' min)."""
    return bool(((pf.co2_min - p["Ca0"] + p["Cm"]) < CO2_DENOMINATOR_MIN).any())


def _forward_block(
    pf: PreparedForcing,
    params: torch.Tensor,
    want: frozenset[str],
    dest: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The model on one block of rows (no autograd recording).

    Args:
        pf: Prepared forcing ``(*batch_f, D)``; params: ``(*batch_p, 13)``.
        want: Names to return (of :data:`_BLOCK_KEYS`; private ones start with "_").
        dest: Where to write wanted arrays (name -> tensor of the block's full shape). A
            wanted name without a destination is taken from the scratch cache: the caller
            must give it back. Unwanted intermediates are scratch, given back here.

    Returns:
        The wanted arrays. ``Tf``/``Wf`` without a destination are the prepared series
        themselves when no row of the block is lagged; ``APAR`` always is.
    """
    dest = dest or {}
    p = _columns(params)
    shape = (*_bshape(pf.shape[:-1], params.shape[:-1]), pf.shape[-1])
    temps: list[torch.Tensor] = []

    def new(name: str, size: tuple[int, ...] = shape) -> torch.Tensor:
        if name in dest:
            return dest[name]
        t = _SCRATCH.take(size, pf.T)
        if name not in want:
            temps.append(t)
        return t

    def lagged(x: torch.Tensor, name: str, alpha: torch.Tensor) -> torch.Tensor:
        if name in dest:  # the caller wants storage of its own (lagged somewhere)
            return _lag_rows(x, alpha, out=dest[name])
        if not bool((alpha != 0).any()):
            return x
        size = (*_bshape(x.shape[:-1], alpha.shape), x.shape[-1])
        return _lag_rows(x, alpha, out=new(name, size))

    Tf = lagged(pf.T, "Tf", params[..., _I["alpha_T"]])
    Wf = lagged(pf.W, "Wf", params[..., _I["alpha_W"]])
    # fT = sech((Tf - Topt)/kT): 2 e^-|z| / (1 + e^-2|z|) is 1 / cosh(z).
    fT = new("fT")
    torch.sub(Tf, p["Topt"], out=fT).div_(p["kT"]).cosh_().reciprocal_()
    # VPD part exp(kappa r VPD), r = (Ca0/ca)^Ckappa = exp(Ckappa (log(Ca0/CA_REF) + log_ca)).
    vr = new("_vr")
    # (Out-of-place addcmul with a broadcast first operand is several times slower than mul
    # and add_ in torch 2.13 on the CPU: measured, hence the two operations.)
    torch.mul(pf.log_ca, p["Ckappa"], out=vr).add_(p["Ckappa"] * _log_ca0(p["Ca0"]))
    vr.exp_().mul_(pf.VPD)
    fV = new("fVPD_VPD")
    torch.mul(vr, p["kappa"], out=fV).exp_()
    # CO2 part 1 + (ca - Ca0) / max(ca - Ca0 + Cm, CO2_DENOMINATOR_MIN).
    fC = new("fVPD_CO2")
    torch.sub(pf.CO2, p["Ca0"], out=fC)
    den = torch.add(fC, p["Cm"], out=new("_den"))
    if _co2_guard_binds(pf, p):
        den.clamp_min_(CO2_DENOMINATOR_MIN)
    fC.div_(den).add_(1.0)
    # fW = 1 / (1 + exp(kW (Wf - WI))) = sigmoid(-kW (Wf - WI)).
    fW = new("fW")
    torch.mul(Wf, -p["kW"], out=fW).add_(p["kW"] * p["WI"]).sigmoid_()
    fL = new("fL")
    torch.mul(pf.APAR, p["gamma"], out=fL).add_(1.0).reciprocal_()
    fCI = new("fCI")
    torch.mul(pf.log_CI, p["mu"], out=fCI).exp_()
    # GPP = (APAR fT fV fW fL fCI, kept for backward as "_rest") * fC * eps_max.
    rest = new("_rest")
    torch.mul(fT, pf.APAR, out=rest).mul_(fV).mul_(fW).mul_(fL).mul_(fCI)
    gpp = new("GPP")
    torch.mul(rest, fC, out=gpp).mul_(p["eps_max"])
    out = {"GPP": gpp, "fT": fT, "fVPD_VPD": fV, "fVPD_CO2": fC, "fW": fW, "fL": fL,
           "fCI": fCI, "Tf": Tf, "Wf": Wf, "APAR": pf.APAR, "_vr": vr, "_rest": rest}
    if "fVPD" in want:
        out["fVPD"] = torch.mul(fV, fC, out=new("fVPD"))
    _SCRATCH.give(*temps)
    return {k: out[k] for k in want}


def _leading_slice(t: torch.Tensor, rows: slice, n_lead: int, batch_ndim: int) -> torch.Tensor:
    """Rows ``rows`` of the leading axis of a broadcast batch of ``batch_ndim`` axes.

    ``t`` has ``batch_ndim`` or fewer batch axes (then right-aligned) plus one trailing axis;
    it is sliced only where its leading batch axis has the full length ``n_lead``.
    """
    if t.ndim - 1 == batch_ndim and t.shape[0] == n_lead and n_lead > 1:
        return t[rows]
    return t


def _blocks(shape: Sequence[int], like: torch.Tensor) -> list[slice]:
    """Slices of the leading axis of an array of ``shape`` (dtype and device of ``like``)
    into blocks (see :func:`block_rows`)."""
    if len(shape) < 2:
        return [slice(None)]
    row_bytes = like.element_size()
    for n in shape[1:]:
        row_bytes *= n
    step = block_rows(row_bytes, like.device)
    return [slice(i, min(i + step, shape[0])) for i in range(0, shape[0], step)]


def _fused_forward(
    pf: PreparedForcing, params: torch.Tensor, want: frozenset[str]
) -> dict[str, torch.Tensor]:
    """The wanted arrays (of :data:`_BLOCK_KEYS`) for the whole batch, block by block.

    ``Tf``/``Wf`` are the prepared series themselves when no row is lagged, and ``APAR``
    always is; every other array is new, of the full shape ``broadcast(batch_f, batch_p) +
    (D,)``.
    """
    batch = _bshape(pf.shape[:-1], params.shape[:-1])
    shape = (*batch, pf.shape[-1])
    full: dict[str, torch.Tensor] = {}
    for name in want - {"APAR"}:
        if name in ("Tf", "Wf"):
            alpha = params[..., _I["alpha_T" if name == "Tf" else "alpha_W"]]
            if not bool((alpha != 0).any()):
                continue
        full[name] = pf.T.new_empty(shape)
    blocks = _blocks(shape, pf.T)
    if len(blocks) == 1:
        return _forward_block(pf, params, want, full)
    # The lag filters run once for the whole batch (their cost is mostly per call); the blocks
    # then see the filtered drivers and zero lags.
    filtered, temps = {}, []
    for name, key in (("Tf", "T"), ("Wf", "W")):
        alpha = params[..., _I["alpha_T" if name == "Tf" else "alpha_W"]]
        if not bool((alpha != 0).any()):
            continue
        out = full.get(name)
        if out is None:
            out = _SCRATCH.take(shape, pf.T)
            temps.append(out)
        filtered[key] = _lag_rows(getattr(pf, key), alpha, out=out)
    if filtered:
        pf = dataclasses.replace(pf, **filtered)
        params = params.clone()
        params[..., [_I["alpha_T"], _I["alpha_W"]]] = 0.0
    n_lead = batch[0]
    for rows in blocks:
        _forward_block(
            pf.apply(lambda v, r=rows: _leading_slice(v, r, n_lead, len(batch))),
            _leading_slice(params, rows, n_lead, len(batch)), want - {"Tf", "Wf"},
            {k: v[rows] for k, v in full.items() if k not in ("Tf", "Wf")})
    _SCRATCH.give(*temps)
    out = dict(full)
    for name, series in (("Tf", pf.T), ("Wf", pf.W), ("APAR", pf.APAR)):
        if name in want and name not in full:
            out[name] = series
    return out


class _FusedLUE(torch.autograd.Function):
    """The whole model as one autograd node with a hand-written backward pass.

    Differentiable with respect to the parameters only (the forcing is data here). For an
    upstream gradient ``g_X`` of each output X, the log-derivative weight of a factor f is
    ``w_f = g_GPP GPP + g_f f (+ g_fVPD fVPD for the VPD factor)``, and the gradient of a
    parameter theta that enters f is ``sum_days w_f d log f / d theta``:

        Topt:    tanh(z) / kT                  kT:     tanh(z) z / kT        (z = (Tf-Topt)/kT)
        kappa:   r VPD                         Ckappa: kappa r VPD log(Ca0/ca)
        Ca0:     kappa r VPD Ckappa / Ca0  (+ the CO2 part, below)
        kW:      -(1 - fW) (Wf - WI)           WI:     kW (1 - fW)
        gamma:   -APAR fL                      mu:     log CI
        eps_max: d GPP / d eps_max = GPP / eps_max, taken as the product without eps_max
        CO2 part (not through its log: it can be 0): with ``den = ca - Ca0 + Cm`` and u = 1
                 where the guard does not bind (else 0), d fC / d Ca0 = -1/den + u (ca -
                 Ca0)/den^2 and d fC / d Cm = -u (ca - Ca0)/den^2
        alpha_T, alpha_W: the lag filter's adjoint (:func:`_lag_alpha_grad`) of
                 h = w_f d log f / d Tf (= -tanh(z)/kT for fT, -kW (1 - fW) for fW) + g_Tf.

    Each parameter's gradient is a sum over days; the only recursion is the adjoint of each
    lag filter. Both passes run block by block over the leading batch axis (cache-sized
    blocks, see :data:`BLOCK_BYTES`). Second derivatives are not implemented (a clear error
    under ``create_graph=True``): use ``simulate(..., method="composable")`` for them.
    """

    @staticmethod
    def forward(ctx, params: torch.Tensor, pf: PreparedForcing,  # noqa: D102
                outputs: tuple[str, ...]):
        want = frozenset(outputs) | _SAVED
        if "fVPD" in want:  # its gradient needs the VPD factor
            want |= {"fVPD_VPD"}
        out = _fused_forward(pf, params.detach(), want)
        # Outputs must be tensors of this call: Tf/Wf/APAR may be the prepared series. An
        # unfiltered driver is given the batch's shape (its gradient with respect to the lag
        # is not 0 at alpha = 0, and differs between rows that share the forcing).
        series = {id(pf.T), id(pf.W), id(pf.APAR)}
        shape = out["GPP"].shape
        results = [(out[k].expand(shape).clone() if k != "APAR" else out[k].clone())
                   if id(out[k]) in series else out[k] for k in outputs]
        if "APAR" in outputs:
            ctx.mark_non_differentiable(results[outputs.index("APAR")])
        ctx.set_materialize_grads(False)
        ctx.pf = pf
        ctx.outputs = outputs
        ctx.names = tuple(sorted(k for k, v in out.items() if id(v) not in series))
        ctx.save_for_backward(params, *(out[k] for k in ctx.names))
        return tuple(results)

    @staticmethod
    def backward(ctx, *grads_out):  # noqa: D102
        if torch.is_grad_enabled():
            raise RuntimeError("simulate: the fused model has first derivatives only; for "
                               "second derivatives (create_graph=True) call simulate(..., "
                               "method='composable')")
        params, *saved = ctx.saved_tensors
        pf: PreparedForcing = ctx.pf
        s = dict(zip(ctx.names, saved, strict=True))
        g = {k: v for k, v in zip(ctx.outputs, grads_out, strict=True) if v is not None}
        s.setdefault("Tf", pf.T)
        s.setdefault("Wf", pf.W)
        batch = s["GPP"].shape[:-1]
        blocks = _blocks(s["GPP"].shape, s["GPP"])
        if len(blocks) == 1:
            grad = _backward_block(pf, params, s, g)
        else:
            n_lead, nd = batch[0], len(batch)
            grad = torch.cat([
                _backward_block(
                    pf.apply(lambda v, r=rows: _leading_slice(v, r, n_lead, nd)),
                    _leading_slice(params, rows, n_lead, nd),
                    {k: _leading_slice(v, rows, n_lead, nd) for k, v in s.items()},
                    {k: _leading_slice(v, rows, n_lead, nd) for k, v in g.items()})
                for rows in blocks], dim=0)
        return grad.sum_to_size(params.shape), None, None


def _row(scale: torch.Tensor | float) -> torch.Tensor | float:
    """A ``(*batch, 1)`` column as a ``(*batch)`` row factor (numbers unchanged)."""
    return scale.squeeze(-1) if isinstance(scale, torch.Tensor) else scale


def _backward_block(pf: PreparedForcing, params: torch.Tensor, s: dict[str, torch.Tensor],
                    g: dict[str, torch.Tensor]) -> torch.Tensor:
    """Gradient ``(*batch, 13)`` with respect to ``params`` on one block (see :class:`_FusedLUE`).

    Args:
        pf, params: The block's prepared forcing and parameters.
        s: The forward arrays (:data:`_SAVED` and the outputs), ``Tf``/``Wf`` included.
        g: Upstream gradients of the outputs that received one.
    """
    p = _columns(params)
    gpp = s["GPP"]
    shape = gpp.shape
    batch = shape[:-1]
    temps: list[torch.Tensor] = []

    def tmp() -> torch.Tensor:
        t = _SCRATCH.take(shape, gpp)
        temps.append(t)
        return t

    def col(name: str) -> torch.Tensor:
        return p[name].squeeze(-1)

    grads = dict.fromkeys(PARAMETERS, gpp.new_zeros(()))
    eps = p["eps_max"]
    g_gpp = g.get("GPP")
    # base = g_GPP GPP is used as eps_max * base0 (base0 = g_GPP GPP / eps_max): the factor
    # eps_max is applied to the sums over days instead of to every day (two passes fewer).
    t = base0 = None
    if g_gpp is not None:
        t = torch.mul(g_gpp, s["_rest"], out=tmp())  # g_GPP GPP / (fC eps_max)
        base0 = torch.mul(t, s["fVPD_CO2"], out=tmp())
        grads["eps_max"] = base0.sum(-1)

    def weight(*names: str) -> tuple[torch.Tensor | None, torch.Tensor | float]:
        """``(w, scale)`` with ``scale * w = base + sum_k g_k f_k`` over the outputs k (of
        ``names``) that got a gradient."""
        extra = [(g[k], s[k]) for k in names if k in g]
        if not extra:
            return base0, eps
        w = tmp()
        w.zero_() if base0 is None else torch.mul(base0, eps, out=w)
        for gk, f in extra:
            w.addcmul_(gk, f)
        return w, 1.0

    Tf, Wf = s["Tf"], s["Wf"]
    # The CO2 part (derivative of fC itself, not of its log: fC can be 0):
    # dL/dfC = eps t + g_fVPD_CO2 + g_fVPD fV.
    d_fC, scale = t, eps
    if "fVPD_CO2" in g or "fVPD" in g:
        d_fC, scale = tmp(), 1.0
        d_fC.zero_() if t is None else torch.mul(t, eps, out=d_fC)
        if "fVPD_CO2" in g:
            d_fC.add_(g["fVPD_CO2"])
        if "fVPD" in g:
            d_fC.addcmul_(g["fVPD"], s["fVPD_VPD"])
    if d_fC is not None:
        dca = torch.sub(pf.CO2, p["Ca0"], out=tmp())
        den = torch.add(dca, p["Cm"], out=tmp())
        free = None
        if _co2_guard_binds(pf, p):
            free = den >= CO2_DENOMINATOR_MIN
            den.clamp_min_(CO2_DENOMINATOR_MIN)
        v = d_fC.div_(den)
        sum_v = v.sum(-1)
        u = v.div_(den)
        if free is not None:
            u.mul_(free)
        sum_u_dca = u.mul_(dca).sum(-1)
        grads["Ca0"] = (sum_u_dca - sum_v) * _row(scale)
        grads["Cm"] = -sum_u_dca * _row(scale)
    # fT: Topt, kT and the temperature lag.
    w, scale = weight("fT")
    h = g.get("Tf")
    if w is not None:
        z = torch.sub(Tf, p["Topt"], out=tmp()).div_(p["kT"])
        q = torch.mul(z, 2.0, out=tmp()).sigmoid_()
        q = torch.addcmul(w, w, q, value=-2.0, out=q)  # -w tanh(z), tanh = 2 sig(2z) - 1
        by_kT = _row(scale) / col("kT")
        grads["Topt"] = -q.sum(-1) * by_kT
        grads["kT"] = -z.mul_(q).sum(-1) * by_kT
        q.mul_(by_kT.unsqueeze(-1))  # scale w d log fT / d Tf
        h = q if h is None else q.add_(h)
    if h is not None:
        grads["alpha_T"] = _lag_alpha_grad(h.expand(shape), pf.T, Tf, params[..., _I["alpha_T"]])
    # VPD part: kappa, Ckappa, Ca0.
    w, scale = weight("fVPD_VPD", "fVPD")
    if w is not None:
        q = torch.mul(w, s["_vr"], out=tmp())
        sum_q = q.sum(-1) * _row(scale)
        sum_q_log = q.mul_(pf.log_ca).sum(-1) * _row(scale)
        kappa = col("kappa")
        grads["kappa"] = sum_q
        grads["Ckappa"] = kappa * (_log_ca0(p["Ca0"]).squeeze(-1) * sum_q + sum_q_log)
        grads["Ca0"] = grads["Ca0"] + kappa * col("Ckappa") / col("Ca0") * sum_q
    # fW: kW, WI and the soil-moisture lag.
    w, scale = weight("fW")
    h = g.get("Wf")
    if w is not None:
        q = torch.addcmul(w, w, s["fW"], value=-1.0, out=tmp())  # w (1 - fW)
        grads["WI"] = q.sum(-1) * (col("kW") * _row(scale))
        dw = torch.sub(Wf, p["WI"], out=tmp())
        grads["kW"] = -dw.mul_(q).sum(-1) * _row(scale)
        q.mul_((-col("kW") * _row(scale)).unsqueeze(-1))  # scale w d log fW / d Wf
        h = q if h is None else q.add_(h)
    if h is not None:
        grads["alpha_W"] = _lag_alpha_grad(h.expand(shape), pf.W, Wf, params[..., _I["alpha_W"]])
    # fL: gamma.
    w, scale = weight("fL")
    if w is not None:
        grads["gamma"] = -torch.mul(w, s["fL"], out=tmp()).mul_(pf.APAR).sum(-1) * _row(scale)
    # fCI: mu.
    w, scale = weight("fCI")
    if w is not None:
        grads["mu"] = torch.mul(w, pf.log_CI, out=tmp()).sum(-1) * _row(scale)
    _SCRATCH.give(*temps)
    return torch.stack([grads[name].expand(batch) for name in PARAMETERS], dim=-1)



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
    input is validated. Evaluate cache-sized blocks of rows (:func:`block_rows`) for speed.

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


# ---------------------------------------------------------------------------------- simulate
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
            analytic backward pass, gradients with respect to ``params``), or the composable
            one when the forcing itself requires a gradient or ``lag_method="loop"``.
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
    else:
        out = _fused_forward(pf, params.detach(), frozenset(outputs))
    shape = (*_bshape(pf.shape[:-1], params.shape[:-1]), pf.shape[-1])
    return {k: out[k].expand(shape) for k in outputs}

"""The lag filter ``y(t) = (1 - alpha) x(t) + alpha y(t-1)``, ``y(0) = x(0)``, of the drivers
T and W (the lagged drivers Tf and Wf of :mod:`lue_spie.model`).

The first-order recurrence is solved block by block (:func:`_scan`): each block of
``_SCAN_BLOCK`` days is one small triangular matrix product (batched ``bmm``, running at
matrix-multiply speed), and the block-end values are themselves a recurrence of
``_SCAN_BLOCK`` times fewer terms, solved the same way (recursively) and added back with one
rank-one update. This does ``O(days)`` memory traffic instead of the ``O(days log days)`` of a
Hillis-Steele scan, uses only powers ``alpha**k`` of numbers in ``[0, 1]`` (no overflow for any
record length), and reproduces the sequential recursion up to rounding. Rows whose lag is 0
are not filtered at all.

:func:`lag_filter` is the public, differentiable filter (an autograd node whose backward pass
is the adjoint scan, or the sequential loop); :func:`_lag_rows` (no autograd) and
:func:`_lag_alpha_grad` (the gradient with respect to the lag) serve the fused model and the
no-gradient evaluation.
"""

from __future__ import annotations

import functools

import torch

from lue_spie.model.scratch import _SCRATCH, _bshape

__all__ = ["lag_filter"]


#: Days per block of the blocked lag filter: the block size that measured fastest
#: (``benchmarks/bench_model.py``).
_SCAN_BLOCK = 16


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

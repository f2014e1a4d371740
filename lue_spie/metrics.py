"""Goodness-of-fit metrics between observed and simulated GPP (SPEC section 4).

Three metrics, as in the paper (section 2.3):

* ``nse``: Nash-Sutcliffe efficiency, ``1 - sum((sim - obs)^2) / sum((obs - mean(obs))^2)``;
  1 is a perfect fit, 0 is as good as the observed mean, negative is worse.
* ``r2``: the squared Pearson correlation between ``obs`` and ``sim``.
* ``nrmse``: ``RMSE / mean(obs)`` (normalised root-mean-square error, dimensionless).

Each metric exists twice with the same signature: a NumPy version (``nse``, ``r2``, ``nrmse``)
for tables and assessment, and a torch version (``nse_torch`` ...) that is differentiable and
batched, for the calibration cost and SPIE training. All reduce over the **last axis**
(days), keep the leading (batch) axes, and take an optional boolean ``mask`` (True = use the
day, e.g. a good-quality day). Days where ``obs`` or ``sim`` is NaN are ignored as if masked.

A series with fewer than ``min_points`` usable values, or with zero variance where the metric
needs it, gives NaN (never an exception, never inf): the caller decides whether a NaN metric
means "skip this site".
"""

from __future__ import annotations

import numpy as np
import torch

from lue_spie.constants import MIN_POINTS as _MIN_POINTS

__all__ = ["nse", "r2", "nrmse", "nse_torch", "r2_torch", "nrmse_torch", "MIN_POINTS"]

#: Fewest usable points for a metric (SPEC section 4: fewer than 4 good points -> left out).
MIN_POINTS = _MIN_POINTS


# --------------------------------------------------------------------------------------------
# NumPy
# --------------------------------------------------------------------------------------------


def _np_prepare(obs, sim, mask):
    obs = np.asarray(obs, dtype=np.float64)
    sim = np.asarray(sim, dtype=np.float64)
    obs, sim = np.broadcast_arrays(obs, sim)
    use = np.isfinite(obs) & np.isfinite(sim)
    if mask is not None:
        use = use & np.broadcast_to(np.asarray(mask, dtype=bool), obs.shape)
    n = use.sum(axis=-1)
    obs0 = np.where(use, obs, 0.0)
    sim0 = np.where(use, sim, 0.0)
    return obs0, sim0, use, n


def _finish(value: np.ndarray, ok: np.ndarray):
    out = np.where(ok, value, np.nan)
    return float(out) if out.ndim == 0 else out


def nse(obs, sim, mask=None, min_points: int = MIN_POINTS):
    """Nash-Sutcliffe efficiency over the last axis.

    Args:
        obs: Observed values, shape ``(..., days)``.
        sim: Simulated values, broadcastable to ``obs``.
        mask: Optional boolean array (True = use the day), broadcastable to ``obs``.
        min_points: Fewest usable days; fewer gives NaN.

    Returns:
        A float for 1-D input, else an array of shape ``obs.shape[:-1]``; NaN where the
        series is too short or ``obs`` has zero variance.
    """
    obs0, sim0, use, n = _np_prepare(obs, sim, mask)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = obs0.sum(-1) / np.maximum(n, 1)
        sse = ((sim0 - obs0) ** 2).sum(-1)
        sst = (np.where(use, obs0 - mean[..., None], 0.0) ** 2).sum(-1)
        value = 1.0 - sse / np.where(sst > 0, sst, 1.0)
    return _finish(value, (n >= min_points) & (sst > 0))


def r2(obs, sim, mask=None, min_points: int = MIN_POINTS):
    """Squared Pearson correlation between ``obs`` and ``sim`` over the last axis.

    NaN where the series is too short or either series has zero variance.
    """
    obs0, sim0, use, n = _np_prepare(obs, sim, mask)
    nn = np.maximum(n, 1)[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        do = np.where(use, obs0 - obs0.sum(-1, keepdims=True) / nn, 0.0)
        ds = np.where(use, sim0 - sim0.sum(-1, keepdims=True) / nn, 0.0)
        cov = (do * ds).sum(-1)
        vo = (do**2).sum(-1)
        vs = (ds**2).sum(-1)
        ok = (n >= min_points) & (vo > 0) & (vs > 0)
        value = cov**2 / np.where(ok, vo * vs, 1.0)
    return _finish(value, ok)


def nrmse(obs, sim, mask=None, min_points: int = MIN_POINTS):
    """RMSE divided by the mean of ``obs`` over the last axis.

    NaN where the series is too short or the observed mean is zero.
    """
    obs0, sim0, use, n = _np_prepare(obs, sim, mask)
    with np.errstate(invalid="ignore", divide="ignore"):
        nn = np.maximum(n, 1)
        mean = obs0.sum(-1) / nn
        rmse = np.sqrt(((sim0 - obs0) ** 2).sum(-1) / nn)
        ok = (n >= min_points) & (mean != 0)
        value = rmse / np.where(ok, mean, 1.0)
    return _finish(value, ok)


# --------------------------------------------------------------------------------------------
# torch (differentiable, batched)
# --------------------------------------------------------------------------------------------


def _t_prepare(obs: torch.Tensor, sim: torch.Tensor, mask: torch.Tensor | None):
    obs, sim = torch.broadcast_tensors(obs.to(sim.dtype), sim)
    use = torch.isfinite(obs) & torch.isfinite(sim)
    if mask is not None:
        use = use & mask.to(torch.bool).broadcast_to(obs.shape)
    zero = torch.zeros((), dtype=sim.dtype, device=sim.device)
    # torch.where (not multiplication) so a NaN on a masked day cannot leak into a gradient.
    obs0 = torch.where(use, obs, zero)
    sim0 = torch.where(use, sim, zero)
    n = use.sum(-1).to(sim.dtype)
    return obs0, sim0, use, n


def nse_torch(
    obs: torch.Tensor, sim: torch.Tensor, mask: torch.Tensor | None = None,
    min_points: int = MIN_POINTS,
) -> torch.Tensor:
    """Nash-Sutcliffe efficiency over the last axis, differentiable in ``sim``.

    Same conventions as :func:`nse`; returns a tensor of shape ``broadcast(obs, sim).shape[:-1]``
    (NaN where the series is too short or ``obs`` has zero variance; the gradient there is 0).
    """
    obs0, sim0, use, n = _t_prepare(obs, sim, mask)
    zero = torch.zeros((), dtype=sim0.dtype, device=sim0.device)
    mean = obs0.sum(-1) / n.clamp_min(1.0)
    sse = ((sim0 - obs0) ** 2).sum(-1)
    sst = (torch.where(use, obs0 - mean.unsqueeze(-1), zero) ** 2).sum(-1)
    ok = (n >= min_points) & (sst > 0)
    value = 1.0 - sse / torch.where(ok, sst, torch.ones_like(sst))
    return torch.where(ok, value, torch.full_like(value, float("nan")))


def r2_torch(
    obs: torch.Tensor, sim: torch.Tensor, mask: torch.Tensor | None = None,
    min_points: int = MIN_POINTS,
) -> torch.Tensor:
    """Squared Pearson correlation over the last axis (torch version of :func:`r2`)."""
    obs0, sim0, use, n = _t_prepare(obs, sim, mask)
    zero = torch.zeros((), dtype=sim0.dtype, device=sim0.device)
    nn = n.clamp_min(1.0).unsqueeze(-1)
    do = torch.where(use, obs0 - obs0.sum(-1, keepdim=True) / nn, zero)
    ds = torch.where(use, sim0 - sim0.sum(-1, keepdim=True) / nn, zero)
    cov = (do * ds).sum(-1)
    vo = (do**2).sum(-1)
    vs = (ds**2).sum(-1)
    ok = (n >= min_points) & (vo > 0) & (vs > 0)
    value = cov**2 / torch.where(ok, vo * vs, torch.ones_like(vo))
    return torch.where(ok, value, torch.full_like(value, float("nan")))


def nrmse_torch(
    obs: torch.Tensor, sim: torch.Tensor, mask: torch.Tensor | None = None,
    min_points: int = MIN_POINTS,
) -> torch.Tensor:
    """RMSE / mean(obs) over the last axis (torch version of :func:`nrmse`)."""
    obs0, sim0, use, n = _t_prepare(obs, sim, mask)
    nn = n.clamp_min(1.0)
    mean = obs0.sum(-1) / nn
    # Add a tiny floor inside the sqrt only where the error is exactly zero, so the gradient
    # of sqrt at 0 stays finite.
    mse = ((sim0 - obs0) ** 2).sum(-1) / nn
    rmse = torch.sqrt(torch.where(mse > 0, mse, torch.full_like(mse, torch.finfo(mse.dtype).tiny)))
    ok = (n >= min_points) & (mean != 0)
    value = rmse / torch.where(ok, mean, torch.ones_like(mean))
    return torch.where(ok, value, torch.full_like(value, float("nan")))

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

For the assessment (paper section 2.3) the same three metrics are also available through
:class:`Moments`, the centred sufficient statistics of (obs, sim) pairs: they reduce a series
over its last axis or over contiguous segments of it (e.g. the days of each year), and pool
several series exactly (Chan et al. 1979 update formulas), so that the metric of a site, of a
site-year and of a pooled group of site-years all come from one pass over the data.
:func:`all_metrics` is the one-call version. Both give the same numbers as :func:`nse`,
:func:`r2` and :func:`nrmse` (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import torch

from lue_spie.constants import MIN_POINTS as _MIN_POINTS

__all__ = [
    "nse", "r2", "nrmse", "nse_torch", "r2_torch", "nrmse_torch", "MIN_POINTS",
    "METRICS", "HIGHER_IS_BETTER", "Moments", "all_metrics",
]

#: Fewest usable points for a metric (SPEC section 4: fewer than 4 good points -> left out).
MIN_POINTS = _MIN_POINTS

#: The paper's three GPP metrics, in the order tables use.
METRICS: tuple[str, ...] = ("NSE", "R2", "NRMSE")

#: Direction of each metric: True when a larger value is a better fit.
HIGHER_IS_BETTER: dict[str, bool] = {"NSE": True, "R2": True, "NRMSE": False}


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
# Sufficient statistics (assessment: sites, site-years, pooled groups)
# --------------------------------------------------------------------------------------------


def _segment_sum(a: np.ndarray, starts: np.ndarray | None) -> np.ndarray:
    if starts is None:
        return a.sum(axis=-1)
    return np.add.reduceat(a, starts, axis=-1)


def _expand(a: np.ndarray, starts: np.ndarray | None, length: int) -> np.ndarray:
    """Broadcast a per-segment value back onto the points of each segment."""
    if starts is None:
        return a[..., None]
    return np.repeat(a, np.diff(np.append(starts, length)), axis=-1)


@dataclass(frozen=True)
class Moments:
    """Centred sufficient statistics of (obs, sim) pairs; every field has the same shape.

    Attributes:
        n: Number of usable pairs (float, so that pooling stays in one dtype).
        mean_obs: Mean of obs over the usable pairs (0 where ``n`` is 0).
        mean_sim: Mean of sim over the usable pairs (0 where ``n`` is 0).
        ss_obs: ``sum((obs - mean_obs)^2)``.
        ss_sim: ``sum((sim - mean_sim)^2)``.
        sp: ``sum((obs - mean_obs) * (sim - mean_sim))``.
        sse: ``sum((sim - obs)^2)``.

    Centred sums (two passes over the data, and the pairwise update formulas of Chan, Golub
    and LeVeque 1979 for pooling) avoid the cancellation of raw power sums, so a near-perfect
    simulation still gets an accurate NSE.
    """

    n: np.ndarray
    mean_obs: np.ndarray
    mean_sim: np.ndarray
    ss_obs: np.ndarray
    ss_sim: np.ndarray
    sp: np.ndarray
    sse: np.ndarray

    @classmethod
    def from_series(cls, obs, sim, mask=None, *, starts=None) -> Moments:
        """Reduce paired series over their last axis, whole or in contiguous segments.

        Args:
            obs: Observed values, shape ``(..., points)``.
            sim: Simulated values, broadcastable to ``obs`` (e.g. ``(methods, sites, days)``
                against ``(sites, days)``).
            mask: Optional boolean array (True = use the point), broadcastable likewise.
                Points where ``obs`` or ``sim`` is not finite are never used.
            starts: Optional sorted start indices of contiguous segments of the last axis
                (as for ``np.add.reduceat``; the first must be 0): the result then has one
                entry per segment on the last axis instead of dropping it.

        Returns:
            Moments of shape ``broadcast.shape[:-1]`` (or ``(..., len(starts))``).
        """
        obs = np.asarray(obs, dtype=np.float64)
        sim = np.asarray(sim, dtype=np.float64)
        if mask is None:
            obs, sim = np.broadcast_arrays(obs, sim)
        else:
            obs, sim, mask = np.broadcast_arrays(obs, sim, np.asarray(mask, dtype=bool))
        length = obs.shape[-1]
        if starts is not None:
            starts = np.asarray(starts, dtype=np.intp)
            if starts.ndim != 1 or starts.size == 0 or starts[0] != 0 \
                    or np.any(np.diff(starts) <= 0) or starts[-1] >= length:
                raise ValueError("Moments.from_series: starts must be strictly increasing "
                                 f"indices beginning with 0 and below {length}")
        use = np.isfinite(obs) & np.isfinite(sim)
        if mask is not None:
            use &= mask
        n = _segment_sum(use, starts).astype(np.float64)
        nn = np.maximum(n, 1.0)
        o0 = np.where(use, obs, 0.0)
        s0 = np.where(use, sim, 0.0)
        mean_obs = _segment_sum(o0, starts) / nn
        mean_sim = _segment_sum(s0, starts) / nn
        do = np.where(use, o0 - _expand(mean_obs, starts, length), 0.0)
        ds = np.where(use, s0 - _expand(mean_sim, starts, length), 0.0)
        err = s0 - o0  # zero where unused
        return cls(
            n=n, mean_obs=mean_obs, mean_sim=mean_sim,
            ss_obs=_segment_sum(do * do, starts), ss_sim=_segment_sum(ds * ds, starts),
            sp=_segment_sum(do * ds, starts), sse=_segment_sum(err * err, starts),
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return self.n.shape

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> Moments:
        """Apply the same array operation (indexing, transposing) to every field."""
        return Moments(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def __getitem__(self, key) -> Moments:
        return self.map(lambda a: a[key])

    def pool(self, axis: int = -1) -> Moments:
        """Pool the series along ``axis`` as if their points had been concatenated."""
        n = self.n.sum(axis=axis)
        nn = np.maximum(n, 1.0)
        mean_obs = (self.n * self.mean_obs).sum(axis=axis) / nn
        mean_sim = (self.n * self.mean_sim).sum(axis=axis) / nn
        dmo = self.mean_obs - np.expand_dims(mean_obs, axis)
        dms = self.mean_sim - np.expand_dims(mean_sim, axis)
        return Moments(
            n=n, mean_obs=mean_obs, mean_sim=mean_sim,
            ss_obs=self.ss_obs.sum(axis=axis) + (self.n * dmo * dmo).sum(axis=axis),
            ss_sim=self.ss_sim.sum(axis=axis) + (self.n * dms * dms).sum(axis=axis),
            sp=self.sp.sum(axis=axis) + (self.n * dmo * dms).sum(axis=axis),
            sse=self.sse.sum(axis=axis),
        )

    def metrics(self, min_points: int = MIN_POINTS) -> dict[str, np.ndarray]:
        """NSE, R2 and NRMSE (keys of :data:`METRICS`), NaN where undefined.

        Same conventions as :func:`nse`, :func:`r2` and :func:`nrmse`: NaN with fewer than
        ``min_points`` pairs, with zero variance of obs (NSE, R2) or of sim (R2), or with a
        zero observed mean (NRMSE).
        """
        enough = self.n >= min_points
        with np.errstate(invalid="ignore", divide="ignore"):
            ok_nse = enough & (self.ss_obs > 0)
            ok_r2 = ok_nse & (self.ss_sim > 0)
            ok_nrmse = enough & (self.mean_obs != 0)
            value_nse = 1.0 - self.sse / np.where(ok_nse, self.ss_obs, 1.0)
            value_r2 = self.sp**2 / np.where(ok_r2, self.ss_obs * self.ss_sim, 1.0)
            value_nrmse = np.sqrt(self.sse / np.maximum(self.n, 1.0)) \
                / np.where(ok_nrmse, self.mean_obs, 1.0)
        return {
            "NSE": np.where(ok_nse, value_nse, np.nan),
            "R2": np.where(ok_r2, value_r2, np.nan),
            "NRMSE": np.where(ok_nrmse, value_nrmse, np.nan),
        }


def all_metrics(obs, sim, mask=None, min_points: int = MIN_POINTS) -> dict[str, np.ndarray]:
    """NSE, R2 and NRMSE over the last axis in one pass (see :class:`Moments`).

    Args:
        obs: Observed values, shape ``(..., points)``.
        sim: Simulated values, broadcastable to ``obs``.
        mask: Optional boolean array (True = use the point).
        min_points: Fewest usable points; fewer gives NaN.

    Returns:
        ``{"NSE": ..., "R2": ..., "NRMSE": ...}``, arrays of shape ``broadcast.shape[:-1]``.
    """
    return Moments.from_series(obs, sim, mask).metrics(min_points)


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

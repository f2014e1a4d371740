"""The mapping of a network's 13 raw outputs into the parameters' bounds (SPIE's last layer).

The network ends in 13 unbounded numbers ``u`` (its *pre-mapping outputs*, what SHAP and LRP
explain); this module turns them into physical parameters inside the paper's bounds
(:data:`lue_spie.params.BOUNDS`). It is kept outside the network on purpose: the network is
built from leaf modules only, and the mapping is a fixed, parameter-free function.

Two mappings per parameter:

``sigmoid`` (the paper's)
    ``theta = lo + (hi - lo) * sigmoid(u)``: uniform in the parameter itself.
``log``
    ``log|theta| = log|lo| + (log|hi| - log|lo|) * sigmoid(u)`` (both bounds of one sign,
    neither 0): uniform in the logarithm, i.e. every decade of the range gets the same share
    of the network's output range. Meant for parameters whose bounds span orders of magnitude
    while their realistic values sit near one end: kappa in [-0.1, -1e-4] Pa-1, whose
    realistic values (-1e-4 ... -2e-3 Pa-1) lie within 2 % of the upper bound. With the
    sigmoid these values need ``u`` > 4 (where the sigmoid's slope is below 0.02, so the
    gradient that reaches the network is damped fifty-fold) and the network's starting
    point (``u`` near 0, kappa near -0.05 Pa-1) switches photosynthesis off on any day with a
    VPD above a few hundred Pa; with the log mapping the middle of the output range is
    kappa = -3.2e-3 Pa-1 and the realistic values sit at ``u`` between -3 and 0.

Both are monotone increasing in ``u`` and map the real line onto the open range (in floating
point a saturated sigmoid can return a bound exactly, which is still inside the bounds).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lue_spie.params import LOWER, N_PARAMS, PARAMETERS, UPPER

__all__ = ["BoundsMapping", "MAPPINGS", "DEFAULT_LOG_PARAMS", "make_mapping"]

#: The parameters mapped log-uniformly by the ``"log"`` mapping (see the module docstring and
#: the methods-decisions page for the measurement behind the choice).
DEFAULT_LOG_PARAMS: tuple[str, ...] = ("kappa",)
#: Names accepted by :func:`make_mapping`.
MAPPINGS: tuple[str, ...] = ("sigmoid", "log")


@dataclasses.dataclass(frozen=True)
class BoundsMapping:
    """Raw network outputs ``(..., 13)`` -> physical parameters inside the bounds.

    Attributes:
        log_params: Parameters mapped log-uniformly (the others: sigmoid, linear in the
            parameter). Each must have two bounds of one sign, neither 0.
    """

    log_params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = tuple(str(p) for p in self.log_params)
        object.__setattr__(self, "log_params", names)
        for name in names:
            if name not in PARAMETERS:
                raise ValueError(f"BoundsMapping: unknown parameter {name!r} in log_params; "
                                 f"expected some of {PARAMETERS}")
            j = PARAMETERS.index(name)
            lo, hi = LOWER[j], UPPER[j]
            if lo == 0 or hi == 0 or (lo < 0) != (hi < 0):
                raise ValueError(f"BoundsMapping: {name} has bounds [{lo:g}, {hi:g}]; a log "
                                 "mapping needs two bounds of one sign, neither 0")
        is_log = np.array([p in names for p in PARAMETERS])
        lo = np.where(is_log, np.log(np.abs(np.where(is_log, LOWER, 1.0))), LOWER)
        hi = np.where(is_log, np.log(np.abs(np.where(is_log, UPPER, 1.0))), UPPER)
        sign = np.where(is_log, np.sign(np.where(is_log, LOWER, 1.0)), 1.0)
        object.__setattr__(self, "_is_log", is_log)
        object.__setattr__(self, "_lo", lo)
        object.__setattr__(self, "_width", hi - lo)
        object.__setattr__(self, "_sign", sign)

    # -- names ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """``"sigmoid"`` or ``"log(kappa, ...)"``."""
        return "sigmoid" if not self.log_params else f"log({', '.join(self.log_params)})"

    def kind(self, parameter: str) -> str:
        """``"log"`` or ``"sigmoid"``: how ``parameter`` is mapped."""
        return "log" if parameter in self.log_params else "sigmoid"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (:meth:`from_dict` reads it back)."""
        return {"name": self.name, "log_params": list(self.log_params),
                "per_parameter": {p: self.kind(p) for p in PARAMETERS}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BoundsMapping:
        """The mapping described by :meth:`to_dict`."""
        return cls(log_params=tuple(d.get("log_params", ())))

    # -- the mapping ---------------------------------------------------------------------------
    def _consts(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        kw = {"dtype": like.dtype, "device": like.device}
        return (torch.as_tensor(self._lo, **kw), torch.as_tensor(self._width, **kw),
                torch.as_tensor(self._sign, **kw), torch.as_tensor(self._is_log,
                                                                   device=like.device))

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """Physical parameters from raw outputs ``u`` (..., 13); differentiable."""
        if u.shape[-1:] != (N_PARAMS,):
            raise ValueError(f"BoundsMapping: expected {N_PARAMS} outputs on the last axis, "
                             f"got shape {tuple(u.shape)}")
        lo, width, sign, is_log = self._consts(u)
        y = lo + width * torch.sigmoid(u)
        if not self.log_params:
            return y
        # exp only of the log columns' values: exp of another column (Cm up to 4000) would
        # overflow, and torch.where passes 0 * inf = NaN back to the gradient of that branch.
        return torch.where(is_log, sign * torch.exp(torch.where(is_log, y, 0.0)), y)

    def inverse(self, params: torch.Tensor | np.ndarray, eps: float = 1e-7) -> torch.Tensor:
        """Raw outputs that map to ``params`` (strictly inside the bounds; clipped by ``eps``)."""
        p = torch.as_tensor(np.asarray(params) if not isinstance(params, torch.Tensor)
                            else params)
        if not p.is_floating_point():
            p = p.to(torch.float64)
        lo, width, sign, is_log = self._consts(p)
        y = torch.where(is_log, torch.log(torch.clamp(sign * p, min=1e-300)), p)
        s = ((y - lo) / width).clamp(eps, 1.0 - eps)
        return torch.log(s) - torch.log1p(-s)


def make_mapping(mapping: str, log_params: Sequence[str] = DEFAULT_LOG_PARAMS) -> BoundsMapping:
    """The mapping called ``mapping``: ``"sigmoid"`` (every parameter, the paper's) or ``"log"``
    (``log_params`` log-uniform, the others sigmoid).

    Raises:
        ValueError: for another name, naming the valid ones.
    """
    if mapping == "sigmoid":
        return BoundsMapping(())
    if mapping == "log":
        return BoundsMapping(tuple(log_params))
    raise ValueError(f"SPIE mapping must be one of {MAPPINGS}, got {mapping!r}")


"""Prepared forcing: what does not depend on the parameters, computed once per set of sites.

:func:`prepare_forcing` validates the forcing and computes APAR, log CI (clipped) and
``log(CA_REF / ca)``. With the split ``log(Ca0/ca) = log(Ca0/CA_REF) + log(CA_REF/ca)`` the
CO2 ratio costs one number per parameter vector plus a precomputed series, and both terms are
small, so float32 keeps its precision. :func:`lue_spie.model.simulate` accepts a
:class:`PreparedForcing` or a plain mapping (prepared on the fly).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import torch

from lue_spie.model.equations import CI_MIN, CO2_DENOMINATOR_MIN, FORCING_KEYS, _log_ca

__all__ = ["PreparedForcing", "prepare_forcing"]


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
        # Fast path: any NaN or inf makes the sum non-finite (a sum is much cheaper than
        # isfinite().all()); only then count, which also clears a sum that merely overflowed.
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


def _co2_guard_binds(pf: PreparedForcing, p: dict[str, torch.Tensor]) -> bool:
    """Whether ``ca - Ca0 + Cm < CO2_DENOMINATOR_MIN`` can happen (from each series' min)."""
    return bool(((pf.co2_min - p["Ca0"] + p["Cm"]) < CO2_DENOMINATOR_MIN).any())

"""The 13 parameters of the LUE model: the single source of truth.

Names, order, bounds, units and meaning follow the paper's Table 1 (Bao et al., 2023,
doi:10.1029/2022MS003464) as restated in the project specification (``SPIE.md`` section 1),
with one deliberate reading: ``kappa`` is in Pa-1 with VPD in Pa (the paper's table prints
kPa-1; see the book's model chapter for why).

Three spaces are used across the project:

* **physical**: values in the units of the table below (what :func:`lue_spie.model.simulate`
  takes);
* **scaled**: each parameter mapped linearly onto ``[0, 1]`` between its bounds (the space in
  which CMA-ES searches);
* **unconstrained**: the logit of the scaled value (a network's raw output; ``sigmoid`` maps
  it back inside the bounds).

Every function here works on NumPy arrays and torch tensors alike and keeps the type it is
given; the parameter axis is the last one.

The lag rule (paper section 2.1): lags act at boreal and arid sites, so ``alpha_T`` is free
only where the Koeppen main group is D or E, and ``alpha_W`` only where it is B. Elsewhere
each is fixed at 0 (:func:`lag_mask`, :func:`apply_lag_mask`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "Parameter",
    "PARAMETER_TABLE",
    "PARAMETERS",
    "N_PARAMS",
    "BOUNDS",
    "LOWER",
    "UPPER",
    "UNITS",
    "LAG_PARAMETERS",
    "ILLUSTRATIVE",
    "index",
    "to_scaled",
    "to_log_scaled",
    "from_log_scaled",
    "from_scaled",
    "to_unconstrained",
    "from_unconstrained",
    "check_params",
    "koeppen_main_group",
    "lag_mask",
    "apply_lag_mask",
]

PAPER = "Bao et al. (2023), JAMES, doi:10.1029/2022MS003464, Table 1"


@dataclass(frozen=True)
class Parameter:
    """One LUE model parameter.

    Attributes:
        name: Name as used in code and in the paper (``eps_max``, ``Topt`` ...).
        lower: Lower bound, physical units.
        upper: Upper bound, physical units.
        unit: Physical unit (``-`` for dimensionless).
        symbol: LaTeX symbol for plots and the book.
        function: Which sensitivity function the parameter belongs to.
        meaning: Plain-language meaning.
        reference: Where the range comes from.
    """

    name: str
    lower: float
    upper: float
    unit: str
    symbol: str
    function: str
    meaning: str
    reference: str = PAPER

    @property
    def width(self) -> float:
        """Width of the allowed range, ``upper - lower``."""
        return self.upper - self.lower


PARAMETER_TABLE: tuple[Parameter, ...] = (
    Parameter("eps_max", 0.0, 10.0, "gC MJ-1", r"\varepsilon_{max}", "GPP",
              "maximum light use efficiency"),
    Parameter("Topt", 5.0, 35.0, "degC", r"T_{opt}", "fT", "optimal temperature"),
    Parameter("kT", 1.0, 20.0, "-", r"k_T", "fT", "sensitivity to temperature changes"),
    Parameter("kappa", -0.1, -0.0001, "Pa-1", r"\kappa", "fVPD",
              "sensitivity to VPD changes (Pa-1 with VPD in Pa; the paper's table prints kPa-1)"),
    Parameter("Ca0", 340.0, 390.0, "ppm", r"C_{a0}", "fVPD", "minimum optimal CO2"),
    Parameter("Ckappa", 0.0, 10.0, "-", r"C_\kappa", "fVPD", "sensitivity to CO2 changes"),
    Parameter("Cm", 100.0, 4000.0, "ppm", r"C_m", "fVPD", "CO2 fertilisation intensity"),
    Parameter("kW", -30.0, -5.0, "-", r"k_W", "fW", "sensitivity to soil moisture changes"),
    Parameter("WI", 0.01, 0.99, "-", r"W_I", "fW", "optimal soil moisture"),
    Parameter("gamma", 0.0, 1.0, "MJ-1 m2 d", r"\gamma", "fL", "light saturation curvature"),
    Parameter("mu", 0.001, 1.0, "-", r"\mu", "fCI", "sensitivity to cloudiness"),
    Parameter("alpha_T", 0.0, 0.9, "-", r"\alpha_T", "fT", "lag of the temperature effect"),
    Parameter("alpha_W", 0.0, 0.9, "-", r"\alpha_W", "fW", "lag of the soil moisture effect"),
)

#: The 13 parameter names in the order used everywhere (model input, tables, files).
PARAMETERS: tuple[str, ...] = tuple(p.name for p in PARAMETER_TABLE)
N_PARAMS: int = len(PARAMETERS)
#: Bounds, shape (13, 2): lower and upper, physical units.
BOUNDS: np.ndarray = np.array([[p.lower, p.upper] for p in PARAMETER_TABLE], dtype=np.float64)
BOUNDS.setflags(write=False)
LOWER: np.ndarray = BOUNDS[:, 0]
UPPER: np.ndarray = BOUNDS[:, 1]
UNITS: dict[str, str] = {p.name: p.unit for p in PARAMETER_TABLE}
LAG_PARAMETERS: tuple[str, str] = ("alpha_T", "alpha_W")

#: An illustrative parameter vector for a temperate forest, for plots and examples only
#: (chosen by hand inside the bounds; not a result of the paper).
ILLUSTRATIVE: dict[str, float] = {
    "eps_max": 2.5, "Topt": 20.0, "kT": 6.0, "kappa": -0.0004, "Ca0": 360.0, "Ckappa": 1.0,
    "Cm": 1500.0, "kW": -12.0, "WI": 0.25, "gamma": 0.02, "mu": 0.4, "alpha_T": 0.0,
    "alpha_W": 0.0,
}

# Relative slack (of each range's width) allowed by check_params for round-off.
_BOUND_SLACK = 1e-5

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def index(name: str) -> int:
    """Position of parameter ``name`` in :data:`PARAMETERS`.

    Raises:
        KeyError: naming the unknown parameter and the valid names.
    """
    try:
        return PARAMETERS.index(name)
    except ValueError:
        raise KeyError(f"unknown parameter {name!r}; expected one of {PARAMETERS}") from None


def _bounds_like(x: Array) -> tuple[Array, Array]:
    if isinstance(x, torch.Tensor):
        lo = torch.tensor(LOWER, dtype=x.dtype, device=x.device)
        hi = torch.tensor(UPPER, dtype=x.dtype, device=x.device)
        return lo, hi
    return LOWER, UPPER


def _check_last_axis(x: np.ndarray | torch.Tensor, what: str) -> None:
    if x.shape[-1:] != (N_PARAMS,):
        raise ValueError(
            f"{what}: expected the last axis to hold the {N_PARAMS} parameters {PARAMETERS}, "
            f"got shape {tuple(x.shape)}"
        )


def to_scaled(params: Array) -> Array:
    """Physical values to the ``[0, 1]``-scaled space (linear between the bounds)."""
    _check_last_axis(params, "to_scaled")
    lo, hi = _bounds_like(params)
    return (params - lo) / (hi - lo)


def from_scaled(scaled: Array) -> Array:
    """``[0, 1]``-scaled values to physical values (inverse of :func:`to_scaled`)."""
    _check_last_axis(scaled, "from_scaled")
    lo, hi = _bounds_like(scaled)
    return lo + scaled * (hi - lo)


def _log_columns(log_params: Sequence[str], what: str) -> np.ndarray:
    is_log = np.zeros(N_PARAMS, bool)
    for name in log_params:
        if name not in PARAMETERS:
            raise ValueError(f"{what}: unknown parameter {name!r} in log_params; expected some "
                             f"of {PARAMETERS}")
        j = PARAMETERS.index(name)
        if LOWER[j] == 0 or UPPER[j] == 0 or (LOWER[j] < 0) != (UPPER[j] < 0):
            raise ValueError(f"{what}: {name} has bounds [{LOWER[j]:g}, {UPPER[j]:g}]; a log "
                             "scale needs two bounds of one sign, neither 0")
        is_log[j] = True
    return is_log


def to_log_scaled(params: np.ndarray, log_params: Sequence[str]) -> np.ndarray:
    """Physical values to ``[0, 1]`` between the bounds, log-uniform for ``log_params``.

    :func:`to_scaled` for every other parameter. For a parameter whose bounds span orders of
    magnitude while its realistic values sit near one end (kappa: bounds -0.1 ... -1e-4 Pa-1,
    realistic values within 2 % of the upper one), the linear scale squeezes every realistic
    value into a sliver next to the bound, where a regression's small errors are large
    physical ones; on the log scale each decade gets the same share.
    """
    _check_last_axis(params, "to_log_scaled")
    is_log = _log_columns(log_params, "to_log_scaled")
    out = np.array(to_scaled(np.asarray(params, np.float64)), dtype=np.float64)
    if is_log.any():
        lo, hi = np.log(np.abs(LOWER[is_log])), np.log(np.abs(UPPER[is_log]))
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(np.abs(np.asarray(params, np.float64)[..., is_log]))
        out[..., is_log] = (logs - lo) / (hi - lo)
    return out


def from_log_scaled(scaled: np.ndarray, log_params: Sequence[str]) -> np.ndarray:
    """The inverse of :func:`to_log_scaled`."""
    _check_last_axis(scaled, "from_log_scaled")
    is_log = _log_columns(log_params, "from_log_scaled")
    scaled = np.asarray(scaled, np.float64)
    out = np.array(from_scaled(scaled), dtype=np.float64)
    if is_log.any():
        lo, hi = np.log(np.abs(LOWER[is_log])), np.log(np.abs(UPPER[is_log]))
        out[..., is_log] = np.sign(LOWER[is_log]) * np.exp(lo + scaled[..., is_log] * (hi - lo))
    return out


def to_unconstrained(params: Array, eps: float = 1e-7) -> Array:
    """Physical values to the unconstrained (logit of scaled) space.

    Values on a bound map to a large finite number: the scaled value is clipped to
    ``[eps, 1 - eps]`` first, so a parameter fixed at 0 by the lag mask stays finite.
    """
    s = to_scaled(params)
    if isinstance(s, torch.Tensor):
        s = s.clamp(eps, 1.0 - eps)
        return torch.log(s) - torch.log1p(-s)
    s = np.clip(s, eps, 1.0 - eps)
    return np.log(s) - np.log1p(-s)


def from_unconstrained(u: Array) -> Array:
    """Unconstrained values to physical values, always strictly inside the bounds."""
    if isinstance(u, torch.Tensor):
        return from_scaled(torch.sigmoid(u))
    return from_scaled(0.5 * (1.0 + np.tanh(0.5 * np.asarray(u, dtype=np.float64))))


def check_params(params: np.ndarray | torch.Tensor, what: str = "params") -> None:
    """Raise a clear error for a parameter array of the wrong shape, NaN or out of bounds.

    A slack of ``1e-5`` of each range's width is allowed for round-off.

    Raises:
        ValueError: naming the parameter, the offending value and the allowed range.
    """
    _check_last_axis(params, what)
    p = params.detach().cpu().double().numpy() if isinstance(params, torch.Tensor) else (
        np.asarray(params, dtype=np.float64))
    flat = p.reshape(-1, N_PARAMS)
    bad_nan = ~np.isfinite(flat)
    if bad_nan.any():
        row, col = np.argwhere(bad_nan)[0]
        raise ValueError(
            f"{what}: parameter {PARAMETERS[col]!r} is {flat[row, col]} (row {row}); "
            f"{int(bad_nan.sum())} non-finite value(s) in all"
        )
    slack = _BOUND_SLACK * (UPPER - LOWER)
    low = flat < LOWER - slack
    high = flat > UPPER + slack
    if low.any() or high.any():
        row, col = np.argwhere(low | high)[0]
        raise ValueError(
            f"{what}: parameter {PARAMETERS[col]!r} = {flat[row, col]:g} (row {row}) is outside "
            f"its bounds [{LOWER[col]:g}, {UPPER[col]:g}] {UNITS[PARAMETERS[col]]}; "
            f"{int((low | high).sum())} value(s) out of bounds in all"
        )


_MAIN_GROUPS = frozenset("ABCDE")


def koeppen_main_group(koeppen: str | Iterable[str]) -> str | list[str]:
    """Main group (first letter, A-E) of a Koeppen-Geiger code such as ``"Dfb"`` or ``"ET"``.

    A code that is already a main group (``"D"``) is returned as is.

    Raises:
        ValueError: for a code whose first letter is not one of A, B, C, D, E.
    """
    if isinstance(koeppen, str):
        code = koeppen.strip()
        if not code or code[0].upper() not in _MAIN_GROUPS:
            raise ValueError(
                f"Koeppen code {koeppen!r}: expected a Koeppen-Geiger type starting with one "
                "of A, B, C, D, E (e.g. 'Cfb', 'BSk', 'ET')"
            )
        return code[0].upper()
    return [koeppen_main_group(k) for k in koeppen]


def lag_mask(koeppen: str | Sequence[str]) -> np.ndarray:
    """Which parameters are free at each site.

    Args:
        koeppen: Koeppen-Geiger code(s) or main group(s) of the site(s).

    Returns:
        Boolean array of shape (13,) for one code or (sites, 13): True where the parameter
        is free. All parameters are free except ``alpha_T`` outside main groups D and E and
        ``alpha_W`` outside main group B.
    """
    single = isinstance(koeppen, str)
    groups = [koeppen_main_group(koeppen)] if single else koeppen_main_group(list(koeppen))
    mask = np.ones((len(groups), N_PARAMS), dtype=bool)
    iT, iW = index("alpha_T"), index("alpha_W")
    for i, g in enumerate(groups):
        mask[i, iT] = g in ("D", "E")
        mask[i, iW] = g == "B"
    return mask[0] if single else mask


def apply_lag_mask(params: Array, mask: np.ndarray | torch.Tensor) -> Array:
    """Set the masked (not free) parameters to 0, their fixed value.

    Only the lag parameters can be masked, and 0 is their lower bound, so the result stays
    inside the bounds. Multiplying by the mask keeps gradients of the free entries intact.
    """
    _check_last_axis(params, "apply_lag_mask")
    if isinstance(params, torch.Tensor):
        m = torch.as_tensor(mask, device=params.device).to(params.dtype)
        return params * m
    return np.where(np.asarray(mask, dtype=bool), params, 0.0)

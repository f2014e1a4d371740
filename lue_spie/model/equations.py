"""The equations of the LUE model (:mod:`lue_spie.model`): its variables, its constants and
the five sensitivity functions, as batched, differentiable torch functions.

The private helpers are shared by every implementation of the model (the composable chain in
:mod:`lue_spie.model.lue`, the fused node in :mod:`lue_spie.model.fused`, the no-gradient
evaluation in :mod:`lue_spie.model.evaluation`): the two factors of fVPD, the logarithms of the
CO2 ratio that keep their precision in float32, and the parameters as broadcastable columns.
"""

from __future__ import annotations

import torch

from lue_spie.params import PARAMETERS

__all__ = [
    "FORCING_KEYS",
    "OUTPUT_KEYS",
    "CI_MIN",
    "CO2_DENOMINATOR_MIN",
    "CA_REF",
    "f_T",
    "f_VPD",
    "f_W",
    "f_L",
    "f_CI",
]

#: Forcing variables and their units: T [degC], VPD [Pa], CO2 [ppm], W relative soil
#: moisture [0-1], PAR [MJ m-2 d-1], FAPAR [0-1], CI cloudiness index [0-1].
FORCING_KEYS: tuple[str, ...] = ("T", "VPD", "CO2", "W", "PAR", "FAPAR", "CI")
#: Keys of the dict returned by :func:`~lue_spie.model.simulate`.
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

#: Index of each parameter on the last axis of a parameter tensor.
_I = {name: i for i, name in enumerate(PARAMETERS)}


def _columns(params: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each parameter as a ``(*batch, 1)`` column (broadcasts against ``(*batch, days)``)."""
    return {name: params[..., i : i + 1] for i, name in enumerate(PARAMETERS)}


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

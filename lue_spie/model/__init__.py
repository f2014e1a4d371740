"""The LUE model of GPP (paper section 2.1): the differentiable PyTorch model and its reference.

Public API (see :mod:`lue_spie.model.lue`): :func:`simulate`, :func:`prepare_forcing` /
:class:`PreparedForcing`, the sensitivity functions ``f_*``, :func:`lag_filter`, the no-gradient
hot path :func:`scratch_gpp`, and :func:`resolve_device`. :mod:`lue_spie.model.reference` is the
slow float64 step-by-step version every fast path is tested against.
"""

from lue_spie.model.lue import (
    BLOCK_BYTES,
    CA_REF,
    CI_MIN,
    CO2_DENOMINATOR_MIN,
    FORCING_KEYS,
    OUTPUT_KEYS,
    PreparedForcing,
    _scan,
    block_rows,
    clear_scratch,
    f_CI,
    f_L,
    f_T,
    f_VPD,
    f_W,
    lag_filter,
    prepare_forcing,
    resolve_device,
    scratch_gpp,
    scratch_lagged,
    simulate,
)

__all__ = [
    "FORCING_KEYS", "OUTPUT_KEYS", "CI_MIN", "CO2_DENOMINATOR_MIN", "CA_REF", "PreparedForcing",
    "prepare_forcing", "simulate", "lag_filter", "f_T", "f_VPD", "f_W", "f_L", "f_CI",
    "resolve_device", "scratch_gpp", "scratch_lagged", "block_rows", "BLOCK_BYTES",
    "clear_scratch", "_scan",
]

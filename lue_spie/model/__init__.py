"""The light-use-efficiency (LUE) model of GPP in PyTorch (paper section 2.1, SPEC section 1)::

    GPP = PAR * FAPAR * eps_max * fT * fVPD * fW * fL * fCI          [gC m-2 d-1]

with the lagged drivers::

    Tf(t) = (1 - alpha_T) T(t) + alpha_T Tf(t-1),   Tf(0) = T(0)
    Wf(t) = (1 - alpha_W) W(t) + alpha_W Wf(t-1),   Wf(0) = W(0)

and the five sensitivity functions::

    fT   = 2 exp(-(Tf - Topt)/kT) / (1 + exp(-(Tf - Topt)/kT)^2)
    fVPD = exp(kappa (Ca0/ca)^Ckappa VPD) * (1 + (ca - Ca0)/(ca - Ca0 + Cm))
    fW   = 1 / (1 + exp(kW (Wf - WI)))
    fL   = 1 / (1 + gamma APAR),       APAR = PAR * FAPAR
    fCI  = CI^mu,                      CI clipped to [0.001, 1]

Everything is batched: forcing of shape ``(*batch, days)``, parameters ``(*batch, 13)``
(batch shapes broadcast), float32 or float64, CPU or CUDA, differentiable with respect to
the parameters (and the forcing).

Public API: :func:`simulate` (all outputs, differentiable), :func:`prepare_forcing` /
:class:`PreparedForcing` (once per set of sites), the fused kernel's entry points
(:func:`kernel_applies`, :func:`kernel_simulate`, :func:`pack_cost`,
:func:`kernel_population_sums`), :func:`scratch_gpp` and :func:`scratch_lagged` (the torch
no-gradient path), :func:`lag_filter`, the sensitivity functions
``f_*`` and the constants, :func:`block_rows`, :data:`BLOCK_BYTES`, :func:`clear_scratch` and
:func:`resolve_device`.

Modules, each one job (how each part is made fast is explained in its module; benchmark in
``benchmarks/bench_model.py``, numbers in ``benchmarks/RESULTS.md``):

* :mod:`~lue_spie.model.equations`: the variables, constants and sensitivity functions.
* :mod:`~lue_spie.model.scratch`: working memory: the scratch cache and blocks of rows.
* :mod:`~lue_spie.model.lag`: the blocked lag filter and its adjoint.
* :mod:`~lue_spie.model.forcing`: the prepared forcing (parameter-independent parts, once).
* :mod:`~lue_spie.model.fused`: the fused autograd node with its hand-written backward pass.
* :mod:`~lue_spie.model.kernel`: the fused evaluation kernel (Numba): the model and the
  calibration cost in one pass over the days per (site, candidate), no gradient.
* :mod:`~lue_spie.model.evaluation`: evaluation without gradients: the kernel's torch-facing
  entry points, and the same evaluation in torch operations (CUDA, and the tests' reference).
* :mod:`~lue_spie.model.lue`: :func:`simulate`, the composable path, :func:`resolve_device`.
* :mod:`~lue_spie.model.reference`: the slow float64 step-by-step version every fast path is
  tested against.
"""

from lue_spie.model.equations import (
    CA_REF,
    CI_MIN,
    CO2_DENOMINATOR_MIN,
    FORCING_KEYS,
    OUTPUT_KEYS,
    f_CI,
    f_L,
    f_T,
    f_VPD,
    f_W,
)
from lue_spie.model.evaluation import (
    kernel_applies,
    kernel_population_sums,
    kernel_simulate,
    pack_cost,
    scratch_gpp,
    scratch_lagged,
)
from lue_spie.model.forcing import PreparedForcing, prepare_forcing
from lue_spie.model.lag import lag_filter
from lue_spie.model.lue import resolve_device, simulate
from lue_spie.model.scratch import BLOCK_BYTES, block_rows, clear_scratch

__all__ = [
    "FORCING_KEYS", "OUTPUT_KEYS", "CI_MIN", "CO2_DENOMINATOR_MIN", "CA_REF", "PreparedForcing",
    "prepare_forcing", "simulate", "lag_filter", "f_T", "f_VPD", "f_W", "f_L", "f_CI",
    "resolve_device", "scratch_gpp", "scratch_lagged", "block_rows", "BLOCK_BYTES",
    "clear_scratch", "kernel_applies", "kernel_simulate", "pack_cost", "kernel_population_sums",
]

"""The fused evaluation kernel: the model and the calibration cost in one pass over the days.

Every search that evaluates populations without gradients (site calibration, OPT-All,
OPT-PFT, the structural-error twin, the maps) spends nearly all its time here. The torch path
(:mod:`lue_spie.model.evaluation`) makes some 30 elementwise passes, each writing a (sites x
candidates x days) array and reading it back: its cost is memory traffic, not arithmetic.
This kernel (Numba, compiled once and cached on disk) walks the days once per (site,
candidate) with everything in registers:

* the lag filters run as the first-order recurrence of the reference, four candidates of a
  row at a time (their chains overlap) and only for rows whose lag is not 0; the filtered
  drivers are kept in a per-row buffer;
* the five sensitivity functions and GPP of a day are computed by :func:`_day`, a loop body
  LLVM vectorises over the days (AVX2 / AVX-512) because its exponential, :func:`vexp`, is
  written as plain arithmetic (range reduction, a polynomial, the exponent set through its
  bits) instead of a libm call, which would keep the loop scalar;
* the cost terms are accumulated on the fly: ``sum(obs sim)`` and ``sum(sim^2)`` over the
  NSE's days in float64 whatever the model's dtype (so that close candidates keep distinct
  costs, as in the torch path), the non-ideal excesses of fT and fW in the model's dtype;
  the VPD excess is evaluated in a second, short loop over the VPD-stressed days only
  (prepared once per site), so the main loop needs no separate fV exponential;
* rows of a population run in parallel on Numba's threads
  (:func:`lue_spie.execution.apply_threads` sets their count from the cores the process may
  use); a row's sums are formed by one thread in a fixed order, so the results do not
  depend on the count.

Arithmetic: IEEE float32 or float64 as the input, with two liberties: fused multiply-adds
(``contract``), and in the population kernel's day loop reassociation (``reassoc``), which
lets LLVM split the sums over days into vector lanes (and reorder a product of factors);
:func:`vexp` is compiled apart, without it, so its range reduction stays exact. :func:`vexp`
is within 1 ulp of the correctly rounded exponential (tested against NumPy over the whole
range, subnormal results, 0, inf and NaN included). The kernel therefore equals the float64
oracle to 1e-10 (relative) and the torch path to rounding: 1e-12 in float64, a few float32
ulps in float32 (``tests/unit/test_kernel.py``). The lane split depends on the vector width
LLVM picks for the CPU, so float64 sums may differ in their last bit between machines, never
between runs or thread counts on one machine.

:func:`population_sums` is the entry point of :func:`lue_spie.cost.population_cost`;
:func:`simulate_rows` writes the simulated series (the no-gradient path of
:func:`lue_spie.model.simulate`). Both take NumPy arrays; :class:`KernelData` packs a
prepared forcing (and the cost's per-site data) once.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from lue_spie.model.equations import CO2_DENOMINATOR_MIN

__all__ = ["vexp", "KernelData", "pack_forcing", "population_sums", "simulate_rows",
           "SERIES", "FIELDS"]

#: Fields of the packed per-site forcing, in order (``KernelData.forcing[:, i, :]``).
FIELDS = ("T", "W", "VPD", "CO2", "APAR", "log_CI", "log_ca", "obs", "use", "stress_T",
          "stress_W")
_T, _W, _VPD, _CA, _APAR, _LCI, _LCA, _OBS, _USE, _MT, _MW = range(len(FIELDS))
#: Series :func:`simulate_rows` can write, in the order of its ``out`` array.
SERIES = ("GPP", "fT", "fVPD", "fVPD_VPD", "fVPD_CO2", "fW", "fL", "fCI", "Tf", "Wf", "APAR")

# Fast-math flags: fused multiply-adds everywhere; reassociation in the population kernel
# (its day loop's sums vectorise only with it), never in vexp, which is compiled apart
# without it (LLVM keeps each instruction's flags when it inlines a function).
_SUM_FLAGS = {"contract", "reassoc"}
_DAY_FLAGS = {"contract"}


# ------------------------------------------------------------------------------ exponential
@intrinsic
def _f32_from_bits(typingctx, bits):  # noqa: ARG001
    """The float32 whose bit pattern is the int32 ``bits`` (an LLVM bitcast, vectorisable)."""
    def codegen(context, builder, signature, args):  # noqa: ARG001
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def _f64_from_bits(typingctx, bits):  # noqa: ARG001
    """The float64 whose bit pattern is the int64 ``bits``."""
    def codegen(context, builder, signature, args):  # noqa: ARG001
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


def vexp(x: float) -> float:
    """``exp(x)`` in the precision of ``x``, as plain arithmetic that LLVM can vectorise.

    In Python this is :func:`math.exp`; compiled, :func:`_vexp_impl` picks the float32 or
    float64 version. Both reduce ``x = n ln2 + r`` (Cody-Waite, ``|r| <= ln2 / 2``),
    evaluate ``e^r`` by a polynomial (Cephes' expf minimax polynomial in float32; the Taylor
    series to degree 13 in float64, truncation below 1e-17) and multiply by ``2^n`` built
    from its exponent bits, as two halves ``2^(n - n//2) 2^(n//2)``, so that subnormal
    results, underflow to 0 and overflow to inf come out as from the libm function (the
    input is clamped just beyond those ranges to keep the halves' exponents valid). NaN
    stays NaN.
    """
    return math.exp(x)


# (The two implementations carry no annotations: Numba requires an overload's implementation
# to have exactly the signature of its typing function.)
def _exp32(x):
    x = min(max(x, np.float32(-104.0)), np.float32(89.0))
    n = np.floor(x * np.float32(1.4426950408889634) + np.float32(0.5))
    r = x - n * np.float32(0.693359375)
    r = r - n * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * (r * r) + r + np.float32(1.0)
    k = np.int32(n)
    h = k >> np.int32(1)
    return (p * _f32_from_bits((k - h + np.int32(127)) << np.int32(23))
            * _f32_from_bits((h + np.int32(127)) << np.int32(23)))


def _exp64(x):
    x = min(max(x, -746.0), 710.0)
    n = np.floor(x * 1.4426950408889634 + 0.5)
    r = x - n * 6.93145751953125e-1
    r = r - n * 1.42860682030941723212e-6
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * (r * r) + r + 1.0
    k = np.int64(n)
    h = k >> np.int64(1)
    return (p * _f64_from_bits((k - h + np.int64(1023)) << np.int64(52))
            * _f64_from_bits((h + np.int64(1023)) << np.int64(52)))


@overload(vexp, jit_options={"fastmath": _DAY_FLAGS, "error_model": "numpy"})
def _vexp_impl(x):
    if x == types.float32:
        return _exp32
    if x == types.float64:
        return _exp64
    return None


# ---------------------------------------------------------------------------- one day's model
@njit(fastmath=_DAY_FLAGS, error_model="numpy", inline="always")
def _day(T: float, W: float, VPD: float, ca: float, apar: float, log_ci: float, log_ca: float,
         eps: float, Topt: float, inv_kT: float, kappa: float, Ca0: float, Cm: float,
         kW: float, WI: float, gamma: float, mu: float, ck: float,
         lca0: float) -> tuple[float, float, float]:
    """GPP, fT and fW of one day (the fused path's arithmetic, written once for both kernels).

    ``T`` and ``W`` are the lagged drivers Tf and Wf; ``inv_kT`` is ``1 / kT``. fT is
    ``1 / cosh(z)`` as ``2 e / (1 + e^2)`` with ``e = exp(-|z|)`` (no overflow for any
    temperature); the VPD and cloudiness factors share one exponential; the CO2 factor and
    APAR fL share one division, ``(den + dca) APAR / (den (1 + gamma APAR))`` with ``dca = ca -
    Ca0`` and ``den = max(dca + Cm, 1)``: three divisions a day instead of five, the
    vectorised loop's dearest instructions after the exponentials.
    """
    one = np.float32(1.0)  # exact; promotes to the dtype of the day's values
    e = vexp(-abs((T - Topt) * inv_kT))
    fT = (e + e) / (one + e * e)
    r = vexp(ck * (lca0 + log_ca))
    fvci = vexp(kappa * r * VPD + mu * log_ci)
    fW = one / (one + vexp(kW * (W - WI)))
    dca = ca - Ca0
    den = max(dca + Cm, np.float32(CO2_DENOMINATOR_MIN))
    light = (den + dca) * apar / (den * (one + gamma * apar))
    gpp = eps * fT * fvci * fW * light
    return gpp, fT, fW


@njit(fastmath=_DAY_FLAGS, error_model="numpy", inline="always")
def _vpd_part(VPD: float, log_ca: float, kappa: float, ck: float, lca0: float) -> float:
    """``exp(kappa (Ca0/ca)^Ckappa VPD)`` (the VPD part of fVPD) of one day."""
    return vexp(kappa * vexp(ck * (lca0 + log_ca)) * VPD)


@njit(fastmath=_DAY_FLAGS, error_model="numpy")
def _lag(x: np.ndarray, alpha: float, out: np.ndarray) -> None:
    """``out = x`` filtered by ``Xf(t) = (1 - alpha) x(t) + alpha Xf(t-1)``, ``Xf(0) = x(0)``
    (the reference's recurrence, in the precision of ``x``)."""
    if alpha == 0:
        out[:] = x
        return
    b = np.float32(1.0) - alpha
    y = x[0]
    out[0] = y
    for d in range(1, x.shape[0]):
        y = b * x[d] + alpha * y
        out[d] = y


@njit(fastmath=_DAY_FLAGS, error_model="numpy")
def _lag_population(x: np.ndarray, alpha: np.ndarray, out: np.ndarray) -> None:
    """``out[j] = x`` filtered with ``alpha[j]``, for every candidate j of a row.

    The recurrence is sequential over the days, so one candidate's filter waits a full
    multiply-add per day; four candidates at a time, each chain in a register, overlap their
    waits (the last group repeats its last candidate where the population is not a multiple
    of four, writing the same values twice). A candidate whose alpha is 0 gets ``x`` itself
    (``1 x + 0 y`` is exact).
    """
    pop = alpha.shape[0]
    last = pop - 1
    one = np.float32(1.0)
    for j0 in range(0, pop, 4):
        j1, j2, j3 = min(j0 + 1, last), min(j0 + 2, last), min(j0 + 3, last)
        a0, a1, a2, a3 = alpha[j0], alpha[j1], alpha[j2], alpha[j3]
        b0, b1, b2, b3 = one - a0, one - a1, one - a2, one - a3
        y0 = y1 = y2 = y3 = x[0]
        out[j0, 0] = y0
        out[j1, 0] = y1
        out[j2, 0] = y2
        out[j3, 0] = y3
        for d in range(1, x.shape[0]):
            xd = x[d]
            y0 = b0 * xd + a0 * y0
            y1 = b1 * xd + a1 * y1
            y2 = b2 * xd + a2 * y2
            y3 = b3 * xd + a3 * y3
            out[j0, d] = y0
            out[j1, d] = y1
            out[j2, d] = y2
            out[j3, d] = y3


# ------------------------------------------------------------------------------ the kernels
@njit(parallel=True, fastmath=_SUM_FLAGS, error_model="numpy", cache=True)
def population_sums(F: np.ndarray, site_of: np.ndarray, P: np.ndarray, lca0: np.ndarray,
                    vpd_days: np.ndarray, n_vpd: np.ndarray, thresholds: np.ndarray,
                    out: np.ndarray) -> None:  # pragma: no cover
    """The cost sums of every candidate at every row, one pass over the days each.

    Args:
        F: Packed forcing ``(sites, len(FIELDS), days)`` (:func:`pack_forcing`), float32 or
            float64.
        site_of: ``(rows,)`` int64: the site of each row.
        P: Physical parameters ``(rows, pop, 13)``, the dtype of ``F``.
        lca0: ``(rows, pop)``: ``log(Ca0 / CA_REF)`` of each candidate, formed in float64 and
            rounded to the dtype of ``F`` (as the torch path forms it).
        vpd_days: ``(sites, 2, K)``: VPD and ``log(CA_REF / ca)`` on the VPD-stressed days
            that the non-ideal constraint considers (the first ``n_vpd[site]`` entries).
        n_vpd: ``(sites,)`` int64.
        thresholds: ``(3,)``, the dtype of ``F``: the largest allowed fT, VPD part and fW
            under stress.
        out: ``(rows, pop, 5)`` float64, written: ``sum(obs sim)`` and ``sum(sim^2)`` over the
            NSE's days, and the summed excesses of fT, of the VPD part and of fW over their
            stressed days (not yet divided by the number of considered days).
    """
    n_rows, pop, _ = P.shape
    n_days = F.shape[2]
    thr_T, thr_V, thr_W = thresholds[0], thresholds[1], thresholds[2]
    zero = thr_T - thr_T
    for r in prange(n_rows):
        s = site_of[r]
        lag_T = False
        lag_W = False
        for j in range(pop):
            lag_T = lag_T or P[r, j, 11] != 0
            lag_W = lag_W or P[r, j, 12] != 0
        # The lagged drivers of the row's candidates, filtered in one sweep each.
        buf_T = np.empty((pop if lag_T else 0, n_days), F.dtype)
        buf_W = np.empty((pop if lag_W else 0, n_days), F.dtype)
        if lag_T:
            _lag_population(F[s, _T], np.ascontiguousarray(P[r, :, 11]), buf_T)
        if lag_W:
            _lag_population(F[s, _W], np.ascontiguousarray(P[r, :, 12]), buf_W)
        obs = F[s, _OBS]
        use = F[s, _USE]
        m_T = F[s, _MT]
        m_W = F[s, _MW]
        VPD = F[s, _VPD]
        ca = F[s, _CA]
        apar = F[s, _APAR]
        log_ci = F[s, _LCI]
        log_ca = F[s, _LCA]
        for j in range(pop):
            eps, Topt, kT, kappa, Ca0, ck, Cm, kW, WI, gamma, mu = (
                P[r, j, 0], P[r, j, 1], P[r, j, 2], P[r, j, 3], P[r, j, 4], P[r, j, 5],
                P[r, j, 6], P[r, j, 7], P[r, j, 8], P[r, j, 9], P[r, j, 10])
            lc0 = lca0[r, j]
            inv_kT = np.float32(1.0) / kT
            T = buf_T[j] if lag_T else F[s, _T]
            W = buf_W[j] if lag_W else F[s, _W]
            s_os = 0.0
            s_ss = 0.0
            c_T = zero
            c_W = zero
            for d in range(n_days):
                gpp, fT, fW = _day(T[d], W[d], VPD[d], ca[d], apar[d], log_ci[d], log_ca[d],
                                   eps, Topt, inv_kT, kappa, Ca0, Cm, kW, WI, gamma, mu, ck,
                                   lc0)
                g = np.float64(gpp * use[d])
                s_os += g * np.float64(obs[d])
                s_ss += g * g
                c_T += m_T[d] * max(fT - thr_T, zero)
                c_W += m_W[d] * max(fW - thr_W, zero)
            c_V = zero
            for i in range(n_vpd[s]):
                fV = _vpd_part(vpd_days[s, 0, i], vpd_days[s, 1, i], kappa, ck, lc0)
                c_V += max(fV - thr_V, zero)
            out[r, j, 0] = s_os
            out[r, j, 1] = s_ss
            out[r, j, 2] = c_T
            out[r, j, 3] = c_V
            out[r, j, 4] = c_W


@njit(parallel=True, fastmath=_DAY_FLAGS, error_model="numpy", cache=True)
def simulate_rows(T: np.ndarray, W: np.ndarray, VPD: np.ndarray, ca: np.ndarray,
                  apar: np.ndarray, log_ci: np.ndarray, log_ca: np.ndarray,
                  site_of: np.ndarray, P: np.ndarray, lca0: np.ndarray, slot: np.ndarray,
                  out: np.ndarray) -> None:  # pragma: no cover
    """The model's series for parameter rows, written where ``slot`` says.

    Args:
        T, W, VPD, ca, apar, log_ci, log_ca: The prepared forcing, ``(sites, days)`` each,
            C-contiguous, float32 or float64.
        site_of: ``(rows,)`` int64: the site of each row.
        P: Physical parameters ``(rows, 13)``, the dtype of the forcing.
        lca0: ``(rows,)``: ``log(Ca0 / CA_REF)``, as for :func:`population_sums`.
        slot: ``(len(SERIES),)`` int64: where each series of :data:`SERIES` goes in ``out``
            (-1: not wanted; APAR is never written, it is the forcing's).
        out: ``(wanted, rows, days)``.
    """
    n_rows = P.shape[0]
    n_days = T.shape[1]
    one = np.float32(1.0)
    floor = np.float32(CO2_DENOMINATOR_MIN)
    for r in prange(n_rows):
        s = site_of[r]
        Tf = out[slot[8], r] if slot[8] >= 0 else np.empty(n_days, T.dtype)
        Wf = out[slot[9], r] if slot[9] >= 0 else np.empty(n_days, T.dtype)
        _lag(T[s], P[r, 11], Tf)
        _lag(W[s], P[r, 12], Wf)
        eps, Topt, kT, kappa, Ca0, ck, Cm, kW, WI, gamma, mu = (
            P[r, 0], P[r, 1], P[r, 2], P[r, 3], P[r, 4], P[r, 5], P[r, 6], P[r, 7], P[r, 8],
            P[r, 9], P[r, 10])
        lc0 = lca0[r]
        inv_kT = one / kT
        for d in range(n_days):
            gpp, fT, fW = _day(Tf[d], Wf[d], VPD[s, d], ca[s, d], apar[s, d], log_ci[s, d],
                               log_ca[s, d], eps, Topt, inv_kT, kappa, Ca0, Cm, kW, WI, gamma,
                               mu, ck, lc0)
            if slot[0] >= 0:
                out[slot[0], r, d] = gpp
            if slot[1] >= 0:
                out[slot[1], r, d] = fT
            if slot[5] >= 0:
                out[slot[5], r, d] = fW
            if slot[2] >= 0 or slot[3] >= 0 or slot[4] >= 0:
                fV = _vpd_part(VPD[s, d], log_ca[s, d], kappa, ck, lc0)
                dca = ca[s, d] - Ca0
                fC = one + dca / max(dca + Cm, floor)
                if slot[2] >= 0:
                    out[slot[2], r, d] = fV * fC
                if slot[3] >= 0:
                    out[slot[3], r, d] = fV
                if slot[4] >= 0:
                    out[slot[4], r, d] = fC
            if slot[6] >= 0:
                out[slot[6], r, d] = one / (one + gamma * apar[s, d])
            if slot[7] >= 0:
                out[slot[7], r, d] = vexp(mu * log_ci[s, d])


# ------------------------------------------------------------------------------ packed data
@dataclasses.dataclass(frozen=True, eq=False)
class KernelData:
    """Per-site arrays the kernels read, packed once (NumPy, C order, one dtype).

    Attributes:
        forcing: ``(sites, len(FIELDS), days)``: the prepared forcing, then the cost's
            observations on the NSE's days (0 elsewhere), their 0/1 mask and the 0/1 masks of
            the frost and dry-soil days the non-ideal constraint considers (zeros when packed
            without cost data).
        vpd_days: ``(sites, 2, K)``: VPD and ``log(CA_REF / ca)`` on the considered
            VPD-stressed days, ``n_vpd`` of them per site.
        n_vpd: ``(sites,)`` int64.
    """

    forcing: np.ndarray
    vpd_days: np.ndarray
    n_vpd: np.ndarray


def pack_forcing(T: np.ndarray, W: np.ndarray, VPD: np.ndarray, CO2: np.ndarray,
                 APAR: np.ndarray, log_CI: np.ndarray, log_ca: np.ndarray, *,
                 obs: np.ndarray | None = None, use: np.ndarray | None = None,
                 stress_T: np.ndarray | None = None, stress_W: np.ndarray | None = None,
                 stress_V: np.ndarray | None = None) -> KernelData:
    """Pack ``(sites, days)`` NumPy arrays of one float dtype into a :class:`KernelData`.

    Args:
        T, W, VPD, CO2, APAR, log_CI, log_ca: The prepared forcing
            (:class:`lue_spie.model.PreparedForcing`'s fields).
        obs, use: Observations on the NSE's days (0 elsewhere) and the 0/1 mask of those days.
        stress_T, stress_W, stress_V: Boolean ``(sites, days)``: the days on which the
            non-ideal constraint considers fT, fW and the VPD part of fVPD.
    """
    series = (T, W, VPD, CO2, APAR, log_CI, log_ca)
    dtype = np.asarray(T).dtype
    n_sites, n_days = np.shape(T)
    F = np.zeros((n_sites, len(FIELDS), n_days), dtype=dtype)
    for i, x in enumerate(series):
        F[:, i] = x
    for i, x in ((_OBS, obs), (_USE, use), (_MT, stress_T), (_MW, stress_W)):
        if x is not None:
            F[:, i] = x
    if stress_V is None:
        return KernelData(F, np.zeros((n_sites, 2, 1), dtype), np.zeros(n_sites, np.int64))
    stress_V = np.asarray(stress_V, dtype=bool)
    n_vpd = stress_V.sum(-1).astype(np.int64)
    k = max(int(n_vpd.max()) if n_sites else 0, 1)
    vpd_days = np.zeros((n_sites, 2, k), dtype=dtype)
    for s in range(n_sites):
        days = np.flatnonzero(stress_V[s])
        vpd_days[s, 0, :len(days)] = VPD[s, days]
        vpd_days[s, 1, :len(days)] = log_ca[s, days]
    return KernelData(F, vpd_days, n_vpd)

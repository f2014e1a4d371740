"""The globally fixed P-model with acclimation: the paper's "P-model" baseline (section 2.2.6).

Every other method of the comparison predicts the 13 LUE parameters of a held-out site. The
P-model needs none: it is an eco-evolutionary optimality model of photosynthesis (Prentice et
al. 2014; Wang et al. 2017; Stocker et al. 2020) whose few parameters are fixed once for the
globe, so it predicts GPP directly from the site's forcing. It needs no fitting, and its
prediction for a site does not depend on which sites were in the training folds.

The paper ran the version of Mengoli et al. (2022) with slow acclimation, on daily data
(the same inputs as the LUE model), with the authors' settings: a 15-day acclimation window
and the running-mean approach. This module computes it with pyrealm 2.0.0
(:class:`pyrealm.pmodel.SubdailyPModel`); it does not re-implement the model.

What Mengoli et al. (2022) specify, and how it maps onto pyrealm
------------------------------------------------------------------
* Three quantities acclimate slowly: the stomatal sensitivity xi (which sets ci/ca), and the
  carboxylation and electron-transport capacities at 25 degC, Vcmax25 and Jmax25. Every day
  the optimal values O_t are computed from the day's acclimation conditions (a standard
  P-model run), and the realised values follow an exponentially weighted running mean
  ``R_t = (1 - alpha) R_{t-1} + alpha O_t`` with ``R_0 = O_0``; alpha = 1/15 per day is the
  "15-day window" (an e-folding memory of about 15 days). Vcmax25 and Jmax25 are rescaled to
  the actual temperature with Arrhenius functions; ci comes from the realised xi and the
  actual VPD; GPP is the minimum of the Rubisco- and electron-transport-limited rates. In
  pyrealm: ``AcclimationModel(alpha=1/window_days)`` and
  :meth:`~pyrealm.pmodel.acclimation.AcclimationModel.apply_acclimation` (which is
  :func:`pyrealm.core.utilities.exponential_moving_average`).
* Mengoli et al. built it for half-hourly data with a midday acclimation window. With daily
  data, as here and in the paper, the "window" is the day itself: the daily means are both
  the acclimation conditions and the conditions GPP is computed for.
* Quantum yield phi0 = 1/8 with the Bernacchi et al. (2003) temperature dependence, C3
  optimal chi of Prentice et al. (2014), Jmax limitation of Wang et al. (2017), simple
  Arrhenius scaling (pyrealm 2.0 defaults, which are also the settings under which pyrealm
  documents the soil-moisture function below to have been calibrated). Every site is run
  as C3: the data carry no C4 fraction.

The daily-axis workaround (and the alternative not taken)
----------------------------------------------------------
pyrealm 2.0.0's :class:`~pyrealm.pmodel.acclimation.AcclimationModel` rejects a plain daily
axis (one observation per day ends in an ``IndexError`` while it infers the observation times
of a day). Two ways round it were considered:

1. **Chosen:** give pyrealm two timestamps per day, 00:00 and 12:00, each holding the day's
   values, and set the acclimation window to the single observation nearest 12:00
   (:meth:`~pyrealm.pmodel.acclimation.AcclimationModel.set_nearest`). The daily optimum is
   then the P-model for the day's values; the realised value of day d is applied from 12:00
   of day d (``update_point="max"``, ``fill_method="previous"``), so the 12:00 output of day
   d is GPP under day d's conditions with day d's realised xi, Vcmax25 and Jmax25. We keep
   every second output (the 12:00 ones). The 00:00 slots only carry the previous day's
   realised values and are discarded. This runs pyrealm's whole acclimation code path
   unchanged; its cost is doubling the time axis (seconds at the paper's size).
2. **Not taken:** the standard :class:`~pyrealm.pmodel.PModel` on the daily data plus
   pyrealm's ``exponential_moving_average`` of its xi, Vcmax25 and Jmax25. The realised
   values alone do not give GPP: the "fast" half (Arrhenius rescaling, ci from a fixed xi,
   the electron-transport curve, the minimum of the two rates) would have to be written here,
   which re-implements what ``SubdailyPModel`` already does.

The tests check option 1 against the step-by-step ("exploded") calculation of pyrealm's
documentation (page "Subdaily P Model calculations"), done on a daily axis, and against the
plain ``PModel`` on constant forcing, where acclimation must not matter.

Inputs, units and edge cases
----------------------------
Project units in, pyrealm units inside: T [degC], VPD [Pa], CO2 [ppm], PA [kPa, times 1000 to
Pa], PPFD [umol m-2 s-1, the daily mean over 24 h], FAPAR [-]; the absorbed light is
``PPFD x FAPAR``. pyrealm returns GPP in micrograms C m-2 s-1, which a 24-h mean turns into
gC m-2 d-1 by the factor 86400 s d-1 x 1e-6 g ug-1 = 0.0864 (:data:`UG_C_PER_S_TO_G_C_PER_D`).

* Air temperature below -25 degC is outside pyrealm's domain (the density of water is
  unstable there): such days are masked (NaN) as pyrealm's worked example does, the running
  means hold their last values (``allow_holdover``), and GPP is set to 0 on them, which is
  the model's own value there (phi0(T) is clipped to 0 below -13.3 degC). Between -13.3 and
  0 degC the C3 P-model keeps a small positive GPP; pyrealm's documentation says so, and we
  keep the model as it is.
* Negative VPD is clipped to 0 (pyrealm's advice); negative PPFD to 0; FAPAR and W to [0, 1].
* Other missing inputs (NaN) give NaN GPP on those days only (the running means hold over).

Soil-moisture stress
--------------------
GPP is multiplied by the empirical soil-moisture factor of Mengoli et al. (2023)
(:func:`pyrealm.pmodel.calc_soilmstress_mengoli`): beta(W) = y W / psi below the threshold
psi and y above it, with the plateau y = min(0.62 AI^-0.45, 1) and psi = min(0.34 AI^-0.6, 1),
where AI is the climatological aridity index PET/P. The project's ``AI1`` is the Global
Aridity Index convention P/PET, so AI = 1 / AI1. Why this one and not the Stocker et al.
(2020) factor: Mengoli's was calibrated for the acclimating (subdaily) P-model with phi0 = 1/8,
which is the model run here, and it needs only W and the aridity index the project has;
Stocker's was calibrated with the instantaneous P-model and a tuned phi0 (0.087), and needs
the mean ratio of actual to potential evapotranspiration, which the data do not carry. The
plateau y < 1 at all but the wettest sites (AI1 > 2.9) is part of that calibration, not a
bug. ``soil_moisture_stress="none"`` switches it off (GPP of the acclimated model alone).

References
----------
Mengoli G., Agusti-Panareda A., Boussetta S., Harrison S. P., Trotta C., Prentice I. C.
(2022) JAMES 14, e2021MS002767, doi:10.1029/2021MS002767. Mengoli G., Harrison S. P.,
Prentice I. C. (2023) EGUsphere preprint, doi:10.5194/egusphere-2023-1261 (the source of
pyrealm 2.0.0's coefficients; revised version: Global Change Biology 31, e70098, 2025,
doi:10.1111/gcb.70098). Wang H. et al. (2017)
Nature Plants 3, 734-741, doi:10.1038/s41477-017-0006-8. Stocker B. D. et al. (2020) GMD 13,
1545-1581, doi:10.5194/gmd-13-1545-2020. Prentice I. C. et al. (2014) Ecology Letters 17,
82-91, doi:10.1111/ele.12211. Bernacchi C. J. et al. (2003) Plant Cell Environ. 26,
1419-1430.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lue_spie import constants
from lue_spie.methods.base import Method, SiteData

if TYPE_CHECKING:
    from lue_spie.data.io import ForcingBatch

__all__ = [
    "PModelSettings",
    "UG_C_PER_S_TO_G_C_PER_D",
    "KPA_TO_PA",
    "T_MIN_PYREALM",
    "OUTPUT_KEYS",
    "run_pmodel",
    "gpp_pmodel",
    "run_pmodel_batch",
    "gpp_pmodel_batch",
    "PModel",
]

#: pyrealm's GPP [ug C m-2 s-1] (a 24-h mean) -> gC m-2 d-1: 86400 s d-1 x 1e-6 g ug-1.
UG_C_PER_S_TO_G_C_PER_D: float = constants.UG_C_M2_S_TO_G_C_M2_D

#: The site-day table's air pressure [kPa] -> pyrealm's [Pa].
KPA_TO_PA: float = constants.KPA_TO_PA

#: Lowest air temperature [degC] pyrealm's PModelEnvironment accepts (water density).
T_MIN_PYREALM: float = -25.0

#: Keys of :func:`run_pmodel`'s result, each ``(sites, days)``.
OUTPUT_KEYS: tuple[str, ...] = ("GPP", "GPP_unstressed", "soil_stress", "xi", "vcmax25",
                                "jmax25")

#: Soil-moisture stress options.
SOIL_MOISTURE_STRESS: tuple[str, ...] = ("mengoli23", "none")

# The pyrealm warning that phi0's default changed in 2.0 (we set reference_kphio explicitly).
_KPHIO_WARNING = "(?s).*new default for the quantum yield of photosynthesis.*"


@dataclass(frozen=True)
class PModelSettings:
    """Settings of the P-model baseline (defaults: Mengoli et al. 2022, as run in the paper).

    Attributes:
        window_days: Acclimation memory [d]; the running-mean weight is
            ``alpha = 1 / window_days`` (Mengoli et al. 2022: 15 days). Must be >= 1
            (1 = no memory: the realised values are each day's optimum).
        acclimation: True: xi, Vcmax25 and Jmax25 acclimate slowly (pyrealm
            ``SubdailyPModel`` on the two-stamps-per-day axis). False: the instantaneous
            standard P-model (pyrealm ``PModel``), for comparison.
        soil_moisture_stress: ``"mengoli23"`` (Mengoli et al. 2023 factor of relative soil
            water W and aridity) or ``"none"``.
        reference_kphio: Reference quantum yield phi0 [mol mol-1] (1/8: Mengoli et al. 2022;
            pyrealm 2.0 default).
        method_kphio: pyrealm quantum-yield method (``"temperature"``: Bernacchi et al. 2003
            temperature dependence of phi0).
        method_optchi: pyrealm optimal-chi method (``"prentice14"``: C3, Prentice et al. 2014).
        method_jmaxlim: pyrealm Jmax limitation (``"wang17"``: Wang et al. 2017).
        method_arrhenius: pyrealm Arrhenius scaling of Vcmax and Jmax (``"simple"``).
        chunk_sites: Sites per pyrealm call (bounds memory; results do not depend on it).
    """

    window_days: float = 15.0
    acclimation: bool = True
    soil_moisture_stress: str = "mengoli23"
    reference_kphio: float = 1.0 / 8.0
    method_kphio: str = "temperature"
    method_optchi: str = "prentice14"
    method_jmaxlim: str = "wang17"
    method_arrhenius: str = "simple"
    chunk_sites: int = 256

    def __post_init__(self) -> None:
        from pyrealm.pmodel.arrhenius import ARRHENIUS_METHOD_REGISTRY
        from pyrealm.pmodel.jmax_limitation import JMAX_LIMITATION_CLASS_REGISTRY
        from pyrealm.pmodel.optimal_chi import OPTIMAL_CHI_CLASS_REGISTRY
        from pyrealm.pmodel.quantum_yield import QUANTUM_YIELD_CLASS_REGISTRY

        if not (np.isfinite(self.window_days) and self.window_days >= 1.0):
            raise ValueError(f"PModelSettings.window_days must be a number of days >= 1, got "
                             f"{self.window_days!r}")
        if self.soil_moisture_stress not in SOIL_MOISTURE_STRESS:
            raise ValueError(f"PModelSettings.soil_moisture_stress must be one of "
                             f"{list(SOIL_MOISTURE_STRESS)}, got {self.soil_moisture_stress!r}")
        if not (np.isfinite(self.reference_kphio) and self.reference_kphio > 0):
            raise ValueError(f"PModelSettings.reference_kphio must be > 0, got "
                             f"{self.reference_kphio!r}")
        for name, registry in (("method_kphio", QUANTUM_YIELD_CLASS_REGISTRY),
                               ("method_optchi", OPTIMAL_CHI_CLASS_REGISTRY),
                               ("method_jmaxlim", JMAX_LIMITATION_CLASS_REGISTRY),
                               ("method_arrhenius", ARRHENIUS_METHOD_REGISTRY)):
            value = getattr(self, name)
            if value not in registry:
                raise ValueError(f"PModelSettings.{name}: unknown pyrealm method {value!r}; "
                                 f"pyrealm offers {sorted(registry)}")
        if int(self.chunk_sites) != self.chunk_sites or self.chunk_sites < 1:
            raise ValueError(f"PModelSettings.chunk_sites must be a positive integer, got "
                             f"{self.chunk_sites!r}")

    @property
    def alpha(self) -> float:
        """Weight of the newest daily optimum in the running mean [d-1]."""
        return 1.0 / self.window_days

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict (for provenance records)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------

def _as_float(name: str, value: Any, where: str) -> np.ndarray:
    if value is None:
        raise ValueError(f"{where}: {name} is missing")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {name} is not numeric ({err})") from err
    if np.isinf(arr).any():
        raise ValueError(f"{where}: {name} has {int(np.isinf(arr).sum())} infinite values")
    return arr


def _broadcast(name: str, arr: np.ndarray, shape: tuple[int, ...], where: str) -> np.ndarray:
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(f"{where}: {name} has shape {arr.shape}, but T has shape {shape}; "
                         "expected (sites, days) like T, or a shape that broadcasts to it"
                         ) from None


def _median(arr: np.ndarray) -> float:
    finite = arr[np.isfinite(arr)]
    return float(np.median(finite)) if finite.size else float("nan")


def _check_dates(dates: Any, n_days: int, where: str) -> np.datetime64:
    """First day of a consecutive daily axis of ``n_days`` days (1970-01-01 when None)."""
    if dates is None:
        return np.datetime64("1970-01-01", "D")
    idx = pd.DatetimeIndex(dates)
    if len(idx) != n_days:
        raise ValueError(f"{where}: dates has {len(idx)} entries but the forcing has {n_days} "
                         "days")
    if n_days > 1:
        step = np.diff(idx.normalize().to_numpy()).astype("timedelta64[D]")
        if (step != np.timedelta64(1, "D")).any():
            raise ValueError(f"{where}: dates must be consecutive days (a regular daily axis "
                             "without gaps; fill gaps before, as to_forcing does)")
    return np.datetime64(idx[0].normalize().date(), "D")


def _prepare(T, VPD, CO2, PA, PPFD, FAPAR, W, AI1, settings: PModelSettings,
             where: str) -> tuple[dict[str, np.ndarray], np.ndarray | None, bool]:
    """Validated float64 (sites, days) inputs, the per-site AI1 and whether input was 1-D."""
    t = _as_float("T", T, where)
    if t.ndim not in (1, 2):
        raise ValueError(f"{where}: T must be (sites, days) or (days,) for one site, got shape "
                         f"{t.shape}")
    squeeze = t.ndim == 1
    if squeeze:
        t = t[None, :]
    shape = t.shape
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"{where}: T has shape {shape}: no sites or no days")
    arrays = {"T": t}
    for name, value in (("VPD", VPD), ("CO2", CO2), ("PA", PA), ("PPFD", PPFD),
                        ("FAPAR", FAPAR)):
        arr = _as_float(name, value, where)
        if squeeze and arr.ndim == 1 and arr.shape[0] == shape[1]:
            arr = arr[None, :]
        arrays[name] = _broadcast(name, arr, shape, where)
    stress = settings.soil_moisture_stress != "none"
    ai1 = None
    if stress:
        missing = [n for n, v in (("W", W), ("AI1", AI1)) if v is None]
        if missing:
            raise ValueError(f"{where}: soil_moisture_stress={settings.soil_moisture_stress!r} "
                             f"needs {' and '.join(missing)} (relative soil water W [0-1] per "
                             "site-day, aridity index AI1 = P/PET per site); pass them or set "
                             "soil_moisture_stress='none'")
        w = _as_float("W", W, where)
        if squeeze and w.ndim == 1 and w.shape[0] == shape[1]:
            w = w[None, :]
        arrays["W"] = _broadcast("W", w, shape, where)
        ai1 = _as_float("AI1", AI1, where).reshape(-1)
        if ai1.size == 1:
            ai1 = np.full(shape[0], ai1[0])
        if ai1.shape != (shape[0],):
            raise ValueError(f"{where}: AI1 must have one value per site ({shape[0]}), got "
                             f"{ai1.size}")
        bad = np.flatnonzero(~(ai1 >= 0))
        if bad.size:
            raise ValueError(f"{where}: AI1 (P/PET, >= 0) is missing or negative at site "
                             f"index(es) {bad[:10].tolist()}")

    # Units: catch the usual mix-ups with a message instead of silent nonsense.
    t_max = np.nanmax(t) if np.isfinite(t).any() else np.nan
    if t_max > 80.0:
        raise ValueError(f"{where}: T reaches {t_max:.1f}: expected degC (Kelvin given?)")
    pa_med = _median(arrays["PA"])
    if not (30.0 <= pa_med <= 120.0):
        raise ValueError(f"{where}: PA median {pa_med:g}: expected air pressure in kPa (the "
                         "site-day table's unit; Pa or hPa given?)")
    if (arrays["CO2"] <= 0).any():
        raise ValueError(f"{where}: CO2 must be > 0 ppm")
    return arrays, ai1, squeeze


# --------------------------------------------------------------------------------------------
# pyrealm calls
# --------------------------------------------------------------------------------------------

def _two_stamp_axis(first_day: np.datetime64, n_days: int) -> np.ndarray:
    """00:00 and 12:00 of each day: the daily axis pyrealm's AcclimationModel accepts."""
    days = (first_day + np.arange(n_days)).astype("datetime64[s]")
    stamps = np.repeat(days, 2)
    stamps[1::2] += np.timedelta64(12, "h")
    return stamps


def _run_chunk(f: Mapping[str, np.ndarray], settings: PModelSettings,
               first_day: np.datetime64) -> dict[str, np.ndarray]:
    """pyrealm on one chunk; inputs and outputs are (days, sites) as pyrealm wants time first."""
    from pyrealm.pmodel import AcclimationModel, PModel, PModelEnvironment, SubdailyPModel

    n_days = f["T"].shape[0]
    too_cold = f["T"] < T_MIN_PYREALM
    env_in = {
        "tc": np.where(too_cold, np.nan, f["T"]),
        "vpd": np.clip(f["VPD"], 0.0, None),
        "co2": np.ascontiguousarray(f["CO2"]),
        "patm": f["PA"] * KPA_TO_PA,
        "ppfd": np.clip(f["PPFD"], 0.0, None),
        "fapar": np.clip(f["FAPAR"], 0.0, 1.0),
    }
    methods = {"method_kphio": settings.method_kphio, "method_optchi": settings.method_optchi,
               "method_jmaxlim": settings.method_jmaxlim,
               "method_arrhenius": settings.method_arrhenius,
               "reference_kphio": settings.reference_kphio}
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.filterwarnings("ignore", message=_KPHIO_WARNING, category=UserWarning)
        warnings.filterwarnings("ignore", message="All-NaN slice", category=RuntimeWarning)
        # pyrealm's Wang17 terms use np.sqrt(where=...) and back-fill NaN where m <= c*.
        warnings.filterwarnings("ignore", message="'where' used without 'out'",
                                category=UserWarning)
        # One day has nothing to acclimate to: R_0 = O_0, i.e. the standard P-model (and
        # pyrealm's AcclimationModel needs a second day to infer the daily timing).
        if settings.acclimation and n_days > 1:
            env = PModelEnvironment(**{k: np.repeat(v, 2, axis=0) for k, v in env_in.items()})
            acclim = AcclimationModel(_two_stamp_axis(first_day, n_days), alpha=settings.alpha,
                                      allow_holdover=True, update_point="max",
                                      fill_method="previous")
            acclim.set_nearest(np.timedelta64(12, "h"))
            model = SubdailyPModel(env=env, acclim_model=acclim, **methods)
            gpp = model.gpp[1::2]
            phi_iabs = (model.kphio.kphio * env.fapar * env.ppfd)[1::2]
            xi = model.xi_daily_realised
            vcmax25 = model.vcmax25_daily_realised
            jmax25 = model.jmax25_daily_realised
        else:
            env = PModelEnvironment(**env_in)
            model = PModel(env, **methods)
            gpp = model.gpp
            phi_iabs = model.kphio.kphio * env.fapar * env.ppfd
            xi = np.broadcast_to(model.optchi.xi, gpp.shape)
            vcmax25, jmax25 = model.vcmax25, model.jmax25
            # Where m <= c* the Wang et al. (2017) terms are undefined (pyrealm: NaN); as m
            # falls to c*, f_v -> 0, so the optimal LUE (and GPP) tends to 0.
            undefined = np.isnan(model.jmaxlim.f_v) & np.isfinite(model.optchi.mj)
            gpp = np.where(undefined, 0.0, gpp)
    gpp = np.asarray(gpp, dtype=np.float64) * UG_C_PER_S_TO_G_C_PER_D
    # No quantum yield or no absorbed light (phi0(T) = 0 below -13.3 degC, polar night): the
    # electron-transport rate J = 4 phi0 Iabs / sqrt(1 + (4 phi0 Iabs / Jmax)^2) is 0 for any
    # Jmax >= 0, so GPP = 0; pyrealm gives 0/0 = NaN there when the realised Jmax is 0 too.
    gpp = np.where(np.isnan(gpp) & (phi_iabs == 0), 0.0, gpp)
    # Below -25 degC pyrealm cannot run; the model's own GPP there is 0 when phi0 follows
    # temperature (clipped to 0 below -13.3 degC for C3). Otherwise leave it unknown.
    if settings.method_kphio == "temperature":
        gpp = np.where(too_cold, 0.0, gpp)
    return {"GPP_unstressed": gpp, "xi": np.asarray(xi, dtype=np.float64),
            "vcmax25": np.asarray(vcmax25, dtype=np.float64),
            "jmax25": np.asarray(jmax25, dtype=np.float64)}


def _soil_stress(W: np.ndarray, AI1: np.ndarray) -> np.ndarray:
    """Mengoli et al. (2023) factor via pyrealm; AI (PET/P) = 1 / AI1 (P/PET)."""
    from pyrealm.pmodel import calc_soilmstress_mengoli

    with np.errstate(divide="ignore", invalid="ignore"):
        ai = np.where(AI1 > 0, 1.0 / np.where(AI1 > 0, AI1, 1.0), np.inf)
        ai_full = np.ascontiguousarray(np.broadcast_to(ai[:, None], W.shape))
        beta = calc_soilmstress_mengoli(soilm=np.clip(W, 0.0, 1.0), aridity_index=ai_full)
    return np.asarray(beta, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

def run_pmodel(
    T: Any,
    VPD: Any,
    CO2: Any,
    PA: Any,
    PPFD: Any,
    FAPAR: Any,
    W: Any = None,
    AI1: Any = None,
    *,
    dates: Sequence[Any] | pd.DatetimeIndex | None = None,
    settings: PModelSettings | None = None,
) -> dict[str, np.ndarray]:
    """Run the P-model with acclimation (pyrealm) on daily forcing, vectorised over sites.

    Args:
        T: Daily mean air temperature [degC], ``(sites, days)`` (or ``(days,)`` for one site).
        VPD: Vapour pressure deficit [Pa], same shape (or broadcastable).
        CO2: Atmospheric CO2 [ppm].
        PA: Air pressure [kPa] (the site-day table's unit; converted to Pa for pyrealm).
        PPFD: Daily mean (24 h) photosynthetic photon flux density [umol m-2 s-1].
        FAPAR: Fraction of absorbed PAR [-].
        W: Relative soil water [0-1] (needed by the soil-moisture stress).
        AI1: Aridity index P/PET per site [-], shape ``(sites,)`` (needed by the stress).
        dates: The days (consecutive); only checked, the calculation does not depend on them.
        settings: :class:`PModelSettings` (default: Mengoli et al. 2022 as in the paper).

    Returns:
        Dict of float64 arrays shaped like ``T``: ``GPP`` [gC m-2 d-1] (with soil-moisture
        stress), ``GPP_unstressed`` [gC m-2 d-1], ``soil_stress`` [-] (1 when off), and the
        realised (acclimated) ``xi`` [Pa^0.5], ``vcmax25`` and ``jmax25`` [umol m-2 s-1]
        (the instantaneous optima when ``settings.acclimation`` is False).

    Raises:
        ValueError: naming the input for a missing input, a wrong shape, infinite values,
            apparent unit mix-ups (T in K, PA not in kPa), non-positive CO2, missing or
            negative AI1, or non-consecutive dates.
    """
    settings = PModelSettings() if settings is None else settings
    where = "P-model"
    f, ai1, squeeze = _prepare(T, VPD, CO2, PA, PPFD, FAPAR, W, AI1, settings, where)
    n_sites, n_days = f["T"].shape
    first_day = _check_dates(dates, n_days, where)
    out = {k: np.empty((n_sites, n_days), dtype=np.float64) for k in OUTPUT_KEYS}
    step = int(settings.chunk_sites)
    for start in range(0, n_sites, step):
        rows = slice(start, min(start + step, n_sites))
        chunk = {k: np.ascontiguousarray(v[rows].T) for k, v in f.items() if k != "W"}
        res = _run_chunk(chunk, settings, first_day)
        for k, v in res.items():
            out[k][rows] = v.T
    if ai1 is not None:
        out["soil_stress"] = _soil_stress(f["W"], ai1)
    else:
        out["soil_stress"][:] = 1.0
    out["GPP"] = out["GPP_unstressed"] * out["soil_stress"]
    if squeeze:
        out = {k: v[0] for k, v in out.items()}
    return out


def gpp_pmodel(
    T: Any,
    VPD: Any,
    CO2: Any,
    PA: Any,
    PPFD: Any,
    FAPAR: Any,
    W: Any = None,
    AI1: Any = None,
    *,
    dates: Sequence[Any] | pd.DatetimeIndex | None = None,
    settings: PModelSettings | None = None,
) -> np.ndarray:
    """Daily GPP [gC m-2 d-1] of the P-model baseline, ``(sites, days)``.

    Same arguments as :func:`run_pmodel`; returns its ``"GPP"``.
    """
    return run_pmodel(T, VPD, CO2, PA, PPFD, FAPAR, W, AI1, dates=dates,
                      settings=settings)["GPP"]


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def run_pmodel_batch(batch: ForcingBatch, sites_table: pd.DataFrame,
                     settings: PModelSettings | None = None) -> dict[str, np.ndarray]:
    """:func:`run_pmodel` on a :class:`~lue_spie.data.io.ForcingBatch`.

    Takes T, VPD, CO2, W and FAPAR from ``batch.forcing``, PA and PPFD from ``batch.extra``,
    and AI1 from ``sites_table`` (rows matched by ``site``), on the batch's daily grid.

    Args:
        batch: Dense forcing of the sites to predict (e.g. from ``lue_spie.data.to_forcing``).
        sites_table: The sites table (needs ``site`` and, with soil-moisture stress, ``AI1``).
        settings: :class:`PModelSettings`.

    Returns:
        As :func:`run_pmodel`, rows in ``batch.sites`` order.

    Raises:
        ValueError: naming what is missing: a forcing or extra variable, sites absent from
            ``sites_table``, a column of ``sites_table``, or sites where PA, PPFD or AI1 has no
            value at all.
    """
    settings = PModelSettings() if settings is None else settings
    where = "P-model (ForcingBatch)"
    missing = [k for k in ("T", "VPD", "CO2", "W", "FAPAR") if k not in batch.forcing]
    if missing:
        raise ValueError(f"{where}: batch.forcing lacks {missing}")
    missing = [k for k in ("PA", "PPFD") if k not in batch.extra]
    if missing:
        raise ValueError(f"{where}: batch.extra lacks {missing} (air pressure [kPa] and PPFD "
                         "[umol m-2 s-1] from the site-day table); build the batch with "
                         "lue_spie.data.to_forcing from a table that has them")
    f = {k: _to_numpy(batch.forcing[k]) for k in ("T", "VPD", "CO2", "W", "FAPAR")}
    for k in ("PA", "PPFD"):
        f[k] = _to_numpy(batch.extra[k])
        empty = np.isnan(f[k]).all(axis=1)
        if empty.any():
            bad = [batch.sites[i] for i in np.flatnonzero(empty)]
            raise ValueError(f"{where}: {k} has no values at site(s) {bad[:10]}")
    ai1 = None
    if settings.soil_moisture_stress != "none":
        if not isinstance(sites_table, pd.DataFrame):
            raise ValueError(f"{where}: sites_table must be a pandas DataFrame, got "
                             f"{type(sites_table).__name__}")
        cols = [c for c in ("site", "AI1") if c not in sites_table.columns]
        if cols:
            raise ValueError(f"{where}: sites table lacks column(s) {cols} (AI1 = P/PET is "
                             "needed by the soil-moisture stress)")
        table = (sites_table.assign(site=sites_table["site"].astype(str))
                 .drop_duplicates("site").set_index("site"))
        absent = [s for s in batch.sites if s not in table.index]
        if absent:
            raise ValueError(f"{where}: site(s) {absent[:10]} of the batch are not in the "
                             "sites table")
        ai1 = table.loc[list(batch.sites), "AI1"].to_numpy(dtype=np.float64)
        bad = [s for s, a in zip(batch.sites, ai1, strict=True) if not a >= 0]
        if bad:
            raise ValueError(f"{where}: AI1 is missing or negative at site(s) {bad[:10]}")
    return run_pmodel(f["T"], f["VPD"], f["CO2"], f["PA"], f["PPFD"], f["FAPAR"],
                      f["W"], ai1, dates=batch.dates, settings=settings)


def gpp_pmodel_batch(batch: ForcingBatch, sites_table: pd.DataFrame,
                     settings: PModelSettings | None = None) -> np.ndarray:
    """Daily GPP [gC m-2 d-1] of the P-model for every site of ``batch``, ``(sites, days)``.

    See :func:`run_pmodel_batch`.
    """
    return run_pmodel_batch(batch, sites_table, settings)["GPP"]


# --------------------------------------------------------------------------------------------
# The method of the comparison
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class PModel(Method, name="P-model", family="pmodel", order=12, predicts="gpp",
             learns_from="nothing", folds="independent"):
    """The globally fixed P-model with acclimation as a method of the comparison.

    It learns nothing from the training sites (``fit`` only records them) and predicts GPP
    directly: :meth:`predict` returns ``site, date, GPP_sim`` on the days each site has a
    record for. Its prediction for a site is the same in every fold.

    Attributes:
        settings: :class:`PModelSettings`.
    """

    settings: PModelSettings = dataclasses.field(default_factory=PModelSettings)

    def __post_init__(self) -> None:
        if isinstance(self.settings, Mapping):  # e.g. from a JSON record or the CLI
            self.settings = PModelSettings(**self.settings)

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters (the P-model settings)."""
        return {"settings": self.settings.to_dict()}

    def fit(self, data: SiteData, train_sites: Sequence[str]) -> PModel:
        """Nothing to learn: the P-model's parameters are fixed for the globe."""
        self.train_sites_ = data.check_sites(train_sites, "training sites")
        return self

    def predict(self, data: SiteData, sites: Sequence[str]) -> pd.DataFrame:
        """Daily GPP of each site: a tidy ``(site, date, GPP_sim)`` table."""
        sites = data.check_sites(sites)
        batch = data.forcing(sites)
        gpp = gpp_pmodel_batch(batch, data.dataset.sites, self.settings)
        keep = (batch.in_record.cpu().numpy() if batch.in_record is not None
                else np.ones(gpp.shape, dtype=bool))
        i, d = np.nonzero(keep)
        return pd.DataFrame({"site": np.asarray(batch.sites, dtype=object)[i],
                             "date": np.asarray(batch.dates, dtype="datetime64[ns]")[d],
                             "GPP_sim": gpp[i, d]})

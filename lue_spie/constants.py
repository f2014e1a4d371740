"""Physical constants, unit factors and quality thresholds: one place for every named number.

Every module that converts units or judges data quality imports its numbers from here, so a
reader finds each choice, its unit and its source once. Values are plain module constants
(immutable floats); :data:`QC_THRESHOLDS` gathers the quality rules of the assessment.

Radiation
    ``PAR = PAR_FRACTION * SW_IN`` (energy share of photosynthetically active radiation in
    global radiation; 0.48 is the value of the SPEC and the paper's forcing data, within the
    0.45-0.50 range of Monteith & Unsworth 2013 and Britton & Dodd 1976).
    ``W m-2`` (daily mean) ``* W_M2_TO_MJ_D`` = ``MJ m-2 d-1`` (seconds per day / 1e6).
    ``PPFD [umol m-2 s-1] = UMOL_PER_J_PAR * PAR [W m-2]`` (4.57 umol J-1 for daylight PAR,
    McCree 1972).

Quality control (SPEC section 4; paper section 2.3)
    A day is good when every QC fraction of the inputs and of GPP_obs is above
    ``QC_GOOD_DAY`` (0.8) and GPP_obs is present; a weekly or monthly mean counts when its mean
    QC is above ``QC_GOOD_WEEK`` / ``QC_GOOD_MONTH`` (0.7), a yearly mean above
    ``QC_GOOD_YEAR`` (0.5). Metrics need at least ``MIN_POINTS`` (4) good points.
"""

from __future__ import annotations

__all__ = [
    "PAR_FRACTION",
    "W_M2_TO_MJ_D",
    "UMOL_PER_J_PAR",
    "HPA_TO_PA",
    "KPA_TO_PA",
    "ZERO_CELSIUS_K",
    "FLUXNET_MISSING",
    "UG_C_M2_S_TO_G_C_M2_D",
    "QC_GOOD_DAY",
    "QC_GOOD_WEEK",
    "QC_GOOD_MONTH",
    "QC_GOOD_YEAR",
    "QC_THRESHOLDS",
    "MIN_POINTS",
]

# ------------------------------------------------------------------------------- radiation
#: Energy share of PAR in global (shortwave) radiation [-] (SPEC section 1).
PAR_FRACTION: float = 0.48
#: Daily mean irradiance [W m-2] to daily energy [MJ m-2 d-1]: 86400 s d-1 / 1e6 J MJ-1.
W_M2_TO_MJ_D: float = 0.0864
#: Quanta per energy of daylight PAR [umol J-1] (McCree 1972).
UMOL_PER_J_PAR: float = 4.57

# ------------------------------------------------------------------------- other units
#: Hectopascal to pascal (FLUXNET's VPD_F is in hPa).
HPA_TO_PA: float = 100.0
#: Kilopascal to pascal (air pressure PA is stored in kPa).
KPA_TO_PA: float = 1000.0
#: 0 degC in kelvin.
ZERO_CELSIUS_K: float = 273.15
#: FLUXNET2015's missing-value code.
FLUXNET_MISSING: float = -9999.0
#: Carbon flux in micrograms C m-2 s-1 (pyrealm's GPP) to g C m-2 d-1: 86400 s d-1 x 1e-6 g ug-1.
UG_C_M2_S_TO_G_C_M2_D: float = 86400.0 * 1e-6

# ------------------------------------------------------------------------- quality control
#: A day counts when every QC fraction is above this (and GPP_obs is present) [-].
QC_GOOD_DAY: float = 0.8
#: A weekly mean counts when its mean QC is above this [-].
QC_GOOD_WEEK: float = 0.7
#: A monthly mean counts when its mean QC is above this [-].
QC_GOOD_MONTH: float = 0.7
#: A yearly mean counts when its mean QC is above this [-].
QC_GOOD_YEAR: float = 0.5
#: The QC threshold of each time scale of the assessment.
QC_THRESHOLDS: dict[str, float] = {
    "daily": QC_GOOD_DAY, "weekly": QC_GOOD_WEEK, "monthly": QC_GOOD_MONTH,
    "yearly": QC_GOOD_YEAR,
}
#: Fewest good points for a metric; a site with fewer at a time scale is left out (SPEC 4).
MIN_POINTS: int = 4

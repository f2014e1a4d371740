"""Daily GPP on a common grid and its QC-aware weekly, monthly and yearly means (paper 2.3).

Two tables come in (the input contract of the assessment):

* observations: the dataset's ``site_day`` table (columns ``site``, ``date``, ``GPP_obs`` and
  every QC column of :data:`lue_spie.data.schema.QC_COLUMNS`);
* predictions: a long table with columns ``method``, ``site``, ``date``, ``GPP_sim``, one row
  per method, site and day. A method may cover only some sites (each cross-validation fold
  predicts its held-out sites); site calibration is simply the method ``"site-calib"``.

:func:`gpp_grid` turns them into a :class:`GPPGrid` of dense arrays on one daily grid
(methods x sites x days), and :func:`aggregate` / :func:`all_scales` turn that into one
:class:`ScaleSeries` per time scale. Everything is vectorised: period means are
``np.add.reduceat`` over contiguous runs of days, with no Python loop over sites or periods.

Decisions (SPEC section 4 and paper section 2.3 leave these open; the book's methods chapter
repeats them):

1. **Daily.** A day is good when every QC flag is > :data:`DAILY_QC_MIN` (0.8) and GPP_obs is
   present: the rule of :func:`lue_spie.data.io.good_days`.
2. **Periods.** Weeks are ISO weeks (Monday to Sunday); months and years are calendar ones.
   A week belongs to the year of its Thursday (ISO 8601: the year that holds most of its
   days), so site-years at the weekly scale hold whole weeks.
3. **Period means.** Weekly, monthly and yearly GPP_obs and GPP_sim are the means of the daily
   values over the period's days *with an observation* (GPP_obs present, whatever its QC), the
   same days for both. A missing (NaN) GPP_sim on such a day makes that method's period value
   NaN, so the period drops out for that method only and the observed means never depend on a
   method.
4. **Period QC.** Each QC flag is averaged on its own over the period's *calendar* days (7 for
   a week, the month's days, 365 or 366), counting 0 for a day outside the site's record (or
   outside the grid) and GPP_QC as 0 on a day without GPP_obs, whatever the file says. A
   period is good when *every* flag's mean is above the threshold (the paper: "the average
   quality flags are all higher than"): :data:`PERIOD_QC_MIN` (> 0.7 weekly and monthly, > 0.5
   yearly). So a month with a third of its days missing GPP_obs is not good, and a year with
   half of it outside the record is not good either: a period mean stands for the period.
5. **Predictions outside the record.** Rows of the predictions table on days that the site's
   observations do not have (e.g. a model run on a padded forcing grid) carry nothing to
   compare against and are dropped; :attr:`GPPGrid.n_dropped` counts them. A prediction for a
   site that has no observations, or a duplicated (method, site, date), is an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lue_spie.constants import QC_GOOD_DAY, QC_GOOD_MONTH, QC_GOOD_WEEK, QC_GOOD_YEAR
from lue_spie.data.schema import QC_COLUMNS

__all__ = [
    "DAILY_QC_MIN", "PERIOD_QC_MIN", "SCALES", "GPPGrid", "ScaleSeries", "gpp_grid",
    "aggregate", "all_scales",
]

# Thresholds of SPEC section 4 / paper section 2.3, from lue_spie.constants (one place).

#: A day is good when every QC flag is above this (and GPP_obs is present).
DAILY_QC_MIN: float = QC_GOOD_DAY

#: A period is good when the period mean of every QC flag is above this.
PERIOD_QC_MIN: dict[str, float] = {
    "weekly": QC_GOOD_WEEK, "monthly": QC_GOOD_MONTH, "yearly": QC_GOOD_YEAR,
}

#: The four time scales, finest first.
SCALES: tuple[str, ...] = ("daily", "weekly", "monthly", "yearly")


# --------------------------------------------------------------------------------------------
# The daily grid
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GPPGrid:
    """Observed and predicted daily GPP of several methods on one daily grid.

    Attributes:
        methods: Method names (axis 0 of ``GPP_sim``).
        sites: Site ids (the site axis of every array).
        dates: The common daily grid (consecutive days) from the first to the last day of
            any site's observations.
        GPP_obs: ``(sites, days)`` observed GPP, NaN where missing or outside the record.
        GPP_sim: ``(methods, sites, days)`` predicted GPP, NaN where a method has no
            prediction (a site it does not cover, or a day outside the record).
        qc: ``(flags, sites, days)`` QC fractions in [0, 1], 0 outside the record.
        qc_names: Names of the QC flags (axis 0 of ``qc``).
        n_dropped: Prediction rows dropped because the site has no observation row that day.
    """

    methods: tuple[str, ...]
    sites: tuple[str, ...]
    dates: pd.DatetimeIndex
    GPP_obs: np.ndarray
    GPP_sim: np.ndarray
    qc: np.ndarray
    qc_names: tuple[str, ...] = QC_COLUMNS
    n_dropped: int = 0

    def __post_init__(self) -> None:
        n_m, n_s, n_d = len(self.methods), len(self.sites), len(self.dates)
        expect = {"GPP_obs": (n_s, n_d), "GPP_sim": (n_m, n_s, n_d),
                  "qc": (len(self.qc_names), n_s, n_d)}
        for name, shape in expect.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                raise ValueError(f"GPPGrid.{name}: expected shape {shape} (from methods, sites, "
                                 f"dates, qc_names), got {got}")
        if n_d and not (self.dates.to_series().diff().iloc[1:] == pd.Timedelta(days=1)).all():
            raise ValueError("GPPGrid.dates: expected consecutive days")
        for name, ids in (("methods", self.methods), ("sites", self.sites)):
            if len(set(ids)) != len(ids):
                raise ValueError(f"GPPGrid.{name}: duplicate names")

    @property
    def has_obs(self) -> np.ndarray:
        """``(sites, days)`` True where GPP_obs is present."""
        return np.isfinite(self.GPP_obs)

    @property
    def good(self) -> np.ndarray:
        """``(sites, days)`` good days: every QC flag > :data:`DAILY_QC_MIN`, GPP_obs present."""
        return self.has_obs & (self.qc > DAILY_QC_MIN).all(axis=0)

    @property
    def years(self) -> np.ndarray:
        """Calendar years of the grid, ascending."""
        return np.arange(self.dates[0].year, self.dates[-1].year + 1)

    def select(self, methods: Sequence[str]) -> GPPGrid:
        """The same grid with only ``methods`` (in that order)."""
        unknown = [m for m in methods if m not in self.methods]
        if unknown:
            raise ValueError(f"GPPGrid.select: unknown method(s) {unknown}; have "
                             f"{list(self.methods)}")
        idx = [self.methods.index(m) for m in methods]
        return GPPGrid(tuple(methods), self.sites, self.dates, self.GPP_obs,
                       self.GPP_sim[idx], self.qc, self.qc_names, self.n_dropped)


def _require(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"gpp_grid: {what} must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"gpp_grid: the {what} table lacks column(s) {missing}; expected "
                         f"{list(columns)}")


def _as_dates(values: pd.Series, what: str) -> np.ndarray:
    try:
        dates = values if pd.api.types.is_datetime64_any_dtype(values) \
            else pd.to_datetime(values, format="ISO8601")
    except (ValueError, TypeError) as err:
        raise ValueError(f"gpp_grid: column 'date' of the {what} table is not a date: "
                         f"{err}") from err
    if dates.isna().any():
        raise ValueError(f"gpp_grid: column 'date' of the {what} table has "
                         f"{int(dates.isna().sum())} missing value(s)")
    return dates.dt.normalize().to_numpy(dtype="datetime64[ns]")


def _codes(values: pd.Series, labels: Sequence[str]) -> np.ndarray:
    """Position of each value in ``labels`` (-1 where absent), without converting millions of
    labels to str: factorize first, then look the few distinct values up."""
    codes, uniques = pd.factorize(values)
    lookup = pd.Index(list(labels)).get_indexer(pd.Index(uniques).astype(str))
    return np.append(lookup, -1).astype(np.intp)[codes]


def gpp_grid(site_day: pd.DataFrame, predictions: pd.DataFrame, *,
             methods: Sequence[str] | None = None,
             sites: Sequence[str] | None = None) -> GPPGrid:
    """Dense arrays of observed and predicted daily GPP on a common grid.

    Args:
        site_day: Observations: columns ``site``, ``date``, ``GPP_obs`` and every column of
            :data:`~lue_spie.data.schema.QC_COLUMNS` (e.g. ``load_dataset(...).site_day``).
        predictions: Columns ``method``, ``site``, ``date``, ``GPP_sim``; one row per
            method, site and day.
        methods: Methods to keep, in this order (default: all, in order of appearance).
        sites: Sites to keep, in this order (default: all sites of ``site_day``, in order of
            appearance).

    Returns:
        A :class:`GPPGrid`; the grid spans the first to the last observed day of the kept
        sites.

    Raises:
        ValueError: for a missing column, an unparseable or missing date, an unknown site or
            method, duplicate rows, a prediction for a site without observations, or an empty
            selection.
    """
    _require(site_day, ("site", "date", "GPP_obs", *QC_COLUMNS), "site_day")
    _require(predictions, ("method", "site", "date", "GPP_sim"), "predictions")

    available = [str(s) for s in pd.unique(site_day["site"])]
    if sites is None:
        site_list = available
    else:
        site_list = [str(s) for s in sites]
        unknown = sorted(set(site_list) - set(available))
        if unknown:
            raise ValueError(f"gpp_grid: site(s) {unknown[:10]} not in the site_day table")
        if len(set(site_list)) != len(site_list):
            raise ValueError("gpp_grid: duplicate site ids in `sites`")
    if not site_list:
        raise ValueError("gpp_grid: no sites")

    pred_methods = [str(m) for m in pd.unique(predictions["method"])]
    if methods is None:
        method_list = pred_methods
    else:
        method_list = [str(m) for m in methods]
        unknown = sorted(set(method_list) - set(pred_methods))
        if unknown:
            raise ValueError(f"gpp_grid: method(s) {unknown} have no rows in the predictions "
                             f"table (it has {pred_methods})")
        if len(set(method_list)) != len(method_list):
            raise ValueError("gpp_grid: duplicate names in `methods`")
    if not method_list:
        raise ValueError("gpp_grid: the predictions table has no rows")

    strange = sorted(set(map(str, pd.unique(predictions["site"]))) - set(available))
    if strange:
        raise ValueError(f"gpp_grid: the predictions table has site(s) {strange[:10]} that the "
                         "site_day table does not have")

    obs = site_day[site_day["site"].astype(str).isin(site_list)]
    obs_dates = _as_dates(obs["date"], "site_day")
    day0 = obs_dates.min()
    dates = pd.date_range(day0, obs_dates.max(), freq="D")
    n_s, n_d = len(site_list), len(dates)
    s_code = _codes(obs["site"], site_list)
    d_code = ((obs_dates - day0) // np.timedelta64(1, "D")).astype(np.intp)

    in_record = np.zeros((n_s, n_d), dtype=bool)
    in_record[s_code, d_code] = True
    if int(in_record.sum()) != len(obs):
        raise ValueError(f"gpp_grid: the site_day table has {len(obs) - int(in_record.sum())} "
                         "duplicate (site, date) row(s)")
    GPP_obs = np.full((n_s, n_d), np.nan)
    GPP_obs[s_code, d_code] = obs["GPP_obs"].to_numpy(dtype=np.float64)
    qc = np.zeros((len(QC_COLUMNS), n_s, n_d))
    for q, name in enumerate(QC_COLUMNS):
        qc[q, s_code, d_code] = np.nan_to_num(obs[name].to_numpy(dtype=np.float64), nan=0.0)

    p_m = _codes(predictions["method"], method_list)
    p_s = _codes(predictions["site"], site_list)
    keep = (p_m >= 0) & (p_s >= 0)
    p_m, p_s = p_m[keep], p_s[keep]
    p_dates = _as_dates(predictions["date"][keep], "predictions")
    p_d = (p_dates - day0) // np.timedelta64(1, "D")
    inside = (p_d >= 0) & (p_d < n_d)
    inside[inside] = in_record[p_s[inside], p_d[inside].astype(np.intp)]
    p_m, p_s, p_d = p_m[inside], p_s[inside], p_d[inside].astype(np.intp)
    n_cells = len(method_list) * n_s * n_d
    flat = (p_m * n_s + p_s) * n_d + p_d
    n_dup = len(flat) - int(np.count_nonzero(np.bincount(flat, minlength=n_cells)))
    if n_dup:
        raise ValueError(f"gpp_grid: the predictions table has {n_dup} duplicate "
                         "(method, site, date) row(s)")
    GPP_sim = np.full((len(method_list), n_s, n_d), np.nan)
    GPP_sim.reshape(-1)[flat] = predictions["GPP_sim"].to_numpy(dtype=np.float64)[keep][inside]
    return GPPGrid(tuple(method_list), tuple(site_list), dates, GPP_obs, GPP_sim, qc,
                   tuple(QC_COLUMNS), int((~inside).sum()))


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleSeries:
    """GPP series of every site and method at one time scale.

    Attributes:
        scale: One of :data:`SCALES`.
        methods: Method names (axis 0 of ``GPP_sim``).
        sites: Site ids.
        periods: Start day of each period (the day itself at the daily scale).
        years: The grid's calendar years (the site-year axis used by the likelihood).
        year_index: ``(periods,)`` index into ``years`` of the year each period belongs to.
        GPP_obs: ``(sites, periods)`` observed (mean) GPP, NaN where no day has an observation.
        GPP_sim: ``(methods, sites, periods)`` predicted (mean) GPP over the same days.
        good: ``(sites, periods)`` the period passes the QC rule of its scale.
        n_days: ``(sites, periods)`` days with an observation in the period.
        qc_mean: ``(flags, sites, periods)`` period mean of each QC flag over calendar days.
        qc_names: Names of the QC flags.
        threshold: The QC threshold of this scale.
    """

    scale: str
    methods: tuple[str, ...]
    sites: tuple[str, ...]
    periods: pd.DatetimeIndex
    years: np.ndarray
    year_index: np.ndarray
    GPP_obs: np.ndarray
    GPP_sim: np.ndarray
    good: np.ndarray
    n_days: np.ndarray
    qc_mean: np.ndarray
    qc_names: tuple[str, ...] = field(default=QC_COLUMNS)
    threshold: float = DAILY_QC_MIN

    @property
    def year_starts(self) -> np.ndarray:
        """Index of the first period of each year present (periods are in time order)."""
        return np.flatnonzero(np.r_[True, np.diff(self.year_index) != 0])

    def to_frame(self, good_only: bool = False) -> pd.DataFrame:
        """Long table: method, site, period, year, GPP_obs, GPP_sim, good, n_days."""
        n_m, n_s, n_p = self.GPP_sim.shape
        frame = pd.DataFrame({
            "method": np.repeat(np.array(self.methods, dtype=object), n_s * n_p),
            "site": np.tile(np.repeat(np.array(self.sites, dtype=object), n_p), n_m),
            "period": np.tile(self.periods.to_numpy(), n_m * n_s),
            "year": np.tile(self.years[self.year_index], n_m * n_s),
            "GPP_obs": np.tile(self.GPP_obs.reshape(-1), n_m),
            "GPP_sim": self.GPP_sim.reshape(-1),
            "good": np.tile(self.good.reshape(-1), n_m),
            "n_days": np.tile(self.n_days.reshape(-1), n_m),
        })
        frame = frame[frame["n_days"] > 0]
        if good_only:
            frame = frame[frame["good"]]
        return frame.reset_index(drop=True)


def _period_keys(dates: pd.DatetimeIndex, scale: str):
    """Per-day period key, period start dates, calendar lengths and period years."""
    day = dates.to_numpy(dtype="datetime64[D]")
    if scale == "weekly":
        monday = day - dates.day_of_week.to_numpy()
        key = monday.astype(np.int64)
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        start_dates = pd.DatetimeIndex(monday[starts])
        length = np.full(len(starts), 7.0)
        year = (start_dates + pd.Timedelta(days=3)).year.to_numpy()  # the Thursday's year
    elif scale == "monthly":
        key = dates.year.to_numpy() * 12 + dates.month.to_numpy()
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        start_dates = pd.DatetimeIndex(dates[starts].to_period("M").to_timestamp())
        length = start_dates.days_in_month.to_numpy(dtype=np.float64)
        year = start_dates.year.to_numpy()
    elif scale == "yearly":
        key = dates.year.to_numpy()
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        start_dates = pd.DatetimeIndex(pd.to_datetime(key[starts].astype(str), format="%Y"))
        length = np.where(start_dates.is_leap_year, 366.0, 365.0)
        year = key[starts]
    else:
        raise ValueError(f"unknown time scale {scale!r}; expected one of {SCALES}")
    return starts, start_dates, length, year


def aggregate(grid: GPPGrid, scale: str) -> ScaleSeries:
    """GPP of ``grid`` at one time scale with its good-period mask (module docstring, 1-4).

    Args:
        grid: Daily observations and predictions.
        scale: ``"daily"``, ``"weekly"``, ``"monthly"`` or ``"yearly"``.

    Returns:
        A :class:`ScaleSeries`.
    """
    if scale not in SCALES:
        raise ValueError(f"aggregate: unknown time scale {scale!r}; expected one of {SCALES}")
    grid_years = grid.years
    has_obs = grid.has_obs
    qc = grid.qc
    if "GPP_QC" in grid.qc_names:  # decision 4: no observation, no quality
        qc = qc.copy()
        qc[grid.qc_names.index("GPP_QC")][~has_obs] = 0.0
    if scale == "daily":
        return ScaleSeries(
            scale, grid.methods, grid.sites, grid.dates, grid_years,
            grid.dates.year.to_numpy() - grid_years[0], grid.GPP_obs, grid.GPP_sim, grid.good,
            has_obs.astype(np.int64), qc, grid.qc_names, DAILY_QC_MIN)

    starts, periods, length, year = _period_keys(grid.dates, scale)
    n_days = np.add.reduceat(has_obs, starts, axis=-1).astype(np.int64)
    nn = np.maximum(n_days, 1)
    with np.errstate(invalid="ignore"):
        obs = np.add.reduceat(np.where(has_obs, grid.GPP_obs, 0.0), starts, axis=-1) / nn
        # NaN GPP_sim on an observed day propagates into that method's period mean (decision 3).
        sim = np.add.reduceat(np.where(has_obs, grid.GPP_sim, 0.0), starts, axis=-1) / nn
    some = n_days > 0
    obs = np.where(some, obs, np.nan)
    sim = np.where(some, sim, np.nan)
    qc_mean = np.add.reduceat(qc, starts, axis=-1) / length
    threshold = PERIOD_QC_MIN[scale]
    good = some & (qc_mean > threshold).all(axis=0)
    year_index = np.clip(year, grid_years[0], grid_years[-1]) - grid_years[0]
    return ScaleSeries(scale, grid.methods, grid.sites, periods, grid_years, year_index, obs, sim,
                       good, n_days, qc_mean, grid.qc_names, threshold)


def all_scales(grid: GPPGrid, scales: Sequence[str] = SCALES) -> dict[str, ScaleSeries]:
    """:func:`aggregate` at every scale in ``scales`` (default: all four), keyed by scale."""
    return {scale: aggregate(grid, scale) for scale in scales}


def check_scales(series: Mapping[str, ScaleSeries]) -> None:
    """Raise ValueError unless every series shares the same methods and sites."""
    items = list(series.values())
    if not items:
        raise ValueError("no time scales given")
    for s in items[1:]:
        if s.methods != items[0].methods or s.sites != items[0].sites:
            raise ValueError(f"time scale {s.scale!r} has other methods or sites than "
                             f"{items[0].scale!r}")

"""How real is a dataset? Weather and GPP variability statistics, and a real-site reference.

Computes, for any tidy site-day table (virtual FLUXNET, a folder from ``lue-spie data
fluxnet``, or FULLSET files read directly), the statistics that tell a world that is "too
smooth" from a real one, per site (:func:`site_statistics`) and per class of plant
functional type x Koeppen main group (:func:`group_statistics`), and compares them with a
reference of real FLUXNET2015 sites that ships with the package as numbers
(``lue_spie/data/realism_reference.json``, :func:`load_reference`), so that a user without
FLUXNET files can still compare (:func:`compare`, ``lue-spie data compare``).

Definitions (:data:`STATISTICS`), all on the days where the variable is present, whatever
their QC (the real sites' reference numbers were computed on every day of the FULLSET
files):

- **Calendar.** A 365-day calendar: 29 February shares day 59 with 28 February and later days
  of a leap year move back by one (:func:`calendar_day`).
- **Mean seasonal cycle.** The mean of each calendar day over the years of the record, then a
  centred circular running mean of :data:`SMOOTH_DAYS` (31) days (wrapping over the new year);
  days without any value are left out of the window mean.
- **Day-to-day anomaly sd** (T, VPD, GPP): standard deviation (ddof 1) of the daily value minus
  the smoothed mean cycle of its calendar day. This mixes day-to-day weather with slower
  (weekly to inter-annual) anomalies, as in the issue's table.
- **Seasonal range** (VPD): maximum minus minimum of the smoothed mean cycle.
- **VPD 99th percentile** (linear interpolation) and the **share of days above 2000 Pa**
  (:data:`VPD_HIGH`).
- **Year-to-year sd of GPP**: standard deviation (ddof 1) across calendar years of the annual
  mean GPP; a year counts when GPP is present on at least :data:`MIN_YEAR_COVERAGE` (80 %) of
  its calendar days; fewer than 3 such years give NaN.
- **corr(GPP, T)**: Pearson correlation of daily GPP with daily mean temperature.
- **Seasonal timing** of the smoothed GPP cycle (southern-hemisphere sites shifted by half a
  year, 182 days, so that days are "north-equivalent" and classes mixing hemispheres compare):
  peak day (calendar day of the maximum), peak value, mid-summer to peak ratio (mean over
  1 July - 31 August divided by the peak; low where summer drought cuts GPP), winter floor
  (mean over December - February, gC m-2 d-1).

How close these definitions come to the real sites' reference numbers (computed on the whole
FULLSET_DD files, CH-Lae 2004-2014 and CH-Dav 1997-2014): every statistic of both sites agrees
to the rounding of the issue's table (e.g. CH-Lae VPD anomaly sd 268.3 Pa vs 268, seasonal
range 615.0 vs 615, 99th percentile 1506.8 vs 1507, GPP anomaly sd 2.493 vs 2.49, year-to-year
sd 0.543 vs 0.54, corr 0.663 vs 0.66; CH-Dav 216.2, 307.0, 1105.6, 1.420, 0.287, 0.759 vs 216,
307, 1106, 1.42, 0.29, 0.76). The 365-day calendar matters for the seasonal range: with a
366-day one it comes out 613.9 and 308.1.

The reference (:func:`build_reference`) is the same statistics computed on the real FULLSET
files with :func:`lue_spie.data.fluxnet.read_fluxnet_site`; only two real sites are available
to this project (CH-Lae, mixed forest, Cfb; CH-Dav, subalpine evergreen needleleaf forest, ET,
1639 m), so the reference is two points, not a climatology of FLUXNET: it can tell a world
that is two to three times too smooth, not tune a class it lacks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import uniform_filter1d

from lue_spie.layout import FluxnetFolder

__all__ = [
    "SMOOTH_DAYS",
    "VPD_HIGH",
    "MIN_YEAR_COVERAGE",
    "STATISTICS",
    "Statistic",
    "Reference",
    "calendar_day",
    "mean_cycles",
    "site_statistics",
    "group_statistics",
    "build_reference",
    "write_reference",
    "load_reference",
    "reference_path",
    "compare",
    "Comparison",
    "compare_datasets",
    "format_comparison",
    "TARGET_RATIO_STATISTICS",
    "TARGET_RATIO",
    "TARGET_DIFFERENCE_STATISTICS",
    "TARGET_DIFFERENCE",
    "TARGET_CASES",
    "KNOWN_MISSES",
    "target_check",
]

#: Width [days] of the centred circular running mean that smooths the mean seasonal cycle.
SMOOTH_DAYS = 31
#: VPD threshold [Pa] of the "hot and dry day" share (also the cost's non-ideal VPD threshold).
VPD_HIGH = 2000.0
#: Fraction of a calendar year's days with GPP needed for its annual mean to count.
MIN_YEAR_COVERAGE = 0.8
YEAR_DAYS = 365
#: Half a year [days]: southern-hemisphere sites' seasonal timing is shifted by this.
HALF_YEAR = 182
#: Version of the definitions (stored in the reference; bump when a definition changes).
DEFINITIONS_VERSION = 1
REFERENCE_FILE = "realism_reference.json"
_MIDSUMMER = (181, 243)   # 0-based calendar days of 1 July .. 31 August
_WINTER = np.r_[0:59, 334:365]   # January-February and December


@dataclass(frozen=True)
class Statistic:
    """One realism statistic: column name, label for tables, unit and definition."""

    name: str
    label: str
    unit: str
    definition: str


#: The statistics, in table order (names are the columns of :func:`site_statistics`).
STATISTICS: tuple[Statistic, ...] = (
    Statistic("VPD_anom_sd", "VPD day-to-day anomaly sd", "Pa",
              "sd of daily VPD minus the 31-day smoothed mean seasonal cycle"),
    Statistic("VPD_seasonal_range", "VPD seasonal range of the mean cycle", "Pa",
              "max - min of the 31-day smoothed mean seasonal cycle of VPD"),
    Statistic("VPD_p99", "VPD 99th percentile", "Pa", "99th percentile of daily VPD"),
    Statistic("VPD_frac_high", "share of days with VPD > 2000 Pa", "-",
              "fraction of days with daily mean VPD above 2000 Pa"),
    Statistic("GPP_anom_sd", "GPP anomaly sd (daily minus smoothed mean cycle)",
              "gC m-2 d-1", "sd of daily GPP minus the 31-day smoothed mean seasonal cycle"),
    Statistic("GPP_annual_sd", "sd of annual mean GPP across years", "gC m-2 d-1",
              "sd across calendar years (>= 80 % of days present) of the annual mean GPP"),
    Statistic("corr_GPP_T", "correlation of daily GPP with T", "-",
              "Pearson correlation of daily GPP and daily mean air temperature"),
    Statistic("T_anom_sd", "T day-to-day anomaly sd", "K",
              "sd of daily T minus the 31-day smoothed mean seasonal cycle"),
    Statistic("T_mean", "mean T", "degC", "mean of daily air temperature"),
    Statistic("GPP_mean", "mean GPP", "gC m-2 d-1", "mean of daily GPP"),
    Statistic("GPP_peak", "peak of the GPP mean cycle", "gC m-2 d-1",
              "maximum of the 31-day smoothed mean seasonal cycle of GPP"),
    Statistic("GPP_peak_day", "peak day of the GPP mean cycle", "day of year",
              "calendar day of that maximum (southern sites shifted by 182 days)"),
    Statistic("GPP_midsummer_ratio", "mid-summer to peak ratio of GPP", "-",
              "mean of the smoothed GPP cycle over 1 July - 31 August divided by its peak "
              "(north-equivalent)"),
    Statistic("GPP_winter_floor", "winter floor of GPP", "gC m-2 d-1",
              "mean of the smoothed GPP cycle over December - February (north-equivalent)"),
)
STAT_NAMES: tuple[str, ...] = tuple(s.name for s in STATISTICS)
_BY_NAME = {s.name: s for s in STATISTICS}


def calendar_day(dates: Iterable[Any] | pd.DatetimeIndex | pd.Series) -> np.ndarray:
    """0-based day of a 365-day calendar (29 February -> 28 February's day 58)."""
    d = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates)))
    doy = d.day_of_year.to_numpy() - 1
    shift = d.is_leap_year & (doy >= 59)
    return (doy - shift).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Per-site computation (vectorised over sites)
# --------------------------------------------------------------------------------------------
def _smoothed_cycle(code: np.ndarray, day: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
    """(n, 365) smoothed mean seasonal cycle per site code (NaN where a site has no value)."""
    ok = np.isfinite(x)
    idx = code[ok] * YEAR_DAYS + day[ok]
    sums = np.bincount(idx, weights=x[ok], minlength=n * YEAR_DAYS).reshape(n, YEAR_DAYS)
    counts = np.bincount(idx, minlength=n * YEAR_DAYS).reshape(n, YEAR_DAYS)
    have = counts > 0
    clim = np.where(have, sums / np.maximum(counts, 1), 0.0)
    num = uniform_filter1d(clim, SMOOTH_DAYS, axis=1, mode="wrap")
    den = uniform_filter1d(have.astype(np.float64), SMOOTH_DAYS, axis=1, mode="wrap")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-12, num / np.where(den > 1e-12, den, 1.0), np.nan)


def _group_sd(code: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
    ok = np.isfinite(x)
    c, v = code[ok], x[ok]
    cnt = np.bincount(c, minlength=n).astype(np.float64)
    s1 = np.bincount(c, weights=v, minlength=n)
    mean = s1 / np.maximum(cnt, 1)
    s2 = np.bincount(c, weights=(v - mean[c]) ** 2, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 1, np.sqrt(s2 / np.maximum(cnt - 1, 1)), np.nan)


def _group_mean(code: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
    ok = np.isfinite(x)
    cnt = np.bincount(code[ok], minlength=n)
    s1 = np.bincount(code[ok], weights=x[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, s1 / np.maximum(cnt, 1), np.nan)


def _group_corr(code: np.ndarray, x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    ok = np.isfinite(x) & np.isfinite(y)
    c, a, b = code[ok], x[ok], y[ok]
    cnt = np.bincount(c, minlength=n).astype(np.float64)
    ma = np.bincount(c, weights=a, minlength=n) / np.maximum(cnt, 1)
    mb = np.bincount(c, weights=b, minlength=n) / np.maximum(cnt, 1)
    da, db = a - ma[c], b - mb[c]
    sab = np.bincount(c, weights=da * db, minlength=n)
    saa = np.bincount(c, weights=da * da, minlength=n)
    sbb = np.bincount(c, weights=db * db, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sab / np.sqrt(saa * sbb)
    return np.where((cnt > 2) & (saa > 0) & (sbb > 0), r, np.nan)


def _site_codes(site_day: pd.DataFrame, sites: pd.DataFrame | None) -> tuple[np.ndarray, list]:
    ids = (list(sites["site"]) if sites is not None
           else list(pd.unique(site_day["site"])))
    cat = pd.Categorical(site_day["site"], categories=ids)
    if (cat.codes < 0).any():
        missing = sorted(set(site_day["site"][cat.codes < 0]))[:5]
        raise ValueError(f"site_day has site(s) {missing} that the sites table lacks")
    return np.asarray(cat.codes, dtype=np.int64), ids


def _south(sites: pd.DataFrame | None, ids: Sequence[str]) -> np.ndarray:
    if sites is None or "lat" not in sites.columns:
        return np.zeros(len(ids), dtype=bool)
    lat = sites.set_index("site").loc[list(ids), "lat"].to_numpy(dtype=np.float64)
    return np.nan_to_num(lat, nan=0.0) < 0


def _north_equivalent(cycle: np.ndarray, south: np.ndarray) -> np.ndarray:
    out = cycle.copy()
    out[south] = np.roll(cycle[south], -HALF_YEAR, axis=1)
    return out


def mean_cycles(site_day: pd.DataFrame, columns: Sequence[str] = ("GPP_obs", "VPD", "T"),
                sites: pd.DataFrame | None = None, *,
                north_equivalent: bool = True) -> dict[str, pd.DataFrame]:
    """Smoothed mean seasonal cycles per site (see the module docstring).

    Args:
        site_day: Tidy site-day table (``site``, ``date`` and the columns).
        columns: Variables to compute.
        sites: Optional sites table (site order; ``lat`` for the southern-hemisphere shift).
        north_equivalent: Shift southern-hemisphere sites by half a year.

    Returns:
        ``{column: DataFrame(index=site, columns=calendar days 1..365)}``.
    """
    code, ids = _site_codes(site_day, sites)
    day = calendar_day(site_day["date"])
    south = _south(sites, ids) if north_equivalent else np.zeros(len(ids), bool)
    out = {}
    for c in columns:
        cyc = _smoothed_cycle(code, day, site_day[c].to_numpy(dtype=np.float64), len(ids))
        cyc = _north_equivalent(cyc, south)
        out[c] = pd.DataFrame(cyc, index=pd.Index(ids, name="site"),
                              columns=pd.RangeIndex(1, YEAR_DAYS + 1, name="day"))
    return out


def site_statistics(site_day: pd.DataFrame, sites: pd.DataFrame | None = None
                    ) -> pd.DataFrame:
    """The realism statistics of every site (:data:`STATISTICS`).

    Args:
        site_day: Tidy site-day table with ``site``, ``date``, ``T``, ``VPD``, ``GPP_obs``
            (any dataset: :func:`lue_spie.data.load_dataset(...).site_day
            <lue_spie.data.io.load_dataset>`).
        sites: Optional sites table: gives the site order, the classes (``PFT``, ``koeppen``,
            ``koeppen_main`` are copied) and ``lat`` (southern sites' timing shifted).

    Returns:
        One row per site (index ``site``): class columns when ``sites`` is given,
        ``n_days``, ``n_years`` (years counted for the year-to-year sd) and the statistics.
    """
    missing = [c for c in ("site", "date", "T", "VPD", "GPP_obs") if c not in site_day.columns]
    if missing:
        raise ValueError(f"site_day: missing column(s) {missing} for the realism statistics")
    code, ids = _site_codes(site_day, sites)
    n = len(ids)
    dates = pd.DatetimeIndex(site_day["date"])
    day = calendar_day(dates)
    south = _south(sites, ids)
    cols = {k: site_day[k].to_numpy(dtype=np.float64) for k in ("T", "VPD", "GPP_obs")}
    out: dict[str, np.ndarray] = {}
    cycles = {}
    for k, x in cols.items():
        cyc = _smoothed_cycle(code, day, x, n)
        cycles[k] = cyc
        anom = x - cyc[code, day]
        out[f"{'GPP' if k == 'GPP_obs' else k}_anom_sd"] = _group_sd(code, anom, n)
    vpd = cols["VPD"]
    out["VPD_seasonal_range"] = np.nanmax(cycles["VPD"], axis=1) - np.nanmin(cycles["VPD"],
                                                                              axis=1)
    frame = pd.DataFrame({"code": code, "VPD": vpd})
    out["VPD_p99"] = (frame.dropna().groupby("code")["VPD"].quantile(0.99)
                      .reindex(range(n)).to_numpy())
    with np.errstate(invalid="ignore"):
        high = np.where(np.isfinite(vpd), (vpd > VPD_HIGH).astype(np.float64), np.nan)
    out["VPD_frac_high"] = _group_mean(code, high, n)
    gpp = cols["GPP_obs"]
    # Year-to-year: annual means of years with enough days.
    year = dates.year.to_numpy()
    y0 = int(year.min())
    ykey = code * (int(year.max()) - y0 + 1) + (year - y0)
    ny = n * (int(year.max()) - y0 + 1)
    ok = np.isfinite(gpp)
    ysum = np.bincount(ykey[ok], weights=gpp[ok], minlength=ny)
    ycnt = np.bincount(ykey[ok], minlength=ny)
    years = np.arange(ny) % (int(year.max()) - y0 + 1) + y0
    ylen = np.where(pd.DatetimeIndex(pd.to_datetime(years.astype(str) + "-01-01"))
                    .is_leap_year, 366, 365)
    full = ycnt >= MIN_YEAR_COVERAGE * ylen
    ysite = np.arange(ny) // (int(year.max()) - y0 + 1)
    ymean = np.where(full, ysum / np.maximum(ycnt, 1), np.nan)
    n_years = np.bincount(ysite[full], minlength=n)
    ann_sd = _group_sd(ysite, ymean, n)
    out["GPP_annual_sd"] = np.where(n_years >= 3, ann_sd, np.nan)
    out["corr_GPP_T"] = _group_corr(code, gpp, cols["T"], n)
    out["T_mean"] = _group_mean(code, cols["T"], n)
    out["GPP_mean"] = _group_mean(code, gpp, n)
    g = _north_equivalent(cycles["GPP_obs"], south)
    has = np.isfinite(g).any(axis=1)
    gz = np.where(np.isfinite(g), g, -np.inf)
    peak = np.where(has, gz.max(axis=1), np.nan)
    out["GPP_peak"] = peak
    out["GPP_peak_day"] = np.where(has, gz.argmax(axis=1) + 1.0, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        mid = np.nanmean(g[:, _MIDSUMMER[0]:_MIDSUMMER[1]], axis=1) if n else np.zeros(0)
        out["GPP_midsummer_ratio"] = np.where(peak > 0, mid / peak, np.nan)
        out["GPP_winter_floor"] = np.nanmean(g[:, _WINTER], axis=1) if n else np.zeros(0)
    table = pd.DataFrame(index=pd.Index(ids, name="site"))
    if sites is not None:
        s = sites.set_index("site").loc[ids]
        for c in ("PFT", "koeppen", "koeppen_main"):
            if c in s.columns:
                table[c] = s[c].astype(str).to_numpy()
    table["n_days"] = np.bincount(code, minlength=n)
    table["n_years"] = n_years
    for name in STAT_NAMES:
        table[name] = out[name]
    return table


def group_statistics(per_site: pd.DataFrame, by: Sequence[str] = ("PFT", "koeppen_main"),
                     *, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> pd.DataFrame:
    """Quantiles over sites of each statistic per class (default PFT x Koeppen main group).

    Returns:
        A table indexed by the class columns and ``q`` (the quantile), with ``n_sites`` and
        the statistics as columns; ``q = 0.5`` rows are the class medians.
    """
    missing = [c for c in by if c not in per_site.columns]
    if missing:
        raise ValueError(f"group_statistics: column(s) {missing} missing (pass the sites "
                         "table to site_statistics)")
    groups = per_site.groupby(list(by), sort=True)
    parts = []
    for q in quantiles:
        t = groups[list(STAT_NAMES)].quantile(q)
        t["n_sites"] = groups.size()
        t["q"] = q
        parts.append(t.reset_index())
    out = pd.concat(parts, ignore_index=True)
    return out.set_index([*by, "q"]).sort_index()[["n_sites", *STAT_NAMES]]


# --------------------------------------------------------------------------------------------
# The real-site reference
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """Realism statistics of real sites, shipped as numbers.

    Attributes:
        sites: One row per real site (site, PFT, koeppen, koeppen_main, lat, elevation,
            first_year, last_year, n_days, n_years and the statistics).
        cycles: ``{variable: DataFrame(site x calendar day 1..365)}`` smoothed mean cycles
            (north-equivalent) of GPP_obs, VPD and T.
        compare_with: Classes ``(PFT, koeppen_main)`` each real site is compared with.
        meta: Source, licence, files, definitions.
    """

    sites: pd.DataFrame
    cycles: dict[str, pd.DataFrame]
    compare_with: dict[str, list[tuple[str, str]]]
    meta: dict[str, Any]


def _default_compare_with(pft: str, main: str) -> list[tuple[str, str]]:
    """Same PFT and main group; sites of group E also against D (a subalpine forest such as
    CH-Dav shares the long cold winter of the boreal D climates)."""
    return [(pft, main)] + ([(pft, "D")] if main == "E" else [])


def reference_path() -> Path:
    """The reference shipped with the package (``lue_spie/data/realism_reference.json``)."""
    return Path(__file__).resolve().parent / REFERENCE_FILE


def build_reference(src: str | os.PathLike, sites_csv: str | os.PathLike | None = None,
                    *, site_ids: Sequence[str] | None = None) -> Reference:
    """The realism statistics of real FLUXNET2015 sites, from their FULLSET daily files.

    Every day of each file is used (the file's years), read with
    :func:`lue_spie.data.fluxnet.read_fluxnet_site` (no FAPAR needed).

    Args:
        src: Folder with ``FLX_<SITE>_FLUXNET2015_FULLSET_DD_*.csv`` files.
        sites_csv: Site table (default ``src/sites.csv``; see
            :func:`lue_spie.data.fluxnet.read_sites_csv`).
        site_ids: Sites to use (default: every file).
    """
    from lue_spie.data import fluxnet
    from lue_spie.store import sha256_file

    src = Path(src)
    files = fluxnet.find_fluxnet_files(src)
    meta_sites = fluxnet.read_sites_csv(Path(sites_csv) if sites_csv
                                        else FluxnetFolder(src).sites)
    wanted = sorted(files) if site_ids is None else list(site_ids)
    unknown = [s for s in wanted if s not in files or s not in set(meta_sites["site"])]
    if unknown:
        raise ValueError(f"{src}: no FULLSET_DD file or site-table row for {unknown}")
    m = meta_sites.set_index("site")
    tables, file_meta = [], []
    for s in wanted:
        f = files[s]
        t, _ = fluxnet.read_fluxnet_site(f.path, site=s, lat=float(m.at[s, "lat"]),
                                         elevation=float(np.nan_to_num(m.at[s, "elevation"])),
                                         whc=float(m.at[s, "whc"]))
        tables.append(t)
        file_meta.append({"site": s, "file": f.path.name, "sha256": sha256_file(f.path),
                          "first_day": str(t["date"].min().date()),
                          "last_day": str(t["date"].max().date()), "n_days": len(t)})
    site_day = pd.concat(tables, ignore_index=True)
    sites = m.loc[wanted].reset_index()
    stats = site_statistics(site_day, sites)
    first = site_day.groupby("site")["date"].min().dt.year
    last = site_day.groupby("site")["date"].max().dt.year
    table = sites[["site", "PFT", "koeppen", "koeppen_main", "lat", "elevation"]].copy()
    table["first_year"] = table["site"].map(first).astype(int)
    table["last_year"] = table["site"].map(last).astype(int)
    table = table.merge(stats.drop(columns=["PFT", "koeppen", "koeppen_main"]).reset_index(),
                        on="site")
    cycles = mean_cycles(site_day, ("GPP_obs", "VPD", "T"), sites)
    compare_with = {r.site: _default_compare_with(r.PFT, r.koeppen_main)
                    for r in table.itertuples()}
    meta = {
        "title": "Realism statistics of real FLUXNET2015 sites (lue_spie.data.realism)",
        "source": "FLUXNET2015 FULLSET daily files (Pastorello et al. 2020, Scientific Data 7, "
                  "225, doi:10.1038/s41597-020-0534-3), every day of each file",
        "licence": "FLUXNET2015 Tier 1 data: CC-BY-4.0 (cite Pastorello et al. 2020 and the "
                   "site teams). Only derived statistics are stored here, no data.",
        "files": file_meta,
        "definitions_version": DEFINITIONS_VERSION,
        "definitions": {s.name: {"label": s.label, "unit": s.unit, "definition": s.definition}
                        for s in STATISTICS},
        "smooth_days": SMOOTH_DAYS, "vpd_high": VPD_HIGH,
        "min_year_coverage": MIN_YEAR_COVERAGE,
    }
    return Reference(table, cycles, compare_with, meta)


def _round(x: float, digits: int = 5) -> float | None:
    if x is None or not np.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def write_reference(ref: Reference, path: str | os.PathLike, *,
                    note: str | None = None) -> Path:
    """Write a :class:`Reference` as JSON (numbers rounded to 5 significant digits, cycles to
    4), atomically."""
    from lue_spie.store import atomic_write_text

    rows = []
    for r in ref.sites.to_dict("records"):
        rows.append({k: (_round(v) if isinstance(v, float) else
                         (int(v) if isinstance(v, (int, np.integer)) else v))
                     for k, v in r.items()})
    doc = {**ref.meta}
    if note:
        doc["note"] = note
    doc["compare_with"] = {s: [list(c) for c in cs] for s, cs in ref.compare_with.items()}
    doc["sites"] = rows
    doc["mean_cycles"] = {
        s: {v: [_round(x, 4) for x in ref.cycles[v].loc[s].to_numpy()] for v in ref.cycles}
        for s in ref.sites["site"]}
    return atomic_write_text(path, json.dumps(doc, indent=1) + "\n")


def load_reference(path: str | os.PathLike | None = None) -> Reference:
    """Read a reference written by :func:`write_reference` (default: the shipped one).

    Raises:
        FileNotFoundError: when the file is missing.
        ValueError: when it is not valid JSON or lacks a statistic.
    """
    path = Path(path) if path is not None else reference_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: realism reference not found")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    for key in ("sites", "mean_cycles", "compare_with"):
        if key not in doc:
            raise ValueError(f"{path}: missing key {key!r} (not a realism reference)")
    sites = pd.DataFrame(doc["sites"])
    missing = [c for c in ("site", "PFT", "koeppen_main", *STAT_NAMES) if c not in sites]
    if missing:
        raise ValueError(f"{path}: site rows lack {missing}")
    for c in STAT_NAMES:
        sites[c] = pd.to_numeric(sites[c]).astype(np.float64)
    cycles = {}
    for v in ("GPP_obs", "VPD", "T"):
        cycles[v] = pd.DataFrame(
            [np.asarray(doc["mean_cycles"][s][v], dtype=np.float64) for s in sites["site"]],
            index=pd.Index(sites["site"], name="site"),
            columns=pd.RangeIndex(1, YEAR_DAYS + 1, name="day"))
    compare_with = {s: [tuple(c) for c in cs] for s, cs in doc["compare_with"].items()}
    meta = {k: v for k, v in doc.items() if k not in ("sites", "mean_cycles", "compare_with")}
    return Reference(sites, cycles, compare_with, meta)


# --------------------------------------------------------------------------------------------
# Side by side
# --------------------------------------------------------------------------------------------
def compare(per_site: Mapping[str, pd.DataFrame], reference: Reference | None = None,
            statistics: Sequence[str] = STAT_NAMES) -> pd.DataFrame:
    """Real sites next to the matching classes of one or more datasets.

    Args:
        per_site: ``{dataset label: site_statistics(site_day, sites)}`` (with class columns).
        reference: The real sites (default: :func:`load_reference`).
        statistics: Which statistics to list.

    Returns:
        Long table, one row per (real site, class, statistic): ``reference_site``, ``class``
        (``"MF C"``), ``statistic``, ``label``, ``unit``, ``real``, and for each dataset
        ``<label>`` (class median over sites), ``<label> q10``, ``<label> q90``,
        ``<label> n_sites`` and ``<label> ratio`` (median / real).
    """
    ref = reference if reference is not None else load_reference()
    rows = []
    for r in ref.sites.itertuples(index=False):
        for pft, main in ref.compare_with.get(r.site, [(r.PFT, r.koeppen_main)]):
            for stat in statistics:
                real = float(getattr(r, stat))
                row: dict[str, Any] = {
                    "reference_site": r.site, "class": f"{pft} {main}", "statistic": stat,
                    "label": _BY_NAME[stat].label, "unit": _BY_NAME[stat].unit, "real": real}
                for label, table in per_site.items():
                    sel = table[(table["PFT"] == pft) & (table["koeppen_main"] == main)][stat]
                    sel = sel.dropna()
                    med = float(sel.median()) if len(sel) else np.nan
                    row[label] = med
                    row[f"{label} q10"] = float(sel.quantile(0.1)) if len(sel) else np.nan
                    row[f"{label} q90"] = float(sel.quantile(0.9)) if len(sel) else np.nan
                    row[f"{label} n_sites"] = int(len(sel))
                    row[f"{label} ratio"] = med / real if real not in (0.0,) else np.nan
                rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare_datasets`.

    Attributes:
        table: The long comparison table (:func:`compare`).
        per_site: ``{label: site_statistics}`` of each dataset.
        cycles: ``{label: mean_cycles}`` (GPP_obs, VPD, T) of each dataset.
        reference: The real sites compared with.
    """

    table: pd.DataFrame
    per_site: dict[str, pd.DataFrame]
    cycles: dict[str, dict[str, pd.DataFrame]]
    reference: Reference


def _labels(paths: Sequence[Path]) -> list[str]:
    names = [p.name or str(p) for p in paths]
    return [n if names.count(n) == 1 else f"{n}#{i + 1}" for i, n in enumerate(names)]


def compare_datasets(datasets: Sequence[str | os.PathLike] | Mapping[str, Any],
                     reference: Reference | None = None) -> Comparison:
    """Realism statistics of dataset folders (or loaded datasets) next to the real sites.

    Args:
        datasets: Dataset folders (labelled by folder name) or ``{label: Dataset}``.
        reference: The real sites (default: the shipped reference).
    """
    from lue_spie.data.io import load_dataset

    if isinstance(datasets, Mapping):
        loaded = dict(datasets)
    else:
        paths = [Path(p) for p in datasets]
        loaded = {label: load_dataset(p) for label, p in zip(_labels(paths), paths,
                                                                strict=True)}
    ref = reference if reference is not None else load_reference()
    per_site, cycles = {}, {}
    for label, ds in loaded.items():
        per_site[label] = site_statistics(ds.site_day, ds.sites)
        cycles[label] = mean_cycles(ds.site_day, ("GPP_obs", "VPD", "T"), ds.sites)
    return Comparison(compare(per_site, ref), per_site, cycles, ref)


def format_comparison(table: pd.DataFrame, labels: Sequence[str]) -> str:
    """The comparison as a text table: one block per real site and class, one line per
    statistic with the real value and each dataset's class median (number of sites)."""
    lines = []

    def fmt(x: float) -> str:
        if not np.isfinite(x):
            return "-"
        a = abs(x)
        if a >= 100:
            return f"{x:.0f}"
        if a >= 10:
            return f"{x:.1f}"
        return f"{x:.4f}" if 0 < a < 0.01 else f"{x:.3g}"

    width = max(len(s.label) for s in STATISTICS)
    unit_w = max(len(s.unit) for s in STATISTICS)
    for (site, cls), block in table.groupby(["reference_site", "class"], sort=False):
        n = {lab: int(block[f"{lab} n_sites"].max()) for lab in labels}
        lines.append(f"{site} (real) vs {cls}")
        lines.append(f"  {'statistic':{width}s} {'unit':{unit_w}s} {'real':>8s} " + " ".join(
            f"{(lab + f' (n={n[lab]})')[-22:]:>22s}" for lab in labels))
        for _, row in block.iterrows():
            lines.append(f"  {row['label']:{width}s} {row['unit']:{unit_w}s} "
                         f"{fmt(row['real']):>8s} "
                         + " ".join(f"{fmt(row[lab]):>22s}" for lab in labels))
        lines.append("")
    return "\n".join(lines)


#: Statistics held to a ratio of the real site's value (virtual class median / real).
TARGET_RATIO_STATISTICS: tuple[str, ...] = ("VPD_anom_sd", "VPD_seasonal_range", "GPP_anom_sd",
                                            "GPP_annual_sd")
#: Largest accepted factor between a virtual class median and the real site, either way.
TARGET_RATIO: float = 1.5
#: Statistics held to a difference from the real site's value.
TARGET_DIFFERENCE_STATISTICS: tuple[str, ...] = ("corr_GPP_T",)
#: Largest accepted difference of the correlation of daily GPP with temperature.
TARGET_DIFFERENCE: float = 0.1
#: The (real site, virtual class) pairs the targets compare: each real site with the class of
#: its own plant type and climate, and CH-Dav also with the boreal forests of group D.
TARGET_CASES: tuple[tuple[str, str], ...] = (("CH-Lae", "MF C"), ("CH-Dav", "ENF E"),
                                             ("CH-Dav", "ENF D"))
#: Targets missed on purpose, with the reason: the boreal and hemiboreal forests of group D
#: have warmer summers than subalpine CH-Dav, so a larger VPD cycle, as real boreal sites do;
#: CH-Dav's own class is the subalpine ENF E.
KNOWN_MISSES: Mapping[tuple[str, str, str], str] = {
    ("CH-Dav", "ENF D", "VPD_seasonal_range"):
        "boreal and hemiboreal D summers are warmer than CH-Dav's subalpine ones, and the "
        "daily temperature cycle alone gives them a larger summer VPD, as at real boreal "
        "sites; CH-Dav's matching class is ENF E",
}


def target_check(table: pd.DataFrame, label: str, *, min_sites: int = 3) -> pd.DataFrame:
    """The realism targets (:data:`TARGET_CASES`) checked on one dataset of a comparison.

    Args:
        table: The long comparison table (:func:`compare`).
        label: The dataset's label in it.
        min_sites: Fewest virtual sites of a class for its median to count.

    Returns:
        One row per (real site, class, statistic): ``real``, ``virtual`` (class median),
        ``n_sites``, ``measure`` (``"ratio"`` or ``"difference"``), ``value`` (virtual / real or
        virtual - real), ``met`` (True, False, or NA with fewer than ``min_sites`` sites) and
        ``known_miss`` (True where :data:`KNOWN_MISSES` explains a miss).
    """
    rows = []
    for site, cls in TARGET_CASES:
        for stat in (*TARGET_RATIO_STATISTICS, *TARGET_DIFFERENCE_STATISTICS):
            hit = table[(table["reference_site"] == site) & (table["class"] == cls)
                        & (table["statistic"] == stat)]
            if hit.empty:
                continue
            r = hit.iloc[0]
            real, virtual, n = float(r["real"]), float(r[label]), int(r[f"{label} n_sites"])
            if stat in TARGET_DIFFERENCE_STATISTICS:
                measure, value = "difference", virtual - real
                ok = abs(value) <= TARGET_DIFFERENCE
            else:
                measure, value = "ratio", virtual / real if real else np.nan
                ok = 1 / TARGET_RATIO <= value <= TARGET_RATIO
            rows.append({"reference_site": site, "class": cls, "statistic": stat,
                         "real": real, "virtual": virtual, "n_sites": n, "measure": measure,
                         "value": value, "met": ok if n >= min_sites else pd.NA,
                         "known_miss": (site, cls, stat) in KNOWN_MISSES})
    out = pd.DataFrame(rows)
    if len(out):
        out["met"] = out["met"].astype("boolean")
    return out

"""Real FLUXNET reader: daily flux files + a FAPAR table + site metadata -> tidy tables.

Inputs (see ``data_manifest.yml``):

- FLUXNET daily flux files in one folder, one per site, in any of the formats of
  :mod:`lue_spie.data.fluxnet_formats` (all in FLUXNET2015 conventions: TIMESTAMP as YYYYMMDD,
  -9999 = missing, FLUXNET units and variable names), detected from the file name and confirmed
  by the header:

  - FLUXNET2015 FULLSET ``FLX_<SITE>_FLUXNET2015_FULLSET_DD_<y0>-<y1>_<v>.csv`` (Pastorello et
    al. 2020, Scientific Data 7:225, Table 1; fluxnet.org "FULLSET Data Product" page);
  - FLUXNET2015 SUBSET ``FLX_<SITE>_FLUXNET2015_SUBSET_DD_<y0>-<y1>_<v>.csv`` (same paper;
    fluxnet.org "SUBSET Data Product" page; the ONEFlux code's ``VARIABLE_LIST_SUB``): it has
    every variable this reader uses;
  - AmeriFlux FLUXNET ``AMF_<SITE>_FLUXNET_<FULLSET|SUBSET>_DD_<y0>-<y1>_<v>.csv`` made with
    ONEFlux ("AmeriFlux FLUXNET data product README", 2021-11-16);
  - ICOS ETC L2 FLUXNET ``ICOSETC_<SITE>_FLUXNET_DD_L2.csv`` (``_INTERIM_L2`` in interim
    releases; ICOS Carbon Portal, "Ecosystem final quality (L2) product in ETC-Archive format").

  The column names are the same in all of them, so the tidy tables are the same for the same
  data whatever the format; the sources, the naming variants and what was checked are detailed
  in :mod:`lue_spie.data.fluxnet_formats`. Another daily FLUXNET-family file (e.g. the 2026
  ONEFlux ``..._FLUXNET_FLUXMET_DD_...`` naming), or a header without the daily TIMESTAMP column,
  is a one-line error naming the file and the accepted formats with their patterns; files of
  other resolutions (HH, HR, WW, MM, YY), the ERAI/ERA5 and AUX products and any other file in
  the folder are left alone. The provenance notes name the format of a file that is not a
  FLUXNET2015 FULLSET file.
- a FAPAR table (CSV: ``SITE_ID, date, FAPAR`` and optionally ``FAPAR_MODIS_obs`` or
  ``FAPAR_QC``), e.g. MODIS MCD15A3H retrievals interpolated to days;
- a site table (CSV: ``SITE_ID, lon, lat, elv, classid, koeppen_code, whc``);
- optionally a features table (CSV: ``SITE_ID`` + any of the feature columns of
  :mod:`lue_spie.data.schema`) and an NDVI table (CSV: ``SITE_ID, date, NDVI``).

Conversions and decisions (each also recorded in the provenance ``settings.notes``):

- ``T`` = TA_F [degC]; ``VPD`` = VPD_F x 100 (hPa -> Pa); ``P`` = P_F; ``PA`` = PA_F [kPa]
  (missing -> barometric formula from the site elevation); ``SW_IN`` = SW_IN_F [W m-2] (small
  negative night-time offsets clipped to 0).
- ``PAR`` [MJ m-2 d-1] = 0.48 x SW_IN x 0.0864, always from SW_IN: PPFD_IN is missing for long
  periods at many sites (all of 1997-2004 at CH-Dav) and quantum sensors drift, whereas SW_IN_F is
  gap-filled; 0.48 is the PAR fraction of global radiation also used by the virtual FLUXNET.
- ``PPFD`` [umol m-2 s-1] = PPFD_IN where measured, else estimated as SW_IN x 0.48 x 4.57
  (4.57 umol J-1 for PAR, McCree 1972); the count of estimated days is recorded.
- ``SW_IN_POT`` from the file when present, else from latitude and day of year
  (:func:`lue_spie.data.solar.sw_in_pot`); ``CI`` = 1 - SW_IN/SW_IN_POT clipped to [0, 1].
- ``CO2`` = CO2_F_MDS [ppm]; days without it (or with a value outside [250, 800] ppm) take the
  NOAA GML Mauna Loa annual mean of their year (:data:`CO2_ANNUAL_MLO`) with ``CO2_QC`` =
  :data:`CO2_FILLED_QC` (0.85): lowered, but above the good-day threshold of 0.8, because the
  annual background mean is an adequate driver for the model's weak CO2 response and whole
  early years (e.g. CH-Lae 2004) would otherwise be lost.
- ``W``: when SWC_F_MDS_1 covers at least ``min_swc_coverage`` (80 %) of a site's selected
  days, W is SWC scaled by the 1st-99th percentile range observed over the site's whole file
  (independent of ``years``) and clipped to [0, 1], with ``W_QC`` from SWC_F_MDS_1_QC (0 on
  missing days). Otherwise W comes from the soil-water bucket
  (:func:`lue_spie.data.bucket.bucket_W`) driven by P_F and a Priestley-Taylor PET (net
  radiation from SW_IN_F, LW_IN_F, TA_F; Makkink when LW_IN_F is absent) with the site's
  ``whc``, run over the whole file (spun up on its first year), with ``W_QC`` =
  :data:`W_BUCKET_QC` (0.85) so the days stay usable; a site switches source as a whole, never
  day by day, to avoid jumps in W.
- QC fractions: TA_F_QC, VPD_F_QC, SW_IN_F_QC, CO2_F_MDS_QC, SWC_F_MDS_1_QC when present;
  ``GPP_QC`` = NEE_VUT_REF_QC (fraction of good half-hours). When a QC column is absent from the
  file, the gap-filled ``_F`` variable gets QC 1 on days with a value (0 where missing), and the
  provenance notes say so.
- ``GPP_obs`` = GPP_NT_VUT_REF [gC m-2 d-1] (night-time partitioning, VUT reference); a few
  days outside [-10, 40] (at most 1 % of the record, or 3 days) are set missing and noted;
  more than that is taken as a unit problem and is an error.
- ``FAPAR`` from the FAPAR table; ``FAPAR_QC`` = 1 on days with a retrieval
  (``FAPAR_MODIS_obs`` non-empty) and :data:`FAPAR_INTERPOLATED_QC` (0.85) on interpolated days
  (MCD15A3H is a 4-day composite: 3 of 4 days are interpolated, but they are close to a
  retrieval); a ``FAPAR_QC`` column in the table is used as is.
- ``NDVI`` from an NDVI table when given; otherwise estimated from FAPAR with the linear
  FAPAR-NDVI relation of Myneni & Williams (1994), FAPAR = 1.1638 NDVI - 0.1426, inverted:
  NDVI = (FAPAR + 0.1426) / 1.1638.
- ``TMIN``, ``TMAX``: not in FLUXNET daily files; left missing (NaN).
- Site-days kept: the intersection of the flux record and the FAPAR coverage (and ``years``).
  A site with no FAPAR at all is an error naming the site and the FAPAR file, unless
  ``missing_fapar="skip"`` drops it (recorded). A constant FAPAR is deliberately not offered:
  it would let the model fit the seasonal cycle of GPP with the wrong driver.
- Sites: IGBP class -> PFT (the 11 FLUXNET classes are the PFTs; other IGBP classes are an
  error), Koeppen code must be one of the 14 types; ``first_year``/``last_year`` are those of
  the kept days; BioClim (BIO1-19), aridity and VIF features missing from the features table
  are computed from the site's own record (``record_features``; BIO2, BIO3, BIO5-7 need
  TMIN/TMAX and stay NaN), soil and deposition features missing from it are NaN.

Malformed input raises ``ValueError`` naming the file, column (and line) and the problem; the
output folder is written only after everything has been read and validated. A file whose rows
stop before (or start after) the years of its name, e.g. ``..._2007-2012_...`` with rows only
to 2008, is read with a :class:`TruncatedFileWarning` naming the file and the missing years
(and a note in the provenance).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lue_spie import store
from lue_spie.constants import FLUXNET_MISSING, HPA_TO_PA, PAR_FRACTION, UMOL_PER_J_PAR
from lue_spie.data import bucket, schema, solar
from lue_spie.data.fluxnet_formats import (
    FLUXNET2015_FULLSET,
    FluxFormatError,
    FluxnetFormat,
    accepted_formats,
    detect_format,
    format_of,
    looks_like_daily_flux_file,
    unknown_format_message,
)
from lue_spie.params import koeppen_main_group
from lue_spie.progress import progress_bar

#: FLUXNET2015 FULLSET daily file name pattern (the first of the accepted
#: :data:`~lue_spie.data.fluxnet_formats.FORMATS`).
FILE_PATTERN = FLUXNET2015_FULLSET.pattern

#: NOAA GML Mauna Loa annual mean CO2 [ppm], 1980-2025 (Lan, Tans & Thoning, NOAA Global
#: Monitoring Laboratory, https://gml.noaa.gov/webdata/ccgg/trends/co2/co2_annmean_mlo.txt,
#: file created 2026-03-05; values before 1974 there come from Scripps). Used to fill days
#: without site CO2.
CO2_ANNUAL_MLO: dict[int, float] = {
    1980: 338.76, 1981: 340.12, 1982: 341.48, 1983: 343.15, 1984: 344.87, 1985: 346.35,
    1986: 347.61, 1987: 349.31, 1988: 351.69, 1989: 353.20, 1990: 354.45, 1991: 355.70,
    1992: 356.54, 1993: 357.21, 1994: 358.96, 1995: 360.97, 1996: 362.74, 1997: 363.88,
    1998: 366.84, 1999: 368.54, 2000: 369.71, 2001: 371.32, 2002: 373.45, 2003: 375.98,
    2004: 377.70, 2005: 379.98, 2006: 382.09, 2007: 384.02, 2008: 385.83, 2009: 387.64,
    2010: 390.10, 2011: 391.85, 2012: 394.06, 2013: 396.74, 2014: 398.81, 2015: 401.01,
    2016: 404.41, 2017: 406.76, 2018: 408.72, 2019: 411.65, 2020: 414.21, 2021: 416.41,
    2022: 418.53, 2023: 421.08, 2024: 424.61, 2025: 427.35,
}

CO2_FILLED_QC = 0.85
W_BUCKET_QC = 0.85
FAPAR_INTERPOLATED_QC = 0.85
#: Myneni & Williams (1994): FAPAR = NDVI_SLOPE * NDVI + NDVI_OFFSET.
NDVI_SLOPE = 1.1638
NDVI_OFFSET = -0.1426

REQUIRED_FLUX_COLUMNS = ("TIMESTAMP", "TA_F", "SW_IN_F", "VPD_F", "P_F", "GPP_NT_VUT_REF")
OPTIONAL_FLUX_COLUMNS = (
    "TA_F_QC", "SW_IN_F_QC", "VPD_F_QC", "PA_F", "LW_IN_F", "CO2_F_MDS", "CO2_F_MDS_QC",
    "PPFD_IN", "SWC_F_MDS_1", "SWC_F_MDS_1_QC", "SW_IN_POT", "NEE_VUT_REF_QC",
)
REQUIRED_SITE_COLUMNS = ("SITE_ID", "lon", "lat", "elv", "classid", "koeppen_code", "whc")

class TruncatedFileWarning(UserWarning):
    """A flux file's rows cover less than the years its name announces (cut off mid-record,
    e.g. an interrupted download or extraction)."""


def check_file_years(path: str | os.PathLike, dates: pd.DatetimeIndex) -> str | None:
    """Warn (:class:`TruncatedFileWarning`) when the rows of a flux file named
    ``..._<y0>-<y1>_<v>.csv`` start after 1 January y0 or stop before 31 December y1.

    Returns:
        The warning's message, or None when the rows cover the years of the name (or the name
        follows no accepted format, or its format's names carry no years, as ICOS ETC L2
        names do not).
    """
    path = Path(path)
    found = format_of(path.name)
    m = found[1] if found is not None else None
    if m is None or m.groupdict().get("y0") is None or len(dates) == 0:
        return None
    y0, y1 = int(m["y0"]), int(m["y1"])
    first, last = pd.Timestamp(dates.min()), pd.Timestamp(dates.max())
    start, end = pd.Timestamp(f"{y0}-01-01"), pd.Timestamp(f"{y1}-12-31")
    if first <= start and last >= end:
        return None
    present = set(np.unique(dates.year))
    missing = [y for y in range(y0, y1 + 1) if y not in present]
    parts = []
    if first > start:
        parts.append(f"start on {first.date()}")
    if last < end:
        parts.append(f"stop on {last.date()}")
    span = (f"missing years {_year_ranges(missing)}" if missing
            else "no whole year missing, but part of a year is")
    msg = (f"{path}: the file name announces {y0}-{y1} but its rows {' and '.join(parts)} "
           f"({span}); "
           "the file looks cut off mid-record (an interrupted download or extraction?): only "
           "the days present are read")
    warnings.warn(msg, TruncatedFileWarning, stacklevel=3)
    return msg


def _year_ranges(years: Sequence[int]) -> str:
    """[2009, 2010, 2011, 2013] -> '2009-2011, 2013'."""
    out, run = [], [years[0]]
    for y in years[1:]:
        if y == run[-1] + 1:
            run.append(y)
        else:
            out.append(run)
            run = [y]
    out.append(run)
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in out)


#: IGBP classes that are PFTs of the contract (the 11 FLUXNET classes).
IGBP_TO_PFT: dict[str, str] = {p: p for p in schema.PFTS}


def annual_co2(years: Iterable[int] | np.ndarray) -> np.ndarray:
    """NOAA GML Mauna Loa annual mean CO2 [ppm] for each year (1980-2025).

    Raises:
        ValueError: for a year outside the embedded record.
    """
    years = np.asarray(list(years) if not isinstance(years, np.ndarray) else years, dtype=int)
    lo, hi = min(CO2_ANNUAL_MLO), max(CO2_ANNUAL_MLO)
    bad = (years < lo) | (years > hi)
    if bad.any():
        raise ValueError(f"annual CO2: year {int(years[bad][0])} outside the embedded NOAA GML "
                         f"record {lo}-{hi}")
    table = np.array([CO2_ANNUAL_MLO[y] for y in range(lo, hi + 1)])
    return table[years - lo]


def pressure_from_elevation(elevation: float) -> float:
    """Standard-atmosphere air pressure [kPa] at ``elevation`` [m] (FAO-56 eq. 7)."""
    return 101.3 * ((293.0 - 0.0065 * elevation) / 293.0) ** 5.26


# --------------------------------------------------------------------------------------------
# Generic CSV helpers
# --------------------------------------------------------------------------------------------

def _read_csv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot parse {what} as CSV ({err})") from err
    df.columns = [c.strip() for c in df.columns]
    if df.empty:
        raise ValueError(f"{path}: {what} has no rows")
    return df


def _require(df: pd.DataFrame, columns: Iterable[str], path: Path, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: {what} lacks required column(s) {missing}; found "
                         f"{list(df.columns)[:25]}")


def _numeric(df: pd.DataFrame, column: str, path: Path,
             missing_value: float | None = FLUXNET_MISSING) -> np.ndarray:
    """Column as float with '' / NA / ``missing_value`` -> NaN; error on a non-numeric cell."""
    raw = df[column].astype(str).str.strip()
    empty = raw.isin(["", "NA", "NaN", "nan", "N/A"])
    values = pd.to_numeric(raw.where(~empty), errors="coerce").to_numpy(dtype=float, copy=True)
    bad = np.isnan(values) & ~empty.to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: column {column!r}: non-numeric value {raw.iloc[i]!r} at line "
                         f"{i + 2} ({int(bad.sum())} such cells)")
    if missing_value is not None:
        values[np.isclose(values, missing_value)] = np.nan
    return values


def _dates(df: pd.DataFrame, column: str, path: Path, fmt: str | None) -> pd.DatetimeIndex:
    raw = df[column].astype(str).str.strip()
    parsed = pd.to_datetime(raw, format=fmt, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        expected = "YYYYMMDD" if fmt == "%Y%m%d" else "YYYY-MM-DD"
        raise ValueError(f"{path}: column {column!r}: cannot read date {raw.iloc[i]!r} at line "
                         f"{i + 2} (expected {expected})")
    return pd.DatetimeIndex(parsed).astype("datetime64[ns]")


def _check_daily_order(dates: pd.DatetimeIndex, path: Path, column: str,
                       groups: np.ndarray | None = None) -> None:
    d = dates.to_numpy()
    same = np.ones(len(d) - 1, dtype=bool) if groups is None else groups[1:] == groups[:-1]
    step = d[1:] - d[:-1]
    dup = same & (step == np.timedelta64(0, "ns"))
    if dup.any():
        i = int(np.flatnonzero(dup)[0]) + 1
        raise ValueError(f"{path}: column {column!r}: duplicate day {pd.Timestamp(d[i]).date()} "
                         f"at line {i + 2} ({int(dup.sum())} duplicates)")
    back = same & (step < np.timedelta64(0, "ns"))
    if back.any():
        i = int(np.flatnonzero(back)[0]) + 1
        raise ValueError(f"{path}: column {column!r}: dates out of order at line {i + 2} "
                         f"({pd.Timestamp(d[i]).date()} after {pd.Timestamp(d[i - 1]).date()})")


def _range_error(path: Path, column: str, values: np.ndarray, lo: float, hi: float,
                 unit: str, hint: str = "") -> None:
    with np.errstate(invalid="ignore"):
        bad = (values < lo) | (values > hi)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: column {column!r}: {int(bad.sum())} values outside the "
                         f"plausible range [{lo}, {hi}] {unit}, first at line {i + 2}: "
                         f"{values[i]:g}{hint}")


# --------------------------------------------------------------------------------------------
# Site metadata, features, FAPAR, NDVI tables
# --------------------------------------------------------------------------------------------

def read_sites_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Site metadata -> DataFrame(site, PFT, koeppen, koeppen_main, lat, lon, elevation, whc).

    Raises:
        ValueError: for a missing column, a non-numeric cell, an unknown IGBP class or Koeppen
            type, a duplicate site, or an implausible coordinate.
    """
    path = Path(path)
    df = _read_csv(path, "site table")
    _require(df, REQUIRED_SITE_COLUMNS, path, "site table")
    site = df["SITE_ID"].str.strip()
    dup = site.duplicated().to_numpy()
    if dup.any():
        raise ValueError(f"{path}: column 'SITE_ID': duplicate site {site[dup].iloc[0]!r}")
    out = pd.DataFrame({"site": site})
    classid = df["classid"].str.strip().str.upper()
    bad = ~classid.isin(list(IGBP_TO_PFT))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{path}: column 'classid': IGBP class {classid.iloc[i]!r} (site "
                         f"{site.iloc[i]}, line {i + 2}) is not one of the PFTs "
                         f"{list(schema.PFTS)}")
    out["PFT"] = classid.map(IGBP_TO_PFT)
    koeppen = df["koeppen_code"].str.strip()
    bad = ~koeppen.isin(list(schema.KOEPPEN_TYPES))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{path}: column 'koeppen_code': {koeppen.iloc[i]!r} (site "
                         f"{site.iloc[i]}, line {i + 2}) is not one of "
                         f"{list(schema.KOEPPEN_TYPES)}")
    out["koeppen"] = koeppen
    out["koeppen_main"] = koeppen_main_group(list(koeppen))
    for src, dst, lo, hi, unit in (("lat", "lat", -90, 90, "degrees"),
                                   ("lon", "lon", -180, 180, "degrees"),
                                   ("elv", "elevation", -500, 6000, "m"),
                                   ("whc", "whc", 1, 2000, "mm")):
        values = _numeric(df, src, path)
        _range_error(path, src, values, lo, hi, unit)
        if src != "elv" and np.isnan(values).any():
            i = int(np.flatnonzero(np.isnan(values))[0])
            raise ValueError(f"{path}: column {src!r}: missing value for site {site.iloc[i]} "
                             f"(line {i + 2})")
        out[dst] = values
    return out


def read_features_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Site features: SITE_ID + any of ``schema.FEATURE_COLUMNS`` -> DataFrame(site, ...)."""
    path = Path(path)
    df = _read_csv(path, "feature table")
    _require(df, ["SITE_ID"], path, "feature table")
    unknown = [c for c in df.columns if c != "SITE_ID" and c not in schema.FEATURE_COLUMNS]
    if unknown:
        raise ValueError(f"{path}: unknown feature column(s) {unknown}; expected names from "
                         f"{list(schema.FEATURE_COLUMNS[:5])} ... (see lue_spie.data.schema)")
    out = pd.DataFrame({"site": df["SITE_ID"].str.strip()})
    if out["site"].duplicated().any():
        raise ValueError(f"{path}: column 'SITE_ID': duplicate site "
                         f"{out['site'][out['site'].duplicated()].iloc[0]!r}")
    for c in df.columns:
        if c != "SITE_ID":
            out[c] = _numeric(df, c, path)
    return out


def _read_daily_table(path: Path, value: str, what: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse SITE_ID, date and ``value`` in file order (so errors give true line numbers);
    rows may come in any order, but a (site, date) pair may appear only once."""
    df = _read_csv(path, what)
    _require(df, ["SITE_ID", "date", value], path, what)
    site = df["SITE_ID"].str.strip().to_numpy()
    dates = _dates(df, "date", path, fmt="%Y-%m-%d")
    out = pd.DataFrame({"site": site, "date": dates})
    out[value] = _numeric(df, value, path)
    order = np.lexsort((dates.to_numpy(), site))
    s_sorted, d_sorted = site[order], dates.to_numpy()[order]
    dup = (s_sorted[1:] == s_sorted[:-1]) & (d_sorted[1:] == d_sorted[:-1])
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first, again = sorted((int(order[i]), int(order[i + 1])))
        raise ValueError(f"{path}: column 'date': duplicate day "
                         f"{pd.Timestamp(d_sorted[i]).date()} for site {s_sorted[i]} at lines "
                         f"{first + 2} and {again + 2} ({int(dup.sum())} duplicates)")
    return out, df


def read_fapar_csv(path: str | os.PathLike) -> pd.DataFrame:
    """FAPAR table -> DataFrame(site, date, FAPAR, FAPAR_QC); rows without FAPAR dropped."""
    path = Path(path)
    out, raw = _read_daily_table(path, "FAPAR", "FAPAR table")
    fapar = out["FAPAR"].to_numpy()
    if np.nanmax(fapar, initial=0.0) > 1.0 and np.nanmax(fapar) <= 100.0:
        raise ValueError(f"{path}: column 'FAPAR': values up to {np.nanmax(fapar):g} look like "
                         "percent or MODIS integer units; expected a fraction in [0, 1]")
    _range_error(path, "FAPAR", fapar, 0.0, 1.0, "(fraction)")
    if "FAPAR_QC" in raw.columns:
        qc = _numeric(raw, "FAPAR_QC", path)
        _range_error(path, "FAPAR_QC", qc, 0.0, 1.0, "(fraction)")
        out["FAPAR_QC"] = np.nan_to_num(qc, nan=0.0)
    elif "FAPAR_MODIS_obs" in raw.columns:
        obs = _numeric(raw, "FAPAR_MODIS_obs", path)
        out["FAPAR_QC"] = np.where(np.isnan(obs), FAPAR_INTERPOLATED_QC, 1.0)
    else:
        out["FAPAR_QC"] = 1.0
    return out[out["FAPAR"].notna()].reset_index(drop=True)


def read_ndvi_csv(path: str | os.PathLike) -> pd.DataFrame:
    """NDVI table -> DataFrame(site, date, NDVI); rows without NDVI dropped."""
    path = Path(path)
    out, _ = _read_daily_table(path, "NDVI", "NDVI table")
    _range_error(path, "NDVI", out["NDVI"].to_numpy(), -1.0, 1.0, "(-)")
    return out[out["NDVI"].notna()].reset_index(drop=True)


def ndvi_from_fapar(fapar: np.ndarray) -> np.ndarray:
    """NDVI estimated from FAPAR by inverting Myneni & Williams (1994), clipped to [-1, 1]."""
    return np.clip((np.asarray(fapar, dtype=float) - NDVI_OFFSET) / NDVI_SLOPE, -1.0, 1.0)


# --------------------------------------------------------------------------------------------
# FLUXNET daily flux files (formats: lue_spie.data.fluxnet_formats)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FluxFile:
    """One daily flux file found in the source folder, with its detected format.

    ``first_year`` and ``last_year`` are those of the file name (None for formats whose names
    carry no years, as ICOS ETC L2 names).
    """

    site: str
    first_year: int | None
    last_year: int | None
    version: str
    path: Path
    format: FluxnetFormat = FLUXNET2015_FULLSET


def _short(fmt: FluxnetFormat) -> str:
    """How messages name files of a format (``FULLSET_DD`` for the FLUXNET2015 FULLSET)."""
    return "FULLSET_DD" if fmt is FLUXNET2015_FULLSET else f"{fmt.name} daily"


def find_fluxnet_files(src: str | os.PathLike) -> dict[str, FluxFile]:
    """Daily flux files in ``src`` by site id, each with the format detected from its name.

    Every file whose name matches an accepted format
    (:data:`~lue_spie.data.fluxnet_formats.FORMATS`) is taken; the header is checked when the
    file is read (:func:`read_fluxnet_site`). Files of other resolutions, the auxiliary
    products and files that are no FLUXNET files (the site and FAPAR tables) are left alone.

    Raises:
        FileNotFoundError: when ``src`` is missing or holds no file of an accepted format.
        ValueError: when a site has more than one file (whatever their formats), or a daily
            FLUXNET-family file matches no accepted format (one line naming the file and the
            accepted formats with their patterns).
    """
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: FLUXNET source folder not found")
    files: dict[str, FluxFile] = {}
    for p in sorted(src.iterdir()):
        found = format_of(p.name)
        if found is None:
            if p.is_file() and looks_like_daily_flux_file(p.name):
                raise FluxFormatError(unknown_format_message(
                    p, "a daily FLUXNET file whose name matches no accepted format"))
            continue
        fmt, m = found
        site = m["site"]
        if site in files:
            other = files[site]
            kind = (_short(fmt) if other.format is fmt
                    else f"daily flux ({other.format.name} and {fmt.name})")
            raise ValueError(f"{src}: two {kind} files for site {site}: "
                             f"{other.path.name} and {p.name}; keep one")
        y0, y1 = m.groupdict().get("y0"), m.groupdict().get("y1")
        files[site] = FluxFile(site, int(y0) if y0 else None, int(y1) if y1 else None,
                               m["version"], p, fmt)
    if not files:
        raise FileNotFoundError(f"{src}: no FLUXNET2015 FULLSET daily files "
                                f"({FLUXNET2015_FULLSET.file_pattern}) nor files of another "
                                f"accepted format; accepted: {accepted_formats()}")
    return files


def _qc_or_default(raw: pd.DataFrame, qc_col: str, value: np.ndarray, path: Path,
                   notes: list[str], label: str) -> np.ndarray:
    """QC fraction from ``qc_col`` (0 where the value is missing), else 1 where present."""
    if qc_col in raw.columns:
        qc = _numeric(raw, qc_col, path)
        _range_error(path, qc_col, qc, 0.0, 1.0, "(fraction)")
        qc = np.nan_to_num(qc, nan=0.0)
    else:
        qc = np.ones_like(value)
        notes.append(f"{qc_col} absent: {label} QC = 1 on days with a value (gap-filled _F)")
    return np.where(np.isnan(value), 0.0, qc)


def read_fluxnet_site(
    path: str | os.PathLike,
    *,
    site: str,
    lat: float,
    elevation: float,
    whc: float,
    years: Sequence[int] | None = None,
    min_swc_coverage: float = 0.8,
    file_format: FluxnetFormat | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Read one daily flux file into site-day columns (all but FAPAR, FAPAR_QC and NDVI).

    Args:
        path: The CSV file, in one of the accepted formats
            (:data:`~lue_spie.data.fluxnet_formats.FORMATS`).
        site: Site id (written to the ``site`` column).
        lat: Latitude [deg N] for SW_IN_POT.
        elevation: Elevation [m] for missing air pressure.
        whc: Water holding capacity [mm] of the soil-water bucket.
        years: Keep only these calendar years (default: all).
        min_swc_coverage: Fraction of days with SWC_F_MDS_1 needed to use it for W.
        file_format: The file's format (default: detected from its name).

    Returns:
        The table (sorted by date) and a list of notes on the choices made.

    Raises:
        ValueError: naming the file, column and problem (file name or header of no accepted
            format, missing column, non-numeric cell, implausible magnitude suggesting wrong
            units, all-missing GPP, duplicate or out-of-order days).

    Warns:
        TruncatedFileWarning: when the rows cover less than the years of the file name
            (:func:`check_file_years`); the days present are read and the notes say so.
    """
    path = Path(path)
    fmt = file_format if file_format is not None else detect_format(path)[0]
    raw = _read_csv(path, "FLUXNET file")
    fmt.check_header(list(raw.columns), path)
    raw.columns = fmt.reader_columns(list(raw.columns))
    _require(raw, REQUIRED_FLUX_COLUMNS, path, "FLUXNET file")
    notes: list[str] = []
    if fmt is not FLUXNET2015_FULLSET:
        notes.append(f"flux file format: {fmt.name} ({fmt.file_pattern})")
    dates = _dates(raw, "TIMESTAMP", path, fmt="%Y%m%d")
    _check_daily_order(dates, path, "TIMESTAMP")
    truncated = check_file_years(path, dates)
    if truncated:
        notes.append(truncated.split(": ", 1)[1])
    # Everything is computed on the whole file (so the SWC scaling and the bucket's spin-up do
    # not depend on the years asked for); the years are selected at the end.
    keep = np.ones(len(dates), dtype=bool)
    if years is not None:
        keep = np.isin(dates.year, list(years))
        if not keep.any():
            raise ValueError(f"{path}: no days in years {sorted(years)} (the file covers "
                             f"{dates.year.min()}-{dates.year.max()})")

    def col(name: str) -> np.ndarray:
        return _numeric(raw, name, path, missing_value=fmt.missing_value)

    def median(x: np.ndarray) -> float:
        return float(np.nanmedian(x)) if np.isfinite(x).any() else float("nan")

    # Temperature [degC]
    T = col("TA_F")
    if median(T) > 150.0:
        raise ValueError(f"{path}: column 'TA_F': median {median(T):.1f} looks like Kelvin; "
                         "FLUXNET TA_F is in degC")
    _range_error(path, "TA_F", T, -60.0, 50.0, "degC")
    # VPD [hPa -> Pa]
    vpd_hpa = col("VPD_F")
    vpd_p99 = np.nanpercentile(vpd_hpa, 99) if np.isfinite(vpd_hpa).any() else 0.0
    if vpd_p99 > 100.0:
        raise ValueError(f"{path}: column 'VPD_F': 99th percentile "
                         f"{vpd_p99:.1f} looks like Pa; FLUXNET VPD_F is "
                         "in hPa (daily means rarely exceed 60 hPa)")
    _range_error(path, "VPD_F", vpd_hpa, -1.0, 100.0, "hPa")
    VPD = np.clip(vpd_hpa, 0.0, None) * HPA_TO_PA
    # Shortwave [W m-2]
    sw = col("SW_IN_F")
    _range_error(path, "SW_IN_F", sw, -20.0, 500.0, "W m-2 (daily mean)",
                 hint=" (MJ m-2 d-1 or half-hourly sums are not FULLSET_DD units)")
    SW_IN = np.clip(sw, 0.0, None)
    if "SW_IN_POT" in raw.columns:
        SW_IN_POT = col("SW_IN_POT")
        _range_error(path, "SW_IN_POT", SW_IN_POT, 0.0, 600.0, "W m-2")
        notes.append("SW_IN_POT from the file")
    else:
        SW_IN_POT = solar.sw_in_pot_dates(lat, dates)
        notes.append("SW_IN_POT absent: computed from latitude and day of year")
    CI = solar.cloudiness_index(SW_IN, SW_IN_POT)
    PAR = PAR_FRACTION * SW_IN * solar.W_TO_MJ_PER_DAY
    # Precipitation [mm d-1]
    P = col("P_F")
    _range_error(path, "P_F", P, 0.0, 2000.0, "mm d-1")
    # Air pressure [kPa]
    if "PA_F" in raw.columns:
        PA = col("PA_F")
        if median(PA) > 200.0:
            raise ValueError(f"{path}: column 'PA_F': median {median(PA):.1f} looks like hPa "
                             "or Pa; FLUXNET PA_F is in kPa")
        _range_error(path, "PA_F", PA, 40.0, 110.0, "kPa")
        n_fill = int(np.isnan(PA).sum())
        if n_fill:
            PA = np.where(np.isnan(PA), pressure_from_elevation(elevation), PA)
            notes.append(f"PA_F missing on {n_fill} days: filled from elevation")
    else:
        PA = np.full(len(dates), pressure_from_elevation(elevation))
        notes.append("PA_F absent: air pressure from elevation (FAO-56 eq. 7)")
    # PPFD [umol m-2 s-1]
    ppfd_est = SW_IN * PAR_FRACTION * UMOL_PER_J_PAR
    if "PPFD_IN" in raw.columns:
        ppfd = col("PPFD_IN")
        _range_error(path, "PPFD_IN", ppfd, -20.0, 1200.0, "umol m-2 s-1")
        ppfd = np.clip(ppfd, 0.0, None)
        n_est = int(np.isnan(ppfd).sum())
        PPFD = np.where(np.isnan(ppfd), ppfd_est, ppfd)
    else:
        n_est = len(dates)
        PPFD = ppfd_est
    if n_est:
        notes.append(f"PPFD estimated from SW_IN x {PAR_FRACTION} x {UMOL_PER_J_PAR} on "
                     f"{n_est} days")
    # CO2 [ppm]
    year = dates.year.to_numpy()
    co2_fill = annual_co2(year)
    if "CO2_F_MDS" in raw.columns:
        co2 = col("CO2_F_MDS")
        if np.isfinite(co2).any() and not 250.0 <= median(co2) <= 800.0:
            raise ValueError(f"{path}: column 'CO2_F_MDS': median {median(co2):.1f} is not a "
                             "plausible CO2 mole fraction in umol mol-1 (ppm)")
        with np.errstate(invalid="ignore"):
            outlier = (co2 < 250.0) | (co2 > 800.0)
        if outlier.any():
            notes.append(f"CO2_F_MDS outside [250, 800] ppm on {int(outlier.sum())} days: "
                         "treated as missing")
            co2 = np.where(outlier, np.nan, co2)
        co2_qc = _qc_or_default(raw, "CO2_F_MDS_QC", co2, path, notes, "CO2")
    else:
        co2 = np.full(len(dates), np.nan)
        co2_qc = np.zeros(len(dates))
    filled = np.isnan(co2)
    if filled.any():
        notes.append(f"CO2 missing on {int(filled.sum())} days: NOAA GML Mauna Loa annual mean "
                     f"with CO2_QC = {CO2_FILLED_QC}")
    CO2 = np.where(filled, co2_fill, co2)
    CO2_QC = np.where(filled, CO2_FILLED_QC, co2_qc)
    # GPP [gC m-2 d-1]
    GPP = col("GPP_NT_VUT_REF")
    if not np.isfinite(GPP[keep]).any():
        raise ValueError(f"{path}: column 'GPP_NT_VUT_REF': all values missing"
                         + (f" in years {sorted(years)}" if years is not None else ""))
    # A few implausible days are data problems (set missing, noted); many mean wrong units.
    with np.errstate(invalid="ignore"):
        outside = (GPP < -10.0) | (GPP > 40.0)
    if outside.sum() > max(3, 0.01 * np.isfinite(GPP).sum()):
        _range_error(path, "GPP_NT_VUT_REF", GPP, -10.0, 40.0, "gC m-2 d-1",
                     hint=" (umol m-2 s-1 or half-hourly units are not FULLSET_DD units)")
    if outside.any():
        GPP = np.where(outside, np.nan, GPP)
        notes.append(f"GPP_NT_VUT_REF outside [-10, 40] gC m-2 d-1 on {int(outside.sum())} "
                     "days: treated as missing")
    if "NEE_VUT_REF_QC" in raw.columns:
        GPP_QC = _qc_or_default(raw, "NEE_VUT_REF_QC", GPP, path, notes, "GPP")
    else:
        GPP_QC = np.where(np.isnan(GPP), 0.0, 1.0)
        notes.append("NEE_VUT_REF_QC absent: GPP QC = 1 on days with a value")
    # Soil water W [0-1]
    swc = col("SWC_F_MDS_1") if "SWC_F_MDS_1" in raw.columns else np.full(len(dates), np.nan)
    _range_error(path, "SWC_F_MDS_1", swc, 0.0, 100.0, "% (volumetric)")
    coverage = float(np.isfinite(swc[keep]).mean())
    lo_hi = (np.nanpercentile(swc, [1, 99]) if np.isfinite(swc).sum() > 10
             else np.array([np.nan, np.nan]))
    if coverage >= min_swc_coverage and lo_hi[1] > lo_hi[0]:
        W = np.clip((swc - lo_hi[0]) / (lo_hi[1] - lo_hi[0]), 0.0, 1.0)
        W_QC = _qc_or_default(raw, "SWC_F_MDS_1_QC", swc, path, notes, "W")
        notes.append(f"W from SWC_F_MDS_1 ({coverage:.0%} of the selected days) scaled by its "
                     f"1st-99th percentiles over the whole file, {lo_hi[0]:.2f}-{lo_hi[1]:.2f} %")
    else:
        # The bucket needs complete drivers: fill short gaps linearly / P with 0.
        from lue_spie.data.io import fill_gaps

        T_f = fill_gaps(T)
        sw_f = fill_gaps(SW_IN)
        lw = fill_gaps(col("LW_IN_F")) if "LW_IN_F" in raw.columns else None
        if lw is not None and np.isnan(lw).all():
            lw = None
        pet = bucket.pet(sw_f, T_f, PA, LW_IN=lw)
        P_f = np.nan_to_num(P, nan=0.0)
        if np.isnan(pet).any():
            raise ValueError(f"{path}: cannot compute PET for the soil-water bucket: TA_F or "
                             "SW_IN_F has no values")
        W = bucket.bucket_W(P_f, pet, whc)
        W_QC = np.full(len(dates), W_BUCKET_QC)
        notes.append(f"W from the soil-water bucket (SWC_F_MDS_1 on {coverage:.0%} of days < "
                     f"{min_swc_coverage:.0%}; PET "
                     f"{'Priestley-Taylor with LW_IN_F' if lw is not None else 'Makkink'}, "
                     f"whc {whc:g} mm) with W_QC = {W_BUCKET_QC}")

    T_QC = _qc_or_default(raw, "TA_F_QC", T, path, notes, "T")
    VPD_QC = _qc_or_default(raw, "VPD_F_QC", VPD, path, notes, "VPD")
    SW_IN_QC = _qc_or_default(raw, "SW_IN_F_QC", SW_IN, path, notes, "SW_IN")
    out = pd.DataFrame({
        "site": site, "date": dates, "T": T, "VPD": VPD, "CO2": CO2, "W": W, "PAR": PAR,
        "CI": CI, "GPP_obs": GPP, "SW_IN": SW_IN, "SW_IN_POT": SW_IN_POT, "P": P, "PA": PA,
        "PPFD": PPFD, "TMIN": np.nan, "TMAX": np.nan, "T_QC": T_QC, "VPD_QC": VPD_QC,
        "SW_IN_QC": SW_IN_QC, "CO2_QC": CO2_QC, "W_QC": W_QC, "GPP_QC": GPP_QC,
    })
    if years is not None:
        notes.append(f"day counts in these notes refer to the whole file ({len(out)} days); "
                     f"{int(keep.sum())} days in years {min(years)}-{max(years)} kept")
    return out.loc[keep].reset_index(drop=True), notes


# --------------------------------------------------------------------------------------------
# Whole dataset
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FluxnetTables:
    """Result of :func:`read_fluxnet_dataset`: validated tables and notes per site."""

    site_day: pd.DataFrame
    sites: pd.DataFrame
    notes: dict[str, list[str]]
    inputs: dict[str, Path]


def read_fluxnet_dataset(
    src: str | os.PathLike,
    fapar: str | os.PathLike,
    sites_csv: str | os.PathLike,
    *,
    features: str | os.PathLike | None = None,
    ndvi: str | os.PathLike | None = None,
    years: Sequence[int] | None = None,
    site_ids: Sequence[str] | None = None,
    missing_fapar: str = "error",
    min_swc_coverage: float = 0.8,
    record_features: bool = True,
    progress: bool | Callable[[Iterable[Any]], Iterable[Any]] = False,
) -> FluxnetTables:
    """Read daily flux files plus FAPAR and site tables into validated tidy tables.

    Args:
        src: Folder with the daily flux files (FLUXNET2015 FULLSET or SUBSET, AmeriFlux
            FLUXNET, ICOS ETC L2 FLUXNET: :func:`find_fluxnet_files`).
        fapar: FAPAR table (CSV).
        sites_csv: Site metadata table (CSV).
        features: Optional feature table (CSV); absent features are NaN.
        ndvi: Optional NDVI table (CSV); without it NDVI is estimated from FAPAR.
        years: Calendar years to keep (default: all).
        site_ids: Sites to read (default: every site with a file).
        missing_fapar: ``"error"`` (default) or ``"skip"`` for sites without FAPAR.
        min_swc_coverage: See :func:`read_fluxnet_site`.
        record_features: Fill the BioClim (BIO1-19), aridity (AI1, AI2) and vegetation-index
            (VIF1-11) features that the feature table does not give from the site's own flux
            record (:func:`lue_spie.data.features.site_features_from_site_day`); a value in
            the feature table always wins. Record-based values describe the years read, not
            the 1970-2000 WorldClim normals, and BIO2, BIO3, BIO5-7 need daily TMIN/TMAX,
            which FLUXNET daily files lack, so they stay NaN. Each site's provenance notes list
            what was filled.
        progress: Show a tqdm progress bar over sites.

    Raises:
        FileNotFoundError: for a missing input.
        ValueError: for malformed input (naming the file, column and problem), unknown site
            ids, sites missing from the site table or without FAPAR.
    """
    if missing_fapar not in ("error", "skip"):
        raise ValueError(f"missing_fapar must be 'error' or 'skip', got {missing_fapar!r}")
    files = find_fluxnet_files(src)
    meta = read_sites_csv(sites_csv)
    fapar_path = Path(fapar)
    fapar_df = read_fapar_csv(fapar_path)
    ndvi_df = read_ndvi_csv(ndvi) if ndvi is not None else None
    feat_df = read_features_csv(features) if features is not None else None
    inputs: dict[str, Path] = {"fapar": fapar_path, "sites": Path(sites_csv)}
    if features is not None:
        inputs["features"] = Path(features)
    if ndvi is not None:
        inputs["ndvi"] = Path(ndvi)

    if site_ids is None:
        wanted = sorted(files)
    else:
        wanted = [str(s) for s in site_ids]
        unknown = [s for s in wanted if s not in files]
        if unknown:
            raise ValueError(f"{src}: no FULLSET_DD file for site(s) {unknown} (nor a daily file "
                             f"of another accepted format); files exist for {sorted(files)[:20]}")
    not_in_meta = [s for s in wanted if s not in set(meta["site"])]
    if not_in_meta:
        raise ValueError(f"{sites_csv}: no row for site(s) {not_in_meta} (column 'SITE_ID')")
    fapar_sites = set(fapar_df["site"])
    no_fapar = [s for s in wanted if s not in fapar_sites]
    notes: dict[str, list[str]] = {}
    if no_fapar:
        if missing_fapar == "error":
            raise ValueError(f"{fapar_path}: no FAPAR for site(s) {no_fapar}; FAPAR is required "
                             "(it never is in FLUXNET files: supply MODIS/Landsat FAPAR for "
                             "these sites, or pass --missing-fapar skip to leave them out)")
        for s in no_fapar:
            notes[s] = ["skipped: no FAPAR in the FAPAR table"]
        wanted = [s for s in wanted if s not in no_fapar]
        if not wanted:
            raise ValueError(f"{fapar_path}: none of the selected sites has FAPAR")

    iterator: Iterable[str] = wanted
    if progress is True:
        iterator = progress_bar(wanted, desc="FLUXNET sites", unit="site")
    elif callable(progress):
        iterator = progress(wanted)

    meta_i = meta.set_index("site")
    tables = []
    for s in iterator:
        m = meta_i.loc[s]
        f = files[s]
        inputs[f"flux_{s}"] = f.path
        table, site_notes = read_fluxnet_site(
            f.path, site=s, lat=float(m["lat"]), elevation=float(np.nan_to_num(m["elevation"])),
            whc=float(m["whc"]), years=years, min_swc_coverage=min_swc_coverage,
            file_format=f.format)
        fa = fapar_df[fapar_df["site"] == s]
        n_flux = len(table)
        table = table.merge(fa[["date", "FAPAR", "FAPAR_QC"]], on="date", how="inner")
        if table.empty:
            raise ValueError(f"{fapar_path}: FAPAR dates of site {s} "
                             f"({fa['date'].min().date()} to {fa['date'].max().date()}) do not "
                             f"overlap its flux record in {f.path.name}"
                             + (f" within years {sorted(years)}" if years is not None else ""))
        site_notes.append(f"kept {len(table)} of {n_flux} flux days (intersection with FAPAR "
                          f"coverage; day counts above refer to all {n_flux})")
        if ndvi_df is not None and s in set(ndvi_df["site"]):
            nd = ndvi_df[ndvi_df["site"] == s][["date", "NDVI"]]
            table = table.merge(nd, on="date", how="left")
            site_notes.append("NDVI from the NDVI table")
        else:
            table["NDVI"] = ndvi_from_fapar(table["FAPAR"].to_numpy())
            site_notes.append("NDVI estimated from FAPAR (Myneni & Williams 1994)")
        if not np.isfinite(table["GPP_obs"]).any():
            raise ValueError(f"{f.path}: column 'GPP_NT_VUT_REF': all values missing on the days "
                             "with FAPAR")
        tables.append(table)
        notes[s] = site_notes

    site_day = schema.coerce_site_day(pd.concat(tables, ignore_index=True)
                                      [list(schema.SITE_DAY_COLUMN_NAMES)])
    schema.validate_site_day(site_day, source=f"site-day table built from {src}")

    kept = list(pd.unique(site_day["site"]))
    sites = meta[meta["site"].isin(kept)].copy()
    years_by_site = site_day.groupby("site")["date"].agg(["min", "max"])
    sites["first_year"] = sites["site"].map(years_by_site["min"].dt.year).astype("int64")
    sites["last_year"] = sites["site"].map(years_by_site["max"].dt.year).astype("int64")
    sites["source"] = "fluxnet"
    if feat_df is not None:
        missing_sites = [s for s in kept if s not in set(feat_df["site"])]
        for s in missing_sites:
            notes[s].append(f"no row in the feature table {features}: features NaN")
        sites = sites.merge(feat_df, on="site", how="left")
    for c in schema.FEATURE_COLUMNS:
        if c not in sites.columns:
            sites[c] = np.nan
    if record_features:
        sites = _fill_record_features(sites, site_day, notes)
    sites = schema.coerce_sites(sites[list(schema.SITES_COLUMN_NAMES)])
    schema.validate_sites(sites, source=f"site table built from {sites_csv}"
                          + (f" and {features}" if features else ""))
    return FluxnetTables(site_day, sites, notes, inputs)


def _fill_record_features(sites: pd.DataFrame, site_day: pd.DataFrame,
                          notes: dict[str, list[str]]) -> pd.DataFrame:
    """Fill NaN BioClim/aridity/VIF features from each site's own record (see
    :func:`read_fluxnet_dataset`, ``record_features``), noting what was filled."""
    from lue_spie.data.features import site_features_from_site_day

    record = site_features_from_site_day(site_day)
    sites = sites.set_index("site")
    for s in sites.index:
        filled = [c for c in record.columns
                  if pd.isna(sites.at[s, c]) and pd.notna(record.at[s, c])]
        for c in filled:
            sites.at[s, c] = record.at[s, c]
        if filled:
            still = [c for c in record.columns if pd.isna(sites.at[s, c])]
            notes[s].append(
                f"{len(filled)} BioClim/aridity/VIF feature(s) computed from the flux record "
                f"({sites.at[s, 'first_year']}-{sites.at[s, 'last_year']}), not WorldClim "
                "normals" + (f"; still NaN: {still}" if still else ""))
    return sites.reset_index()


def build_fluxnet_dataset(
    src: str | os.PathLike,
    fapar: str | os.PathLike,
    sites_csv: str | os.PathLike,
    out: str | os.PathLike,
    **kwargs: Any,
) -> Path:
    """:func:`read_fluxnet_dataset`, then write the dataset folder ``out`` (only when all is
    valid) with provenance (settings, input checksums, notes per site)."""
    from lue_spie.data.io import write_dataset

    tables = read_fluxnet_dataset(src, fapar, sites_csv, **kwargs)
    settings = {k: (list(v) if isinstance(v, (list, tuple, range)) else v)
                for k, v in kwargs.items() if k != "progress"}
    settings.update({"src": str(src), "notes": tables.notes,
                     "decisions": {"PAR_FRACTION": PAR_FRACTION,
                                   "CO2_FILLED_QC": CO2_FILLED_QC,
                                   "W_BUCKET_QC": W_BUCKET_QC,
                                   "FAPAR_INTERPOLATED_QC": FAPAR_INTERPOLATED_QC,
                                   "NDVI_from_FAPAR": [NDVI_SLOPE, NDVI_OFFSET]}})
    for k in ("features", "ndvi"):
        if k in settings and settings[k] is not None:
            settings[k] = str(settings[k])
    provenance = store.make_provenance("data.fluxnet", settings=settings,
                                       inputs={k: str(v) for k, v in tables.inputs.items()})
    return write_dataset(out, tables.site_day, tables.sites, provenance=provenance)

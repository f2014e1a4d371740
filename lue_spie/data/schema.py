"""Schema of the tidy data contract: the ``site_day`` and ``sites`` tables.

Both the real FLUXNET reader (:mod:`lue_spie.data.fluxnet`) and the virtual FLUXNET generator
(:mod:`lue_spie.data.virtual`) write tables that must pass :func:`validate_site_day` and
:func:`validate_sites`; :func:`lue_spie.data.io.load_dataset` checks them again on reading, so a
later step can rely on names, dtypes, units and ranges.

Every column is described by a frozen :class:`ColumnSpec` (name, dtype, unit, valid range,
nullable, description). Violations raise one ``ValueError`` naming the source file, the column
and the problem (missing column, wrong dtype, values outside the range with their count and a
first example, duplicate ``(site, date)``, dates out of order, unknown PFT or Koeppen type).

Why an in-house validator and not pandera: pandera 0.35 does work with pandas 3.1.1 (checked in a
scratch environment), but it would add pydantic, pydantic-core, annotated-types,
typing-inspection and mypy_extensions to the locked environment, and the messages this project
needs (source file, count and first offending row, per-site date order, duplicate keys) would
need custom checks and re-formatting of pandera's ``SchemaErrors`` anyway. The checks below are
a few vectorised pandas expressions per column, so a compact validator is the smaller and
clearer choice.

Feature columns of ``sites`` (may be NaN for real sites without a feature table):

- ``BIO1``..``BIO19``: WorldClim 2.1 / ANUCLIM bioclimatic variables (Xu & Hutchinson 2011),
  with WorldClim's definitions and units (BIO4 is the standard deviation x 100).
- ``AI1``: mean annual aridity index P/PET [-] (Global Aridity Index v3, Zomer et al. 2022; the
  raw GeoTIFF stores AI x 10000, here the plain ratio). ``AI2``: mean annual reference
  evapotranspiration ET0 [mm yr-1] from the same database.
- ``VIF1``..``VIF11``: vegetation-index features of the site's NDVI and FAPAR series (see
  :data:`VIF_DEFINITIONS`; the paper's VIF7 is "the range of mean annual EVI", here the NDVI
  analogue).
- ``NdepNHX``, ``NdepNOY`` [kg N ha-1 yr-1], ``Pdep`` [kg P ha-1 yr-1]: atmospheric deposition
  (R. Wang et al. 2017).
- ``soil_*``: 17 SoilGrids 2.0 (Poggio et al. 2021) properties in conventional units (SoilGrids'
  mapped integer units divided by their conversion factors), 0-30 cm depth-weighted means unless
  named ``*_sub`` (30-100 cm), plus two derived ones (organic carbon stock 0-30 cm and the C:N
  ratio); see :data:`SOIL_PROPERTIES`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lue_spie.errors import DataError
from lue_spie.params import koeppen_main_group

# --------------------------------------------------------------------------------------------
# Categorical vocabularies
# --------------------------------------------------------------------------------------------

#: The 11 FLUXNET IGBP vegetation classes used as plant functional types.
PFTS: tuple[str, ...] = ("CRO", "CSH", "DBF", "EBF", "ENF", "GRA", "MF", "OSH", "SAV", "WET", "WSA")

#: The 14 Koeppen-Geiger types present among the FLUXNET2015 sites (Rubel et al. 2017 map).
KOEPPEN_TYPES: tuple[str, ...] = (
    "Af", "Aw", "BSh", "BSk", "BWh", "BWk", "Cfa", "Cfb", "Csa", "Csb", "Cwa", "Dfb", "Dfc", "ET",
)

#: Koeppen main climate groups.
KOEPPEN_MAIN: tuple[str, ...] = ("A", "B", "C", "D", "E")

#: Values of ``sites.source``.
SOURCES: tuple[str, ...] = ("virtual", "fluxnet")

#: The LUE model forcing (same names and order as ``lue_spie.model.FORCING_KEYS``).
FORCING_COLUMNS: tuple[str, ...] = ("T", "VPD", "CO2", "W", "PAR", "FAPAR", "CI")

#: Further site-day variables used by later steps (Sitesim, P-model, CI, diagnostics).
EXTRA_COLUMNS: tuple[str, ...] = (
    "SW_IN", "SW_IN_POT", "P", "PA", "PPFD", "NDVI", "TMIN", "TMAX",
)

#: QC fractions in [0, 1] (1 = measured / good quality); never missing (0 where a value is).
QC_COLUMNS: tuple[str, ...] = ("T_QC", "VPD_QC", "SW_IN_QC", "CO2_QC", "W_QC", "FAPAR_QC", "GPP_QC")

# --------------------------------------------------------------------------------------------
# Feature columns
# --------------------------------------------------------------------------------------------

#: WorldClim bioclimatic variables: name -> (unit, definition).
BIO_DEFINITIONS: dict[str, tuple[str, str]] = {
    "BIO1": ("degC", "annual mean temperature"),
    "BIO2": ("degC", "mean diurnal range (mean of monthly (max temp - min temp))"),
    "BIO3": ("%", "isothermality (BIO2/BIO7 x 100)"),
    "BIO4": ("degC x 100", "temperature seasonality (standard deviation of monthly means x 100)"),
    "BIO5": ("degC", "max temperature of warmest month"),
    "BIO6": ("degC", "min temperature of coldest month"),
    "BIO7": ("degC", "temperature annual range (BIO5 - BIO6)"),
    "BIO8": ("degC", "mean temperature of wettest quarter"),
    "BIO9": ("degC", "mean temperature of driest quarter"),
    "BIO10": ("degC", "mean temperature of warmest quarter"),
    "BIO11": ("degC", "mean temperature of coldest quarter"),
    "BIO12": ("mm", "annual precipitation"),
    "BIO13": ("mm", "precipitation of wettest month"),
    "BIO14": ("mm", "precipitation of driest month"),
    "BIO15": ("%", "precipitation seasonality (coefficient of variation of monthly totals)"),
    "BIO16": ("mm", "precipitation of wettest quarter"),
    "BIO17": ("mm", "precipitation of driest quarter"),
    "BIO18": ("mm", "precipitation of warmest quarter"),
    "BIO19": ("mm", "precipitation of coldest quarter"),
}
BIO_COLUMNS: tuple[str, ...] = tuple(BIO_DEFINITIONS)

#: Aridity features: name -> (unit, definition).
AI_DEFINITIONS: dict[str, tuple[str, str]] = {
    "AI1": ("-", "mean annual aridity index P/PET (Global Aridity Index v3)"),
    "AI2": ("mm yr-1", "mean annual reference evapotranspiration ET0 (Global-AI_PET v3)"),
}
AI_COLUMNS: tuple[str, ...] = tuple(AI_DEFINITIONS)

#: Vegetation-index features: name -> (unit, definition); computed from daily NDVI / FAPAR.
VIF_DEFINITIONS: dict[str, tuple[str, str]] = {
    "VIF1": ("-", "mean NDVI over the record"),
    "VIF2": ("-", "mean of the yearly maxima of NDVI"),
    "VIF3": ("-", "mean of the yearly minima of NDVI"),
    "VIF4": ("-", "mean yearly NDVI amplitude (yearly max - yearly min)"),
    "VIF5": ("-", "standard deviation of daily NDVI"),
    "VIF6": ("-", "mean FAPAR over the record"),
    "VIF7": ("-", "range of the annual-mean NDVI across years (paper: range of mean annual EVI)"),
    "VIF8": ("-", "mean of the yearly maxima of FAPAR"),
    "VIF9": ("d yr-1", "growing-season length: days per year with FAPAR above min + 0.5 amplitude"),
    "VIF10": ("doy", "mean day of year of the FAPAR maximum"),
    "VIF11": ("yr-1", "linear trend of annual-mean NDVI"),
}
VIF_COLUMNS: tuple[str, ...] = tuple(VIF_DEFINITIONS)

#: Nitrogen and phosphorus deposition: name -> (unit, definition).
NPDEP_DEFINITIONS: dict[str, tuple[str, str]] = {
    "NdepNHX": ("kg N ha-1 yr-1", "reduced N (NHx) deposition"),
    "NdepNOY": ("kg N ha-1 yr-1", "oxidised N (NOy) deposition"),
    "Pdep": ("kg P ha-1 yr-1", "total P deposition"),
}
NPDEP_COLUMNS: tuple[str, ...] = tuple(NPDEP_DEFINITIONS)

#: SoilGrids 2.0-like soil properties: short name -> (unit, definition, valid range).
SOIL_PROPERTIES: dict[str, tuple[str, str, tuple[float, float]]] = {
    "bdod": ("kg dm-3", "bulk density of the fine earth, 0-30 cm", (0.1, 2.5)),
    "cec": ("cmol(c) kg-1", "cation exchange capacity at pH 7, 0-30 cm", (0.0, 250.0)),
    "cfvo": ("% vol", "coarse fragments volume, 0-30 cm", (0.0, 100.0)),
    "clay": ("%", "clay content, 0-30 cm", (0.0, 100.0)),
    "sand": ("%", "sand content, 0-30 cm", (0.0, 100.0)),
    "silt": ("%", "silt content, 0-30 cm", (0.0, 100.0)),
    "nitrogen": ("g kg-1", "total nitrogen, 0-30 cm", (0.0, 60.0)),
    "phh2o": ("pH", "soil pH in water, 0-30 cm", (2.0, 12.0)),
    "soc": ("g kg-1", "soil organic carbon content, 0-30 cm", (0.0, 600.0)),
    "ocd": ("kg m-3", "organic carbon density, 0-30 cm", (0.0, 300.0)),
    "ocs": ("t ha-1", "organic carbon stock, 0-30 cm (derived: ocd x 0.3 m x 10)", (0.0, 1000.0)),
    "cn": ("-", "C:N ratio, 0-30 cm (derived: soc / nitrogen)", (0.0, 200.0)),
    "bdod_sub": ("kg dm-3", "bulk density of the fine earth, 30-100 cm", (0.1, 2.5)),
    "clay_sub": ("%", "clay content, 30-100 cm", (0.0, 100.0)),
    "sand_sub": ("%", "sand content, 30-100 cm", (0.0, 100.0)),
    "soc_sub": ("g kg-1", "soil organic carbon content, 30-100 cm", (0.0, 600.0)),
    "phh2o_sub": ("pH", "soil pH in water, 30-100 cm", (2.0, 12.0)),
}
SOIL_COLUMNS: tuple[str, ...] = tuple(f"soil_{name}" for name in SOIL_PROPERTIES)

#: All continuous site features, in table order.
FEATURE_COLUMNS: tuple[str, ...] = (
    BIO_COLUMNS + AI_COLUMNS + VIF_COLUMNS + NPDEP_COLUMNS + SOIL_COLUMNS
)

# --------------------------------------------------------------------------------------------
# Column specifications
# --------------------------------------------------------------------------------------------

#: dtype kinds understood by the validator.
DTYPES = ("string", "datetime", "float", "int")


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a tidy table.

    Attributes:
        name: Column name.
        dtype: One of ``"string"``, ``"datetime"`` (``datetime64[ns]``, tz-naive, midnight),
            ``"float"`` (any float dtype; missing = NaN), ``"int"`` (integer dtype, no missing).
        unit: Physical unit ("-" when dimensionless, "" for identifiers).
        vmin: Lowest valid value (inclusive) or None.
        vmax: Highest valid value (inclusive) or None.
        nullable: Whether missing values are allowed.
        description: What the column holds.
        allowed: For string columns, the admissible values (None = any).
    """

    name: str
    dtype: str
    unit: str
    vmin: float | None
    vmax: float | None
    nullable: bool
    description: str
    allowed: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"ColumnSpec {self.name!r}: dtype {self.dtype!r} not in {DTYPES}")


def _f(name: str, unit: str, vmin: float | None, vmax: float | None, description: str,
       nullable: bool = True) -> ColumnSpec:
    return ColumnSpec(name, "float", unit, vmin, vmax, nullable, description)


#: Columns of ``site_day.parquet``, in table order.
SITE_DAY_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("site", "string", "", None, None, False, "site identifier (e.g. CH-Lae)"),
    ColumnSpec("date", "datetime", "", None, None, False, "day (datetime64[ns] at midnight)"),
    _f("T", "degC", -60.0, 50.0, "daily mean air temperature"),
    _f("VPD", "Pa", 0.0, 10000.0, "daily mean vapour pressure deficit"),
    _f("CO2", "ppm", 250.0, 800.0, "atmospheric CO2 mole fraction"),
    _f("W", "-", 0.0, 1.0, "relative soil water (0 = wilting, 1 = field capacity)"),
    _f("PAR", "MJ m-2 d-1", 0.0, 25.0, "photosynthetically active radiation (0.48 x SW_IN)"),
    _f("FAPAR", "-", 0.0, 1.0, "fraction of absorbed PAR"),
    _f("CI", "-", 0.0, 1.0, "cloudiness index 1 - SW_IN/SW_IN_POT, clipped to [0, 1]"),
    _f("GPP_obs", "gC m-2 d-1", -10.0, 40.0, "observed (eddy-covariance) gross primary production"),
    _f("SW_IN", "W m-2", 0.0, 500.0, "daily mean incoming shortwave radiation"),
    _f("SW_IN_POT", "W m-2", 0.0, 600.0, "daily mean extraterrestrial (potential) shortwave"),
    _f("P", "mm d-1", 0.0, 2000.0, "precipitation (world record about 1800 mm d-1)"),
    _f("PA", "kPa", 40.0, 110.0, "air pressure"),
    _f("PPFD", "umol m-2 s-1", 0.0, 1200.0, "daily mean photosynthetic photon flux density"),
    _f("NDVI", "-", -1.0, 1.0, "normalised difference vegetation index"),
    _f("TMIN", "degC", -70.0, 50.0, "daily minimum air temperature"),
    _f("TMAX", "degC", -60.0, 60.0, "daily maximum air temperature"),
    _f("T_QC", "-", 0.0, 1.0, "QC fraction of T (1 = measured)", nullable=False),
    _f("VPD_QC", "-", 0.0, 1.0, "QC fraction of VPD", nullable=False),
    _f("SW_IN_QC", "-", 0.0, 1.0, "QC fraction of SW_IN (and PAR, CI)", nullable=False),
    _f("CO2_QC", "-", 0.0, 1.0, "QC fraction of CO2", nullable=False),
    _f("W_QC", "-", 0.0, 1.0, "QC fraction of W", nullable=False),
    _f("FAPAR_QC", "-", 0.0, 1.0, "QC fraction of FAPAR", nullable=False),
    _f("GPP_QC", "-", 0.0, 1.0, "QC fraction of GPP_obs", nullable=False),
)

_SITES_FIXED: tuple[ColumnSpec, ...] = (
    ColumnSpec("site", "string", "", None, None, False, "site identifier"),
    ColumnSpec("PFT", "string", "", None, None, False, "plant functional type (IGBP)", PFTS),
    ColumnSpec("koeppen", "string", "", None, None, False, "Koeppen-Geiger type", KOEPPEN_TYPES),
    ColumnSpec("koeppen_main", "string", "", None, None, False, "Koeppen main group",
               KOEPPEN_MAIN),
    _f("lat", "degrees_north", -90.0, 90.0, "latitude", nullable=False),
    _f("lon", "degrees_east", -180.0, 180.0, "longitude", nullable=False),
    _f("elevation", "m", -500.0, 6000.0, "elevation above sea level"),
    _f("whc", "mm", 1.0, 2000.0, "soil water holding capacity of the bucket", nullable=False),
    ColumnSpec("first_year", "int", "yr", 1900, 2100, False, "first year of the record"),
    ColumnSpec("last_year", "int", "yr", 1900, 2100, False, "last year of the record"),
    ColumnSpec("source", "string", "", None, None, False, "origin of the site", SOURCES),
)

_FEATURE_RANGES: dict[str, tuple[float | None, float | None]] = {
    **{c: (-70.0, 60.0) for c in BIO_COLUMNS},
    "BIO3": (0.0, 100.0), "BIO4": (0.0, 5000.0),
    **{f"BIO{i}": (0.0, 15000.0) for i in (12, 13, 14, 16, 17, 18, 19)},
    "BIO15": (0.0, 500.0),
    "AI1": (0.0, 100.0), "AI2": (0.0, 5000.0),
    **{c: (-1.0, 1.0) for c in VIF_COLUMNS},
    "VIF9": (0.0, 366.0), "VIF10": (1.0, 366.0),
    "NdepNHX": (0.0, 200.0), "NdepNOY": (0.0, 200.0), "Pdep": (0.0, 20.0),
    **{f"soil_{k}": v[2] for k, v in SOIL_PROPERTIES.items()},
}


def _feature_spec(name: str) -> ColumnSpec:
    if name in BIO_DEFINITIONS:
        unit, desc = BIO_DEFINITIONS[name]
    elif name in AI_DEFINITIONS:
        unit, desc = AI_DEFINITIONS[name]
    elif name in VIF_DEFINITIONS:
        unit, desc = VIF_DEFINITIONS[name]
    elif name in NPDEP_DEFINITIONS:
        unit, desc = NPDEP_DEFINITIONS[name]
    else:
        unit, desc, _ = SOIL_PROPERTIES[name.removeprefix("soil_")]
    vmin, vmax = _FEATURE_RANGES[name]
    return ColumnSpec(name, "float", unit, vmin, vmax, True, desc)


#: Columns of ``sites.parquet``, in table order.
SITES_COLUMNS: tuple[ColumnSpec, ...] = _SITES_FIXED + tuple(
    _feature_spec(c) for c in FEATURE_COLUMNS
)

SITE_DAY_SPEC: dict[str, ColumnSpec] = {c.name: c for c in SITE_DAY_COLUMNS}
SITES_SPEC: dict[str, ColumnSpec] = {c.name: c for c in SITES_COLUMNS}
SITE_DAY_COLUMN_NAMES: tuple[str, ...] = tuple(SITE_DAY_SPEC)
SITES_COLUMN_NAMES: tuple[str, ...] = tuple(SITES_SPEC)


def unit(column: str) -> str:
    """Unit of a ``site_day`` or ``sites`` column (``KeyError`` naming the column otherwise)."""
    for table in (SITE_DAY_SPEC, SITES_SPEC):
        if column in table:
            return table[column].unit
    raise KeyError(f"unknown column {column!r} (not in the site_day or sites schema)")


# --------------------------------------------------------------------------------------------
# Coercion (turn a freshly built frame into the contract's dtypes)
# --------------------------------------------------------------------------------------------

def _coerce(df: pd.DataFrame, specs: Iterable[ColumnSpec]) -> pd.DataFrame:
    out = df.copy()
    for spec in specs:
        if spec.name not in out.columns:
            continue
        col = out[spec.name]
        if spec.dtype == "string":
            out[spec.name] = col.astype("str")
        elif spec.dtype == "datetime":
            out[spec.name] = pd.to_datetime(col).astype("datetime64[ns]")
        elif spec.dtype == "float":
            out[spec.name] = pd.to_numeric(col).astype("float64")
        elif spec.dtype == "int":
            out[spec.name] = pd.to_numeric(col).astype("int64")
    return out


def coerce_site_day(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` with contract dtypes (str site, datetime64[ns] date, float64 values),
    columns in schema order (extra columns after them), sorted by site and date."""
    out = _coerce(df, SITE_DAY_COLUMNS)
    known = [c for c in SITE_DAY_COLUMN_NAMES if c in out.columns]
    out = out[known + [c for c in out.columns if c not in SITE_DAY_SPEC]]
    if {"site", "date"} <= set(out.columns):
        out = out.sort_values(["site", "date"], kind="stable").reset_index(drop=True)
    return out


def coerce_sites(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` with contract dtypes, columns in schema order, sorted by site."""
    out = _coerce(df, SITES_COLUMNS)
    known = [c for c in SITES_COLUMN_NAMES if c in out.columns]
    out = out[known + [c for c in out.columns if c not in SITES_SPEC]]
    if "site" in out.columns:
        out = out.sort_values("site", kind="stable").reset_index(drop=True)
    return out


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

def _unit_words(unit: str) -> str:
    """A column's unit as a message names it: the schema's ``"-"`` reads "dimensionless"."""
    return "dimensionless" if unit in ("-", "") else unit


def _fail(source: str, column: str | None, problem: str) -> None:
    where = f"{source}: column {column!r}: " if column else f"{source}: "
    raise DataError(where + problem)


def _example(df: pd.DataFrame, bad: np.ndarray, column: str) -> str:
    """'first at row i (site X, date D): value' for the first True entry of ``bad``."""
    i = int(np.flatnonzero(bad)[0])
    parts = []
    if "site" in df.columns and column != "site":
        parts.append(f"site {df['site'].iloc[i]}")
    if "date" in df.columns and column != "date":
        d = df["date"].iloc[i]
        parts.append(f"date {d.date() if hasattr(d, 'date') else d}")
    ctx = f" ({', '.join(parts)})" if parts else ""
    value = df[column].iloc[i]
    shown = f"{float(value):g}" if isinstance(value, (float, np.floating)) else repr(value)
    return f"first at row {i}{ctx}: {shown}"


def _check_column(df: pd.DataFrame, spec: ColumnSpec, source: str) -> None:
    col = df[spec.name]
    name = spec.name
    if spec.dtype == "string":
        is_str = pd.api.types.is_string_dtype(col.dtype) or (
            col.dtype == object and col.map(lambda v: isinstance(v, str) or v is None).all()
        )
        if not is_str:
            _fail(source, name, f"expected strings, got dtype {col.dtype}")
        missing = col.isna().to_numpy()
        if missing.any():
            _fail(source, name, f"{int(missing.sum())} missing values (not allowed), "
                                f"{_example(df, missing, name)}")
        if spec.allowed is not None:
            bad = ~col.isin(spec.allowed).to_numpy()
            if bad.any():
                unknown = sorted(set(col[bad].astype(str)))
                _fail(source, name, f"{int(bad.sum())} values not in {list(spec.allowed)}: "
                                    f"unknown {unknown[:10]}, {_example(df, bad, name)}")
        return
    if spec.dtype == "datetime":
        if str(col.dtype) != "datetime64[ns]":
            _fail(source, name, f"expected dtype datetime64[ns] (tz-naive), got {col.dtype}")
        missing = col.isna().to_numpy()
        if missing.any():
            _fail(source, name, f"{int(missing.sum())} missing dates, "
                                f"{_example(df, missing, name)}")
        not_midnight = (col != col.dt.normalize()).to_numpy()
        if not_midnight.any():
            _fail(source, name, f"{int(not_midnight.sum())} dates not at midnight (daily data "
                                f"expected), {_example(df, not_midnight, name)}")
        return
    if spec.dtype == "int":
        if not pd.api.types.is_integer_dtype(col.dtype):
            _fail(source, name, f"expected an integer dtype, got {col.dtype}")
        values = col.to_numpy(dtype="float64")
    else:
        if not pd.api.types.is_float_dtype(col.dtype):
            _fail(source, name, f"expected a float dtype ({_unit_words(spec.unit)}), got "
                                f"{col.dtype}")
        values = col.to_numpy(dtype="float64")
    missing = np.isnan(values)
    if not spec.nullable and missing.any():
        _fail(source, name, f"{int(missing.sum())} missing values (not allowed), "
                            f"{_example(df, missing, name)}")
    inf = np.isinf(values)
    if inf.any():
        _fail(source, name, f"{int(inf.sum())} infinite values, {_example(df, inf, name)}")
    with np.errstate(invalid="ignore"):
        bad = np.zeros(len(values), dtype=bool)
        if spec.vmin is not None:
            bad |= values < spec.vmin
        if spec.vmax is not None:
            bad |= values > spec.vmax
    if bad.any():
        _fail(source, name, f"{int(bad.sum())} values outside the valid range "
                            f"[{spec.vmin}, {spec.vmax}] ({_unit_words(spec.unit)}), "
                            f"{_example(df, bad, name)}")


def _check_frame(df: pd.DataFrame, specs: tuple[ColumnSpec, ...], source: str,
                 required: Iterable[str] | None = None) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    names = [s.name for s in specs] if required is None else list(required)
    missing = [c for c in names if c not in df.columns]
    if missing:
        _fail(source, None, f"missing column(s) {missing}")
    dup_cols = df.columns[df.columns.duplicated()].tolist()
    if dup_cols:
        _fail(source, None, f"duplicate column name(s) {dup_cols}")
    for spec in specs:
        if spec.name in df.columns:
            _check_column(df, spec, source)


def validate_site_day(df: pd.DataFrame, source: str = "site_day") -> pd.DataFrame:
    """Check a ``site_day`` table against the contract; return it unchanged.

    Args:
        df: The table.
        source: Name of the file (or step) it came from, used in error messages.

    Raises:
        ValueError: naming ``source``, the column and the problem: a missing column, a wrong
            dtype, values outside the valid range (count and first example), duplicate
            ``(site, date)``, dates out of order within a site, sites not sorted.
    """
    _check_frame(df, SITE_DAY_COLUMNS, source)
    site = df["site"].to_numpy()
    date = df["date"].to_numpy()
    if len(df) == 0:
        return df
    same_site = site[1:] == site[:-1]
    # Sites must come in contiguous, sorted blocks.
    site_back = site[1:] < site[:-1]
    if site_back.any():
        i = int(np.flatnonzero(site_back)[0]) + 1
        _fail(source, "site", f"rows not sorted by site: row {i} has site {site[i]!r} after "
                              f"{site[i - 1]!r}")
    step = date[1:] - date[:-1]
    dup = same_site & (step == np.timedelta64(0, "ns"))
    if dup.any():
        i = int(np.flatnonzero(dup)[0]) + 1
        _fail(source, "date", f"{int(dup.sum())} duplicate (site, date) rows, first at row {i}: "
                              f"site {site[i]}, date {pd.Timestamp(date[i]).date()}")
    back = same_site & (step < np.timedelta64(0, "ns"))
    if back.any():
        i = int(np.flatnonzero(back)[0]) + 1
        _fail(source, "date", f"dates out of order within a site ({int(back.sum())} times), first "
                              f"at row {i}: site {site[i]}, {pd.Timestamp(date[i]).date()} after "
                              f"{pd.Timestamp(date[i - 1]).date()}")
    return df


def validate_sites(df: pd.DataFrame, source: str = "sites") -> pd.DataFrame:
    """Check a ``sites`` table against the contract; return it unchanged.

    Feature columns (BIO, AI, VIF, NPdep, soil) are required as columns but may be all NaN.

    Raises:
        ValueError: naming ``source``, the column and the problem (missing column, wrong dtype,
            out-of-range value, unknown PFT or Koeppen type, Koeppen main group inconsistent
            with the type, duplicate site, first_year after last_year).
    """
    _check_frame(df, SITES_COLUMNS, source)
    dup = df["site"].duplicated().to_numpy()
    if dup.any():
        _fail(source, "site", f"{int(dup.sum())} duplicate site ids, {_example(df, dup, 'site')}")
    expected_main = np.asarray(koeppen_main_group(list(df["koeppen"].astype(str))), dtype=object)
    bad = expected_main != df["koeppen_main"].to_numpy(dtype=object)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        _fail(source, "koeppen_main", f"{int(bad.sum())} rows inconsistent with 'koeppen', first "
                                      f"at row {i} (site {df['site'].iloc[i]}): koeppen "
                                      f"{df['koeppen'].iloc[i]!r} but koeppen_main "
                                      f"{df['koeppen_main'].iloc[i]!r}")
    bad = (df["first_year"] > df["last_year"]).to_numpy()
    if bad.any():
        _fail(source, "first_year", f"{int(bad.sum())} sites with first_year > last_year, "
                                    f"{_example(df, bad, 'first_year')}")
    return df

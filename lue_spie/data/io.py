"""Reading and writing dataset folders, and turning site-day tables into model forcing.

A dataset folder (real FLUXNET or virtual FLUXNET, same layout) holds:

- ``site_day.parquet`` and ``sites.parquet`` (each with ``.provenance.json``), see
  :mod:`lue_spie.data.schema`;
- for virtual FLUXNET also ``truth.parquet`` (``site`` + the 13 parameters, physical units) and
  ``truth.json`` (driver features, functional form, noise settings, generator version, seed ...).

:func:`to_forcing` builds dense ``(n_sites, n_days)`` tensors on a common daily grid with a
vectorised scatter (integer site and day codes), so 196 sites x 3650 days take well under a
second; the only Python loop is over sites for the gap filling (``np.interp``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lue_spie import store
from lue_spie.constants import QC_GOOD_DAY
from lue_spie.data.schema import (
    FORCING_COLUMNS,
    QC_COLUMNS,
    validate_site_day,
    validate_sites,
)
from lue_spie.errors import DataError
from lue_spie.layout import DataFiles
from lue_spie.params import PARAMETERS

# The dataset folder's file names (one owner: :class:`lue_spie.layout.DataFiles`).
SITE_DAY_FILE = DataFiles.SITE_DAY
SITES_FILE = DataFiles.SITES
TRUTH_FILE = DataFiles.TRUTH
TRUTH_META_FILE = DataFiles.TRUTH_META

#: Site-day columns carried into :attr:`ForcingBatch.extra` (gap-filled like the forcing).
EXTRA_KEYS: tuple[str, ...] = ("SW_IN", "SW_IN_POT", "P", "PA", "PPFD", "NDVI", "TMIN", "TMAX")


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset folder.

    Attributes:
        path: The folder.
        site_day: The site-day table (validated).
        sites: The site table (validated).
        truth: True parameters (virtual FLUXNET) or None.
        truth_meta: Contents of ``truth.json`` or None.
    """

    path: Path
    site_day: pd.DataFrame
    sites: pd.DataFrame
    truth: pd.DataFrame | None = None
    truth_meta: dict[str, Any] | None = None

    @property
    def site_ids(self) -> list[str]:
        """Site identifiers in table order."""
        return self.sites["site"].tolist()

    def forcing_batch(
        self,
        *,
        sites: Sequence[str] | None = None,
        years: Iterable[int] | None = None,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ) -> ForcingBatch:
        """Dense forcing of some sites (default: all, in table order), with their PFT and
        Koeppen type (see :func:`to_forcing`).

        Raises:
            KeyError: naming site ids that are not in the dataset.
        """
        if sites is not None:
            unknown = sorted(set(sites) - set(self.sites["site"]))
            if unknown:
                raise KeyError(f"site(s) {unknown[:10]} are not in the dataset at {self.path}")
        batch = to_forcing(self.site_day, sites=None if sites is None else list(sites),
                           years=years, dtype=dtype, device=device)
        info = self.sites.set_index("site")
        return dataclasses.replace(batch, pft=[str(p) for p in info.loc[batch.sites, "PFT"]],
                                   koeppen=[str(k) for k in info.loc[batch.sites, "koeppen"]])


@dataclass(frozen=True)
class ForcingBatch:
    """Dense model inputs for a set of sites on a common daily grid.

    Attributes:
        sites: Site ids, one per row.
        dates: The common daily grid (``pd.DatetimeIndex``).
        forcing: One ``(n_sites, n_days)`` tensor per key of ``FORCING_COLUMNS`` (gap-filled:
            linear in time within a site's record, then the nearest value for the days before
            its first and after its last value, which also fills padded days).
        GPP_obs: ``(n_sites, n_days)``, NaN where missing or outside the record.
        good: ``(n_sites, n_days)`` bool, good-quality day (all QC > threshold and GPP_obs
            present) inside the record.
        extra: Gap-filled tensors for ``EXTRA_KEYS`` (rows of a variable that a site never
            reports stay NaN, e.g. PPFD or TMIN for some real sites).
        in_record: ``(n_sites, n_days)`` bool, True on days the site-day table has a row for.
        qc: The QC fractions, ``(n_sites, n_days)`` tensors, 0 outside the record.
        pft: Plant functional type of each site (None when the batch was built from a
            site-day table alone; :meth:`Dataset.forcing_batch` always fills it).
        koeppen: Koeppen-Geiger type of each site (needed for the lag mask; same rule).
    """

    sites: list[str]
    dates: pd.DatetimeIndex
    forcing: dict[str, torch.Tensor]
    GPP_obs: torch.Tensor
    good: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    in_record: torch.Tensor | None = None
    qc: dict[str, torch.Tensor] = field(default_factory=dict)
    pft: list[str] | None = None
    koeppen: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.sites)
        for name in ("pft", "koeppen"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"ForcingBatch.{name}: {len(v)} values for {n} sites")

    @property
    def n_sites(self) -> int:
        return len(self.sites)

    @property
    def n_days(self) -> int:
        return len(self.dates)

    def index_of(self, sites: Sequence[str]) -> list[int]:
        """Row of each site id.

        Raises:
            KeyError: naming the site ids that are not in the batch.
        """
        pos = {s: i for i, s in enumerate(self.sites)}
        unknown = [s for s in sites if s not in pos]
        if unknown:
            raise KeyError(f"site(s) {unknown[:10]} are not in the forcing batch (it holds "
                           f"{self.n_sites} sites, e.g. {self.sites[:5]})")
        return [pos[s] for s in sites]

    def select(self, sites: Sequence[str]) -> ForcingBatch:
        """The same batch restricted to ``sites``, in the order given (tensors are copied)."""
        rows = self.index_of(list(sites))
        idx = torch.as_tensor(rows, dtype=torch.long, device=self.good.device)

        def take(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.index_select(0, idx.to(t.device))

        return ForcingBatch(
            sites=[self.sites[i] for i in rows], dates=self.dates,
            forcing={k: take(v) for k, v in self.forcing.items()},
            GPP_obs=take(self.GPP_obs), good=take(self.good),
            extra={k: take(v) for k, v in self.extra.items()}, in_record=take(self.in_record),
            qc={k: take(v) for k, v in self.qc.items()},
            pft=None if self.pft is None else [self.pft[i] for i in rows],
            koeppen=None if self.koeppen is None else [self.koeppen[i] for i in rows])

    def to(self, dtype: torch.dtype | None = None,
           device: str | torch.device | None = None) -> ForcingBatch:
        """The batch with its float tensors in ``dtype`` and every tensor on ``device``."""
        def cast(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        return dataclasses.replace(
            self, forcing={k: cast(v) for k, v in self.forcing.items()},
            GPP_obs=cast(self.GPP_obs), good=cast(self.good),
            extra={k: cast(v) for k, v in self.extra.items()}, in_record=cast(self.in_record),
            qc={k: cast(v) for k, v in self.qc.items()})

    def require_types(self) -> None:
        """Raise a clear error when the batch does not know its sites' Koeppen types."""
        if self.koeppen is None:
            raise ValueError("this ForcingBatch has no Koeppen types (needed for the lag mask); "
                             "build it with Dataset.forcing_batch(...) or pass koeppen=")


def good_days(site_day: pd.DataFrame, threshold: float = QC_GOOD_DAY) -> pd.Series:
    """Good-quality days (SPEC section 4): every QC column > ``threshold`` and GPP_obs present.

    Returns:
        Boolean Series aligned with ``site_day``.
    """
    missing = [c for c in (*QC_COLUMNS, "GPP_obs") if c not in site_day.columns]
    if missing:
        raise ValueError(f"good_days: site_day lacks column(s) {missing}")
    good = site_day["GPP_obs"].notna()
    for c in QC_COLUMNS:
        good &= site_day[c] > threshold
    return good.astype(bool).rename("good")


# --------------------------------------------------------------------------------------------
# Dataset folders
# --------------------------------------------------------------------------------------------

def _check_consistency(site_day: pd.DataFrame, sites: pd.DataFrame, folder: str) -> None:
    day_sites = set(site_day["site"].unique())
    table_sites = set(sites["site"])
    unknown = sorted(day_sites - table_sites)
    if unknown:
        raise DataError(f"{folder}: site_day has sites missing from the sites table: "
                         f"{unknown[:10]}")
    empty = sorted(table_sites - day_sites)
    if empty:
        raise DataError(f"{folder}: sites without any site_day rows: {empty[:10]}")


def _validate_truth(truth: pd.DataFrame, sites: pd.DataFrame, source: str) -> None:
    missing = [c for c in ("site", *PARAMETERS) if c not in truth.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}")
    if set(truth["site"]) != set(sites["site"]):
        raise DataError(f"{source}: its sites differ from the sites table")
    values = truth[list(PARAMETERS)].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        bad = sorted({PARAMETERS[j] for j in np.nonzero(~np.isfinite(values))[1]})
        raise DataError(f"{source}: non-finite true parameters in column(s) {bad}")


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Load and validate a dataset folder.

    Raises:
        FileNotFoundError: when the folder, ``site_day.parquet`` or ``sites.parquet`` is missing.
        ValueError: when a table violates the schema (naming the file, column and problem), or
            the two tables disagree on the set of sites.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such dataset folder (create one with "
                                "`lue-spie data synth` or `lue-spie data fluxnet`)")
    for name in (SITE_DAY_FILE, SITES_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: missing; a dataset folder holds "
                                    f"{SITE_DAY_FILE} and {SITES_FILE}")
    site_day = store.read_parquet(folder / SITE_DAY_FILE)
    sites = store.read_parquet(folder / SITES_FILE)
    validate_site_day(site_day, source=str(folder / SITE_DAY_FILE))
    validate_sites(sites, source=str(folder / SITES_FILE))
    _check_consistency(site_day, sites, str(folder))
    truth = truth_meta = None
    if (folder / TRUTH_FILE).is_file():
        truth = store.read_parquet(folder / TRUTH_FILE)
        _validate_truth(truth, sites, str(folder / TRUTH_FILE))
    if (folder / TRUTH_META_FILE).is_file():
        try:
            truth_meta = json.loads((folder / TRUTH_META_FILE).read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"{folder / TRUTH_META_FILE}: not valid JSON ({err})") from err
    return Dataset(folder, site_day, sites, truth, truth_meta)


def write_dataset(
    out: str | os.PathLike,
    site_day: pd.DataFrame,
    sites: pd.DataFrame,
    *,
    provenance: Mapping[str, Any],
    truth: pd.DataFrame | None = None,
    truth_meta: Mapping[str, Any] | None = None,
) -> Path:
    """Validate everything, then write a dataset folder (each file atomically).

    Nothing is written unless both tables (and the truth, when given) pass validation, so a
    malformed input never leaves a half-written folder behind.

    Args:
        out: The folder (created when missing).
        site_day: Site-day table in contract dtypes (see ``schema.coerce_site_day``).
        sites: Site table in contract dtypes (see ``schema.coerce_sites``).
        provenance: Record from ``store.make_provenance`` written beside each table.
        truth: Optional true parameters (virtual FLUXNET).
        truth_meta: Optional JSON-serialisable truth description.

    Returns:
        The folder path.
    """
    out = Path(out)
    validate_site_day(site_day, source=f"{out / SITE_DAY_FILE} (before writing)")
    validate_sites(sites, source=f"{out / SITES_FILE} (before writing)")
    _check_consistency(site_day, sites, str(out))
    if truth is not None:
        _validate_truth(truth, sites, f"{out / TRUTH_FILE} (before writing)")
    out.mkdir(parents=True, exist_ok=True)
    store.write_parquet(site_day.reset_index(drop=True), out / SITE_DAY_FILE, provenance)
    store.write_parquet(sites.reset_index(drop=True), out / SITES_FILE, provenance)
    if truth is not None:
        store.write_parquet(truth.reset_index(drop=True), out / TRUTH_FILE, provenance)
    if truth_meta is not None:
        store.atomic_write_json(out / TRUTH_META_FILE, dict(truth_meta))
    # A folder reused for another dataset must not keep a stale truth of the previous one.
    stale = []
    if truth is None:
        stale += [out / TRUTH_FILE, store.provenance_path(out / TRUTH_FILE)]
    if truth_meta is None:
        stale.append(out / TRUTH_META_FILE)
    for p in stale:
        p.unlink(missing_ok=True)
    return out


def parse_years(spec: str | int | Iterable[str | int] | None) -> list[int] | None:
    """Years from the forms the command line and the notebooks accept, sorted, without repeats.

    ``"2010-2012"`` -> [2010, 2011, 2012]; ``"2010,2012"`` -> [2010, 2012]; a list of such
    items (``["2005-2007", "2010"]``), of ints, or one int; ``None`` -> ``None`` (all years).

    Raises:
        ValueError: naming the item that is not a year or a range Y0-Y1 with Y0 <= Y1.
    """
    if spec is None:
        return None
    items = [spec] if isinstance(spec, str | int) else list(spec)
    years: set[int] = set()
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                if "-" in part.lstrip("-"):
                    a, b = part.split("-", 1)
                    y0, y1 = int(a), int(b)
                else:
                    y0 = y1 = int(part)
            except ValueError:
                raise ValueError(f"years: {part!r} is neither a year nor a range such as "
                                 "2010-2012") from None
            if y1 < y0 or not (1800 <= y0 <= 2200 and 1800 <= y1 <= 2200):
                raise ValueError(f"years: bad range {part!r} (expected Y0-Y1 with Y0 <= Y1)")
            years.update(range(y0, y1 + 1))
    if not years:
        raise ValueError(f"years: no year in {spec!r}")
    return sorted(years)


def years_argument(text: str) -> list[int]:
    """argparse ``type`` for ``--years`` (``2010-2012``, ``2010,2012``; see :func:`parse_years`)."""
    import argparse

    try:
        return parse_years(text) or []
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def as_forcing_batch(
    data: Any,
    *,
    sites: Sequence[str] | None = None,
    years: Iterable[int] | None = None,
    koeppen: Sequence[str] | Mapping[str, str] | None = None,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> ForcingBatch:
    """The one way every step turns its input into a :class:`ForcingBatch` with site types.

    Args:
        data: A :class:`Dataset` (or any object with ``site_day`` and ``sites`` tables), a
            :class:`ForcingBatch`, or a ForcingBatch-like object
            (``sites``, ``dates``, ``forcing``, ``GPP_obs``, ``good`` and optionally
            ``koeppen``/``pft``).
        sites: Sites to keep, in this order (default: all).
        years: Years to keep (Dataset input only).
        koeppen: Koeppen types (list in the batch's site order, or mapping site -> type) for a
            batch that lacks them.
        dtype, device: Of the returned tensors.

    Raises:
        ValueError: ``years`` with a batch, a batch without Koeppen types, wrong shapes.
        KeyError: unknown site ids.
    """
    if not isinstance(data, Dataset) and isinstance(getattr(data, "site_day", None),
                                                    pd.DataFrame) and isinstance(
            getattr(data, "sites", None), pd.DataFrame):
        # Tables in memory (e.g. the FLUXNET reader's result): the same as a loaded folder.
        data = Dataset(Path(getattr(data, "path", None) or "(tables in memory)"),
                       data.site_day, data.sites)
    if isinstance(data, Dataset):
        return data.forcing_batch(sites=sites, years=years, dtype=dtype, device=device)
    if years is not None:
        raise ValueError("years= selects from a Dataset; pass a ForcingBatch already cut to "
                         "the years you want")
    names = [str(s) for s in data.sites]
    shape = (len(names), int(torch.as_tensor(data.GPP_obs).shape[-1]))
    missing_keys = [k for k in FORCING_COLUMNS if k not in data.forcing]
    if missing_keys:
        raise KeyError(f"forcing: missing key(s) {missing_keys}; expected {FORCING_COLUMNS}")
    for what, x in [("GPP_obs", data.GPP_obs), ("good", data.good),
                    *((f"forcing[{k!r}]", v) for k, v in data.forcing.items())]:
        if tuple(torch.as_tensor(x).shape) != shape:
            raise ValueError(f"{what}: expected shape (n_sites, n_days) = {shape}, got "
                             f"{tuple(torch.as_tensor(x).shape)}")
    codes = koeppen if koeppen is not None else getattr(data, "koeppen", None)
    if codes is not None and not isinstance(codes, Mapping) and len(codes) != len(names):
        raise ValueError(f"koeppen: {len(codes)} types for {len(names)} sites")
    batch = data if isinstance(data, ForcingBatch) else ForcingBatch(
        sites=names, dates=getattr(data, "dates", None), forcing=dict(data.forcing),
        GPP_obs=torch.as_tensor(data.GPP_obs), good=torch.as_tensor(data.good),
        pft=getattr(data, "pft", None))
    batch = dataclasses.replace(batch, sites=names, koeppen=None if codes is None or isinstance(
        codes, Mapping) else [str(c) for c in codes])
    if sites is not None:
        batch = batch.select(list(sites))
    if isinstance(codes, Mapping):  # a mapping only needs the selected sites
        missing = [s for s in batch.sites if s not in codes]
        if missing:
            raise KeyError(f"koeppen: no type for site(s) {missing[:10]}")
        batch = dataclasses.replace(batch, koeppen=[str(codes[s]) for s in batch.sites])
    return batch.to(dtype=dtype, device=device)


# --------------------------------------------------------------------------------------------
# Forcing tensors
# --------------------------------------------------------------------------------------------

def fill_gaps(values: np.ndarray) -> np.ndarray:
    """Fill NaN along the last axis: linear in time between values, nearest beyond the ends.

    Rows without any value stay all-NaN. Returns a new array.
    """
    values = np.asarray(values, dtype=float)
    out = values.copy()
    flat = out.reshape(-1, out.shape[-1])
    x = np.arange(out.shape[-1], dtype=float)
    nan = np.isnan(flat)
    # One np.interp per row (site); rows are few, days many.
    for i in np.flatnonzero(nan.any(axis=1) & ~nan.all(axis=1)):
        ok = ~nan[i]
        flat[i, ~ok] = np.interp(x[~ok], x[ok], flat[i, ok])
    return out


def to_forcing(
    site_day: pd.DataFrame,
    *,
    sites: Sequence[str] | None = None,
    years: Iterable[int] | None = None,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    threshold: float = QC_GOOD_DAY,
) -> ForcingBatch:
    """Dense forcing tensors for the LUE model from a site-day table.

    Args:
        site_day: A validated site-day table.
        sites: Site ids in the order wanted (default: all, in table order).
        years: Calendar years to keep (default: all).
        dtype: Tensor dtype.
        device: Tensor device.
        threshold: QC threshold of a good day (see :func:`good_days`).

    Returns:
        A :class:`ForcingBatch` on the common daily grid from the first to the last selected
        day of any site; days outside a site's record are padded (forcing filled with the
        nearest value, GPP_obs NaN, good False, in_record False).

    Raises:
        ValueError: for unknown site ids, duplicate ids, a site without days in ``years``, or a
            forcing variable a site never reports (nothing to fill from).
    """
    missing_cols = [c for c in ("site", "date", *FORCING_COLUMNS, "GPP_obs", *QC_COLUMNS)
                    if c not in site_day.columns]
    if missing_cols:
        raise ValueError(f"to_forcing: site_day lacks column(s) {missing_cols}")
    available = pd.unique(site_day["site"])
    if sites is None:
        site_list = [str(s) for s in available]
    else:
        site_list = [str(s) for s in sites]
        unknown = [s for s in site_list if s not in set(available)]
        if unknown:
            raise ValueError(f"to_forcing: unknown site id(s) {unknown[:10]}; the table has "
                             f"{len(available)} sites, e.g. {list(available[:5])}")
        dup = sorted({s for s in site_list if site_list.count(s) > 1})
        if dup:
            raise ValueError(f"to_forcing: duplicate site id(s) {dup}")
    if not site_list:
        raise ValueError("to_forcing: no sites selected")
    df = site_day[site_day["site"].isin(site_list)]
    if years is not None:
        year_list = sorted({int(y) for y in years})
        df = df[df["date"].dt.year.isin(year_list)]
        have = set(pd.unique(df["site"]))
        empty = [s for s in site_list if s not in have]
        if empty:
            raise ValueError(f"to_forcing: site(s) {empty[:10]} have no days in years "
                             f"{year_list}")
    if df.empty:
        raise ValueError("to_forcing: no rows selected")

    dates = pd.date_range(df["date"].min(), df["date"].max(), freq="D")
    n_sites, n_days = len(site_list), len(dates)
    site_code = pd.Categorical(df["site"], categories=site_list).codes.astype(np.int64)
    day_code = ((df["date"].to_numpy() - dates[0].to_datetime64())
                // np.timedelta64(1, "D")).astype(np.int64)

    def scatter(column: str, fill: float = np.nan) -> np.ndarray:
        arr = np.full((n_sites, n_days), fill, dtype=float)
        arr[site_code, day_code] = df[column].to_numpy(dtype=float)
        return arr

    in_record = np.zeros((n_sites, n_days), dtype=bool)
    in_record[site_code, day_code] = True
    if int(in_record.sum()) != len(df):
        raise DataError(f"to_forcing: {len(df) - int(in_record.sum())} duplicate (site, date) "
                         "rows; validate the table with schema.validate_site_day")

    def to_t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=dtype, device=device)

    forcing: dict[str, torch.Tensor] = {}
    for key in FORCING_COLUMNS:
        arr = fill_gaps(scatter(key))
        empty_rows = np.isnan(arr).all(axis=1)
        if empty_rows.any():
            bad = [site_list[i] for i in np.flatnonzero(empty_rows)]
            raise DataError(f"to_forcing: forcing {key!r} has no values at site(s) {bad[:10]}"
                             " in the selected period; nothing to fill gaps from")
        forcing[key] = to_t(arr)
    extra = {key: to_t(fill_gaps(scatter(key))) for key in EXTRA_KEYS if key in df.columns}
    qc = {key: to_t(np.nan_to_num(scatter(key, 0.0), nan=0.0)) for key in QC_COLUMNS}
    good_rows = good_days(df, threshold).to_numpy()
    good = np.zeros((n_sites, n_days), dtype=bool)
    good[site_code[good_rows], day_code[good_rows]] = True
    return ForcingBatch(
        sites=site_list,
        dates=dates,
        forcing=forcing,
        GPP_obs=to_t(scatter("GPP_obs")),
        good=torch.as_tensor(good, device=device),
        extra=extra,
        in_record=torch.as_tensor(in_record, device=device),
        qc=qc,
    )

"""Site features (paper section 2.1.2, SPEC section 3): definitions, computation, design matrix.

The paper describes every site by six classes of features:

=========  ==================================================================================
class      columns
=========  ==================================================================================
PFT        11 one-hot plant functional types ``PFT_<x>`` (:data:`~lue_spie.data.schema.PFTS`)
Clim       14 one-hot Koeppen-Geiger types ``Clim_<k>``
           (:data:`~lue_spie.data.schema.KOEPPEN_TYPES`)
BioClim    ``BIO1`` ... ``BIO19`` (WorldClim definitions, :func:`bioclim`) and the two aridity
           features ``AI1``, ``AI2`` (:func:`aridity`): the paper files aridity under BioClim
VIF        ``VIF1`` ... ``VIF11``, vegetation-index features (:func:`vegetation_index_features`)
NPdep      ``NdepNHX``, ``NdepNOY``, ``Pdep`` (atmospheric N and P deposition)
Soil       the 17 soil properties ``soil_<name>`` of the schema
=========  ==================================================================================

For a virtual FLUXNET the BioClim, aridity and VIF features are computed here from the site-day
forcing itself (:func:`site_features_from_site_day`), exactly as one would compute them from
gridded climate and satellite series for real sites; soil and deposition come from elsewhere.

:func:`feature_matrix` turns the ``sites`` table into the design matrix of every regression
method and of SPIE: one-hot categories and z-scored continuous features, where the mean and
standard deviation come from the training folds only (pass them as ``continuous_stats``).

:func:`climatology` gives each site's mean seasonal cycle (day of year 1-365), used by the
Sitesim method (similarity of the seasonal cycles of T, log precipitation, radiation, NDVI).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from lue_spie.data import schema

__all__ = [
    "BIO_NAMES",
    "ARIDITY_NAMES",
    "VIF_NAMES",
    "NPDEP_NAMES",
    "SOIL_NAMES",
    "CONTINUOUS_FEATURES",
    "PFT_ONEHOT",
    "CLIM_ONEHOT",
    "FEATURE_CLASSES",
    "FEATURE_NAMES",
    "DAYS_IN_MONTH",
    "bioclim",
    "aridity",
    "day_of_year_365",
    "monthly_climate",
    "climatology",
    "vegetation_index_features",
    "site_features_from_site_day",
    "feature_matrix",
    "feature_class_of",
]

BIO_NAMES: tuple[str, ...] = schema.BIO_COLUMNS
ARIDITY_NAMES: tuple[str, ...] = schema.AI_COLUMNS
VIF_NAMES: tuple[str, ...] = schema.VIF_COLUMNS
NPDEP_NAMES: tuple[str, ...] = schema.NPDEP_COLUMNS
#: The 17 soil columns, as the schema names them.
SOIL_NAMES: tuple[str, ...] = schema.SOIL_COLUMNS
#: Continuous features in design-matrix order.
CONTINUOUS_FEATURES: tuple[str, ...] = (
    BIO_NAMES + ARIDITY_NAMES + VIF_NAMES + NPDEP_NAMES + SOIL_NAMES
)
PFT_ONEHOT: tuple[str, ...] = tuple(f"PFT_{p}" for p in schema.PFTS)
CLIM_ONEHOT: tuple[str, ...] = tuple(f"Clim_{k}" for k in schema.KOEPPEN_TYPES)

#: Feature class -> design-matrix columns (paper section 2.1.2; aridity is in BioClim).
FEATURE_CLASSES: dict[str, tuple[str, ...]] = {
    "PFT": PFT_ONEHOT,
    "Clim": CLIM_ONEHOT,
    "BioClim": BIO_NAMES + ARIDITY_NAMES,
    "VIF": VIF_NAMES,
    "NPdep": NPDEP_NAMES,
    "Soil": SOIL_NAMES,
}
#: All design-matrix columns in order: PFT one-hot, Clim one-hot, then continuous.
FEATURE_NAMES: tuple[str, ...] = PFT_ONEHOT + CLIM_ONEHOT + CONTINUOUS_FEATURES

#: Mean number of days per calendar month (February 28.25), for monthly precipitation totals.
DAYS_IN_MONTH: np.ndarray = np.array([31, 28.25, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def feature_class_of(name: str) -> str:
    """The feature class (``"PFT"``, ``"Clim"``, ...) of a design-matrix column."""
    for cls, cols in FEATURE_CLASSES.items():
        if name in cols:
            return cls
    raise KeyError(f"unknown feature {name!r}; expected one of the columns of FEATURE_CLASSES")


# ----------------------------------------------------------------------------- BioClim
def _check_monthly(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] != 12:
        raise ValueError(f"bioclim: {name} must have 12 months on its last axis, got shape "
                         f"{x.shape}")
    return x


def _quarters(x: np.ndarray) -> np.ndarray:
    """Sums over the 12 circular three-month windows starting at each month (..., 12)."""
    return x + np.roll(x, -1, axis=-1) + np.roll(x, -2, axis=-1)


def _take(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.take_along_axis(x, idx[..., None], axis=-1)[..., 0]


def bioclim(tavg: np.ndarray, tmin: np.ndarray, tmax: np.ndarray,
            prec: np.ndarray) -> np.ndarray:
    """The 19 WorldClim bioclimatic variables from monthly climatologies.

    Follows the WorldClim definitions as implemented in ``dismo::biovars`` (Hijmans et al.;
    O'Donnell & Ignizio 2012), the reference the WorldClim BIO layers are computed with:

    ======  ==================================================================================
    BIO1    annual mean temperature: mean of the 12 ``tavg``
    BIO2    mean diurnal range: mean of ``tmax - tmin``
    BIO3    isothermality: ``100 * BIO2 / BIO7``
    BIO4    temperature seasonality: ``100 *`` standard deviation of ``tavg`` (n - 1)
    BIO5    max temperature of the warmest month: max of ``tmax``
    BIO6    min temperature of the coldest month: min of ``tmin``
    BIO7    temperature annual range: ``BIO5 - BIO6``
    BIO8    mean temperature of the wettest quarter
    BIO9    mean temperature of the driest quarter
    BIO10   mean temperature of the warmest quarter
    BIO11   mean temperature of the coldest quarter
    BIO12   annual precipitation: sum of ``prec``
    BIO13   precipitation of the wettest month
    BIO14   precipitation of the driest month
    BIO15   precipitation seasonality: coefficient of variation (``100 * sd / mean``, n - 1)
            of ``prec + 1`` (the ``+1`` as in dismo, against huge CVs in deserts)
    BIO16   precipitation of the wettest quarter
    BIO17   precipitation of the driest quarter
    BIO18   precipitation of the warmest quarter
    BIO19   precipitation of the coldest quarter
    ======  ==================================================================================

    A quarter is any three consecutive months, wrapping over the year end (12 windows);
    "warmest quarter" has the largest mean ``tavg``, "wettest" the largest ``prec`` sum; ties
    go to the earliest starting month.

    Args:
        tavg, tmin, tmax: Monthly mean, minimum and maximum temperature [degC], shape
            ``(..., 12)``, January first.
        prec: Monthly precipitation totals [mm], shape ``(..., 12)``.

    Returns:
        Array ``(..., 19)``: BIO1 ... BIO19 in order.
    """
    tavg = _check_monthly("tavg", tavg)
    tmin = _check_monthly("tmin", tmin)
    tmax = _check_monthly("tmax", tmax)
    prec = _check_monthly("prec", prec)
    shape = np.broadcast_shapes(tavg.shape, tmin.shape, tmax.shape, prec.shape)
    tavg, tmin, tmax, prec = (np.broadcast_to(a, shape) for a in (tavg, tmin, tmax, prec))

    out = np.empty(shape[:-1] + (19,))
    bio2 = np.mean(tmax - tmin, axis=-1)
    bio5 = np.max(tmax, axis=-1)
    bio6 = np.min(tmin, axis=-1)
    bio7 = bio5 - bio6
    out[..., 0] = np.mean(tavg, axis=-1)
    out[..., 1] = bio2
    with np.errstate(divide="ignore", invalid="ignore"):
        out[..., 2] = np.where(bio7 > 0, 100.0 * bio2 / bio7, np.nan)
    out[..., 3] = 100.0 * np.std(tavg, axis=-1, ddof=1)
    out[..., 4] = bio5
    out[..., 5] = bio6
    out[..., 6] = bio7

    tq = _quarters(tavg) / 3.0
    pq = _quarters(prec)
    wet_q = np.argmax(pq, axis=-1)
    dry_q = np.argmin(pq, axis=-1)
    warm_q = np.argmax(tq, axis=-1)
    cold_q = np.argmin(tq, axis=-1)
    out[..., 7] = _take(tq, wet_q)
    out[..., 8] = _take(tq, dry_q)
    out[..., 9] = _take(tq, warm_q)
    out[..., 10] = _take(tq, cold_q)

    out[..., 11] = np.sum(prec, axis=-1)
    out[..., 12] = np.max(prec, axis=-1)
    out[..., 13] = np.min(prec, axis=-1)
    p1 = prec + 1.0
    out[..., 14] = 100.0 * np.std(p1, axis=-1, ddof=1) / np.mean(p1, axis=-1)
    out[..., 15] = _take(pq, wet_q)
    out[..., 16] = _take(pq, dry_q)
    out[..., 17] = _take(pq, warm_q)
    out[..., 18] = _take(pq, cold_q)
    return out


def aridity(prec: np.ndarray, pet: np.ndarray) -> np.ndarray:
    """The two aridity features (schema ``AI1``, ``AI2``) from monthly P and PET.

    * ``AI1`` = annual P / annual PET, the aridity index of UNEP and of the Global Aridity
      Index v3 (Zomer et al. 2022): < 0.05 hyper-arid, < 0.2 arid, < 0.5 semi-arid,
      < 0.65 dry sub-humid, above humid. NaN where annual PET is 0.
    * ``AI2`` = annual PET [mm yr-1] (Global-AI_PET v3 analogue), the evaporative demand.

    Args:
        prec: Monthly precipitation totals [mm], shape ``(..., 12)``.
        pet: Monthly potential evapotranspiration totals [mm], shape ``(..., 12)``.

    Returns:
        Array ``(..., 2)``: AI1, AI2.
    """
    prec = _check_monthly("prec", prec)
    pet = _check_monthly("pet", pet)
    p_ann = prec.sum(axis=-1)
    e_ann = pet.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ai1 = np.where(e_ann > 0, p_ann / e_ann, np.nan)
    return np.stack([ai1, e_ann], axis=-1)


# ----------------------------------------------------------------------------- site-day helpers
def day_of_year_365(dates: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Day of year 1-365; in leap years 29 February shares day 59 with 28 February."""
    d = pd.DatetimeIndex(dates)
    doy = d.day_of_year.to_numpy().astype(np.int64)
    shift = d.is_leap_year & (doy > 59)
    return doy - shift.astype(np.int64)


def _check_columns(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{what}: site_day lacks column(s) {missing}")


def monthly_climate(
    site_day: pd.DataFrame, variables: Sequence[str] = ("T", "TMIN", "TMAX", "P")
) -> dict[str, pd.DataFrame]:
    """Monthly climatologies per site: mean daily value of each variable per calendar month.

    Averages all days of a calendar month over all years (NaN days left out); multiply a
    daily-rate variable by :data:`DAYS_IN_MONTH` for monthly totals (precipitation, PET).

    Returns:
        Dict variable -> DataFrame indexed by site, columns 1..12.
    """
    _check_columns(site_day, ["site", "date", *variables], "monthly_climate")
    month = pd.DatetimeIndex(site_day["date"]).month
    g = site_day[list(variables)].groupby([site_day["site"].to_numpy(), month.to_numpy()],
                                          sort=True).mean()
    out = {}
    for v in variables:
        tab = g[v].unstack()
        out[v] = tab.reindex(columns=range(1, 13))
    return out


def _fill_circular(a: np.ndarray) -> np.ndarray:
    """Fill NaN along the last axis by linear interpolation on a circle (all-NaN rows stay)."""
    a = a.copy()
    n = a.shape[-1]
    x = np.arange(n)
    for i in np.flatnonzero(np.isnan(a).any(axis=-1)):
        row = a[i]
        ok = ~np.isnan(row)
        if not ok.any():
            continue
        xp = np.concatenate([x[ok] - n, x[ok], x[ok] + n])
        fp = np.tile(row[ok], 3)
        a[i] = np.interp(x, xp, fp)
    return a


def _smooth_circular(a: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` days on the circle of the year (last axis)."""
    if window <= 1:
        return a
    half = window // 2
    pad = np.concatenate([a[..., -half:], a, a[..., : window - half - 1]], axis=-1)
    c = np.cumsum(np.concatenate([np.zeros(a.shape[:-1] + (1,)), pad], axis=-1), axis=-1)
    return (c[..., window:] - c[..., :-window]) / window


def climatology(site_day: pd.DataFrame, variables: Sequence[str], *, smooth_days: int = 0,
                log: Sequence[str] = ()) -> dict[str, pd.DataFrame]:
    """Daily mean seasonal cycle per site (day of year 1-365), vectorised over sites.

    Each day of year is averaged over all years (NaN left out; 29 February counts as day 59);
    days of year without any value are filled by circular linear interpolation; then an
    optional centred circular moving average of ``smooth_days`` days; then ``log1p`` for the
    variables named in ``log`` (e.g. ``log=("P",)`` for the log-precipitation cycle of
    Sitesim; the log of the mean, robust to dry days).

    Args:
        site_day: Tidy site-day table (columns ``site``, ``date`` and the variables).
        variables: Columns to summarise.
        smooth_days: Moving-average window in days (0 or 1: none).
        log: Subset of ``variables`` to transform with ``log1p`` after averaging.

    Returns:
        Dict variable -> DataFrame indexed by site (sorted), columns 1..365.

    Example:
        The seasonal cycles of the Sitesim method (temperature, log precipitation, global
        radiation, NDVI)::

            cyc = climatology(site_day, ["T", "P", "SW_IN", "NDVI"], log=("P",),
                              smooth_days=15)
    """
    _check_columns(site_day, ["site", "date", *variables], "climatology")
    bad_log = [v for v in log if v not in variables]
    if bad_log:
        raise ValueError(f"climatology: log={bad_log} names variables not in {list(variables)}")
    doy = day_of_year_365(site_day["date"])
    g = site_day[list(variables)].groupby([site_day["site"].to_numpy(), doy], sort=True).mean()
    out = {}
    for v in variables:
        tab = g[v].unstack().reindex(columns=range(1, 366))
        arr = _smooth_circular(_fill_circular(tab.to_numpy(dtype=np.float64)), smooth_days)
        if v in log:
            arr = np.log1p(np.clip(arr, 0.0, None))
        out[v] = pd.DataFrame(arr, index=tab.index.rename("site"), columns=tab.columns)
    return out


# ----------------------------------------------------------------------------- VIF
#: Centred moving-average window [d] applied to NDVI and FAPAR before yearly extremes, peak day
#: and season length are taken (so single noisy days do not set a yearly maximum).
VIF_SMOOTH_DAYS = 15
#: A year counts for the yearly VIF statistics when at least this fraction of its days has NDVI.
VIF_MIN_YEAR_FRACTION = 0.5


def vegetation_index_features(site_day: pd.DataFrame) -> pd.DataFrame:
    """The 11 vegetation-index features (schema ``VIF_DEFINITIONS``) from NDVI and FAPAR.

    ======  ==================================================================================
    VIF1    mean NDVI over the record
    VIF2    mean over years of the yearly maximum of NDVI
    VIF3    mean over years of the yearly minimum of NDVI
    VIF4    mean yearly NDVI amplitude (yearly max - yearly min)
    VIF5    standard deviation of daily NDVI over the record
    VIF6    mean FAPAR over the record
    VIF7    range of the annual-mean NDVI across years, max - min (the paper's VIF7 is the
            range of mean annual EVI); 0 with a single year
    VIF8    mean over years of the yearly maximum of FAPAR
    VIF9    growing-season length [d yr-1]: days per year with FAPAR above the year's
            minimum + 0.5 x its amplitude, averaged over years
    VIF10   mean day of year (1-365) of the yearly FAPAR maximum; a circular mean, so that
            peaks around New Year at southern sites average correctly
    VIF11   linear trend of the annual-mean NDVI [yr-1] (least squares over years); NaN with
            fewer than two years
    ======  ==================================================================================

    Yearly extremes, peak day and season length use the series smoothed with a centred
    :data:`VIF_SMOOTH_DAYS`-day moving average (NaN days left out); means and the standard
    deviation use the daily values. Yearly statistics use the years in which at least
    :data:`VIF_MIN_YEAR_FRACTION` of the days have NDVI; a site without such a year gets NaN
    for them.

    Args:
        site_day: Tidy site-day table with ``site``, ``date``, ``NDVI``, ``FAPAR``, sorted by
            site and date.

    Returns:
        DataFrame indexed by site (sorted) with columns VIF1 ... VIF11.
    """
    _check_columns(site_day, ["site", "date", "NDVI", "FAPAR"], "vegetation_index_features")
    site = site_day["site"].astype(str).to_numpy()
    dates = pd.DatetimeIndex(site_day["date"])
    year = dates.year.to_numpy()
    doy = day_of_year_365(dates)
    ndvi = site_day["NDVI"].to_numpy(dtype=np.float64)
    fapar = site_day["FAPAR"].to_numpy(dtype=np.float64)
    frame = pd.DataFrame({"site": site, "year": year, "doy": doy, "ndvi": ndvi, "fapar": fapar})
    smooth = frame.groupby("site", sort=False)[["ndvi", "fapar"]].transform(
        lambda x: x.rolling(VIF_SMOOTH_DAYS, center=True, min_periods=1).mean())
    frame["ndvi_s"] = smooth["ndvi"].to_numpy()
    frame["fapar_s"] = smooth["fapar"].to_numpy()

    by_site = frame.groupby("site", sort=True)
    index = pd.Index(sorted(set(site)), name="site")
    vif = pd.DataFrame(index=index, columns=list(VIF_NAMES), dtype=np.float64)
    vif["VIF1"] = by_site["ndvi"].mean()
    vif["VIF5"] = by_site["ndvi"].std(ddof=1)
    vif["VIF6"] = by_site["fapar"].mean()

    g = frame.groupby(["site", "year"], sort=True)
    yearly = pd.DataFrame({
        "n": g.size(),
        "n_ndvi": g["ndvi"].count(),
        "ndvi_mean": g["ndvi"].mean(),
        "ndvi_max": g["ndvi_s"].max(),
        "ndvi_min": g["ndvi_s"].min(),
        "fapar_max": g["fapar_s"].max(),
        "fapar_min": g["fapar_s"].min(),
        "n_fapar": g["fapar_s"].count(),
    })
    # Day of year of the yearly FAPAR maximum (first one on ties).
    peak_rows = frame.loc[frame["fapar_s"].notna()].groupby(["site", "year"])["fapar_s"].idxmax()
    yearly["peak_doy"] = frame.loc[peak_rows.to_numpy(), "doy"].to_numpy(dtype=np.float64)
    # Days above the yearly half-amplitude threshold, scaled to a full year.
    thr = (yearly["fapar_min"] + 0.5 * (yearly["fapar_max"] - yearly["fapar_min"]))
    frame["thr"] = thr.reindex(pd.MultiIndex.from_arrays([frame["site"], frame["year"]])) \
        .to_numpy()
    above = (frame["fapar_s"] > frame["thr"]).groupby([frame["site"], frame["year"]]).sum()
    yearly["season"] = above / yearly["n_fapar"].where(yearly["n_fapar"] > 0) * 365.0
    yearly = yearly[yearly["n_ndvi"] >= VIF_MIN_YEAR_FRACTION * yearly["n"]]

    ys = yearly.groupby(level="site")
    vif["VIF2"] = ys["ndvi_max"].mean()
    vif["VIF3"] = ys["ndvi_min"].mean()
    vif["VIF4"] = (yearly["ndvi_max"] - yearly["ndvi_min"]).groupby(level="site").mean()
    vif["VIF7"] = ys["ndvi_mean"].max() - ys["ndvi_mean"].min()
    vif["VIF8"] = ys["fapar_max"].mean()
    vif["VIF9"] = ys["season"].mean()
    angle = 2.0 * np.pi * (yearly["peak_doy"] - 1.0) / 365.0
    mean_angle = np.arctan2(np.sin(angle).groupby(level="site").mean(),
                            np.cos(angle).groupby(level="site").mean())
    vif["VIF10"] = (mean_angle % (2.0 * np.pi)) * 365.0 / (2.0 * np.pi) + 1.0
    yr = yearly.index.get_level_values("year").to_numpy(dtype=np.float64)
    yv = pd.DataFrame({"x": yr, "y": yearly["ndvi_mean"].to_numpy()}, index=yearly.index)
    yv["x"] -= yv.groupby(level="site")["x"].transform("mean")
    yv["y"] -= yv.groupby(level="site")["y"].transform("mean")
    sxx = (yv["x"] ** 2).groupby(level="site").sum()
    sxy = (yv["x"] * yv["y"]).groupby(level="site").sum()
    vif["VIF11"] = (sxy / sxx.where(sxx > 0))
    return vif.reindex(index)


def site_features_from_site_day(site_day: pd.DataFrame) -> pd.DataFrame:
    """BioClim (BIO1-19), aridity (AI1, AI2) and VIF1-11 computed from a site-day table.

    Monthly climatologies of T, TMIN, TMAX (means) and P (totals: mean daily P times
    :data:`DAYS_IN_MONTH`) give BIO1-19. PET for the aridity features is the project's
    radiation-based PET (:func:`lue_spie.data.bucket.pet`, Makkink from SW_IN, T and PA), the
    same that drives the virtual FLUXNET soil-water bucket. Missing inputs give NaN features.

    Returns:
        DataFrame indexed by site with BIO1..BIO19, AI1, AI2, VIF1..VIF11.
    """
    from lue_spie.data.bucket import pet as _pet

    _check_columns(site_day, ["T", "TMIN", "TMAX", "P", "SW_IN", "PA"],
                   "site_features_from_site_day")
    pet = _pet(site_day["SW_IN"].to_numpy(dtype=np.float64),
               site_day["T"].to_numpy(dtype=np.float64),
               site_day["PA"].to_numpy(dtype=np.float64))
    tab = site_day[["site", "date", "T", "TMIN", "TMAX", "P"]].assign(PET=pet)
    m = monthly_climate(tab, ("T", "TMIN", "TMAX", "P", "PET"))
    prec = m["P"].to_numpy() * DAYS_IN_MONTH
    pet_m = m["PET"].to_numpy() * DAYS_IN_MONTH
    bio = bioclim(m["T"].to_numpy(), m["TMIN"].to_numpy(), m["TMAX"].to_numpy(), prec)
    ai = aridity(prec, pet_m)
    out = pd.DataFrame(np.concatenate([bio, ai], axis=1), index=m["T"].index.rename("site"),
                       columns=list(BIO_NAMES + ARIDITY_NAMES))
    return out.join(vegetation_index_features(site_day))


# ----------------------------------------------------------------------------- design matrix
def feature_matrix(
    sites: pd.DataFrame, *, continuous_stats: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The design matrix of the site features (paper section 2.1.2, equation 9).

    * ``PFT_<x>`` for the 11 PFTs and ``Clim_<k>`` for the 14 Koeppen types: 1.0 / 0.0.
    * Continuous features (:data:`CONTINUOUS_FEATURES`): ``(x - mean) / std``.

    The mean and std come from ``continuous_stats`` when given (the training folds' rows only,
    SPEC section 3: compute them with ``feature_matrix(train_sites)`` and pass the returned
    stats for the held-out sites) or else from the given rows (NaN left out, std with n - 1).
    A std that is 0 (up to round-off, ``<= 1e-12 * max(1, |mean|)``) or NaN (a constant or
    all-missing feature) is replaced by 1, so the feature becomes ``x - mean``. Rule for
    missing values: a continuous feature that is NaN after z-scoring (missing at the site, or
    no mean available) is set to 0, i.e. to the training mean, which adds no information.

    Args:
        sites: The sites table (schema columns; ``site``, ``PFT``, ``koeppen`` and the
            continuous feature columns are needed).
        continuous_stats: DataFrame indexed by feature name with columns ``mean`` and ``std``
            (as returned by a previous call), or None.

    Returns:
        ``(X, stats)``: X indexed by site with columns :data:`FEATURE_NAMES` (float64), and
        the stats used (index :data:`CONTINUOUS_FEATURES`, columns ``mean``, ``std``).
    """
    _check_columns(sites, ["site", "PFT", "koeppen", *CONTINUOUS_FEATURES], "feature_matrix")
    pft = sites["PFT"].astype(str).to_numpy()
    kg = sites["koeppen"].astype(str).to_numpy()
    bad = sorted(set(pft) - set(schema.PFTS))
    if bad:
        raise ValueError(f"feature_matrix: sites column 'PFT' has unknown value(s) {bad}; "
                         f"expected one of {schema.PFTS}")
    bad = sorted(set(kg) - set(schema.KOEPPEN_TYPES))
    if bad:
        raise ValueError(f"feature_matrix: sites column 'koeppen' has unknown value(s) {bad}; "
                         f"expected one of {schema.KOEPPEN_TYPES}")
    index = pd.Index(sites["site"].astype(str).to_numpy(), name="site")
    onehot_p = (pft[:, None] == np.asarray(schema.PFTS)[None, :]).astype(np.float64)
    onehot_k = (kg[:, None] == np.asarray(schema.KOEPPEN_TYPES)[None, :]).astype(np.float64)

    cont = sites[list(CONTINUOUS_FEATURES)].to_numpy(dtype=np.float64)
    if continuous_stats is None:
        with np.errstate(invalid="ignore"), _quiet():
            mean = np.nanmean(cont, axis=0)
            std = np.nanstd(cont, axis=0, ddof=1) if len(cont) > 1 else np.full(cont.shape[1],
                                                                                 np.nan)
        stats = pd.DataFrame({"mean": mean, "std": std}, index=list(CONTINUOUS_FEATURES))
    else:
        missing = [c for c in CONTINUOUS_FEATURES if c not in continuous_stats.index]
        if missing or not {"mean", "std"} <= set(continuous_stats.columns):
            raise ValueError("feature_matrix: continuous_stats must be indexed by the continuous "
                             f"features with columns 'mean' and 'std'; missing rows {missing}, "
                             f"columns {list(continuous_stats.columns)}")
        stats = continuous_stats.loc[list(CONTINUOUS_FEATURES), ["mean", "std"]].astype(
            np.float64)
    mean = stats["mean"].to_numpy()
    std = stats["std"].to_numpy()
    # A std at round-off level of the mean counts as 0 (a constant feature).
    tiny = 1e-12 * np.maximum(1.0, np.abs(np.nan_to_num(mean)))
    std_used = np.where(np.isfinite(std) & (std > tiny), std, 1.0)
    z = (cont - mean) / std_used
    z = np.where(np.isfinite(z), z, 0.0)
    X = pd.DataFrame(np.concatenate([onehot_p, onehot_k, z], axis=1), index=index,
                     columns=list(FEATURE_NAMES))
    return X, stats


class _quiet:
    """Silence numpy's 'mean of empty slice' warnings for all-NaN columns."""

    def __enter__(self) -> None:
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)

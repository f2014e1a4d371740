"""Read-only views of extrapolation results for the method chapters of the book.

The method chapters (clustering and similarity, pooled optimisation, regression, P-model) run
their methods once with :func:`~lue_spie.extrapolate.run` and then only read
files. What they show (predicted against calibrated and true parameters, fallbacks, held-out
NSE, held-out GPP of a few sites, the donors of Sitesim, the acclimation of the P-model) is
computed here, from those files and the dataset, so that a chapter only calls and plots and
the same numbers can be tested.

- :func:`available_methods`, :func:`load_predictions`: the predictions of several methods in
  one long table (``method, site, fold``, the 13 parameters, ``note``, held-out scores);
- :func:`fold_coverage`, :func:`fold_composition`: how the split covers PFTs and climates;
- :func:`fallback_counts`, :func:`fallbacks`: held-out sites whose group had no training site;
- :func:`sitesim_donors`, :func:`seasonal_cycles`: who gave Sitesim its vector, and why;
- :func:`parameter_comparison`, :func:`recovery_overview`, :func:`spread_ratio`,
  :func:`pooled_vectors`, :func:`scaled_parameters`: predicted parameters against
  calibrated and true ones;
- :func:`heldout_nse`, :func:`nse_summary`, :func:`heldout_gpp`: held-out GPP skill;
- :func:`unit_seconds`: how long each method took;
- :func:`spie_training`, :func:`true_parameter_nse`: SPIE's training curves and what it
  converged to, and the NSE the true parameters score (virtual FLUXNET);
- :func:`pmodel_acclimation`, :func:`gpp_by_temperature`: what the P-model does.

Nothing here fits or optimises; the P-model view runs the (fixed) P-model on one site.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lue_spie.data.io import Dataset
from lue_spie.evaluate import obs_and_sim
from lue_spie.extrapolate.cv import FoldSplit
from lue_spie.extrapolate.step import read_method_results
from lue_spie.layout import CalibrationFiles, ExtrapolationFiles, MethodFiles
from lue_spie.methods.base import paper_order, registered_methods
from lue_spie.parameter_skill import recovery_scores
from lue_spie.params import PARAMETERS, lag_mask, to_scaled

__all__ = [
    "SITE_CALIBRATION",
    "available_methods",
    "load_predictions",
    "fold_coverage",
    "fold_composition",
    "fallback_counts",
    "fallbacks",
    "sitesim_donors",
    "seasonal_cycles",
    "parameter_comparison",
    "recovery_overview",
    "spread_ratio",
    "pooled_vectors",
    "scaled_parameters",
    "heldout_nse",
    "nse_summary",
    "HeldOutGPP",
    "heldout_gpp",
    "unit_seconds",
    "TRUE_PARAMETERS",
    "SPIETraining",
    "spie_training",
    "true_parameter_nse",
    "pmodel_acclimation",
    "gpp_by_temperature",
]

#: The label of the site-calibrated reference in the tables of this module.
SITE_CALIBRATION = "site calibration"

#: The label of the virtual FLUXNET's true parameters in the tables of this module.
TRUE_PARAMETERS = "true parameters"

#: A prediction whose ``note`` contains this word used a fallback (every method writes it so).
_FALLBACK = "fallback"
#: Sitesim's note: ``donor <site> (D = <similarity>)`` (see lue_spie.methods.similarity).
_DONOR = re.compile(r"donor (?P<donor>\S+) \(D = (?P<D>[-+0-9.eE]+|nan)\)")


def _order(names: Sequence[str]) -> list[str]:
    """Method names in the paper's order (unknown names after, as given); the site-calibrated
    reference first."""
    names = list(dict.fromkeys(names))
    first = [SITE_CALIBRATION] if SITE_CALIBRATION in names else []
    known = [n for n in paper_order() if n in names]
    return first + known + [n for n in names if n not in known and n not in first]


# ---------------------------------------------------------------------------------- loading
def _method(out: str | Path, method: str) -> MethodFiles:
    return ExtrapolationFiles(Path(out)).method(method)


def _split_checksum(out: str | Path) -> str | None:
    """Checksum of the split in the extrapolation folder (None when there is none)."""
    from lue_spie import store

    path = ExtrapolationFiles(Path(out)).folds
    if not path.is_file():
        return None
    return store.read_provenance(path).get("settings", {}).get("checksum")


def _method_split(out: str | Path, method: str) -> str | None:
    """The split checksum recorded with a method's gathered results."""
    from lue_spie import store

    return store.read_provenance(_method(out, method).params).get("settings", {}).get("split")


def available_methods(out: str | Path) -> list[str]:
    """Methods with gathered results on the current split, in the paper's order.

    A method counts when ``OUT/<method>/params.parquet`` exists and was made on the split now
    in ``OUT/folds.parquet``; results left from an earlier split (the split is drawn again
    when the seed, the number of folds or the sites change) are left out, so methods scored
    on different folds are never shown side by side.
    """
    current = _split_checksum(out)
    return [m for m in registered_methods()
            if _method(out, m).params.is_file()
            and _method_split(out, m) == current]


def load_predictions(out: str | Path, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """The held-out predictions of several methods in one long table.

    Args:
        out: The extrapolation folder.
        methods: Method names (default: :func:`available_methods`).

    Returns:
        One row per (method, held-out site): ``method, site, fold``, the 13 parameters (NaN
        for a GPP method), ``note`` and the held-out scores the runner wrote (``nse``, and for
        parameter methods ``cost, C_ideal, C_nonideal``).

    Raises:
        FileNotFoundError: naming a method without results.
        ValueError: naming methods whose results belong to another split than the one in
            ``OUT/folds.parquet``.
    """
    methods = list(methods) if methods is not None else available_methods(out)
    if not methods:
        raise FileNotFoundError(f"{out}: no extrapolation results (run lue-spie extrapolate)")
    tables = [read_method_results(out, m)[0].assign(method=m) for m in methods]
    current = _split_checksum(out)
    stale = [m for m in methods if _method_split(out, m) != current]
    if stale:
        raise ValueError(f"{out}: the results of {stale} were made on another split than the "
                         "one in folds.parquet; run them again with the current seed and "
                         "number of folds")
    t = pd.concat(tables, ignore_index=True)
    first = ["method", "site", "fold"]
    return t[first + [c for c in t.columns if c not in first]]


def _params_of(predictions: pd.DataFrame, method: str) -> pd.DataFrame:
    p = predictions[predictions["method"] == method]
    if p.empty:
        raise KeyError(f"no predictions of method {method!r} (methods: "
                       f"{sorted(predictions['method'].unique())})")
    return p


def _predicts_params(p: pd.DataFrame) -> bool:
    return bool(p[list(PARAMETERS)].notna().any().any())


# ------------------------------------------------------------------------------------ split
def fold_coverage(split: FoldSplit) -> pd.DataFrame:
    """How each fold's training set covers the PFTs and Koeppen main groups.

    Returns:
        One row per fold: ``held_out`` and ``training`` sites, and for PFTs and main groups
        the number of types present in the training set out of all types of the dataset and
        out of the types with at least two sites (the coverage rule asks for all of the
        latter: ``*_rule_ok``).
    """
    t = split.table
    rows = []
    for k in range(split.n_folds):
        train = t[t["fold"] != k]
        row = {"fold": k, "held_out": int((t["fold"] == k).sum()), "training": len(train)}
        for col, label in (("PFT", "PFT"), ("main_group", "main group")):
            counts = t[col].value_counts()
            present = set(train[col])
            multi = set(counts.index[counts >= 2])
            row[f"{label}s in training"] = f"{len(present)} of {counts.size}"
            row[f"{label} rule ok"] = multi <= present
        rows.append(row)
    return pd.DataFrame(rows).set_index("fold")


def fold_composition(split: FoldSplit, by: str = "PFT") -> pd.DataFrame:
    """Held-out sites per fold and type (a fold x type count table; ``by`` a split column)."""
    if by not in split.table.columns:
        raise KeyError(f"fold_composition: by={by!r} is not a column of the split "
                       f"({list(split.table.columns)})")
    return pd.crosstab(split.table["fold"], split.table[by])


# -------------------------------------------------------------------------------- fallbacks
def fallbacks(predictions: pd.DataFrame) -> pd.DataFrame:
    """The predictions that used a fallback (their ``note`` says ``fallback``).

    Returns:
        ``method, site, fold, note`` of those rows.
    """
    used = predictions["note"].fillna("").str.contains(_FALLBACK)
    return predictions.loc[used, ["method", "site", "fold", "note"]].reset_index(drop=True)


def fallback_counts(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per method: held-out sites, how many of them used a fallback, and which.

    A grouping method falls back to all training sites, Sitesim to the most similar of all
    training sites and OPT-PFT to the OPT-All vector of the fold when no training site shares
    the held-out site's type (a PFT or climate group with a single site in the dataset);
    methods without a fallback count 0.
    """
    fb = fallbacks(predictions)
    rows = []
    for m in _order(predictions["method"].unique()):
        f = fb[fb["method"] == m]
        n = int((predictions["method"] == m).sum())
        rows.append({"method": m, "held_out": n, "fallbacks": len(f),
                     "share": len(f) / n if n else np.nan,
                     "sites": ", ".join(sorted(f["site"]))})
    return pd.DataFrame(rows).set_index("method")


# --------------------------------------------------------------------------------- Sitesim
def sitesim_donors(predictions: pd.DataFrame, method: str = "Sitesim") -> pd.DataFrame:
    """The donor of every held-out site of Sitesim and its similarity D.

    Read from the predictions' ``note`` (``donor <site> (D = <value>)``, written by
    :class:`lue_spie.methods.similarity.Sitesim`).

    Returns:
        ``site, fold, donor, D, fallback`` (the donor is of another PFT) and ``nse``.

    Raises:
        ValueError: when a note does not name a donor.
    """
    p = _params_of(predictions, method)
    parsed = p["note"].fillna("").str.extract(_DONOR)
    bad = p.loc[parsed["donor"].isna(), "site"].tolist()
    if bad:
        raise ValueError(f"sitesim_donors: the notes of site(s) {bad[:10]} name no donor")
    return pd.DataFrame({
        "site": p["site"].to_numpy(), "fold": p["fold"].to_numpy(),
        "donor": parsed["donor"].to_numpy(), "D": parsed["D"].astype(float).to_numpy(),
        "fallback": p["note"].str.contains(_FALLBACK).to_numpy(),
        "nse": p["nse"].to_numpy(),
    }).reset_index(drop=True)


def seasonal_cycles(dataset: Dataset, sites: Sequence[str], *,
                    years: Sequence[int] | None = None,
                    smooth_days: int = 15) -> dict[str, pd.DataFrame]:
    """The four seasonal cycles Sitesim compares, for some sites (before normalisation).

    Mean daily cycles of air temperature [degC], log(1 + precipitation [mm d-1]), global
    radiation [W m-2] and NDVI [-], smoothed over ``smooth_days`` and shifted by half a year at
    southern-hemisphere sites, exactly as :func:`lue_spie.methods.similarity.seasonal_vectors`
    builds them.

    Returns:
        Variable -> table indexed by site (in the order of ``sites``), 365 columns.
    """
    from lue_spie.methods.similarity import seasonal_vectors

    sites = [str(s) for s in sites]
    sd = dataset.site_day
    sd = sd[sd["site"].isin(sites)]
    if years is not None:
        sd = sd[sd["date"].dt.year.isin([int(y) for y in years])]
    missing = sorted(set(sites) - set(sd["site"]))
    if missing:
        raise KeyError(f"seasonal_cycles: no days of site(s) {missing[:10]} in the dataset")
    lat = dataset.sites.set_index("site")["lat"]
    cycles = seasonal_vectors(sd, lat, smooth_days=smooth_days)
    return {v: t.loc[sites] for v, t in cycles.items()}


# ------------------------------------------------------------------------------ parameters
def _koeppen(sites_table: pd.DataFrame) -> pd.Series:
    return sites_table.set_index("site")["koeppen"]


def _ok_params(table: pd.DataFrame) -> pd.DataFrame:
    """``site`` + 13 parameters of the usable rows of a calibration (or truth) table."""
    t = table[table["status"] == "ok"] if "status" in table.columns else table
    return t[["site", *PARAMETERS]].reset_index(drop=True)


def parameter_comparison(predictions: pd.DataFrame, calibration: pd.DataFrame,
                         sites_table: pd.DataFrame,
                         truth: pd.DataFrame | None = None) -> pd.DataFrame:
    """Predicted, site-calibrated and (virtual FLUXNET) true value of every free parameter.

    Args:
        predictions: From :func:`load_predictions` (GPP methods are left out).
        calibration: The site-calibration table (only rows with status ``"ok"`` count).
        sites_table: The dataset's sites table (``site``, ``koeppen``).
        truth: True parameters (``site`` + 13), or None for real data.

    Returns:
        Long table ``method, site, fold, parameter, predicted, calibrated, true`` (``true``
        NaN without truth; ``calibrated`` NaN for a site calibration skipped), one row per
        parameter that is free at the site (lags fixed at 0 by the lag mask are left out).
    """
    koeppen = _koeppen(sites_table)
    cal = _ok_params(calibration).set_index("site")
    tru = _ok_params(truth).set_index("site") if truth is not None else None
    rows = []
    for m in _order(predictions["method"].unique()):
        p = _params_of(predictions, m)
        if not _predicts_params(p):
            continue
        free = lag_mask(list(koeppen.reindex(p["site"])))
        for j, name in enumerate(PARAMETERS):
            keep = free[:, j]
            s = p["site"].to_numpy()[keep]
            rows.append(pd.DataFrame({
                "method": m, "site": s, "fold": p["fold"].to_numpy()[keep], "parameter": name,
                "predicted": p[name].to_numpy(float)[keep],
                "calibrated": cal[name].reindex(s).to_numpy(float),
                "true": tru[name].reindex(s).to_numpy(float) if tru is not None else np.nan,
            }))
    cols = ["method", "site", "fold", "parameter", "predicted", "calibrated", "true"]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=cols)


def recovery_overview(predictions: pd.DataFrame, calibration: pd.DataFrame,
                      sites_table: pd.DataFrame,
                      truth: pd.DataFrame | None = None) -> pd.DataFrame:
    """How well each method's predicted parameters match the calibrated and the true ones.

    Per method and parameter, :func:`lue_spie.parameter_skill.recovery_scores` (NSE, R2,
    RMSE and median error as shares of the range, across held-out sites, over the sites
    where the parameter is free)
    with the site-calibrated vectors as reference and, when ``truth`` is given, with the true
    vectors; site calibration itself is scored against the truth too (row
    :data:`SITE_CALIBRATION`).

    Returns:
        Long table ``reference`` (``"calibrated"`` or ``"truth"``), ``method``, ``parameter``,
        ``sites``, ``NSE``, ``R2``, ``RMSE / range``, ``median |error| / range``.
    """
    koeppen = _koeppen(sites_table)
    refs = {"calibrated": _ok_params(calibration)}
    if truth is not None:
        refs["truth"] = _ok_params(truth)
    estimates = {m: _params_of(predictions, m) for m in _order(predictions["method"].unique())}
    estimates = {m: p for m, p in estimates.items() if _predicts_params(p)}
    out = []
    for ref_name, ref in refs.items():
        todo = dict(estimates)
        if ref_name == "truth":
            todo = {SITE_CALIBRATION: _ok_params(calibration), **todo}
        for m, est in todo.items():
            est = est[["site", *PARAMETERS]].assign(koeppen=lambda d: d["site"].map(koeppen))
            s = recovery_scores(ref, est).reset_index()
            out.append(s.assign(reference=ref_name, method=m))
    if not out:
        return pd.DataFrame(columns=["reference", "method", "parameter", "sites", "NSE", "R2",
                                     "RMSE / range", "median |error| / range"])
    t = pd.concat(out, ignore_index=True)
    first = ["reference", "method", "parameter"]
    return t[first + [c for c in t.columns if c not in first]]


def spread_ratio(predictions: pd.DataFrame, calibration: pd.DataFrame,
                 sites_table: pd.DataFrame) -> pd.DataFrame:
    """Across held-out sites: standard deviation of the predicted values over that of the
    site-calibrated values, per method and parameter (free sites only).

    1 means the method reproduces the spread of the calibrated parameters across sites; a
    value near 0 means it predicts almost the same value everywhere (a regression that
    cannot tell sites apart falls back on the mean of its targets).

    Returns:
        A table indexed by method with one column per parameter.
    """
    comp = parameter_comparison(predictions, calibration, sites_table)
    comp = comp.dropna(subset=["predicted", "calibrated"])
    g = comp.groupby(["method", "parameter"], sort=False)
    ratio = (g["predicted"].std() / g["calibrated"].std()).unstack("parameter")
    ratio = ratio.reindex(columns=[p for p in PARAMETERS if p in ratio.columns])
    return ratio.reindex(_order(ratio.index))


def pooled_vectors(predictions: pd.DataFrame, method: str, sites_table: pd.DataFrame,
                   by: str | None = None) -> pd.DataFrame:
    """The vectors of a method with one vector per fold (and group), in the [0, 1]-scaled space.

    OPT-All gives every held-out site of a fold the same vector, OPT-PFT every held-out site of
    a PFT; only the lag parameters differ, because each site's lag mask is applied last. This
    view recovers the fold's (group's) vector: every parameter from the held-out sites, a lag
    from those of its sites where it is free (NaN when none of them is), fallback predictions
    left out.

    Args:
        predictions: From :func:`load_predictions`.
        method: E.g. ``"OPT-All"`` or ``"OPT-PFT"``.
        sites_table: The sites table (``site``, ``koeppen`` and the ``by`` column).
        by: ``None`` (one vector per fold) or a sites-table column (``"PFT"``).

    Returns:
        One row per fold (and group): ``fold``, ``group`` (``"all"`` when ``by`` is None),
        ``n_held_out`` and the 13 scaled parameters.
    """
    p = _params_of(predictions, method)
    p = p[~p["note"].fillna("").str.contains(_FALLBACK)]
    info = sites_table.set_index("site").reindex(p["site"])
    free = lag_mask(list(info["koeppen"]))
    scaled = np.where(free, to_scaled(p[list(PARAMETERS)].to_numpy(float)), np.nan)
    frame = pd.DataFrame(scaled, columns=list(PARAMETERS))
    frame.insert(0, "fold", p["fold"].to_numpy())
    frame.insert(1, "group", info[by].to_numpy() if by else "all")
    g = frame.groupby(["fold", "group"], sort=True)
    out = g[list(PARAMETERS)].max()  # equal within a group where free; NaN where never free
    out.insert(0, "n_held_out", g.size())
    return out.reset_index()


def scaled_parameters(table: pd.DataFrame, sites_table: pd.DataFrame) -> pd.DataFrame:
    """A parameter table in the [0, 1]-scaled space, NaN where the lag mask fixes a parameter.

    Args:
        table: ``site`` + the 13 parameters (rows whose ``status`` is not ``"ok"`` left out).
        sites_table: The sites table (``site``, ``koeppen``).

    Returns:
        ``site`` + the 13 scaled parameters.
    """
    t = _ok_params(table)
    free = lag_mask(list(_koeppen(sites_table).reindex(t["site"])))
    scaled = np.where(free, to_scaled(t[list(PARAMETERS)].to_numpy(float)), np.nan)
    out = pd.DataFrame(scaled, columns=list(PARAMETERS))
    out.insert(0, "site", t["site"].to_numpy())
    return out


# ------------------------------------------------------------------------------------- GPP
def heldout_nse(predictions: pd.DataFrame,
                calibration: pd.DataFrame | None = None) -> pd.DataFrame:
    """Held-out daily NSE per method and site, with the site-calibrated NSE as a reference.

    Args:
        predictions: From :func:`load_predictions`.
        calibration: The site-calibration table: adds :data:`SITE_CALIBRATION` rows (the
            in-sample fit of each site's own calibration, the ceiling the methods aim at) for
            the sites in ``predictions``.

    Returns:
        Long table ``method, site, nse``.
    """
    t = predictions[["method", "site", "nse"]]
    if calibration is not None:
        ok = calibration[(calibration["status"] == "ok")
                         & calibration["site"].isin(set(predictions["site"]))]
        t = pd.concat([ok[["site", "nse"]].assign(method=SITE_CALIBRATION), t],
                      ignore_index=True)
    order = {m: i for i, m in enumerate(_order(t["method"].unique()))}
    t = t.assign(_o=t["method"].map(order)).sort_values(["_o", "site"], kind="stable")
    return t[["method", "site", "nse"]].reset_index(drop=True)


def nse_summary(nse_table: pd.DataFrame) -> pd.DataFrame:
    """Per method: sites, median, quartiles and 10th percentile of the daily NSE, and the
    share of sites with NSE above 0 (better than the mean of the observations)."""
    g = nse_table.dropna(subset=["nse"]).groupby("method", sort=False)["nse"]
    out = pd.DataFrame({
        "sites": g.size(), "median": g.median(), "25%": g.quantile(0.25),
        "75%": g.quantile(0.75), "10%": g.quantile(0.10),
        "share NSE > 0": g.apply(lambda v: float((v > 0).mean())),
    })
    return out.reindex(_order(out.index))


@dataclasses.dataclass(frozen=True)
class HeldOutGPP:
    """Observed and simulated daily GPP of a few sites on a common grid (for figures).

    Attributes:
        sites: Site ids (rows of the arrays).
        dates: The days (columns of the arrays).
        obs: GPP_obs ``(sites, days)`` [gC m-2 d-1].
        sims: Label (method or :data:`SITE_CALIBRATION`) -> simulated GPP ``(sites, days)``.
        good: Good-quality mask ``(sites, days)``.
        nse: Label -> daily NSE of each site (held out for a method; in-sample for site
            calibration).
    """

    sites: list[str]
    dates: pd.DatetimeIndex
    obs: np.ndarray
    sims: dict[str, np.ndarray]
    good: np.ndarray
    nse: dict[str, list[float]]


def heldout_gpp(dataset: Dataset, out: str | Path, methods: Sequence[str],
                sites: Sequence[str], *, calibration_dir: str | Path | None = None,
                years: Sequence[int] | None = None) -> HeldOutGPP:
    """GPP_obs, each method's held-out GPP and GPP_calib of some sites on a common daily grid.

    Args:
        dataset: The dataset.
        out: The extrapolation folder.
        methods: Methods to show.
        sites: Site ids.
        calibration_dir: The site-calibration folder: adds GPP_calib as
            :data:`SITE_CALIBRATION`.
        years: Years (default: all).

    Returns:
        A :class:`HeldOutGPP`.
    """
    from lue_spie import store

    sites = [str(s) for s in sites]
    sims: dict[str, np.ndarray] = {}
    scores: dict[str, list[float]] = {}
    dates = obs = good = None
    if calibration_dir is not None:
        cal_files = CalibrationFiles(Path(calibration_dir))
        gpp = store.read_parquet(cal_files.gpp_calib)
        cal = store.read_parquet(cal_files.table)
        dates, obs, sims[SITE_CALIBRATION], good = obs_and_sim(dataset, gpp, sites,
                                                               years=years)
        scores[SITE_CALIBRATION] = cal.set_index("site")["nse"].reindex(sites).tolist()
    for m in methods:
        params, gpp = read_method_results(out, m)
        dates, obs, sims[m], good = obs_and_sim(dataset, gpp, sites, column="GPP_sim",
                                                years=years)
        scores[m] = params.set_index("site")["nse"].reindex(sites).tolist()
    if dates is None:
        raise ValueError("heldout_gpp: give at least one method or the calibration folder")
    return HeldOutGPP(sites=sites, dates=dates, obs=obs, sims=sims, good=good, nse=scores)


def unit_seconds(out: str | Path, methods: Sequence[str]) -> pd.DataFrame:
    """Wall time each method took, from the provenance of its fold files.

    A method that batches its folds (OPT-All, OPT-PFT) records the run's time shared equally
    among its folds. Results reused from an earlier run keep the time of that run.

    Returns:
        One row per method: ``folds`` and ``seconds`` (sum over folds).
    """
    from lue_spie import store

    rows = []
    for m in methods:
        mfiles = _method(out, m)
        files = [mfiles.fold_params(k) for k in mfiles.folds()]
        if not files:
            raise FileNotFoundError(f"{mfiles.folder}: no fold results of method {m}")
        secs = [float(store.read_provenance(f).get("settings", {}).get("seconds", np.nan))
                for f in files]
        rows.append({"method": m, "folds": len(files), "seconds": float(np.nansum(secs))})
    return pd.DataFrame(rows).set_index("method")


# ------------------------------------------------------------------------------------ SPIE
@dataclasses.dataclass(frozen=True)
class SPIETraining:
    """SPIE's training curves and, per fold, where it stopped and what it kept.

    Attributes:
        curves: Every fold's curves (:data:`lue_spie.methods.spie.CURVE_COLUMNS`).
        summary: One row per fold: ``fold``, ``n_train``, ``n_validation``, ``best_epoch``
            (of the kept weights), ``stopped_epoch``, ``stop_reason``, ``best_cost`` (the
            monitored cost of the kept weights), ``final_cost`` (training cost without
            dropout at the last evaluation), ``change_last_quarter`` (relative change of
            that cost over the last quarter of the epochs run: a converged fold has a change
            near 0) and ``skipped_steps``.
        settings: The hyperparameters SPIE ran with (those of fold 0's network).
    """

    curves: pd.DataFrame
    summary: pd.DataFrame
    settings: dict


def spie_training(out: str | Path) -> SPIETraining:
    """SPIE's training record from ``OUT/SPIE`` (its curves and fitted networks).

    Raises:
        FileNotFoundError: when SPIE has not run into ``out`` (naming the command).
    """
    from lue_spie.methods.spie import load_networks, read_curves

    folder = _method(out, "SPIE").folder
    curves = read_curves(folder)
    nets = load_networks(folder)
    rows = []
    for k in nets.folds:
        t = dict(nets[k].training)
        train = curves[(curves["fold"] == k) & (curves["split"] == "train")].sort_values(
            "epoch")
        final = float(train["cost"].iloc[-1]) if len(train) else np.nan
        change = np.nan
        if len(train) >= 2:
            last = int(train["epoch"].iloc[-1])
            earlier = train[train["epoch"] <= 0.75 * last]
            if len(earlier):
                before = float(earlier["cost"].iloc[-1])
                change = (final - before) / abs(before) if before else np.nan
        rows.append({"fold": int(k), "n_train": t.get("n_train"),
                     "n_validation": t.get("n_validation"), "best_epoch": t.get("best_epoch"),
                     "stopped_epoch": t.get("stopped_epoch"),
                     "stop_reason": t.get("stop_reason"), "best_cost": t.get("best_cost"),
                     "final_cost": final, "change_last_quarter": change,
                     "skipped_steps": t.get("skipped_steps")})
    return SPIETraining(curves=curves, summary=pd.DataFrame(rows),
                        settings=dict(nets[nets.folds[0]].settings))


def true_parameter_nse(dataset: Dataset, sites: Sequence[str], *,
                       years: Sequence[int] | None = None) -> pd.DataFrame:
    """Daily NSE that the true parameters of a virtual FLUXNET score at ``sites``.

    The ceiling no method can pass on average except by fitting noise: the same days and the
    same NSE as the held-out scores (:func:`lue_spie.evaluate.evaluate_params`).

    Returns:
        Long table ``method`` (:data:`TRUE_PARAMETERS`), ``site``, ``nse``.

    Raises:
        ValueError: on real data (no true parameters).
    """
    from lue_spie.evaluate import evaluate_params

    if dataset.truth is None:
        raise ValueError("true_parameter_nse: this dataset has no true parameters (real data)")
    sites = [str(s) for s in sites]
    truth = dataset.truth.set_index("site").loc[sites].reset_index()
    scores = evaluate_params(dataset, truth[["site", *PARAMETERS]], sites=sites, years=years)
    return pd.DataFrame({"method": TRUE_PARAMETERS, "site": scores["site"],
                         "nse": scores["nse"].to_numpy(float)})


# --------------------------------------------------------------------------------- P-model
def pmodel_acclimation(dataset: Dataset, site: str, *, years: Sequence[int] | None = None,
                       window_days: float = 15.0) -> pd.DataFrame:
    """The P-model at one site, with slow acclimation and with instantaneous optima.

    Runs :func:`lue_spie.methods.pmodel.run_pmodel_batch` twice on the site's forcing: with
    acclimation (the baseline of the comparison, memory ``window_days``) and without (each
    day's optimum, the standard P-model).

    Returns:
        One row per day: ``date``, ``T`` [degC], ``VPD`` [Pa], and for ``xi`` [Pa^0.5],
        ``vcmax25`` [umol m-2 s-1] and ``GPP`` [gC m-2 d-1] the ``_acclimated`` and
        ``_optimal`` values; ``soil_stress`` [-].
    """
    from lue_spie.methods.pmodel import PModelSettings, run_pmodel_batch

    batch = dataset.forcing_batch(sites=[site], years=years)
    acc = run_pmodel_batch(batch, dataset.sites, PModelSettings(window_days=window_days))
    opt = run_pmodel_batch(batch, dataset.sites,
                           PModelSettings(window_days=window_days, acclimation=False))
    f = batch.forcing
    return pd.DataFrame({
        "date": batch.dates, "T": f["T"][0].cpu().numpy(), "VPD": f["VPD"][0].cpu().numpy(),
        "xi_acclimated": acc["xi"][0], "xi_optimal": opt["xi"][0],
        "vcmax25_acclimated": acc["vcmax25"][0], "vcmax25_optimal": opt["vcmax25"][0],
        "GPP_acclimated": acc["GPP"][0], "GPP_optimal": opt["GPP"][0],
        "soil_stress": acc["soil_stress"][0],
    })


def gpp_by_temperature(dataset: Dataset, gpp: Mapping[str, pd.DataFrame], *,
                       sites: Sequence[str] | None = None,
                       years: Sequence[int] | None = None,
                       bins: Sequence[float] = tuple(range(-20, 36, 2))) -> pd.DataFrame:
    """Mean GPP of good-quality days in bins of air temperature: observed and simulated.

    Args:
        dataset: The dataset.
        gpp: Label -> a tidy GPP table (``site, date`` and one value column, e.g.
            ``GPP_sim`` of a method or ``GPP_calib``).
        sites: Sites to pool (default: the sites of the first table).
        years: Years (default: all).
        bins: Edges of the temperature bins [degC].

    Returns:
        One row per bin with days: ``T`` (bin centre), ``days``, ``GPP_obs`` and one column
        per label (means over the good days of all sites in the bin).
    """
    if not gpp:
        raise ValueError("gpp_by_temperature: give at least one GPP table")
    first = next(iter(gpp.values()))
    sites = list(sites) if sites is not None else sorted(first["site"].unique())
    batch = dataset.forcing_batch(sites=sites, years=years)
    good = batch.good.cpu().numpy()
    T = batch.forcing["T"].cpu().numpy()[good]
    cols = {"GPP_obs": batch.GPP_obs.cpu().numpy()[good]}
    for label, table in gpp.items():
        value = [c for c in table.columns if c not in ("site", "date")]
        if len(value) != 1:
            raise ValueError(f"gpp_by_temperature: table {label!r} must have one value column "
                             f"besides site and date, has {value}")
        wide = (table[table["site"].isin(sites)]
                .pivot(index="date", columns="site", values=value[0])
                .reindex(index=batch.dates, columns=sites).to_numpy(np.float64).T)
        cols[label] = wide[good]
    edges = np.asarray(bins, dtype=float)
    which = np.digitize(T, edges) - 1
    inside = (which >= 0) & (which < len(edges) - 1)
    frame = pd.DataFrame({"bin": which[inside], **{k: v[inside] for k, v in cols.items()}})
    g = frame.groupby("bin")
    out = g.mean()
    out.insert(0, "days", g.size())
    centres = 0.5 * (edges[:-1] + edges[1:])
    out.insert(0, "T", centres[out.index.to_numpy()])
    return out.reset_index(drop=True)

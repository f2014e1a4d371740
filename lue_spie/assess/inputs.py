"""A results folder read back as the assessment's inputs (paper section 2.3).

The chapters and ``lue-spie`` steps write one results folder (``RESULTS``)::

    RESULTS/data/                   the dataset (site_day, sites; truth for virtual FLUXNET)
    RESULTS/calibration/            calibration.parquet, gpp_calib.parquet (site-calib)
    RESULTS/extrapolation/<method>/ params.parquet, gpp.parquet (each method, all folds)

:func:`load_results` finds every method present (whatever subset was run: SPIE may not be
there yet), checks that each was computed from the dataset (and calibration) now in the
folder, and returns one :class:`AssessmentInputs`: the dataset, the methods in the paper's
order with ``site-calib`` first, one long predictions table (``method, site, date,
GPP_sim``) for :func:`lue_spie.timescales.gpp_grid`, and one long table of parameter vectors
(``method, site``, the 13 parameters) for :mod:`lue_spie.assess.parameters`.

Decisions:

* **Which methods.** Every sub-folder of ``RESULTS/extrapolation`` holding both gathered
  files (``params.parquet`` and ``gpp.parquet``); a method whose folds are not all gathered
  yet (an interrupted run) is not listed. Its name is the one in the files' provenance.
* **Stale results are an error**, not a silent mix: a method whose provenance names other
  data (checksums of ``site_day.parquet``/``sites.parquet``) or another calibration than the
  folder now holds raises a ValueError that names it and the command that redoes it.
* **Years.** By default the assessment uses the years every method (site-calib included)
  predicts, so all are compared on the same days; ``years=`` chooses others.
* **GPP methods.** A method that predicts GPP only (the P-model) has no parameter vectors;
  it appears in the predictions but not in the parameter table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lue_spie import store
from lue_spie.data.io import Dataset, load_dataset
from lue_spie.layout import DataFiles, ExtrapolationFiles, Layout, MethodFiles
from lue_spie.methods.base import paper_order
from lue_spie.params import PARAMETERS

__all__ = [
    "SITE_CALIB",
    "AssessmentInputs",
    "find_methods",
    "method_order",
    "load_results",
    "describe",
    "provenance_files",
]

#: Name of the site-calibration reference row in every table and figure.
SITE_CALIB = "site-calib"


@dataclass(frozen=True)
class AssessmentInputs:
    """Everything the assessment reads from a results folder.

    Attributes:
        results: The results folder.
        dataset: The dataset (``site_day`` restricted to :attr:`years`; ``sites``, ``truth``).
        methods: Methods found, ``site-calib`` first, then the paper's order
            (:func:`~lue_spie.methods.base.paper_order`), then any other by name.
        predictions: ``method, site, date, GPP_sim`` (``method`` and ``site`` categorical),
            daily, over :attr:`years`.
        params: ``method, site`` + the 13 parameters, one row per method and site it
            predicts (site-calib: the sites calibrated with status ok); GPP-only methods are
            absent.
        calibration: The site-calibration table (``calibration.parquet``), or None.
        folds: Site -> cross-validation fold (None without an extrapolation folder).
        years: The calendar years assessed.
        files: The files read (for provenance).
    """

    results: Path
    dataset: Dataset
    methods: tuple[str, ...]
    predictions: pd.DataFrame
    params: pd.DataFrame
    calibration: pd.DataFrame | None
    folds: pd.Series | None
    years: tuple[int, ...]
    files: tuple[Path, ...]

    @property
    def layout(self) -> Layout:
        """The results folder's layout."""
        return Layout(self.results)

    @property
    def site_day(self) -> pd.DataFrame:
        """The observations (site-day table over :attr:`years`)."""
        return self.dataset.site_day

    @property
    def sites(self) -> pd.DataFrame:
        """The sites table (``site``, ``PFT``, ``koeppen``, ``koeppen_main``, features)."""
        return self.dataset.sites

    @property
    def truth(self) -> pd.DataFrame | None:
        """The true parameters (virtual FLUXNET) or None."""
        return self.dataset.truth

    @property
    def koeppen(self) -> pd.Series:
        """Koeppen type by site (the lag mask needs it)."""
        return self.dataset.sites.set_index("site")["koeppen"].astype(str)

    @property
    def param_methods(self) -> tuple[str, ...]:
        """Methods with parameter vectors (site-calib included), in :attr:`methods` order."""
        have = set(self.params["method"].astype(str))
        return tuple(m for m in self.methods if m in have)

    def method_params(self, method: str) -> pd.DataFrame:
        """``site`` + the 13 parameters of one method.

        Raises:
            KeyError: for a method without parameter vectors, naming those with them.
        """
        if method not in self.param_methods:
            raise KeyError(f"method {method!r} has no parameter vectors in {self.results}; "
                           f"methods with parameters: {list(self.param_methods)}")
        p = self.params[self.params["method"] == method]
        return p[["site", *PARAMETERS]].reset_index(drop=True)


def method_order(names: Sequence[str]) -> list[str]:
    """``names`` in the book's order: site-calib, the paper's twelve, then others by name."""
    names = list(dict.fromkeys(str(n) for n in names))
    first = [SITE_CALIB] if SITE_CALIB in names else []
    paper = [m for m in paper_order() if m in names]
    rest = sorted(set(names) - set(first) - set(paper))
    return first + paper + rest


def _method_name(files: MethodFiles) -> str:
    prov = store.read_provenance(files.params)
    name = prov.get("settings", {}).get("method")
    return str(name) if name else Path(files.folder).name


def find_methods(extrapolation: ExtrapolationFiles | str | Path) -> dict[str, MethodFiles]:
    """Method name -> its files, for every method with gathered results in ``extrapolation``.

    Returns an empty dict when the folder does not exist.
    """
    if not isinstance(extrapolation, ExtrapolationFiles):
        extrapolation = ExtrapolationFiles(Path(extrapolation))
    found = {_method_name(m): m for m in extrapolation.method_folders()}
    return {m: found[m] for m in method_order(found)}


def _checksums(data: DataFiles) -> dict[str, str]:
    return {p.name: store.sha256_file(p) for p in (data.site_day, data.sites)}


def _check_fresh(method: str, files: MethodFiles, data_sums: dict[str, str],
                 cal_sum: str | None, layout: Layout) -> None:
    """Raise when the method's provenance names other data or another calibration."""
    folder = files.folder
    settings = store.read_provenance(files.params).get("settings", {})
    fix = (f"rerun `lue-spie extrapolate --methods {method} --out "
           f"{layout.extrapolation.folder} ...` (it redoes what changed)")
    recorded = settings.get("data")
    if isinstance(recorded, dict):
        stale = [n for n, s in data_sums.items() if recorded.get(n) not in (None, s)]
        if stale:
            raise ValueError(f"{folder}: the results of {method} were computed from other data "
                             f"({', '.join(stale)} changed since); {fix}")
    recorded_cal = settings.get("calibration")
    if recorded_cal is not None and cal_sum is not None and recorded_cal != cal_sum:
        raise ValueError(f"{folder}: the results of {method} were computed from another site "
                         f"calibration than {layout.calibration.folder}; {fix}")


def _years_of(dates: pd.Series) -> set[int]:
    return set(pd.DatetimeIndex(dates).year.unique().tolist())


def load_results(results: str | Path | Layout, *, years: Sequence[int] | None = None,
                 methods: Sequence[str] | None = None,
                 with_calibration: bool = True) -> AssessmentInputs:
    """Read a results folder into the assessment's inputs (see the module docstring).

    Args:
        results: The results folder (with ``data/``, ``calibration/``, ``extrapolation/``),
            or its :class:`~lue_spie.layout.Layout`.
        years: Calendar years to assess (default: those every method predicts).
        methods: Methods to keep (default: all found); ``site-calib`` is the calibration.
        with_calibration: Include site-calib (when ``calibration/`` has its files).

    Returns:
        An :class:`AssessmentInputs`.

    Raises:
        FileNotFoundError: without a dataset, or with neither a calibration nor any method.
        ValueError: for stale results, a requested method that is absent, or years no method
            predicts.
    """
    layout = results if isinstance(results, Layout) else Layout(Path(results))
    results = Path(layout.root)
    data = layout.data
    data_dir = Path(data.folder)
    if not data.site_day.is_file():
        raise FileNotFoundError(f"{data_dir}: no dataset ({data.site_day.name}); run the data "
                                "step first (`lue-spie data synth --out RESULTS/data` or "
                                "chapter 2)")
    dataset = load_dataset(data_dir)
    data_sums = _checksums(data)
    files: list[Path] = [data.site_day, data.sites]

    gpp_tables: dict[str, pd.DataFrame] = {}
    param_tables: dict[str, pd.DataFrame] = {}
    calibration = None
    cal = layout.calibration
    cal_dir = cal.folder
    cal_path, gpp_calib_path = cal.table, cal.gpp_calib
    cal_sum = store.sha256_file(cal_path) if cal_path.is_file() else None
    if cal_path.is_file() and gpp_calib_path.is_file():
        calibration = store.read_parquet(cal_path)
        store.check_calibration_of(cal_path, data)
        if with_calibration:
            gpp = store.read_parquet(gpp_calib_path, ["site", "date", "GPP_calib"])
            gpp_tables[SITE_CALIB] = gpp.rename(columns={"GPP_calib": "GPP_sim"})
            ok = calibration[calibration["status"] == "ok"]
            param_tables[SITE_CALIB] = ok[["site", *PARAMETERS]]
            files += [cal_path, gpp_calib_path]

    found = find_methods(layout.extrapolation)
    if methods is not None:
        # Checked before any method is read, against every method the folder holds.
        available = [*([SITE_CALIB] if SITE_CALIB in gpp_tables else []), *found]
        absent = [m for m in methods if m not in available]
        if absent:
            raise ValueError(f"{results}: no results of method(s) {absent}; the folder holds "
                             f"{method_order(available) if available else 'none'}")
    for name, mfiles in found.items():
        if methods is not None and name not in methods:
            continue
        _check_fresh(name, mfiles, data_sums, cal_sum, layout)
        params = store.read_parquet(mfiles.params)
        gpp_tables[name] = store.read_parquet(mfiles.gpp, ["site", "date", "GPP_sim"])
        values = params[list(PARAMETERS)].to_numpy(np.float64)
        if np.isfinite(values).all(axis=1).any():
            param_tables[name] = params.loc[np.isfinite(values).all(axis=1),
                                            ["site", *PARAMETERS]]
        files += [mfiles.params, mfiles.gpp]

    if not gpp_tables:
        raise FileNotFoundError(f"{results}: neither a site calibration ({cal_dir}) nor any "
                                f"method ({layout.extrapolation.folder}) to assess")
    order = method_order(gpp_tables)

    # Years: those every method predicts (decision 3), or the caller's.
    common = set.intersection(*(_years_of(t["date"]) for t in gpp_tables.values()))
    chosen = sorted(int(y) for y in years) if years is not None else sorted(common)
    if not chosen:
        raise ValueError(f"{results}: the methods predict no common year ("
                         + "; ".join(f"{m}: {sorted(_years_of(t['date']))}"
                                     for m, t in gpp_tables.items()) + ")")
    site_day = dataset.site_day
    site_day = site_day[site_day["date"].dt.year.isin(chosen)].reset_index(drop=True)
    if site_day.empty:
        raise ValueError(f"{data_dir}: no observations in the years {chosen}")
    dataset = Dataset(dataset.path, site_day, dataset.sites, dataset.truth, dataset.truth_meta)

    parts = []
    for name in order:
        t = gpp_tables[name]
        t = t[t["date"].dt.year.isin(chosen)]
        parts.append(pd.DataFrame({"method": name, "site": t["site"].astype(str).to_numpy(),
                                   "date": t["date"].to_numpy(), "GPP_sim": t["GPP_sim"]
                                   .to_numpy(np.float64)}))
    predictions = pd.concat(parts, ignore_index=True)
    predictions["method"] = pd.Categorical(predictions["method"], categories=order)
    predictions["site"] = pd.Categorical(predictions["site"],
                                         categories=dataset.sites["site"].astype(str))
    if predictions["site"].isna().any():
        raise ValueError(f"{results}: predictions for sites that are not in {data_dir}")

    param_order = [m for m in order if m in param_tables]
    params = pd.concat([param_tables[m].assign(method=m) for m in param_order],
                       ignore_index=True) if param_order else \
        pd.DataFrame(columns=["method", "site", *PARAMETERS])
    params = params[["method", "site", *PARAMETERS]]
    params["site"] = params["site"].astype(str)
    params["method"] = params["method"].astype(str)

    folds = None
    folds_path = layout.extrapolation.folds
    if folds_path.is_file():
        folds = store.read_parquet(folds_path).set_index("site")["fold"]
        files.append(folds_path)
    return AssessmentInputs(results, dataset, tuple(order), predictions, params, calibration,
                            folds, tuple(chosen), tuple(files))


def describe(inputs: AssessmentInputs) -> str:
    """One paragraph on what was found (methods, sites, years), for logs and chapters."""
    n_sites = inputs.sites.shape[0]
    return (f"{len(inputs.methods)} method(s) ({', '.join(inputs.methods)}) on {n_sites} "
            f"sites, years {inputs.years[0]}-{inputs.years[-1]}"
            + ("; true parameters known" if inputs.truth is not None else ""))


def provenance_files(inputs: AssessmentInputs) -> dict[str, str]:
    """The files read, relative to the results folder, with their sha256 (JSON-friendly)."""
    out = {}
    for f in inputs.files:
        try:
            key = f.relative_to(inputs.results).as_posix()
        except ValueError:
            key = f.name
        out[key] = store.sha256_file(f)
    return out

"""Parameter table -> GPP -> cost terms and metrics: the one evaluation path of every method.

Site calibration, the eleven baseline methods and SPIE all end in the same place: a parameter
vector per site (or, for the P-model, GPP directly). This module turns such vectors into
simulated GPP on the sites' days and scores them with exactly the calibration cost
(:func:`lue_spie.cost.calibration_cost`), so that every method is measured the same way.

- :func:`evaluate_params`: cost, NSE and constraint terms of given vectors, one row per site;
- :func:`simulate_params`: the tidy ``(site, date, GPP_sim)`` table of given vectors;
- :func:`simulate_calibrated`: the same for a calibration table (rows with status ``"ok"``),
  named ``GPP_calib``;
- :func:`obs_and_sim`: GPP_obs, a simulated GPP column and the good-day mask of some sites
  on a common daily grid (for figures);
- :func:`parameter_array`: a parameter table (``site`` + the 13 columns) as a (sites, 13)
  array in a given site order, with clear errors for missing sites or columns.

``data`` is anything :func:`lue_spie.data.io.as_forcing_batch` accepts: a Dataset, or a
ForcingBatch with Koeppen types (or with ``koeppen=`` given).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from lue_spie.cost import W_IDEAL, W_NONIDEAL, calibration_cost
from lue_spie.data.io import as_forcing_batch
from lue_spie.model import resolve_device, simulate
from lue_spie.params import N_PARAMS, PARAMETERS, check_params

__all__ = ["parameter_array", "evaluate_params", "simulate_params", "simulate_calibrated",
           "obs_and_sim"]

#: Sites per model call when simulating whole records (bounds memory for thousands of sites).
_CHUNK_SITES = 64


def parameter_array(table: pd.DataFrame, sites: Sequence[str], *, what: str = "parameter "
                    "table") -> np.ndarray:
    """The 13 parameters of ``sites`` (in that order) from a table with a ``site`` column.

    Raises:
        ValueError: naming missing parameter columns, duplicate sites, or sites not in the table.
    """
    missing = [c for c in ("site", *PARAMETERS) if c not in table.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}")
    dup = table["site"][table["site"].duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"{what}: site(s) {dup[:10]} appear more than once")
    by_site = table.set_index("site")
    absent = [s for s in sites if s not in by_site.index]
    if absent:
        raise ValueError(f"{what}: no parameters for site(s) {absent[:10]}")
    return by_site.loc[list(sites), list(PARAMETERS)].to_numpy(dtype=np.float64, copy=True)


def _as_params(params: np.ndarray | pd.DataFrame, sites: Sequence[str]) -> np.ndarray:
    if isinstance(params, pd.DataFrame):
        return parameter_array(params, sites)
    # np.array copies: a read-only input (e.g. a DataFrame's values) cannot back a tensor.
    p = np.array(params, dtype=np.float64)
    if p.shape != (len(sites), N_PARAMS):
        raise ValueError(f"params: expected shape ({len(sites)}, {N_PARAMS}) for the sites "
                         f"{list(sites)[:5]}..., got {p.shape}")
    return p


@torch.no_grad()
def evaluate_params(
    data: Any,
    params: np.ndarray | pd.DataFrame,
    *,
    sites: Sequence[str] | None = None,
    koeppen: Sequence[str] | Mapping[str, str] | None = None,
    years: Sequence[int] | None = None,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
    w_ideal: float = W_IDEAL,
    w_nonideal: float = W_NONIDEAL,
) -> pd.DataFrame:
    """Cost terms of given physical parameter vectors, one per site (no optimisation).

    Scores the true parameters of virtual FLUXNET or any method's predictions with exactly
    the calibration cost.

    Args:
        data: Dataset or ForcingBatch (see :func:`lue_spie.data.io.as_forcing_batch`).
        params: (sites, 13) in the order of ``sites`` (or of the data), or a parameter table
            with a ``site`` column.
        sites, koeppen, years: Selection (see :func:`~lue_spie.data.io.as_forcing_batch`).
        dtype, device: Of the model evaluation.
        w_ideal, w_nonideal: Constraint weights of the cost.

    Returns:
        A table with ``site, cost, nse, C_ideal, C_nonideal, n_good_days``.
    """
    b = as_forcing_batch(data, sites=sites, years=years, koeppen=koeppen, dtype=dtype,
                         device=resolve_device(device))
    p = torch.as_tensor(_as_params(params, b.sites), dtype=dtype, device=b.good.device)
    check_params(p, "params")
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("cost", "nse", "C_ideal",
                                                         "C_nonideal", "n_good")}
    for i in range(0, b.n_sites, _CHUNK_SITES):
        sl = slice(i, i + _CHUNK_SITES)
        f = {k: v[sl].unsqueeze(1) for k, v in b.forcing.items()}
        pp = p[sl].unsqueeze(1)
        sim = simulate(f, pp, validate=True)
        c = calibration_cost(sim, b.GPP_obs[sl].unsqueeze(1), b.good[sl].unsqueeze(1), pp, f,
                             w_ideal=w_ideal, w_nonideal=w_nonideal)
        for k in out:
            out[k].append(c[k][:, 0].cpu().to(torch.float64).numpy())
    cols = {k: np.concatenate(v) for k, v in out.items()}
    return pd.DataFrame({"site": b.sites, **{k: cols[k] for k in ("cost", "nse", "C_ideal",
                                                                   "C_nonideal")},
                         "n_good_days": cols["n_good"].astype(int)})


@torch.no_grad()
def simulate_params(
    data: Any,
    params: np.ndarray | pd.DataFrame,
    *,
    sites: Sequence[str] | None = None,
    koeppen: Sequence[str] | Mapping[str, str] | None = None,
    years: Sequence[int] | None = None,
    column: str = "GPP_sim",
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> pd.DataFrame:
    """Simulated GPP of given vectors: a tidy ``(site, date, column)`` table.

    Only the days each site has a record for are kept (a Dataset's padding of the common grid
    is dropped); rows are sorted by site and date.

    Raises:
        ValueError: when the data carry no dates to label the days, or for bad parameters.
    """
    b = as_forcing_batch(data, sites=sites, years=years, koeppen=koeppen, dtype=dtype,
                         device=resolve_device(device))
    if b.dates is None:
        raise ValueError("simulate_params: the data have no `dates` to label the days")
    p = torch.as_tensor(_as_params(params, b.sites), dtype=dtype, device=b.good.device)
    gpp = np.concatenate([
        simulate({k: v[i:i + _CHUNK_SITES] for k, v in b.forcing.items()},
                 p[i:i + _CHUNK_SITES], validate=True)["GPP"].cpu().to(torch.float64).numpy()
        for i in range(0, b.n_sites, _CHUNK_SITES)], axis=0)  # (sites, days)
    keep = (b.in_record.cpu().numpy() if b.in_record is not None
            else np.ones(gpp.shape, dtype=bool))
    site_idx, day_idx = np.nonzero(keep)
    out = pd.DataFrame({
        "site": np.asarray(b.sites, dtype=object)[site_idx],
        "date": np.asarray(b.dates, dtype="datetime64[ns]")[day_idx],
        column: gpp[site_idx, day_idx],
    })
    return out.sort_values(["site", "date"], kind="stable").reset_index(drop=True)


def simulate_calibrated(
    data: Any,
    table: pd.DataFrame,
    *,
    koeppen: Sequence[str] | Mapping[str, str] | None = None,
    years: Sequence[int] | None = None,
    column: str = "GPP_calib",
) -> pd.DataFrame:
    """GPP simulated with calibrated vectors: a tidy ``(site, date, GPP_calib)`` table.

    Args:
        data: The data the calibration used (Dataset or ForcingBatch with ``dates``).
        table: A calibration table (``site``, ``status`` and the 13 parameters); only rows with
            status ``"ok"`` are simulated.
        koeppen: Koeppen types for a batch without them (default: the table's ``koeppen``
            column when present).
        years: As for :func:`simulate_params`.
        column: Name of the output column.
    """
    ok = table[table["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame({"site": pd.Series(dtype=str), "date": pd.Series(
            dtype="datetime64[ns]"), column: pd.Series(dtype=float)})
    if koeppen is None and "koeppen" in table.columns:
        koeppen = dict(zip(table["site"], table["koeppen"], strict=True))
    return simulate_params(data, ok, sites=list(ok["site"]), koeppen=koeppen, years=years,
                           column=column)


def obs_and_sim(
    data: Any,
    gpp: pd.DataFrame,
    sites: Sequence[str],
    *,
    column: str = "GPP_calib",
    years: Sequence[int] | None = None,
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]:
    """GPP_obs, a simulated GPP and the good-day mask of some sites on a common daily grid.

    Args:
        data: A Dataset or a dataset folder.
        gpp: A tidy ``(site, date, column)`` table (e.g. ``gpp_calib.parquet``).
        sites: Site ids.
        column: The simulated column of ``gpp``.
        years: Years (default: all).

    Returns:
        ``(dates, GPP_obs, GPP_sim, good)``: a DatetimeIndex and three arrays of shape
        ``(len(sites), days)`` (NaN where a site has no value).
    """
    from lue_spie.data.io import Dataset, load_dataset

    ds = data if isinstance(data, Dataset) else load_dataset(data)
    fb = ds.forcing_batch(sites=list(sites), years=years)
    wide = (gpp[gpp["site"].isin(sites)]
            .pivot(index="date", columns="site", values=column)
            .reindex(index=fb.dates, columns=list(sites)))
    sim = wide.to_numpy(dtype=np.float64).T
    return fb.dates, fb.GPP_obs.cpu().numpy(), sim, fb.good.cpu().numpy()

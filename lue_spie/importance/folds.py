"""One fold of the SPIE networks at a time: its training sites through the three attributions.

:func:`fold_tables` explains fold ``k``'s network on its training sites
(:func:`~lue_spie.importance.attribution.explain_fold`) and lays the result out as that fold's
rows of the long tables (importances, PD curves, a check row); :func:`torch_threads` runs the
folds on one torch thread. For the chapter, :func:`shap_example` shows on a few sites of one
fold that SHAP values add up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch

from lue_spie.data.features import feature_class_of
from lue_spie.importance.aggregate import normalise, overall_importance
from lue_spie.importance.attribution import check_design, explain_fold, shap_attributions
from lue_spie.importance.networks import training_sites
from lue_spie.importance.settings import ALL, COMBINED, METHODS, ImportanceSettings
from lue_spie.params import PARAMETERS

__all__ = ["fold_tables", "torch_threads", "shap_example"]


def fold_tables(nets: Any, k: int, table: pd.DataFrame, s: ImportanceSettings
                ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Explain fold ``k``: its rows of the long table, its PD curves and its check row.

    Args:
        nets: The SPIE networks.
        k: The fold.
        table: The sites table indexed by site id (as text).
        s: The settings.

    Raises:
        ValueError: when the fold's training sites are not all in ``table``.
    """
    names = tuple(str(c) for c in nets.feature_names)
    classes = [_class_or_other(c) for c in names]
    params = list(PARAMETERS)
    fold_sites = training_sites(nets, k)
    missing = [x for x in fold_sites if x not in table.index]
    if missing:
        raise ValueError(f"importance: fold {k}'s network was trained on site(s) "
                         f"{missing[:10]} that the sites table lacks; the networks belong "
                         "to another dataset")
    info = table.loc[fold_sites].reset_index(drop=True)
    X = nets.features(info, k)
    ex = explain_fold(nets.fold_network(k), X, info["koeppen"].astype(str).tolist(),
                      feature_names=names, settings=s, fold=k)
    norm = normalise(ex.raw)                                # (methods, K, F)
    overall = overall_importance(norm)                      # (methods, F)
    comb = np.nanmean(norm, axis=0) if not np.isnan(norm).all() else norm[0]
    no_raw = np.full(len(names), np.nan)
    rows = []
    for mi, method in enumerate((*METHODS, COMBINED)):
        for pi, p in enumerate((*params, ALL)):
            if method == COMBINED:
                nv, rv = (overall.mean(axis=0) if p == ALL else comb[pi]), no_raw
            else:
                nv = overall[mi] if p == ALL else norm[mi, pi]
                rv = no_raw if p == ALL else ex.raw[mi, pi]
            rows.append(pd.DataFrame({"fold": k, "method": method, "parameter": p,
                                      "feature": names, "feature_class": classes,
                                      "raw": rv, "normalised": nv}))
    stats = nets[k].feature_stats
    curves = []
    for j, name in enumerate(names):
        grid = ex.pd.grids[j]
        value = grid
        if name in stats.index:  # back to the feature's units
            std = float(stats.loc[name, "std"])
            value = grid * (std if np.isfinite(std) and std > 0 else 1.0) \
                + float(stats.loc[name, "mean"])
        curves.append(pd.DataFrame({
            "fold": k, "parameter": np.repeat(params, len(grid)), "feature": name,
            "z": np.tile(grid, len(params)), "value": np.tile(value, len(params)),
            "pd": ex.pd.curves[j].reshape(-1)}))
    check = {"fold": k, "n_sites": len(ex.sites), "n_background": len(ex.background),
             "max_additivity_error": ex.shap.max_additivity_error,
             **{f"seconds_{m}": ex.seconds[m] for m in METHODS}}
    return (pd.concat(rows, ignore_index=True), pd.concat(curves, ignore_index=True), check)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads, then restore. The networks are tiny (77-16-16-13):
    intra-op threads only add synchronisation, and on a busy machine two threads made the
    analysis much slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _class_or_other(name: str) -> str:
    try:
        return feature_class_of(name)
    except KeyError:
        return "other"


def shap_example(nets: Any, sites: pd.DataFrame, *, fold: int, parameter: str,
                 n: int = 3, top: int = 3) -> pd.DataFrame:
    """SHAP values of a few training sites of one fold, laid out to show that they add up.

    Args:
        nets: The SPIE networks.
        sites: The sites table.
        fold: The fold.
        parameter: Whose raw output to explain.
        n: How many sites (the first ``n`` training sites).
        top: How many of the largest contributions to list per site.

    Returns:
        One row per site: ``site``, ``output`` (raw output u), ``expectation`` (mean u over
        the background), ``sum of SHAP values``, ``difference`` (output - expectation - sum)
        and the ``top`` largest contributions as ``feature: value``.
    """
    if parameter not in PARAMETERS:
        raise ValueError(f"shap_example: unknown parameter {parameter!r}; expected one of "
                         f"{PARAMETERS}")
    table = sites.assign(site=sites["site"].astype(str)).set_index("site", drop=False)
    train = training_sites(nets, fold)
    X = nets.features(table.loc[train].reset_index(drop=True), fold)
    values = check_design(X, nets.feature_names, nets.fold_network(fold),
                          source=f"fold {fold}")
    res = shap_attributions(nets.fold_network(fold), values, values[:n])
    j = PARAMETERS.index(parameter)
    rows = []
    for i in range(len(res.values)):
        phi = res.values[i, :, j]
        order = np.argsort(-np.abs(phi))[:top]
        rows.append({"site": X.index[i], "output": res.outputs[i, j],
                     "expectation": res.expected[j], "sum of SHAP values": phi.sum(),
                     "difference": res.outputs[i, j] - res.expected[j] - phi.sum(),
                     "largest contributions": ", ".join(
                         f"{nets.feature_names[o]}: {phi[o]:+.3f}" for o in order)})
    return pd.DataFrame(rows)

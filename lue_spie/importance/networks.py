"""The SPIE networks of a results folder: where they are, loading them, what they hold.

SPIE's extrapolation step writes one network per fold (``fold<k>.network.pt``,
:mod:`lue_spie.methods.spie.networks`) into ``RESULTS/extrapolation/SPIE``.
:func:`networks_dir` says where, :func:`spie_networks` loads them (or says what to run when
SPIE has not run), :func:`training_sites` gives the sites a fold's network was fitted on and,
for the chapter, :func:`describe_networks` tabulates them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lue_spie.layout import Layout, MethodFiles

__all__ = ["networks_dir", "spie_networks",
           "training_sites", "describe_networks"]

def _layout(results: str | Path | Layout) -> Layout:
    return results if isinstance(results, Layout) else Layout(Path(results))


def networks_dir(results: str | Path | Layout) -> MethodFiles:
    """Where a results folder keeps SPIE's fold networks: SPIE's folder of the extrapolation."""
    return _layout(results).extrapolation.method("SPIE")


def spie_networks(results: str | Path | Layout) -> Any:
    """The SPIE fold networks of a results folder, or a clear error when SPIE has not run.

    Raises:
        FileNotFoundError: naming the folder and what writes the networks.
    """
    from lue_spie.methods.spie import load_networks

    files = networks_dir(results)
    net_dir = Path(files.folder)
    if not net_dir.is_dir() or not files.networks():
        raise FileNotFoundError(
            f"{net_dir}: no trained SPIE networks (fold<k>.network.pt). The importance "
            "analysis explains SPIE's networks: run SPIE first (the SPIE chapter of the book, "
            "or `lue-spie extrapolate --methods SPIE --data RESULTS/data --out "
            "RESULTS/extrapolation`)")
    return load_networks(net_dir)


def training_sites(nets: Any, fold: int) -> list[str]:
    """The sites fold ``fold``'s network was fitted on: every site of its training folds
    (``train``, ``validation`` and ``excluded`` of the network file), sorted."""
    s = nets[fold].sites
    return sorted({str(x) for part in ("train", "validation", "excluded")
                   for x in s.get(part, [])})


def describe_networks(nets: Any) -> pd.DataFrame:
    """One row per fold network: its sites and how its training ended.

    Returns:
        ``fold, train, validation, excluded, held_out, best_epoch, stopped_epoch,
        stop_reason`` (counts of sites; the training entries as the network file records
        them, NaN when absent).
    """
    rows = []
    for k in nets.folds:
        n = nets[k]
        rows.append({"fold": k, **{part: len(n.sites.get(part, [])) for part in
                                   ("train", "validation", "excluded")},
                     "held_out": len(n.sites.get("test", [])),
                     **{key: n.training.get(key, np.nan)
                        for key in ("best_epoch", "stopped_epoch", "stop_reason")}})
    return pd.DataFrame(rows)

"""Shared style of the book's figures: matplotlib settings, figure factory, small helpers."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from lue_spie.params import PARAMETER_TABLE, PARAMETERS, UNITS

__all__ = ["STYLE", "as_vector", "save_figure"]

#: Matplotlib settings of every figure (small, legible PNGs for the book).
STYLE: dict[str, Any] = {
    "figure.dpi": 96,
    "savefig.dpi": 96,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
}

_COLORS = matplotlib.colormaps["tab10"].colors


def save_figure(fig: Figure, stem: Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Save ``fig`` as ``STEM.<fmt>`` for each format (PNG at 150 dpi); returns the paths.

    Dates and software stamps are left out of the files, so the same results give the same
    files.
    """
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        meta = {"Date": None} if fmt in ("svg", "pdf") else {"Software": None}
        fig.savefig(path, dpi=150 if fmt == "png" else None, metadata=meta)
        paths.append(path)
    return paths


def _styled(func: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw the figure under :data:`STYLE` without changing the caller's matplotlib settings."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with plt.rc_context(STYLE):
            return func(*args, **kwargs)

    return wrapper


def _fig(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float], **kw: Any):
    # A Figure outside pyplot: nothing is left open in pyplot's registry, and a notebook shows
    # exactly the figure it displays (no second copy from the inline backend's auto-show).
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(nrows, ncols, **kw)


def as_vector(params: Mapping[str, float] | Sequence[float] | np.ndarray) -> np.ndarray:
    """A parameter vector (13,) in :data:`~lue_spie.params.PARAMETERS` order.

    Accepts a mapping name -> value (all 13 names), a pandas Series or a sequence of 13.

    Raises:
        KeyError: for a mapping that lacks a parameter.
        ValueError: for a sequence that is not of length 13.
    """
    if isinstance(params, Mapping | pd.Series):
        missing = [p for p in PARAMETERS if p not in params]
        if missing:
            raise KeyError(f"parameter vector lacks {missing}")
        return np.array([float(params[p]) for p in PARAMETERS])
    v = np.asarray(params, dtype=np.float64)
    if v.shape != (len(PARAMETERS),):
        raise ValueError(f"parameter vector: expected {len(PARAMETERS)} values, got {v.shape}")
    return v


def _t(x: np.ndarray | float) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def param_label(name: str, *, unit: bool = False) -> str:
    """A parameter's symbol for axes and titles (``$\\kappa$``), optionally with its unit."""
    symbol = f"${PARAMETER_TABLE[PARAMETERS.index(name)].symbol}$"
    if not unit:
        return symbol
    u = UNITS[name]
    return symbol + (f" [{u}]" if u != "-" else " [-]")

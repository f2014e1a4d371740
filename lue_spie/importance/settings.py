"""The settings of the importance analysis and the names of what it compares.

:class:`ImportanceSettings` holds every knob of the analysis; the constants name the three
attribution methods (:data:`METHODS`), their average (:data:`COMBINED`), the overall rows
(:data:`ALL`), the statistics of the aggregation by feature class (:data:`CLASS_STATS`) and
the one-hot groups of the design matrix (:data:`ONE_HOT_GROUPS`), which every other module of
:mod:`lue_spie.importance` shares.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["METHODS", "COMBINED", "ALL", "CLASS_STATS", "ONE_HOT_GROUPS", "ImportanceSettings"]

#: The three attribution methods, in the paper's order.
METHODS: tuple[str, ...] = ("SHAP", "LRP", "PD")
#: Name of the average of the three normalised methods.
COMBINED = "combined"
#: The ``parameter`` value of the overall (all parameters) rows.
ALL = "all"
#: Statistics of the class aggregation
#: (:func:`~lue_spie.importance.aggregate.class_importance`).
CLASS_STATS: tuple[str, ...] = ("mean", "sum", "max")
#: One-hot groups of the design matrix: one categorical variable each (categorical inputs of
#: the partial dependence, one variable of the driver comparison).
ONE_HOT_GROUPS: tuple[str, ...] = ("PFT", "Clim")


@dataclasses.dataclass(frozen=True)
class ImportanceSettings:
    """How the importance analysis runs.

    Attributes:
        background: SHAP background sites per fold (a seeded subsample of the fold's training
            sites); None: all of them.
        pd_grid: Grid points of a continuous feature's PD curve.
        pd_percentiles: Percentiles of the training values that bound the PD grid of a
            continuous feature (scikit-learn's default: 5th and 95th).
        lrp_epsilon: The epsilon of the LRP-epsilon rule (captum's default 1e-9).
        shap_chunk: Explained sites per DeepExplainer call (memory ~ background x chunk).
        folds: Folds to analyse (None: every fold with a network).
        seed: Seed of the background subsample.
    """

    background: int | None = None
    pd_grid: int = 20
    pd_percentiles: tuple[float, float] = (0.05, 0.95)
    lrp_epsilon: float = 1e-9
    shap_chunk: int = 256
    folds: tuple[int, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.background is not None and int(self.background) < 1:
            raise ValueError(f"importance: background must be >= 1 or None, got "
                             f"{self.background!r}")
        if int(self.pd_grid) < 2:
            raise ValueError(f"importance: pd_grid must be >= 2, got {self.pd_grid!r}")
        lo, hi = (float(p) for p in self.pd_percentiles)
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"importance: pd_percentiles must be 0 <= low < high <= 1, got "
                             f"{self.pd_percentiles!r}")
        if not self.lrp_epsilon > 0:
            raise ValueError(f"importance: lrp_epsilon must be > 0, got {self.lrp_epsilon!r}")
        if int(self.shap_chunk) < 1:
            raise ValueError(f"importance: shap_chunk must be >= 1, got {self.shap_chunk!r}")
        object.__setattr__(self, "pd_percentiles", (lo, hi))
        if self.folds is not None:
            object.__setattr__(self, "folds", tuple(int(k) for k in self.folds))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly settings (for provenance records)."""
        d = dataclasses.asdict(self)
        d["pd_percentiles"] = list(self.pd_percentiles)
        d["folds"] = list(self.folds) if self.folds is not None else None
        return d

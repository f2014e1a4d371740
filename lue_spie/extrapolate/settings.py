"""The settings of the cross-validated comparison (paper section 2.2): one frozen object."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from lue_spie.methods.base import method_class, registered_methods

__all__ = ["ExtrapolationSettings"]


@dataclasses.dataclass(frozen=True)
class ExtrapolationSettings:
    """What to run.

    Attributes:
        methods: Method names (paper names; default: every registered method in the paper's
            order).
        n_folds: Number of folds of the cross-validation over sites (paper: 10).
        seed: Seed of the split and of every method (each method's own ``seed``/settings
            unless given in ``method_params``).
        years: Years to use (default: all).
        sites: Sites of the cross-validation (default: every site of the dataset); the
            folds split these sites only.
        method_params: Method name -> hyperparameters (keyword arguments of its class).
        batch_folds: Let methods that can (``folds="batched"``, ``"stacked"`` or
            ``"independent"``: OPT-All, OPT-PFT, SPIE, the P-model) run all their folds in one
            call; False runs every method fold after fold. On a Dask cluster only the
            ``"stacked"`` and ``"independent"`` methods keep their folds together (the batched
            ones spread them over the workers). The results are the same either way.
    """

    methods: tuple[str, ...] | None = None
    n_folds: int = 10
    seed: int = 0
    years: tuple[int, ...] | None = None
    sites: tuple[str, ...] | None = None
    method_params: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    batch_folds: bool = True

    def method_names(self) -> list[str]:
        """The methods to run, checked against the registry."""
        names = list(self.methods) if self.methods else list(registered_methods())
        for n in names:
            method_class(n)  # a clear error for an unknown name
        unknown = sorted(set(self.method_params) - set(names))
        if unknown:
            raise ValueError(f"method_params for method(s) {unknown} that are not run "
                             f"(methods: {names})")
        return names

"""The settings of the pay-off sweep: which dials, which values, which methods, what size."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lue_spie.calibrate import CalibrationSettings
from lue_spie.data.virtual.worlds import World, dial_names, get_world, world_names
from lue_spie.extrapolate import ExtrapolationSettings
from lue_spie.methods.base import method_class

__all__ = ["PayoffSettings", "SweepPoint"]


@dataclass(frozen=True)
class SweepPoint:
    """One point of the sweep: the base world with two dials (or groups) scaled.

    Attributes:
        label: The point's name (its folder and its rows in the table).
        x: Factor of the first dial (or group).
        y: Factor of the second.
        world: The world of the point.
    """

    label: str
    x: float
    y: float
    world: World


@dataclass(frozen=True)
class PayoffSettings:
    """When does SPIE pay off: a grid over two dials (or groups of dials) of a world.

    Each point of the grid is the base world with the dial (or group) ``x_dial`` scaled by
    one factor of ``x_factors`` and ``y_dial`` by one of ``y_factors``
    (:meth:`lue_spie.data.virtual.worlds.World.scaled`: 0 is the smooth world's value, 1 the
    base world's, 2 twice as far from the smooth world). Every point is generated, calibrated
    and cross-validated with ``methods`` on its own (:mod:`lue_spie.payoff.points`).

    Attributes:
        run: Run the sweep (False: show the published table of a larger sweep, shipped with
            the package, instead).
        world: The base world (a name of :data:`lue_spie.data.virtual.worlds.WORLDS`).
        x_dial: First dial or group of dials (``heterogeneity``: the feature-driven spread
            of the parameters).
        x_factors: Its factors.
        y_dial: Second dial or group (``equifinality``: the observation biases, record
            lengths and gaps that make calibrated vectors drift along their trade-offs).
        y_factors: Its factors.
        n_sites: Sites of each point's virtual FLUXNET.
        n_years: Years per site.
        seed: Seed of every point (data, calibration, split, methods).
        methods: The methods each point runs (SPIE and the baselines it is compared with).
        n_folds: Folds of the cross-validation.
        calibrate_max_gen: Most CMA-ES generations of the site calibration.
        opt_max_gen: Most CMA-ES generations of OPT-All and OPT-PFT.
        rf_trees: Trees of sRF and mRF.
        spie_epochs: Most epochs of SPIE.
        dtype: Precision of the CMA-ES searches (``"float32"`` or ``"float64"``).
    """

    run: bool = True
    world: str = "paper"
    x_dial: str = "heterogeneity"
    x_factors: tuple[float, ...] = (0.0, 0.5, 1.0)
    y_dial: str = "equifinality"
    y_factors: tuple[float, ...] = (0.0, 1.0, 2.0)
    n_sites: int = 98
    n_years: int = 4
    seed: int = 0
    methods: tuple[str, ...] = ("PFTmean", "OPT-PFT", "sRF", "SPIE")
    n_folds: int = 10
    calibrate_max_gen: int = 400
    opt_max_gen: int = 200
    rf_trees: int = 100
    spie_epochs: int = 2000
    dtype: str = "float32"

    def __post_init__(self) -> None:
        world_names()  # the registry is loaded
        get_world(self.world)
        dial_names(self.x_dial)
        dial_names(self.y_dial)
        for name in ("x_factors", "y_factors", "methods"):
            value = getattr(self, name)
            if isinstance(value, str) or not value:
                raise ValueError(f"PayoffSettings.{name} = {value!r}: expected a non-empty list")
            object.__setattr__(self, name, tuple(value))
        for name in ("x_factors", "y_factors"):
            if any(not (isinstance(f, (int, float)) and f >= 0) for f in getattr(self, name)):
                raise ValueError(f"PayoffSettings.{name} = {getattr(self, name)!r}: expected "
                                 "numbers >= 0")
            object.__setattr__(self, name, tuple(float(f) for f in getattr(self, name)))
        for m in self.methods:
            method_class(m)
        if "SPIE" not in self.methods or len(self.methods) < 2:
            raise ValueError(f"PayoffSettings.methods = {list(self.methods)!r}: expected SPIE "
                             "and at least one baseline")
        checks = (("n_sites", 14), ("n_years", 1), ("n_folds", 2), ("calibrate_max_gen", 1),
                  ("opt_max_gen", 1), ("rf_trees", 1), ("spie_epochs", 1))
        for name, low in checks:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"PayoffSettings.{name} = {value!r}: expected an int >= {low}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"PayoffSettings.dtype = {self.dtype!r}: expected 'float32' or "
                             "'float64'")

    @property
    def baselines(self) -> tuple[str, ...]:
        """The methods other than SPIE."""
        return tuple(m for m in self.methods if m != "SPIE")

    def points(self) -> list[SweepPoint]:
        """Every point of the grid, ``x`` fastest."""
        base = get_world(self.world)
        out = []
        for y in self.y_factors:
            for x in self.x_factors:
                label = f"{self.x_dial}={x:g}_{self.y_dial}={y:g}"
                world = base.scaled(self.x_dial, x).scaled(self.y_dial, y,
                                                           name=f"{base.name}[{label}]")
                out.append(SweepPoint(label, x, y, world))
        return out

    def calibration(self, device: str = "cpu") -> CalibrationSettings:
        """The site calibration's settings of every point."""
        return CalibrationSettings(max_gen=self.calibrate_max_gen, restarts=0,
                                   dtype=self.dtype, device=device, seed=self.seed)

    def extrapolation(self, device: str = "cpu") -> ExtrapolationSettings:
        """The cross-validation's settings of every point (methods and hyperparameters)."""
        opt = {"max_gen": self.opt_max_gen, "restarts": 0, "dtype": self.dtype,
               "device": device}
        params: dict[str, dict[str, Any]] = {
            "OPT-All": {"settings": opt}, "OPT-PFT": {"settings": opt},
            "sRF": {"n_estimators": self.rf_trees}, "mRF": {"n_estimators": self.rf_trees},
            "SPIE": {"epochs": self.spie_epochs, "batch_size": 32, "mapping": "log",
                     "device": device}}
        return ExtrapolationSettings(
            methods=self.methods, n_folds=self.n_folds, seed=self.seed,
            method_params={m: p for m, p in params.items() if m in self.methods})

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly settings."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

"""The settings of a CMA-ES calibration: one frozen object passed through every layer.

Stopping (defaults chosen with ``benchmarks/bench_calibration.py``): pycma's own criteria with
``tolfun = 1e-6`` (range of recent costs, in cost units = units of 1 - NSE), ``tolx = 1e-4``
(step size in the scaled space) and ``tolfunhist = 1e-7``, and a cap of ``max_gen = 400``
generations per unit (all restarts together), population pycma's default (11 for 11 or 12
free parameters), start at the centre of the scaled box with ``sigma0 = 0.25``. On virtual
FLUXNET (10 years) most sites meet ``tolfun`` between 250 and 400 generations; a cap of 200
stops every site early at a median daily NSE about 0.005 lower and with worse recovery of
Topt, kT and mu. With ``restarts > 0`` an ES that stops before the cap is restarted from a
random point with a population ``incpopsize`` times larger (IPOP-CMA-ES, Auger & Hansen 2005);
the best point over all runs is kept. Restarts are off by default (they spend generations
inside the same cap); on the real CH-Lae site four restarts found the same optimum as a single
run. A restart is begun only when it can run to its end (``restart_min_generations =
"converged"``: at least as many generations left as the run that just stopped took); a
restart cut short by the cap far from convergence cannot beat the optimum already found.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from lue_spie.cost import W_IDEAL, W_NONIDEAL
from lue_spie.model import resolve_device

__all__ = ["CalibrationSettings", "torch_dtype"]


def torch_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``"float64"``/``"float32"`` (or the torch dtype) -> the torch dtype.

    Raises:
        ValueError: for any other precision.
    """
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float64, torch.float32):
            raise ValueError(f"dtype must be float64 or float32, got {dtype}")
        return dtype
    table = {"float64": torch.float64, "float32": torch.float32}
    if dtype not in table:
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return table[dtype]


@dataclasses.dataclass(frozen=True)
class CalibrationSettings:
    """Settings of a CMA-ES calibration (recorded in the provenance and checkpoint hash).

    Attributes:
        seed: Base seed; each unit's generator is seeded from ``(seed, unit id)``.
        popsize: Population size of the first run (None: pycma's default ``4 + 3 ln n``,
            11 for n = 11 or 12 free parameters).
        sigma0: Initial step size in the ``[0, 1]``-scaled space.
        max_gen: Most generations per unit, all restarts together.
        tolfun: pycma ``tolfun`` (cost units).
        tolx: pycma ``tolx`` (scaled parameter units).
        tolfunhist: pycma ``tolfunhist`` (cost units).
        restarts: Number of IPOP restarts allowed per unit.
        incpopsize: Population growth factor per restart.
        restart_min_generations: ``"converged"``: restart only when at least as many
            generations are left (of ``max_gen``) as the stopped run took, so that the
            restart can converge; ``"any"``: whenever any generation is left.
        w_ideal: Weight of the ideal-conditions constraint (see :mod:`lue_spie.cost`).
        w_nonideal: Weight of the non-ideal constraint.
        dtype: ``"float64"`` or ``"float32"`` for the model evaluation.
        device: ``"auto"`` (CUDA when PyTorch sees one), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"``; :meth:`resolved` turns ``"auto"`` into the device used.
        chunk_rows: Most sites evaluated in one model call (bounds memory: one call holds
            about ``chunk_rows * pop * days * 25`` numbers). Small chunks keep the arrays in
            the CPU cache: on the reference machine 8 sites per call measured faster per
            generation than 64 (benchmarks/RESULTS.md; on a GPU, larger chunks pay off).
    """

    seed: int = 0
    popsize: int | None = None
    sigma0: float = 0.25
    max_gen: int = 400
    tolfun: float = 1e-6
    tolx: float = 1e-4
    tolfunhist: float = 1e-7
    restarts: int = 0
    incpopsize: int = 2
    restart_min_generations: str = "converged"
    w_ideal: float = W_IDEAL
    w_nonideal: float = W_NONIDEAL
    dtype: str = "float64"
    device: str = "auto"
    chunk_rows: int = 8

    def __post_init__(self) -> None:
        checks = [
            ("seed", isinstance(self.seed, int) and self.seed >= 0, "a non-negative int"),
            ("popsize", self.popsize is None or (isinstance(self.popsize, int)
                                                and self.popsize >= 2), "None or an int >= 2"),
            ("sigma0", 0.0 < self.sigma0 <= 1.0, "in (0, 1]"),
            ("max_gen", isinstance(self.max_gen, int) and self.max_gen >= 1, "an int >= 1"),
            ("tolfun", self.tolfun >= 0, ">= 0"),
            ("tolx", self.tolx >= 0, ">= 0"),
            ("tolfunhist", self.tolfunhist >= 0, ">= 0"),
            ("restarts", isinstance(self.restarts, int) and self.restarts >= 0, "an int >= 0"),
            ("incpopsize", isinstance(self.incpopsize, int) and self.incpopsize >= 1,
             "an int >= 1"),
            ("restart_min_generations", self.restart_min_generations in ("converged", "any"),
             "'converged' or 'any'"),
            ("w_ideal", self.w_ideal >= 0, ">= 0"),
            ("w_nonideal", self.w_nonideal >= 0, ">= 0"),
            ("chunk_rows", isinstance(self.chunk_rows, int) and self.chunk_rows >= 1,
             "an int >= 1"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"CalibrationSettings.{name} = {getattr(self, name)!r}: "
                                 f"expected {expected}")
        dt = torch_dtype(self.dtype)
        # Stored as its name, so the settings stay JSON-serialisable.
        object.__setattr__(self, "dtype", "float64" if dt == torch.float64 else "float32")

    @property
    def torch_dtype(self) -> torch.dtype:
        """The model evaluation's torch dtype."""
        return torch_dtype(self.dtype)

    def resolved(self) -> CalibrationSettings:
        """The same settings with ``device`` resolved (``"auto"`` -> ``"cuda"`` or ``"cpu"``).

        Raises:
            ValueError: for an unknown device or CUDA without a GPU.
        """
        return dataclasses.replace(self, device=resolve_device(self.device))

    def replace(self, **changes: Any) -> CalibrationSettings:
        """A copy with some fields changed (validated like a new object)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

"""The settings of the assessment (paper section 2.3): one frozen object, the paper's values by
default."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lue_spie.metrics import MIN_POINTS
from lue_spie.timescales import SCALES

__all__ = ["AssessSettings", "TwinSettings"]


@dataclass(frozen=True)
class AssessSettings:
    """How to assess (the paper's settings by default).

    Attributes:
        n_groups: Site groups of the likelihood P (paper: 200).
        sites_per_group: Sites per group (paper: 100; fewer when fewer sites exist).
        years_per_site: Random years per site in a group (paper: 2).
        alpha: Significance level of the KS test and the t-test.
        ttest: ``"welch"`` or ``"paired"`` (see :mod:`lue_spie.assess.likelihood`).
        seed: Seed of the group draws.
        scales: Time scales of the GPP assessment.
        min_points: Fewest good points of a site at a scale.
        focus: Method of Figures 6-7 (default: SPIE if present, else the best by positive
            daily NSE).
        years: Years to assess (default: those every method predicts).
        methods: Methods to assess (default: all found; ``site-calib`` is the calibration).
        p_with_calib: Let site-calib compete in the likelihood P. Off by default, as in the
            paper's Figure 5, where P ranks the extrapolation methods only: the reference
            fitted to each site's own data would win nearly every group and leave P near 0
            for every other method.
        twin: Also compare with the structural-error twin when ``RESULTS/twin`` holds one
            (:mod:`lue_spie.assess.twin`; tables ``twin_worlds`` and ``twin_agreement``).
    """

    n_groups: int = 200
    sites_per_group: int = 100
    years_per_site: int = 2
    alpha: float = 0.05
    ttest: str = "welch"
    seed: int = 0
    scales: tuple[str, ...] = SCALES
    min_points: int = MIN_POINTS
    focus: str | None = None
    years: tuple[int, ...] | None = None
    methods: tuple[str, ...] | None = None
    p_with_calib: bool = False
    twin: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly settings."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class TwinSettings:
    """Whether and how the parameters chapter builds the structural-error twin
    (:mod:`lue_spie.assess.twin`).

    Attributes:
        enabled: Build the twin: the same virtual FLUXNET with the generator's
            structural-error switch flipped, calibrated and extrapolated again with
            ``methods`` (one more site calibration plus those methods).
        methods: Methods the twin reruns (those the main run has; None: all of them).
    """

    enabled: bool = True
    methods: tuple[str, ...] | None = ("PFTmean", "Climmed", "Sitesim", "mRF", "SPIE")

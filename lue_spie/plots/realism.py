"""Figure of the realism comparison: real sites' mean seasonal cycles over virtual bands.

Like every figure function of the project it takes data and returns a
:class:`~matplotlib.figure.Figure`; the numbers come from :mod:`lue_spie.data.realism`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lue_spie.data.realism import Reference
from lue_spie.plots._style import _COLORS, _fig, _styled

__all__ = ["realism_cycles"]

_LABELS = {"GPP_obs": "GPP [gC m-2 d-1]", "VPD": "VPD [Pa]", "T": "T [degC]"}
_MONTH_STARTS = np.array([1, 32, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335])


@_styled
def realism_cycles(
    reference: Reference,
    per_site: Mapping[str, pd.DataFrame],
    cycles: Mapping[str, Mapping[str, pd.DataFrame]],
    *,
    variables: Sequence[str] = ("GPP_obs", "VPD"),
    band: tuple[float, float] = (0.1, 0.9),
) -> Figure:
    """Mean seasonal cycle of each real site over the band of the matching virtual sites.

    One row per (real site, class it is compared with), one column per variable: the real
    site's 31-day smoothed mean cycle (black) and, for each dataset, the median and the
    ``band`` quantiles over its sites of that class (PFT x Koeppen main group).

    Args:
        reference: The real sites (:func:`lue_spie.data.realism.load_reference`).
        per_site: ``{label: site_statistics(...)}`` of each dataset (for the classes).
        cycles: ``{label: mean_cycles(...)}`` of each dataset (north-equivalent days).
        variables: Variables to draw (keys of the cycles).
        band: Lower and upper quantile of the shaded band.
    """
    rows = [(r.site, pft, main) for r in reference.sites.itertuples(index=False)
            for pft, main in reference.compare_with.get(r.site, [(r.PFT, r.koeppen_main)])]
    fig, axes = _fig(len(rows), len(variables), squeeze=False, sharex=True,
                     size=(3.6 * len(variables), 2.3 * len(rows) + 0.4))
    day = np.arange(1, 366)
    for i, (site, pft, main) in enumerate(rows):
        for j, var in enumerate(variables):
            ax = axes[i, j]
            for k, (label, table) in enumerate(per_site.items()):
                ids = table.index[(table["PFT"] == pft) & (table["koeppen_main"] == main)]
                cyc = cycles[label][var].reindex(ids).dropna(how="all")
                if cyc.empty:
                    continue
                values = cyc.to_numpy()
                lo, med, hi = np.nanquantile(values, [band[0], 0.5, band[1]], axis=0)
                color = _COLORS[k % len(_COLORS)]
                ax.fill_between(day, lo, hi, color=color, alpha=0.25, lw=0)
                ax.plot(day, med, color=color, lw=1.2,
                        label=f"{label}: {pft} {main} (n={len(cyc)})")
            real = reference.cycles[var].loc[site].to_numpy()
            ax.plot(day, real, color="black", lw=1.6, label=f"{site} (real)")
            ax.set_ylabel(_LABELS.get(var, var))
            if i == 0:
                ax.set_title(_LABELS.get(var, var).split(" [")[0])
            if j == 0:
                ax.annotate(f"{site} vs {pft} {main}", xy=(0.02, 0.97),
                            xycoords="axes fraction", va="top", fontsize=8)
            ax.legend(loc="upper right", fontsize=7)
    for ax in axes[-1]:
        ax.set_xticks(_MONTH_STARTS)
        ax.set_xticklabels(list("JFMAMJJASOND"))
        ax.set_xlabel("month (north-equivalent)")
    fig.suptitle(f"Mean seasonal cycles: real sites over the {band[0]:.0%}-{band[1]:.0%} "
                 "band of matching sites", fontsize=9)
    return fig

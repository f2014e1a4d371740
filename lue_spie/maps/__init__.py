"""Beyond the towers: parameter and GPP maps of a virtual continent, against its truth.

The paper's stated next step is to extrapolate the parameters from the towers to the land
surface. On the real land surface nobody can say how wrong such a map is away from the
towers; on a virtual continent drawn from the same generator and world as the towers of the
virtual FLUXNET the truth is known in every cell. ``lue-spie maps`` (:func:`run`) draws the
continent, maps the parameters of SPIE and of baselines from what the book trained on the
towers, runs the LUE model per chunk into a CF Zarr store, and measures the maps against the
truth and against the towers' area of applicability.

Modules, one job each:

- :mod:`~lue_spie.maps.settings`: :class:`MapsSettings`, every knob;
- :mod:`~lue_spie.maps.world`: the one door into the generator of the virtual FLUXNET
  (coherent draws, per-cell streams, the world's seam);
- :mod:`~lue_spie.maps.geography`: grid, land, relief, climate zones and PFTs;
- :mod:`~lue_spie.maps.predictors`: each method's parameters for the cells;
- :mod:`~lue_spie.maps.product`: the CF Zarr store;
- :mod:`~lue_spie.maps.tiles`: one chunk of the grid, start to end (the unit of work);
- :mod:`~lue_spie.maps.skill`: errors against the truth, the area of applicability;
- :mod:`~lue_spie.maps.step`, :mod:`~lue_spie.maps.cli`: the step and its command.
"""

from lue_spie.maps.geography import Continent, Grid, make_continent
from lue_spie.maps.product import GPP_STANDARD_NAME, open_maps
from lue_spie.maps.settings import DEFAULT_METHODS, TRUTH, MapsSettings
from lue_spie.maps.skill import (
    Applicability,
    error_by_distance,
    error_table,
    gpp_skill,
    inside_outside,
    parameter_skill,
)
from lue_spie.maps.step import MapsResult, continent_of, run

__all__ = [
    "MapsSettings",
    "DEFAULT_METHODS",
    "TRUTH",
    "GPP_STANDARD_NAME",
    "Grid",
    "Continent",
    "make_continent",
    "continent_of",
    "Applicability",
    "gpp_skill",
    "parameter_skill",
    "error_by_distance",
    "error_table",
    "inside_outside",
    "MapsResult",
    "open_maps",
    "run",
]

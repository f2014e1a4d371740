"""A template for a parameter-extrapolation method of one's own: copy it, and it is one file.

To add a method to the comparison:

1. copy this file to ``lue_spie/methods/<your_module>.py`` (a name without a leading
   underscore: the registry imports every such module of the package, this one it skips);
2. rename the class and give it its class keywords (:class:`~lue_spie.methods.base.Method`
   explains them): ``name`` (how tables, figures and ``--methods`` call it), ``family`` (one
   of :data:`~lue_spie.methods.base.FAMILIES`), what it ``predicts``, what it
   ``learns_from`` and how it treats the ``folds``; leave ``order`` out (it is the paper's
   order of its twelve methods);
3. declare its hyperparameters as dataclass fields (each with a default and a line in the
   docstring's ``Attributes``): they are recorded in every result's provenance, reach it from
   ``lue-spie extrapolate --param NAME.FIELD=VALUE``, and key its units (a rerun with other
   hyperparameters runs again);
4. write :meth:`fit` (learn from the training sites; only what the fold may see) and
   :meth:`predict` (a table ``site`` + the 13 parameters + ``note``, through
   :func:`~lue_spie.methods.base.params_frame` and
   :func:`~lue_spie.methods.base.finish_params`, which clip into the bounds and apply each
   site's lag mask).

Then ``lue-spie extrapolate --methods YourName`` runs it under the same ten-fold
cross-validation as the paper's twelve, and ``lue-spie assess`` puts it in every table and
figure beside them (``tests/integration/test_toy_method.py`` does exactly that with a method
defined in the test).

The example below predicts, for every held-out site, the median of the calibrated vectors of
the training sites of the same Koeppen main group and PFT, falling back to all training sites.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lue_spie.methods.base import Method, SiteData, finish_params, params_frame
from lue_spie.params import PARAMETERS

__all__ = ["TemplateMethod"]


@dataclasses.dataclass
class TemplateMethod(Method, family="grouping", predicts="params", learns_from="calibration",
                     folds="each"):
    """Median calibrated vector of the training sites of the same PFT and climate group.

    (Registered only when given ``name=``: add ``name="YourName"`` to the class keywords of
    your copy.)

    Attributes:
        min_sites: Fewest training sites a (PFT, climate) group needs; below, the median of
            all training sites is used.
    """

    min_sites: int = 2

    def fit(self, data: SiteData, train_sites: Sequence[str]) -> TemplateMethod:
        """Learn the medians of the training sites' calibrated vectors, per group."""
        train = data.check_sites(train_sites, "training sites")
        cal = data.calibrated(train)
        groups = data.sites.loc[cal["site"], ["PFT", "main_group"]].reset_index(drop=True)
        table = pd.concat([groups, cal[list(PARAMETERS)]], axis=1)
        counts = table.groupby(["PFT", "main_group"]).size()
        medians = table.groupby(["PFT", "main_group"])[list(PARAMETERS)].median()
        self.group_params_ = medians[counts >= self.min_sites]
        self.fallback_ = cal[list(PARAMETERS)].median().to_numpy(np.float64)
        return self

    def predict(self, data: SiteData, sites: Sequence[str]) -> pd.DataFrame:
        """The group median of each site, or the fallback where its group is too small."""
        sites = data.check_sites(sites)
        info = data.sites.loc[sites]
        rows, notes = [], []
        for _, s in info.iterrows():
            key = (s["PFT"], s["main_group"])
            if key in self.group_params_.index:
                rows.append(self.group_params_.loc[key].to_numpy(np.float64))
                notes.append("")
            else:
                rows.append(self.fallback_)
                notes.append(f"fallback: fewer than {self.min_sites} training sites of "
                             f"{key[0]} in climate group {key[1]}")
        params = finish_params(np.array(rows), list(info["koeppen"]))
        return params_frame(sites, params, notes)

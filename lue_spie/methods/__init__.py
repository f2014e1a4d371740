"""The parameter-extrapolation methods of the comparison (paper section 2.2), one registry.

One module per family, each method registered by the paper's name:

- :mod:`~lue_spie.methods.grouping`: PFTmean, Climmean, PFTmed, Climmed;
- :mod:`~lue_spie.methods.similarity`: Sitesim;
- :mod:`~lue_spie.methods.optimisation`: OPT-All, OPT-PFT;
- :mod:`~lue_spie.methods.regression`: sRF, mRF, mNN;
- :mod:`~lue_spie.methods.pmodel`: P-model (pyrealm);

and SPIE, the paper's contribution. The interface and the registry are in
:mod:`~lue_spie.methods.base`; the cross-validated runs are driven by
:mod:`lue_spie.extrapolate`.
"""

from lue_spie.methods.base import (
    FAMILIES,
    Method,
    SiteData,
    finish_params,
    get_method,
    method_class,
    paper_order,
    params_frame,
    registered_methods,
)

__all__ = [
    "FAMILIES",
    "paper_order",
    "Method",
    "SiteData",
    "finish_params",
    "get_method",
    "method_class",
    "params_frame",
    "registered_methods",
]

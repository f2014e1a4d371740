"""Random forcing and parameters for model tests (shared by test modules)."""

from __future__ import annotations

import numpy as np
import torch

from lue_spie.params import PARAMETERS, from_scaled


def random_forcing(n_sites: int, n_days: int, seed: int = 0,
                   dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """Random but physically plausible daily forcing in SPEC units."""
    rng = np.random.default_rng(seed)
    shape = (n_sites, n_days)
    f = {
        "T": rng.uniform(-20.0, 40.0, shape),
        "VPD": rng.uniform(0.0, 4000.0, shape),
        "CO2": rng.uniform(340.0, 420.0, shape),
        "W": rng.uniform(0.0, 1.0, shape),
        "PAR": rng.uniform(0.0, 15.0, shape),
        "FAPAR": rng.uniform(0.0, 1.0, shape),
        "CI": rng.uniform(0.0, 1.0, shape),
    }
    return {k: torch.as_tensor(v, dtype=dtype) for k, v in f.items()}


def random_params(n_sites: int, seed: int = 0, dtype: torch.dtype = torch.float64,
                  alphas: tuple[float, ...] = (0.0, 0.9)) -> torch.Tensor:
    """Random parameter vectors inside the bounds; the first sites get the given lag values
    (so the extremes alpha = 0 and alpha = 0.9 are always exercised)."""
    rng = np.random.default_rng(seed + 1000)
    p = from_scaled(rng.uniform(0.0, 1.0, (n_sites, len(PARAMETERS))))
    iT, iW = PARAMETERS.index("alpha_T"), PARAMETERS.index("alpha_W")
    for i, a in enumerate(alphas[:n_sites]):
        p[i, iT] = a
        p[i, iW] = alphas[-1 - i % len(alphas)]
    return torch.as_tensor(p, dtype=dtype)

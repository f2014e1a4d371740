"""The virtual FLUXNET's drawn site features: soil properties and N/P deposition.

Where the real features are computed from climate and satellite series (BIO1-19, AI1-2,
VIF1-11), the generator computes them from its own forcing
(:func:`lue_spie.data.features.site_features_from_site_day`, called by
:func:`lue_spie.data.virtual.generator.make_tables`). The others are drawn here with
realistic correlations: the 17 soil properties (:func:`_soil`: texture from aridity, SOC from
temperature and moisture, pH from aridity, derived ones consistent) and N/P deposition
(:func:`_deposition`: by region, PFT and hemisphere).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _soil(rng: np.random.Generator, sites: pd.DataFrame, AI1: np.ndarray,
          BIO1: np.ndarray) -> pd.DataFrame:
    """The 17 soil properties (``soil_*`` columns) of each site, drawn from its aridity
    index ``AI1``, mean temperature ``BIO1``, PFT and elevation."""
    n = len(sites)
    z_ai = np.tanh(np.log(np.clip(AI1, 1e-3, None) / 0.8))  # + humid, - arid
    pft = sites["PFT"].to_numpy()
    forest = np.isin(pft, ["ENF", "EBF", "DBF", "MF"])
    e = rng.standard_normal((n, 16))
    alr_sand = 0.9 - 0.7 * z_ai + 0.6 * e[:, 0]
    alr_silt = 0.6 + 0.1 * z_ai + 0.5 * e[:, 1]
    expo = np.exp(np.stack([alr_sand, alr_silt, np.zeros(n)], axis=1))
    tex = 100.0 * expo / expo.sum(axis=1, keepdims=True)
    sand, silt, clay = tex[:, 0], tex[:, 1], tex[:, 2]
    pft_soc = {"WET": 1.1, "ENF": 0.35, "EBF": 0.25, "DBF": 0.25, "MF": 0.3, "CRO": -0.2,
               "OSH": -0.5, "CSH": -0.2, "SAV": -0.2, "WSA": -0.1, "GRA": 0.0}
    soc = np.exp(math.log(15.0) + 0.6 * z_ai - 0.035 * (BIO1 - 10.0)
                 + np.array([pft_soc[p] for p in pft]) + 0.35 * e[:, 2])
    soc = np.clip(soc, 1.0, 450.0)
    cn = np.exp(math.log(11.0) + 0.25 * forest + 0.2 * (pft == "ENF") + 0.3 * (pft == "WET")
                + 0.12 * e[:, 3])
    nitrogen = soc / cn
    cfvo = np.clip(np.exp(math.log(7.0) + 0.35 * np.log1p(sites["elevation"].clip(lower=0)
                                                         .to_numpy() / 500.0)
                          + 0.6 * e[:, 4]), 0.0, 70.0)
    bdod = np.clip(1.55 - 0.14 * np.log(soc / 10.0) + 0.06 * e[:, 5], 0.3, 1.85)
    ocd = soc * bdod * (1.0 - cfvo / 100.0)
    ocs = ocd * 0.3 * 10.0
    cec = np.clip(0.45 * clay + 0.3 * soc + 2.0 * e[:, 6] + 3.0, 1.0, 200.0)
    ph = np.clip(6.5 - 1.0 * z_ai - 0.35 * (pft == "ENF") - 0.3 * (pft == "WET")
                 + 0.35 * e[:, 7], 3.8, 9.2)
    clay_sub = np.clip(clay * np.exp(0.15 + 0.1 * e[:, 8]), 1.0, 80.0)
    sand_sub = np.clip(sand * np.exp(-0.05 + 0.1 * e[:, 9]), 1.0, 99.0 - clay_sub)
    soc_sub = soc * np.exp(math.log(0.4) + 0.2 * e[:, 10])
    bdod_sub = np.clip(bdod + 0.1 + 0.04 * e[:, 11], 0.4, 2.0)
    ph_sub = np.clip(ph + 0.2 + 0.15 * e[:, 12], 3.8, 9.5)
    return pd.DataFrame({
        "soil_bdod": bdod, "soil_cec": cec, "soil_cfvo": cfvo, "soil_clay": clay,
        "soil_sand": sand, "soil_silt": silt, "soil_nitrogen": nitrogen, "soil_phh2o": ph,
        "soil_soc": soc, "soil_ocd": ocd, "soil_ocs": ocs, "soil_cn": soc / nitrogen,
        "soil_bdod_sub": bdod_sub, "soil_clay_sub": clay_sub, "soil_sand_sub": sand_sub,
        "soil_soc_sub": soc_sub, "soil_phh2o_sub": ph_sub,
    }, index=sites.index)


def _deposition(rng: np.random.Generator, sites: pd.DataFrame) -> pd.DataFrame:
    """N (NHx, NOy) and P deposition of each site, drawn by region (Koeppen type), PFT and
    hemisphere; NHx and NOy correlated."""
    n = len(sites)
    main = sites["koeppen_main"].to_numpy()
    kg = sites["koeppen"].to_numpy()
    pft = sites["PFT"].to_numpy()
    south = sites["lat"].to_numpy() < 0
    region = {"A": -0.2, "B": -0.5, "C": 0.5, "D": 0.1, "E": -1.2}
    r = np.array([region[m] for m in main])
    e = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.6], [0.6, 1.0]], size=n)
    nhx = np.exp(math.log(3.0) + r + 0.6 * (pft == "CRO") + 0.8 * (kg == "Cwa")
                 + 0.3 * (kg == "Cfa") - 0.6 * south + 0.35 * e[:, 0])
    noy = np.exp(math.log(2.5) + r + 0.2 * (pft == "CRO") + 0.6 * (kg == "Cwa")
                 + 0.4 * np.isin(kg, ["Cfa", "Cfb"]) - 0.7 * south + 0.35 * e[:, 1])
    pdep = np.exp(math.log(0.25) + 0.8 * (main == "B") + 0.4 * (main == "A")
                  - 0.8 * (main == "E") + 0.3 * rng.standard_normal(n))
    return pd.DataFrame({"NdepNHX": np.clip(nhx, 0.05, 150.0),
                         "NdepNOY": np.clip(noy, 0.05, 150.0),
                         "Pdep": np.clip(pdep, 0.005, 15.0)}, index=sites.index)

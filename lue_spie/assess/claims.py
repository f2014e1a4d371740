"""The paper's claims next to a run's numbers, and the sentences that state a run's findings.

Two things the book needs so that its prose cannot contradict its own tables:

- :data:`PAPER_CLAIMS`: each quantitative claim of the paper, in this project's words, with
  where the paper makes it (abstract, section, figure). :func:`compare_with_paper` puts this
  run's number beside each and says whether the pattern agrees;
- :func:`findings`: the sentences of the book's introduction and of the assessment chapter
  that compare methods ("SPIE comes first by ..."), each chosen by the numbers of the run,
  with the numbers in it formatted from the same table.

Bao et al. (2023) do not say at which time scale their shares of sites with a positive NSE
are counted, nor which statistic their NSE of 0.95 (site calibration) and 0.68 (SPIE) is; the
claims say so, and the comparison shows this run's daily and yearly values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lue_spie.assess.inputs import SITE_CALIB

__all__ = ["PaperClaim", "PAPER_CLAIMS", "OTHERS_IN_THE_41_PERCENT_CLAIM", "compare_with_paper",
           "findings", "headline_summary", "MEASURES"]


@dataclass(frozen=True)
class PaperClaim:
    """One claim of the paper.

    Attributes:
        key: Short name of the claim.
        claim: What the paper states, in this project's words.
        paper: The paper's value.
        location: Where the paper states it.
    """

    key: str
    claim: str
    paper: str
    location: str


#: The methods the paper's "below 41 %" covers: its univariate clustering, similarity-,
#: regression-based and globally fixed methods (section 5). OPT-All and OPT-PFT are not in
#: that list.
OTHERS_IN_THE_41_PERCENT_CLAIM: tuple[str, ...] = (
    "PFTmean", "Climmean", "PFTmed", "Climmed", "Sitesim", "sRF", "mRF", "mNN", "P-model")

#: The paper's quantitative claims (Bao et al. 2023), with their location in the paper.
PAPER_CLAIMS: tuple[PaperClaim, ...] = (
    PaperClaim("spie_share", "sites where SPIE's NSE is positive (time scale not stated)",
               "74 %", "section 5"),
    PaperClaim("others_share", "the same, for each clustering, similarity, regression and "
               "fixed method (OPT-All and OPT-PFT are not in this list)", "below 41 %",
               "section 5"),
    PaperClaim("spie_nse", "NSE of SPIE, the only extrapolation method with a positive one "
               "(statistic not stated)", "0.68", "abstract"),
    PaperClaim("calib_nse", "NSE of site calibration (statistic not stated)", "0.95",
               "abstract"),
    PaperClaim("most_sites", "most sites with a positive NSE, at the daily, weekly, monthly "
               "and yearly scales", "SPIE", "section 3.1, Figure 2"),
    PaperClaim("first_by_P", "first by the average model likelihood P", "SPIE",
               "section 3.1, Figure 5"),
    PaperClaim("next_by_P", "next by P", "OPT-All and Climmed, each below 0.06",
               "section 3.1, Figure 5"),
    PaperClaim("best_spatial", "best NSE of site-mean GPP across sites", "SPIE",
               "section 3.1, Figure 3"),
)

#: The measures of :func:`findings`: headline column -> how the book names it.
MEASURES: Mapping[str, str] = {
    "median_NSE": "median daily NSE",
    "share_positive_NSE": "share of sites with a positive daily NSE",
    "spatial_NSE": "spatial NSE of site-mean GPP",
    "P": "model likelihood P",
}


def _verdict(ok: bool | None) -> str:
    return "not testable" if ok is None else ("yes" if ok else "no")


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.0f} %"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def compare_with_paper(headline: pd.DataFrame, summary: pd.DataFrame,
                       likelihood_average: pd.DataFrame | None) -> pd.DataFrame:
    """The paper's claims (:data:`PAPER_CLAIMS`) next to this run's numbers.

    Args:
        headline: The assessment's headline table (one row per method).
        summary: The score summary (one row per method and time scale).
        likelihood_average: The average P per method, best first (None: not computed).

    Returns:
        One row per claim with the columns ``claim``, ``paper``, ``where in the paper``,
        ``this run`` and ``agrees`` (``yes``, ``no``, or ``not testable`` while a method the
        claim names has not run, or where a level depends on the data: the shares' levels
        are the virtual world's, only their order is tested).
    """
    h = headline.set_index("method")
    extrap = [m for m in h.index if m != SITE_CALIB]
    has_spie = "SPIE" in extrap
    by_scale = summary.set_index(["method", "scale"])["share_positive_NSE"]
    rows: list[tuple[str, str, str]] = []

    def share(method: str, scale: str) -> float:
        return float(by_scale.get((method, scale), np.nan))

    spie_daily, spie_yearly = share("SPIE", "daily"), share("SPIE", "yearly")
    rows.append((f"daily {_pct(spie_daily)}, yearly {_pct(spie_yearly)}" if has_spie
                 else "SPIE not run", "not testable"))
    listed = [m for m in OTHERS_IN_THE_41_PERCENT_CLAIM if m in extrap]
    if listed:
        daily = pd.Series({m: share(m, "daily") for m in listed})
        best = str(daily.idxmax())
        rows.append((f"best {best}: daily {_pct(daily[best])}, yearly "
                     f"{_pct(share(best, 'yearly'))}", _verdict(bool(daily.max() < 0.41))))
    else:
        rows.append(("none of these methods run", "not testable"))
    spie_med = float(h["median_NSE"].get("SPIE", np.nan))
    positive = [m for m in extrap if float(h.at[m, "median_NSE"]) > 0]
    rows.append((f"median daily {spie_med:.2f}; positive medians: "
                 f"{', '.join(positive) or 'none'}" if has_spie else "SPIE not run",
                 _verdict(None if not has_spie else positive == ["SPIE"])))
    calib = float(h["median_NSE"].get(SITE_CALIB, np.nan))
    rows.append((f"median daily {calib:.2f}" if np.isfinite(calib) else "not run",
                 "not testable"))
    scales = [s for s in ("daily", "weekly", "monthly", "yearly")
              if (s in set(summary["scale"]))]
    firsts = {}
    for s in scales:
        sub = summary[(summary["scale"] == s) & (summary["method"].isin(extrap))]
        sub = sub.dropna(subset=["share_positive_NSE"])
        if len(sub):
            firsts[s] = str(sub.sort_values(["share_positive_NSE", "median_NSE"],
                                            ascending=False, kind="stable")["method"].iloc[0])
    rows.append(("; ".join(f"{s} {m}" for s, m in firsts.items()) or "no scores",
                 _verdict(None if not has_spie or not firsts
                          else all(m == "SPIE" for m in firsts.values()))))
    if likelihood_average is not None and len(likelihood_average):
        avg = likelihood_average
        first = str(avg["method"].iloc[0])
        rows.append((f"{first} (P {avg['P'].iloc[0]:.2f})",
                     _verdict(None if not has_spie else first == "SPIE")))
        nxt = avg.iloc[1:3]
        rows.append((", ".join(f"{m} ({p:.2f})" for m, p in
                               zip(nxt["method"], nxt["P"], strict=True)) or "-",
                     _verdict(set(nxt["method"]) == {"OPT-All", "Climmed"}
                              if has_spie and len(avg) >= 3 else None)))
    else:
        rows += [("P not computed", "not testable")] * 2
    sp = h.loc[extrap, "spatial_NSE"].dropna() if extrap else pd.Series(dtype=float)
    if len(sp):
        top = str(sp.idxmax())
        rows.append((f"{top} ({sp[top]:.2f})", _verdict(None if not has_spie
                                                          else top == "SPIE")))
    else:
        rows.append(("no scores", "not testable"))
    return pd.DataFrame(
        [(c.claim, c.paper, c.location, run, agrees)
         for c, (run, agrees) in zip(PAPER_CLAIMS, rows, strict=True)],
        columns=["claim", "paper", "where in the paper", "this run", "agrees"])


def _ordinal(n: int) -> str:
    return f"{n}{'tsnrhtdd'[(n // 10 % 10 != 1) * (n % 10 < 4) * n % 10::4]}"


def _fmt(column: str, value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    if column == "share_positive_NSE":
        return _pct(value)
    return f"{value:.2f}" if column == "P" else f"{value:.3f}"


def findings(headline: pd.DataFrame) -> dict[str, str]:
    """The sentences that state who leads, chosen by this run's numbers.

    Args:
        headline: The assessment's headline table (one row per method).

    Returns:
        ``ranking`` (who comes first by each of :data:`MEASURES` among the extrapolation
        methods), ``margin`` (SPIE against the best other method by median daily NSE),
        ``baselines`` (how many other methods are positive at more than 41 % of sites) and
        ``truth`` (closeness of the parameters to the truth, virtual data only). A sentence
        about SPIE says so when SPIE has not been run.
    """
    h = headline.set_index("method")
    extrap = [m for m in h.index if m != SITE_CALIB]
    out: dict[str, str] = {}
    if "SPIE" not in extrap:
        msg = "SPIE has not been run into this results folder, so no comparison is made."
        return {"ranking": msg, "margin": msg, "baselines": msg, "truth": msg}
    others = [m for m in extrap if m != "SPIE"]
    leads, behind = [], []
    for col, name in MEASURES.items():
        values = h.loc[extrap, col].astype(float).dropna()
        if values.empty or "SPIE" not in values.index:
            continue
        spie = float(values["SPIE"])
        ahead = values[values > spie + 1e-12]
        if ahead.empty:
            tied = [m for m in values.index if m != "SPIE" and np.isclose(values[m], spie)]
            leads.append(f"the {name}" + (f" (tied with {_and(tied)})" if tied else ""))
        else:
            top = str(ahead.idxmax())
            behind.append(f"by the {name}, {top} leads ({_fmt(col, values[top])} against "
                          f"SPIE's {_fmt(col, spie)})")
    n = len(extrap)
    if leads and not behind:
        out["ranking"] = (f"Of the {n} extrapolation methods, SPIE comes first by every "
                          f"measure here: {_and(leads)}.")
    elif leads:
        out["ranking"] = (f"Of the {n} extrapolation methods, SPIE comes first by "
                          f"{_and(leads)}; {'; '.join(behind)}.")
    else:
        out["ranking"] = (f"Of the {n} extrapolation methods, SPIE comes first by none of "
                          f"these measures: {'; '.join(behind)}.")
    med = h.loc[others, "median_NSE"].astype(float).dropna()
    spie = float(h.at["SPIE", "median_NSE"])
    if len(med):
        best = str(med.idxmax())
        diff = spie - float(med[best])
        side = "above" if diff > 0 else "below" if diff < 0 else "level with"
        out["margin"] = (f"SPIE's median held-out daily NSE is {spie:.3f}, {abs(diff):.3f} "
                         f"{side} that of the best other method, {best} ({med[best]:.3f}).")
    else:
        out["margin"] = f"SPIE's median held-out daily NSE is {spie:.3f}; no other method ran."
    shares = h.loc[others, "share_positive_NSE"].astype(float).dropna()
    above = [m for m in shares.index if shares[m] > 0.41]
    out["baselines"] = (
        f"{len(above)} of the {len(shares)} other extrapolation methods have a positive daily "
        f"NSE at more than 41 % of sites (SPIE: {_pct(float(h.at['SPIE', 'share_positive_NSE']))}"
        f"; the lowest share, {_pct(shares.min()) if len(shares) else 'n/a'}, is "
        f"{shares.idxmin() if len(shares) else 'n/a'}'s).")
    if "truth_distance" in h.columns and h.loc[extrap, "truth_distance"].notna().any():
        dist = h.loc[[*extrap, SITE_CALIB] if SITE_CALIB in h.index else extrap,
                     "truth_distance"].astype(float).dropna().sort_values(kind="stable")
        rank = int(list(dist.index).index("SPIE")) + 1 if "SPIE" in dist.index else None
        closest = str(dist.index[0])
        if rank == 1:
            out["truth"] = (f"SPIE's parameters are the closest to the true ones of the "
                            f"{len(dist)} parameter sets compared (mean scaled distance "
                            f"{dist['SPIE']:.3f}; next {dist.index[1]}, "
                            f"{dist.iloc[1]:.3f}).")
        elif rank is not None:
            out["truth"] = (f"By distance to the true parameters SPIE ranks {_ordinal(rank)} "
                            f"of {len(dist)} parameter sets ({dist['SPIE']:.3f}); "
                            f"{closest}'s are the closest ({dist.iloc[0]:.3f}).")
        else:
            out["truth"] = "SPIE's parameters were not compared with the truth."
    else:
        out["truth"] = "Real data have no true parameters to compare with."
    return out


def headline_summary(headline: pd.DataFrame) -> pd.DataFrame:
    """The book's summary table: SPIE, the best other method and site calibration.

    The best other method is the one with the highest median held-out daily NSE. Values are
    formatted as the prose shows them (shares in percent); site calibration is scored in
    sample and has no P.

    Returns:
        One row per measure of :data:`MEASURES`, one column per method shown.
    """
    h = headline.set_index("method")
    extrap = [m for m in h.index if m != SITE_CALIB]
    others = h.loc[[m for m in extrap if m != "SPIE"], "median_NSE"].astype(float).dropna()
    columns: dict[str, str] = {}
    if "SPIE" in h.index:
        columns["SPIE"] = "SPIE"
    if len(others):
        best = str(others.idxmax())
        columns[best] = f"best other method ({best})"
    if SITE_CALIB in h.index:
        columns[SITE_CALIB] = "site calibration (in sample)"
    table = pd.DataFrame(
        {label: [_fmt(col, float(h.at[m, col])) if col in h.columns else "n/a"
                 for col in MEASURES] for m, label in columns.items()},
        index=pd.Index(list(MEASURES.values()), name="measure"))
    return table

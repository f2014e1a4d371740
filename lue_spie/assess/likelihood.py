"""Model likelihood P of each parameterisation method (paper section 2.3.3, SPEC section 4).

P asks, over many random groups of site-years, how often a method is the single best one
according to statistical tests on its site-year skill. The paper (after Bao et al. 2022) draws
200 groups of 100 random sites with 2 random years each, computes NSE, R2 and NRMSE of every
site-year, compares the methods' site-year vectors with a Kolmogorov-Smirnov test and a t-test,
gives the method statistically better than all others a score of 1, breaks ties among the best
by the metric over all pooled site-years, and averages the score over groups. No public
implementation exists; this one is written from the SPEC and the paper, and these are its
decisions:

1. **Site-year values.** For every method, site and calendar year, each (metric, time scale)
   pair of :data:`PAPER_COMBOS` is computed over that site-year's good points at that scale
   (QC rules of :mod:`lue_spie.timescales`; weeks belong to the year of their Thursday). The
   daily, weekly and monthly scales need :data:`~lue_spie.metrics.MIN_POINTS` (4) good points
   in the year. A site-year has one yearly value, so only NRMSE (``|sim - obs| / obs`` of the
   yearly means) is defined at the yearly scale, from that one point; the paper uses the same
   ten pairs: NSE, R2 and NRMSE daily, weekly and monthly, and NRMSE yearly.
2. **Eligible site-years.** A site-year takes part when every pair of the comparison is
   defined for every method there (common support: all methods are compared on exactly the
   same site-years). A method that covers only some sites limits P to the sites that every
   method covers; :class:`LikelihoodInfo` counts what was left out.
3. **Groups.** ``n_groups`` groups are drawn independently. Each holds
   ``k = min(sites_per_group, pool size)`` distinct sites drawn uniformly from the pool and,
   for each site, ``y`` distinct eligible years drawn uniformly, with
   ``y = min(years_per_site, the most eligible years any site has)``. The pool is the sites
   with at least ``y`` eligible years; sites with fewer are left out and listed (ragged groups
   would weigh sites unequally and break the batched tests). So with fewer sites than
   ``sites_per_group`` every group holds every site and groups differ by their years, and
   with a single year per site ``y`` is 1. A group's vectors hold ``n = k * y`` site-years,
   the same ones for every method.
4. **Tests.** For each group, pair and pair of methods a and b: a two-sample KS test
   (``scipy.stats.ks_2samp``, two-sided; exact p-values at these sizes) and a t-test
   (``scipy.stats.ttest_ind(equal_var=False)``, Welch's; ``ttest="paired"`` uses
   ``scipy.stats.ttest_rel``). a is *statistically better* than b when **both** tests reject
   equality at ``alpha`` (default 0.05) and a's mean value is better (higher NSE or R2, lower
   NRMSE). Both, because the KS test alone also reacts to a different spread or shape that
   need not make a method better, and the t-test alone to a mean moved by a few extreme
   site-years: together, the distribution of skill differs and its centre is better.
   *Welch, not paired*: the paper compares the methods' vectors as two samples of site-year
   skill with the KS test, which is a two-sample (unpaired) test; Welch's t-test asks the
   matching question about their means, so both tests compare the same thing. Welch's and not
   Student's because the spreads differ a lot between methods (poor methods have long
   negative NSE tails). A paired t-test is more sensitive (it removes the between-site
   spread), but pairing one of two tests mixes two questions while the KS test stays
   unpaired; ``ttest="paired"`` is there for sensitivity analyses (on four close synthetic
   methods it made fewer methods candidates and left P nearly unchanged).
5. **Scores.** The candidates of a group are the methods that no other method is
   statistically better than. There is always one (no method beats the one with the best
   mean), and a method better than all others is the only candidate. The candidate with the
   best metric pooled over all site-years of the group (the metric of their concatenated good
   points, computed exactly from :class:`~lue_spie.metrics.Moments`) scores 1; candidates
   whose pooled values are exactly equal (identical predictions) share the 1 equally; every
   other method scores 0. So the scores of a group sum to 1.
6. **P.** P of a method for a (metric, scale) pair is its mean score over the groups; the
   overall P is the mean over the pairs (the paper's average across metrics and scales).
   Each pair's P sums to 1 over the methods.
7. **Speed.** Site-year values come from one pass per scale (year segments of
   :class:`~lue_spie.metrics.Moments`); groups are fancy indexing. Only whether *some*
   method beats a method matters, so the tests run in rounds over the ranks by mean: in round
   t every method not yet beaten is tested against the method of rank t, for all groups in
   one batched call (``axis=-1``); with a clear winner one round settles a group, and the
   worst case is every pair. The KS test (a per-slice loop inside scipy, the slow part) runs
   only where the t-test rejected, since "better" needs both. The random generator is
   ``numpy.random.default_rng(seed)``: the same inputs and seed give the same P.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from lue_spie.metrics import HIGHER_IS_BETTER, METRICS, MIN_POINTS, Moments
from lue_spie.timescales import SCALES, GPPGrid, ScaleSeries, all_scales, check_scales

__all__ = [
    "PAPER_COMBOS", "SITE_YEAR_MIN_POINTS", "SiteYearScores", "LikelihoodInfo", "Likelihood",
    "site_year_scores", "model_likelihood",
]

#: The (metric, time scale) pairs of the paper's P: three metrics at three scales, yearly NRMSE.
PAPER_COMBOS: tuple[tuple[str, str], ...] = (
    ("NSE", "daily"), ("NSE", "weekly"), ("NSE", "monthly"),
    ("R2", "daily"), ("R2", "weekly"), ("R2", "monthly"),
    ("NRMSE", "daily"), ("NRMSE", "weekly"), ("NRMSE", "monthly"), ("NRMSE", "yearly"),
)

#: Fewest good points of a site-year per scale (one yearly value per site-year).
SITE_YEAR_MIN_POINTS: dict[str, int] = {
    "daily": MIN_POINTS, "weekly": MIN_POINTS, "monthly": MIN_POINTS, "yearly": 1,
}

#: t-test variants: name -> description.
TTESTS: dict[str, str] = {
    "welch": "Welch's two-sample t-test (scipy.stats.ttest_ind, equal_var=False)",
    "paired": "paired t-test over the same site-years (scipy.stats.ttest_rel)",
}


# --------------------------------------------------------------------------------------------
# Site-year values
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteYearScores:
    """Metric values of every method, site and year for the (metric, scale) pairs of P.

    Attributes:
        methods: Method names.
        sites: Site ids.
        years: Calendar years.
        combos: The (metric, scale) pairs, in the order of ``values``.
        values: ``(pairs, methods, sites, years)``, NaN where undefined.
        moments: Scale -> site-year :class:`~lue_spie.metrics.Moments`
            ``(methods, sites, years)`` (for pooled metrics).
        eligible: ``(sites, years)`` every pair defined for every method (decision 2).
    """

    methods: tuple[str, ...]
    sites: tuple[str, ...]
    years: np.ndarray
    combos: tuple[tuple[str, str], ...]
    values: np.ndarray
    moments: dict[str, Moments]
    eligible: np.ndarray

    def subset(self, combos: Sequence[tuple[str, str]]) -> SiteYearScores:
        """The same values for a subset of the pairs (eligibility recomputed for them)."""
        combos = _check_combos(combos)
        if combos == self.combos:
            return self
        index = {c: i for i, c in enumerate(self.combos)}
        missing = [c for c in combos if c not in index]
        if missing:
            raise ValueError(f"SiteYearScores.subset: pair(s) {missing} not computed (have "
                             f"{list(self.combos)})")
        values = self.values[[index[c] for c in combos]]
        return SiteYearScores(self.methods, self.sites, self.years, combos, values,
                              self.moments, np.isfinite(values).all(axis=(0, 1)))

    def to_frame(self) -> pd.DataFrame:
        """Long table: method, site, year, metric, scale, value, eligible (defined values)."""
        n_c, n_m, n_s, n_y = self.values.shape
        c, m, s, y = (a.reshape(-1) for a in np.meshgrid(
            np.arange(n_c), np.arange(n_m), np.arange(n_s), np.arange(n_y), indexing="ij"))
        frame = pd.DataFrame({
            "method": np.array(self.methods, dtype=object)[m],
            "site": np.array(self.sites, dtype=object)[s],
            "year": self.years[y],
            "metric": np.array([k[0] for k in self.combos], dtype=object)[c],
            "scale": np.array([k[1] for k in self.combos], dtype=object)[c],
            "value": self.values.reshape(-1),
            "eligible": self.eligible[s, y],
        })
        frame = frame[frame["value"].notna()].reset_index(drop=True)
        for col in ("method", "site", "metric", "scale"):
            frame[col] = frame[col].astype(str)
        return frame


def _check_combos(combos: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    combos = tuple((str(m), str(s)) for m, s in combos)
    if not combos:
        raise ValueError("no (metric, scale) pairs given")
    for metric, scale in combos:
        if metric not in METRICS or scale not in SCALES:
            raise ValueError(f"unknown (metric, scale) pair {(metric, scale)}; metrics are "
                             f"{METRICS}, scales {SCALES}")
        if scale == "yearly" and metric != "NRMSE":
            raise ValueError(f"{metric} is undefined for a single yearly value per site-year; "
                             "only NRMSE is (decision 1 of lue_spie.assess.likelihood)")
    if len(set(combos)) != len(combos):
        raise ValueError("duplicate (metric, scale) pairs")
    return combos


def _site_year_moments(s: ScaleSeries) -> Moments:
    mask = s.good[None] & np.isfinite(s.GPP_sim)
    starts = s.year_starts
    part = Moments.from_series(s.GPP_obs, s.GPP_sim, mask, starts=starts)
    where = s.year_index[starts]
    full_shape = (*part.shape[:-1], len(s.years))

    def place(a: np.ndarray) -> np.ndarray:
        out = np.zeros(full_shape)
        out[..., where] = a
        return out

    return part.map(place)


def site_year_scores(series: Mapping[str, ScaleSeries] | GPPGrid,
                     combos: Sequence[tuple[str, str]] = PAPER_COMBOS) -> SiteYearScores:
    """Site-year metric values for the likelihood (decisions 1 and 2).

    Args:
        series: Time scale -> :class:`~lue_spie.timescales.ScaleSeries`, or a
            :class:`~lue_spie.timescales.GPPGrid` (aggregated here).
        combos: The (metric, scale) pairs.
    """
    combos = _check_combos(combos)
    scales = [s for s in SCALES if s in {c[1] for c in combos}]
    if isinstance(series, GPPGrid):
        series = all_scales(series, scales)
    missing = [s for s in scales if s not in series]
    if missing:
        raise ValueError(f"site_year_scores: time scale(s) {missing} not given")
    series = {s: series[s] for s in scales}
    check_scales(series)
    first = series[scales[0]]
    moments = {scale: _site_year_moments(s) for scale, s in series.items()}
    values = np.stack([moments[scale].metrics(SITE_YEAR_MIN_POINTS[scale])[metric]
                       for metric, scale in combos])
    eligible = np.isfinite(values).all(axis=(0, 1))
    return SiteYearScores(first.methods, first.sites, first.years, combos, values, moments,
                          eligible)


# --------------------------------------------------------------------------------------------
# Likelihood
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LikelihoodInfo:
    """Settings and sample sizes of one likelihood computation.

    Attributes:
        n_groups: Groups drawn.
        sites_per_group: Sites per group actually used (``k`` of decision 3).
        years_per_site: Years per site actually used (``y`` of decision 3).
        alpha: Significance level of both tests.
        ttest: ``"welch"`` or ``"paired"``.
        seed: Seed of the random generator.
        n_sites: Sites in the input.
        n_sites_pool: Sites with at least ``years_per_site`` eligible years.
        n_site_years_eligible: Eligible site-years (decision 2), all sites.
        excluded_sites: Sites outside the pool (fewer eligible years than needed).
    """

    n_groups: int
    sites_per_group: int
    years_per_site: int
    alpha: float
    ttest: str
    seed: int
    n_sites: int
    n_sites_pool: int
    n_site_years_eligible: int
    excluded_sites: tuple[str, ...]


@dataclass(frozen=True)
class Likelihood:
    """Model likelihood P of each method.

    Attributes:
        P: One row per metric, scale and method: ``metric``, ``scale``, ``method``, ``P``.
        average: One row per method: ``method``, ``P`` (mean over the pairs), ``rank``
            (1 = largest P), sorted by rank.
        groups: One row per group, metric, scale and method: ``group``, ``metric``,
            ``scale``, ``method``, ``mean`` (mean site-year value), ``pooled`` (metric of the
            pooled site-years), ``beaten_by`` (the method with the best mean among those
            statistically better than this one; missing for a candidate), ``candidate`` (no
            method better), ``score``.
        members: One row per group and site-year in it: ``group``, ``site``, ``year``.
        info: :class:`LikelihoodInfo`.
    """

    P: pd.DataFrame
    average: pd.DataFrame
    groups: pd.DataFrame
    members: pd.DataFrame
    info: LikelihoodInfo

    def table(self) -> pd.DataFrame:
        """Wide table: one row per method (rank order), a column per ``metric scale`` pair
        and ``average``."""
        wide = self.P.assign(pair=self.P["metric"] + " " + self.P["scale"]).pivot(
            index="method", columns="pair", values="P")
        pairs = list(dict.fromkeys(self.P["metric"] + " " + self.P["scale"]))
        wide = wide[pairs]
        wide["average"] = self.average.set_index("method")["P"]
        return wide.loc[self.average["method"]].rename_axis(columns=None)


def _draw_groups(eligible: np.ndarray, n_groups: int, sites_per_group: int,
                 years_per_site: int, rng: np.random.Generator):
    """Site and year indices ``(groups, k * y)`` of every group (decision 3)."""
    n_eligible = eligible.sum(axis=1)
    y = int(min(years_per_site, n_eligible.max(initial=0)))
    if y == 0:
        raise ValueError("model_likelihood: no site-year has every metric defined for every "
                         "method; check that the methods cover the same sites and that sites "
                         "have good-quality data (see SiteYearScores.eligible)")
    pool = np.flatnonzero(n_eligible >= y)
    k = int(min(sites_per_group, pool.size))
    pick = np.argsort(rng.random((n_groups, pool.size)), axis=1)[:, :k]
    sites = pool[pick]  # (G, k)
    keys = rng.random((n_groups, k, eligible.shape[1]))
    keys[~eligible[sites]] = 2.0  # never drawn before an eligible year
    years = np.argsort(keys, axis=-1)[..., :y]  # (G, k, y)
    site_idx = np.repeat(sites[..., None], y, axis=-1).reshape(n_groups, k * y)
    return site_idx, years.reshape(n_groups, k * y), pool, k, y


def _beaten_by(x: np.ndarray, alpha: float, ttest: str) -> np.ndarray:
    """For each group and method, the best-ranked method statistically better than it.

    Args:
        x: ``(M, G, n)`` site-year values oriented so that larger is better.

    Returns:
        ``(G, M)`` index of the method with the highest mean among those statistically better
        (decision 4), or -1 where none is (a candidate).

    Rounds over the ranks (decision 7): in round t every method not yet beaten and ranked
    below t by its mean is tested against the method of rank t. The methods are visited in
    mean order, so the first one found is the best-ranked one that beats it, and a method
    beaten early is not tested again: with a clear winner, one round settles every group.
    """
    n_m, n_g, _ = x.shape
    mean = x.mean(axis=-1)  # (M, G)
    order = np.argsort(-mean, axis=0, kind="stable")  # order[t, g]: method of rank t
    rank = np.empty_like(order)
    rank[order, np.arange(n_g)] = np.arange(n_m)[:, None]
    beaten_by = np.full((n_g, n_m), -1)
    for t in range(n_m - 1):
        g_idx, b_idx = np.nonzero((rank.T > t) & (beaten_by < 0))
        a_idx = order[t][g_idx]
        keep = mean[a_idx, g_idx] > mean[b_idx, g_idx]  # "better" needs a better mean
        g_idx, a_idx, b_idx = g_idx[keep], a_idx[keep], b_idx[keep]
        if g_idx.size == 0:
            continue
        xa, xb = x[a_idx, g_idx], x[b_idx, g_idx]  # (K, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            if ttest == "welch":
                p_t = stats.ttest_ind(xa, xb, axis=-1, equal_var=False).pvalue
            else:
                p_t = stats.ttest_rel(xa, xb, axis=-1).pvalue
        sig = np.asarray(p_t < alpha)  # a NaN p-value is not significant
        if sig.any():
            sig[sig] = stats.ks_2samp(xa[sig], xb[sig], axis=-1).pvalue < alpha
        beaten_by[g_idx[sig], b_idx[sig]] = a_idx[sig]
    return beaten_by


def _scores(candidate: np.ndarray, pooled: np.ndarray) -> np.ndarray:
    """Scores ``(G, M)`` from the candidates ``(G, M)`` and the pooled values (larger is
    better) (decision 5)."""
    value = np.where(candidate & np.isfinite(pooled), pooled, -np.inf)
    best = value.max(axis=1, keepdims=True)
    winners = candidate & (value == best) & np.isfinite(best)
    none = ~winners.any(axis=1)
    winners[none] = candidate[none]  # no finite pooled value: the candidates share
    return winners / winners.sum(axis=1, keepdims=True)


def model_likelihood(series: Mapping[str, ScaleSeries] | GPPGrid | SiteYearScores, *,
                     n_groups: int = 200, sites_per_group: int = 100, years_per_site: int = 2,
                     alpha: float = 0.05, ttest: str = "welch", seed: int = 0,
                     combos: Sequence[tuple[str, str]] = PAPER_COMBOS) -> Likelihood:
    """Model likelihood P of every method (see the module docstring for every decision).

    Args:
        series: Time scale -> :class:`~lue_spie.timescales.ScaleSeries`, a
            :class:`~lue_spie.timescales.GPPGrid`, or precomputed :class:`SiteYearScores`.
        n_groups: Number of random site groups (paper: 200).
        sites_per_group: Sites per group (paper: 100), fewer when fewer sites qualify.
        years_per_site: Random years per site (paper: 2), fewer when sites have fewer.
        alpha: Significance level of the KS test and the t-test.
        ttest: ``"welch"`` (default) or ``"paired"``.
        seed: Seed of the random generator.
        combos: The (metric, scale) pairs (default: the paper's ten).

    Returns:
        A :class:`Likelihood`.

    Raises:
        ValueError: for bad settings, fewer than two methods, or no eligible site-year.
    """
    for name, value in (("n_groups", n_groups), ("sites_per_group", sites_per_group),
                        ("years_per_site", years_per_site)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"model_likelihood: {name} must be a positive integer, got "
                             f"{value!r}")
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"model_likelihood: alpha must lie in (0, 1), got {alpha!r}")
    if ttest not in TTESTS:
        raise ValueError(f"model_likelihood: ttest must be one of {list(TTESTS)}, got {ttest!r}")
    if isinstance(series, SiteYearScores):
        sy = series.subset(combos)
    else:
        sy = site_year_scores(series, combos)
    n_m = len(sy.methods)
    if n_m < 2:
        raise ValueError(f"model_likelihood: needs at least two methods, got {list(sy.methods)}")

    rng = np.random.default_rng(seed)
    site_idx, year_idx, pool, k, y = _draw_groups(sy.eligible, int(n_groups),
                                                  int(sites_per_group), int(years_per_site), rng)
    names = np.array([*sy.methods, None], dtype=object)  # index -1: not beaten
    rows = []
    for c, (metric, scale) in enumerate(sy.combos):
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        x = sign * sy.values[c][:, site_idx, year_idx]  # (M, G, n)
        pooled_nat = sy.moments[scale][:, site_idx, year_idx].pool(axis=-1).metrics(1)[metric]
        beaten_by = _beaten_by(x, float(alpha), ttest)
        candidate = beaten_by < 0
        score = _scores(candidate, sign * pooled_nat.T)
        rows.append(pd.DataFrame({
            "group": np.repeat(np.arange(n_groups), n_m),
            "metric": metric, "scale": scale,
            "method": np.tile(np.array(sy.methods, dtype=object), n_groups),
            "mean": (sign * x.mean(axis=-1)).T.reshape(-1),
            "pooled": pooled_nat.T.reshape(-1),
            "beaten_by": names[beaten_by].reshape(-1),
            "candidate": candidate.reshape(-1),
            "score": score.reshape(-1),
        }))
    groups = pd.concat(rows, ignore_index=True)
    groups = groups.astype({"method": "str", "beaten_by": "str"})
    P = groups.groupby(["metric", "scale", "method"], sort=False)["score"].mean().rename(
        "P").reset_index()
    average = P.groupby("method", sort=False)["P"].mean().reset_index()
    average["rank"] = average["P"].rank(ascending=False, method="min").astype(np.int64)
    average = average.sort_values(["rank"], kind="stable").reset_index(drop=True)
    members = pd.DataFrame({
        "group": np.repeat(np.arange(n_groups), site_idx.shape[1]),
        "site": np.array(sy.sites, dtype=object)[site_idx.reshape(-1)],
        "year": sy.years[year_idx.reshape(-1)],
    }).astype({"site": str})
    in_pool = set(pool.tolist())
    excluded = tuple(s for i, s in enumerate(sy.sites) if i not in in_pool)
    info = LikelihoodInfo(int(n_groups), k, y, float(alpha), ttest, int(seed), len(sy.sites),
                          int(pool.size), int(sy.eligible.sum()), excluded)
    return Likelihood(P, average, groups, members, info)

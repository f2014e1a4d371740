"""Benchmark: GPP assessment at four time scales and the model likelihood P.

    .venv/bin/python benchmarks/bench_assess.py [--sites 196] [--years 10] [--methods 12]
                                                [--groups 200] [--reference-groups 10]
                                                [--noise-step 0.25]

Observations: virtual FLUXNET ``make_tables(sites, years, 0)``. Predictions: ``methods``
synthetic methods, each GPP_obs (gaps filled with the site mean) plus a per-method bias and
Gaussian noise whose size grows with the method index and varies between sites, written as the
long table of the input contract (method, site, date, GPP_sim; categorical labels).

Timed stages of the project's code (one run each, wall time):

* ``gpp_grid``: long tables -> dense (methods, sites, days) arrays;
* ``all_scales``: QC-aware weekly, monthly and yearly means;
* ``assess``: site scores at four scales, their summary, spatial scores, per-type NSE;
* ``site_year_scores``: the ten (metric, scale) site-year values of P;
* ``model_likelihood``: P with ``--groups`` groups (paper settings otherwise).

References measured in the same run, on the same data:

* aggregation: a plain pandas ``groupby`` from the long tables (merge predictions with
  observations, then per method, site and ISO week / month / year the mean GPP_obs and GPP_sim
  over observed days and the QC sums) against ``gpp_grid`` + ``all_scales``;
* tests of P: the obvious loop (per group, (metric, scale) pair and method pair, one
  ``scipy.stats.ttest_ind`` and one ``ks_2samp`` call on the group's vectors) on
  ``--reference-groups`` groups, scaled to ``--groups``, against ``model_likelihood`` (which also
  does the group draws, candidates and pooled metrics, so the ratio understates the gain).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd
import scipy
from scipy import stats

from lue_spie.assess.gpp import assess_gpp
from lue_spie.assess.likelihood import PAPER_COMBOS, model_likelihood, site_year_scores
from lue_spie.data.schema import QC_COLUMNS
from lue_spie.data.virtual import make_tables
from lue_spie.metrics import HIGHER_IS_BETTER
from lue_spie.timescales import all_scales, gpp_grid


def make_predictions(site_day: pd.DataFrame, n_methods: int, noise_step: float = 0.25,
                     seed: int = 1) -> pd.DataFrame:
    """Long predictions table: obs + bias + site-dependent noise growing with the method."""
    rng = np.random.default_rng(seed)
    obs = site_day["GPP_obs"].to_numpy()
    site_mean = site_day.groupby("site")["GPP_obs"].transform("mean").to_numpy()
    filled = np.where(np.isnan(obs), site_mean, obs)
    site_codes, site_labels = pd.factorize(site_day["site"])
    n = len(site_day)
    parts = []
    for m in range(n_methods):
        site_sd = (0.4 + noise_step * m) * np.exp(0.4 * rng.standard_normal(len(site_labels)))
        sim = filled + 0.05 * m + site_sd[site_codes] * rng.standard_normal(n)
        parts.append(pd.DataFrame({"method": f"method-{m:02d}", "site": site_day["site"],
                                   "date": site_day["date"], "GPP_sim": sim}))
    pred = pd.concat(parts, ignore_index=True)
    pred["method"] = pred["method"].astype("category")
    pred["site"] = pred["site"].astype("category")
    return pred


def pandas_reference(site_day: pd.DataFrame, pred: pd.DataFrame) -> None:
    """Weekly, monthly, yearly means and QC sums with a plain pandas groupby."""
    obs = site_day[["site", "date", "GPP_obs", *QC_COLUMNS]].copy()
    obs["site"] = obs["site"].astype("category")
    obs.loc[obs["GPP_obs"].isna(), "GPP_QC"] = 0.0
    long = pred.merge(obs[["site", "date", "GPP_obs"]], on=["site", "date"], how="inner")
    long = long[long["GPP_obs"].notna()]
    keys = {
        "weekly": lambda d: d - pd.to_timedelta(d.dt.day_of_week, unit="D"),
        "monthly": lambda d: d.dt.to_period("M"),
        "yearly": lambda d: d.dt.year,
    }
    for key in keys.values():
        long.assign(period=key(long["date"])).groupby(
            ["method", "site", "period"], observed=True)[["GPP_obs", "GPP_sim"]].mean()
        obs.assign(period=key(obs["date"])).groupby(
            ["site", "period"], observed=True)[list(QC_COLUMNS)].sum()


def loop_reference(sy, members: pd.DataFrame, n_groups: int) -> None:
    """One scipy call per group, pair and method pair (the tests only)."""
    site_pos = {s: i for i, s in enumerate(sy.sites)}
    year_pos = {int(y): i for i, y in enumerate(sy.years)}
    n_m = len(sy.methods)
    for _g, rows in members[members["group"] < n_groups].groupby("group"):
        s_idx = rows["site"].map(site_pos).to_numpy()
        y_idx = rows["year"].map(year_pos).to_numpy()
        for c, (metric, _scale) in enumerate(sy.combos):
            sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
            x = sign * sy.values[c][:, s_idx, y_idx]
            for a in range(n_m):
                for b in range(a + 1, n_m):
                    stats.ttest_ind(x[a], x[b], equal_var=False)
                    stats.ks_2samp(x[a], x[b])


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=196)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--methods", type=int, default=12)
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--reference-groups", type=int, default=10,
                    help="groups run through the loop reference (scaled to --groups)")
    ap.add_argument("--noise-step", type=float, default=0.25,
                    help="growth of the noise s.d. per method [gC m-2 d-1]; small values "
                         "make close methods and more statistical ties (slower P)")
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()

    print(f"machine: {platform.machine()} {platform.processor() or ''}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; numpy {np.__version__}, "
          f"pandas {pd.__version__}, scipy {scipy.__version__}")
    v, t_data = timed(make_tables, args.sites, args.years, 0)
    pred, t_pred = timed(make_predictions, v.site_day, args.methods, args.noise_step)
    print(f"data: {args.sites} sites x {args.years} years ({len(v.site_day):,} site-days), "
          f"{args.methods} methods ({len(pred):,} prediction rows); made in "
          f"{t_data:.1f} s + {t_pred:.1f} s (not part of the assessment)")

    grid, t_grid = timed(gpp_grid, v.site_day, pred)
    scales, t_scales = timed(all_scales, grid)
    result, t_assess = timed(assess_gpp, grid, v.sites)
    t_assess_only = t_assess - t_scales  # assess_gpp aggregates again; count that once
    sy, t_sy = timed(site_year_scores, scales)
    lik, t_p = timed(model_likelihood, sy, n_groups=args.groups)
    total = t_grid + t_scales + t_assess_only + t_sy + t_p
    print(f"{'gpp_grid (tables -> arrays)':38s} {t_grid:7.2f} s")
    print(f"{'all_scales (QC-aware means)':38s} {t_scales:7.2f} s")
    print(f"{'assess (scores, summary, spatial, type)':38s} {t_assess_only:7.2f} s")
    print(f"{'site_year_scores (10 pairs)':38s} {t_sy:7.2f} s")
    print(f"{f'model_likelihood ({args.groups} groups)':38s} {t_p:7.2f} s")
    print(f"{'total':38s} {total:7.2f} s")
    info = lik.info
    print(f"P: {info.sites_per_group} sites x {info.years_per_site} years per group, pool "
          f"{info.n_sites_pool} sites, {info.n_site_years_eligible} eligible site-years; "
          f"best {lik.average['method'].iloc[0]} P = {lik.average['P'].iloc[0]:.3f}")
    daily = result.summary[result.summary["scale"] == "daily"]
    print("share of sites with positive daily NSE: "
          + ", ".join(f"{m[-2:]}: {s:.2f}" for m, s in zip(daily["method"],
                                                         daily["share_positive_NSE"],
                                                         strict=True)))

    if args.skip_reference:
        return
    _, t_pandas = timed(pandas_reference, v.site_day, pred)
    ours = t_grid + t_scales
    print(f"aggregation: pandas groupby {t_pandas:.2f} s vs gpp_grid + all_scales {ours:.2f} s"
          f" -> {t_pandas / ours:.1f}x")
    n_ref = min(args.reference_groups, args.groups)
    _, t_loop = timed(loop_reference, sy, lik.members, n_ref)
    t_loop_all = t_loop * args.groups / n_ref
    print(f"P tests: loop reference {t_loop:.2f} s for {n_ref} groups -> {t_loop_all:.1f} s "
          f"for {args.groups} vs model_likelihood {t_p:.2f} s -> {t_loop_all / t_p:.1f}x "
          f"({len(PAPER_COMBOS)} pairs x {args.methods * (args.methods - 1) // 2} "
          "method pairs per group)")


if __name__ == "__main__":
    main()

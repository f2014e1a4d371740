"""Site calibration of the LUE model with CMA-ES, batched over sites and population.

One CMA-ES (pycma) per *unit* searches the ``[0, 1]``-scaled parameter space. A unit is a
single site for site calibration (:func:`calibrate_sites`, SPEC section 2) or a group of sites
sharing one vector for the pooled optimisation methods OPT-All and OPT-PFT
(:func:`calibrate_pooled`, SPEC section 3; the pooled cost is the mean of the sites' costs).
The cost is :func:`lue_spie.cost.calibration_cost`.

Speed by design: in each generation every active unit's ES is asked for its population, all
candidates are stacked into one ``(rows, pop, 13)`` tensor of physical parameters (a row is a
site; a unit's candidates are repeated over its sites) and the LUE model runs once on forcing
``(rows, 1, days)`` (in chunks of rows to bound memory, and once per distinct population size
when IPOP restarts have enlarged some populations). Each ES is then told its costs. Units stop
independently and leave the batch, so a converged site costs nothing.

Lag mask: parameters fixed by the mask (``alpha_T`` outside Koeppen D/E, ``alpha_W`` outside
B) are not searched; the search dimension is 11 or 12. For a pooled unit a lag is searched when
it is free at any of the unit's sites and applied only where it is free.

Determinism: each unit's ES draws from its own ``numpy.random.RandomState`` seeded from
``(seed, unit id)``, and numpy's global generator is set to a unit-private state around every
pycma call, so a site's result does not depend on which other sites are in the batch. The
whole optimiser state (ES objects, generators, best points, counters) is pickled atomically
every ``checkpoint_every`` generations; a run started again with the same settings and data
resumes from it and ends with exactly the result of an uninterrupted run. A checkpoint written
with other settings or data is refused with a clear error.

Stopping (defaults chosen with ``benchmarks/bench_calibration.py``): pycma's own criteria with
``tolfun = 1e-6`` (range of recent costs, in cost units = units of 1 - NSE), ``tolx = 1e-4``
(step size in the scaled space) and ``tolfunhist = 1e-7``, and a cap of ``max_gen = 400``
generations per unit (all restarts together), population pycma's default (11 for 11 or 12
free parameters), start at the centre of the scaled box with ``sigma0 = 0.25``. On virtual
FLUXNET (10 years) most sites meet ``tolfun`` between 250 and 400 generations; a cap of 200
stops every site early at a median daily NSE about 0.005 lower and with worse recovery of
Topt, kT and mu, while 400 keeps all 196 sites x 10 years within the 10-minute goal on two
cores. With ``restarts > 0`` an ES that stops before the cap is restarted from a random point
with a population ``incpopsize`` times larger (IPOP-CMA-ES, Auger & Hansen 2005); the best
point over all runs is kept. Restarts are off by default (they spend generations inside the
same cap); on the real CH-Lae site four restarts found the same optimum as a single run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import pickle
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cma
import numpy as np
import pandas as pd
import torch

from lue_spie import store
from lue_spie.cost import W_IDEAL, W_NONIDEAL, calibration_cost
from lue_spie.metrics import MIN_POINTS
from lue_spie.model import FORCING_KEYS, resolve_device, simulate
from lue_spie.params import N_PARAMS, PARAMETERS, from_scaled, lag_mask

__all__ = [
    "CalibrationSettings",
    "CalibrationResult",
    "CalibrationInterrupted",
    "CheckpointMismatch",
    "calibrate_sites",
    "calibrate_pooled",
    "evaluate_params",
    "simulate_calibrated",
    "write_results",
    "register_cli",
    "EDGE_TOLERANCE",
]

#: A calibrated value within this fraction of the range from a bound is "edge-hitting".
EDGE_TOLERANCE = 0.01
#: Cost given to CMA-ES for a candidate whose cost is not finite (never happens with valid
#: forcing; a guard so one bad candidate cannot stall an ES).
_BAD_COST = 1e6
_CHECKPOINT_FORMAT = 1


class CalibrationInterrupted(RuntimeError):
    """Raised by the ``stop_after_gen`` test hook after the checkpoint of that generation."""


class CheckpointMismatch(ValueError):
    """A checkpoint exists for other settings or data than the run asked for."""


@dataclasses.dataclass(frozen=True)
class CalibrationSettings:
    """Settings of a CMA-ES calibration (recorded in the provenance and checkpoint hash).

    Attributes:
        seed: Base seed; each unit's generator is seeded from ``(seed, unit id)``.
        popsize: Population size of the first run (None: pycma's default ``4 + 3 ln n``,
            11 for n = 11 or 12 free parameters).
        sigma0: Initial step size in the ``[0, 1]``-scaled space.
        max_gen: Most generations per unit, all restarts together.
        tolfun: pycma ``tolfun`` (cost units).
        tolx: pycma ``tolx`` (scaled parameter units).
        tolfunhist: pycma ``tolfunhist`` (cost units).
        restarts: Number of IPOP restarts allowed per unit.
        incpopsize: Population growth factor per restart.
        w_ideal: Weight of the ideal-conditions constraint (see :mod:`lue_spie.cost`).
        w_nonideal: Weight of the non-ideal constraint.
        dtype: ``"float64"`` or ``"float32"`` for the model evaluation.
        device: ``"cpu"`` or ``"cuda"`` (resolved, never ``"auto"``).
        chunk_rows: Most sites evaluated in one model call (bounds memory: one call holds
            about ``chunk_rows * pop * days * 25`` numbers). Small chunks keep the arrays in
            the CPU cache: on the reference machine 8 sites per call was 1.5x faster per
            generation than 64 (on a GPU, larger chunks pay off).
    """

    seed: int = 0
    popsize: int | None = None
    sigma0: float = 0.25
    max_gen: int = 400
    tolfun: float = 1e-6
    tolx: float = 1e-4
    tolfunhist: float = 1e-7
    restarts: int = 0
    incpopsize: int = 2
    w_ideal: float = W_IDEAL
    w_nonideal: float = W_NONIDEAL
    dtype: str = "float64"
    device: str = "cpu"
    chunk_rows: int = 8  # measured: 96 sites x 10 years, 15 generations: 8.8 s at 64, 5.8 s at 8

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class CalibrationResult:
    """Result of a calibration.

    Attributes:
        table: One row per site (site calibration) or per site of each group (pooled): site,
            group (pooled only), status (``"ok"`` or ``"skipped: reason"``), the 13
            parameters in physical units, cost, nse, C_ideal, C_nonideal, n_good_days,
            generations, evaluations, restarts, stop_reason and ``edge_<param>`` flags.
        settings: The settings used.
        data_checksum: sha256 of the forcing, observations and good-day mask used.
        elapsed_s: Wall time of the optimisation in this process (excludes resumed parts).
        generations: Generations run in total (the longest unit).
        n_evaluations: Candidate evaluations in total (sum over units).
        units: For pooled runs, one row per group with its pooled cost and vector.
    """

    table: pd.DataFrame
    settings: CalibrationSettings
    data_checksum: str
    elapsed_s: float
    generations: int
    n_evaluations: int
    units: pd.DataFrame | None = None

    def params(self) -> np.ndarray:
        """Calibrated physical parameters, shape (rows, 13) (NaN for skipped sites)."""
        return self.table[list(PARAMETERS)].to_numpy(dtype=np.float64)


# ------------------------------------------------------------------------------ input handling
@dataclasses.dataclass
class _Data:
    sites: list[str]
    koeppen: list[str]
    forcing: dict[str, torch.Tensor]  # (n_sites, days)
    GPP_obs: torch.Tensor
    good: torch.Tensor
    dates: pd.DatetimeIndex | None
    site_day: pd.DataFrame | None


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float64, torch.float32):
            raise ValueError(f"dtype must be float64 or float32, got {dtype}")
        return dtype
    table = {"float64": torch.float64, "float32": torch.float32}
    if dtype not in table:
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return table[dtype]


def _prepare(
    data: Any,
    *,
    koeppen: Sequence[str] | Mapping[str, str] | None,
    sites: Sequence[str] | None,
    years: Sequence[int] | None,
    dtype: torch.dtype,
    device: str,
) -> _Data:
    """Accept a Dataset (``site_day`` + ``sites`` tables) or a ForcingBatch-like object."""
    site_day = None
    if hasattr(data, "site_day") and hasattr(data, "sites") and isinstance(
        data.sites, pd.DataFrame
    ):
        from lue_spie.data import to_forcing

        table = data.sites
        if sites is not None:
            unknown = sorted(set(sites) - set(table["site"]))
            if unknown:
                raise KeyError(f"sites {unknown} are not in the dataset at "
                               f"{getattr(data, 'path', '(tables in memory)')}")
        batch = to_forcing(data.site_day, sites=list(sites) if sites is not None else None,
                           years=years, dtype=torch.float64, device="cpu")
        kmap = dict(zip(table["site"], table["koeppen"], strict=True))
        codes = [kmap[s] for s in batch.sites]
        site_day = data.site_day
    else:
        batch = data
        if years is not None:
            raise ValueError("years= selects from a Dataset; pass a ForcingBatch already cut "
                             "to the years you want")
        codes_src = koeppen if koeppen is not None else getattr(batch, "koeppen", None)
        if codes_src is None:
            raise ValueError("a ForcingBatch has no Koeppen codes: pass koeppen= (list or "
                             "mapping site -> code) so the lag mask can be applied")
        if isinstance(codes_src, Mapping):
            missing = [s for s in batch.sites if s not in codes_src]
            if missing:
                raise KeyError(f"koeppen: no code for site(s) {missing}")
            codes = [codes_src[s] for s in batch.sites]
        else:
            codes = list(codes_src)
            if len(codes) != len(batch.sites):
                raise ValueError(f"koeppen: {len(codes)} codes for {len(batch.sites)} sites")
    names = list(batch.sites)
    idx = list(range(len(names)))
    if sites is not None and site_day is None:
        pos = {s: i for i, s in enumerate(names)}
        unknown = [s for s in sites if s not in pos]
        if unknown:
            raise KeyError(f"sites {unknown} are not in the forcing batch")
        idx = [pos[s] for s in sites]
    sel = torch.as_tensor(idx, dtype=torch.long)
    shape = (len(names), int(torch.as_tensor(batch.GPP_obs).shape[-1]))
    for what, x in [("GPP_obs", batch.GPP_obs), ("good", batch.good),
                    *((f"forcing[{k!r}]", v) for k, v in batch.forcing.items())]:
        if tuple(torch.as_tensor(x).shape) != shape:
            raise ValueError(f"{what}: expected shape (n_sites, n_days) = {shape}, got "
                             f"{tuple(torch.as_tensor(x).shape)}")
    missing = [k for k in FORCING_KEYS if k not in batch.forcing]
    if missing:
        raise KeyError(f"forcing: missing key(s) {missing}; expected {FORCING_KEYS}")
    forcing = {k: torch.as_tensor(batch.forcing[k]).index_select(0, sel).to(device, dtype)
               for k in FORCING_KEYS}
    obs = torch.as_tensor(batch.GPP_obs).index_select(0, sel).to(device, dtype)
    good = torch.as_tensor(batch.good).index_select(0, sel).to(device, torch.bool)
    return _Data(sites=[names[i] for i in idx], koeppen=[codes[i] for i in idx],
                 forcing=forcing, GPP_obs=obs, good=good,
                 dates=getattr(batch, "dates", None), site_day=site_day)


def _data_checksum(d: _Data) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([d.sites, d.koeppen]).encode())
    for k in FORCING_KEYS:
        h.update(d.forcing[k].detach().cpu().to(torch.float64).numpy().tobytes())
    h.update(d.GPP_obs.detach().cpu().to(torch.float64).numpy().tobytes())
    h.update(d.good.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _skip_reasons(d: _Data, min_good: int) -> list[str | None]:
    """Why each site cannot be calibrated (None when it can)."""
    good = d.good & torch.isfinite(d.GPP_obs)
    n_good = good.sum(-1).cpu().numpy()
    obs = torch.where(good, d.GPP_obs, torch.zeros_like(d.GPP_obs)).double()
    n = good.sum(-1).clamp_min(1)
    mean = obs.sum(-1) / n
    var = (torch.where(good, obs - mean[:, None], torch.zeros_like(obs)) ** 2).sum(-1)
    bad_forcing = torch.zeros(len(d.sites), dtype=torch.bool, device=d.good.device)
    for k in FORCING_KEYS:
        bad_forcing |= ~torch.isfinite(d.forcing[k]).all(-1)
    reasons: list[str | None] = []
    for i in range(len(d.sites)):
        if n_good[i] < min_good:
            reasons.append(f"skipped: {int(n_good[i])} good-quality days with GPP_obs "
                           f"(need at least {min_good})")
        elif float(var[i]) == 0.0:
            reasons.append("skipped: GPP_obs is constant on the good-quality days (NSE "
                           "undefined)")
        elif bool(bad_forcing[i]):
            reasons.append("skipped: forcing has non-finite values after gap filling")
        else:
            reasons.append(None)
    return reasons


# ------------------------------------------------------------------------------- CMA-ES engine
def _unit_seed(seed: int, unit_id: str) -> int:
    digest = hashlib.sha256(f"{int(seed)}:{unit_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclasses.dataclass
class _Unit:
    """Optimiser state of one unit (pickled in checkpoints)."""

    id: str
    rows: list[int]  # site indices (into _Data) evaluated with this unit's vector
    free: np.ndarray  # bool (13,): searched parameters
    rng: np.random.RandomState  # restart points and ES seeds
    np_state: tuple  # numpy global generator state private to this unit
    es: Any = None
    popsize: int = 0
    generations: int = 0
    evaluations: int = 0
    restarts: int = 0
    best_f: float = np.inf
    best_x: np.ndarray | None = None  # full (13,) scaled vector, fixed entries 0
    stop_reason: str = ""
    done: bool = False


@contextlib.contextmanager
def _private_numpy_state(unit: _Unit) -> Iterator[None]:
    # pycma may draw from numpy's legacy global generator; give each unit its own state there
    # so that units cannot disturb each other's streams.
    outer = np.random.get_state()  # noqa: NPY002
    np.random.set_state(unit.np_state)  # noqa: NPY002
    try:
        yield
    finally:
        unit.np_state = np.random.get_state()  # noqa: NPY002
        np.random.set_state(outer)  # noqa: NPY002


def _new_es(unit: _Unit, s: CalibrationSettings, x0: np.ndarray, popsize: int | None) -> None:
    dim = int(unit.free.sum())
    es_rng = np.random.RandomState(unit.rng.randint(0, 2**31 - 1))
    opts = {
        "bounds": [0.0, 1.0],
        "randn": es_rng.randn,  # the ES's own generator (pickled with it)
        "seed": np.nan,  # pycma must not reseed numpy's global generator
        "verbose": -9,
        "maxiter": max(1, s.max_gen - unit.generations),
        "tolfun": s.tolfun,
        "tolx": s.tolx,
        "tolfunhist": s.tolfunhist,
    }
    if popsize is not None:
        opts["popsize"] = int(popsize)
    with _private_numpy_state(unit):
        unit.es = cma.CMAEvolutionStrategy(np.asarray(x0, dtype=np.float64)[:dim], s.sigma0,
                                           opts)
    unit.popsize = int(unit.es.popsize)


class _Engine:
    """The batched ask / evaluate / tell loop shared by site and pooled calibration."""

    def __init__(self, data: _Data, unit_defs: list[tuple[str, list[int]]],
                 settings: CalibrationSettings, site_masks: np.ndarray):
        self.d = data
        self.s = settings
        self.site_masks = site_masks  # (n_sites, 13) bool, True = free
        self.units: list[_Unit] = []
        for uid, rows in unit_defs:
            free = site_masks[rows].any(axis=0)
            seed = _unit_seed(settings.seed, uid)
            rng = np.random.RandomState(seed)
            np_state = np.random.RandomState(seed ^ 0x5EED).get_state()
            self.units.append(_Unit(id=uid, rows=list(rows), free=free, rng=rng,
                                    np_state=np_state))
        self.gen = 0
        self.n_evaluations = 0

    # -- progress (the public view for ``callback``) -----------------------------------------
    def progress(self) -> list[dict[str, Any]]:
        """One record per unit (a site, or a group of sites when pooled), for callbacks.

        Keys: ``id`` (site id or group name), ``generations`` (of this unit, restarts
        included), ``best_cost`` (best cost so far), ``sigma`` (current CMA-ES step size, NaN
        before the first generation), ``popsize`` and ``done``. This is the stable interface
        that ``calibrate_sites(..., callback=...)`` callbacks should read.
        """
        return [{"id": str(u.id), "generations": int(u.generations),
                 "best_cost": float(u.best_f),
                 "sigma": float(u.es.sigma) if u.es is not None else float("nan"),
                 "popsize": int(u.popsize), "done": bool(u.done)} for u in self.units]

    # -- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"gen": self.gen, "n_evaluations": self.n_evaluations, "units": self.units}

    def load(self, state: Mapping[str, Any]) -> None:
        self.gen = state["gen"]
        self.n_evaluations = state["n_evaluations"]
        self.units = state["units"]

    # -- evaluation --------------------------------------------------------------------------
    def to_physical(self, scaled_full: np.ndarray, rows: Sequence[int]) -> np.ndarray:
        """(pop, 13) scaled unit vectors -> (len(rows), pop, 13) physical, lag mask applied."""
        masks = self.site_masks[list(rows)]  # (r, 13)
        x = np.where(masks[:, None, :], scaled_full[None, :, :], 0.0)
        return from_scaled(x)

    @torch.no_grad()
    def evaluate_rows(self, rows: Sequence[int], phys: np.ndarray) -> dict[str, np.ndarray]:
        """Cost terms for physical params (R, P, 13) at site rows (R,): arrays (R, P)."""
        dtype, device = _dtype(self.s.dtype), self.s.device
        out: dict[str, list[np.ndarray]] = {k: [] for k in ("cost", "nse", "C_ideal",
                                                             "C_nonideal", "n_good")}
        rows = np.asarray(rows, dtype=np.int64)
        for start in range(0, len(rows), self.s.chunk_rows):
            r = torch.as_tensor(rows[start:start + self.s.chunk_rows], device=device)
            params = torch.as_tensor(phys[start:start + self.s.chunk_rows], dtype=dtype,
                                     device=device)
            forcing = {k: v.index_select(0, r).to(dtype).unsqueeze(1)
                       for k, v in self.d.forcing.items()}
            obs = self.d.GPP_obs.index_select(0, r).to(dtype).unsqueeze(1)
            good = self.d.good.index_select(0, r).unsqueeze(1)
            sim = simulate(forcing, params, validate=False)
            c = calibration_cost(sim, obs, good, params, forcing, w_ideal=self.s.w_ideal,
                                 w_nonideal=self.s.w_nonideal)
            for k in out:
                out[k].append(c[k].detach().to("cpu", torch.float64).numpy())
        return {k: np.concatenate(v, axis=0) for k, v in out.items()}

    def evaluate_units(self, units: list[_Unit], cands: list[np.ndarray]) -> list[np.ndarray]:
        """Unit costs for candidate lists (pop_u, 13 scaled): one batched call per pop size."""
        costs: list[np.ndarray | None] = [None] * len(units)
        by_pop: dict[int, list[int]] = {}
        for j, x in enumerate(cands):
            by_pop.setdefault(len(x), []).append(j)
        for _, js in sorted(by_pop.items()):
            rows: list[int] = []
            phys: list[np.ndarray] = []
            for j in js:
                rows.extend(units[j].rows)
                phys.append(self.to_physical(cands[j], units[j].rows))
            c = self.evaluate_rows(rows, np.concatenate(phys, axis=0))["cost"]
            pos = 0
            for j in js:
                n = len(units[j].rows)
                # Pooled cost: mean of the unit's site costs (a single site: its cost).
                costs[j] = c[pos:pos + n].mean(axis=0)
                pos += n
        return costs  # type: ignore[return-value]

    # -- the loop ----------------------------------------------------------------------------
    def start(self) -> None:
        for u in self.units:
            if u.es is None and not u.done:
                _new_es(u, self.s, np.full(int(u.free.sum()), 0.5), self.s.popsize)

    def active(self) -> list[_Unit]:
        return [u for u in self.units if not u.done]

    def step(self) -> None:
        """One generation of every active unit."""
        units = self.active()
        cands: list[np.ndarray] = []
        for u in units:
            with _private_numpy_state(u):
                X = np.asarray(u.es.ask(), dtype=np.float64)
            full = np.zeros((len(X), N_PARAMS))
            full[:, u.free] = X
            cands.append(full)
        costs = self.evaluate_units(units, cands)
        for u, X, f in zip(units, cands, costs, strict=True):
            f = np.where(np.isfinite(f), f, _BAD_COST)
            with _private_numpy_state(u):
                u.es.tell(list(X[:, u.free]), list(f))
            u.generations += 1
            u.evaluations += len(f)
            self.n_evaluations += len(f)
            k = int(np.argmin(f))
            if f[k] < u.best_f:
                u.best_f, u.best_x = float(f[k]), X[k].copy()
            self._check_stop(u)
        self.gen += 1

    def _check_stop(self, u: _Unit) -> None:
        if u.generations >= self.s.max_gen:
            u.done, u.stop_reason = True, f"max_gen={self.s.max_gen}"
            return
        stop = u.es.stop()
        if not stop:
            return
        reason = ",".join(f"{k}={v}" for k, v in stop.items())
        if u.restarts < self.s.restarts:
            u.restarts += 1
            x0 = u.rng.uniform(0.1, 0.9, size=int(u.free.sum()))
            _new_es(u, self.s, x0, u.popsize * self.s.incpopsize)
            u.stop_reason = reason
            return
        u.done, u.stop_reason = True, reason


# ----------------------------------------------------------------------------------- driver
def _settings_hash(settings: CalibrationSettings, checksum: str,
                   unit_defs: list[tuple[str, list[int]]]) -> str:
    blob = json.dumps({"settings": settings.to_dict(), "data": checksum, "units": unit_defs,
                       "format": _CHECKPOINT_FORMAT}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _run(
    d: _Data,
    unit_defs: list[tuple[str, list[int]]],
    settings: CalibrationSettings,
    *,
    checkpoint_dir: str | Path | None,
    checkpoint_every: int,
    progress: bool,
    stop_after_gen: int | None,
    callback: Callable[[int, _Engine], None] | None,
    desc: str,
) -> tuple[_Engine, str, float]:
    checksum = _data_checksum(d)
    masks = lag_mask(d.koeppen) if d.koeppen else np.ones((0, N_PARAMS), bool)
    engine = _Engine(d, unit_defs, settings, masks)
    key = _settings_hash(settings, checksum, unit_defs)
    ckpt = Path(checkpoint_dir) / "checkpoint.pkl" if checkpoint_dir is not None else None
    if ckpt is not None and ckpt.exists():
        state = pickle.loads(ckpt.read_bytes())
        if state.get("key") != key:
            raise CheckpointMismatch(
                f"{ckpt}: this checkpoint belongs to a run with other settings or data "
                f"(settings {state.get('settings')}); delete it or choose another "
                "checkpoint folder to start afresh"
            )
        engine.load(state["engine"])
    engine.start()

    def save() -> None:
        if ckpt is not None:
            blob = pickle.dumps({"key": key, "settings": settings.to_dict(),
                                 "engine": engine.state()}, protocol=pickle.HIGHEST_PROTOCOL)
            store.atomic_write_bytes(ckpt, blob)

    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    with tqdm(total=settings.max_gen, initial=engine.gen, disable=not progress, desc=desc,
              unit="gen", leave=True) as bar:
        while engine.active() and engine.gen < settings.max_gen:
            engine.step()
            bar.update(1)
            act = engine.active()
            best = [u.best_f for u in engine.units if np.isfinite(u.best_f)]
            bar.set_postfix(active=len(act), median_cost=f"{np.median(best):.4g}"
                            if best else "-", refresh=False)
            if checkpoint_every and engine.gen % checkpoint_every == 0:
                save()
            if callback is not None:
                callback(engine.gen, engine)
            if stop_after_gen is not None and engine.gen >= stop_after_gen:
                save()
                raise CalibrationInterrupted(f"stopped after generation {engine.gen} "
                                             "(stop_after_gen test hook)")
    elapsed = time.perf_counter() - t0
    for u in engine.units:  # only reachable when max_gen is hit globally
        if not u.done:
            u.done, u.stop_reason = True, f"max_gen={settings.max_gen}"
    save()
    return engine, checksum, elapsed


def _edge_flags(scaled: np.ndarray, free: np.ndarray) -> np.ndarray:
    near = (scaled <= EDGE_TOLERANCE) | (scaled >= 1.0 - EDGE_TOLERANCE)
    return near & free


def _settings_from(seed, popsize, max_gen, tolfun, tolx, tolfunhist, restarts, incpopsize,
                   sigma0, w_ideal, w_nonideal, dtype, device, chunk_rows) -> CalibrationSettings:
    dt = _dtype(dtype)
    return CalibrationSettings(
        seed=int(seed), popsize=None if popsize is None else int(popsize), sigma0=float(sigma0),
        max_gen=int(max_gen), tolfun=float(tolfun), tolx=float(tolx),
        tolfunhist=float(tolfunhist), restarts=int(restarts), incpopsize=int(incpopsize),
        w_ideal=float(w_ideal), w_nonideal=float(w_nonideal),
        dtype="float64" if dt == torch.float64 else "float32",
        device=resolve_device(device), chunk_rows=int(chunk_rows),
    )


def calibrate_sites(
    data: Any,
    *,
    sites: Sequence[str] | None = None,
    years: Sequence[int] | None = None,
    koeppen: Sequence[str] | Mapping[str, str] | None = None,
    seed: int = 0,
    device: str = "auto",
    dtype: torch.dtype | str = torch.float64,
    popsize: int | None = None,
    max_gen: int = CalibrationSettings.max_gen,
    tolfun: float = CalibrationSettings.tolfun,
    tolx: float = CalibrationSettings.tolx,
    tolfunhist: float = CalibrationSettings.tolfunhist,
    restarts: int = CalibrationSettings.restarts,
    incpopsize: int = CalibrationSettings.incpopsize,
    sigma0: float = CalibrationSettings.sigma0,
    w_ideal: float = W_IDEAL,
    w_nonideal: float = W_NONIDEAL,
    chunk_rows: int = CalibrationSettings.chunk_rows,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 10,
    progress: bool = True,
    stop_after_gen: int | None = None,
    callback: Callable[[int, Any], None] | None = None,
) -> CalibrationResult:
    """Calibrate the LUE model at each site with CMA-ES (SPEC section 2).

    Args:
        data: A :class:`lue_spie.data.Dataset` (``site_day`` and ``sites`` tables) or a
            ForcingBatch-like object (``sites``, ``forcing`` dict of ``(sites, days)`` tensors,
            ``GPP_obs``, ``good``, optionally ``dates`` and ``koeppen``).
        sites: Site ids to calibrate (default: all, in the data's order).
        years: Years to use (Dataset input only; default all).
        koeppen: Koeppen codes (list in site order or mapping) for a ForcingBatch without them.
        seed: Base seed (each site's ES is seeded from ``(seed, site id)``).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        dtype: Model evaluation precision (float64 default; float32 is about 3x faster on
            CPU).
        popsize, max_gen, tolfun, tolx, tolfunhist, restarts, incpopsize, sigma0: see
            :class:`CalibrationSettings`.
        w_ideal, w_nonideal: Constraint weights (see :mod:`lue_spie.cost`).
        chunk_rows: Most sites per model call (memory bound).
        checkpoint_dir: Folder for ``checkpoint.pkl``; resumed from when present and
            matching, refused (:class:`CheckpointMismatch`) when not.
        checkpoint_every: Checkpoint every this many generations (0: only at the end).
        progress: Show a tqdm progress bar.
        stop_after_gen: Test hook: checkpoint and raise :class:`CalibrationInterrupted` after
            this generation.
        callback: Called as ``callback(generation, engine)`` after each generation; read
            ``engine.progress()`` (one record per site: generations, best cost, sigma ...).

    Returns:
        A :class:`CalibrationResult`; skipped sites (fewer than 4 good days, constant
        observations) have status ``"skipped: reason"`` and NaN parameters.
    """
    s = _settings_from(seed, popsize, max_gen, tolfun, tolx, tolfunhist, restarts,
                       incpopsize, sigma0, w_ideal, w_nonideal, dtype, device, chunk_rows)
    d = _prepare(data, koeppen=koeppen, sites=sites, years=years, dtype=_dtype(s.dtype),
                 device=s.device)
    reasons = _skip_reasons(d, MIN_POINTS)
    unit_defs = [(site, [i]) for i, site in enumerate(d.sites) if reasons[i] is None]
    engine, checksum, elapsed = _run(
        d, unit_defs, s, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
        progress=progress, stop_after_gen=stop_after_gen, callback=callback,
        desc="calibrate sites")
    table = _site_table(engine, d, reasons)
    return CalibrationResult(table=table, settings=s, data_checksum=checksum,
                             elapsed_s=elapsed, generations=engine.gen,
                             n_evaluations=engine.n_evaluations)


def _final_rows(engine: _Engine) -> tuple[list[int], np.ndarray, list[_Unit]]:
    rows: list[int] = []
    phys: list[np.ndarray] = []
    owners: list[_Unit] = []
    for u in engine.units:
        rows.extend(u.rows)
        phys.append(engine.to_physical(u.best_x[None, :], u.rows))
        owners.extend([u] * len(u.rows))
    if not rows:
        return [], np.zeros((0, 1, N_PARAMS)), []
    return rows, np.concatenate(phys, axis=0), owners


def _site_table(engine: _Engine, d: _Data, reasons: list[str | None]) -> pd.DataFrame:
    rows, phys, owners = _final_rows(engine)
    final = engine.evaluate_rows(rows, phys) if rows else {}
    by_site = {r: j for j, r in enumerate(rows)}
    n_good = (d.good & torch.isfinite(d.GPP_obs)).sum(-1).cpu().numpy()
    records = []
    for i, site in enumerate(d.sites):
        rec: dict[str, Any] = {"site": site, "koeppen": d.koeppen[i]}
        if reasons[i] is not None:
            rec.update({"status": reasons[i], **{p: np.nan for p in PARAMETERS},
                        "cost": np.nan, "nse": np.nan, "C_ideal": np.nan,
                        "C_nonideal": np.nan, "n_good_days": int(n_good[i]), "generations": 0,
                        "evaluations": 0, "restarts": 0, "stop_reason": "",
                        **{f"edge_{p}": False for p in PARAMETERS}})
        else:
            j = by_site[i]
            u = owners[j]
            edge = _edge_flags(u.best_x, engine.site_masks[i])
            rec.update({"status": "ok", **dict(zip(PARAMETERS, phys[j, 0].tolist(),
                                                   strict=True)),
                        "cost": float(final["cost"][j, 0]), "nse": float(final["nse"][j, 0]),
                        "C_ideal": float(final["C_ideal"][j, 0]),
                        "C_nonideal": float(final["C_nonideal"][j, 0]),
                        "n_good_days": int(n_good[i]), "generations": u.generations,
                        "evaluations": u.evaluations, "restarts": u.restarts,
                        "stop_reason": u.stop_reason,
                        **{f"edge_{p}": bool(e) for p, e in zip(PARAMETERS, edge,
                                                                 strict=True)}})
        records.append(rec)
    return pd.DataFrame.from_records(records)


def calibrate_pooled(
    data: Any,
    site_groups: Mapping[str, Sequence[str]],
    *,
    koeppen: Sequence[str] | Mapping[str, str] | None = None,
    years: Sequence[int] | None = None,
    seed: int = 0,
    device: str = "auto",
    dtype: torch.dtype | str = torch.float64,
    popsize: int | None = None,
    max_gen: int = CalibrationSettings.max_gen,
    tolfun: float = CalibrationSettings.tolfun,
    tolx: float = CalibrationSettings.tolx,
    tolfunhist: float = CalibrationSettings.tolfunhist,
    restarts: int = CalibrationSettings.restarts,
    incpopsize: int = CalibrationSettings.incpopsize,
    sigma0: float = CalibrationSettings.sigma0,
    w_ideal: float = W_IDEAL,
    w_nonideal: float = W_NONIDEAL,
    chunk_rows: int = CalibrationSettings.chunk_rows,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 10,
    progress: bool = True,
    stop_after_gen: int | None = None,
    callback: Callable[[int, Any], None] | None = None,
) -> CalibrationResult:
    """One parameter vector per group of sites (OPT-All, OPT-PFT; SPEC section 3).

    The cost of a vector is the mean over the group's sites of the site calibration cost
    (:func:`lue_spie.cost.calibration_cost`). Sites that cannot be calibrated (fewer than 4
    good days, constant observations) are left out of their group and reported as skipped.
    A lag parameter is searched when it is free at any site of the group and applied only
    at the sites where it is free. All groups are optimised side by side in one batch.

    Args:
        data: As for :func:`calibrate_sites`.
        site_groups: Group name -> site ids (a site may appear in several groups).
        Other arguments: as for :func:`calibrate_sites`.

    Returns:
        A :class:`CalibrationResult` whose ``table`` has one row per (group, site) with the
        group's vector and that site's cost terms, and whose ``units`` has one row per group
        with the pooled cost, the mean site NSE, the vector and the optimiser counters.
    """
    if not site_groups:
        raise ValueError("site_groups is empty: give at least one group of sites")
    all_sites: list[str] = []
    for g, members in site_groups.items():
        if not members:
            raise ValueError(f"site group {g!r} is empty")
        all_sites.extend(m for m in members if m not in all_sites)
    s = _settings_from(seed, popsize, max_gen, tolfun, tolx, tolfunhist, restarts,
                       incpopsize, sigma0, w_ideal, w_nonideal, dtype, device, chunk_rows)
    d = _prepare(data, koeppen=koeppen, sites=all_sites, years=years, dtype=_dtype(s.dtype),
                 device=s.device)
    reasons = _skip_reasons(d, MIN_POINTS)
    pos = {site: i for i, site in enumerate(d.sites)}
    unit_defs = []
    for g, members in site_groups.items():
        rows = [pos[m] for m in members if reasons[pos[m]] is None]
        if not rows:
            raise ValueError(f"site group {g!r}: no site with enough good-quality days")
        unit_defs.append((str(g), rows))
    engine, checksum, elapsed = _run(
        d, unit_defs, s, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
        progress=progress, stop_after_gen=stop_after_gen, callback=callback,
        desc="calibrate pooled")
    rows, phys, owners = _final_rows(engine)
    final = engine.evaluate_rows(rows, phys)
    n_good = (d.good & torch.isfinite(d.GPP_obs)).sum(-1).cpu().numpy()
    records, unit_records = [], []
    j = 0
    for u in engine.units:
        edge = _edge_flags(u.best_x, u.free)
        lo, hi = j, j + len(u.rows)
        unit_records.append({
            "group": u.id, "n_sites": len(u.rows), "cost": u.best_f,
            "nse_mean": float(np.nanmean(final["nse"][lo:hi, 0])),
            **dict(zip(PARAMETERS, from_scaled(np.where(u.free, u.best_x, 0.0)).tolist(),
                       strict=True)),
            "generations": u.generations, "evaluations": u.evaluations,
            "restarts": u.restarts, "stop_reason": u.stop_reason,
            **{f"edge_{p}": bool(e) for p, e in zip(PARAMETERS, edge, strict=True)}})
        for r in u.rows:
            records.append({
                "group": u.id, "site": d.sites[r], "koeppen": d.koeppen[r], "status": "ok",
                **dict(zip(PARAMETERS, phys[j, 0].tolist(), strict=True)),
                "cost": float(final["cost"][j, 0]), "nse": float(final["nse"][j, 0]),
                "C_ideal": float(final["C_ideal"][j, 0]),
                "C_nonideal": float(final["C_nonideal"][j, 0]),
                "n_good_days": int(n_good[r]), "generations": u.generations,
                "evaluations": u.evaluations, "restarts": u.restarts,
                "stop_reason": u.stop_reason,
                **{f"edge_{p}": bool(e) for p, e in zip(PARAMETERS, edge, strict=True)}})
            j += 1
    for g, members in site_groups.items():
        for m in members:
            if reasons[pos[m]] is not None:
                records.append({"group": str(g), "site": m, "koeppen": d.koeppen[pos[m]],
                                "status": reasons[pos[m]],
                                "n_good_days": int(n_good[pos[m]])})
    table = pd.DataFrame.from_records(records)
    return CalibrationResult(table=table, settings=s, data_checksum=checksum,
                             elapsed_s=elapsed, generations=engine.gen,
                             n_evaluations=engine.n_evaluations,
                             units=pd.DataFrame.from_records(unit_records))


# ------------------------------------------------------------------------------ after the fit
@torch.no_grad()
def evaluate_params(
    data: Any,
    params: np.ndarray,
    *,
    sites: Sequence[str] | None = None,
    koeppen: Sequence[str] | Mapping[str, str] | None = None,
    years: Sequence[int] | None = None,
    dtype: torch.dtype | str = torch.float64,
    device: str = "cpu",
    w_ideal: float = W_IDEAL,
    w_nonideal: float = W_NONIDEAL,
) -> pd.DataFrame:
    """Cost terms of given physical parameter vectors, one per site (no optimisation).

    Useful to score the true parameters of virtual FLUXNET or any method's predictions with
    exactly the calibration cost. ``params`` has shape (sites, 13) in the order of ``sites``
    (or of the data). Returns a table with site, cost, nse, C_ideal, C_nonideal, n_good_days.
    """
    dt = _dtype(dtype)
    d = _prepare(data, koeppen=koeppen, sites=sites, years=years, dtype=dt,
                 device=resolve_device(device))
    # np.array copies: a read-only input (e.g. a DataFrame's values) cannot back a tensor.
    p = torch.tensor(np.array(params, dtype=np.float64), dtype=dt, device=d.good.device)
    if p.shape != (len(d.sites), N_PARAMS):
        raise ValueError(f"params: expected shape ({len(d.sites)}, {N_PARAMS}), got "
                         f"{tuple(p.shape)}")
    f = {k: v.unsqueeze(1) for k, v in d.forcing.items()}
    sim = simulate(f, p.unsqueeze(1), validate=True)
    c = calibration_cost(sim, d.GPP_obs.unsqueeze(1), d.good.unsqueeze(1), p.unsqueeze(1), f,
                         w_ideal=w_ideal, w_nonideal=w_nonideal)
    return pd.DataFrame({"site": d.sites, **{k: c[k][:, 0].cpu().numpy() for k in
                                            ("cost", "nse", "C_ideal", "C_nonideal")},
                         "n_good_days": c["n_good"][:, 0].cpu().numpy().astype(int)})


@torch.no_grad()
def simulate_calibrated(
    data: Any,
    table: pd.DataFrame,
    *,
    koeppen: Sequence[str] | Mapping[str, str] | None = None,
    years: Sequence[int] | None = None,
    column: str = "GPP_calib",
) -> pd.DataFrame:
    """GPP simulated with calibrated vectors: a tidy ``(site, date, GPP_calib)`` table.

    Args:
        data: The data the calibration used (Dataset or ForcingBatch with ``dates``).
        table: A calibration table (``site``, ``status`` and the 13 parameters); only rows with
            status ``"ok"`` are simulated.
        koeppen: As for :func:`calibrate_sites` (unused for a Dataset).
        years: As for :func:`calibrate_sites`.
        column: Name of the output column.

    Returns:
        One row per site and day, sorted by site and date. For a Dataset only the (site,
        date) pairs present in its ``site_day`` table are kept (not the padding of the
        common grid).
    """
    ok = table[table["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame({"site": pd.Series(dtype=str), "date": pd.Series(
            dtype="datetime64[ns]"), column: pd.Series(dtype=float)})
    d = _prepare(data, koeppen=koeppen if koeppen is not None else dict(
        zip(table["site"], table["koeppen"], strict=False)) if "koeppen" in table else None,
        sites=list(ok["site"]), years=years, dtype=torch.float64, device="cpu")
    if d.dates is None:
        raise ValueError("simulate_calibrated: the data have no `dates` to label the days")
    p = torch.as_tensor(np.array(ok[list(PARAMETERS)].to_numpy(np.float64)))
    gpp = simulate(d.forcing, p, validate=True)["GPP"].numpy()  # (sites, days)
    out = pd.DataFrame({
        "site": np.repeat(np.asarray(d.sites, dtype=object), len(d.dates)),
        "date": np.tile(np.asarray(d.dates, dtype="datetime64[ns]"), len(d.sites)),
        column: gpp.reshape(-1),
    })
    if d.site_day is not None:
        keys = d.site_day[["site", "date"]]
        out = keys.merge(out, on=["site", "date"], how="inner")
    return out.sort_values(["site", "date"], kind="stable").reset_index(drop=True)


def write_results(
    result: CalibrationResult,
    out_dir: str | Path,
    *,
    inputs: Mapping[str, str | Path] | None = None,
    gpp_calib: pd.DataFrame | None = None,
    extra_settings: Mapping[str, Any] | None = None,
    name: str = "calibration",
) -> dict[str, Path]:
    """Write a calibration atomically: ``NAME.parquet`` (+ ``NAME_units.parquet`` for pooled
    runs, + ``gpp_calib.parquet`` when given), each with its provenance record.

    The provenance holds the settings, the seed, the data checksum, the inputs' sha256,
    package versions and the git commit (:func:`lue_spie.store.make_provenance`).
    """
    out_dir = Path(out_dir)
    settings = {**result.settings.to_dict(), "data_checksum": result.data_checksum,
                "generations": result.generations, "n_evaluations": result.n_evaluations,
                "elapsed_s": result.elapsed_s, **dict(extra_settings or {})}
    prov = store.make_provenance("calibrate", settings=settings, inputs=inputs,
                                 seed=result.settings.seed)
    paths = {"table": store.write_parquet(result.table, out_dir / f"{name}.parquet", prov)}
    if result.units is not None:
        paths["units"] = store.write_parquet(result.units, out_dir / f"{name}_units.parquet",
                                             prov)
    if gpp_calib is not None:
        paths["gpp_calib"] = store.write_parquet(gpp_calib, out_dir / "gpp_calib.parquet",
                                                 prov)
    return paths


# ------------------------------------------------------------------------------------- CLI
def _cli(args: argparse.Namespace) -> int:
    from lue_spie.data import load_dataset

    data_dir = Path(args.data)
    dataset = load_dataset(data_dir)
    out = Path(args.out)
    years = None
    if args.years:
        years = _parse_years(args.years)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = calibrate_sites(
            dataset, sites=args.sites, years=years, seed=args.seed, device=args.device,
            dtype=args.dtype, popsize=args.popsize, max_gen=args.max_gen, tolfun=args.tolfun,
            tolx=args.tolx, restarts=args.restarts, w_ideal=args.w_ideal,
            w_nonideal=args.w_nonideal, chunk_rows=args.chunk_rows,
            checkpoint_dir=out / "checkpoint", checkpoint_every=args.checkpoint_every,
            progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        print(f"lue-spie calibrate: interrupted; run the same command again to resume from "
              f"the last checkpoint in {out / 'checkpoint'}", file=sys.stderr)
        return 130
    gpp = simulate_calibrated(dataset, result.table, years=years)
    inputs = {"site_day": data_dir / "site_day.parquet", "sites": data_dir / "sites.parquet"}
    paths = write_results(result, out, inputs=inputs, gpp_calib=gpp,
                          extra_settings={"sites": args.sites, "years": years})
    t = result.table
    ok = t[t["status"] == "ok"]
    print(f"calibrated {len(ok)} of {len(t)} site(s) in {result.elapsed_s:.1f} s "
          f"({result.generations} generations); median daily NSE "
          f"{ok['nse'].median():.3f}" if len(ok) else "no site could be calibrated")
    for _, row in t[t["status"] != "ok"].iterrows():
        print(f"  {row['site']}: {row['status']}")
    for k, p in paths.items():
        print(f"  wrote {k}: {p}")
    return 0


def _parse_years(spec: Sequence[str]) -> list[int]:
    years: list[int] = []
    for item in spec:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part:
                a, b = part.split("-", 1)
                years.extend(range(int(a), int(b) + 1))
            else:
                years.append(int(part))
    return years


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``calibrate`` sub-command."""
    p = subparsers.add_parser(
        "calibrate", help="site calibration with CMA-ES (writes calibration.parquet, "
        "gpp_calib.parquet)",
        description="Calibrate the 13 LUE parameters at each site with CMA-ES on the cost "
        "1 - NSE + constraints (SPEC section 2). Resumes from OUT/checkpoint when present.")
    p.add_argument("--data", required=True, help="dataset folder (site_day.parquet, "
                   "sites.parquet)")
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--sites", nargs="+", default=None, help="site ids (default: all)")
    p.add_argument("--years", nargs="+", default=None,
                   help="years, e.g. 2010-2012 or 2010 2011 (default: all)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-gen", type=int, default=CalibrationSettings.max_gen,
                   help="most generations per site (default %(default)s)")
    p.add_argument("--popsize", type=int, default=None,
                   help="population size (default: pycma's 4 + 3 ln n)")
    p.add_argument("--restarts", type=int, default=CalibrationSettings.restarts,
                   help="IPOP restarts per site (default %(default)s)")
    p.add_argument("--tolfun", type=float, default=CalibrationSettings.tolfun)
    p.add_argument("--tolx", type=float, default=CalibrationSettings.tolx)
    p.add_argument("--w-ideal", type=float, default=W_IDEAL)
    p.add_argument("--w-nonideal", type=float, default=W_NONIDEAL)
    p.add_argument("--chunk-rows", type=int, default=CalibrationSettings.chunk_rows,
                   help="most sites per model call (memory)")
    p.add_argument("--checkpoint-every", type=int, default=10)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on the 2-core reference machine two "
                   "threads were no faster for 196 sites and several times slower for one "
                   "site; 0 = torch's default; raise it on a large machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cli)

"""The CMA-ES engine: batched ask / evaluate / tell over many units, with checkpoints.

One CMA-ES (pycma) per *unit* searches the ``[0, 1]``-scaled parameter space. A unit is a
single site for site calibration or a group of sites sharing one vector for the pooled
optimisation methods OPT-All and OPT-PFT (the pooled cost is the mean of the sites' costs).
The cost is :func:`lue_spie.cost.calibration_cost`, evaluated for whole populations by its
fast path :func:`lue_spie.cost.population_cost` (tested equal).

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
``(seed, unit id)`` (pycma's ``randn`` option), so a site's result does not depend on which
other sites are in the batch. pycma's ask/tell/stop draw nothing from numpy's global generator
with these options (tested); creating an ES runs under a unit-private global state all the
same, and every generation checks that the global generator did not move (a cheap guard that
replaces saving and restoring the global state around each of the ~2 x units pycma calls per
generation, which cost about a fifth of the engine's time). The
whole optimiser state (ES objects, generators, best points, counters) is pickled atomically
every ``checkpoint_every`` generations; a run started again with the same settings and data
resumes from it and ends with exactly the result of an uninterrupted run. A checkpoint written
with other settings or data is refused with :class:`CheckpointMismatch`.

This module is the engine only; :mod:`lue_spie.calibrate.search` builds units from sites or
groups and turns the engine's state into result tables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import pickle
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cma
import numpy as np
import torch

from lue_spie import store
from lue_spie.calibrate.settings import CalibrationSettings
from lue_spie.cost import population_cost, prepare_cost
from lue_spie.data.io import ForcingBatch
from lue_spie.layout import CalibrationFiles
from lue_spie.model import FORCING_KEYS
from lue_spie.params import N_PARAMS, from_scaled, lag_mask

__all__ = [
    "CalibrationInterrupted",
    "CheckpointMismatch",
    "Engine",
    "Unit",
    "run_units",
    "data_checksum",
]

#: Cost given to CMA-ES for a candidate whose cost is not finite (never happens with valid
#: forcing; a guard so one bad candidate cannot stall an ES).
_BAD_COST = 1e6
_CHECKPOINT_FORMAT = 2


class CalibrationInterrupted(RuntimeError):
    """Raised by the ``stop_after_gen`` test hook after the checkpoint of that generation."""


class CheckpointMismatch(ValueError):
    """A checkpoint exists for other settings or data than the run asked for."""


def data_checksum(batch: ForcingBatch) -> str:
    """sha256 of what a calibration sees: sites, Koeppen types, forcing, GPP_obs, good days."""
    h = hashlib.sha256()
    h.update(json.dumps([list(batch.sites), list(batch.koeppen or [])]).encode())
    for k in FORCING_KEYS:
        h.update(batch.forcing[k].detach().cpu().to(torch.float64).numpy().tobytes())
    h.update(batch.GPP_obs.detach().cpu().to(torch.float64).numpy().tobytes())
    h.update(batch.good.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _unit_seed(seed: int, unit_id: str) -> int:
    digest = hashlib.sha256(f"{int(seed)}:{unit_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclasses.dataclass
class Unit:
    """Optimiser state of one unit (pickled in checkpoints).

    Attributes:
        id: Site id, or group name for a pooled unit.
        rows: Rows of the batch (sites) evaluated with this unit's vector.
        free: (13,) bool, the searched parameters.
        best_f: Best cost so far; ``best_x`` the full (13,) scaled vector (fixed entries 0).
    """

    id: str
    rows: list[int]
    free: np.ndarray
    rng: np.random.RandomState  # restart points and ES seeds
    np_state: tuple  # numpy global generator state private to this unit
    es: Any = None
    popsize: int = 0
    generations: int = 0
    evaluations: int = 0
    restarts: int = 0
    best_f: float = np.inf
    best_x: np.ndarray | None = None
    stop_reason: str = ""
    done: bool = False


def _global_numpy_fingerprint() -> tuple[int, bytes]:
    """Position and key digest of numpy's legacy global generator (moves with any draw)."""
    _, key, pos, *_ = np.random.get_state()  # noqa: NPY002
    return int(pos), hashlib.sha1(key.tobytes()).digest()


@contextlib.contextmanager
def _private_numpy_state(unit: Unit) -> Iterator[None]:
    # pycma may draw from numpy's legacy global generator; give each unit its own state there
    # so that units cannot disturb each other's streams.
    outer = np.random.get_state()  # noqa: NPY002
    np.random.set_state(unit.np_state)  # noqa: NPY002
    try:
        yield
    finally:
        unit.np_state = np.random.get_state()  # noqa: NPY002
        np.random.set_state(outer)  # noqa: NPY002


class _ScalarBoundTransform(cma.BoundTransform):
    """pycma's boundary handler (``BoundTransform``: the piecewise linear-quadratic map into
    the box) with its map written per coordinate in plain Python floats.

    pycma applies it to every candidate separately, 12 coordinates at a time, where each of
    its ~15 NumPy operations costs more than the arithmetic: it was about a quarter of
    pycma's time per generation. The same operations in the same order on the same IEEE
    doubles (``x * x`` for the square, NumPy's floor division for the period shift) give the
    same numbers bit for bit, so the searches do not change (tested against pycma's own).
    """

    def _bounds_lists(self, n: int) -> tuple[list[float], ...]:
        """The transformation's per-coordinate constants as lists, made once per length."""
        cached = getattr(self, "_lists", None)
        if cached is None or len(cached[0]) != n:
            tf = self.bounds_tf
            if len(tf._lb) != n:
                tf.initialize(n)
            lb, ub, al, au = (v.tolist() for v in (tf._lb, tf._ub, tf._al, tf._au))
            # Where the map is the identity: lb + al <= y <= ub - au.
            inner = ([lo + a for lo, a in zip(lb, al, strict=True)],
                     [hi - a for hi, a in zip(ub, au, strict=True)])
            cached = self._lists = (lb, ub, al, au, *inner)
        return cached

    def repair(self, x: Any, copy_if_changed: bool = True) -> Any:  # noqa: ARG002
        """``x`` mapped into the bounds (a new array)."""
        if self.bounds is None or (self.bounds[0] is None and self.bounds[1] is None):
            return x
        ys = np.asarray(x, dtype=float).tolist()
        lbs, ubs, als, aus, lo_in, hi_in = self._bounds_lists(len(ys))
        if all(lo <= y <= hi for y, lo, hi in zip(ys, lo_in, hi_in, strict=True)):
            return np.asarray(ys)  # every step of the map leaves such a point as it is
        out = []
        for y, lb, ub, al, au in zip(ys, lbs, ubs, als, aus, strict=True):
            if y < lb - 2 * al - (ub - lb) / 2.0 or y > ub + 2 * au + (ub - lb) / 2.0:
                r = 2 * (ub - lb + al + au)  # period
                start = lb - 2 * al - (ub - lb) / 2.0
                y -= r * float(np.floor_divide(y - start, r))
            if y > ub + au:
                y -= 2 * (y - ub - au)
            if y < lb - al:
                y += 2 * (lb - al - y)
            if y < lb + al:
                d = y - (lb - al)
                y = lb + d * d / 4 / al
            if y > ub - au:
                d = y - (ub + au)
                y = ub - d * d / 4 / au
            out.append(y)
        return np.asarray(out)


def _new_es(unit: Unit, s: CalibrationSettings, x0: np.ndarray, popsize: int | None) -> None:
    dim = int(unit.free.sum())
    es_rng = np.random.RandomState(unit.rng.randint(0, 2**31 - 1))
    opts = {
        "bounds": [0.0, 1.0],
        "BoundaryHandler": _ScalarBoundTransform,
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


class Engine:
    """The batched ask / evaluate / tell loop shared by site and pooled calibration.

    Args:
        batch: The sites' forcing (in the settings' dtype and on their device), with Koeppen
            types.
        unit_defs: ``(unit id, rows)`` per unit.
        settings: Resolved settings (device not ``"auto"``).
    """

    def __init__(self, batch: ForcingBatch, unit_defs: Sequence[tuple[str, list[int]]],
                 settings: CalibrationSettings):
        batch.require_types()
        self.batch = batch
        self.s = settings
        self.site_masks = lag_mask(batch.koeppen) if batch.koeppen else np.ones(
            (0, N_PARAMS), bool)  # (n_sites, 13) bool, True = free
        self.units: list[Unit] = []
        for uid, rows in unit_defs:
            free = self.site_masks[list(rows)].any(axis=0)
            seed = _unit_seed(settings.seed, uid)
            rng = np.random.RandomState(seed)
            np_state = np.random.RandomState(seed ^ 0x5EED).get_state()
            self.units.append(Unit(id=uid, rows=list(rows), free=free, rng=rng,
                                   np_state=np_state))
        self.gen = 0
        self.n_evaluations = 0
        # Everything the cost needs that does not depend on the parameters, gathered once.
        self.cost_data = prepare_cost(batch.forcing, batch.GPP_obs, batch.good,
                                      w_ideal=settings.w_ideal, w_nonideal=settings.w_nonideal,
                                      dtype=settings.torch_dtype, device=settings.device)

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
        """Everything a checkpoint needs to resume."""
        return {"gen": self.gen, "n_evaluations": self.n_evaluations, "units": self.units}

    def load(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state`."""
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
        """Cost terms for physical params (R, P, 13) at site rows (R,): arrays (R, P).

        :func:`lue_spie.cost.population_cost` (the calibration cost, computed without
        keeping the simulated series), at most ``chunk_rows`` sites per model call.
        """
        params = torch.as_tensor(phys, dtype=self.s.torch_dtype, device=self.s.device)
        c = population_cost(self.cost_data, params, sites=np.asarray(rows, dtype=np.int64),
                            block_sites=self.s.chunk_rows)
        return {k: c[k].to("cpu", torch.float64).numpy()
                for k in ("cost", "nse", "C_ideal", "C_nonideal", "n_good")}

    def evaluate_units(self, units: list[Unit], cands: list[np.ndarray]) -> list[np.ndarray]:
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

    def final_rows(self) -> tuple[list[int], np.ndarray, list[Unit]]:
        """Rows, physical best vectors (rows, 1, 13) and owning unit, over all units."""
        rows: list[int] = []
        phys: list[np.ndarray] = []
        owners: list[Unit] = []
        for u in self.units:
            rows.extend(u.rows)
            phys.append(self.to_physical(u.best_x[None, :], u.rows))
            owners.extend([u] * len(u.rows))
        if not rows:
            return [], np.zeros((0, 1, N_PARAMS)), []
        return rows, np.concatenate(phys, axis=0), owners

    # -- the loop ----------------------------------------------------------------------------
    def start(self) -> None:
        """Create the ES of every unit that has none yet (a fresh run)."""
        for u in self.units:
            if u.es is None and not u.done:
                _new_es(u, self.s, np.full(int(u.free.sum()), 0.5), self.s.popsize)

    def active(self) -> list[Unit]:
        """The units still searching."""
        return [u for u in self.units if not u.done]

    def step(self) -> None:
        """One generation of every active unit."""
        units = self.active()
        guard = _global_numpy_fingerprint()
        cands: list[np.ndarray] = []
        for u in units:
            X = np.asarray(u.es.ask(), dtype=np.float64)
            full = np.zeros((len(X), N_PARAMS))
            full[:, u.free] = X
            cands.append(full)
        costs = self.evaluate_units(units, cands)
        for u, X, f in zip(units, cands, costs, strict=True):
            f = np.where(np.isfinite(f), f, _BAD_COST)
            u.es.tell(list(X[:, u.free]), list(f))
            u.generations += 1
            u.evaluations += len(f)
            self.n_evaluations += len(f)
            k = int(np.argmin(f))
            if f[k] < u.best_f:
                u.best_f, u.best_x = float(f[k]), X[k].copy()
            self._check_stop(u)
        if _global_numpy_fingerprint() != guard:
            raise RuntimeError(
                "pycma drew from numpy's global random generator during ask/tell, so the "
                "units' searches would depend on each other; this pycma version needs the "
                "engine's per-call private generator state back (lue_spie.calibrate.engine)")
        self.gen += 1

    def _restart_pays(self, u: Unit) -> bool:
        """Whether a restart can run to its end within the unit's remaining generations.

        An IPOP restart (population ``incpopsize`` times larger, from a random point) takes
        at least about as many generations as the run that just converged; with fewer left
        it is cut by ``max_gen`` far from converged and cannot beat the optimum already
        found, so its generations would be spent for nothing. ``restart_min_generations``:
        ``"converged"`` asks for that many generations left, ``"any"`` restarts whenever
        generations are left (pycma's IPOP as such).
        """
        if self.s.restart_min_generations == "any":
            return True
        return self.s.max_gen - u.generations >= int(u.es.countiter)

    def _check_stop(self, u: Unit) -> None:
        if u.generations >= self.s.max_gen:
            u.done, u.stop_reason = True, f"max_gen={self.s.max_gen}"
            return
        stop = u.es.stop()
        if not stop:
            return
        reason = ",".join(f"{k}={v}" for k, v in stop.items())
        if u.restarts < self.s.restarts and self._restart_pays(u):
            u.restarts += 1
            x0 = u.rng.uniform(0.1, 0.9, size=int(u.free.sum()))
            _new_es(u, self.s, x0, u.popsize * self.s.incpopsize)
            u.stop_reason = reason
            return
        u.done, u.stop_reason = True, reason


# ----------------------------------------------------------------------------------- driver
def _settings_hash(settings: CalibrationSettings, checksum: str,
                   unit_defs: Sequence[tuple[str, list[int]]]) -> str:
    blob = json.dumps({"settings": settings.to_dict(), "data": checksum,
                       "units": [[u, list(r)] for u, r in unit_defs],
                       "format": _CHECKPOINT_FORMAT}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def run_units(
    batch: ForcingBatch,
    unit_defs: Sequence[tuple[str, list[int]]],
    settings: CalibrationSettings,
    *,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 10,
    progress: bool = False,
    stop_after_gen: int | None = None,
    callback: Callable[[int, Engine], None] | None = None,
    desc: str = "calibrate",
) -> tuple[Engine, str, float]:
    """Run CMA-ES for every unit until all stop; resume from a matching checkpoint.

    Args:
        batch: Forcing in the settings' dtype and device, with Koeppen types.
        unit_defs: ``(unit id, rows)`` per unit.
        settings: Resolved settings.
        checkpoint_dir: Folder of ``checkpoint.pkl`` (None: no checkpoints).
        checkpoint_every: Generations between checkpoints (0: only at the end).
        progress: Report progress over generations (a bar on a terminal, lines elsewhere).
        stop_after_gen: Test hook: checkpoint and raise :class:`CalibrationInterrupted` after
            this generation.
        callback: ``callback(generation, engine)`` after each generation.
        desc: Label of the progress bar.

    Returns:
        The engine (its units hold the best vectors), the data checksum and the wall time of
        this call in seconds.

    Raises:
        CheckpointMismatch: a checkpoint of other settings or data is in ``checkpoint_dir``.
    """
    checksum = data_checksum(batch)
    engine = Engine(batch, unit_defs, settings)
    key = _settings_hash(settings, checksum, unit_defs)
    ckpt = CalibrationFiles.checkpoint_in(checkpoint_dir) if checkpoint_dir is not None else None
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

    from lue_spie.progress import progress_bar

    t0 = time.perf_counter()
    with progress_bar(total=settings.max_gen, initial=engine.gen, enabled=progress, desc=desc,
                      unit="gen") as bar:
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

"""SPIE training: every fold's network at once, trained through the LUE model on GPP error.

One training step (paper section 2.2.5, Figure 1), for every fold ``k`` at once::

    features of a mini-batch of fold k's training sites      (F, B, features)
      -> fold k's network (dropout on inputs and hidden layers)  -> raw outputs (F, B, 13)
      -> bounds mapping -> lag mask                               -> parameters (F, B, 13)
      -> lue_spie.cost.batch_cost: the LUE model over the sites' whole records and the
         calibration cost per site, mean over the batch          -> loss_k
    loss = sum_k loss_k;  backward;  one masked Adam step (FoldAdam) for the active folds.

The cost's parameter-independent parts (prepared forcing, observations on the good days,
their sum of squares, the stressed days of the non-ideal constraint) are built once per run
(:func:`lue_spie.cost.prepare_cost`, in :class:`TrainingData`); a step gathers its sites'
rows of them and calls :func:`lue_spie.cost.batch_cost`, equal to ``calibration_cost(
simulate(...))`` up to rounding (tested against that reference path) but cheaper. The
evaluations without dropout (no gradient) use :func:`lue_spie.cost.population_cost`, the
same cost evaluated block by block in scratch memory, one call for every fold and site.

Nothing in the loss looks at calibrated parameters. The folds' networks never mix (stacked
weights, :class:`~lue_spie.methods.spie.network.StackedMLP`), so this is ten independent
trainings run in lock step: the same weights as fold after fold (tested), with one batched
model call per step instead of ten.

Randomness: each fold has its own ``torch.Generator`` (CPU), seeded from the run's seed and
the fold's set of training sites (:func:`lue_spie.methods.regression.fold_seed`). In this
order it draws the fold's initial weights, then per epoch a permutation of its training
sites, then per step its dropout masks (always for a full batch of ``batch_size`` rows, so
the stream does not depend on the other folds). Hence a fold trained alone or beside others,
on CPU or CUDA, sees the same batches and masks.

Mini-batches: each fold cuts its own permutation into batches of ``batch_size`` sites (the
last one smaller), so with training sets of different sizes the folds have different
numbers of batches per epoch and different last-batch sizes: a step is padded to the widest
batch among the folds still active in it, padded rows weigh 0, and a fold that has no batch
left in an epoch takes no optimiser step (its Adam state does not move).

Stopping and the kept weights, per fold (masks over the stack):

- the paper's rule: stop when the epoch's mean mini-batch cost falls below ``cost_tol``
  (1e-2), or after ``epochs`` epochs;
- every ``eval_every`` epochs (and when a fold stops) the fold's network is evaluated without
  dropout on its training sites (and on its validation sites, if ``val_fraction > 0``):
  ``cost`` (mean site cost), ``nse_median``... go into the curves;
- ``keep="best"`` (default) keeps the weights of the evaluation with the lowest monitored
  cost: the validation cost when there is a validation split, else the training cost without
  dropout; ``keep="last"`` keeps the final weights (the paper's network after 2000 epochs).
  Without validation split both are nearly the same network (the training cost without
  dropout keeps falling); the snapshot protects against a last epoch that jumped uphill.
- ``patience`` (None by default, as the paper): stop a fold when that many evaluations in a
  row did not improve the monitored cost. Meant for the validation split.

Checkpoints: every ``checkpoint_every`` epochs the whole state (stacked weights, Adam moments
and step counts, each fold's generator state, the epoch, the kept snapshots, stop flags,
curves) is written atomically; a run started again with the same settings and data resumes
from it and ends with exactly the weights of an uninterrupted run (tested).

Curves (``fold<k>.curves.parquet``): ``fold, epoch, split, cost, nse_median, nse_mean,
C_ideal, C_nonideal, n_sites``; ``split`` is ``"minibatch"`` (every epoch: the mean cost of
its mini-batches, with dropout, the quantity the paper's stopping rule watches), ``"train"``
and ``"validation"`` (every ``eval_every`` epochs, without dropout).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lue_spie import store
from lue_spie.cost import CostData, batch_cost, population_cost, prepare_cost
from lue_spie.data.features import feature_matrix
from lue_spie.layout import MethodFiles
from lue_spie.methods.base import SiteData
from lue_spie.methods.regression import fold_seed
from lue_spie.methods.spie.mapping import BoundsMapping
from lue_spie.methods.spie.network import StackedMLP
from lue_spie.methods.spie.networks import check_finite_features
from lue_spie.methods.spie.optim import FoldAdam
from lue_spie.metrics import MIN_POINTS
from lue_spie.model import FORCING_KEYS
from lue_spie.params import N_PARAMS, lag_mask
from lue_spie.progress import on_terminal, progress_bar

__all__ = [
    "TrainConfig",
    "FoldPlan",
    "TrainingData",
    "TrainResult",
    "SPIEInterrupted",
    "CURVE_COLUMNS",
    "build_training_data",
    "train_folds",
]

#: Columns of the training curves.
CURVE_COLUMNS: tuple[str, ...] = ("fold", "epoch", "split", "cost", "nse_median", "nse_mean",
                                  "C_ideal", "C_nonideal", "n_sites")
_CHECKPOINT_FORMAT = 1
_KEEP = ("best", "last")


class SPIEInterrupted(RuntimeError):
    """Raised by the ``stop_after_epoch`` test hook after the checkpoint of that epoch."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """What the training needs: the training knobs of SPIE's hyperparameters, copied by
    :meth:`lue_spie.methods.spie.SPIE.train_config` (their meanings and their one set of
    defaults are SPIE's), with the bounds mapping built."""

    hidden: tuple[int, ...]
    dropout_input: float
    dropout_hidden: float
    learning_rate: float
    l2: float
    batch_size: int
    epochs: int
    cost_tol: float
    keep: str
    patience: int | None
    eval_every: int
    max_grad_norm: float | None
    w_ideal: float
    w_nonideal: float
    mapping: BoundsMapping
    checkpoint_every: int

    def __post_init__(self) -> None:
        checks = [
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}"),
            (self.checkpoint_every >= 0, "checkpoint_every must be >= 0 (0: no periodic "
                                         f"checkpoints), got {self.checkpoint_every}"),
            (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
            (self.l2 >= 0, f"l2 must be >= 0, got {self.l2}"),
            (self.keep in _KEEP, f"keep must be one of {_KEEP}, got {self.keep!r}"),
            (self.patience is None or self.patience >= 1,
             f"patience must be None or >= 1, got {self.patience}"),
            (self.max_grad_norm is None or self.max_grad_norm > 0,
             f"max_grad_norm must be None or > 0, got {self.max_grad_norm}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"SPIE: {msg}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (for checkpoint keys and records)."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["mapping"] = self.mapping.to_dict()
        return d


@dataclasses.dataclass(frozen=True)
class FoldPlan:
    """The sites of one fold's training.

    Attributes:
        fold: Fold number.
        train: Sites whose cost drives the gradient steps.
        validation: Training-fold sites kept out of the steps for the kept-weights choice
            (empty without a validation split).
        test: The held-out sites (predicted only).
        excluded: Training-fold sites left out because they have fewer than ``min_good`` good
            days (their NSE, hence their cost, is undefined).
        seed: Seed of the fold's generator.
    """

    fold: int
    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]
    excluded: tuple[str, ...]
    seed: int


@dataclasses.dataclass
class TrainingData:
    """Tensors built once for a training run (every site of every fold).

    Attributes:
        sites: Site ids: the rows of every tensor.
        cost: What the calibration cost needs of every site that does not depend on the
            parameters (:func:`lue_spie.cost.prepare_cost`: the prepared forcing, GPP_obs on
            the good days, the stressed days, ...). Its cost weights are the defaults; the
            training uses those of its :class:`TrainConfig`.
        free: ``(sites, 13)`` lag mask as 0/1.
        features: ``(folds, sites, features)``: the design matrix z-scored with each fold's
            training statistics.
        feature_names: Columns of the design matrix.
        feature_stats: Per fold, the continuous features' training mean and std.
        n_good: Good days per site.
        digest: sha256 of everything the training sees (:meth:`checksum`).
    """

    sites: list[str]
    cost: CostData
    free: torch.Tensor
    features: torch.Tensor
    feature_names: tuple[str, ...]
    feature_stats: list[pd.DataFrame]
    n_good: np.ndarray
    digest: str

    @property
    def dtype(self) -> torch.dtype:  # noqa: D102
        return self.features.dtype

    @property
    def device(self) -> torch.device:  # noqa: D102
        return self.features.device

    def rows(self, sites: Sequence[str]) -> torch.Tensor:
        """Row index of each site (CPU long tensor)."""
        pos = {s: i for i, s in enumerate(self.sites)}
        return torch.as_tensor([pos[s] for s in sites], dtype=torch.long)

    def checksum(self) -> str:
        """sha256 of everything the training sees (for checkpoint keys)."""
        return self.digest


def _digest(sites: Sequence[str], feature_names: Sequence[str],
            tensors: Sequence[torch.Tensor]) -> str:
    """sha256 of the site ids, the feature names and the bytes of ``tensors`` in order."""
    h = hashlib.sha256(json.dumps([list(sites), list(feature_names)]).encode())
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def build_training_data(
    data: SiteData,
    folds: Sequence[tuple[int, Sequence[str], Sequence[str]]],
    *,
    val_fraction: float = 0.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    min_good: int = MIN_POINTS,
) -> tuple[TrainingData, list[FoldPlan]]:
    """The tensors and the per-fold site plans of a training run.

    Args:
        data: The shared site data.
        folds: ``(fold, train_sites, test_sites)`` per fold.
        val_fraction: Share of each fold's usable training sites kept for validation (drawn
            with the fold's seed; 0: none, the paper's use of every training site).
        seed: The run's seed.
        dtype, device: Of the tensors.
        min_good: Fewest good days for a training site to be used.

    Raises:
        ValueError: for a non-finite feature, a fold without usable training site, or a bad
            ``val_fraction``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"SPIE: val_fraction must be in [0, 1), got {val_fraction!r}")
    all_sites: set[str] = set()
    for _, train, test in folds:
        all_sites |= set(data.check_sites(train, "training sites"))
        all_sites |= set(data.check_sites(test, "held-out sites"))
    sites = sorted(all_sites)
    batch = data.forcing(sites, dtype=dtype, device=device)
    batch.require_types()
    good = batch.good & torch.isfinite(batch.GPP_obs)
    obs = torch.where(good, batch.GPP_obs, torch.full_like(batch.GPP_obs, float("nan")))
    forcing = {k: batch.forcing[k] for k in FORCING_KEYS}
    free = torch.as_tensor(lag_mask(list(batch.koeppen)), dtype=dtype, device=device)
    n_good = good.sum(-1).cpu().numpy()
    ok = dict(zip(sites, n_good >= min_good, strict=True))

    plans, feats, stats = [], [], []
    for k, train, test in folds:
        train = sorted(map(str, train))
        fseed = fold_seed(seed, train)
        usable = [s for s in train if ok[s]]
        excluded = tuple(s for s in train if not ok[s])
        val: list[str] = []
        if val_fraction > 0 and len(usable) > 1:
            rng = np.random.default_rng(fseed)
            n_val = min(len(usable) - 1, max(1, round(val_fraction * len(usable))))
            val = sorted(usable[i] for i in rng.permutation(len(usable))[:n_val])
        fit_sites = [s for s in usable if s not in set(val)]
        if not fit_sites:
            raise ValueError(f"SPIE fold {k}: no training site has {min_good} or more good days")
        plans.append(FoldPlan(fold=int(k), train=tuple(fit_sites), validation=tuple(val),
                              test=tuple(map(str, test)), excluded=excluded, seed=fseed))
        _, st = feature_matrix(data.sites.loc[train].reset_index(drop=True))
        X = data.features(train, sites)
        check_finite_features(X.to_numpy(np.float64), list(X.columns), list(X.index))
        feats.append(torch.tensor(X.to_numpy(np.float64), dtype=dtype))
        stats.append(st)
    features = torch.stack(feats).to(device)
    # The checksum reads the same bytes as before the cost was prepared (the forcing in
    # FORCING_KEYS order, GPP_obs with NaN off the good days, the lag mask, the features), so
    # the checkpoint keys of earlier runs still match.
    digest = _digest(sites, X.columns, [*forcing.values(), obs, free, features])
    td = TrainingData(sites=sites, cost=prepare_cost(forcing, obs, good, min_good=min_good),
                      free=free, features=features, feature_names=tuple(X.columns),
                      feature_stats=stats, n_good=n_good, digest=digest)
    return td, plans


@dataclasses.dataclass
class TrainResult:
    """What :func:`train_folds` returns.

    Attributes:
        net: The stacked networks holding each fold's kept weights.
        curves: The training curves (:data:`CURVE_COLUMNS`).
        summary: One dict per fold: ``fold, best_epoch, best_cost, monitor, stopped_epoch,
            stop_reason, skipped_steps, n_train, n_validation, n_excluded``.
        timings: Seconds per phase of the steps (when profiling was asked for).
        seconds: Wall time of this call.
        epochs_run: Epochs run in this call (after a resume: the remaining ones).
    """

    net: StackedMLP
    curves: pd.DataFrame
    summary: list[dict[str, Any]]
    timings: dict[str, float]
    seconds: float
    epochs_run: int


class _Phases:
    """Wall time per phase (synchronising CUDA), or nothing when off."""

    def __init__(self, on: bool, device: torch.device) -> None:
        self.on, self.cuda = on, device.type == "cuda"
        self.t: dict[str, float] = {}
        self._last = 0.0

    def start(self) -> None:
        if self.on:
            self._sync()
            self._last = time.perf_counter()

    def mark(self, name: str) -> None:
        if self.on:
            self._sync()
            now = time.perf_counter()
            self.t[name] = self.t.get(name, 0.0) + now - self._last
            self._last = now

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


def _checkpoint_key(cfg: TrainConfig, plans: Sequence[FoldPlan], td: TrainingData,
                    dtype: torch.dtype, device: torch.device) -> str:
    blob = json.dumps({"format": _CHECKPOINT_FORMAT, "config": cfg.to_dict(),
                       "plans": [dataclasses.asdict(p) for p in plans], "data": td.checksum(),
                       "dtype": str(dtype), "device": device.type}, sort_keys=True,
                      default=list)
    return hashlib.sha256(blob.encode()).hexdigest()


class _Trainer:
    """The state of a training run and its steps (used by :func:`train_folds`)."""

    def __init__(self, cfg: TrainConfig, td: TrainingData, plans: Sequence[FoldPlan],
                 profile: bool) -> None:
        self.cfg, self.td, self.plans = cfg, td, list(plans)
        self.device, self.dtype = td.device, td.dtype
        # The cost weights are the config's (the one place they are set).
        self.cost = dataclasses.replace(td.cost, w_ideal=cfg.w_ideal, w_nonideal=cfg.w_nonideal)
        self.n_folds = n_folds = len(plans)
        if td.features.shape[0] != n_folds:
            raise ValueError(f"train_folds: {td.features.shape[0]} feature slices for "
                             f"{n_folds} folds")
        self.net = StackedMLP(n_folds, td.features.shape[-1], cfg.hidden, N_PARAMS,
                              dropout_input=cfg.dropout_input,
                              dropout_hidden=cfg.dropout_hidden, dtype=self.dtype,
                              device=self.device)
        self.gens = [torch.Generator().manual_seed(p.seed) for p in plans]
        for k in range(n_folds):
            self.net.init_fold(k, self.gens[k])
        self.params = list(self.net.weights) + list(self.net.biases)
        self.opt = FoldAdam(self.params, lr=cfg.learning_rate,
                            weight_decay=[cfg.l2] * len(self.net.weights)
                            + [0.0] * len(self.net.biases),
                            max_grad_norm=cfg.max_grad_norm)
        self.train_rows = [td.rows(p.train) for p in plans]
        self.val_rows = [td.rows(p.validation) for p in plans]
        self.n_train = [len(r) for r in self.train_rows]
        self.n_batches = [math.ceil(n / cfg.batch_size) for n in self.n_train]
        self.monitor = ["validation" if len(v) else "train" for v in self.val_rows]
        self.phases = _Phases(profile, self.device)
        # Everything else a checkpoint must restore (plain Python and CPU tensors).
        self.st: dict[str, Any] = {
            "epoch": 0, "done": [False] * n_folds, "best_cost": [math.inf] * n_folds,
            "best_epoch": [0] * n_folds, "since_best": [0] * n_folds,
            "stopped_epoch": [0] * n_folds, "stop_reason": [""] * n_folds,
            "skipped": [0] * n_folds, "curves": [],
            "best_state": [self._fold_state(k) for k in range(n_folds)],
        }

    # -- state ---------------------------------------------------------------------------------
    def _fold_state(self, k: int) -> list[torch.Tensor]:
        return [t[k].detach().cpu().clone() for t in self.params]

    def save(self, path: Path, key: str) -> None:
        """Write the whole state atomically."""
        buf = io.BytesIO()
        torch.save({"key": key, "params": [t.detach().cpu().clone() for t in self.params],
                    "optimiser": self.opt.state_dict(),
                    "generators": [g.get_state() for g in self.gens], "state": self.st}, buf)
        store.atomic_write_bytes(path, buf.getvalue())

    def load(self, path: Path, key: str) -> None:
        """Restore a state written by :meth:`save` with the same key."""
        from lue_spie.calibrate.engine import CheckpointMismatch

        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("key") != key:
            raise CheckpointMismatch(
                f"{path}: this SPIE checkpoint belongs to a run with other settings, folds or "
                "data; delete it (or the method's work folder) to start afresh")
        with torch.no_grad():
            for t, v in zip(self.params, saved["params"], strict=True):
                t.copy_(v)
        self.opt.load_state_dict(saved["optimiser"])
        for g, v in zip(self.gens, saved["generators"], strict=True):
            g.set_state(v)
        self.st = saved["state"]

    # -- one model evaluation ------------------------------------------------------------------
    def draw_masks(self, fs: list[int], width: int) -> list[torch.Tensor] | None:
        """Scaled dropout masks ``(len(fs), width, layer width)`` per layer with dropout, each
        fold drawing a full batch's masks from its own generator (then cut to ``width``)."""
        rates, widths = self.net.dropout_rates, self.net.layer_sizes[:-1]
        if not any(r > 0 for r in rates):
            return None
        bs = self.cfg.batch_size
        per_fold = [[torch.rand((bs, w), generator=self.gens[k]) >= r for w, r in
                     zip(widths, rates, strict=True) if r > 0] for k in fs]
        return [torch.stack([pf[j][:width] for pf in per_fold]).to(
                    device=self.device, dtype=self.dtype) / (1.0 - r)
                for j, r in enumerate(r for r in rates if r > 0)]

    def parameters(self, fpos: torch.Tensor, idx: torch.Tensor,
                   masks: list[torch.Tensor] | None) -> torch.Tensor:
        """Physical parameters ``(F', W, 13)`` of the sites ``idx (F', W)`` under the folds
        ``fpos``: features -> network -> bounds mapping -> lag mask."""
        td, dev = self.td, self.device
        idx_d = idx.to(dev)
        x = td.features[fpos.to(dev).unsqueeze(1), idx_d]
        u = self.net(x, masks, folds=None if len(fpos) == self.n_folds else fpos.to(dev))
        return self.cfg.mapping(u) * td.free[idx_d]

    def step_loss(self, fs: list[int], idx: torch.Tensor, weight: torch.Tensor,
                  masks: list[torch.Tensor] | None,
                  mark: Callable[[str], None] = lambda name: None) -> torch.Tensor:
        """The loss of each fold ``fs`` on its mini-batch ``idx (F', W)`` (site rows;
        ``weight`` 1/batch size, 0 on padded rows): the mean calibration cost over its sites,
        differentiable in the networks' weights. Shape ``(F',)``."""
        theta = self.parameters(torch.as_tensor(fs, dtype=torch.long), idx, masks)
        mark("network")
        # The folds' mini-batches are rows of one batch of sites (repeats allowed).
        part = self.cost.select(idx.reshape(-1).to(self.device))
        mark("gather")
        c = batch_cost(part, theta.reshape(-1, N_PARAMS))["cost"].view(idx.shape)
        mark("model_cost")
        w = weight.to(device=self.device, dtype=self.dtype)
        return (torch.where(w > 0, c, torch.zeros((), dtype=c.dtype, device=c.device))
                * w).sum(-1)

    # -- an epoch ------------------------------------------------------------------------------
    def train_epoch(self, active: list[int]) -> dict[int, float]:
        """One epoch of mini-batch steps for the ``active`` folds; their mean cost."""
        bs, dtype, st = self.cfg.batch_size, self.dtype, self.st
        self.phases.start()
        perms = {k: self.train_rows[k][torch.randperm(self.n_train[k], generator=self.gens[k])]
                 for k in active}
        ep_sum = dict.fromkeys(active, 0.0)
        ep_n = dict.fromkeys(active, 0)
        for s in range(max(self.n_batches[k] for k in active)):
            fs = [k for k in active if s < self.n_batches[k]]
            parts = [perms[k][s * bs:(s + 1) * bs] for k in fs]
            width = max(len(p) for p in parts)
            idx = torch.zeros((len(fs), width), dtype=torch.long)
            weight = torch.zeros((len(fs), width), dtype=dtype)
            for i, p in enumerate(parts):  # padded rows weigh 0
                idx[i, :len(p)] = p
                weight[i, :len(p)] = 1.0 / len(p)
            masks = self.draw_masks(fs, width)
            self.phases.mark("batch")
            loss_f = self.step_loss(fs, idx, weight, masks, self.phases.mark)
            self.opt.zero_grad()
            loss_f.sum().backward()
            self.phases.mark("backward")
            # A fold whose loss or gradient is not finite skips the step (counted in the
            # summary); with bounded parameters and sites of enough good days it never happens.
            ok = torch.isfinite(loss_f.detach()).cpu()
            finite_grad = torch.isfinite(self.opt.grad_norms()).cpu()
            step_mask = torch.zeros(self.n_folds, dtype=torch.bool)
            for i, k in enumerate(fs):
                ok[i] = bool(ok[i]) and bool(finite_grad[k])
                step_mask[k] = bool(ok[i])
                st["skipped"][k] += 0 if ok[i] else 1
            self.opt.step(step_mask)
            self.phases.mark("optimiser")
            lf = loss_f.detach().cpu().to(torch.float64)
            for i, (k, p) in enumerate(zip(fs, parts, strict=True)):
                if bool(ok[i]):
                    ep_sum[k] += float(lf[i]) * len(p)
                    ep_n[k] += len(p)
        return {k: ep_sum[k] / ep_n[k] if ep_n[k] else math.nan for k in active}

    @torch.no_grad()
    def evaluate(self, folds_now: list[int],
                 rows: list[torch.Tensor]) -> dict[int, dict[str, float]]:
        """Costs without dropout of each fold's sites ``rows[k]``: every (fold, site) pair in
        one network call and one :func:`~lue_spie.cost.population_cost` call."""
        folds_now = [k for k in folds_now if len(rows[k])]
        if not folds_now:
            return {}
        width = max(len(rows[k]) for k in folds_now)
        idx = torch.zeros((len(folds_now), width), dtype=torch.long)
        real = torch.zeros((len(folds_now), width), dtype=torch.bool)
        for i, k in enumerate(folds_now):
            idx[i, :len(rows[k])] = rows[k]
            real[i, :len(rows[k])] = True
        theta = self.parameters(torch.as_tensor(folds_now, dtype=torch.long), idx, None)
        real_d = real.to(self.device)
        c = population_cost(self.cost, theta[real_d].unsqueeze(1),
                            sites=idx.to(self.device)[real_d])
        split = [len(rows[k]) for k in folds_now]
        parts = {name: torch.split(c[name].squeeze(1).cpu().to(torch.float64), split)
                 for name in ("cost", "nse", "C_ideal", "C_nonideal")}
        out = {}
        for i, k in enumerate(folds_now):
            v = {n: parts[n][i].numpy() for n in parts}
            cost = v["cost"]
            out[k] = {"cost": float(np.mean(cost)) if np.isfinite(cost).all() else math.inf,
                      "nse_median": float(np.nanmedian(v["nse"])),
                      "nse_mean": float(np.nanmean(v["nse"])),
                      "C_ideal": float(np.mean(v["C_ideal"])),
                      "C_nonideal": float(np.mean(v["C_nonideal"])), "n_sites": len(cost)}
        return out

    def end_epoch(self, epoch: int, active: list[int], ep_cost: dict[int, float]) -> None:
        """Curves, stopping rules, evaluations and kept weights after an epoch."""
        cfg, st = self.cfg, self.st
        for k in active:
            st["curves"].append((self.plans[k].fold, epoch, "minibatch", ep_cost[k], math.nan,
                                 math.nan, math.nan, math.nan, self.n_train[k]))
        stopping: dict[int, str] = {}
        for k in active:
            if ep_cost[k] < cfg.cost_tol:
                stopping[k] = f"cost < {cfg.cost_tol:g}"
            elif epoch >= cfg.epochs:
                stopping[k] = f"epochs = {cfg.epochs}"
        to_eval = active if epoch % cfg.eval_every == 0 else sorted(stopping)
        if to_eval:
            self.phases.start()
            ev_train = self.evaluate(to_eval, self.train_rows)
            ev_val = self.evaluate([k for k in to_eval if len(self.val_rows[k])],
                                   self.val_rows)
            self.phases.mark("evaluation")
            for k in to_eval:
                for split, ev in (("train", ev_train), ("validation", ev_val)):
                    if k in ev:
                        e = ev[k]
                        st["curves"].append((self.plans[k].fold, epoch, split, e["cost"],
                                             e["nse_median"], e["nse_mean"], e["C_ideal"],
                                             e["C_nonideal"], e["n_sites"]))
                watched = (ev_val if self.monitor[k] == "validation" else ev_train)[k]["cost"]
                final = k in stopping
                if (cfg.keep == "best" and watched < st["best_cost"][k]) or (
                        cfg.keep == "last" and final):
                    st["best_cost"][k], st["best_epoch"][k] = watched, epoch
                    st["best_state"][k] = self._fold_state(k)
                    st["since_best"][k] = 0
                else:
                    st["since_best"][k] += 1
                if (cfg.patience is not None and not final
                        and st["since_best"][k] >= cfg.patience):
                    stopping[k] = f"patience = {cfg.patience} evaluations"
        for k, reason in stopping.items():
            st["done"][k], st["stopped_epoch"][k], st["stop_reason"][k] = True, epoch, reason
        st["epoch"] = epoch

    # -- the result ----------------------------------------------------------------------------
    def result(self, seconds: float, epochs_run: int) -> TrainResult:
        """The kept weights of every fold, the curves and the summary."""
        st = self.st
        for k, n in enumerate(st["skipped"]):
            if n:
                warnings.warn(f"SPIE fold {self.plans[k].fold}: {n} step(s) skipped because the "
                              "loss or the gradient was not finite", RuntimeWarning,
                              stacklevel=3)
        with torch.no_grad():
            for k in range(self.n_folds):
                for t, v in zip(self.params, st["best_state"][k], strict=True):
                    t[k].copy_(v)
        curves = pd.DataFrame(st["curves"], columns=list(CURVE_COLUMNS))
        curves = curves.astype({"fold": "int64", "epoch": "int64", "n_sites": "int64"})
        summary = [{"fold": p.fold, "best_epoch": int(st["best_epoch"][k]),
                    "best_cost": float(st["best_cost"][k]), "monitor": self.monitor[k],
                    "keep": self.cfg.keep, "stopped_epoch": int(st["stopped_epoch"][k]),
                    "stop_reason": st["stop_reason"][k], "skipped_steps": int(st["skipped"][k]),
                    "n_train": len(p.train), "n_validation": len(p.validation),
                    "n_excluded": len(p.excluded)} for k, p in enumerate(self.plans)]
        return TrainResult(net=self.net, curves=curves, summary=summary,
                           timings=dict(self.phases.t), seconds=seconds,
                           epochs_run=epochs_run)


def train_folds(
    cfg: TrainConfig,
    td: TrainingData,
    plans: Sequence[FoldPlan],
    *,
    checkpoint_dir: str | Path | None = None,
    stop_after_epoch: int | None = None,
    progress: bool | None = False,
    profile: bool = False,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train one network per fold, all folds at once (see the module docstring).

    Args:
        cfg: The hyperparameters.
        td: The tensors (:func:`build_training_data`), whose ``features`` hold one slice per
            plan, in order.
        plans: The folds' site plans.
        checkpoint_dir: Folder of the checkpoint (None: none); a matching checkpoint there
            is resumed.
        stop_after_epoch: Test hook: checkpoint and raise :class:`SPIEInterrupted` after this
            epoch.
        progress: Show a progress bar over epochs (None: only on a terminal).
        profile: Time the phases of the steps (adds synchronisation on CUDA).
        callback: ``callback(epoch, info)`` after every epoch (``info``: epoch mean costs per
            fold and which folds are done).

    Raises:
        CheckpointMismatch: a checkpoint of other settings or data is in ``checkpoint_dir``.
    """
    t_start = time.perf_counter()
    tr = _Trainer(cfg, td, plans, profile)
    ckpt = MethodFiles.training_checkpoint_in(checkpoint_dir) if checkpoint_dir is not None \
        else None
    key = _checkpoint_key(cfg, plans, td, tr.dtype, tr.device) if ckpt is not None else ""
    if ckpt is not None and ckpt.exists():
        tr.load(ckpt, key)
    epochs_at_start = tr.st["epoch"]
    # progress None: a bar in a terminal only, nothing in a log or an executed notebook.
    bar = progress_bar(total=cfg.epochs, initial=tr.st["epoch"], desc="SPIE", unit="epoch",
                       enabled=progress if progress is not None else on_terminal())
    while not all(tr.st["done"]):
        epoch = tr.st["epoch"] + 1
        active = [k for k in range(tr.n_folds) if not tr.st["done"][k]]
        ep_cost = tr.train_epoch(active)
        tr.end_epoch(epoch, active, ep_cost)
        bar.update(1)
        finite = [v for v in ep_cost.values() if math.isfinite(v)]
        bar.set_postfix(folds=len(active), cost=f"{np.median(finite):.4f}" if finite else "-",
                        refresh=False)
        if callback is not None:
            callback(epoch, {"epoch_cost": ep_cost, "done": list(tr.st["done"])})
        interrupt = stop_after_epoch is not None and epoch >= stop_after_epoch
        if ckpt is not None and ((cfg.checkpoint_every and epoch % cfg.checkpoint_every == 0)
                                 or interrupt):
            tr.phases.start()
            tr.save(ckpt, key)
            tr.phases.mark("checkpoint")
        if interrupt and not all(tr.st["done"]):
            bar.close()
            raise SPIEInterrupted(f"stopped after epoch {epoch} (stop_after_epoch test hook)")
    bar.close()
    return tr.result(time.perf_counter() - t_start, tr.st["epoch"] - epochs_at_start)

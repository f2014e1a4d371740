"""SPIE as a method of the comparison (paper section 2.2.5), registered as ``"SPIE"``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lue_spie import store
from lue_spie.cost import W_IDEAL, W_NONIDEAL
from lue_spie.methods.base import Method, SiteData, finish_params, params_frame
from lue_spie.methods.spie.mapping import DEFAULT_LOG_PARAMS, BoundsMapping, make_mapping
from lue_spie.methods.spie.networks import FoldNetwork, SPIENetworks, curves_path
from lue_spie.methods.spie.train import (
    TrainConfig,
    TrainResult,
    build_training_data,
    train_folds,
)
from lue_spie.model import resolve_device
from lue_spie.params import PARAMETERS

__all__ = ["SPIE"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclasses.dataclass
class SPIE(Method, name="SPIE", family="spie", order=11, learns_from="observations",
           folds="stacked"):
    """Simultaneous parameter inversion and extrapolation: a network trained through the model.

    A multi-layer perceptron maps a site's features (the training folds' z-scores) to 13 raw
    outputs; a fixed mapping puts them inside the parameters' bounds; the lag mask applies;
    the LUE model turns the parameters into daily GPP; the loss is the calibration cost
    (``1 - NSE`` plus the constraints, :func:`lue_spie.cost.calibration_cost`) averaged over the
    sites of a mini-batch. Calibrated parameters are never looked at. All folds train at once
    (:meth:`fit_predict_folds`; see :mod:`lue_spie.methods.spie.train`).

    Attributes:
        hidden: Units per hidden layer (paper: two layers of 16).
        dropout_input: Dropout rate on the inputs (paper: dropout on the input and hidden
            layers, rates not given).
        dropout_hidden: Dropout rate after each hidden layer.
        learning_rate: Adam's learning rate (paper: 1e-3).
        l2: L2 coefficient on the weight matrices, coupled as ``torch.optim.Adam``'s
            ``weight_decay`` (gradient ``+ l2 * W``; biases are not penalised) (paper: 1e-4).
        batch_size: Sites per mini-batch (paper: 32).
        epochs: Most epochs (paper: 2000).
        cost_tol: Stop a fold when its epoch's mean mini-batch cost falls below this (paper:
            1e-2).
        mapping: ``"log"`` (default: the parameters of ``log_params`` log-uniform, the others
            sigmoid) or ``"sigmoid"`` (every parameter, the paper's); see
            :mod:`lue_spie.methods.spie.mapping`.
        log_params: The parameters mapped log-uniformly by ``mapping="log"``.
        val_fraction: Share of each fold's training sites kept out of the gradient steps to
            choose the kept weights (0: none, every training site is fitted, as the paper).
        keep: ``"best"`` (weights of the evaluation with the lowest monitored cost) or
            ``"last"``.
        patience: Stop a fold after this many evaluations without improvement (None: never).
        eval_every: Epochs between evaluations without dropout (curves, kept weights).
        max_grad_norm: Clip each fold's gradient norm (None: no clipping, as the paper).
        w_ideal, w_nonideal: Weights of the cost's constraints (those of site calibration).
        device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``...
        dtype: ``"float32"`` (default) or ``"float64"``.
        seed: Seed; each fold's generator is seeded from it and the fold's training sites.
        checkpoint_every: Epochs between checkpoints in :attr:`workdir` (0: none).

    Not hyperparameters (set on the instance): ``workdir`` (checkpoint folder, set by the
    unit runner), ``results_dir`` (where :meth:`save` writes the networks and curves after
    fitting, set by the unit runner to ``OUT/SPIE``), ``progress``, ``profile`` (time the
    phases of a step), ``callback`` (``callback(epoch, info)`` after every epoch, see
    :func:`~lue_spie.methods.spie.train.train_folds`) and the test hook ``stop_after_epoch``.

    Fitted attributes: ``networks_`` (:class:`~lue_spie.methods.spie.networks.SPIENetworks`),
    ``curves_`` (training curves), ``summary_`` (per fold: kept epoch, stop reason ...),
    ``timings_`` (seconds per phase when ``profile``), ``train_seconds_``.
    """

    hidden: tuple[int, ...] = (16, 16)
    dropout_input: float = 0.1
    dropout_hidden: float = 0.1
    learning_rate: float = 1e-3
    l2: float = 1e-4
    batch_size: int = 32
    epochs: int = 2000
    cost_tol: float = 1e-2
    mapping: str = "log"
    log_params: tuple[str, ...] = DEFAULT_LOG_PARAMS
    val_fraction: float = 0.0
    keep: str = "best"
    patience: int | None = None
    eval_every: int = 10
    max_grad_norm: float | None = None
    w_ideal: float = W_IDEAL
    w_nonideal: float = W_NONIDEAL
    device: str = "auto"
    dtype: str = "float32"
    seed: int = 0
    checkpoint_every: int = 25

    workdir: Path | None = dataclasses.field(default=None, init=False, repr=False,
                                             compare=False)
    results_dir: Path | None = dataclasses.field(default=None, init=False, repr=False,
                                                 compare=False)
    progress: bool | None = dataclasses.field(default=None, init=False, repr=False,
                                              compare=False)
    profile: bool = dataclasses.field(default=False, init=False, repr=False, compare=False)
    stop_after_epoch: int | None = dataclasses.field(default=None, init=False, repr=False,
                                                     compare=False)
    callback: Callable[[int, dict], None] | None = dataclasses.field(
        default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        self.log_params = tuple(str(p) for p in self.log_params)
        if self.dtype not in _DTYPES:
            raise ValueError(f"SPIE: dtype must be one of {list(_DTYPES)}, got {self.dtype!r}")
        self.train_config()  # a clear error for bad hyperparameters now, not after loading

    # -- configuration ---------------------------------------------------------------------
    def bounds_mapping(self) -> BoundsMapping:
        """The mapping of raw outputs into the bounds."""
        return make_mapping(self.mapping, self.log_params)

    def train_config(self) -> TrainConfig:
        """The training settings of these hyperparameters."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)
                  if f.name != "mapping"}
        return TrainConfig(**shared, mapping=self.bounds_mapping())

    # -- fitting -----------------------------------------------------------------------------
    def _train(self, data: SiteData,
               folds: Sequence[tuple[int, Sequence[str], Sequence[str]]]) -> TrainResult:
        dtype = _DTYPES[self.dtype]
        device = resolve_device(self.device)
        td, plans = build_training_data(data, folds, val_fraction=float(self.val_fraction),
                                        seed=int(self.seed), dtype=dtype, device=device)
        res = train_folds(self.train_config(), td, plans, checkpoint_dir=self.workdir,
                          stop_after_epoch=self.stop_after_epoch, progress=self.progress,
                          profile=self.profile, callback=self.callback)
        cfg = self.train_config()
        arch = {"n_features": len(td.feature_names), "hidden": list(self.hidden),
                "n_outputs": len(PARAMETERS), "activation": "relu",
                "dropout_input": float(self.dropout_input),
                "dropout_hidden": float(self.dropout_hidden)}
        nets = [FoldNetwork(fold=p.fold, layers=res.net.fold_layers(i), architecture=arch,
                            mapping=cfg.mapping, feature_names=td.feature_names,
                            feature_stats=td.feature_stats[i],
                            sites={"train": list(p.train), "validation": list(p.validation),
                                   "test": list(p.test), "excluded": list(p.excluded)},
                            training=res.summary[i], settings=self.get_params())
                for i, p in enumerate(plans)]
        self.networks_ = SPIENetworks(nets)
        self.curves_ = res.curves
        self.summary_ = pd.DataFrame(res.summary)
        self.timings_ = res.timings
        self.train_seconds_ = res.seconds
        if self.results_dir is not None:
            self.save(self.results_dir)
        return res

    def fit(self, data: SiteData, train_sites: Sequence[str]) -> SPIE:
        """Train one network on ``train_sites`` (stored as fold 0)."""
        self._train(data, [(0, list(train_sites), [])])
        return self

    def fit_predict_folds(self, data: SiteData,
                          folds: Sequence[tuple[int, Sequence[str], Sequence[str]]]
                          ) -> dict[int, pd.DataFrame]:
        """Train every fold's network at once and predict each fold's held-out sites.

        Args:
            data: The shared site data.
            folds: ``(fold, train_sites, test_sites)`` per fold.

        Returns:
            Fold -> prediction table (``site``, the 13 parameters, ``note``).
        """
        self._train(data, folds)
        return {int(k): self.predict(data, test, fold=int(k)) for k, _, test in folds}

    # -- prediction --------------------------------------------------------------------------
    def predict(self, data: SiteData, sites: Sequence[str],
                fold: int | None = None) -> pd.DataFrame:
        """Predicted parameters of ``sites`` by fold ``fold``'s network (default: the only one).

        The sites' features are z-scored with that fold's training statistics; the lag mask
        of each site is applied and the vectors are clipped into the bounds (a saturated
        float32 sigmoid can land a rounding error outside).
        """
        nets = getattr(self, "networks_", None)
        if nets is None:
            raise ValueError("SPIE: fit the method before predicting")
        if fold is None:
            if len(nets) != 1:
                raise ValueError(f"SPIE: this method holds the networks of folds {nets.folds}; "
                                 "say which one predicts (fold=)")
            fold = nets.folds[0]
        sites = data.check_sites(sites)
        if not sites:
            return params_frame([], np.zeros((0, len(PARAMETERS))))
        info = data.sites.loc[sites].reset_index(drop=True)
        X = nets.features(info, fold)
        pred = nets.predict(X, fold)
        params = finish_params(pred[list(PARAMETERS)].to_numpy(np.float64),
                               list(info["koeppen"]))
        return params_frame(sites, params)

    # -- results -----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> list[Path]:
        """Write every fitted fold's network and training curves into ``folder``
        (``fold<k>.network.pt`` and ``fold<k>.curves.parquet``, each with provenance)."""
        folder = Path(folder)
        written = []
        for k in self.networks_.folds:
            net = self.networks_[k]
            prov = store.make_provenance("extrapolate.SPIE.network", settings={
                "fold": k, "params": self.get_params(), "training": net.training,
                "sites": {n: len(v) for n, v in net.sites.items()}}, seed=int(self.seed))
            written.append(net.save(folder, prov))
            curves = self.curves_[self.curves_["fold"] == k].reset_index(drop=True)
            written.append(store.write_parquet(curves, curves_path(folder, k), prov))
        return written

"""SPIE: simultaneous parameter inversion and extrapolation (paper section 2.2.5).

A neural network predicts the 13 LUE parameters of a site from its features and is trained
through the differentiable LUE model on the GPP error (the calibration cost), never on
calibrated parameters. All folds of the cross-validation train at once as one batched model.

- :mod:`~lue_spie.methods.spie.method`: :class:`SPIE`, the registered method;
- :mod:`~lue_spie.methods.spie.network`: :class:`StackedMLP`, the folds' networks stacked;
- :mod:`~lue_spie.methods.spie.mapping`: :class:`BoundsMapping`, raw outputs -> bounds;
- :mod:`~lue_spie.methods.spie.optim`: :class:`FoldAdam`, Adam with a step mask per fold;
- :mod:`~lue_spie.methods.spie.train`: the training loop, checkpoints, curves;
- :mod:`~lue_spie.methods.spie.networks`: the fitted networks on disk and
  :func:`load_networks` (for the feature-importance analysis).
"""

from lue_spie.methods.spie.mapping import DEFAULT_LOG_PARAMS, BoundsMapping, make_mapping
from lue_spie.methods.spie.method import SPIE
from lue_spie.methods.spie.network import StackedMLP, sequential_from_layers
from lue_spie.methods.spie.networks import (
    FoldNetwork,
    SPIENetworks,
    curves_path,
    load_networks,
    network_path,
    read_curves,
)
from lue_spie.methods.spie.optim import FoldAdam
from lue_spie.methods.spie.train import (
    CURVE_COLUMNS,
    FoldPlan,
    SPIEInterrupted,
    TrainConfig,
    TrainingData,
    TrainResult,
    build_training_data,
    train_folds,
)

__all__ = [
    "SPIE",
    "BoundsMapping",
    "DEFAULT_LOG_PARAMS",
    "make_mapping",
    "StackedMLP",
    "sequential_from_layers",
    "FoldAdam",
    "FoldNetwork",
    "SPIENetworks",
    "load_networks",
    "read_curves",
    "network_path",
    "curves_path",
    "CURVE_COLUMNS",
    "FoldPlan",
    "SPIEInterrupted",
    "TrainConfig",
    "TrainingData",
    "TrainResult",
    "build_training_data",
    "train_folds",
]

"""The fitted SPIE networks on disk: format, writer and loader (for the importance analysis).

One file per fold, beside the fold's predictions in the extrapolation results::

    OUT/SPIE/fold<k>.network.pt                 the network of fold k (format below)
    OUT/SPIE/fold<k>.network.provenance.json    what produced it
    OUT/SPIE/fold<k>.curves.parquet             its training curves (see train.py)

``fold<k>.network.pt`` is a ``torch.save`` of a plain dict (tensors, lists, strings and
numbers only, so ``torch.load(..., weights_only=True)`` reads it safely):

=================  ================================================================================
key                content
=================  ================================================================================
``format``         ``"lue-spie/spie-network"``; ``version``: 1
``fold``           the fold number k
``architecture``   ``{"n_features", "hidden": [16, 16], "n_outputs": 13, "activation": "relu",
                   "dropout_input", "dropout_hidden"}``
``layers``         ``[{"weight": (in, out), "bias": (out,)}, ...]``: ``h = relu(x @ W + b)``
                   per hidden layer, raw outputs ``u = h @ W + b`` (weights are the transposes of
                   ``nn.Linear.weight``)
``mapping``        :meth:`BoundsMapping.to_dict` (raw outputs -> parameters)
``parameters``     the 13 output names in order (:data:`lue_spie.params.PARAMETERS`)
``feature_names``  the input columns in order (:data:`lue_spie.data.features.FEATURE_NAMES`)
``feature_stats``  ``{"names": [...], "mean": [...], "std": [...]}``: the training sites' mean and
                   std of every continuous feature (one-hot columns are not scaled)
``sites``          ``{"train": [...], "validation": [...], "test": [...], "excluded": [...]}``
``training``       ``{"best_epoch", "stopped_epoch", "stop_reason", "best_cost", "keep", ...}``
``settings``       SPIE's hyperparameters
=================  ================================================================================

:func:`load_networks` reads one file or every fold of a folder into :class:`SPIENetworks`,
which gives each fold as a plain ``nn.Sequential`` (:meth:`SPIENetworks.fold_network`), the
design matrix of any sites table z-scored with that fold's statistics
(:meth:`SPIENetworks.features`) and the predicted parameters (:meth:`SPIENetworks.predict`).
"""

from __future__ import annotations

import dataclasses
import io
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from lue_spie import store
from lue_spie.data.features import feature_matrix
from lue_spie.errors import DataError
from lue_spie.layout import MethodFiles
from lue_spie.methods.spie.mapping import BoundsMapping
from lue_spie.methods.spie.network import sequential_from_layers
from lue_spie.params import PARAMETERS, lag_mask

__all__ = ["FORMAT", "FORMAT_VERSION", "FoldNetwork", "SPIENetworks", "load_networks",
           "network_path", "curves_path", "read_curves"]

FORMAT = "lue-spie/spie-network"
FORMAT_VERSION = 1


def network_path(folder: str | Path, fold: int) -> Path:
    """The network file of fold ``fold`` in SPIE's results folder."""
    return MethodFiles(Path(folder)).network(fold)


def curves_path(folder: str | Path, fold: int) -> Path:
    """The training-curves table of fold ``fold`` in SPIE's results folder."""
    return MethodFiles(Path(folder)).curves(fold)


@dataclasses.dataclass
class FoldNetwork:
    """One fold's fitted network and what it needs to be used (see the module docstring)."""

    fold: int
    layers: list[dict[str, torch.Tensor]]
    architecture: dict[str, Any]
    mapping: BoundsMapping
    feature_names: tuple[str, ...]
    feature_stats: pd.DataFrame
    sites: dict[str, list[str]]
    training: dict[str, Any]
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The dict written to ``fold<k>.network.pt``."""
        st = self.feature_stats
        return {
            "format": FORMAT, "version": FORMAT_VERSION, "fold": int(self.fold),
            "architecture": dict(self.architecture),
            "layers": [{"weight": la["weight"].detach().cpu().clone(),
                        "bias": la["bias"].detach().cpu().clone()} for la in self.layers],
            "mapping": self.mapping.to_dict(), "parameters": list(PARAMETERS),
            "feature_names": list(self.feature_names),
            "feature_stats": {"names": [str(i) for i in st.index],
                              "mean": [float(x) for x in st["mean"]],
                              "std": [float(x) for x in st["std"]]},
            "sites": {k: [str(s) for s in v] for k, v in self.sites.items()},
            "training": dict(self.training), "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "network") -> FoldNetwork:
        """Read :meth:`to_dict` back, with clear errors for another format or version."""
        if d.get("format") != FORMAT:
            raise ValueError(f"{source}: not a SPIE network file (format {d.get('format')!r}, "
                             f"expected {FORMAT!r})")
        if int(d.get("version", -1)) != FORMAT_VERSION:
            raise ValueError(f"{source}: SPIE network format version {d.get('version')!r}; this "
                             f"lue-spie reads version {FORMAT_VERSION}")
        if list(d["parameters"]) != list(PARAMETERS):
            raise ValueError(f"{source}: its outputs {d['parameters']} are not the 13 "
                             f"parameters {PARAMETERS} in order")
        fs = d["feature_stats"]
        stats = pd.DataFrame({"mean": fs["mean"], "std": fs["std"]},
                             index=pd.Index(fs["names"]), dtype=np.float64)
        return cls(fold=int(d["fold"]), layers=[dict(la) for la in d["layers"]],
                   architecture=dict(d["architecture"]),
                   mapping=BoundsMapping.from_dict(d["mapping"]),
                   feature_names=tuple(d["feature_names"]), feature_stats=stats,
                   sites={k: list(v) for k, v in d["sites"].items()},
                   training=dict(d["training"]), settings=dict(d["settings"]))

    def network(self) -> nn.Sequential:
        """The network as an ``nn.Sequential`` of leaf modules, eval mode (raw outputs)."""
        a = self.architecture
        return sequential_from_layers(self.layers, float(a["dropout_input"]),
                                      float(a["dropout_hidden"]))

    def save(self, folder: str | Path, provenance: Mapping[str, Any] | None = None) -> Path:
        """Write ``folder/fold<k>.network.pt`` atomically (and its provenance record)."""
        buf = io.BytesIO()
        torch.save(self.to_dict(), buf)
        return store.write_result_bytes(network_path(folder, self.fold), buf.getvalue(),
                                        provenance)


class SPIENetworks:
    """The fitted networks of one or more folds (what :func:`load_networks` returns).

    Attributes:
        folds: Fold numbers, sorted.
        mapping: The bounds mapping (raw outputs -> physical parameters).
        feature_names: The input columns, in order.
    """

    def __init__(self, nets: Sequence[FoldNetwork]) -> None:
        if not nets:
            raise ValueError("SPIENetworks: no fold networks")
        self._by_fold = {n.fold: n for n in sorted(nets, key=lambda n: n.fold)}
        if len(self._by_fold) != len(nets):
            raise ValueError("SPIENetworks: a fold appears twice")
        first = next(iter(self._by_fold.values()))
        for n in self._by_fold.values():
            if n.feature_names != first.feature_names or n.mapping != first.mapping:
                raise ValueError(f"SPIENetworks: fold {n.fold} has other features or another "
                                 f"mapping than fold {first.fold}")
        self.folds: list[int] = list(self._by_fold)
        self.mapping: BoundsMapping = first.mapping
        self.feature_names: tuple[str, ...] = first.feature_names

    def __getitem__(self, fold: int) -> FoldNetwork:
        try:
            return self._by_fold[int(fold)]
        except KeyError:
            raise KeyError(f"no SPIE network of fold {fold}; folds: {self.folds}") from None

    def __len__(self) -> int:
        return len(self.folds)

    def __repr__(self) -> str:
        return (f"SPIENetworks(folds={self.folds}, features={len(self.feature_names)}, "
                f"mapping={self.mapping.name!r})")

    # -- networks ----------------------------------------------------------------------------
    def fold_network(self, fold: int) -> nn.Sequential:
        """Fold ``fold``'s network: ``nn.Sequential`` of leaf modules in eval mode, mapping the
        design matrix ``(N, features)`` to the 13 raw (pre-mapping) outputs."""
        return self[fold].network()

    # -- inputs --------------------------------------------------------------------------------
    def features(self, sites: pd.DataFrame, fold: int) -> pd.DataFrame:
        """The design matrix of a sites table, z-scored with fold ``fold``'s training stats."""
        X, _ = feature_matrix(sites, continuous_stats=self[fold].feature_stats)
        return X

    def check_features(self, X: pd.DataFrame) -> np.ndarray:
        """``X`` as a float array in the networks' column order, with clear errors.

        Raises:
            ValueError: when the columns differ from :attr:`feature_names` (naming the
                missing and unexpected ones) or a value is not finite (naming the column and
                the row).
        """
        if not isinstance(X, pd.DataFrame):
            raise TypeError("SPIE networks: give the features as a DataFrame whose columns are "
                            "the feature names (e.g. SPIENetworks.features(sites, fold))")
        missing = [c for c in self.feature_names if c not in X.columns]
        extra = [c for c in X.columns if c not in self.feature_names]
        if missing or extra:
            raise ValueError(f"SPIE networks: the feature table does not match the trained "
                             f"networks ({len(self.feature_names)} features): missing "
                             f"{missing[:10]}{' ...' if len(missing) > 10 else ''}, unexpected "
                             f"{extra[:10]}{' ...' if len(extra) > 10 else ''}")
        values = X[list(self.feature_names)].to_numpy(dtype=np.float64)
        check_finite_features(values, list(self.feature_names), list(X.index))
        return values

    # -- outputs -------------------------------------------------------------------------------
    @torch.no_grad()
    def raw(self, X: pd.DataFrame, fold: int) -> np.ndarray:
        """Raw (pre-mapping) outputs ``(N, 13)`` of fold ``fold`` for the design matrix ``X``."""
        values = self.check_features(X)
        net = self.fold_network(fold)
        dtype = net[-1].weight.dtype
        return net(torch.tensor(values, dtype=dtype)).to(torch.float64).numpy()

    @torch.no_grad()
    def predict(self, X: pd.DataFrame, fold: int,
                koeppen: Sequence[str] | None = None) -> pd.DataFrame:
        """Physical parameters (``site`` + 13 columns) of fold ``fold`` for the design matrix
        ``X`` (index: site ids); with ``koeppen`` the sites' lag masks are applied."""
        u = torch.as_tensor(self.raw(X, fold))
        p = self.mapping(u).numpy()
        if koeppen is not None:
            p = np.where(lag_mask(list(koeppen)), p, 0.0)
        out = pd.DataFrame(p, columns=list(PARAMETERS))
        out.insert(0, "site", [str(s) for s in X.index])
        return out


def check_finite_features(values: np.ndarray, columns: Sequence[str],
                          rows: Sequence[Any]) -> None:
    """Raise a clear error when a feature value is NaN or infinite (naming column and row)."""
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        cols = sorted({columns[c] for c in np.nonzero(bad.any(axis=0))[0]})
        raise ValueError(f"SPIE: feature {columns[j]!r} is {values[i, j]} at site {rows[i]!r}; "
                         f"{int(bad.sum())} non-finite value(s) in column(s) {cols[:10]}. The "
                         "network needs finite inputs: fill or drop them first (feature_matrix "
                         "sets a missing continuous feature to the training mean)")


def load_networks(path: str | Path) -> SPIENetworks:
    """The fitted SPIE networks of a results folder (every ``fold<k>.network.pt`` in it, e.g.
    ``RESULTS/extrapolation/SPIE``) or of one such file.

    Raises:
        FileNotFoundError: when there is no network file (naming the command that writes it).
        ValueError: for a file of another format or version.
        lue_spie.errors.DataError: for a file cut short or changed since it was written
            (naming it and the command that recomputes it).
    """
    path = Path(path)
    files = [path] if path.is_file() else MethodFiles(path).networks() if path.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{path}: no SPIE network files (fold<k>.network.pt); run "
                                "`lue-spie extrapolate --methods SPIE ...` first")
    nets = []
    for f in files:
        why = store.verify(f, require_record=False)
        if why is None:
            try:
                d = torch.load(f, map_location="cpu", weights_only=True)
            except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
                why = f"not a readable network file ({' '.join(str(err).split())[:120]})"
        if why is not None:
            raise DataError(f"{f}: {why}; run `lue-spie extrapolate --methods SPIE ...` on "
                            "its results folder again (it recomputes the damaged fold)")
        nets.append(FoldNetwork.from_dict(d, source=str(f)))
    return SPIENetworks(nets)


def read_curves(folder: str | Path) -> pd.DataFrame:
    """Every fold's training curves of a results folder, concatenated (see ``train.py``).

    Raises:
        FileNotFoundError: when there is none.
    """
    folder = Path(folder)
    files = MethodFiles(folder).curves_files()
    if not files:
        raise FileNotFoundError(f"{folder}: no SPIE training curves (fold<k>.curves.parquet); "
                                "run `lue-spie extrapolate --methods SPIE ...` first")
    return pd.concat([store.read_parquet(f) for f in files], ignore_index=True).sort_values(
        ["fold", "split", "epoch"], kind="stable").reset_index(drop=True)


"""SPIE's network: one multi-layer perceptron per fold, all folds stacked into one model.

Architecture (paper section 2.2.5): features -> [dropout] -> Linear -> ReLU -> [dropout] -> ...
-> Linear -> 13 raw outputs; the mapping into the parameters' bounds
(:mod:`~lue_spie.methods.spie.mapping`) follows outside the network.

:class:`StackedMLP` holds the weights of ``F`` such networks with a leading fold axis, so that
one batched matrix product (``torch.baddbmm``) runs a layer of every fold at once: input
``(F, N, features)``, output ``(F, N, 13)``. The folds never mix: fold ``k``'s outputs depend
only on fold ``k``'s weights and inputs, so the gradient of a sum of per-fold losses with
respect to fold ``k``'s weights is the gradient of fold ``k``'s loss alone.

Dropout masks are passed in (:meth:`StackedMLP.forward`), drawn by the trainer from one
generator per fold, so a fold's masks do not depend on which other folds train beside it.

:meth:`StackedMLP.fold_network` extracts fold ``k`` as a plain ``nn.Sequential`` of leaf
modules (``nn.Dropout``, ``nn.Linear``, ``nn.ReLU``, no in-place activation) in eval mode:
the form SHAP's DeepExplainer and captum's LRP need. In eval mode it gives exactly the
stacked model's pre-mapping outputs for that fold (tested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["StackedMLP", "sequential_from_layers"]


class StackedMLP(nn.Module):
    """``F`` MLPs of one architecture with stacked weights (leading fold axis).

    Args:
        n_folds: Number of stacked networks ``F``.
        n_features: Inputs per network.
        hidden: Units per hidden layer (paper: 16, 16).
        n_outputs: Outputs per network (13 parameters).
        dropout_input: Dropout rate on the inputs.
        dropout_hidden: Dropout rate after every hidden layer's activation.
        dtype, device: Of the weights.

    Attributes:
        weights: ``weights[l]`` has shape ``(F, in_l, out_l)`` (the transpose of
            ``nn.Linear.weight`` per fold: ``x @ W``).
        biases: ``biases[l]`` has shape ``(F, out_l)``.
    """

    def __init__(self, n_folds: int, n_features: int, hidden: Sequence[int] = (16, 16),
                 n_outputs: int = 13, *, dropout_input: float = 0.0,
                 dropout_hidden: float = 0.0, dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu") -> None:
        super().__init__()
        for name, p in (("dropout_input", dropout_input), ("dropout_hidden", dropout_hidden)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"StackedMLP: {name} must be in [0, 1), got {p!r}")
        if n_folds < 1 or n_features < 1 or n_outputs < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"StackedMLP: sizes must be positive (folds {n_folds}, features "
                             f"{n_features}, hidden {tuple(hidden)}, outputs {n_outputs})")
        self.n_folds, self.n_features, self.n_outputs = int(n_folds), int(n_features), \
            int(n_outputs)
        self.hidden = tuple(int(h) for h in hidden)
        self.dropout_input, self.dropout_hidden = float(dropout_input), float(dropout_hidden)
        sizes = [self.n_features, *self.hidden, self.n_outputs]
        kw = {"dtype": dtype, "device": device}
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.zeros(self.n_folds, a, b, **kw)) for a, b in
             zip(sizes[:-1], sizes[1:], strict=True)])
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.zeros(self.n_folds, b, **kw)) for b in sizes[1:]])

    # -- layout ----------------------------------------------------------------------------------
    @property
    def layer_sizes(self) -> list[int]:
        """``[features, *hidden, outputs]``."""
        return [self.n_features, *self.hidden, self.n_outputs]

    @property
    def dropout_rates(self) -> list[float]:
        """Dropout rate before each linear layer (input, then after each hidden layer)."""
        return [self.dropout_input] + [self.dropout_hidden] * len(self.hidden)

    def mask_shapes(self, n_rows: int) -> list[tuple[int, int]]:
        """Shape ``(rows, width)`` of one fold's mask before each linear layer with dropout
        (layers whose rate is 0 have none): the order :meth:`forward` expects."""
        return [(n_rows, w) for w, p in zip(self.layer_sizes[:-1], self.dropout_rates,
                                            strict=True) if p > 0]

    # -- initialisation --------------------------------------------------------------------------
    @torch.no_grad()
    def init_fold(self, fold: int, generator: torch.Generator) -> None:
        """Initialise fold ``fold`` as ``nn.Linear`` does (weights and biases uniform in
        ``+-1/sqrt(fan_in)``), drawing from ``generator`` (CPU), layer by layer."""
        for w, b in zip(self.weights, self.biases, strict=True):
            bound = 1.0 / math.sqrt(w.shape[1])
            w[fold].copy_((torch.rand(w.shape[1:], generator=generator, dtype=torch.float64)
                           * 2.0 - 1.0) * bound)
            b[fold].copy_((torch.rand(b.shape[1:], generator=generator, dtype=torch.float64)
                           * 2.0 - 1.0) * bound)

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, masks: Sequence[torch.Tensor] | None = None,
                folds: torch.Tensor | None = None) -> torch.Tensor:
        """Raw (pre-mapping) outputs.

        Args:
            x: Inputs ``(F', N, features)``.
            masks: Scaled dropout masks (``keep / (1 - rate)``), one ``(F', N, width)`` tensor
                per layer with dropout, in :meth:`mask_shapes` order; None: no dropout (eval).
            folds: Which stacked networks the ``F'`` rows of ``x`` belong to (a long tensor of
                fold positions); None: all, in order (``F' = F``).

        Returns:
            ``(F', N, outputs)``.
        """
        ws, bs = list(self.weights), list(self.biases)
        if folds is not None:
            ws = [w.index_select(0, folds) for w in ws]
            bs = [b.index_select(0, folds) for b in bs]
        it = iter(masks) if masks is not None else None
        h = x
        n = len(ws)
        for layer, (w, b, rate) in enumerate(zip(ws, bs, self.dropout_rates, strict=True)):
            if it is not None and rate > 0:
                h = h * next(it)
            h = torch.baddbmm(b.unsqueeze(1), h, w)
            if layer < n - 1:
                h = torch.relu(h)
        return h

    # -- one fold as a plain network ------------------------------------------------------------
    def fold_layers(self, fold: int) -> list[dict[str, torch.Tensor]]:
        """Fold ``fold``'s weights as ``[{"weight": (in, out), "bias": (out,)}, ...]`` (copies,
        detached, on the CPU)."""
        return [{"weight": w[fold].detach().cpu().clone(), "bias": b[fold].detach().cpu().clone()}
                for w, b in zip(self.weights, self.biases, strict=True)]

    def fold_network(self, fold: int) -> nn.Sequential:
        """Fold ``fold`` as an ``nn.Sequential`` of leaf modules, in eval mode, on the CPU."""
        return sequential_from_layers(self.fold_layers(fold), self.dropout_input,
                                      self.dropout_hidden)


def sequential_from_layers(layers: Sequence[dict[str, torch.Tensor]], dropout_input: float,
                           dropout_hidden: float) -> nn.Sequential:
    """An ``nn.Sequential`` (eval mode) from ``[{"weight": (in, out), "bias": (out,)}, ...]``.

    Modules: ``[Dropout(input)], Linear, ReLU, [Dropout(hidden)], Linear, ReLU, ..., Linear``;
    a dropout module is there only when its rate is positive. The ReLUs are not in place, so
    that SHAP's DeepExplainer and captum's LRP can hook them.
    """
    mods: list[nn.Module] = []
    for i, layer in enumerate(layers):
        w, b = layer["weight"], layer["bias"]
        rate = dropout_input if i == 0 else dropout_hidden
        if rate > 0:
            mods.append(nn.Dropout(rate))
        lin = nn.Linear(w.shape[0], w.shape[1], dtype=w.dtype)
        with torch.no_grad():
            lin.weight.copy_(w.T)
            lin.bias.copy_(b)
        mods.append(lin)
        if i < len(layers) - 1:
            mods.append(nn.ReLU(inplace=False))
    return nn.Sequential(*mods).eval()

"""Adam over stacked per-fold weights, with a step mask per fold.

Adam (Kingma & Ba 2014) is elementwise: each weight has its own first and second moment, so
one Adam over weights stacked with a leading fold axis is ten independent Adams, provided
that (1) the loss is a sum of per-fold losses (each fold's weights then receive only their
own fold's gradient), (2) anything that couples elements, here gradient clipping by norm, is
done per fold, and (3) each fold has its own step count. ``torch.optim.Adam`` cannot honour
(3) nor skip a fold: with per-fold early stopping a stopped fold must stay exactly where it
is, but ``torch.optim.Adam`` would keep moving it with its momentum and weight decay, and with
training sets of different sizes the folds take different numbers of steps per epoch. Hence
this small optimiser: the update of ``torch.optim.Adam`` (same formula and order of
operations, L2 coupled as its ``weight_decay``), applied only to the folds marked active, each
with its own bias correction. Tested against ``torch.optim.Adam``, one per fold.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["FoldAdam"]


class FoldAdam:
    """Adam for parameters whose first axis is the fold.

    Args:
        params: Tensors of shape ``(F, ...)`` (leaf tensors with ``.grad``).
        lr: Learning rate.
        betas: Adam's ``(beta1, beta2)``.
        eps: Adam's epsilon.
        weight_decay: L2 coefficient per parameter tensor (a number for all, or one per
            tensor): ``grad + wd * param`` before the moments, as ``torch.optim.Adam``.
        max_grad_norm: Clip each fold's gradient to this Euclidean norm over all its
            parameters (before weight decay); None: no clipping.
    """

    def __init__(self, params: Sequence[torch.Tensor], *, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float | Sequence[float] = 0.0,
                 max_grad_norm: float | None = None) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("FoldAdam: no parameters")
        self.n_folds = self.params[0].shape[0]
        if any(p.shape[0] != self.n_folds for p in self.params):
            raise ValueError("FoldAdam: every parameter needs the same leading fold axis")
        wd = weight_decay if isinstance(weight_decay, Sequence) else \
            [weight_decay] * len(self.params)
        if len(wd) != len(self.params):
            raise ValueError("FoldAdam: one weight_decay per parameter tensor, or one number")
        self.weight_decay = [float(w) for w in wd]
        self.lr, self.betas, self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = torch.zeros(self.n_folds, dtype=torch.int64)

    def zero_grad(self) -> None:
        """Drop every parameter's gradient."""
        for p in self.params:
            p.grad = None

    def grad_norms(self) -> torch.Tensor:
        """Euclidean norm of each fold's gradient over all parameters, ``(F,)``."""
        sq = None
        for p in self.params:
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            s = g.reshape(self.n_folds, -1).pow(2).sum(-1)
            sq = s if sq is None else sq + s
        return sq.sqrt()

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None) -> None:
        """One Adam step for the folds where ``active`` (bool ``(F,)``, default all) is True.

        Inactive folds keep their weights, moments and step count unchanged.
        """
        if active is None:
            active = torch.ones(self.n_folds, dtype=torch.bool)
        active = active.to(device="cpu", dtype=torch.bool)
        if not bool(active.any()):
            return
        self.steps += active.to(torch.int64)
        device = self.params[0].device
        dtype = self.params[0].dtype
        b1, b2 = self.betas
        t = self.steps.to(torch.float64).clamp_min(1.0)
        bc1 = (1.0 - b1 ** t).to(device=device, dtype=dtype)
        bc2_sqrt = (1.0 - b2 ** t).sqrt().to(device=device, dtype=dtype)
        act = active.to(device)
        scale = None
        if self.max_grad_norm is not None:
            norms = self.grad_norms()
            scale = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for p, m, v, wd in zip(self.params, self.exp_avg, self.exp_avg_sq, self.weight_decay,
                               strict=True):
            if p.grad is None:
                continue
            shape = (self.n_folds,) + (1,) * (p.ndim - 1)
            a = act.view(shape)
            g = p.grad
            if scale is not None:
                g = g * scale.view(shape)
            if wd:
                g = g.add(p, alpha=wd)
            m.copy_(torch.where(a, m * b1 + g * (1.0 - b1), m))
            v.copy_(torch.where(a, v * b2 + g * g * (1.0 - b2), v))
            denom = v.sqrt() / bc2_sqrt.view(shape) + self.eps
            update = (self.lr / bc1).view(shape) * m / denom
            p.sub_(torch.where(a, update, torch.zeros((), dtype=p.dtype, device=p.device)))

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Moments and step counts (CPU copies)."""
        return {"exp_avg": [m.detach().cpu().clone() for m in self.exp_avg],
                "exp_avg_sq": [v.detach().cpu().clone() for v in self.exp_avg_sq],
                "steps": self.steps.clone()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        for dst, src in zip(self.exp_avg + self.exp_avg_sq,
                            list(state["exp_avg"]) + list(state["exp_avg_sq"]), strict=True):
            dst.copy_(src)
        self.steps = state["steps"].clone().to(torch.int64)

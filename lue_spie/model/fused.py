"""The fused model: the whole LUE model as one autograd node with a hand-written backward pass.

When gradients are wanted with respect to the parameters only (calibration by gradient, SPIE
training), :func:`lue_spie.model.simulate` runs the model as one
:class:`torch.autograd.Function` (:class:`_FusedLUE`) whose backward pass is written out:
GPP is a product of factors, so ``d GPP / d theta = GPP * d log f / d theta`` for the factor
f that theta enters, and each parameter's gradient is one sum over days. No graph of
elementwise operations is recorded, and only the arrays the backward pass needs are kept. The
composable implementation (:mod:`lue_spie.model.lue`) is kept for gradients with respect to
the forcing, for higher-order gradients and for the sequential lag filter; the tests check
the two against each other and against finite differences (gradcheck).

Both passes run block by block over the leading batch axis (:mod:`lue_spie.model.scratch`),
with the lag filters applied once for the whole batch first (their cost is mostly per call).
:func:`_fused_forward` is also the no-gradient path of :func:`lue_spie.model.simulate`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch

from lue_spie.model.equations import _I, CO2_DENOMINATOR_MIN, OUTPUT_KEYS, _columns, _log_ca0
from lue_spie.model.forcing import PreparedForcing, _co2_guard_binds
from lue_spie.model.lag import _lag_alpha_grad, _lag_rows
from lue_spie.model.scratch import _SCRATCH, _blocks, _bshape, _leading_slice
from lue_spie.params import PARAMETERS

__all__: list[str] = []


#: Arrays the backward pass of :class:`_FusedLUE` reads (besides the outputs asked for).
_SAVED = frozenset({"GPP", "fVPD_CO2", "fW", "fL", "Tf", "Wf", "_vr", "_rest"})
#: Names :func:`_forward_block` can produce.
_BLOCK_KEYS = frozenset(OUTPUT_KEYS) | _SAVED


def _forward_block(
    pf: PreparedForcing,
    params: torch.Tensor,
    want: frozenset[str],
    dest: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The model on one block of rows (no autograd recording).

    Args:
        pf: Prepared forcing ``(*batch_f, D)``; params: ``(*batch_p, 13)``.
        want: Names to return (of :data:`_BLOCK_KEYS`; private ones start with "_").
        dest: Where to write wanted arrays (name -> tensor of the block's full shape). A
            wanted name without a destination is taken from the scratch cache: the caller
            must give it back. Unwanted intermediates are scratch, given back here.

    Returns:
        The wanted arrays. ``Tf``/``Wf`` without a destination are the prepared series
        themselves when no row of the block is lagged; ``APAR`` always is.
    """
    dest = dest or {}
    p = _columns(params)
    shape = (*_bshape(pf.shape[:-1], params.shape[:-1]), pf.shape[-1])
    temps: list[torch.Tensor] = []

    def new(name: str, size: tuple[int, ...] = shape) -> torch.Tensor:
        if name in dest:
            return dest[name]
        t = _SCRATCH.take(size, pf.T)
        if name not in want:
            temps.append(t)
        return t

    def lagged(x: torch.Tensor, name: str, alpha: torch.Tensor) -> torch.Tensor:
        if name in dest:  # the caller wants storage of its own (lagged somewhere)
            return _lag_rows(x, alpha, out=dest[name])
        if not bool((alpha != 0).any()):
            return x
        size = (*_bshape(x.shape[:-1], alpha.shape), x.shape[-1])
        return _lag_rows(x, alpha, out=new(name, size))

    Tf = lagged(pf.T, "Tf", params[..., _I["alpha_T"]])
    Wf = lagged(pf.W, "Wf", params[..., _I["alpha_W"]])
    # fT = sech((Tf - Topt)/kT): 2 e^-|z| / (1 + e^-2|z|) is 1 / cosh(z).
    fT = new("fT")
    torch.sub(Tf, p["Topt"], out=fT).div_(p["kT"]).cosh_().reciprocal_()
    # VPD part exp(kappa r VPD), r = (Ca0/ca)^Ckappa = exp(Ckappa (log(Ca0/CA_REF) + log_ca)).
    vr = new("_vr")
    # (An out-of-place addcmul with a broadcast first operand measured slower than mul and
    # add_ on the CPU, see benchmarks/RESULTS.md: hence the two operations.)
    torch.mul(pf.log_ca, p["Ckappa"], out=vr).add_(p["Ckappa"] * _log_ca0(p["Ca0"]))
    vr.exp_().mul_(pf.VPD)
    fV = new("fVPD_VPD")
    torch.mul(vr, p["kappa"], out=fV).exp_()
    # CO2 part 1 + (ca - Ca0) / max(ca - Ca0 + Cm, CO2_DENOMINATOR_MIN).
    fC = new("fVPD_CO2")
    torch.sub(pf.CO2, p["Ca0"], out=fC)
    den = torch.add(fC, p["Cm"], out=new("_den"))
    if _co2_guard_binds(pf, p):
        den.clamp_min_(CO2_DENOMINATOR_MIN)
    fC.div_(den).add_(1.0)
    # fW = 1 / (1 + exp(kW (Wf - WI))) = sigmoid(-kW (Wf - WI)).
    fW = new("fW")
    torch.mul(Wf, -p["kW"], out=fW).add_(p["kW"] * p["WI"]).sigmoid_()
    fL = new("fL")
    torch.mul(pf.APAR, p["gamma"], out=fL).add_(1.0).reciprocal_()
    fCI = new("fCI")
    torch.mul(pf.log_CI, p["mu"], out=fCI).exp_()
    # GPP = (APAR fT fV fW fL fCI, kept for backward as "_rest") * fC * eps_max.
    rest = new("_rest")
    torch.mul(fT, pf.APAR, out=rest).mul_(fV).mul_(fW).mul_(fL).mul_(fCI)
    gpp = new("GPP")
    torch.mul(rest, fC, out=gpp).mul_(p["eps_max"])
    out = {"GPP": gpp, "fT": fT, "fVPD_VPD": fV, "fVPD_CO2": fC, "fW": fW, "fL": fL,
           "fCI": fCI, "Tf": Tf, "Wf": Wf, "APAR": pf.APAR, "_vr": vr, "_rest": rest}
    if "fVPD" in want:
        out["fVPD"] = torch.mul(fV, fC, out=new("fVPD"))
    _SCRATCH.give(*temps)
    return {k: out[k] for k in want}


def _fused_forward(
    pf: PreparedForcing, params: torch.Tensor, want: frozenset[str]
) -> dict[str, torch.Tensor]:
    """The wanted arrays (of :data:`_BLOCK_KEYS`) for the whole batch, block by block.

    ``Tf``/``Wf`` are the prepared series themselves when no row is lagged, and ``APAR``
    always is; every other array is new, of the full shape ``broadcast(batch_f, batch_p) +
    (D,)``.
    """
    batch = _bshape(pf.shape[:-1], params.shape[:-1])
    shape = (*batch, pf.shape[-1])
    full: dict[str, torch.Tensor] = {}
    for name in want - {"APAR"}:
        if name in ("Tf", "Wf"):
            alpha = params[..., _I["alpha_T" if name == "Tf" else "alpha_W"]]
            if not bool((alpha != 0).any()):
                continue
        full[name] = pf.T.new_empty(shape)
    blocks = _blocks(shape, pf.T)
    if len(blocks) == 1:
        return _forward_block(pf, params, want, full)
    # The lag filters run once for the whole batch (their cost is mostly per call); the blocks
    # then see the filtered drivers and zero lags.
    filtered, temps = {}, []
    for name, key in (("Tf", "T"), ("Wf", "W")):
        alpha = params[..., _I["alpha_T" if name == "Tf" else "alpha_W"]]
        if not bool((alpha != 0).any()):
            continue
        out = full.get(name)
        if out is None:
            out = _SCRATCH.take(shape, pf.T)
            temps.append(out)
        filtered[key] = _lag_rows(getattr(pf, key), alpha, out=out)
    if filtered:
        pf = dataclasses.replace(pf, **filtered)
        params = params.clone()
        params[..., [_I["alpha_T"], _I["alpha_W"]]] = 0.0
    n_lead = batch[0]
    for rows in blocks:
        _forward_block(
            pf.apply(lambda v, r=rows: _leading_slice(v, r, n_lead, len(batch))),
            _leading_slice(params, rows, n_lead, len(batch)), want - {"Tf", "Wf"},
            {k: v[rows] for k, v in full.items() if k not in ("Tf", "Wf")})
    _SCRATCH.give(*temps)
    out = dict(full)
    for name, series in (("Tf", pf.T), ("Wf", pf.W), ("APAR", pf.APAR)):
        if name in want and name not in full:
            out[name] = series
    return out


class _FusedLUE(torch.autograd.Function):
    """The whole model as one autograd node with a hand-written backward pass.

    Differentiable with respect to the parameters only (the forcing is data here). For an
    upstream gradient ``g_X`` of each output X, the log-derivative weight of a factor f is
    ``w_f = g_GPP GPP + g_f f (+ g_fVPD fVPD for the VPD factor)``, and the gradient of a
    parameter theta that enters f is ``sum_days w_f d log f / d theta``:

        Topt:    tanh(z) / kT                  kT:     tanh(z) z / kT        (z = (Tf-Topt)/kT)
        kappa:   r VPD                         Ckappa: kappa r VPD log(Ca0/ca)
        Ca0:     kappa r VPD Ckappa / Ca0  (+ the CO2 part, below)
        kW:      -(1 - fW) (Wf - WI)           WI:     kW (1 - fW)
        gamma:   -APAR fL                      mu:     log CI
        eps_max: d GPP / d eps_max = GPP / eps_max, taken as the product without eps_max
        CO2 part (not through its log: it can be 0): with ``den = ca - Ca0 + Cm`` and u = 1
                 where the guard does not bind (else 0), d fC / d Ca0 = -1/den + u (ca -
                 Ca0)/den^2 and d fC / d Cm = -u (ca - Ca0)/den^2
        alpha_T, alpha_W: the lag filter's adjoint (:func:`_lag_alpha_grad`) of
                 h = w_f d log f / d Tf (= -tanh(z)/kT for fT, -kW (1 - fW) for fW) + g_Tf.

    Each parameter's gradient is a sum over days; the only recursion is the adjoint of each
    lag filter. Both passes run block by block over the leading batch axis (blocks sized
    by :data:`BLOCK_BYTES`). Second derivatives are not implemented (a clear error
    under ``create_graph=True``): use ``simulate(..., method="composable")`` for them.
    """

    @staticmethod
    def forward(ctx, params: torch.Tensor, pf: PreparedForcing,  # noqa: D102
                outputs: tuple[str, ...]):
        want = frozenset(outputs) | _SAVED
        if "fVPD" in want:  # its gradient needs the VPD factor
            want |= {"fVPD_VPD"}
        out = _fused_forward(pf, params.detach(), want)
        # Outputs must be tensors of this call: Tf/Wf/APAR may be the prepared series. An
        # unfiltered driver is given the batch's shape (its gradient with respect to the lag
        # is not 0 at alpha = 0, and differs between rows that share the forcing).
        series = {id(pf.T), id(pf.W), id(pf.APAR)}
        shape = out["GPP"].shape
        results = [(out[k].expand(shape).clone() if k != "APAR" else out[k].clone())
                   if id(out[k]) in series else out[k] for k in outputs]
        if "APAR" in outputs:
            ctx.mark_non_differentiable(results[outputs.index("APAR")])
        ctx.set_materialize_grads(False)
        ctx.pf = pf
        ctx.outputs = outputs
        ctx.names = tuple(sorted(k for k, v in out.items() if id(v) not in series))
        ctx.save_for_backward(params, *(out[k] for k in ctx.names))
        return tuple(results)

    @staticmethod
    def backward(ctx, *grads_out):  # noqa: D102
        if torch.is_grad_enabled():
            raise RuntimeError("simulate: the fused model has first derivatives only; for "
                               "second derivatives (create_graph=True) call simulate(..., "
                               "method='composable')")
        params, *saved = ctx.saved_tensors
        pf: PreparedForcing = ctx.pf
        s = dict(zip(ctx.names, saved, strict=True))
        g = {k: v for k, v in zip(ctx.outputs, grads_out, strict=True) if v is not None}
        s.setdefault("Tf", pf.T)
        s.setdefault("Wf", pf.W)
        batch = s["GPP"].shape[:-1]
        blocks = _blocks(s["GPP"].shape, s["GPP"])
        if len(blocks) == 1:
            grad = _backward_block(pf, params, s, g)
        else:
            n_lead, nd = batch[0], len(batch)
            grad = torch.cat([
                _backward_block(
                    pf.apply(lambda v, r=rows: _leading_slice(v, r, n_lead, nd)),
                    _leading_slice(params, rows, n_lead, nd),
                    {k: _leading_slice(v, rows, n_lead, nd) for k, v in s.items()},
                    {k: _leading_slice(v, rows, n_lead, nd) for k, v in g.items()})
                for rows in blocks], dim=0)
        return grad.sum_to_size(params.shape), None, None


def _row(scale: torch.Tensor | float) -> torch.Tensor | float:
    """A ``(*batch, 1)`` column as a ``(*batch)`` row factor (numbers unchanged)."""
    return scale.squeeze(-1) if isinstance(scale, torch.Tensor) else scale


def _backward_block(pf: PreparedForcing, params: torch.Tensor, s: dict[str, torch.Tensor],
                    g: dict[str, torch.Tensor]) -> torch.Tensor:
    """Gradient ``(*batch, 13)`` with respect to ``params`` on one block (see :class:`_FusedLUE`).

    Args:
        pf, params: The block's prepared forcing and parameters.
        s: The forward arrays (:data:`_SAVED` and the outputs), ``Tf``/``Wf`` included.
        g: Upstream gradients of the outputs that received one.
    """
    p = _columns(params)
    gpp = s["GPP"]
    shape = gpp.shape
    batch = shape[:-1]
    temps: list[torch.Tensor] = []

    def tmp() -> torch.Tensor:
        t = _SCRATCH.take(shape, gpp)
        temps.append(t)
        return t

    def col(name: str) -> torch.Tensor:
        return p[name].squeeze(-1)

    grads = dict.fromkeys(PARAMETERS, gpp.new_zeros(()))
    eps = p["eps_max"]
    g_gpp = g.get("GPP")
    # base = g_GPP GPP is used as eps_max * base0 (base0 = g_GPP GPP / eps_max): the factor
    # eps_max is applied to the sums over days instead of to every day (two passes fewer).
    t = base0 = None
    if g_gpp is not None:
        t = torch.mul(g_gpp, s["_rest"], out=tmp())  # g_GPP GPP / (fC eps_max)
        base0 = torch.mul(t, s["fVPD_CO2"], out=tmp())
        grads["eps_max"] = base0.sum(-1)

    def weight(*names: str) -> tuple[torch.Tensor | None, torch.Tensor | float]:
        """``(w, scale)`` with ``scale * w = base + sum_k g_k f_k`` over the outputs k (of
        ``names``) that got a gradient."""
        extra = [(g[k], s[k]) for k in names if k in g]
        if not extra:
            return base0, eps
        w = tmp()
        w.zero_() if base0 is None else torch.mul(base0, eps, out=w)
        for gk, f in extra:
            w.addcmul_(gk, f)
        return w, 1.0

    Tf, Wf = s["Tf"], s["Wf"]
    # The CO2 part (derivative of fC itself, not of its log: fC can be 0):
    # dL/dfC = eps t + g_fVPD_CO2 + g_fVPD fV.
    d_fC, scale = t, eps
    if "fVPD_CO2" in g or "fVPD" in g:
        d_fC, scale = tmp(), 1.0
        d_fC.zero_() if t is None else torch.mul(t, eps, out=d_fC)
        if "fVPD_CO2" in g:
            d_fC.add_(g["fVPD_CO2"])
        if "fVPD" in g:
            d_fC.addcmul_(g["fVPD"], s["fVPD_VPD"])
    if d_fC is not None:
        dca = torch.sub(pf.CO2, p["Ca0"], out=tmp())
        den = torch.add(dca, p["Cm"], out=tmp())
        free = None
        if _co2_guard_binds(pf, p):
            free = den >= CO2_DENOMINATOR_MIN
            den.clamp_min_(CO2_DENOMINATOR_MIN)
        v = d_fC.div_(den)
        sum_v = v.sum(-1)
        u = v.div_(den)
        if free is not None:
            u.mul_(free)
        sum_u_dca = u.mul_(dca).sum(-1)
        grads["Ca0"] = (sum_u_dca - sum_v) * _row(scale)
        grads["Cm"] = -sum_u_dca * _row(scale)
    # fT: Topt, kT and the temperature lag.
    w, scale = weight("fT")
    h = g.get("Tf")
    if w is not None:
        z = torch.sub(Tf, p["Topt"], out=tmp()).div_(p["kT"])
        q = torch.mul(z, 2.0, out=tmp()).sigmoid_()
        q = torch.addcmul(w, w, q, value=-2.0, out=q)  # -w tanh(z), tanh = 2 sig(2z) - 1
        by_kT = _row(scale) / col("kT")
        grads["Topt"] = -q.sum(-1) * by_kT
        grads["kT"] = -z.mul_(q).sum(-1) * by_kT
        q.mul_(by_kT.unsqueeze(-1))  # scale w d log fT / d Tf
        h = q if h is None else q.add_(h)
    if h is not None:
        grads["alpha_T"] = _lag_alpha_grad(h.expand(shape), pf.T, Tf, params[..., _I["alpha_T"]])
    # VPD part: kappa, Ckappa, Ca0.
    w, scale = weight("fVPD_VPD", "fVPD")
    if w is not None:
        q = torch.mul(w, s["_vr"], out=tmp())
        sum_q = q.sum(-1) * _row(scale)
        sum_q_log = q.mul_(pf.log_ca).sum(-1) * _row(scale)
        kappa = col("kappa")
        grads["kappa"] = sum_q
        grads["Ckappa"] = kappa * (_log_ca0(p["Ca0"]).squeeze(-1) * sum_q + sum_q_log)
        grads["Ca0"] = grads["Ca0"] + kappa * col("Ckappa") / col("Ca0") * sum_q
    # fW: kW, WI and the soil-moisture lag.
    w, scale = weight("fW")
    h = g.get("Wf")
    if w is not None:
        q = torch.addcmul(w, w, s["fW"], value=-1.0, out=tmp())  # w (1 - fW)
        grads["WI"] = q.sum(-1) * (col("kW") * _row(scale))
        dw = torch.sub(Wf, p["WI"], out=tmp())
        grads["kW"] = -dw.mul_(q).sum(-1) * _row(scale)
        q.mul_((-col("kW") * _row(scale)).unsqueeze(-1))  # scale w d log fW / d Wf
        h = q if h is None else q.add_(h)
    if h is not None:
        grads["alpha_W"] = _lag_alpha_grad(h.expand(shape), pf.W, Wf, params[..., _I["alpha_W"]])
    # fL: gamma.
    w, scale = weight("fL")
    if w is not None:
        grads["gamma"] = -torch.mul(w, s["fL"], out=tmp()).mul_(pf.APAR).sum(-1) * _row(scale)
    # fCI: mu.
    w, scale = weight("fCI")
    if w is not None:
        grads["mu"] = torch.mul(w, pf.log_CI, out=tmp()).sum(-1) * _row(scale)
    _SCRATCH.give(*temps)
    return torch.stack([grads[name].expand(batch) for name in PARAMETERS], dim=-1)

"""Slow references written straight from the formulas, in matrix form, for MLPs.

An MLP here is a fixture ``SpecNet`` made of Linear, BatchNorm and ReLU layers (any order the
strategies draw). Everything is numpy float64 and per sample; no autograd, no hooks. The LRP
references write the contribution matrix Z_ij (input i -> unit j) of each rule explicitly and
distribute R_j in proportion to it:  R_i = sum_j Z_ij / z_j R_j  (0/0 := 0).

These functions exist to be compared with the engine (tests/properties/test_rules_reference.py);
they are not meant to be fast.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import UnsupportedModelError


# -- the network as a list of operations -------------------------------------------------
def operations(net: nn.Module) -> list[tuple]:
    """("linear", W, b) / ("bn", mean, var, eps, gamma, beta) / ("relu",) in forward order."""
    ops: list[tuple] = []
    for m in net._modules.values():  # children() would drop a reused ReLU
        if isinstance(m, nn.Linear):
            b = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(m.out_features)
            ops.append(("linear", m.weight.detach().double().numpy(), b))
        elif isinstance(m, nn.BatchNorm1d):
            ops.append(("bn", m.running_mean.double().numpy(), m.running_var.double().numpy(), m.eps, m.weight.detach().double().numpy(), m.bias.detach().double().numpy()))
        elif isinstance(m, nn.ReLU):
            ops.append(("relu",))
        else:
            raise UnsupportedModelError(f"the MLP reference handles Linear, BatchNorm1d and ReLU, not {type(m).__name__}")
    return ops


def _bn(op: tuple, z: np.ndarray) -> np.ndarray:
    _, mean, var, eps, gamma, beta = op
    return (z - mean) / np.sqrt(var + eps) * gamma + beta


def folded(ops: Sequence[tuple]) -> list[tuple]:
    """Linear layers with a following BatchNorm folded in (W' = diag(s) W, b' = (b - mean) s + beta)."""
    out: list[tuple] = []
    for op in ops:
        if op[0] == "bn":
            _, w, b = out.pop()
            _, mean, var, eps, gamma, beta = op
            s = gamma / np.sqrt(var + eps)
            out.append(("linear", w * s[:, None], (b - mean) * s + beta))
        else:
            out.append(op)
    return out


def forward(ops: Sequence[tuple], x: np.ndarray) -> list[np.ndarray]:
    """Input of every operation, then the output (len(ops) + 1 arrays)."""
    vals = [x]
    for op in ops:
        v = vals[-1]
        if op[0] == "linear":
            vals.append(op[1] @ v + op[2])
        elif op[0] == "bn":
            vals.append(_bn(op, v))
        else:
            vals.append(np.maximum(v, 0.0))
    return vals


# -- modified gradients --------------------------------------------------------------------
ReluRule = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (relu output a, signal g) -> signal


def gradient_rule(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    return (a > 0) * g


def gbp_rule(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    return (a > 0) * (g > 0) * g


def deconvnet_rule(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    return (g > 0) * g


def rectgrad_rule(q: float = 98.0) -> ReluRule:
    def rule(a: np.ndarray, g: np.ndarray) -> np.ndarray:
        s = a * g
        return (s > np.percentile(s, q)) * g

    return rule


def modified_gradient(net: nn.Module, x: Tensor, target: int, relu_rule: ReluRule) -> np.ndarray:
    """d F_t / d x with every ReLU's backward replaced by `relu_rule` (BatchNorm unfolded)."""
    ops = operations(net)
    out = []
    for xs in x.detach().double().numpy().reshape(x.shape[0], -1):
        vals = forward(ops, xs)
        g = np.zeros_like(vals[-1])
        g[target] = 1.0
        for k in range(len(ops) - 1, -1, -1):
            op = ops[k]
            if op[0] == "linear":
                g = op[1].T @ g
            elif op[0] == "bn":
                g = g / np.sqrt(op[2] + op[3]) * op[4]
            else:
                g = relu_rule(vals[k + 1], g)
        out.append(g)
    return np.stack(out)


# -- LRP -------------------------------------------------------------------------------------
def _pos(v: np.ndarray) -> np.ndarray:
    return np.maximum(v, 0.0)


def _neg(v: np.ndarray) -> np.ndarray:
    return np.minimum(v, 0.0)


def _distribute(Z: np.ndarray, z: np.ndarray, R: np.ndarray) -> np.ndarray:
    """R_i = sum_j Z[j, i] / z_j R_j with 0/0 := 0 (Z is (J, I))."""
    ratio = np.divide(R, z, out=np.zeros_like(R), where=z != 0)
    return Z.T @ ratio


def _eps(z: np.ndarray, eps: float) -> np.ndarray:
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def lrp_zero(a, W, b, R, *, bias=True):
    Z = W * a[None, :]
    return _distribute(Z, Z.sum(1) + (b if bias else 0.0), R)


def lrp_epsilon(a, W, b, R, *, epsilon=1e-6, bias=True):
    Z = W * a[None, :]
    return _distribute(Z, _eps(Z.sum(1) + (b if bias else 0.0), epsilon), R)


def lrp_gamma(a, W, b, R, *, gamma=0.25, bias=True):
    Z = (W + gamma * _pos(W)) * a[None, :]
    return _distribute(Z, Z.sum(1) + ((b + gamma * _pos(b)) if bias else 0.0), R)


def lrp_zplus(a, W, b, R, *, bias=False, signed_inputs=False):
    if signed_inputs:
        Z = _pos(W) * _pos(a)[None, :] + _neg(W) * _neg(a)[None, :]
    else:
        Z = _pos(W) * a[None, :]
    return _distribute(Z, Z.sum(1) + (_pos(b) if bias else 0.0), R)


def lrp_alpha_beta(a, W, b, R, *, alpha=2.0, beta=1.0, bias=False):
    Zp = _pos(W) * _pos(a)[None, :] + _neg(W) * _neg(a)[None, :]
    Zn = _neg(W) * _pos(a)[None, :] + _pos(W) * _neg(a)[None, :]
    zp = Zp.sum(1) + (_pos(b) if bias else 0.0)
    zn = Zn.sum(1) + (_neg(b) if bias else 0.0)
    return alpha * _distribute(Zp, zp, R) - beta * _distribute(Zn, zn, R)


def lrp_zb(a, W, b, R, *, low=-3.0, high=3.0):
    lo = np.broadcast_to(np.asarray(low, dtype=float), a.shape)
    hi = np.broadcast_to(np.asarray(high, dtype=float), a.shape)
    Z = W * a[None, :] - _pos(W) * lo[None, :] - _neg(W) * hi[None, :]
    return _distribute(Z, Z.sum(1), R)


def lrp_flat(a, W, b, R):
    Z = np.ones_like(W)
    return _distribute(Z, Z.sum(1), R)


def lrp_wsquare(a, W, b, R):
    Z = W * W
    return _distribute(Z, Z.sum(1), R)


#: the rule kinds of ``composites.TABLE`` as reference functions of (a, W, b, R, options)
RULES = {
    "zero": lambda a, W, b, R, o: lrp_zero(a, W, b, R, bias=o["bias"]),
    "epsilon": lambda a, W, b, R, o: lrp_epsilon(a, W, b, R, epsilon=o["epsilon"], bias=o["bias"]),
    "gamma": lambda a, W, b, R, o: lrp_gamma(a, W, b, R, gamma=o["gamma"], bias=o["bias"]),
    "zplus": lambda a, W, b, R, o: lrp_zplus(a, W, b, R, bias=o["zplus_bias"]),
    "zplus-signed": lambda a, W, b, R, o: lrp_zplus(a, W, b, R, bias=o["zplus_bias"], signed_inputs=True),
    "alpha-beta": lambda a, W, b, R, o: lrp_alpha_beta(a, W, b, R, alpha=o["alpha"], beta=o["beta"]),
    "alpha2-beta1": lambda a, W, b, R, o: lrp_alpha_beta(a, W, b, R, alpha=2.0, beta=1.0),
    "zb": lambda a, W, b, R, o: lrp_zb(a, W, b, R, low=o["low"], high=o["high"]),
    "flat": lambda a, W, b, R, o: lrp_flat(a, W, b, R),
    "w-square": lambda a, W, b, R, o: lrp_wsquare(a, W, b, R),
}


def lrp(net: nn.Module, x: Tensor, target: int, composite: str, **options) -> np.ndarray:
    """Input relevance of the MLP for the named composite; R at the output = F_t(x) one-hot."""
    from .composites import DEFAULTS, TABLE

    o = {**DEFAULTS, **options}
    dense, _conv, first = TABLE[composite]
    ops = folded(operations(net))
    out = []
    for xs in x.detach().double().numpy().reshape(x.shape[0], -1):
        vals = forward(ops, xs)
        R = np.zeros_like(vals[-1])
        R[target] = vals[-1][target]
        for k in range(len(ops) - 1, -1, -1):
            op = ops[k]
            if op[0] == "linear":
                kind = first if (first and k == 0) else dense
                R = RULES[kind](vals[k], op[1], op[2], R, o)
            # ReLU: relevance passes unchanged
        out.append(R)
    return np.stack(out)


# -- DeepLift --------------------------------------------------------------------------------
def deeplift(net: nn.Module, x: Tensor, x0: Tensor, target: int) -> np.ndarray:
    """(x - x0) * m with m the chain of W^T (linear) and dy/dz (Rescale; relu'(z) if dz = 0)."""
    ops = operations(net)
    out = []
    xs_all = x.detach().double().numpy().reshape(x.shape[0], -1)
    x0_all = x0.detach().double().numpy().reshape(x0.shape[0], -1)
    for xs, x0s in zip(xs_all, x0_all):
        v, v0 = forward(ops, xs), forward(ops, x0s)
        m = np.zeros_like(v[-1])
        m[target] = 1.0
        for k in range(len(ops) - 1, -1, -1):
            op = ops[k]
            if op[0] == "linear":
                m = op[1].T @ m
            elif op[0] == "bn":
                m = m / np.sqrt(op[2] + op[3]) * op[4]
            else:
                dz, dy = v[k] - v0[k], v[k + 1] - v0[k + 1]
                slope = np.where(dz != 0, dy / np.where(dz != 0, dz, 1.0), (v[k] > 0).astype(float))
                m = m * slope
        out.append((xs - x0s) * m)
    return np.stack(out)

"""Slow references written straight from the formulas, in matrix form, for fixture networks.

A fixture ``SpecNet`` (Linear, Conv2d, BatchNorm, ReLU, MaxPool2d, AvgPool2d, Flatten, Residual;
``ops``) becomes a list of operations on flat numpy float64 vectors, one sample at a time:
every Linear/Conv2d is a dense matrix M (the convolution applied to the unit basis, so padding
positions simply do not exist) with a bias vector and the 0/1 matrix of its connections (for the
flat rule); BatchNorm is a diagonal affine map; average pooling a dense matrix; max pooling sends
each window's signal to its winners under a named tie convention (``max_pool_ties``: entries
within ``TIE_RTOL`` of the maximum tie; "first" in row-major order, or "split" equally), the
engine's convention (``rules.pooling``), so that round-off in a tie cannot pick another winner
here than there. No autograd, no hooks.

The LRP references write the contribution matrix Z_ij (input i -> unit j) of each rule explicitly
and distribute R_j in proportion to it: R_i = sum_j Z_ji / z_j R_j (0/0 := 0). ``dtd`` derives
the DTD rules a second way, from first-order Taylor expansions at root points (Montavon et al.
2017): the rules z+, zB and w-square are the search directions v_i = a_i 1[w_ij > 0],
(a_i - l_i or a_i - h_i) and w_ij. These functions exist to be compared with the engine
(tests/properties/test_rules_reference.py); they are not meant to be fast.

``lrp_condition`` gives, per sample, the condition number of the LRP computation: the largest
sum_i |Z_ji| / |z_j| over its denominators (and over the pre-activations whose sign selects a
group). Near 1/eps a denominator is round-off of a cancellation (a BatchNorm folded into a layer
makes its weights inexact), so R_j / z_j amplifies the last bits in which two correct
implementations differ: the relative difference to expect is about n eps times that number
(Higham 2002, ch. 3: the forward error of a sum is bounded by n u sum |terms|).
"""

from __future__ import annotations

import contextvars
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from workbench.core.errors import UnsupportedModelError
from workbench.rules.pooling import tie_tolerance

#: window entries within TIE_RTOL * max |window| of the maximum tie (the engine's convention, float64)
TIE_RTOL = tie_tolerance(torch.float64)


# -- the network as a list of operations -------------------------------------------------
def _dense(module: nn.Module, in_shape: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M, bias vector, connection mask) of a Linear/Conv2d acting on flat inputs of `in_shape`."""
    n = int(np.prod(in_shape))
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
    with torch.no_grad():
        w = module.weight.detach().double()
        if isinstance(module, nn.Linear):
            out = basis.reshape(n, -1) @ w.T
            ones = basis.reshape(n, -1) @ torch.ones_like(w).T
            b = module.bias.detach().double() if module.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
            return out.T.numpy(), b.numpy(), (ones.T.numpy() != 0).astype(float)
        conv = lambda weight: torch.nn.functional.conv2d(basis, weight, None, module.stride, module.padding, module.dilation, module.groups)
        out, ones = conv(w), conv(torch.ones_like(w))
        b = module.bias.detach().double() if module.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        bias = b.view(-1, 1, 1).expand(out.shape[1:]).reshape(-1)
    return out.reshape(n, -1).T.numpy(), bias.numpy(), (ones.reshape(n, -1).T.numpy() != 0).astype(float)


def _pool_windows(in_shape: tuple, k: int, s: int) -> list[list[int]]:
    c, h, w = in_shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    idx = np.arange(c * h * w).reshape(c, h, w)
    return [list(idx[ch, i * s:i * s + k, j * s:j * s + k].reshape(-1)) for ch in range(c) for i in range(ho) for j in range(wo)]


def ops(net: nn.Module, in_shape: Optional[tuple] = None) -> list[tuple]:
    """Operations in forward order: ("affine", kind, M, b, mask) with kind "dense"/"conv"/"pool",
    ("bn", scale, shift), ("relu",), ("max", windows), ("residual", body_ops)."""
    from workbench.nets.spec import ResidualBlock, SpecNet

    shape = tuple(in_shape if in_shape is not None else net.spec.input_shape)
    out: list[tuple] = []
    modules = net._modules.values() if isinstance(net, (SpecNet, nn.Sequential)) else [net]  # children() drops a reused ReLU
    for m in modules:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            M, b, mask = _dense(m, shape)
            out.append(("affine", "dense" if isinstance(m, nn.Linear) else "conv", M, b, mask))
            with torch.no_grad():
                shape = tuple(m(torch.zeros(1, *shape, dtype=m.weight.dtype)).shape[1:])
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            scale = (m.weight.detach().double() / torch.sqrt(m.running_var.double() + m.eps)).numpy()
            shift = (m.bias.detach().double().numpy() - m.running_mean.double().numpy() * scale)
            rep = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            out.append(("bn", np.repeat(scale, rep), np.repeat(shift, rep)))
        elif isinstance(m, nn.ReLU):
            out.append(("relu",))
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            k = int(m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0])
            s = int(m.stride if isinstance(m.stride, int) else m.stride[0])
            windows = _pool_windows(shape, k, s)
            if isinstance(m, nn.MaxPool2d):
                out.append(("max", windows))
            else:
                M = np.zeros((len(windows), int(np.prod(shape))))
                for o, win in enumerate(windows):
                    M[o, win] = 1.0 / len(win)
                out.append(("affine", "pool", M, np.zeros(len(windows)), (M != 0).astype(float)))
            c, h, w = shape
            shape = (c, (h - k) // s + 1, (w - k) // s + 1)
        elif isinstance(m, nn.Flatten):
            shape = (int(np.prod(shape)),)
        elif isinstance(m, ResidualBlock):
            out.append(("residual", ops(m.body, shape)))
        else:
            raise UnsupportedModelError(f"the reference handles Linear, Conv2d, BatchNorm, ReLU, pooling, Flatten and Residual, not {type(m).__name__}")
    return out


def folded(operations: Sequence[tuple]) -> list[tuple]:
    """A BatchNorm right after a Linear/Conv folded into it (M' = diag(s) M, b' = s b + t), as the
    LRP composites' canonizer does; residual bodies likewise."""
    out: list[tuple] = []
    for op in operations:
        if op[0] == "bn" and out and out[-1][0] == "affine" and out[-1][1] != "pool":
            _, kind, M, b, mask = out.pop()
            out.append(("affine", kind, M * op[1][:, None], b * op[1] + op[2], mask))
        elif op[0] == "residual":
            out.append(("residual", folded(op[1])))
        else:
            out.append(op)
    return out


def _winners(windows: list, v: np.ndarray) -> np.ndarray:
    return np.array([win[int(np.argmax(v[win]))] for win in windows])  # a maximum (its value is the output)


def _shares(win: list, v: np.ndarray, ties: str) -> list[tuple[int, float]]:
    """(index, weight) of the window's winners under the tie convention: entries within
    tie_tolerance * max |v| of the maximum tie; "first" (row-major) takes all, "split" shares."""
    vals = np.asarray([v[i] for i in win])
    top, scale = vals.max(), np.abs(vals).max()
    tied = [i for i, val in zip(win, vals) if val >= top - TIE_RTOL * scale]
    if ties == "first":
        return [(tied[0], 1.0)]
    return [(i, 1.0 / len(tied)) for i in tied]


def _route(windows: list, v: np.ndarray, g: np.ndarray, ties: str) -> np.ndarray:
    """The max pool's backward under the tie convention: each window's signal to its winners."""
    out = np.zeros_like(v)
    for o, win in enumerate(windows):
        for i, w in _shares(win, v, ties):
            out[i] += w * g[o]
    return out


def forward(operations: Sequence[tuple], x: np.ndarray) -> list:
    """The input of every operation, then the output (residual: (input, body values))."""
    vals: list = [x]
    for op in operations:
        v = vals[-1]
        if op[0] == "affine":
            vals.append(op[2] @ v + op[3])
        elif op[0] == "bn":
            vals.append(op[1] * v + op[2])
        elif op[0] == "relu":
            vals.append(np.maximum(v, 0.0))
        elif op[0] == "max":
            vals.append(v[_winners(op[1], v)])  # the maximum itself (any tied winner has its value)
        else:
            body = forward(op[1], v)
            vals.append(v + body[-1])
            vals[-2] = (v, body)
    return vals


def _value(entry):
    return entry[0] if isinstance(entry, tuple) else entry


# -- modified gradients --------------------------------------------------------------------
ReluRule = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (pre-activation z, signal g) -> signal


def gradient_rule(z: np.ndarray, g: np.ndarray) -> np.ndarray:
    return (z > 0) * g


def gbp_rule(z: np.ndarray, g: np.ndarray, at_zero: bool = False) -> np.ndarray:
    return ((z >= 0) if at_zero else (z > 0)) * (g > 0) * g


def gbp_at_zero_rule(z: np.ndarray, g: np.ndarray) -> np.ndarray:
    return gbp_rule(z, g, at_zero=True)


def deconvnet_rule(z: np.ndarray, g: np.ndarray) -> np.ndarray:
    return (g > 0) * g


class AmbiguousThreshold(ArithmeticError):
    """A RectGrad score lies within round-off of its threshold but not exactly on it: the strict
    comparison a * g > tau is then decided by the order of floating-point sums, which differs
    between any two implementations (the reference's dense matrices and the engine's convolutions)."""


def rectgrad_rule(q: float = 98.0, *, tie_tolerance: float = 1e-9) -> ReluRule:
    def rule(z: np.ndarray, g: np.ndarray) -> np.ndarray:
        s = np.maximum(z, 0.0) * g
        tau = np.percentile(s, q)
        near = np.abs(s - tau) <= tie_tolerance * max(float(np.abs(s).max()), 1e-300)
        if np.any(near & ~((s == 0) & (tau == 0))):
            raise AmbiguousThreshold(f"RectGrad scores within round-off of the threshold {tau!r}")
        return (s > tau) * g

    return rule


def _backward(operations: Sequence[tuple], vals: list, g: np.ndarray, relu_rule: ReluRule, ties: str = "first") -> np.ndarray:
    for k in range(len(operations) - 1, -1, -1):
        op, v = operations[k], _value(vals[k])
        if op[0] == "affine":
            g = op[2].T @ g
        elif op[0] == "bn":
            g = op[1] * g
        elif op[0] == "relu":
            g = relu_rule(v, g)
        elif op[0] == "max":
            g = _route(op[1], v, g, ties)
        else:
            g = g + _backward(op[1], vals[k][1], g, relu_rule, ties)
    return g


def _samples(x: Tensor) -> np.ndarray:
    return x.detach().double().numpy().reshape(x.shape[0], -1)


def modified_gradient(net: nn.Module, x: Tensor, target: int, relu_rule: ReluRule, *, max_pool_ties: str = "first") -> np.ndarray:
    """d F_t / d x with every ReLU's backward replaced by `relu_rule` (BatchNorm unfolded)."""
    operations = ops(net)
    out = []
    for xs in _samples(x):
        vals = forward(operations, xs)
        g = np.zeros_like(vals[-1])
        g[target] = 1.0
        out.append(_backward(operations, vals, g, relu_rule, max_pool_ties))
    return np.stack(out).reshape(x.shape)


# -- LRP -------------------------------------------------------------------------------------
def _pos(v: np.ndarray) -> np.ndarray:
    return np.maximum(v, 0.0)


def _neg(v: np.ndarray) -> np.ndarray:
    return np.minimum(v, 0.0)


#: while ``lrp_condition`` runs: [largest condition number so far, exact arithmetic]
_CONDITION: contextvars.ContextVar = contextvars.ContextVar("lrp_condition", default=None)


def _record(z: np.ndarray, magnitude: np.ndarray) -> None:
    """Note sum |terms| / |z| of each denominator z (or sign-deciding pre-activation) for
    ``lrp_condition``. z = 0 from terms that do not all vanish is a cancellation: exact (0/0 := 0
    is the answer) when the arithmetic is exact, else of unknown sign and size (infinite)."""
    cond = _CONDITION.get()
    if cond is None:
        return
    z, magnitude = np.abs(np.asarray(z, dtype=float)), np.asarray(magnitude, dtype=float)
    nonzero = z > 0
    if nonzero.any():
        cond[0] = max(cond[0], float((magnitude[nonzero] / z[nonzero]).max()))
    if not cond[1] and bool(((~nonzero) & (magnitude > 0)).any()):
        cond[0] = float("inf")


def _distribute(Z: np.ndarray, z: np.ndarray, R: np.ndarray, stabilizer: float = 0.0) -> np.ndarray:
    """R_i = sum_j Z[j, i] / z_j R_j with 0/0 := 0 (Z is (J, I)); z_j + stabilizer sign(z_j) if given."""
    _record(z, np.abs(Z).sum(1) + np.abs(z - Z.sum(1)))  # z - sum Z: the bias term, if any
    if stabilizer:
        z = _eps(z, stabilizer)
    ratio = np.divide(R, z, out=np.zeros_like(R), where=z != 0)
    return Z.T @ ratio


def _eps(z: np.ndarray, eps: float) -> np.ndarray:
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def lrp_zero(a, W, b, R, *, bias=True, stabilizer=0.0, **_):
    Z = W * a[None, :]
    return _distribute(Z, Z.sum(1) + (b if bias else 0.0), R, stabilizer)


def lrp_epsilon(a, W, b, R, *, epsilon=1e-6, bias=True, **_):
    Z = W * a[None, :]
    z = Z.sum(1) + (b if bias else 0.0)
    _record(z, np.abs(Z).sum(1) + (np.abs(b) if bias else 0.0))  # sign(z) picks the stabilizer's sign
    return _distribute(Z, _eps(z, epsilon), R)


def lrp_gamma(a, W, b, R, *, gamma=0.25, bias=True, stabilizer=0.0, **_):
    Z = (W + gamma * _pos(W)) * a[None, :]
    return _distribute(Z, Z.sum(1) + ((b + gamma * _pos(b)) if bias else 0.0), R, stabilizer)


def lrp_generalized_gamma(a, W, b, R, *, gamma=0.25, bias=True, stabilizer=0.0, **_):
    """Units with z > 0: contributions x+ (W + g W+) + x- (W + g W-) (bias b + g b+); units with
    z < 0: x+ (W + g W-) + x- (W + g W+) (bias b + g b-); units with z = 0 pass nothing."""
    z = W @ a + b
    _record(z, np.abs(W) @ np.abs(a) + np.abs(b))  # its sign picks the group
    up, down = W + gamma * _pos(W), W + gamma * _neg(W)
    ap, an = _pos(a)[None, :], _neg(a)[None, :]
    Zp, Zn = up * ap + down * an, down * ap + up * an
    bp, bn = (b + gamma * _pos(b), b + gamma * _neg(b)) if bias else (0.0, 0.0)
    Rp, Rn = np.where(z > 0, R, 0.0), np.where(z < 0, R, 0.0)
    return _distribute(Zp, Zp.sum(1) + bp, Rp, stabilizer) + _distribute(Zn, Zn.sum(1) + bn, Rn, stabilizer)


def lrp_zplus(a, W, b, R, *, bias=False, signed_inputs=False, stabilizer=0.0, **_):
    if signed_inputs:
        Z = _pos(W) * _pos(a)[None, :] + _neg(W) * _neg(a)[None, :]
    else:
        Z = _pos(W) * a[None, :]
    return _distribute(Z, Z.sum(1) + (_pos(b) if bias else 0.0), R, stabilizer)


def lrp_alpha_beta(a, W, b, R, *, alpha=2.0, beta=1.0, bias=False, stabilizer=0.0, **_):
    Zp = _pos(W) * _pos(a)[None, :] + _neg(W) * _neg(a)[None, :]
    Zn = _neg(W) * _pos(a)[None, :] + _pos(W) * _neg(a)[None, :]
    zp = Zp.sum(1) + (_pos(b) if bias else 0.0)
    zn = Zn.sum(1) + (_neg(b) if bias else 0.0)
    return alpha * _distribute(Zp, zp, R, stabilizer) - beta * _distribute(Zn, zn, R, stabilizer)


def _box(value, like: np.ndarray, channels: Optional[int], side: str = "low") -> np.ndarray:
    if value is None:  # the default box [-B, B], B = max(3, max |x|)
        b = max(3.0, float(np.abs(like).max()))
        return np.full(like.shape, -b if side == "low" else b)
    v = np.asarray(value, dtype=float)
    if v.ndim == 1 and channels:  # per-channel bounds of an image
        v = np.repeat(v, like.size // channels)
    return np.broadcast_to(v, like.shape)


def lrp_zb(a, W, b, R, *, low=None, high=None, channels=None, stabilizer=0.0, **_):
    lo, hi = _box(low, a, channels, "low"), _box(high, a, channels, "high")
    terms = (W * a[None, :], _pos(W) * lo[None, :], _neg(W) * hi[None, :])
    Z = terms[0] - terms[1] - terms[2]
    # an input at a bound cancels its share to exactly 0 here, but not in an implementation that
    # sums the three products separately: the condition counts the products' sizes
    _record(Z.sum(1), sum(np.abs(t) for t in terms).sum(1))
    return _distribute(Z, Z.sum(1), R, stabilizer)


def lrp_flat(a, W, b, R, *, mask=None, stabilizer=0.0, **_):
    Z = mask if mask is not None else np.ones_like(W)
    return _distribute(Z, Z.sum(1), R, stabilizer)


def lrp_wsquare(a, W, b, R, *, stabilizer=0.0, **_):
    Z = W * W
    return _distribute(Z, Z.sum(1), R, stabilizer)


#: every LRP rule kind of the engine (``workbench.rules.rules.KINDS``) as a reference function of
#: (a, W, b, R, options), written from the formulas above; ``unpaired()`` lists kinds without one
RULES = {
    "zero": lambda a, W, b, R, o: lrp_zero(a, W, b, R, bias=o["bias"], stabilizer=o["stabilizer"]),
    "epsilon": lambda a, W, b, R, o: lrp_epsilon(a, W, b, R, epsilon=o["epsilon"], bias=o["bias"]),
    "gamma": lambda a, W, b, R, o: (lrp_generalized_gamma if o.get("generalized_gamma") else lrp_gamma)(a, W, b, R, gamma=o["gamma"], bias=o["bias"], stabilizer=o["stabilizer"]),
    "zplus": lambda a, W, b, R, o: lrp_zplus(a, W, b, R, bias=o["zplus_bias"], stabilizer=o["stabilizer"]),
    "zplus-signed": lambda a, W, b, R, o: lrp_zplus(a, W, b, R, bias=o["zplus_bias"], signed_inputs=True, stabilizer=o["stabilizer"]),
    "alpha-beta": lambda a, W, b, R, o: lrp_alpha_beta(a, W, b, R, alpha=o["alpha"], beta=o["beta"], stabilizer=o["stabilizer"]),
    "alpha2-beta1": lambda a, W, b, R, o: lrp_alpha_beta(a, W, b, R, alpha=2.0, beta=1.0, stabilizer=o["stabilizer"]),
    "zb": lambda a, W, b, R, o: lrp_zb(a, W, b, R, low=o["low"], high=o["high"], channels=o.get("channels"), stabilizer=o["stabilizer"]),
    "flat": lambda a, W, b, R, o: lrp_flat(a, W, b, R, mask=o.get("mask"), stabilizer=o["stabilizer"]),
    "w-square": lambda a, W, b, R, o: lrp_wsquare(a, W, b, R, stabilizer=o["stabilizer"]),
}


#: the composites as the papers define them (dense rule, conv rule, first-layer rule), written here
#: independently of the engine's ``composites.TABLE`` so that a wrong entry there is caught
#: (Montavon et al. 2019 for LRP-0/epsilon/gamma/alpha-beta/flat/w-square; Kohlbrenner et al. 2020
#: and Zennit's composites for the epsilon-plus family and the zB box; Montavon et al. 2017 for DTD)
COMPOSITES = {
    "zero": ("zero", "zero", None),
    "epsilon": ("epsilon", "epsilon", None),
    "gamma": ("gamma", "gamma", None),
    "zplus": ("zplus", "zplus", None),
    "alpha-beta": ("alpha-beta", "alpha-beta", None),
    "flat": ("flat", "flat", None),
    "w-square": ("w-square", "w-square", None),
    "epsilon-plus": ("epsilon", "zplus-signed", None),
    "epsilon-plus-flat": ("epsilon", "zplus-signed", "flat"),
    "epsilon-alpha2-beta1": ("epsilon", "alpha2-beta1", None),
    "epsilon-gamma-box": ("epsilon", "gamma", "zb"),
    "dtd-zb": ("zplus", "zplus", "zb"),
    "dtd-w2": ("zplus", "zplus", "w-square"),
}


def unpaired(kinds: Sequence[str], composites: Sequence[str] = ()) -> list[str]:
    """The engine's rule kinds and composites that have no reference here (each must have one)."""
    return [f"rule {k}" for k in kinds if k not in RULES] + [f"composite {c}" for c in composites if c not in COMPOSITES]


def _lrp_backward(operations: Sequence[tuple], vals: list, R: np.ndarray, rule_for: Callable, o: dict) -> np.ndarray:
    for k in range(len(operations) - 1, -1, -1):
        op, a = operations[k], _value(vals[k])
        if op[0] == "affine":
            R = RULES[rule_for(op)](a, op[2], op[3], R, {**o, "mask": op[4]})
        elif op[0] == "bn":  # an unfolded BatchNorm: LRP-0 on a diagonal map
            R = lrp_zero(a, np.diag(op[1]), op[2], R, bias=True, stabilizer=o["stabilizer"])
        elif op[0] == "max":  # the winner takes the relevance (tie convention o["max_pool_ties"])
            R = _route(op[1], a, R, o["max_pool_ties"])
        elif op[0] == "residual":  # Sum of (skip, body) with LRP-0, then the body
            body_vals = vals[k][1]
            both = np.stack([a, body_vals[-1]])
            z = both.sum(0)
            _record(z, np.abs(both).sum(0))
            z_st = _eps(z, o["stabilizer"]) if o["stabilizer"] else z
            share = np.divide(R, z_st, out=np.zeros_like(R), where=z_st != 0)
            R = both[0] * share + _lrp_backward(op[1], body_vals, both[1] * share, rule_for, o)
        # ReLU: relevance passes unchanged
    return R


#: the composite options and their defaults (those of ``workbench.rules.composites.DEFAULTS``)
DEFAULTS = dict(
    epsilon=1e-6, gamma=0.25, alpha=2.0, beta=1.0, low=None, high=None, stabilizer=0.0, bias=True, zplus_bias=False,
    generalized_gamma=False, max_pool_ties="first", monotone_pass=False,
)


def lrp(net: nn.Module, x: Tensor, target: int, composite: Union[str, tuple], **options) -> np.ndarray:
    """Input relevance for the composite (a name of ``COMPOSITES`` or a (dense, conv, first) triple
    of rule kinds); R at the output = F_t(x) at the target."""
    o = {**DEFAULTS, **options, "channels": x.shape[1] if x.dim() == 4 else None}
    dense, conv, first = COMPOSITES[composite] if isinstance(composite, str) else composite
    operations = folded(ops(net))
    first_op = _first_affine(operations)

    def rule_for(op: tuple) -> str:
        if first and op is first_op:
            return first
        return {"dense": dense, "conv": conv, "pool": "zero"}[op[1]]

    out = []
    for xs in _samples(x):
        vals = forward(operations, xs)
        R = np.zeros_like(vals[-1])
        R[target] = vals[-1][target]
        out.append(_lrp_backward(operations, vals, R, rule_for, o))
    return np.stack(out).reshape(x.shape)


def lrp_condition(net: nn.Module, x: Tensor, target: int, composite: str, **options) -> np.ndarray:
    """Per sample: the condition number of ``lrp`` (see the module docstring), 1 at least.

    The fixture networks hold dyadic weights and inputs, so without BatchNorm every forward
    quantity is exact and a denominator that cancels to 0 is exactly 0 in any implementation;
    with BatchNorm (1 / sqrt(var + eps) is not dyadic) such a zero counts as infinitely
    ill-conditioned."""
    exact = not any(op[0] == "bn" for op in _flat_ops(ops(net)))
    out = []
    for i in range(x.shape[0]):
        cond = [1.0, exact]
        token = _CONDITION.set(cond)
        try:
            lrp(net, x[i:i + 1], target, composite, **options)
        finally:
            _CONDITION.reset(token)
        out.append(cond[0])
    return np.asarray(out)


def _flat_ops(operations: Sequence[tuple]) -> Iterator[tuple]:
    for op in operations:
        yield op
        if op[0] == "residual":
            yield from _flat_ops(op[1])


def _first_affine(operations: Sequence[tuple]) -> Optional[tuple]:
    for op in operations:
        if op[0] == "affine" and op[1] != "pool":
            return op
        if op[0] == "residual":
            inner = _first_affine(op[1])
            if inner is not None:
                return inner
    return None


# -- DTD from root points ----------------------------------------------------------------------
def dtd_layer(a: np.ndarray, W: np.ndarray, b: np.ndarray, R: np.ndarray, direction: str, *, low=None, high=None, channels=None) -> tuple[np.ndarray, bool]:
    """Redistribute R_j over the inputs by Taylor-expanding R_j(a) = z_j(a) c_j (c_j = R_j / z_j)
    at the root point a~ = a - t v of z_j on the search direction v (z_j(a~) = 0):
    R_i = sum_j (a_i - a~_i) w_ij c_j. Directions: "z+" v_i = a_i 1[w_ij > 0]; "zB" v_i = a_i - l_i
    (w_ij > 0) or a_i - h_i (w_ij < 0); "w2" v_i = w_ij. Returns (R_in, every root point lies in
    the input domain: a~ >= 0 for z+, l <= a~ <= h for zB)."""
    out = np.zeros_like(a)
    in_domain = True
    lo = _box(low, a, channels, "low") if direction == "zB" else None
    hi = _box(high, a, channels, "high") if direction == "zB" else None
    for j in range(W.shape[0]):
        w = W[j]
        z = float(w @ a + b[j])
        if R[j] == 0 or z == 0:
            continue
        if direction == "z+":
            v = a * (w > 0)
        elif direction == "zB":
            v = np.where(w > 0, a - lo, np.where(w < 0, a - hi, 0.0))
        elif direction == "w2":
            v = w.copy()
        else:
            raise ValueError(f"unknown DTD direction {direction!r}")
        slope = float(w @ v)
        if slope == 0:
            continue
        root = a - (z / slope) * v
        if direction == "z+":
            in_domain &= bool((root >= -1e-12).all())
        elif direction == "zB":
            in_domain &= bool(((root >= lo - 1e-12) & (root <= hi + 1e-12)).all())
        out += (a - root) * w * (R[j] / z)
    return out, in_domain


def dtd(net: nn.Module, x: Tensor, target: int, *, first: str = "zB", low=None, high=None, max_pool_ties: str = "first") -> tuple[np.ndarray, bool]:
    """DTD for a ReLU network from root points: z+ on every layer, `first` ("zB" or "w2") on the
    input layer, max pools to their winner; R at the output = F_t(x). Returns (relevance, every
    root point in its domain). Dense and convolutional layers alike (no residual blocks)."""
    operations = folded(ops(net))
    first_op = _first_affine(operations)
    channels = x.shape[1] if x.dim() == 4 else None
    out, ok = [], True
    for xs in _samples(x):
        vals = forward(operations, xs)
        R = np.zeros_like(vals[-1])
        R[target] = vals[-1][target]
        for k in range(len(operations) - 1, -1, -1):
            op, a = operations[k], _value(vals[k])
            if op[0] == "affine":
                direction = first if op is first_op else "z+"
                if op[1] == "pool":
                    R = lrp_zero(a, op[2], op[3], R)
                    continue
                R, inside = dtd_layer(a, op[2], op[3], R, direction, low=low, high=high, channels=channels)
                ok &= inside
            elif op[0] == "max":
                R = _route(op[1], a, R, max_pool_ties)
            elif op[0] in ("bn", "residual"):
                raise UnsupportedModelError("the DTD reference handles Linear/Conv, ReLU and pooling layers")
        out.append(R)
    return np.stack(out).reshape(x.shape), ok


# -- DeepLift --------------------------------------------------------------------------------
def _deeplift_backward(operations: Sequence[tuple], v: list, v0: list, m: np.ndarray, ties: str = "first") -> np.ndarray:
    for k in range(len(operations) - 1, -1, -1):
        op = operations[k]
        a, a0 = _value(v[k]), _value(v0[k])
        if op[0] == "affine":
            m = op[2].T @ m
        elif op[0] == "bn":
            m = op[1] * m
        elif op[0] == "relu":  # Rescale: dy / dz, or relu'(z) where dz = 0
            dz, dy = a - a0, _value(v[k + 1]) - _value(v0[k + 1])
            slope = np.where(dz != 0, dy / np.where(dz != 0, dz, 1.0), (a > 0).astype(float))
            m = m * slope
        elif op[0] == "max":  # exact multipliers on S = the winners at x and at x0
            d = a - a0
            out = np.zeros_like(a)
            for o, win in enumerate(op[1]):
                dy = max(a[i] for i in win) - max(a0[i] for i in win)
                support = sorted({i for i, _ in _shares(win, a, ties)} | {i for i, _ in _shares(win, a0, ties)})
                s = sum(d[i] ** 2 for i in support)
                if s == 0:  # the winners unchanged: the convention's gradient at x
                    for i, w in _shares(win, a, ties):
                        out[i] += m[o] * w
                    continue
                for i in support:
                    out[i] += m[o] * dy * d[i] / s
            m = out
        else:
            m = m + _deeplift_backward(op[1], v[k][1], v0[k][1], m, ties)
    return m


def deeplift(net: nn.Module, x: Tensor, x0: Tensor, target: int, *, max_pool_ties: str = "first") -> np.ndarray:
    """(x - x0) * m with m the chain of M^T (linear layers), dy/dz (Rescale at ReLUs; relu'(z) if
    dz = 0) and the exact max-pool multipliers m_i = dy dx_i / sum_S dx_j^2 on the winners S at x
    and x0 (under the tie convention)."""
    operations = ops(net)
    out = []
    for xs, x0s in zip(_samples(x), _samples(x0)):
        v, v0 = forward(operations, xs), forward(operations, x0s)
        m = np.zeros_like(v[-1])
        m[target] = 1.0
        out.append((xs - x0s) * _deeplift_backward(operations, v, v0, m, max_pool_ties))
    return np.stack(out).reshape(x.shape)

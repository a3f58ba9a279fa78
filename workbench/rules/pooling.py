"""Max pooling with a named tie convention: the windows of every max pool torch ships, as indices.

A max pool's backward sends each window's signal to its maximum; where several entries of a
window tie, which one gets it is a convention, and an implementation comparing with another must
use the same one. Ties are decided with a tolerance, so that two implementations whose values
differ by round-off (a BatchNorm folded into a convolution, a sum in another order) agree:

    tied(window) = { i : v_i >= max(v) - tol * max_j |v_j| },   tol = ``tie_tolerance(dtype)``

and the convention (``MAX_POOL_TIES``) is

- ``"first"``: the first tied entry in row-major window order gets the whole signal (torch's
  own choice for exact ties);
- ``"split"``: every tied entry gets an equal share.

``windows(module, spatial)`` lists each output position's window as flat input indices (-1 for
padding) for MaxPool1d/2d/3d (kernel, stride, padding, dilation, ceil_mode) and
AdaptiveMaxPool1d/2d/3d (windows [floor(i L / o), ceil((i + 1) L / o))); ``tie_weights`` gives
the convention's weights per window entry. ``MaxPoolRule`` is the gradient of a max pool under
the convention; ``RescaleMaxPool`` DeepLift's exact multipliers (Shrikumar et al. 2017 give the
gradient for max pooling, which does not sum to delta; these do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from workbench.core.errors import InputError, UnsupportedModelError
from workbench.rules.engine import Rule

MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
MAX_POOL_TIES = ("first", "split")


def tie_tolerance(dtype: torch.dtype) -> float:
    """Relative tolerance under which window entries tie: max(1e-9, 64 eps) (1e-9 in float64)."""
    return max(1e-9, 64 * torch.finfo(dtype).eps)


def check_ties(value: str) -> str:
    if value not in MAX_POOL_TIES:
        raise InputError(f"max_pool_ties must be one of {', '.join(map(repr, MAX_POOL_TIES))}, got {value!r}")
    return value


def _dims(module: nn.Module) -> int:
    name = type(module).__name__
    return int(name[-2])  # ...Pool1d / 2d / 3d


def _tuple(v: Any, n: int) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def _dim_windows(module: nn.Module, size: int, axis: int) -> list[list[int]]:
    n = _dims(module)
    if isinstance(module, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)):
        o = _tuple(module.output_size, n)[axis]
        o = size if o is None else int(o)
        return [list(range((i * size) // o, -((-(i + 1) * size) // o))) for i in range(o)]
    k = int(_tuple(module.kernel_size, n)[axis])
    s = int(_tuple(module.stride if module.stride else module.kernel_size, n)[axis])
    p = int(_tuple(module.padding, n)[axis])
    d = int(_tuple(module.dilation, n)[axis])
    span = d * (k - 1) + 1
    if module.ceil_mode:
        o = -(-(size + 2 * p - span) // s) + 1
        if (o - 1) * s >= size + p:
            o -= 1
    else:
        o = (size + 2 * p - span) // s + 1
    return [[i * s - p + j * d if 0 <= i * s - p + j * d < size else -1 for j in range(k)] for i in range(o)]


def windows(module: nn.Module, spatial: tuple) -> tuple[Tensor, tuple]:
    """(idx, out_spatial): idx (O, K) long, flat input index of each window entry (-1: padding)."""
    if not isinstance(module, MAX_POOLS):
        raise UnsupportedModelError(f"max-pool windows: {type(module).__name__} is not one of {', '.join(t.__name__ for t in MAX_POOLS)}")
    if getattr(module, "return_indices", False):
        raise UnsupportedModelError(f"max pools with return_indices=True return a tuple; {module!r} is not supported")
    idx = torch.zeros(1, 1, dtype=torch.long)
    out = []
    for axis, size in enumerate(spatial):
        w = _dim_windows(module, int(size), axis)
        k = max(len(v) for v in w)
        W = torch.tensor([v + [-1] * (k - len(v)) for v in w], dtype=torch.long)
        valid = (idx[:, None, :, None] >= 0) & (W[None, :, None, :] >= 0)
        new = idx[:, None, :, None] * int(size) + W[None, :, None, :]
        idx = torch.where(valid, new, torch.full_like(new, -1)).reshape(idx.shape[0] * W.shape[0], idx.shape[1] * k)
        out.append(W.shape[0])
    return idx, tuple(out)


def gathered(module: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor, tuple]:
    """(values (N, C, O, K) with -inf at padding, idx (O, K), valid (O, K), out_spatial)."""
    n = _dims(module)
    if x.dim() != n + 2:
        raise UnsupportedModelError(f"{type(module).__name__} rules need a batched input (N, C, {n} spatial dims), got shape {tuple(x.shape)}")
    idx, out = windows(module, tuple(x.shape[2:]))
    idx = idx.to(x.device)
    valid = idx >= 0
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    v = flat[:, :, idx.clamp(min=0)]
    v = torch.where(valid, v, torch.full_like(v, -math.inf))
    return v, idx, valid, out


def tie_weights(v: Tensor, valid: Tensor, ties: str) -> Tensor:
    """Per-window weights (N, C, O, K) of the convention (each window's weights sum to 1)."""
    m = v.amax(-1, keepdim=True)
    scale = torch.where(valid, v.abs(), torch.zeros_like(v)).amax(-1, keepdim=True)
    tied = (v >= m - tie_tolerance(v.dtype) * scale) & valid
    w = tied.to(v.dtype)
    if ties == "first":
        first = (w.cumsum(-1) == 1) & tied
        return first.to(v.dtype)
    return w / w.sum(-1, keepdim=True)


def scatter(values: Tensor, idx: Tensor, valid: Tensor, like: Tensor) -> Tensor:
    """Sum values (N, C, O, K) into the input positions idx (O, K): the adjoint of ``gathered``."""
    n, c = like.shape[:2]
    flat = torch.zeros(n, c, like[0, 0].numel(), dtype=values.dtype, device=values.device)
    vals = torch.where(valid, values, torch.zeros_like(values)).reshape(n, c, -1)
    flat.scatter_add_(2, idx.clamp(min=0).reshape(1, 1, -1).expand(n, c, -1), vals)
    return flat.reshape(like.shape)


@dataclass(frozen=True, repr=False)
class MaxPoolRule(Rule):
    """The gradient of a max pool under a named tie convention (``MAX_POOL_TIES``)."""

    models = MAX_POOLS
    ties: str = "first"

    def backward(self, module: nn.Module, x: Tensor, y: Tensor, grad: Tensor, state: Any) -> Tensor:
        v, idx, valid, _ = gathered(module, x)
        w = tie_weights(v, valid, self.ties)
        g = grad.reshape(grad.shape[0], grad.shape[1], -1, 1)
        return scatter(w * g, idx, valid, x)


def rescale_multipliers(module: nn.Module, x: Tensor, x0: Tensor, y: Tensor, y0: Tensor, grad: Tensor, ties: str) -> Tensor:
    """DeepLift multipliers through a max pool, exact: sum_i m_i (x_i - x0_i) = y - y0 per window.

    Support S = the convention's winners at x and at x0; m_i = dy dx_i / sum_{j in S} dx_j^2 on
    S (the least-norm exact multiplier on S). Where every dx on S is 0 (then dy is 0 up to the tie
    tolerance) the convention's gradient at x is used."""
    v, idx, valid, _ = gathered(module, x)
    v0, _, _, _ = gathered(module, x0)
    support = (tie_weights(v, valid, ties) > 0) | (tie_weights(v0, valid, ties) > 0)
    dv = torch.where(valid, v - v0, torch.zeros_like(v))
    dv = torch.where(torch.isfinite(dv), dv, torch.zeros_like(dv))
    s = (torch.where(support, dv * dv, torch.zeros_like(dv))).sum(-1, keepdim=True)
    n, c = x.shape[:2]
    dy = (y - y0).reshape(n, c, -1, 1)
    g = grad.reshape(n, c, -1, 1)
    ok = s > 0
    coef = torch.where(ok, g * dy / torch.where(ok, s, torch.ones_like(s)), torch.zeros_like(s))
    m = torch.where(ok, torch.where(support, coef * dv, torch.zeros_like(dv)), g * tie_weights(v, valid, ties))
    return scatter(m, idx, valid, x)

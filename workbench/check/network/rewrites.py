"""Rewrites of a given network: function-preserving and property-constructing.

Each rewrite takes the model (never modified) and returns a rewritten deep copy: the same
torchvision module tree with some modules' tensors (and widths) changed, so a method sees an
ordinary model. Sites come from ``sites`` (a traced graph).

Function-preserving (F_g(x) = F_f(x) for every x; implementation invariance, Sundararajan et al.
2017):

* ``permute``: channel k of A becomes channel perm[k]; BatchNorm on the path and B's inputs follow;
* ``rescale``: channel k of the last affine map before B (A or a BatchNorm) times c_k > 0, B's
  inputs of k times 1/c_k -- valid when the path after it is positively homogeneous (ReLU, pooling);
* ``split``: channel k duplicated; B reads the copy with weight (1 - t) w and the original t w;
* ``fold_batchnorm``: conv + BatchNorm -> one conv, W' = W gamma / sqrt(var + eps),
  b' = (b - mean) gamma / sqrt(var + eps) + beta (the inference-time fold; Ioffe & Szegedy 2015).

Property-constructing (a new network with a known property):

* ``dummy_channel``: an extra input channel the first conv ignores (zero weights): dummy axiom;
* ``twin_channel``: an extra input channel with the first conv's weights of channel i, both halved:
  g(x, x_i) = f(x), and g is symmetric in channels i and the new one: symmetry axiom;
* ``sum_of_heads``: head weights a W + b roll(W, s) (the second head is the first with its classes
  rotated by s): h = a f1 + b f2 as one network, linearity axiom.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import Tensor, nn

from workbench.core.errors import InputError, UnsupportedModelError
from workbench.check.network.sites import Graph, Site

__all__ = ["permute", "rescale", "split", "fold_batchnorm", "dummy_channel", "twin_channel", "sum_of_heads"]


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def _param(t: Tensor, like: nn.Parameter) -> nn.Parameter:
    return nn.Parameter(t.detach().clone(), requires_grad=like.requires_grad)


def _path_batchnorms(g: Graph, site: Site) -> list[str]:
    return [p for p in site.path if not p.startswith("<") and isinstance(g.module(p), nn.modules.batchnorm._BatchNorm)]


def _in_columns(b: nn.Module, width: int, channels: Tensor) -> Tensor:
    """B's input columns for A's channels (Linear after a flatten: S columns per channel)."""
    if isinstance(b, nn.Conv2d):
        return channels
    s = b.in_features // width
    return (channels.view(-1, 1) * s + torch.arange(s).view(1, -1)).reshape(-1)


def _apply_in(b: nn.Module, width: int, index: Tensor) -> None:
    with torch.no_grad():
        b.weight = _param(b.weight[:, _in_columns(b, width, index).to(b.weight.device)], b.weight)


def _scale_in(b: nn.Module, width: int, factors: Tensor) -> None:
    s = 1 if isinstance(b, nn.Conv2d) else b.in_features // width
    f = factors.repeat_interleave(s).to(device=b.weight.device, dtype=b.weight.dtype)
    with torch.no_grad():
        b.weight = _param(b.weight * f.view(1, -1, *([1] * (b.weight.dim() - 2))), b.weight)


def _reindex_out(m: nn.Module, index: Tensor) -> None:
    """Output channels of an affine module, or the channels of a BatchNorm, reindexed."""
    first = next(iter(m.parameters()), None)
    if first is not None:
        index = index.to(first.device)
    with torch.no_grad():
        for attr in ("weight", "bias"):
            p = getattr(m, attr, None)
            if p is not None:
                setattr(m, attr, _param(p[index], p))
        for attr in ("running_mean", "running_var"):
            t = getattr(m, attr, None)
            if t is not None:
                setattr(m, attr, t[index].clone())
    n = len(index)
    for attr in ("out_channels", "out_features", "num_features"):
        if hasattr(m, attr):
            setattr(m, attr, n)


def _copy(g: Graph) -> nn.Module:
    return copy.deepcopy(g.model)


def permute(g: Graph, site: Site, perm: Sequence[int]) -> nn.Module:
    """New channel j of A is old channel perm[j]; BatchNorm and B's inputs follow."""
    if sorted(perm) != list(range(site.width)):
        raise InputError(f"perm must be a permutation of range({site.width}) for site {site.describe()}")
    model = _copy(g)
    index = torch.tensor(list(perm), dtype=torch.long)
    for name in (site.a, *_path_batchnorms(g, site)):
        _reindex_out(model.get_submodule(name), index)
    _apply_in(model.get_submodule(site.b), site.width, index)
    return model


def rescale(g: Graph, site: Site, scales: Sequence[float]) -> nn.Module:
    """Channel k of ``site.rescale_at`` times scales[k] > 0, B's inputs of k times 1/scales[k]."""
    if site.rescale_at is None:
        raise UnsupportedModelError(f"site {site.describe()} has a non-homogeneous operation after its last affine map; rescaling is not function-preserving there")
    if len(scales) != site.width or not all(float(c) > 0 for c in scales):
        raise InputError(f"rescale needs {site.width} positive scales for site {site.describe()}")
    model = _copy(g)
    m = model.get_submodule(site.rescale_at)
    c = torch.tensor([float(v) for v in scales], dtype=torch.float64)
    with torch.no_grad():
        for attr in ("weight", "bias"):
            p = getattr(m, attr, None)
            if p is not None:
                shape = (-1,) + (1,) * (p.dim() - 1)
                setattr(m, attr, _param(p * c.to(device=p.device, dtype=p.dtype).view(shape), p))
    _scale_in(model.get_submodule(site.b), site.width, 1.0 / c)
    return model


def split(g: Graph, site: Site, unit: int, fraction: float) -> nn.Module:
    """Channel `unit` of A duplicated (appended last); B reads fraction * w from it and
    (1 - fraction) * w from the copy."""
    if not 0 <= unit < site.width:
        raise InputError(f"unit {unit} is outside the {site.width} channels of {site.a}")
    model = _copy(g)
    index = torch.cat([torch.arange(site.width), torch.tensor([unit])])
    for name in (site.a, *_path_batchnorms(g, site)):
        _reindex_out(model.get_submodule(name), index)
    b = model.get_submodule(site.b)
    _apply_in(b, site.width, index)
    factors = torch.ones(site.width + 1, dtype=torch.float64)
    factors[unit], factors[-1] = fraction, 1.0 - fraction
    if isinstance(b, nn.Conv2d):
        b.in_channels = site.width + 1
    else:
        b.in_features = b.in_features // site.width * (site.width + 1)
    _scale_in(b, site.width + 1, factors)
    return model


def fold_batchnorm(g: Graph, conv: str, bn: str) -> nn.Module:
    """The conv with the BatchNorm folded in (eval statistics); the BatchNorm becomes Identity."""
    model = _copy(g)
    c, n = model.get_submodule(conv), model.get_submodule(bn)
    if n.running_var is None:
        raise UnsupportedModelError(f"{bn} keeps no running statistics; it cannot be folded")
    with torch.no_grad():
        inv = torch.rsqrt(n.running_var + n.eps)
        gamma = n.weight if n.weight is not None else torch.ones_like(inv)
        beta = n.bias if n.bias is not None else torch.zeros_like(inv)
        s = gamma * inv
        bias = c.bias if c.bias is not None else torch.zeros_like(s)
        folded = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, c.dilation, c.groups, True, c.padding_mode, device=c.weight.device, dtype=c.weight.dtype)
        folded.weight.copy_(c.weight * s.view(-1, 1, 1, 1))
        folded.bias.copy_((bias - n.running_mean) * s + beta)
    folded.weight.requires_grad_(c.weight.requires_grad)
    folded.bias.requires_grad_(c.weight.requires_grad)
    _set(model, conv, folded.train(c.training))
    _set(model, bn, nn.Identity().train(n.training))
    return model


def _widen_input(g: Graph, first: str, extra: Tensor) -> nn.Module:
    model = _copy(g)
    c = model.get_submodule(first)
    with torch.no_grad():
        c.weight = _param(torch.cat([c.weight, extra.to(c.weight.dtype).view(c.weight.shape[0], 1, *c.weight.shape[2:])], dim=1), c.weight)
    c.in_channels += 1
    return model


def dummy_channel(g: Graph, first: str) -> nn.Module:
    """One more input channel (last), which the first conv reads with zero weights."""
    w = g.module(first).weight
    return _widen_input(g, first, torch.zeros_like(w[:, :1]))


def twin_channel(g: Graph, first: str, channel: int) -> nn.Module:
    """One more input channel (last) with the first conv's weights of `channel`; both halved."""
    c = g.module(first)
    if not 0 <= channel < c.in_channels:
        raise InputError(f"channel {channel} is outside the {c.in_channels} input channels of {first}")
    half = c.weight[:, channel : channel + 1].detach() / 2
    model = _widen_input(g, first, half)
    w = model.get_submodule(first).weight
    with torch.no_grad():
        w[:, channel : channel + 1] = half
    return model


def sum_of_heads(g: Graph, head: str, a: float, b: float, shift: int) -> tuple[nn.Module, nn.Module]:
    """(f2, h): f2's head is f's with classes rotated by `shift` (f2_t = f_{t+shift}); h's head is
    a W + b W2, so h = a f + b f2 as one network."""
    lin = g.module(head)
    if not 0 < shift < lin.out_features:
        raise InputError(f"shift must be in 1..{lin.out_features - 1} for the {lin.out_features}-class head {head}")
    f2, h = _copy(g), _copy(g)
    with torch.no_grad():
        w2, b2 = torch.roll(lin.weight, -shift, 0), None if lin.bias is None else torch.roll(lin.bias, -shift, 0)
        h2 = f2.get_submodule(head)
        h2.weight = _param(w2, lin.weight)
        if b2 is not None:
            h2.bias = _param(b2, lin.bias)
        hh = h.get_submodule(head)
        hh.weight = _param(a * lin.weight + b * w2, lin.weight)
        if b2 is not None:
            hh.bias = _param(a * lin.bias + b * b2, lin.bias)
    return f2, h

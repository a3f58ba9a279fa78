"""Network rewrites for the axiom checker: function-preserving and function-combining.

Every rewrite takes SpecNet(s) built by ``spec.build`` and returns a NEW SpecNet (new spec,
new weights, same dtype and device); inputs are never modified.

A *site* is a pair of affine layers A -> B (Linear or Conv2d) in one layer sequence (the top
level, path ``()``, or a residual body, path ``(i,)`` for the body of top-level layer ``i``,
``(i, j)`` deeper) with only CHANNELWISE layers between them. Hidden unit k of A is its output
feature / channel k; through a Flatten, B's input columns for unit k are ``[k*S, (k+1)*S)``.

Function-preserving: ``permute_hidden``, ``rescale_hidden`` (homogeneous sites only),
``split_hidden``. Input rewrites: ``permute_inputs`` (g(x) = f(x[:, perm])),
``zero_input_feature``. Combining: ``weighted_sum`` (a f1 + b f2 as one network) and
``symmetrize`` (0.5 f(x) + 0.5 f(swap_ij x)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Sequence

import torch
from torch import Tensor

from workbench.core.errors import InputError, ModelError
from workbench.nets import spec as S

__all__ = [
    "Site",
    "hidden_sites",
    "permute_hidden",
    "rescale_hidden",
    "split_hidden",
    "permute_inputs",
    "zero_input_feature",
    "weighted_sum",
    "symmetrize",
]


@dataclass(frozen=True)
class Site:
    """Affine layers ``a`` -> ``b`` (indices) in the sequence at ``path``; ``width`` = units of a."""

    path: tuple
    a: int
    b: int
    homogeneous: bool
    width: int


# -- helpers ------------------------------------------------------------------------------
def _width(layer: Any) -> int:
    return layer.out_features if isinstance(layer, S.Linear) else layer.out_channels


def _with_width(layer: Any, width: int) -> Any:
    if isinstance(layer, S.Linear):
        return replace(layer, out_features=width)
    return replace(layer, out_channels=width)


def _prefix(path: Sequence[int]) -> str:
    return "".join(f"{p}.body." for p in path)


def _sequence(spec: S.NetSpec, path: Sequence[int]) -> tuple[tuple, list]:
    """Layers of the sequence at `path` and the input shape of each of them."""
    layers, shape = spec.layers, spec.input_shape
    for p in path:
        if not 0 <= p < len(layers) or not isinstance(layers[p], S.Residual):
            raise InputError(f"path {tuple(path)} does not lead to a residual body")
        for l in layers[:p]:
            shape = S._out_shape(l, shape)
        layers = layers[p].body
    shapes = []
    for l in layers:
        shapes.append(shape)
        shape = S._out_shape(l, shape)
    return layers, shapes


def _replace_layer(layers: tuple, path: Sequence[int], index: int, new: Any) -> tuple:
    if not path:
        return layers[:index] + (new,) + layers[index + 1:]
    p = path[0]
    body = _replace_layer(layers[p].body, path[1:], index, new)
    return layers[:p] + (replace(layers[p], body=body),) + layers[p + 1:]


def _dtype_device(net: S.SpecNet) -> tuple[torch.dtype, torch.device]:
    for t in list(net.parameters()) + list(net.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.float64, torch.device("cpu")


def _state(net: S.SpecNet) -> dict:
    return {k: v.detach().clone() for k, v in net.state_dict().items() if v.is_floating_point()}


def _rebuild(spec: S.NetSpec, state: dict, like: S.SpecNet) -> S.SpecNet:
    dtype, device = _dtype_device(like)
    net = S.build(spec, dtype=dtype, state={k: v.detach().cpu() for k, v in state.items()})
    return net.to(device).eval()


def _check_site(net: S.SpecNet, site: Site) -> tuple:
    layers, shapes = _sequence(net.spec, site.path)
    ok = (
        0 <= site.a < site.b < len(layers)
        and isinstance(layers[site.a], S.AFFINE)
        and isinstance(layers[site.b], S.AFFINE)
        and all(isinstance(l, S.CHANNELWISE) for l in layers[site.a + 1: site.b])
        and _width(layers[site.a]) == site.width
    )
    if not ok:
        raise InputError(f"{site} is not a hidden site of {net.spec.describe()}")
    return layers, shapes


# -- hidden sites ------------------------------------------------------------------------
def hidden_sites(net: S.SpecNet) -> list[Site]:
    """Every site A -> B of `net`, top level first, then residual bodies (depth first)."""
    out: list[Site] = []

    def walk(layers: tuple, path: tuple) -> None:
        for i, l in enumerate(layers):
            if isinstance(l, S.AFFINE):
                for j in range(i + 1, len(layers)):
                    m = layers[j]
                    if isinstance(m, S.AFFINE):
                        between = layers[i + 1: j]
                        homog = all(isinstance(x, S.HOMOGENEOUS) for x in between)
                        out.append(Site(path, i, j, homog, _width(l)))
                        break
                    if not isinstance(m, S.CHANNELWISE):
                        break
        for i, l in enumerate(layers):
            if isinstance(l, S.Residual):
                walk(l.body, path + (i,))

    walk(net.spec.layers, ())
    return out


def _rewire(net: S.SpecNet, site: Site, idx: Sequence[int], row: Sequence[float], col: Sequence[float]) -> S.SpecNet:
    """New unit k of A = old unit idx[k] times row[k]; B reads it with weight times col[k]."""
    layers, shapes = _check_site(net, site)
    pre = _prefix(site.path)
    state = _state(net)
    dtype = state[f"{pre}{site.a}.weight"].dtype
    index = torch.as_tensor(list(idx), dtype=torch.long)
    rs = torch.as_tensor(list(row), dtype=dtype)
    cs = torch.as_tensor(list(col), dtype=dtype)
    n_new = len(index)

    w = state[f"{pre}{site.a}.weight"]
    state[f"{pre}{site.a}.weight"] = w[index] * rs.view(-1, *([1] * (w.dim() - 1)))
    if f"{pre}{site.a}.bias" in state:
        state[f"{pre}{site.a}.bias"] = state[f"{pre}{site.a}.bias"][index] * rs

    for k in range(site.a + 1, site.b):
        if isinstance(layers[k], S.BatchNorm):
            n = shapes[k][0]
            block = n // site.width
            expanded = (index.view(-1, 1) * block + torch.arange(block).view(1, -1)).reshape(-1)
            for name in ("weight", "bias", "running_mean", "running_var"):
                key = f"{pre}{k}.{name}"
                state[key] = state[key][expanded]

    wb = state[f"{pre}{site.b}.weight"]
    out_b, n_in = wb.shape[0], wb.shape[1]
    block = n_in // site.width
    rest = wb.shape[2:]
    wv = wb.reshape(out_b, site.width, block, *rest)[:, index] * cs.view(1, -1, *([1] * (wb.dim() - 1)))
    state[f"{pre}{site.b}.weight"] = wv.reshape(out_b, n_new * block, *rest)

    new_layers = net.spec.layers
    if n_new != site.width:
        new_layers = _replace_layer(new_layers, site.path, site.a, _with_width(layers[site.a], n_new))
    spec = S.NetSpec(net.spec.input_shape, new_layers, net.spec.shared_relu)
    return _rebuild(spec, state, net)


def permute_hidden(net: S.SpecNet, site: Site, perm: Sequence[int]) -> S.SpecNet:
    """Unit k of the new A is unit ``perm[k]`` of the old one; B follows. Same function."""
    perm = [int(p) for p in perm]
    if sorted(perm) != list(range(site.width)):
        raise InputError(f"perm {perm} is not a permutation of range({site.width})")
    return _rewire(net, site, perm, [1.0] * site.width, [1.0] * site.width)


def rescale_hidden(net: S.SpecNet, site: Site, scales: Sequence[float]) -> S.SpecNet:
    """Unit k of A times ``scales[k] > 0``, B's input from it divided by it. Homogeneous sites only."""
    scales = [float(c) for c in scales]
    if len(scales) != site.width:
        raise InputError(f"need {site.width} scales, got {len(scales)}")
    if not all(math.isfinite(c) and c > 0 for c in scales):
        raise InputError(f"scales must be finite and > 0, got {scales}")
    layers, _ = _check_site(net, site)
    if not all(isinstance(l, S.HOMOGENEOUS) for l in layers[site.a + 1: site.b]):
        between = ", ".join(type(l).__name__ for l in layers[site.a + 1: site.b])
        raise InputError(f"cannot rescale across non-homogeneous layers ({between}); only {', '.join(c.__name__ for c in S.HOMOGENEOUS)}")
    return _rewire(net, site, range(site.width), scales, [1.0 / c for c in scales])


def split_hidden(net: S.SpecNet, site: Site, unit: int, fraction: float) -> S.SpecNet:
    """Append a copy of `unit` to A; B reads the original with weight t and the copy with 1 - t."""
    if not 0 <= unit < site.width:
        raise InputError(f"unit {unit} out of range for width {site.width}")
    t = float(fraction)
    if not math.isfinite(t):
        raise InputError(f"fraction must be finite, got {fraction}")
    col = [1.0] * site.width + [1.0 - t]
    col[unit] = t
    return _rewire(net, site, list(range(site.width)) + [unit], [1.0] * (site.width + 1), col)


# -- input rewrites ----------------------------------------------------------------------
def _first_affine(net: S.SpecNet) -> str:
    first = net.spec.layers[0]
    if not isinstance(first, S.AFFINE):
        raise ModelError(f"the first layer must be Linear or Conv2d, got {type(first).__name__}")
    return "0.weight"


def permute_inputs(net: S.SpecNet, perm: Sequence[int]) -> S.SpecNet:
    """g with ``g(x) = f(x[:, perm])`` (flat: features; image: channels), i.e. input k of f is x[perm[k]]."""
    key = _first_affine(net)
    d = net.spec.input_shape[0]
    perm = [int(p) for p in perm]
    if sorted(perm) != list(range(d)):
        raise InputError(f"perm {perm} is not a permutation of range({d})")
    inverse = torch.argsort(torch.as_tensor(perm))
    state = _state(net)
    state[key] = state[key][:, inverse]
    return _rebuild(net.spec, state, net)


def zero_input_feature(net: S.SpecNet, feature: int) -> S.SpecNet:
    """Zero the first layer's weights for input `feature` (flat: a column; image: a channel)."""
    key = _first_affine(net)
    d = net.spec.input_shape[0]
    if not 0 <= feature < d:
        raise InputError(f"feature {feature} out of range for {d} input features/channels")
    state = _state(net)
    state[key][:, feature] = 0
    return _rebuild(net.spec, state, net)


# -- weighted sum ------------------------------------------------------------------------
def _same_hyper(l1: Any, l2: Any) -> bool:
    if type(l1) is not type(l2):
        return False
    skip = {"out_features", "out_channels", "body", "inplace", "bias"}  # hidden biases checked in merge
    return all(getattr(l1, f.name) == getattr(l2, f.name) for f in fields(l1) if f.name not in skip)


def _check_match(a: tuple, b: tuple, where: str) -> None:
    if len(a) != len(b):
        raise ModelError(f"weighted_sum needs the same layers: {where} has {len(a)} vs {len(b)} layers")
    for k, (l1, l2) in enumerate(zip(a, b)):
        if not _same_hyper(l1, l2):
            raise ModelError(f"weighted_sum needs the same layers: {where}[{k}] is {l1!r} vs {l2!r}")
        if isinstance(l1, S.Residual):
            _check_match(l1.body, l2.body, f"{where}[{k}].body")


def _block_diag(w1: Tensor, w2: Tensor) -> Tensor:
    """[[w1, 0], [0, w2]] over the first two dims (kernel dims kept)."""
    o1, i1 = w1.shape[:2]
    o2, i2 = w2.shape[:2]
    out = w1.new_zeros((o1 + o2, i1 + i2, *w1.shape[2:]))
    out[:o1, :i1] = w1
    out[o1:, i1:] = w2
    return out


def weighted_sum(f1: S.SpecNet, f2: S.SpecNet, a: float, b: float) -> S.SpecNet:
    """ONE network h with h(x) = a f1(x) + b f2(x).

    The specs must agree in layer types and hyperparameters except widths. Hidden units are
    concatenated (first affine layer: rows stacked; later ones block-diagonal; BatchNorm and
    residual bodies concatenated); the output affine layer becomes ``[a W1, b W2]`` with bias
    ``a b1 + b b2``. If the network has a single affine layer, ``W = a W1 + b W2``. If the last
    affine layer is followed by anything but Flatten (or lies in a residual body), a final
    bias-free ``Linear`` with weight ``[a I, b I]`` is appended instead.
    """
    s1, s2 = f1.spec, f2.spec
    if s1.input_shape != s2.input_shape:
        raise ModelError(f"weighted_sum needs the same input shape, got {s1.input_shape} vs {s2.input_shape}")
    if s1.outputs != s2.outputs:
        raise ModelError(f"weighted_sum needs the same number of outputs, got {s1.outputs} vs {s2.outputs}")
    _check_match(s1.layers, s2.layers, "layers")
    a, b = float(a), float(b)
    sd1, sd2 = _state(f1), _state(f2)
    dtype = next(iter(sd1.values())).dtype if sd1 else torch.float64
    sd2 = {k: v.to(dtype=dtype, device=next(iter(sd1.values())).device) for k, v in sd2.items()}
    top = s1.layers
    affine_top = [k for k, l in enumerate(top) if isinstance(l, S.AFFINE)]
    last = affine_top[-1] if affine_top else None
    if last is not None and not all(isinstance(l, S.Flatten) for l in top[last + 1:]):
        last = None  # nonlinear tail: merge with an appended Linear
    state: dict = {}

    def merge(l1s: tuple, l2s: tuple, pre: str, shared: bool, top_level: bool) -> tuple[list, bool]:
        new = []
        for k, (l1, l2) in enumerate(zip(l1s, l2s)):
            key = f"{pre}{k}"
            if isinstance(l1, S.AFFINE):
                w1, w2 = sd1[f"{key}.weight"], sd2[f"{key}.weight"]
                has1, has2 = f"{key}.bias" in sd1, f"{key}.bias" in sd2
                if top_level and k == last:  # output layer: combine, do not concatenate
                    w = a * w1 + b * w2 if shared else torch.cat([a * w1, b * w2], dim=1)
                    if has1 or has2:
                        zero = torch.zeros(w.shape[0], dtype=dtype, device=w.device)
                        state[f"{key}.bias"] = a * sd1.get(f"{key}.bias", zero) + b * sd2.get(f"{key}.bias", zero)
                    state[f"{key}.weight"] = w
                    new.append(replace(l1, bias=has1 or has2))
                    continue
                if has1 != has2:
                    raise ModelError(f"weighted_sum: layer {key} has a bias in one network only")
                state[f"{key}.weight"] = torch.cat([w1, w2], dim=0) if shared else _block_diag(w1, w2)
                if has1:
                    state[f"{key}.bias"] = torch.cat([sd1[f"{key}.bias"], sd2[f"{key}.bias"]])
                new.append(_with_width(l1, _width(l1) + _width(l2)))
                shared = False
            elif isinstance(l1, S.BatchNorm):
                if shared:
                    raise ModelError("weighted_sum: BatchNorm before the first affine layer is not supported")
                for name in ("weight", "bias", "running_mean", "running_var"):
                    state[f"{key}.{name}"] = torch.cat([sd1[f"{key}.{name}"], sd2[f"{key}.{name}"]])
                new.append(l1)
            elif isinstance(l1, S.Residual):
                if shared:
                    raise ModelError("weighted_sum: a residual block before the first affine layer is not supported")
                body, _ = merge(l1.body, l2.body, f"{key}.body.", False, False)
                new.append(replace(l1, body=tuple(body)))
            else:  # parameter-free channelwise layer: acts on the concatenation unit by unit
                new.append(l1)
        return new, shared

    layers, shared = merge(s1.layers, s2.layers, "", True, True)
    if last is None:
        if shared:
            raise ModelError("weighted_sum needs at least one affine layer")
        n = s1.outputs
        eye = torch.eye(n, dtype=dtype, device=next(iter(sd1.values())).device)
        state[f"{len(layers)}.weight"] = torch.cat([a * eye, b * eye], dim=1)
        layers.append(S.Linear(n, bias=False))
    spec = S.NetSpec(s1.input_shape, tuple(layers), s1.shared_relu or s2.shared_relu)
    return _rebuild(spec, state, f1)


def symmetrize(net: S.SpecNet, i: int, j: int) -> S.SpecNet:
    """h(x) = 0.5 f(x) + 0.5 f(swap_ij x) as one network: symmetric in features (channels) i, j."""
    d = net.spec.input_shape[0]
    if not (0 <= i < d and 0 <= j < d):
        raise InputError(f"features {i}, {j} out of range for {d} input features/channels")
    perm = list(range(d))
    perm[i], perm[j] = perm[j], perm[i]
    return weighted_sum(net, permute_inputs(net, perm), 0.5, 0.5)

"""Fixture networks described by a small, serializable spec.

A ``NetSpec`` is an input shape plus a sequence of layer specs; ``build`` turns it into a
``SpecNet`` (an ``nn.Module`` that keeps its spec), and ``to_dict``/``from_dict`` round-trip the
spec *and* the weights through plain JSON so that a counterexample is a file a person can read.
Shapes are inferred: a Linear after a conv stack needs a Flatten before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Iterable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from workbench.core.errors import InputError
from workbench.nets.randomize import randomize


@dataclass(frozen=True)
class Linear:
    out_features: int
    bias: bool = True


@dataclass(frozen=True)
class Conv2d:
    out_channels: int
    kernel_size: int = 3
    stride: int = 1
    padding: int = 0
    bias: bool = True


@dataclass(frozen=True)
class BatchNorm:
    """BatchNorm1d or 2d (chosen by the input rank); always built in eval mode."""

    eps: float = 1e-5


@dataclass(frozen=True)
class ReLU:
    inplace: bool = False


@dataclass(frozen=True)
class Softplus:
    beta: float = 1.0


@dataclass(frozen=True)
class GELU:
    pass


@dataclass(frozen=True)
class MaxPool2d:
    kernel_size: int = 2
    stride: Optional[int] = None


@dataclass(frozen=True)
class AvgPool2d:
    kernel_size: int = 2
    stride: Optional[int] = None


@dataclass(frozen=True)
class Flatten:
    pass


@dataclass(frozen=True)
class Residual:
    """y = x + body(x); the body must keep the shape."""

    body: tuple = ()


Layer = Union[Linear, Conv2d, BatchNorm, ReLU, Softplus, GELU, MaxPool2d, AvgPool2d, Flatten, Residual]
LAYER_TYPES = {c.__name__: c for c in (Linear, Conv2d, BatchNorm, ReLU, Softplus, GELU, MaxPool2d, AvgPool2d, Flatten, Residual)}
AFFINE = (Linear, Conv2d)
ACTIVATIONS = (ReLU, Softplus, GELU)
#: layers that act on each channel (unit) separately: safe between two affine layers
CHANNELWISE = (BatchNorm, ReLU, Softplus, GELU, MaxPool2d, AvgPool2d, Flatten)
#: channelwise layers that are also positively homogeneous: g(c z) = c g(z) for c > 0
HOMOGENEOUS = (ReLU, MaxPool2d, AvgPool2d, Flatten)
#: layers whose network is piecewise linear (exact IG, full-gradient completeness)
PIECEWISE_LINEAR = (Linear, Conv2d, BatchNorm, ReLU, MaxPool2d, AvgPool2d, Flatten, Residual)


@dataclass(frozen=True)
class NetSpec:
    """Input shape (without batch) and layers; ``shared_relu`` reuses one ReLU module everywhere."""

    input_shape: tuple
    layers: tuple
    shared_relu: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        object.__setattr__(self, "layers", tuple(self.layers))
        self.shapes()  # validate

    # -- shapes ---------------------------------------------------------------------------
    def shapes(self) -> list:
        """Output shape (without batch) after each top-level layer; raises InputError if invalid."""
        shape = self.input_shape
        out = []
        for layer in self.layers:
            shape = _out_shape(layer, shape)
            out.append(shape)
        if not out or len(shape) != 1:
            raise InputError(f"a network must end with a flat output (N, C), got shape {shape}")
        return out

    @property
    def outputs(self) -> int:
        return self.shapes()[-1][0]

    @property
    def piecewise_linear(self) -> bool:
        return all(isinstance(l, PIECEWISE_LINEAR) for l in iter_layers(self.layers)) and all(
            not isinstance(l, (Softplus, GELU)) for l in iter_layers(self.layers)
        )

    def describe(self) -> str:
        """One readable line, e.g. ``(2,) -> Linear(3) -> ReLU -> Linear(1)``."""
        return " -> ".join([str(self.input_shape)] + [_describe(l) for l in self.layers]) + (
            "  [one ReLU module reused]" if self.shared_relu else ""
        )


def iter_layers(layers: Iterable) -> Iterable:
    """All layer specs, recursing into residual bodies."""
    for l in layers:
        yield l
        if isinstance(l, Residual):
            yield from iter_layers(l.body)


def _describe(l: Any) -> str:
    if isinstance(l, Linear):
        return f"Linear({l.out_features}{'' if l.bias else ', no bias'})"
    if isinstance(l, Conv2d):
        extra = "" if l.bias else ", no bias"
        return f"Conv2d({l.out_channels}, k={l.kernel_size}, s={l.stride}, p={l.padding}{extra})"
    if isinstance(l, Residual):
        return "Residual[" + " -> ".join(_describe(b) for b in l.body) + "]"
    if isinstance(l, ReLU):
        return "ReLU(inplace)" if l.inplace else "ReLU"
    if isinstance(l, (MaxPool2d, AvgPool2d)):
        return f"{type(l).__name__}({l.kernel_size})"
    return type(l).__name__


def _out_shape(layer: Any, shape: tuple) -> tuple:
    if isinstance(layer, Linear):
        if len(shape) != 1:
            raise InputError(f"Linear needs a flat input, got shape {shape}; add Flatten()")
        return (layer.out_features,)
    if isinstance(layer, Conv2d):
        if len(shape) != 3:
            raise InputError(f"Conv2d needs (C, H, W) input, got {shape}")
        c, h, w = shape
        k, s, p = layer.kernel_size, layer.stride, layer.padding
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if ho < 1 or wo < 1:
            raise InputError(f"Conv2d kernel {k} does not fit input {shape}")
        return (layer.out_channels, ho, wo)
    if isinstance(layer, (MaxPool2d, AvgPool2d)):
        if len(shape) != 3:
            raise InputError(f"{type(layer).__name__} needs (C, H, W) input, got {shape}")
        k = layer.kernel_size
        s = layer.stride or k
        ho, wo = (shape[1] - k) // s + 1, (shape[2] - k) // s + 1
        if ho < 1 or wo < 1:
            raise InputError(f"pool kernel {k} does not fit input {shape}")
        return (shape[0], ho, wo)
    if isinstance(layer, Flatten):
        return (math.prod(shape),)
    if isinstance(layer, Residual):
        inner = shape
        for l in layer.body:
            inner = _out_shape(l, inner)
        if inner != shape:
            raise InputError(f"residual body maps {shape} to {inner}; it must keep the shape")
        return shape
    if isinstance(layer, BatchNorm):
        if len(shape) not in (1, 3):
            raise InputError(f"BatchNorm needs (C,) or (C, H, W) input, got {shape}")
        return shape
    if isinstance(layer, ACTIVATIONS):
        return shape
    raise InputError(f"unknown layer spec {layer!r}")


# -- building -----------------------------------------------------------------------------
class ResidualBlock(nn.Module):
    """y = x + body(x)."""

    def __init__(self, body: nn.Sequential) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class SpecNet(nn.Sequential):
    """An ``nn.Sequential`` built from a NetSpec; ``.spec`` keeps the description."""

    def __init__(self, spec: NetSpec, modules: Sequence[nn.Module]) -> None:
        super().__init__(*modules)
        self.spec = spec

    def extra_repr(self) -> str:
        return self.spec.describe()


def _build_layers(layers: Sequence[Any], shape: tuple, shared: dict) -> tuple[list, tuple]:
    mods = []
    for layer in layers:
        if isinstance(layer, Linear):
            mods.append(nn.Linear(shape[0], layer.out_features, bias=layer.bias))
        elif isinstance(layer, Conv2d):
            mods.append(
                nn.Conv2d(shape[0], layer.out_channels, layer.kernel_size, layer.stride, layer.padding, bias=layer.bias)
            )
        elif isinstance(layer, BatchNorm):
            bn = (nn.BatchNorm1d if len(shape) == 1 else nn.BatchNorm2d)(shape[0], eps=layer.eps)
            mods.append(bn)
        elif isinstance(layer, ReLU):
            if "relu" in shared:
                if shared["relu"] is None:
                    shared["relu"] = nn.ReLU(inplace=layer.inplace)
                mods.append(shared["relu"])
            else:
                mods.append(nn.ReLU(inplace=layer.inplace))
        elif isinstance(layer, Softplus):
            mods.append(nn.Softplus(beta=layer.beta))
        elif isinstance(layer, GELU):
            mods.append(nn.GELU())
        elif isinstance(layer, MaxPool2d):
            mods.append(nn.MaxPool2d(layer.kernel_size, layer.stride))
        elif isinstance(layer, AvgPool2d):
            mods.append(nn.AvgPool2d(layer.kernel_size, layer.stride))
        elif isinstance(layer, Flatten):
            mods.append(nn.Flatten())
        elif isinstance(layer, Residual):
            body, _ = _build_layers(layer.body, shape, shared)
            mods.append(ResidualBlock(nn.Sequential(*body)))
        shape = _out_shape(layer, shape)
    return mods, shape


def build(
    spec: NetSpec,
    *,
    dtype: torch.dtype = torch.float64,
    generator: Optional[torch.Generator] = None,
    state: Optional[dict] = None,
) -> SpecNet:
    """Build `spec` in eval mode; weights from `state`, else random with non-trivial BN statistics."""
    shared = {"relu": None} if spec.shared_relu else {}
    mods, _ = _build_layers(spec.layers, spec.input_shape, shared)
    net = SpecNet(spec, mods).to(dtype)
    if state is not None:
        load_state(net, state)
    else:
        randomize(net, generator=generator)
    return net.eval()


def state_of(net: nn.Module) -> dict:
    """Parameters and floating buffers as nested lists (JSON-ready), keyed by state-dict name."""
    return {
        k: v.detach().cpu().tolist()
        for k, v in net.state_dict().items()
        if v.is_floating_point()
    }


def load_state(net: nn.Module, state: dict) -> None:
    """Copy nested-list (or tensor) weights into `net`; every floating entry must be present."""
    own = net.state_dict()
    missing = [k for k, v in own.items() if v.is_floating_point() and k not in state]
    if missing:
        raise InputError(f"weights missing for {', '.join(missing[:5])}")
    with torch.no_grad():
        for k, v in own.items():
            if k in state and v.is_floating_point():
                src = torch.as_tensor(state[k], dtype=v.dtype)
                if src.shape != v.shape:
                    raise InputError(f"weight {k} has shape {tuple(src.shape)}, expected {tuple(v.shape)}")
                v.copy_(src)


# -- serialization ------------------------------------------------------------------------
def _layer_to_dict(l: Any) -> dict:
    d = {"type": type(l).__name__}
    for f in fields(l):
        v = getattr(l, f.name)
        d[f.name] = [_layer_to_dict(b) for b in v] if f.name == "body" else v
    return d


def _layer_from_dict(d: dict) -> Any:
    d = dict(d)
    try:
        cls = LAYER_TYPES[d.pop("type")]
    except KeyError as e:
        raise InputError(f"unknown layer type {e.args[0]!r}") from None
    if cls is Residual:
        d["body"] = tuple(_layer_from_dict(b) for b in d.get("body", ()))
    return cls(**d)


def spec_to_dict(spec: NetSpec) -> dict:
    return {
        "input_shape": list(spec.input_shape),
        "layers": [_layer_to_dict(l) for l in spec.layers],
        "shared_relu": spec.shared_relu,
    }


def spec_from_dict(d: dict) -> NetSpec:
    return NetSpec(tuple(d["input_shape"]), tuple(_layer_from_dict(l) for l in d["layers"]), d.get("shared_relu", False))


def to_dict(net: SpecNet) -> dict:
    """Spec and weights of a SpecNet as a JSON-ready dict."""
    return {"spec": spec_to_dict(net.spec), "state": state_of(net)}


def from_dict(d: dict, *, dtype: torch.dtype = torch.float64) -> SpecNet:
    """Rebuild a SpecNet saved with ``to_dict``."""
    return build(spec_from_dict(d["spec"]), dtype=dtype, state=d["state"])

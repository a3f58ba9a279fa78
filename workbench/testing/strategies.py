"""Public Hypothesis strategies: fixture networks (structure first, then weights), inputs,
baselines and targets that fit them.

Values come mostly from a dyadic grid (multiples of 1/4 in [-2, 2]), so pre-activations land
exactly on ReLU kinks and max-pool ties often, otherwise from finer dyadic values k / 2**e
(e <= 12) that shrink to integers and halves: shrunk counterexamples read like hand-written
ones (weights 0, 1, -1/2 ...), with no denormals. Use them in your own tests::

    from hypothesis import given
    from workbench import strategies as wst

    @given(wst.network_cases())
    def test_mine(case): ...
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import Tensor

from workbench.nets import spec as S

Kind = str  # "mlp" | "cnn" | "any"

#: activations drawn for hidden layers; ReLU first, so failures shrink to ReLU networks
ACTIVATION_NAMES = ("relu", "softplus", "gelu")


#: grid values, simplest first: Hypothesis shrinks towards the front of this list
GRID = (1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 0.0, 0.25, -0.25, 1.5, -1.5, 0.75, -0.75, 1.25, -1.25, 1.75, -1.75)


#: finest resolution of a drawn value: multiples of 2**-FINEST_BITS
FINEST_BITS = 12


@functools.lru_cache(maxsize=None)
def fine_dyadic(limit: float = 2.0, bits: int = FINEST_BITS) -> st.SearchStrategy[float]:
    """k / 2**e, |k / 2**e| <= limit, e <= bits: a generic-looking value that shrinks to an
    integer or a half (Hypothesis shrinks e and k towards 0), never a denormal, exact in float32."""

    @st.composite
    def draw(d: st.DrawFn) -> float:
        e = d(st.integers(0, bits))
        top = int(limit * 2**e)
        return d(st.integers(-top, top)) / 2**e

    return draw()


@functools.lru_cache(maxsize=None)
def grid_values(limit: float = 2.0) -> st.SearchStrategy[float]:
    """Mostly values of GRID (dyadic: kinks and ties are hit exactly), sometimes a finer dyadic value
    (``fine_dyadic``: generic position, shrinking to integers and halves)."""
    dyadic = st.sampled_from([v for v in GRID if abs(v) <= limit])
    return st.one_of(dyadic, fine_dyadic(limit))


def scaled_offsets(max_exponent: int = 24) -> st.SearchStrategy[float]:
    """±2**-e, e in [0, max_exponent]: changes of an input across scales (output changes far
    below 1 reach methods that drop small attributions)."""
    return st.tuples(st.sampled_from([1.0, -1.0]), st.integers(0, max_exponent)).map(lambda t: t[0] * 2.0 ** -t[1])


def _activation(name: str, inplace: bool) -> object:
    return {"relu": S.ReLU(inplace=inplace), "softplus": S.Softplus(), "gelu": S.GELU()}[name]


@st.composite
def mlp_specs(
    draw: st.DrawFn,
    *,
    max_inputs: int = 3,
    min_inputs: int = 1,
    max_hidden_layers: int = 2,
    min_hidden_layers: int = 0,
    max_width: int = 3,
    max_outputs: int = 2,
    activations: Sequence[str] = ("relu",),
    batchnorm: bool = True,
) -> S.NetSpec:
    """Linear/activation stacks: Linear(w1) -> [BatchNorm] -> act -> ... -> Linear(outputs)."""
    d = draw(st.integers(min_inputs, max_inputs))
    act = draw(st.sampled_from(list(activations)))
    inplace = draw(st.booleans())
    layers: list = []
    for _ in range(draw(st.integers(min_hidden_layers, max_hidden_layers))):
        layers.append(S.Linear(draw(st.integers(1, max_width)), bias=draw(st.booleans().map(lambda b: not b))))
        if batchnorm and draw(st.integers(0, 3)) == 3:
            layers.append(S.BatchNorm())
        layers.append(_activation(act, inplace))
    layers.append(S.Linear(draw(st.integers(1, max_outputs)), bias=draw(st.booleans().map(lambda b: not b))))
    shared = act == "relu" and draw(st.integers(0, 3)) == 3
    return S.NetSpec((d,), tuple(layers), shared_relu=shared)


@st.composite
def cnn_specs(
    draw: st.DrawFn,
    *,
    max_channels: int = 2,
    min_channels: int = 1,
    max_size: int = 5,
    max_outputs: int = 2,
    activations: Sequence[str] = ("relu",),
    min_hidden_layers: int = 0,
) -> S.NetSpec:
    """Conv2d -> [BatchNorm] -> act -> [Residual] -> [Max|AvgPool] -> Flatten -> Linear [-> act -> Linear]."""
    c = draw(st.integers(min_channels, max_channels))
    size = draw(st.integers(3, max_size))
    act = draw(st.sampled_from(list(activations)))
    inplace = draw(st.booleans())
    width = draw(st.integers(1, 2))
    k = draw(st.integers(1, 3))
    pad = draw(st.integers(0, 1)) if k > 1 else 0
    layers: list = [S.Conv2d(width, k, padding=pad, bias=draw(st.booleans().map(lambda b: not b)))]
    if draw(st.integers(0, 2)) == 2:
        layers.append(S.BatchNorm())
    layers.append(_activation(act, inplace))
    if draw(st.integers(0, 2)) == 2:
        layers.append(S.Residual((S.Conv2d(width, 3, padding=1), _activation(act, False))))
    side = size + 2 * pad - k + 1
    if side >= 2:
        pool = draw(st.sampled_from(["none", "max", "avg"]))
        if pool == "max":
            layers.append(S.MaxPool2d(2))
        elif pool == "avg":
            layers.append(S.AvgPool2d(2))
    layers.append(S.Flatten())
    if min_hidden_layers > 0 or draw(st.booleans()):  # a hidden Linear: a site between two Linear layers
        layers += [S.Linear(draw(st.integers(1, 3))), _activation(act, inplace)]
    layers.append(S.Linear(draw(st.integers(1, max_outputs))))
    shared = act == "relu" and draw(st.integers(0, 3)) == 3
    return S.NetSpec((c, size, size), tuple(layers), shared_relu=shared)


def specs(kind: Kind = "any", *, activations: Sequence[str] = ("relu",), **options) -> st.SearchStrategy[S.NetSpec]:
    """Network structures of a kind: "mlp", "cnn" or "any" (MLPs first: they shrink further)."""
    mlp_keys = {"max_inputs", "min_inputs", "max_hidden_layers", "min_hidden_layers", "max_width", "max_outputs", "batchnorm"}
    cnn_keys = {"max_channels", "min_channels", "max_size", "max_outputs", "min_hidden_layers"}
    mlp = mlp_specs(activations=activations, **{k: v for k, v in options.items() if k in mlp_keys})
    cnn = cnn_specs(activations=activations, **{k: v for k, v in options.items() if k in cnn_keys})
    if kind == "mlp":
        return mlp
    if kind == "cnn":
        return cnn
    if kind == "any":
        return st.one_of(mlp, cnn)
    raise ValueError(f"unknown network kind {kind!r}; use 'mlp', 'cnn' or 'any'")


def _array(shape: tuple, elements: st.SearchStrategy[float]) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float64, shape, elements=elements)


@st.composite
def weights_for(draw: st.DrawFn, spec: S.NetSpec, *, dtype: torch.dtype = torch.float64) -> S.SpecNet:
    """A network of structure `spec` with drawn weights; BatchNorm variances stay positive."""
    net = S.build(spec, dtype=dtype, generator=torch.Generator().manual_seed(0))
    state = {}
    for name, t in net.state_dict().items():
        if not t.is_floating_point():
            continue
        if name.endswith("running_var"):
            elements = st.sampled_from([1.0, 0.25, 0.5, 2.0, 4.0])
        elif name.endswith("weight") and t.dim() == 1:  # BatchNorm gamma
            elements = st.sampled_from([1.0, 0.5, 2.0, -1.0, 0.25])
        else:
            elements = grid_values()
        state[name] = draw(_array(tuple(t.shape), elements))
    S.load_state(net, state)
    return net


def networks(kind: Kind = "any", *, dtype: torch.dtype = torch.float64, activations: Sequence[str] = ("relu",), **options) -> st.SearchStrategy[S.SpecNet]:
    """Networks: a structure from ``specs`` first, then weights that fit it."""
    return specs(kind, activations=activations, **options).flatmap(lambda s: weights_for(s, dtype=dtype))


def inputs(spec: S.NetSpec, *, batch: int = 1, dtype: torch.dtype = torch.float64, elements: Optional[st.SearchStrategy[float]] = None) -> st.SearchStrategy[Tensor]:
    """Batched inputs of shape (batch, *spec.input_shape) from the grid (kinks reachable)."""
    return _array((batch, *spec.input_shape), elements or grid_values()).map(lambda a: torch.tensor(a, dtype=dtype))


def baselines(spec: S.NetSpec, *, batch: int = 1, dtype: torch.dtype = torch.float64) -> st.SearchStrategy[Tensor]:
    """Baselines fitting `spec`: the zero baseline (shrink target), constants, or grid points."""
    shape = (batch, *spec.input_shape)
    zero = st.just(torch.zeros(shape, dtype=dtype))
    const = grid_values().map(lambda v: torch.full(shape, float(v), dtype=dtype))
    return st.one_of(zero, const, inputs(spec, batch=batch, dtype=dtype))


def targets(spec: S.NetSpec) -> st.SearchStrategy[int]:
    """A class index valid for `spec`'s output."""
    return st.integers(0, spec.outputs - 1)


@dataclass(frozen=True)
class NetworkCase:
    """A network with one input, baseline and target drawn to fit it."""

    net: S.SpecNet
    x: Tensor
    baseline: Tensor
    target: int


@st.composite
def network_cases(draw: st.DrawFn, kind: Kind = "any", *, dtype: torch.dtype = torch.float64, activations: Sequence[str] = ("relu",), **options) -> NetworkCase:
    """A network, an input, a baseline and a target that fit together."""
    net = draw(networks(kind, dtype=dtype, activations=activations, **options))
    return NetworkCase(net, draw(inputs(net.spec, dtype=dtype)), draw(baselines(net.spec, dtype=dtype)), draw(targets(net.spec)))


@dataclass(frozen=True)
class Family:
    """Which networks a check draws: kind ("mlp", "cnn", "any") and hidden activations."""

    kind: Kind = "any"
    activations: tuple = ("relu",)

    def specs(self, **options) -> st.SearchStrategy[S.NetSpec]:
        return specs(self.kind, activations=self.activations, **options)

    def networks(self, dtype: torch.dtype = torch.float64, **options) -> st.SearchStrategy[S.SpecNet]:
        return networks(self.kind, dtype=dtype, activations=self.activations, **options)

    def cases(self, dtype: torch.dtype = torch.float64, **options) -> st.SearchStrategy[NetworkCase]:
        return network_cases(self.kind, dtype=dtype, activations=self.activations, **options)

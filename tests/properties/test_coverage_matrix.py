"""Layer coverage: module types x methods, generated from torch's module lists, the method registry
and each method's declared ``coverage`` (``workbench.core.coverage``).

Every cell runs the method on a fixture network holding one layer of the type (float64, random
non-zero biases, non-zero baseline) and is either refused with ``UnsupportedModelError`` naming
the layer and its type, or exact, checked against a reference that does not use the method's
code: summation-to-delta (DeepLift), the decomposition residual (FullGrad), an independent
autograd implementation of the ReLU rule (Guided Backprop, DeconvNet, RectGrad), LRP-0 = x * dF/dx
on the bias-free network (LRP), completeness and agreement with quadrature IG (exact IG). A type
the coverage declares as modelled must not be refused.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import workbench
from workbench.core.coverage import Coverage
from workbench.methods.registry import methods as registered
from workbench.rules.rules import ELEMENTWISE

# -- the module types: generated from torch's own lists ---------------------------------------
_NEEDS = {  # constructor arguments for the types that have required ones
    "Threshold": (0.1, 20.0), "Softmax": dict(dim=1), "LogSoftmax": dict(dim=1), "Softmin": dict(dim=1),
    "GLU": dict(dim=1), "LPPool1d": (2, 2), "LPPool2d": (2, 2), "LPPool3d": (2, 2),
}
_SKIP_POOLS = {"MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d", "FractionalMaxPool2d", "FractionalMaxPool3d"}  # need indices / draw randomly


def _pool(name: str) -> nn.Module:
    cls = getattr(nn, name)
    if name in _NEEDS:
        return cls(*_NEEDS[name])
    return cls(2) if "Adaptive" in name else cls(2, stride=1 if "Max" in name else 2)


class Functional(nn.Module):
    """A nonlinearity hidden in a forward: ``F.gelu`` called functionally."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)


class InPlace(nn.Module):
    """An in-place ReLU inside a forward (no ReLU module)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone().relu_()


class _Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return 3 * x * x * g


class CustomFunction(nn.Module):
    """A nonlinearity written as a custom torch.autograd.Function."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Cube.apply(x)


class MaskGate(nn.Module):
    """A ReLU written as an affine-looking product with a mask computed from the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (x > 0).to(x.dtype)


class ArgmaxGather(nn.Module):
    """Each row's maximum, selected by gather at argmax indices (a max pool written by hand)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.gather(-1, x.argmax(-1, keepdim=True)).expand_as(x)


class LSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 4, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(4, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mha(x, x, x, need_weights=False)[0]


def layer_types() -> dict[str, Callable[[], tuple[nn.Module, tuple]]]:
    """name -> factory of (layer, its input shape without the batch)."""
    out: dict[str, Callable[[], tuple[nn.Module, tuple]]] = {}
    for name in nn.modules.activation.__all__:
        if name == "MultiheadAttention":
            continue
        cls = getattr(nn, name)
        shape = (2, 2, 2) if name == "Softmax2d" else (2, 4)
        out[name] = (lambda cls=cls, name=name, shape=shape: (cls(*_NEEDS[name]) if isinstance(_NEEDS.get(name), tuple) else cls(**_NEEDS.get(name, {})), shape))
    for name in nn.modules.pooling.__all__:
        if name in _SKIP_POOLS:
            continue
        d = int(name[-2])
        out[name] = (lambda name=name, d=d: (_pool(name), (2,) + (4,) * d))
    for cls, shape in ((Functional, (2, 4)), (InPlace, (2, 4)), (CustomFunction, (2, 4)), (LSTM, (2, 4)), (Attention, (2, 4)),
                       (MaskGate, (2, 4)), (ArgmaxGather, (2, 4))):
        out[cls.__name__] = (lambda cls=cls, shape=shape: (cls(), shape))
    return out


LAYERS = layer_types()
LAYER_INDEX = 3  # the layer's path in the fixture Sequential


def fixture(layer_name: str, *, bias: bool = True, seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Linear -> ReLU -> Unflatten -> LAYER -> Flatten -> Linear(3), float64, eval, random biases."""
    torch.manual_seed(seed)
    layer, shape = LAYERS[layer_name]()
    units = 1
    for s in shape:
        units *= s
    head = nn.Sequential(nn.Linear(6, units), nn.ReLU(), nn.Unflatten(1, shape), layer, nn.Flatten())
    head = head.double().eval()
    with torch.no_grad():
        width = head(torch.zeros(1, 6, dtype=torch.float64)).shape[1]
    net = nn.Sequential(*head, nn.Linear(width, 3).double()).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn_like(m.weight))
                m.bias.copy_(0.5 * torch.randn_like(m.bias) if bias else torch.zeros_like(m.bias))
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(2, 6, generator=g, dtype=torch.float64)
    x0 = 0.5 * torch.randn(2, 6, generator=g, dtype=torch.float64)
    return net, x, x0


# -- the methods: every registered method that declares a coverage, plus exact IG ------------
def covered_methods() -> dict[str, workbench.methods.base.Method]:
    out = {}
    for info in registered():
        m = workbench.method(info.name)
        if isinstance(getattr(m, "coverage", None), Coverage):
            out[info.name] = m
    out["integrated-gradients[rule='exact']"] = workbench.method("integrated-gradients", rule="exact")
    return out


METHODS = covered_methods()


# -- references -----------------------------------------------------------------------------
class _Rule(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, kind: str, q: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(z)
        ctx.kind, ctx.q = kind, q
        return z.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple:  # type: ignore[override]
        (z,) = ctx.saved_tensors
        if ctx.kind == "guided-backprop":
            return g.clamp(min=0) * (z > 0), None, None
        if ctx.kind == "deconvnet":
            return g.clamp(min=0), None, None
        s = (z.clamp(min=0) * g).reshape(z.shape[0], -1)  # rectgrad
        tau = torch.quantile(s, ctx.q / 100.0, dim=1, keepdim=True, interpolation="linear")
        return g * (s > tau).reshape(g.shape), None, None


class _RuleReLU(nn.Module):
    def __init__(self, kind: str, q: float) -> None:
        super().__init__()
        self.kind, self.q = kind, q

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return _Rule.apply(z, self.kind, self.q)


def _modified_gradient(net: nn.Module, x: torch.Tensor, t: int, kind: str, q: float = 98.0) -> torch.Tensor:
    ref = copy.deepcopy(net)
    for parent in ref.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.ReLU:
                setattr(parent, name, _RuleReLU(kind, q))
    xs = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(ref(xs)[:, t].sum(), xs)
    return g


def _close(a: torch.Tensor, r: torch.Tensor, rtol: float = 1e-9) -> float:
    scale = max(float(r.abs().max()), float(a.abs().max()), 1.0)
    return float((a - r).abs().max()) / scale


def exactness(name: str, method: Any, layer: str) -> float:
    """The cell's residual against its reference (0 = exact); raises what the method raises."""
    net, x, x0 = fixture(layer)
    t = 1
    if name == "deeplift":
        a = method.attribute(net, x, target=t, baseline=x0)
        with torch.no_grad():
            delta = net(x)[:, t] - net(x0)[:, t]
        return float(((a.sum(1) - delta).abs() / (1 + delta.abs())).max())
    if name in ("guided-backprop", "deconvnet", "rectgrad"):
        a = method.attribute(net, x, target=t)
        r = _modified_gradient(net, x, t, name, getattr(method, "q", 98.0))
        return _close(a, r * x if name == "rectgrad" else r)
    if name == "lrp":
        method.attribute(net, x, target=t)  # refusal status of the default composite
        plain, _, _ = fixture(layer, bias=False)
        a = workbench.method("lrp", composite="zero").attribute(plain, x, target=t)
        xs = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(plain(xs)[:, t].sum(), xs)
        return _close(a, x * g)
    if name.startswith("integrated-gradients"):
        method.attribute(net, x, target=t, baseline=x0)  # attribute checks the coverage
        p = method.integrate(net, x, target=t, baseline=x0)
        q = workbench.method("integrated-gradients", tolerance=1e-9, max_steps=1 << 14).attribute(net, x, target=t, baseline=x0)
        return max(float(p.residual.abs().max()), _close(p.attribution, q, 1e-6) * 1e-3)
    # full-gradients and the FullGrad maps: the decomposition they are built from is complete
    method.attribute(net, x, target=t)
    fg = workbench.full_gradients(net, x, t, strict=False, unsupported=method.unsupported)
    return float(fg.relative_residual.max())


@functools.lru_cache(maxsize=None)
def run_cell(name: str, layer: str) -> tuple[str, float]:
    """("exact", residual) or ("refused", 0.0); a refusal must name the layer's path."""
    try:
        return "exact", exactness(name, METHODS[name], layer)
    except workbench.UnsupportedModelError as e:
        msg = str(e)
        assert f"'{LAYER_INDEX}'" in msg or f"'{LAYER_INDEX}." in msg, msg
        return "refused", 0.0


def modelled(method: Any, layer: str) -> bool:
    cov: Coverage = method.coverage
    module, _ = LAYERS[layer]()
    return isinstance(module, cov.modules) if cov.modules else False


@functools.lru_cache(maxsize=None)
def nonlinear(layer: str) -> bool:
    """Measured, not declared: L(a + c b) != L(a) + c L(b) for random a, b and c = -1.5."""
    net, _, _ = fixture(layer)
    module = net[LAYER_INDEX]
    g = torch.Generator().manual_seed(3)
    _, shape = LAYERS[layer]()
    a, b = (torch.randn(2, *shape, generator=g, dtype=torch.float64) for _ in range(2))
    with torch.no_grad():
        return not torch.allclose(module(a - 1.5 * b), module(a) - 1.5 * module(b), rtol=1e-9, atol=1e-9)


#: methods whose reference keeps the plain gradient off the ReLUs: an unmodelled nonlinear layer
#: would agree with it, so for them "exact" on a nonlinear layer also needs the layer modelled
GRADIENT_REFERENCE = {"guided-backprop", "deconvnet", "rectgrad"}


def verdict(method_name: str, method: Any, layer: str, status: str, residual: float) -> str:
    """"" when the cell is honest, else what is wrong with it."""
    if status == "refused":
        return f"{method_name} declares {layer} modelled but refused it" if modelled(method, layer) else ""
    if residual > 1e-9:
        return f"{method_name} on {layer}: residual {residual:.3g} without a refusal"
    if method_name in GRADIENT_REFERENCE and nonlinear(layer) and not modelled(method, layer):
        return f"{method_name} on {layer}: a nonlinear layer it does not model, answered by the plain gradient"
    return ""


@pytest.mark.parametrize("method_name", list(METHODS))
def test_every_cell_is_exact_or_refused(method_name):
    for layer in LAYERS:
        status, residual = run_cell(method_name, layer)
        problem = verdict(method_name, METHODS[method_name], layer, status, residual)
        assert not problem, problem


def test_a_silent_fallback_is_caught():
    """The matrix check fails a method that answers unmodelled layers by the plain gradient."""
    gbp = workbench.method("guided-backprop", unsupported="gradient")
    residual = exactness("guided-backprop", gbp, "GELU")
    assert "plain gradient" in verdict("guided-backprop", gbp, "GELU", "exact", residual)
    dl = workbench.method("deeplift", unsupported="gradient")
    for layer in ("LSTM", "CustomFunction", "Softmax"):
        residual = exactness("deeplift", dl, layer)
        assert "without a refusal" in verdict("deeplift", dl, layer, "exact", residual), (layer, residual)
    assert dl.claims == {"dummy": None}  # the convention withdraws the completeness claim


def test_the_matrix_is_not_trivial():
    """Both outcomes occur for every method, and the hidden nonlinearities are refused by all but
    the decomposition (for which an in-place / functional ReLU is exact); so are the gates computed
    from the input that autograd does not record (a mask product, a gather at argmax)."""
    hidden = ("CustomFunction", "LSTM", "Attention", "Functional", "MaskGate", "ArgmaxGather")
    for name in METHODS:
        statuses = {layer: run_cell(name, layer)[0] for layer in ("ReLU", "MaxPool2d") + hidden}
        assert statuses["ReLU"] == statuses["MaxPool2d"] == "exact", (name, statuses)
        assert all(statuses[h] == "refused" for h in hidden), (name, statuses)


def test_deeplift_models_every_elementwise_activation_and_pool():
    dl = METHODS["deeplift"]
    for layer in [t.__name__ for t in ELEMENTWISE] + [n for n in LAYERS if "Pool" in n and not n.startswith("LP")]:
        assert run_cell("deeplift", layer)[0] == "exact", layer
        assert modelled(dl, layer) or "Avg" in layer, layer


def test_convention_is_recorded():
    net, x, _ = fixture("GELU")
    m = workbench.method("guided-backprop", unsupported="gradient")
    m.attribute(net, x, target=0)
    assert m.last_conventions and "GELU" in m.last_conventions[0] and "unsupported=gradient" in m.label
    m.attribute(*fixture("ReLU")[:2], target=0)
    assert m.last_conventions == ()

"""Where a given network can be rewritten: its traced graph read for transform sites.

A *site* is a pair of affine modules A -> B (``Conv2d`` with ``groups == 1``, or ``Linear``)
joined by a single path of CHANNELWISE operations: each node on the path has exactly one user,
and every operation acts on each channel (feature) separately -- BatchNorm, elementwise
activations, pooling, dropout (eval mode: identity), flatten. Output channel k of A then feeds
only input channel k of B (through a flatten: B's input columns ``[k*S, (k+1)*S)``), so
permuting, rescaling or splitting A's channel k with the matching change of B's inputs keeps the
function (Sundararajan et al. 2017, Sec. 2: implementation invariance; Ancona et al. 2018).

Inside a residual block (torchvision ``BasicBlock``/``Bottleneck``) the conv1 -> bn1 -> relu ->
conv2 path is a site; a block's last conv feeds an addition and is not (refused by name).

The graph comes from ``torch.fx.symbolic_trace``; the rewrites themselves act on a copy of the
user's ``nn.Module``, which methods then see as the ordinary torchvision model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import fx, nn

from workbench.core.errors import ModelError, UnsupportedModelError

#: elementwise modules with g(c z) = c g(z) for c > 0 (a channel may be rescaled through them)
HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Dropout, nn.Identity, nn.Flatten)
#: channelwise but not positively homogeneous (permute and split are valid, rescale is not)
CHANNELWISE = HOMOGENEOUS + (nn.BatchNorm2d, nn.BatchNorm1d, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.Sigmoid, nn.Tanh, nn.ELU, nn.Softplus, nn.Hardtanh)
_HOMOGENEOUS_FUNCTIONS = (F.relu, torch.relu, torch.flatten, F.max_pool2d, F.adaptive_avg_pool2d, F.avg_pool2d)
_FLATTEN_FUNCTIONS = (torch.flatten,)


@dataclass(frozen=True)
class Site:
    """Affine module ``a`` -> ``b`` (module names) through the channelwise ``path`` (module names;
    functions appear as ``"<fn>"``); ``rescale_at``: the module whose channel a rescale multiplies
    (the last affine one before B: A or a BatchNorm), None where the path is not homogeneous."""

    a: str
    b: str
    path: tuple
    width: int
    rescale_at: Optional[str]

    def describe(self) -> str:
        return " -> ".join((self.a,) + self.path + (self.b,))


@dataclass(frozen=True)
class Graph:
    """The model's traced call graph, by module name."""

    model: nn.Module
    graph: fx.Graph
    calls: dict  # module name -> number of calls in the traced forward

    def module(self, name: str) -> nn.Module:
        return self.model.get_submodule(name)


def trace(model: nn.Module) -> Graph:
    """Trace `model` with torch.fx (refused by name when its forward cannot be traced)."""
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 - any trace failure is the model's unsupported structure
        raise UnsupportedModelError(f"{type(model).__name__} cannot be traced by torch.fx ({type(e).__name__}: {str(e)[:200]}); the network check needs a traceable forward") from None
    calls: dict = {}
    for n in gm.graph.nodes:
        if n.op == "call_module":
            calls[n.target] = calls.get(n.target, 0) + 1
    return Graph(model, gm.graph, calls)


def _is_affine(g: Graph, node: fx.Node) -> bool:
    if node.op != "call_module":
        return False
    m = g.module(node.target)
    return isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1)


def _width(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _channelwise(g: Graph, node: fx.Node) -> tuple[bool, bool]:
    """(channelwise, positively homogeneous) for one node on a path."""
    if node.op == "call_module":
        m = g.module(node.target)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return g.calls[node.target] == 1, False  # BN statistics are rewritten: one call only
        return isinstance(m, CHANNELWISE), isinstance(m, HOMOGENEOUS)
    if node.op == "call_function" and node.target in _HOMOGENEOUS_FUNCTIONS:
        if node.target in _FLATTEN_FUNCTIONS and not (len(node.args) >= 2 and node.args[1] == 1 and len(node.args) <= 2):
            return False, False
        return True, True
    if node.op == "call_method" and node.target in ("relu", "relu_"):
        return True, True
    return False, False


def _label(g: Graph, node: fx.Node) -> str:
    if node.op == "call_module":
        return str(node.target)
    return f"<{getattr(node.target, '__name__', node.target)}>"


def sites(g: Graph) -> list[Site]:
    """Every A -> B site of the model, in graph order."""
    out = []
    for node in g.graph.nodes:
        if not _is_affine(g, node) or g.calls[node.target] != 1:
            continue
        a = g.module(node.target)
        cur, path, homogeneous, rescale_at = node, [], True, node.target
        while len(cur.users) == 1:
            nxt = next(iter(cur.users))
            if _is_affine(g, nxt):
                if g.calls[nxt.target] == 1 and nxt.args and nxt.args[0] is cur and len(nxt.args) == 1 and not nxt.kwargs:
                    b = g.module(nxt.target)
                    fits = (b.in_features % _width(a) == 0) if isinstance(b, nn.Linear) else (isinstance(a, nn.Conv2d) and b.in_channels == _width(a))
                    if fits:
                        out.append(Site(node.target, nxt.target, tuple(path), _width(a), rescale_at if homogeneous else None))
                break
            ok, hom = _channelwise(g, nxt)
            if not ok or not nxt.args or nxt.args[0] is not cur:
                break
            if nxt.op == "call_module" and isinstance(g.module(nxt.target), nn.modules.batchnorm._BatchNorm):
                rescale_at, homogeneous = nxt.target, True  # a later affine map absorbs what came before
            elif not hom:
                homogeneous = False
            path.append(_label(g, nxt))
            cur = nxt
    return out


def batchnorm_folds(g: Graph) -> list[tuple[str, str]]:
    """(conv, batchnorm) pairs where the BatchNorm reads only that conv's output: foldable."""
    out = []
    for node in g.graph.nodes:
        if node.op != "call_module" or not isinstance(g.module(node.target), nn.Conv2d) or g.calls[node.target] != 1:
            continue
        if len(node.users) != 1:
            continue
        nxt = next(iter(node.users))
        if nxt.op == "call_module" and isinstance(g.module(nxt.target), nn.BatchNorm2d) and g.calls[nxt.target] == 1 and nxt.args[0] is node:
            out.append((node.target, nxt.target))
    return out


def first_conv(g: Graph) -> str:
    """The module that alone reads the input (a Conv2d with groups=1), or a refusal naming it."""
    inputs = [n for n in g.graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise UnsupportedModelError(f"the model takes {len(inputs)} inputs; the network check needs one image input")
    users = list(inputs[0].users)
    if len(users) != 1 or users[0].op != "call_module":
        raise UnsupportedModelError(f"the model's input is read by {', '.join(_label(g, u) for u in users)}; the dummy and symmetry checks need one first conv")
    m = g.module(users[0].target)
    if not (isinstance(m, nn.Conv2d) and m.groups == 1) or g.calls[users[0].target] != 1:
        raise UnsupportedModelError(f"the model's first layer {users[0].target} is a {type(m).__name__}; the dummy and symmetry checks need a Conv2d with groups=1 called once")
    return str(users[0].target)


def head(g: Graph) -> str:
    """The Linear module whose output is the model's output (the classifier head)."""
    outputs = [n for n in g.graph.nodes if n.op == "output"]
    src = outputs[0].args[0] if outputs else None
    if not isinstance(src, fx.Node) or src.op != "call_module" or not isinstance(g.module(src.target), nn.Linear) or g.calls[src.target] != 1:
        what = _label(g, src) if isinstance(src, fx.Node) else repr(src)
        raise UnsupportedModelError(f"the model's output comes from {what}, not from a Linear head; the linearity check sums two Linear heads")
    if len(src.users) != 1:
        raise ModelError(f"the head {src.target} is read elsewhere in the model")
    return str(src.target)

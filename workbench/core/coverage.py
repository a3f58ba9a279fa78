"""Layer coverage: which operations a method models exactly, and a refusal for every other one.

A method that propagates its own signal (DeepLift, Guided Backprop, LRP, FullGrad's bias
collection, exact IG) is exact only on the operations it models; on any other one it silently
becomes another method (the plain gradient runs there). Each such method declares a
``Coverage``: the nonlinear *module types* it models (from the rules it attaches: ``Rule.models``,
one source of truth) and the *kinds* of operations it handles exactly by their plain gradient
wherever they occur (``STRUCTURAL``: copies, views, selections; ``AFFINE``: maps linear in the
one input that depends on x -- Linear, Conv, average pools, eval BatchNorm, adding a constant;
``SUM``: sums of two inputs that both depend on x, e.g. a residual ``+``).

``Tracer`` checks one real forward pass: forward (pre-)hooks on every module record which
autograd nodes each module call created (the nodes between its output and its inputs, the
innermost module first), and ``Tracer.check`` walks the autograd graph of the output. Every
node is classified by its type (``classify``, deny by default: an unknown node type is
nonlinear); a node that is neither modelled by a rule (the rule engine's own node) nor created
inside a module of a modelled type, nor of an allowed kind, is *unsupported*. So a nonlinearity
hidden in a ``forward`` -- ``F.gelu`` called functionally, an in-place ``x.relu_()``, a custom
``torch.autograd.Function``, the gates of an LSTM, the softmax of attention -- is found as
surely as a module; it is named by the path and type of the module whose ``forward`` ran it.

Autograd records only differentiable dependence, so a *data-dependent gate* -- a value of x that
reaches a node through a non-differentiable path: a comparison mask in ``h * (h > 0)`` or
``h * (h > 0).float()``, argmax indices in ``h.gather(1, h.argmax(1, keepdim=True))``, a
``detach()``-ed or ``no_grad`` factor -- leaves a node that looks affine or structural although
the function is piecewise (its plain gradient drops the gate's own dependence on x). While a
traced forward runs, a ``TorchFunctionMode`` (``_HiddenDependence``) follows every torch call:
a tensor computed from x that carries no gradient is *hidden*, and a node created by a call
that takes such a tensor is a gate (``Tracer.gates``), nonlinear whatever its type. Calls that
read only metadata (``zeros_like``, ``new_ones``, ``size`` ...) carry nothing of x; a Python
branch on a value of x (``if h.sum() > 0``) is not seen.

An unsupported node raises ``UnsupportedModelError`` (path, type, operation, what to do) unless
the caller chose the named convention ``unsupported="gradient"`` (keep the plain gradient there),
which is then recorded (``Tracer.conventions``: one line per layer) on the method's
``last_conventions`` and in its label.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from workbench.core.errors import InputError, UnsupportedModelError

STRUCTURAL, AFFINE, SUM, NONLINEAR = "structural", "affine", "sum", "nonlinear"
#: what a gradient-propagating method handles exactly by the chain rule, wherever it occurs
LINEAR_KINDS = frozenset({STRUCTURAL, AFFINE, SUM})

#: node types that copy, move, select or re-type entries (each output entry is one input entry,
#: or a sum of copies' signals on the way back): exact under every method's backward
_STRUCTURAL = {
    "View", "Reshape", "ReshapeAlias", "UnsafeView", "Permute", "Transpose", "T", "Expand", "Squeeze", "Unsqueeze",
    "Cat", "Stack", "Slice", "Select", "Index", "Clone", "Flip", "Roll", "ToCopy", "Alias", "AsStrided",
    "Split", "SplitWithSizes", "Unbind", "Unfold", "ConstantPadNd", "Repeat", "Gather", "PixelShuffle",
    "PixelUnshuffle", "CopySlices", "Narrow", "Diagonal", "UpsampleNearest1D", "UpsampleNearest2D",
    "UpsampleNearest3D", "UpsampleNearestExact1D", "UpsampleNearestExact2D", "UpsampleNearestExact3D",
    "ReflectionPad1D", "ReflectionPad2D", "ReflectionPad3D", "ReplicationPad1D", "ReplicationPad2D",
    "ReplicationPad3D", "Contiguous", "Movedim", "ChannelShuffle", "NativeChannelShuffle", "Copy",
}
#: node types linear in each input; affine when one input depends on x, bilinear (nonlinear)
#: when two factors of a product do (``_PRODUCTS``)
_LINEAR = {
    "Add", "Sub", "Neg", "Rsub", "Addmm", "Mm", "Mv", "Bmm", "Matmul", "Addmv", "Addbmm", "Baddbmm", "Linear",
    "Convolution", "ConvolutionBackward", "Sum", "Mean", "AvgPool2D", "AvgPool3D", "AdaptiveAvgPool2D",
    "AdaptiveAvgPool3D", "NativeBatchNorm", "CudnnBatchNorm", "MiopenBatchNorm", "UpsampleLinear1D",
    "UpsampleBilinear2D", "UpsampleTrilinear3D", "UpsampleBicubic2D", "Cumsum", "Mul", "Div", "Dot", "MulScalar",
    "DivScalar",
} | _STRUCTURAL
#: products: nonlinear when two factors depend on x; Div: when the denominator does
_PRODUCTS = {"Mul", "Mm", "Mv", "Bmm", "Matmul", "Addmm", "Addmv", "Addbmm", "Baddbmm", "Dot", "Linear", "Convolution"}
_SUMS = {"Add", "Sub", "Rsub"}

#: torch calls whose output holds only metadata of their tensor arguments (shape, dtype, device),
#: no value of x: they never carry a hidden dependence (``_HiddenDependence``)
_METADATA_ONLY = frozenset({
    "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "randint_like",
    "new_zeros", "new_ones", "new_empty", "new_full", "size", "dim", "numel", "stride", "element_size",
    "is_floating_point", "is_complex", "get_device",
})

#: the rule engine's node (``rules.engine._RuleFunction``): the rule's own backward, modelled
RULE_NODE = "_RuleFunctionBackward"


def op_name(node: Any) -> str:
    """``ReluBackward0`` -> ``Relu``; a custom Function's node keeps its class name."""
    name = type(node).__name__
    return re.sub(r"Backward\d*$", "", name)


def _dependent_inputs(node: Any) -> list[int]:
    return [i for i, (f, _) in enumerate(node.next_functions) if f is not None]


def classify(node: Any) -> str:
    """STRUCTURAL, AFFINE, SUM or NONLINEAR for one autograd node (unknown types are NONLINEAR).

    Only tensors depending on the traced input carry graph edges (parameters are frozen while a
    method runs), so the number of edges tells x * c (affine) from x * x (bilinear)."""
    op = op_name(node)
    if op in _STRUCTURAL:
        return STRUCTURAL
    if op not in _LINEAR:
        return NONLINEAR
    deps = _dependent_inputs(node)
    if op == "Div":
        return AFFINE if deps == [0] else NONLINEAR
    if op in _PRODUCTS and op not in ("Addmm", "Addmv", "Addbmm", "Baddbmm", "Linear", "Convolution"):
        return AFFINE if len(deps) <= 1 else NONLINEAR
    if op in ("Addmm", "Addmv", "Addbmm", "Baddbmm"):  # bias + a @ b: nonlinear when a and b both depend
        return AFFINE if len([i for i in deps if i > 0]) <= 1 else NONLINEAR
    if op in ("Linear", "Convolution"):  # (input, weight[, bias])
        return AFFINE if deps in ([0], [0, 2], []) else NONLINEAR
    if op in _SUMS:
        return SUM if len(deps) > 1 else AFFINE
    return AFFINE


@dataclass(frozen=True)
class Coverage:
    """What a method models exactly.

    ``modules``: nonlinear module types modelled (by a rule, or by the method's own algebra);
    ``kinds``: operation kinds handled exactly by the plain gradient wherever they occur;
    ``ops``: nonlinear node operations (``op_name``) modelled wherever they run, also called
    functionally (FullGrad: ReLU and max pooling are positively homogeneous anywhere);
    ``advice``: what a user can do about an unsupported layer (the end of the error message);
    ``traced_by_method``: the method traces its own attribution pass (else ``precheck`` traces one).
    """

    method: str
    modules: tuple = ()
    kinds: frozenset = LINEAR_KINDS
    advice: str = "replace the layer by a modelled one or pass unsupported='gradient' to keep the plain gradient there"
    ops: frozenset = frozenset()
    traced_by_method: bool = True

    def models(self, module: nn.Module) -> bool:
        return bool(self.modules) and isinstance(module, self.modules)

    def describe(self) -> str:
        names = sorted({t.__name__ for t in self.modules})
        shown = ", ".join(names[:14]) + (f" and {len(names) - 14} more" if len(names) > 14 else "") if names else "no nonlinear module"
        return f"{shown}; {', '.join(sorted(self.kinds))} operations anywhere"


UNSUPPORTED = ("refuse", "gradient")


def check_unsupported(value: str, allowed: Sequence[str] = UNSUPPORTED) -> str:
    """Validate an ``unsupported=`` option (the convention for operations a method does not model)."""
    if value not in allowed:
        raise InputError(f"unsupported must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


@dataclass
class _Call:
    name: str
    module: nn.Module
    boundary: set


@dataclass(frozen=True)
class Unsupported:
    """One unsupported operation: the module whose forward ran it, and the node's operation."""

    path: str
    kind: str
    op: str
    leaf: bool = True

    def describe(self) -> str:
        where = f"layer {self.path!r}" if self.path else "the model"
        if not self.leaf:
            return f"{where} ({self.kind}), which runs {self.op} inside a forward"
        if self.op.lower() in self.kind.lower() or self.kind.lower() in self.op.lower():
            return f"{where} ({self.kind})"
        return f"{where} ({self.kind}, which runs {self.op})"


@dataclass
class Tracer:
    """Forward hooks recording which autograd nodes each module call created (see module docstring)."""

    model: nn.Module
    claims: dict = field(default_factory=dict)  # node -> (path, module)
    gates: dict = field(default_factory=dict)  # node -> the call that cut its gate off the graph (``_HiddenDependence``)
    checked: bool = False  # ``unsupported`` ran: the forward is over, stop following calls
    stack: list = field(default_factory=list)
    handles: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = {id(m): n for n, m in self.model.named_modules()}

    def attach(self, modules: Optional[Sequence[tuple[str, nn.Module]]] = None) -> None:
        for name, m in (modules if modules is not None else self.model.named_modules()):
            self.names.setdefault(id(m), name)
            self.handles.append(m.register_forward_pre_hook(self._pre, with_kwargs=True, prepend=True))
            self.handles.append(m.register_forward_hook(self._post, with_kwargs=True))

    def remove(self) -> None:
        for h in reversed(self.handles):
            h.remove()
        self.handles.clear()

    def _pre(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        boundary = {t.grad_fn for t in _tensors(args) + _tensors(tuple(kwargs.values())) if t.grad_fn is not None}
        self.stack.append(_Call(self.names.get(id(module), type(module).__name__), module, boundary))

    def _post(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        if not self.stack:
            return
        call = self.stack.pop()
        todo = [t.grad_fn for t in _tensors(output if isinstance(output, tuple) else (output,)) if t.grad_fn is not None]
        seen: set = set()
        while todo:  # inner calls claimed their nodes first; walk through them to this call's inputs
            node = todo.pop()
            if node in call.boundary or node in seen:
                continue
            seen.add(node)
            self.claims.setdefault(node, (call.name, call.module))
            todo += [f for f, _ in node.next_functions if f is not None]

    def unsupported(self, output: Tensor, coverage: Coverage) -> list[Unsupported]:
        """Every node of output's graph the coverage does not model, one per (path, op)."""
        self.checked = True
        found: dict = {}
        seen: set = set()
        todo = [output.grad_fn] if output.grad_fn is not None else []
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            todo += [f for f, _ in node.next_functions if f is not None]
            op = op_name(node)
            if type(node).__name__ in (RULE_NODE, "AccumulateGrad"):
                continue
            path, module = self.claims.get(node, ("", self.model))
            kind = classify(node)
            if node in self.gates:  # a data-dependent gate: piecewise, whatever the node's type
                kind, op = NONLINEAR, f"{op} gated by {self.gates[node]}"
            if kind in coverage.kinds:
                continue
            if kind == NONLINEAR and (op in coverage.ops or (_leaf(module) and coverage.models(module))):
                continue
            key = (path, "" if _leaf(module) else op)
            found.setdefault(key, Unsupported(path, type(module).__name__, op, _leaf(module)))
        return list(reversed(found.values()))  # forward order, roughly


def _leaf(m: nn.Module) -> bool:
    return not any(True for _ in m.children())


def _tensors(items: tuple) -> list[Tensor]:
    out = []
    for v in items:
        if isinstance(v, Tensor):
            out.append(v)
        elif isinstance(v, (tuple, list)):
            out += _tensors(tuple(v))
    return out


def refusal(items: Sequence[Unsupported], coverage: Coverage) -> UnsupportedModelError:
    shown = "; ".join(u.describe() for u in items[:4]) + (f"; and {len(items) - 4} more" if len(items) > 4 else "")
    return UnsupportedModelError(
        f"{coverage.method} does not model {shown}: its result there would silently be another method's. "
        f"Modelled: {coverage.describe()}. To proceed, {coverage.advice}"
    )


def conventions(items: Sequence[Unsupported], convention: str) -> tuple[str, ...]:
    """The record of a named convention applied: one line per unsupported operation."""
    return tuple(f"{u.describe()}: {convention}" for u in items)


_IN_PLACE_DUNDERS = frozenset({"__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__ior__", "__iand__"})


def _call_name(func: Any) -> str:
    name = getattr(func, "__name__", None) or type(func).__name__
    return name.strip("_") or name


class _HiddenDependence(TorchFunctionMode):
    """Follows values of x that autograd does not see, inside the traced model's forward calls.

    A tensor computed (by a torch call) from a tensor that requires grad, or from a hidden one,
    and that itself requires no grad is *hidden*: a comparison, argmax, ``detach``, a call under
    ``no_grad``, and what is computed from those. A call that takes a hidden tensor and creates
    an autograd node marks that node as a gate (``tracer.gates[node]``: the call that cut the
    dependence, e.g. ``gt``). Parameters are frozen while a method runs, so requiring grad means
    depending on x."""

    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.tracer = tracer
        self.hidden: WeakIdKeyDictionary = WeakIdKeyDictionary()  # tensor -> the call that cut it off

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Optional[dict] = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not self.tracer.stack or self.tracer.checked:  # outside the model's forward, or after the check (the backward pass)
            return out
        name = _call_name(func)
        if name in _METADATA_ONLY:
            return out
        ins = _tensors(args) + _tensors(tuple(kwargs.values()))
        gates = [self.hidden[t] for t in ins if not t.requires_grad and t in self.hidden]
        if not gates and not any(t.requires_grad for t in ins):
            return out  # nothing of x went in
        outs = _tensors(out if isinstance(out, (tuple, list)) else (out,))
        raw = getattr(func, "__name__", "")
        if args and isinstance(args[0], Tensor) and (raw in _IN_PLACE_DUNDERS or (raw.endswith("_") and not raw.endswith("__"))):
            outs.append(args[0])  # an in-place call (``h[h < 0] = 0``, ``h.mul_(m)``) gives its first argument a new node
        for t in outs:
            if t.requires_grad:
                if gates and t.grad_fn is not None:
                    self.tracer.gates.setdefault(t.grad_fn, gates[0])
            elif t not in self.hidden:
                self.hidden[t] = gates[0] if gates else name
        return out


@contextlib.contextmanager
def traced(model: nn.Module, modules: Optional[Sequence[tuple[str, nn.Module]]] = None) -> Iterator[Tracer]:
    """Attach a Tracer for the duration of a block (hooks removed, the mode left, in ``finally``)."""
    tracer = Tracer(model)
    try:
        tracer.attach(modules)
        with _HiddenDependence(tracer):
            yield tracer
    finally:
        tracer.remove()


def enforce(output: Tensor, tracer: Tracer, coverage: Coverage, unsupported: str = "refuse") -> tuple[str, ...]:
    """Refuse the unsupported operations of output's graph, or keep their plain gradient and record
    that (``unsupported="gradient"``).

    Returns the conventions applied (empty when everything is modelled)."""
    items = tracer.unsupported(output, coverage)
    if not items:
        return ()
    if unsupported != "gradient":  # other conventions (LRP's "pass") act through rules: the rest is refused
        raise refusal(items, coverage)
    return conventions(items, "plain gradient (unsupported='gradient')")


def precheck(method: Any, model: nn.Module, x: Tensor) -> tuple[str, ...]:
    """``Method.attribute``'s hook: for a method declaring a ``coverage`` it does not check on its own
    pass (``traced_by_method=False``: exact IG), trace one forward and refuse what it does not model."""
    coverage = getattr(method, "coverage", None)
    if not isinstance(coverage, Coverage) or coverage.traced_by_method:
        return ()
    return trace_check(model, x, coverage, getattr(method, "unsupported", "refuse"))


def trace_check(model: nn.Module, x: Tensor, coverage: Coverage, unsupported: str = "refuse") -> tuple[str, ...]:
    """One forward pass of the first sample of x under a Tracer, then ``enforce``: for methods that
    do not trace their own pass (exact IG). Parameters must already be frozen (``modelguard``)."""
    xs = x[:1].detach().clone().requires_grad_(True)
    with torch.enable_grad(), traced(model) as tracer:
        out = model(xs.clone())
    if not isinstance(out, Tensor):
        raise UnsupportedModelError(f"{coverage.method} needs a model returning one tensor, got {type(out).__name__}")
    return enforce(out, tracer, coverage, unsupported)

"""The rule engine: attach local backward rules to a torch model, and take them off again.

Shape of a rule (see ``rules.py``): ``Rule.backward(module, x, y, grad, state) -> grad_x``, the
signal at a module's input from the signal at its output, given the forward input ``x`` and
output ``y`` of *that call*; ``Rule.forward_state(module, x, y)`` may capture extra per-call
state at forward time (DeepLift's reference activations). LRP-style rules are built from named
pieces (``rules.LinearRule``: input/parameter modifiers per term, a stabilizer as gradient
mapper, and a signed sum as reducer); elementwise rules (GBP, DeconvNet, RectGrad) map
``(y, grad) -> grad``.

How a rule is attached (no deprecated ``register_backward_hook``, no reliance on hook order, no
global patching of ``torch.relu``):

- a forward *pre*-hook records the module's input ``x`` on a per-module stack (per call, so a
  module reused twice -- torchvision's ``BasicBlock.relu`` -- gets two separate states) and hands
  the module a detached input (a detached *copy* for in-place modules, so ``ReLU(inplace=True)``
  cannot overwrite ``x``); the module's own forward therefore builds no graph;
- a forward hook pops that ``x`` and returns ``_RuleFunction.apply(x, y)``: a custom autograd
  Function whose forward is a copy of ``y`` and whose backward is ``rule.backward``. The only
  graph edge from the output back to ``x`` is the rule's.

Inside a rule's backward the hooks are bypassed (a thread-local flag), so rules may call the
module itself (``torch.func.functional_call`` with modified parameters).

``Composite`` says which rule goes on which layer: an ordered list of (matcher, rule), first
match wins; a matcher is a module type (or tuple of types), a name pattern (``fnmatch``), or a
callable ``(name, module) -> bool``; ``first=`` puts a rule on the first Linear/Conv layer in
module order (the input layer of Sequential-like models such as VGG and ResNet). Its
``context(model)`` applies canonizers, attaches the hooks, and removes everything in
``finally`` -- also when the forward or backward raises.
"""

from __future__ import annotations

import contextlib
import fnmatch
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from workbench.core.errors import ModelError

_LOCAL = threading.local()


def bypassed() -> bool:
    """True while a rule computes its backward (hooks then let calls through untouched)."""
    return getattr(_LOCAL, "bypass", 0) > 0


@contextlib.contextmanager
def bypass() -> Iterator[None]:
    _LOCAL.bypass = getattr(_LOCAL, "bypass", 0) + 1
    try:
        yield
    finally:
        _LOCAL.bypass -= 1


class Rule:
    """Local backward of one layer type. Subclasses implement ``backward``.

    ``backward(module, x, y, grad, state)`` receives the (detached) input and output of one
    forward call, the signal arriving at the output, and the per-call ``state`` returned by
    ``forward_state``; it returns the signal at the input (shape of x).

    ``models``: the module types on which the rule computes the method it belongs to exactly
    (``workbench.core.coverage`` refuses any other nonlinear layer; composites map these types to it).
    """

    models: tuple = ()

    def forward_state(self, module: nn.Module, x: Tensor, y: Tensor) -> Any:
        return None

    def backward(self, module: nn.Module, x: Tensor, y: Tensor, grad: Tensor, state: Any) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields_ = getattr(self, "__dataclass_fields__", None)
        if fields_:
            return f"{type(self).__name__}(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in fields_) + ")"
        return f"{type(self).__name__}()"


@dataclass
class _Binding:
    rule: Rule
    module: nn.Module
    name: str
    state: Any
    trace: Optional[list]


class _RuleFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor, binding: _Binding) -> Tensor:  # type: ignore[override]
        ctx.binding = binding
        ctx.save_for_backward(x, y)
        return y.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple:  # type: ignore[override]
        x, y = ctx.saved_tensors
        b: _Binding = ctx.binding
        with torch.enable_grad(), bypass():
            gx = b.rule.backward(b.module, x.detach(), y.detach(), grad.detach(), b.state)
        if gx.shape != x.shape:
            raise ModelError(f"rule {b.rule!r} on {b.name or type(b.module).__name__} returned shape {tuple(gx.shape)} for input {tuple(x.shape)}")
        if b.trace is not None:
            params = {n: p.detach() for n, p in b.module.named_parameters(recurse=False)}
            b.trace.append(TraceEntry(b.name, b.module, x.detach(), y.detach(), grad.detach(), gx.detach(), params))
        return gx, None, None


@dataclass(frozen=True)
class TraceEntry:
    """One module call seen in the backward: input, output, signal at output and at input, and the
    module's parameters as the call saw them (canonizers -- BatchNorm folding -- are undone when the
    context exits; ``params`` keeps the folded ones)."""

    name: str
    module: nn.Module
    x: Tensor
    y: Tensor
    grad_out: Tensor
    grad_in: Tensor
    params: dict = field(default_factory=dict)


Matcher = Union[type, tuple, str, Callable[[str, nn.Module], bool]]

#: layers the ``first`` rule of a composite may go to
FIRST_LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def matches(matcher: Matcher, name: str, module: nn.Module) -> bool:
    """Does `matcher` (type / tuple of types / fnmatch name pattern / predicate) select the module?"""
    if isinstance(matcher, str):
        return fnmatch.fnmatchcase(name, matcher)
    if isinstance(matcher, type) or (isinstance(matcher, tuple) and all(isinstance(m, type) for m in matcher)):
        return isinstance(module, matcher)
    if callable(matcher):
        return bool(matcher(name, module))
    raise TypeError(f"cannot match modules with {matcher!r}")


@dataclass
class Attachment:
    """What ``Composite.context`` yields: the model, the rule on each module, and (with
    ``trace=True``) the backward trace in the order the engine ran the rules (output first)."""

    model: nn.Module
    rules: dict = field(default_factory=dict)  # name -> rule
    trace: Optional[list] = None
    modules: list = field(default_factory=list)  # (name, module) of the canonized model, extras included

    @property
    def modules_by_name(self) -> dict:
        return dict(self.modules)


class Composite:
    """Which rule on which layer: ordered (matcher, rule) pairs, first match wins.

    ``first`` (optional) goes to the first Linear/Conv layer in module order; ``canonizers``
    rewrite the model temporarily (BatchNorm folding, explicit residual sums) before the rules
    are attached. Modules no matcher selects keep their plain gradient.
    """

    def __init__(
        self,
        mapping: Sequence[tuple[Matcher, Rule]] = (),
        *,
        first: Optional[Rule] = None,
        canonizers: Sequence[Any] = (),
        name: str = "",
    ) -> None:
        self.mapping = list(mapping)
        self.first = first
        self.canonizers = list(canonizers)
        self.name = name

    def __repr__(self) -> str:
        return f"Composite({self.name or len(self.mapping)!r})"

    def assign(self, named_modules: Sequence[tuple[str, nn.Module]]) -> dict:
        """name -> (module, rule) for the leaf modules that get a rule."""
        out = {}
        first_done = self.first is None
        for name, module in named_modules:
            if any(True for _ in module.children()):
                continue  # rules go on leaves only
            rule = None
            if not first_done and isinstance(module, FIRST_LAYER_TYPES):
                rule, first_done = self.first, True
            if rule is None:
                for matcher, r in self.mapping:
                    if matches(matcher, name, module):
                        rule = r
                        break
            if rule is not None:
                out[name] = (module, rule)
        return out

    @contextlib.contextmanager
    def context(self, model: nn.Module, *, trace: bool = False) -> Iterator[Attachment]:
        """Canonize, attach the rules, yield; remove hooks and undo canonizers in ``finally``."""
        applied: list = []
        handles: list = []
        try:
            extra: list = []
            for c in self.canonizers:
                applied.append(c)
                extra += list(c.apply(model) or [])
            named = list(model.named_modules()) + extra
            assigned = self.assign(named)
            att = Attachment(model, {n: r for n, (_, r) in assigned.items()}, [] if trace else None, named)
            for name, (module, rule) in assigned.items():
                handles += _attach(module, rule, name, att.trace)
            yield att
        finally:
            for h in reversed(handles):
                h.remove()
            for c in reversed(applied):
                c.remove()


def _attach(module: nn.Module, rule: Rule, name: str, trace: Optional[list]) -> list:
    stack: list = []

    def pre_hook(mod: nn.Module, args: tuple) -> Optional[tuple]:
        if bypassed() or not args or not isinstance(args[0], Tensor):
            return None
        x = args[0]
        stack.append(x)
        inner = x.detach()
        if getattr(mod, "inplace", False):
            inner = inner.clone()
        return (inner,) + tuple(args[1:])

    def hook(mod: nn.Module, args: tuple, output: Any) -> Optional[Tensor]:
        if bypassed() or not stack:
            return None
        if not isinstance(output, Tensor):
            raise ModelError(f"rules need a single tensor output; {name or type(mod).__name__} returned {type(output).__name__}")
        x = stack.pop()
        y = output.detach()
        state = rule.forward_state(mod, x.detach(), y)
        if not torch.is_grad_enabled():
            return y.clone()
        return _RuleFunction.apply(x, y, _Binding(rule, mod, name, state, trace))

    return [module.register_forward_pre_hook(pre_hook), module.register_forward_hook(hook)]

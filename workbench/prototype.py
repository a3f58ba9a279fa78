"""Prototype a backprop rule in a few lines and see at once which axioms it keeps.

    import workbench
    from workbench.prototype import relu_rule, rule_method

    @relu_rule
    def positive_agreement(z, a, g):          # pass g where the unit is active and g > 0 (GBP)
        return g * (a > 0) * (g > 0)

    m = rule_method("my-gbp", relu=positive_agreement, claims={"dummy": None})
    print(workbench.check(m, examples=30))    # the axiom table, counterexamples saved

``relu_rule`` turns ``f(z, a, g) -> signal`` (ReLU input z, output a, signal g arriving at the
output) into a rule for every ReLU; ``rule_method`` builds a Method from rules by layer type or
name pattern (any ``workbench.rules`` Rule: the LRP rules, ``LinearRule`` groups you compose,
RectGrad, ...). The seed is the one-hot gradient at the target (``seed="relevance"`` starts from
F_t(x) as LRP does); ``times_input=True`` multiplies the input signal by x. The method follows the
contract (validation, model restored, hooks removed) and the checker treats it like a built-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from torch import Tensor, nn

from workbench.core.errors import InputError
from workbench.methods.base import Claims
from workbench.methods.modified_backprop import RuleMethod
from workbench.rules.engine import Composite, Matcher, Rule
from workbench.rules.rules import ElementwiseRule

__all__ = ["FunctionRule", "relu_rule", "rule_method"]

ReluMap = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True, repr=False)
class FunctionRule(ElementwiseRule):
    """An elementwise rule from a plain function ``f(z, a, g) -> signal at the input``."""

    function: ReluMap

    def map(self, x: Tensor, y: Tensor, grad: Tensor) -> Tensor:
        return self.function(x, y, grad)

    def __repr__(self) -> str:
        return f"FunctionRule({getattr(self.function, '__name__', self.function)!r})"


def relu_rule(function: ReluMap) -> FunctionRule:
    """Decorator: ``f(z, a, g)`` as a rule (z: the activation's input, a: its output, g: the signal)."""
    if not callable(function):
        raise InputError(f"relu_rule takes a function f(z, a, g), got {function!r}")
    return FunctionRule(function)


class _PrototypeMethod(RuleMethod):
    uses_baseline = False

    def __init__(self, name: str, composite: Composite, claims: Claims, seed: str, times_input: bool, unsupported: str) -> None:
        super().__init__()
        self.unsupported = unsupported
        self.name = name
        self.description = f"prototype rule method {name}"
        self._composite = composite
        self.base_claims = dict(claims)
        self.seed = seed
        self.times_input = times_input

    def composite(self) -> Composite:
        return self._composite

    @property
    def label(self) -> str:
        return self.name


def rule_method(
    name: str,
    rules: Union[Composite, Sequence[tuple[Matcher, Rule]], Mapping[Any, Rule], None] = None,
    *,
    relu: Optional[Rule] = None,
    first: Optional[Rule] = None,
    canonizers: Sequence[Any] = (),
    claims: Optional[Claims] = None,
    seed: str = "gradient",
    times_input: bool = False,
    unsupported: str = "gradient",
) -> RuleMethod:
    """A Method from rules: ``relu=`` for every ReLU, ``rules`` as (matcher, rule) pairs or a
    {matcher: rule} dict (matcher: a layer type, a tuple of types, a name pattern such as
    ``"features.*"``, or a predicate), ``first`` for the first Linear/Conv layer, or a ready
    ``Composite``. Layers no rule selects keep their plain gradient: ``unsupported="gradient"``,
    the default for a prototype (the layers are listed in the method's ``last_conventions``);
    ``unsupported="refuse"`` raises ``UnsupportedModelError`` on every nonlinear operation no
    rule models instead (``workbench.core.coverage``)."""
    from workbench.core.coverage import check_unsupported

    check_unsupported(unsupported)
    if seed not in ("gradient", "relevance"):
        raise InputError(f"seed must be 'gradient' or 'relevance', got {seed!r}")
    if isinstance(rules, Composite):
        if relu is not None or first is not None or canonizers:
            raise InputError("pass either a Composite or rules/relu/first/canonizers, not both")
        composite = rules
    else:
        pairs = list(rules.items()) if isinstance(rules, Mapping) else list(rules or [])
        if relu is not None:
            pairs.append((nn.ReLU, relu))
        for matcher, rule in pairs:
            if not isinstance(rule, Rule):
                raise InputError(f"the rule for {matcher!r} is {rule!r}, not a workbench Rule (use relu_rule for a function)")
        if not pairs and first is None:
            raise InputError("rule_method needs at least one rule (relu=, rules= or first=)")
        composite = Composite(pairs, first=first, canonizers=canonizers, name=name)
    return _PrototypeMethod(name, composite, claims or {}, seed, times_input, unsupported)

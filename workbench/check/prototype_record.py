"""Prototype rule methods (``workbench.prototype.rule_method``) as records a replay file can hold.

A record names built-in pieces only: matchers are ``torch.nn`` layer types (by class name, used
for ``isinstance``) or name patterns, rules are ``workbench.rules`` classes with their numeric
fields, canonizers are ``workbench.rules`` canonizer classes. So a prototype made of built-in
rules replays without importing anything the file names. A rule made from a user's function
(``relu_rule``) is recorded as ``module:qualname`` and imported only when the user allows it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from workbench.core.errors import InputError, WorkbenchError
from workbench.methods.base import CallableMethod, Method

__all__ = ["NeedsCode", "NotSerializable", "PrototypeRecordError", "prototype_record", "rebuild_prototype"]


class PrototypeRecordError(InputError):
    """A prototype record names something that is not a built-in piece."""


def _rule_record(rule: Any) -> dict:
    from workbench import rules as R
    from workbench.prototype import FunctionRule

    if isinstance(rule, FunctionRule):
        ref = CallableMethod(rule.function).reference
        if ref is None:
            raise NotSerializable(f"the function {getattr(rule.function, '__qualname__', rule.function)!r} cannot be imported again")
        return {"function": ref}
    name = type(rule).__name__
    if getattr(R, name, None) is not type(rule) or not dataclasses.is_dataclass(rule):
        raise NotSerializable(f"the rule {rule!r} is not a built-in workbench.rules rule")
    fields = {}
    for f in dataclasses.fields(rule):
        v = getattr(rule, f.name)
        if isinstance(v, (tuple, list)) and all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in v):
            v = list(v)
        elif not (v is None or isinstance(v, (bool, int, float, str))):
            raise NotSerializable(f"the field {f.name} of {name} holds a {type(v).__name__}")
        fields[f.name] = v
    return {"rule": name, "fields": fields}


def _matcher_record(matcher: Any) -> dict:
    if isinstance(matcher, str):
        return {"pattern": matcher}
    types = matcher if isinstance(matcher, tuple) else (matcher,)
    if all(isinstance(t, type) and getattr(nn, t.__name__, None) is t for t in types):
        return {"layers": [t.__name__ for t in types]}
    raise NotSerializable(f"the matcher {matcher!r} is neither a torch.nn layer type nor a name pattern")


class NotSerializable(Exception):
    """A prototype piece that has no record (a predicate matcher, a custom rule class)."""


def prototype_record(method: Method) -> dict:
    """The composite of a ``rule_method`` prototype as names and numbers; raises NotSerializable."""
    from workbench import rules as R

    comp = method.composite()
    canonizers = []
    for c in comp.canonizers:
        if getattr(R, type(c).__name__, None) is not type(c):
            raise NotSerializable(f"the canonizer {c!r} is not a built-in one")
        canonizers.append(type(c).__name__)
    return {
        "rules": [[_matcher_record(m), _rule_record(r)] for m, r in comp.mapping],
        "first": None if comp.first is None else _rule_record(comp.first),
        "canonizers": canonizers,
        "seed": method.seed,
        "times_input": bool(method.times_input),
    }


def _rebuild_rule(rec: dict, allow_import: bool) -> Any:
    from workbench import rules as R
    from workbench.methods.base import import_callable
    from workbench.prototype import relu_rule

    if "function" in rec:
        if not allow_import:
            raise NeedsCode(rec["function"])
        obj = import_callable(rec["function"])
        return obj if isinstance(obj, R.Rule) else relu_rule(obj)  # a decorated function is the rule itself
    cls = getattr(R, rec["rule"], None) if rec["rule"] in R.__all__ else None
    if not (isinstance(cls, type) and issubclass(cls, R.Rule) and dataclasses.is_dataclass(cls)):
        raise PrototypeRecordError(f"unknown rule {rec['rule']!r}; built-in rules: {', '.join(n for n in R.__all__ if isinstance(getattr(R, n), type) and dataclasses.is_dataclass(getattr(R, n)))}")
    known = {f.name for f in dataclasses.fields(cls)}
    if not set(rec["fields"]) <= known:
        raise PrototypeRecordError(f"rule {rec['rule']} has no field(s) {sorted(set(rec['fields']) - known)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in rec["fields"].items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, WorkbenchError) as e:
        raise PrototypeRecordError(f"rule {rec['rule']}: {e}") from None


def _rebuild_matcher(rec: dict) -> Any:
    if "pattern" in rec:
        return rec["pattern"]
    types = []
    for name in rec["layers"]:
        cls = vars(nn).get(name)
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise PrototypeRecordError(f"{name!r} is not a torch.nn layer type")
        types.append(cls)
    return types[0] if len(types) == 1 else tuple(types)


class NeedsCode(Exception):
    """Rebuilding needs to import user code (a rule function) that the user has not allowed."""

    def __init__(self, reference: str) -> None:
        super().__init__(reference)
        self.reference = reference


def rebuild_prototype(rec: dict, allow_import: bool) -> Method:
    """The prototype method of a validated record; rule functions only with ``allow_import``."""
    from workbench import rules as R
    from workbench.prototype import rule_method

    proto = rec["prototype"]
    canonizers = []
    for name in proto["canonizers"]:
        cls = getattr(R, name, None) if name in R.__all__ else None
        if not (isinstance(cls, type) and hasattr(cls, "apply")):
            raise PrototypeRecordError(f"unknown canonizer {name!r}")
        canonizers.append(cls())
    pairs = [(_rebuild_matcher(m), _rebuild_rule(r, allow_import)) for m, r in proto["rules"]]
    first = None if proto["first"] is None else _rebuild_rule(proto["first"], allow_import)
    try:
        return rule_method(rec["name"], pairs, first=first, canonizers=canonizers, claims=rec.get("claims") or {}, seed=proto["seed"], times_input=proto["times_input"])
    except WorkbenchError as e:
        raise PrototypeRecordError(f"prototype method {rec['name']!r}: {e}") from None

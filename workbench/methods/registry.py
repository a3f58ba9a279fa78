"""Registry of built-in methods: ``methods()`` lists them, ``method(name, **options)`` builds one."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Optional, Type

from ..errors import InputError
from .base import Method

_REGISTRY: dict[str, Type[Method]] = {}


def register(cls: Type[Method]) -> Type[Method]:
    """Class decorator adding a Method subclass to the registry under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


@dataclass(frozen=True)
class MethodInfo:
    """What ``workbench.methods()`` lists: name, description, claims of the default configuration."""

    name: str
    description: str
    claims: dict
    uses_baseline: bool


def methods() -> list[MethodInfo]:
    """The built-in methods with the axioms each claims in its default configuration."""
    out = []
    for name in sorted(_REGISTRY):
        m = _REGISTRY[name]()
        out.append(MethodInfo(name, _REGISTRY[name].description, m.claims, m.uses_baseline))
    return out


def method(name: str, **options: Any) -> Method:
    """Build the built-in method `name` with `options`; ``name[k=v,...]`` strings are accepted too."""
    if "[" in name:
        parsed = parse_method(name)
        return method(parsed.name, **{**parsed.options, **options}) if options else parsed
    try:
        cls = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise InputError(f"unknown method {name!r}; known methods: {known}") from None
    try:
        return cls(**options)
    except TypeError as e:
        raise InputError(f"bad options for {name}: {e}") from None


def _value(text: str) -> Any:
    text = text.strip()
    if text in _REGISTRY or "[" in text:
        return method(text)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def parse_method(text: str) -> Method:
    """Parse ``name`` or ``name[key=value,...]``; values are Python literals or method strings."""
    text = text.strip()
    if "[" not in text:
        return method(text)
    if not text.endswith("]"):
        raise InputError(f"cannot parse method {text!r}: expected name[key=value,...]")
    name, _, rest = text.partition("[")
    options: dict[str, Any] = {}
    for item in _split_top(rest[:-1]):
        key, eq, val = item.partition("=")
        if not eq:
            raise InputError(f"cannot parse option {item!r} in {text!r}: expected key=value")
        options[key.strip()] = _value(val)
    return method(name.strip(), **options)


def lookup(name: str) -> Optional[Type[Method]]:
    return _REGISTRY.get(name)

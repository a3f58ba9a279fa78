"""Registry of built-in methods: ``methods()`` lists them, ``method(name, **options)`` builds one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Type

from workbench.core.errors import InputError
from workbench.core.options import assignments, literal, split_top
from workbench.methods.base import Method

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


def audited_methods() -> list[Method]:
    """The configurations whose claims are audited and property-tested: every built-in in its default
    configuration and in each of its ``variants()``, one per label."""
    out: dict[str, Method] = {}
    for name in sorted(_REGISTRY):
        for options in ({}, *_REGISTRY[name].variants()):
            m = method(name, **options)
            out.setdefault(m.label, m)
    return list(out.values())


def matrix_methods() -> list[str]:
    """The rows of ``workbench check --all``, as method strings in registration order: each
    built-in's ``matrix_variants()``."""
    out = []
    for name, cls in _REGISTRY.items():
        for options in cls.matrix_variants():
            text = ",".join(f"{k}={v if isinstance(v, str) and v in _REGISTRY else repr(v)}" for k, v in options.items())
            out.append(f"{name}[{text}]" if options else name)
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
    return literal(text)


def parse_method(text: str) -> Method:
    """Parse ``name`` or ``name[key=value,...]``; values are Python literals or method strings."""
    text = text.strip()
    if "[" not in text:
        return method(text)
    if not text.endswith("]"):
        raise InputError(f"cannot parse method {text!r}: expected name[key=value,...]")
    name, _, rest = text.partition("[")
    items = [item for item in split_top(rest[:-1]) if item.strip()]
    options = {key: _value(val) for key, val in assignments(items, what=f"the method {text!r}").items()}
    return method(name.strip(), **options)


def lookup(name: str) -> Optional[Type[Method]]:
    return _REGISTRY.get(name)

"""``--set key=value`` typed by the experiment field's annotation.

``parse_value(text, annotation, name)`` turns the command-line text into the field's type:
``bool`` (true/false/yes/no/1/0), ``int``, ``float``, ``str`` (taken verbatim), ``tuple``
(comma-separated or a Python list/tuple literal; elements typed by ``tuple[X, ...]``),
``Optional[X]`` (``None`` or X) and ``Union[A, B]`` (the first type, in the annotation's order
with ``str`` last, that parses). A value that fits no type is an ``InputError`` naming the field,
its type and the value.
"""

from __future__ import annotations

import ast
import dataclasses
import types
import typing
from typing import Any, Union

from workbench.core.errors import InputError
from workbench.core.options import literal, split_top

_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


def field_annotations(cls: type) -> dict[str, Any]:
    """The resolved annotation of every dataclass field of `cls`."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an unresolvable annotation: fall back to the default's type
        hints = {}
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in hints:
            out[f.name] = hints[f.name]
        elif f.default is not dataclasses.MISSING:
            out[f.name] = type(f.default)
        else:
            out[f.name] = Any
    return out


def type_name(annotation: Any) -> str:
    """Readable form of an annotation: ``int``, ``str or float``, ``tuple of str``, ``int or None``."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is tuple or annotation is tuple:
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return "tuple" + (f" of {type_name(args[0])}" if args else "")
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def field_types(cls: type) -> dict[str, str]:
    """Field name -> readable type, for ``workbench experiment NAME --params``."""
    return {k: type_name(v) for k, v in field_annotations(cls).items()}


def parse_value(text: str, annotation: Any, name: str = "value") -> Any:
    """`text` as a value of `annotation` (see the module docstring); InputError if it fits none."""
    try:
        return _parse(text.strip(), annotation)
    except (ValueError, SyntaxError, TypeError):
        raise InputError(f"{name} takes {type_name(annotation)}, got {text!r}") from None


def _parse(text: str, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return literal(text)
    if origin in (Union, types.UnionType):
        options = list(typing.get_args(annotation))
        if type(None) in options and text.lower() in ("none", "null", ""):
            return None
        ordered = [a for a in options if a is not str and a is not type(None)] + ([str] if str in options else [])
        for a in ordered:
            try:
                return _parse(text, a)
            except (ValueError, SyntaxError, TypeError):
                continue
        raise ValueError(text)
    if annotation is type(None):
        if text.lower() in ("none", "null"):
            return None
        raise ValueError(text)
    if annotation is bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(text)
    if annotation is int:
        return int(text)
    if annotation is float:
        return float(text)
    if annotation is str:
        return text
    if origin is tuple or annotation is tuple or origin is list or annotation is list:
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        element = args[0] if len(set(args)) == 1 else Any
        if text[:1] in "([":
            items = ast.literal_eval(text)
            if not isinstance(items, (list, tuple)):
                raise ValueError(text)
            values = [v if element is Any or isinstance(v, element) else _parse(str(v), element) for v in items]
        else:
            values = [_parse(t.strip(), element) for t in split_top(text) if t.strip()]
        return tuple(values) if (origin is tuple or annotation is tuple) else values
    raise TypeError(f"unsupported annotation {annotation!r}")

"""The one parser of ``key=value`` text: method strings (``name[k=v,...]``), ``--option k=v`` and
``--set k=v``. Values are Python literals (``ast.literal_eval``: numbers, strings, tuples, None,
booleans); a value that is not a literal is kept as its text.
"""

from __future__ import annotations

import ast
from typing import Any, Iterable

from workbench.core.errors import InputError


def split_top(text: str) -> list[str]:
    """Split at commas outside brackets and parentheses: ``a,m[x=1,y=(2,3)]`` -> ``a``, ``m[x=1,y=(2,3)]``."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[("
        depth -= ch in "])"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


def literal(text: str) -> Any:
    """`text` as a Python literal, or the text itself (stripped) when it is not one."""
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def assignments(items: Iterable[str], *, what: str = "option") -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}`` (values as text; the first ``=`` splits); an item without
    ``=`` is an InputError naming `what`."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise InputError(f"{what} takes key=value, got {item!r}")
        out[key.strip()] = value
    return out

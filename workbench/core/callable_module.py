"""Packages that can be called: ``workbench.check(m)`` and ``workbench.methods()`` stay one call
while ``import workbench.check`` and ``import workbench.methods.integrated_gradients`` import the
modules (a function bound over a subpackage's name would hide the subpackage).

Python lets a module change its class (``module.__class__``, Python 3.5+); the subclass only adds
``__call__``, so the module keeps every other behaviour (attributes, submodules, pickling by name).
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any, Callable


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
    """Make the module `module_name` callable as `function` (same signature, same docstring)."""

    class CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    module = sys.modules[module_name]
    module.__class__ = CallableModule
    module.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]

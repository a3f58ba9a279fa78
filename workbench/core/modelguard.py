"""Leave the model exactly as it was: parameters, buffers, hooks, flags — also when a call raises.

``preserved(model)`` snapshots the model, runs a block and restores every module hook (each
``_*hooks*`` dictionary of every module: forward, forward-pre, backward, ``with_kwargs`` and
state-dict hooks), torch's global module hooks (the ``_global_*`` dictionaries of
``torch.nn.modules.module``), instance-level ``forward`` overrides, training and requires_grad
flags. Tensor values are compared either by version counter (cheap; an in-place write through
the parameter bumps it, a write through ``.data`` does not) or, with ``by_value``, by a copy
of every value, which is written back after the block (foreign callables get this).

Inside ``reporting()`` (the checker's contract check) every change is recorded as a sentence
and still undone, instead of raising.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
from torch import nn
from torch.nn.modules import module as _torch_module

from workbench.core.errors import ModelModifiedError

_COLLECTOR: contextvars.ContextVar[Optional[list]] = contextvars.ContextVar("workbench_modelguard_breaches", default=None)


@contextlib.contextmanager
def reporting() -> Iterator[list]:
    """Collect (as sentences) what methods change in the models they guard, instead of raising."""
    breaches: list = []
    token = _COLLECTOR.set(breaches)
    try:
        yield breaches
    finally:
        _COLLECTOR.reset(token)


def report_breach(text: str) -> bool:
    """Record a contract breach if a ``reporting()`` block is active; return whether one is."""
    collector = _COLLECTOR.get()
    if collector is None:
        return False
    if text not in collector:
        collector.append(text)
    return True


def _hook_dicts(obj: object) -> dict:
    """Every hook dictionary of a module (its ``_*hooks*`` attributes that are dicts)."""
    return {k: v for k, v in vars(obj).items() if k.startswith("_") and "hooks" in k and isinstance(v, dict)}


def _global_hook_dicts() -> dict:
    """torch's global module hooks: the ``_global_*`` dictionaries of torch.nn.modules.module."""
    return {k: v for k, v in vars(_torch_module).items() if k.startswith("_global_") and isinstance(v, dict)}


@dataclass(frozen=True)
class _TensorState:
    version: int
    data_ptr: int
    requires_grad: bool
    grad_id: int | None
    value: Optional[torch.Tensor]


def _tensors(model: nn.Module) -> list:
    return list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False))


@dataclass(frozen=True)
class ModelSnapshot:
    """A model's state: tensor versions (and values, ``by_value``), flags, hooks, forward overrides."""

    tensors: dict
    training: dict
    hooks: dict
    forwards: dict
    global_hooks: dict
    by_value: bool = False

    @classmethod
    def take(cls, model: nn.Module, by_value: bool = False) -> "ModelSnapshot":
        tensors = {}
        for name, t in _tensors(model):
            value = t.detach().clone() if by_value else None
            tensors[name] = _TensorState(t._version, t.data_ptr(), t.requires_grad, None if t.grad is None else id(t.grad), value)
        modules = model.named_modules(remove_duplicate=False)
        training, hooks, forwards = {}, {}, {}
        for name, m in modules:
            training[name] = m.training
            hooks[name] = {d: tuple(v.keys()) for d, v in _hook_dicts(m).items()}
            forwards[name] = vars(m).get("forward")
        global_hooks = {d: tuple(v.keys()) for d, v in _global_hook_dicts().items()}
        return cls(tensors, training, hooks, forwards, global_hooks, by_value)


def _restore(model: nn.Module, before: ModelSnapshot) -> tuple[list, list]:
    """Undo every change; return (sentences describing the changes, names of tensors written)."""
    changes: list = []
    modules = dict(model.named_modules(remove_duplicate=False))
    flipped = [n or "(model)" for n, flag in before.training.items() if n in modules and modules[n].training != flag]
    for name, flag in before.training.items():
        if name in modules:
            modules[name].training = flag
    if flipped:
        changes.append(f"training flag changed on {', '.join(flipped[:4])}")
    for name, m in modules.items():
        dicts = before.hooks.get(name, {})
        for d, hooks in _hook_dicts(m).items():
            new = [k for k in hooks if k not in dicts.get(d, ())]
            for k in new:
                del hooks[k]
            if new and not d.endswith(("_with_kwargs", "_always_called")):
                changes.append(f"{d[1:]} left on module {name or '(model)'}")
        if vars(m).get("forward") is not before.forwards.get(name):
            if before.forwards.get(name) is None:
                del m.__dict__["forward"]
            else:
                m.__dict__["forward"] = before.forwards[name]
            changes.append(f"instance-level forward override left on module {name or '(model)'}")
    for d, hooks in _global_hook_dicts().items():
        new = [k for k in hooks if k not in before.global_hooks.get(d, ())]
        for k in new:
            del hooks[k]
        if new and not d.endswith(("_with_kwargs", "_always_called")) and not d.startswith("_global_is_"):
            changes.append(f"torch global module hook left ({d})")
    written = []
    with torch.no_grad():
        for name, t in _tensors(model):
            state = before.tensors.get(name)
            if state is None:
                changes.append(f"tensor {name} added to the model")
                continue
            if t.requires_grad != state.requires_grad and t.is_leaf:
                t.requires_grad_(state.requires_grad)
            if state.value is not None:
                same = t.shape == state.value.shape and bool(torch.equal(t.detach(), state.value))
                if not same:
                    written.append(name)
                    if t.shape == state.value.shape:
                        t.detach().copy_(state.value)
                    else:
                        t.data = state.value.clone()
            elif t._version != state.version or t.data_ptr() != state.data_ptr:
                written.append(name)
    if written:
        changes.append(("values written (restored): " if before.by_value else "values written: ") + ", ".join(written[:5]))
    return changes, written


@contextlib.contextmanager
def preserved(model: nn.Module, *, freeze_parameters: bool = True, by_value: bool = False) -> Iterator[nn.Module]:
    """Run a block on `model` and restore its hooks, training flags and requires_grad flags after.

    With ``freeze_parameters`` the parameters stop requiring gradients inside the block (input
    gradients then skip the weight-gradient work); the flags come back on exit. With ``by_value``
    (or inside ``reporting()``) every parameter and buffer value is copied first and written back
    after, also when the block raises; a write the block made then raises ModelModifiedError
    (inside ``reporting()`` it is recorded instead). Without it, a write seen through the version
    counters cannot be undone and raises ModelModifiedError.
    """
    collecting = _COLLECTOR.get() is not None
    before = ModelSnapshot.take(model, by_value=by_value or collecting)
    if freeze_parameters:
        for p in model.parameters():
            p.requires_grad_(False)
    ok = False
    try:
        yield model
        ok = True
    finally:
        changes, written = _restore(model, before)
        if collecting:
            for c in changes:
                report_breach(c)
        elif written and ok:
            raise ModelModifiedError(
                "the method wrote to the model's tensors: " + ", ".join(written[:5])
                + (" (the values were restored)" if before.by_value else "")
            )

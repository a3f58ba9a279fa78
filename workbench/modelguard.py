"""Leave the model exactly as it was: parameters, buffers, hooks, flags — also when a call raises."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

from torch import nn

from .errors import ModelModifiedError

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


@dataclass(frozen=True)
class _TensorState:
    version: int
    data_ptr: int
    requires_grad: bool
    grad_id: int | None


@dataclass(frozen=True)
class ModelSnapshot:
    """Cheap fingerprint of a model: tensor versions (in-place writes bump them), flags and hooks."""

    tensors: dict
    training: dict
    hooks: dict

    @classmethod
    def take(cls, model: nn.Module) -> "ModelSnapshot":
        tensors = {}
        for name, t in list(model.named_parameters(remove_duplicate=False)) + list(
            model.named_buffers(remove_duplicate=False)
        ):
            tensors[name] = _TensorState(
                t._version, t.data_ptr(), t.requires_grad, None if t.grad is None else id(t.grad)
            )
        training = {name: m.training for name, m in model.named_modules(remove_duplicate=False)}
        hooks = {
            name: {d: tuple(getattr(m, d, {}).keys()) for d in _HOOK_DICTS}
            for name, m in model.named_modules(remove_duplicate=False)
        }
        return cls(tensors, training, hooks)


def _restore(model: nn.Module, before: ModelSnapshot) -> list[str]:
    """Undo flag and hook changes; return the names of tensors whose values were written."""
    modules = dict(model.named_modules(remove_duplicate=False))
    for name, flag in before.training.items():
        if name in modules:
            modules[name].training = flag
    for name, dicts in before.hooks.items():
        m = modules.get(name)
        if m is None:
            continue
        for d, keys in dicts.items():
            hooks = getattr(m, d, None)
            if hooks is None:
                continue
            for k in [k for k in hooks if k not in keys]:
                del hooks[k]
    written = []
    for name, t in list(model.named_parameters(remove_duplicate=False)) + list(
        model.named_buffers(remove_duplicate=False)
    ):
        state = before.tensors.get(name)
        if state is None:
            continue
        if t.requires_grad != state.requires_grad and t.is_leaf:
            t.requires_grad_(state.requires_grad)
        if t._version != state.version or t.data_ptr() != state.data_ptr:
            written.append(name)
    return written


@contextlib.contextmanager
def preserved(model: nn.Module, *, freeze_parameters: bool = True) -> Iterator[nn.Module]:
    """Run a block on `model` and restore its hooks, training flags and requires_grad flags after.

    With ``freeze_parameters`` the parameters stop requiring gradients inside the block (input
    gradients then skip the weight-gradient work); the flags come back on exit. A write to a
    parameter or buffer inside the block cannot be undone cheaply and raises ModelModifiedError.
    """
    before = ModelSnapshot.take(model)
    if freeze_parameters:
        for p in model.parameters():
            p.requires_grad_(False)
    ok = False
    try:
        yield model
        ok = True
    finally:
        written = _restore(model, before)
        if written and ok:
            raise ModelModifiedError(
                "the method wrote to the model's tensors: " + ", ".join(written[:5])
            )

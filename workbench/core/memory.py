"""Memory bound for batched gradient passes: rows per chunk from a measured activation size.

One gradient pass on a single row counts the bytes autograd saves for the backward pass
(parameters excluded, they are shared by all rows); a chunk of c rows then needs about
c * ACTIVATION_FACTOR * saved bytes (the saved tensors plus the forward outputs and gradient
buffers alive during backward). The measurement is kept per model, input shape and dtype.
"""

from __future__ import annotations

import weakref
from typing import Callable, Optional, TypeVar

import torch
from torch import Tensor, nn

from workbench.core.errors import InputError

__all__ = ["DEFAULT_MEMORY_BUDGET", "ACTIVATION_FACTOR", "check_budget", "saved_bytes", "rows_per_chunk"]

#: bytes a method may use for activations and stored path gradients when no budget is given
DEFAULT_MEMORY_BUDGET = 512 * 2**20
#: peak activation memory of a gradient pass per saved byte (measured on resnet18/vgg16, CPU)
ACTIVATION_FACTOR = 2.0

_MEASURED: "weakref.WeakKeyDictionary[nn.Module, dict[tuple, int]]" = weakref.WeakKeyDictionary()
T = TypeVar("T")


def check_budget(memory_budget: Optional[int]) -> int:
    """The budget in bytes (None: DEFAULT_MEMORY_BUDGET); a clear error for anything else."""
    if memory_budget is None:
        return DEFAULT_MEMORY_BUDGET
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget <= 0:
        raise InputError(f"memory_budget must be a positive number of bytes or None, got {memory_budget!r}")
    return memory_budget


def saved_bytes(model: nn.Module, run: Callable[[], T]) -> tuple[T, int]:
    """Run `run` (one gradient pass) and count the bytes autograd saved, parameters excluded."""
    params = {p.data_ptr() for p in model.parameters()} | {b.data_ptr() for b in model.buffers()}
    seen: set[tuple[int, int]] = set()
    total = [0]

    def pack(t: Tensor) -> Tensor:
        key = (t.data_ptr(), t.numel())
        if t.data_ptr() not in params and key not in seen:
            seen.add(key)
            total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()
    return out, total[0]


def cached_row_bytes(model: nn.Module, x: Tensor) -> Optional[int]:
    """The activation bytes per row measured earlier for this model and row shape, if any."""
    try:
        return _MEASURED.get(model, {}).get(_key(x))
    except TypeError:  # a model that cannot be weakly referenced
        return None


def remember_row_bytes(model: nn.Module, x: Tensor, nbytes: int) -> None:
    try:
        _MEASURED.setdefault(model, {})[_key(x)] = nbytes
    except TypeError:
        pass


def rows_per_chunk(row_bytes: int, budget: int) -> int:
    """The most rows whose activations fit `budget`: budget // (ACTIVATION_FACTOR * row_bytes), >= 1."""
    return max(1, int(budget // max(1.0, ACTIVATION_FACTOR * row_bytes)))


def _key(x: Tensor) -> tuple:
    return (tuple(x.shape[1:]), x.dtype, x.device.type)

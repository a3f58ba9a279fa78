"""Shared benchmark helpers: timing, model preparation, provenance."""

from __future__ import annotations

import platform
import statistics
import time
from typing import Callable

import torch
from torch import nn

from workbench.nets import randomize as NR


def timed(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> tuple[float, object]:
    """Median wall time of `fn` over `repeats` runs (after `warmup`), and its last result."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def randomize_affine(model: nn.Module, seed: int = 0) -> nn.Module:
    """``workbench.nets.randomize.randomize_affine`` with a seeded generator (random biases, BN stats)."""
    return NR.randomize_affine(model, torch.Generator().manual_seed(seed))


def header(title: str) -> str:
    return (
        f"== {title} ==\n"
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"threads {torch.get_num_threads()}, python {platform.python_version()}"
    )

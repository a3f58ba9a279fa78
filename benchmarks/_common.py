"""Shared benchmark helpers: timing, model preparation, provenance."""

from __future__ import annotations

import platform
import statistics
import time
from typing import Callable

import torch
from torch import nn


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
    """Give every bias and BatchNorm statistic a random value.

    Fresh torchvision models have zero biases and BN statistics (0, 1): positively homogeneous,
    so zero-baseline IG is exact at any step count. Benchmarks on them would prove little.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model


def header(title: str) -> str:
    return (
        f"== {title} ==\n"
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"threads {torch.get_num_threads()}, python {platform.python_version()}"
    )

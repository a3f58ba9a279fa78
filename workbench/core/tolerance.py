"""Numerical tolerances that scale with the dtype: one table for the whole bench.

A quantity r passes when |r| <= rtol * (1 + scale), scale being the natural size of the
compared numbers (|F(x)|, sum |A|, ...). rtol is about 4e6 eps in float64 and 800 eps in
float32: round-off of sums over thousands of terms stays well inside it, while quadrature
errors and wrong formulas do not.
"""

from __future__ import annotations

import torch

DTYPE_RTOL: dict[torch.dtype, float] = {
    torch.float64: 1e-9,
    torch.float32: 1e-4,
    torch.float16: 1e-2,
    torch.bfloat16: 1e-2,
}


def rtol_for(dtype: torch.dtype) -> float:
    """Round-off tolerance of `dtype` (relative)."""
    return DTYPE_RTOL.get(dtype, 1e-9)


def bound(rtol: float, scale: float) -> float:
    """The absolute bound rtol * (1 + scale) a residual is compared with."""
    return rtol * (1.0 + abs(scale))

"""Gradient saliency and input x gradient.

Gradient (Simonyan et al. 2014): A(x) = dF_t/dx.
Input x gradient (Shrikumar et al. 2016): A(x) = x * dF_t/dx; sums to F(x) - F(0) only for
positively homogeneous networks (ReLU, no biases), see Ancona et al. 2018.
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from workbench.core.autograd import target_gradients
from workbench.methods.base import Method
from workbench.methods.registry import register

_GRADIENT_CLAIMS = {
    "dummy": None,
    "implementation-invariance": None,
    "linearity": None,
    "symmetry": None,
}


@register
class Gradient(Method):
    """Plain input gradient dF_t/dx (no baseline)."""

    name = "gradient"
    description = "input gradient dF/dx"
    # constant inside each linear region of a piecewise-linear network (FullGrad's weak dependence)
    base_claims = {**_GRADIENT_CLAIMS, "weak-dependence": None}

    def __init__(self, *, chunk_size: Optional[int] = None) -> None:
        super().__init__(chunk_size=chunk_size)
        self.chunk_size = chunk_size

    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        return target_gradients(model, x, target, chunk_size=self.chunk_size)[1]


@register
class InputXGradient(Method):
    """x * dF_t/dx (no baseline; complete only for bias-free ReLU networks)."""

    name = "input-x-gradient"
    description = "input times gradient x * dF/dx"
    base_claims = _GRADIENT_CLAIMS

    def __init__(self, *, chunk_size: Optional[int] = None) -> None:
        super().__init__(chunk_size=chunk_size)
        self.chunk_size = chunk_size

    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        return x * target_gradients(model, x, target, chunk_size=self.chunk_size)[1]

"""DeepLift with the Rescale rule (Shrikumar, Greenside & Kundaje 2017).

Two forward passes: the reference x0 (the baseline; default zeros) first, recording every hooked
module call's input and output, then x. Backward: affine layers (Linear, Conv, BatchNorm,
average pooling, residual sums) keep their gradient -- the linear rule, under which biases
cancel; every elementwise nonlinearity multiplies by m = (y - y0) / (x - x0), or by its own
derivative at x where x == x0 exactly; max pools use exact multipliers on the two winners
(``rules.RescaleMaxPool``). The multipliers compose by the chain rule, and the attribution
(x - x0) * m sums to F(x) - F(x0) exactly (up to round-off), biases included.

Limits: nonlinearities must be modules (ReLU, Softplus, GELU, ...); a functional call such as
``torch.relu`` inside a forward keeps its gradient and breaks exactness.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..rules import composites as C
from ..rules.rules import _ReferenceStore
from .base import Method
from .modified_backprop import backward_through
from .registry import register


@register
class DeepLift(Method):
    """DeepLift Rescale against a reference input (the baseline; zeros by default)."""

    name = "deeplift"
    description = "DeepLift Rescale rule: multipliers against a reference, exact summation-to-delta"
    uses_baseline = True
    base_claims = {"completeness": None, "dummy": None}

    def __init__(self) -> None:
        super().__init__()

    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        x0 = torch.zeros_like(x) if baseline is None else baseline.detach()
        store = _ReferenceStore()
        comp = C.deeplift(store)
        with torch.no_grad(), comp.context(model):
            model(x0)
        store.recording = False
        m = backward_through(comp, model, x, target, seed="gradient")
        return (x - x0) * m

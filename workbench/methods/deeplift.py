"""DeepLift with the Rescale rule (Shrikumar, Greenside & Kundaje 2017).

Two forward passes: the reference x0 (the baseline; default zeros) first, recording every hooked
module call's input and output, then x. Backward: affine layers (Linear, Conv, BatchNorm,
average pooling, residual sums) keep their gradient -- the linear rule, under which biases
cancel; every elementwise activation torch ships multiplies by m = (y - y0) / (x - x0), or by
its own derivative at x where x == x0 exactly; every max pool torch ships (MaxPool1d/2d/3d,
AdaptiveMaxPool1d/2d/3d) uses exact multipliers on its winners (``rules.RescaleMaxPool``, ties
under the named convention ``max_pool_ties``). The multipliers compose by the chain rule, and
the attribution (x - x0) * m sums to F(x) - F(x0) exactly (up to round-off), biases included.

Coverage (``workbench.core.coverage``): the input pass is traced, and any other nonlinear operation
-- an LSTM, a MultiheadAttention, a softmax, a custom autograd Function, ``F.gelu`` called in a
``forward`` -- raises ``UnsupportedModelError`` naming the layer: its gradient would break
summation-to-delta silently. ``unsupported="gradient"`` keeps the gradient there instead (the
convention is recorded in ``last_conventions``; summation-to-delta then does not hold).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from workbench.core import coverage as cov
from workbench.rules import composites as C
from workbench.rules.pooling import check_ties
from workbench.rules.rules import _ReferenceStore
from workbench.methods.base import Method
from workbench.methods.modified_backprop import backward_through
from workbench.methods.registry import register


@register
class DeepLift(Method):
    """DeepLift Rescale against a reference input (the baseline; zeros by default)."""

    name = "deeplift"
    description = "DeepLift Rescale rule: multipliers against a reference, exact summation-to-delta"
    uses_baseline = True
    base_claims = {"completeness": None, "dummy": None}
    last_conventions: tuple = ()

    def __init__(self, *, unsupported: str = "refuse", max_pool_ties: str = "first") -> None:
        super().__init__(unsupported=unsupported, max_pool_ties=max_pool_ties)
        self.unsupported = cov.check_unsupported(unsupported)
        self.max_pool_ties = check_ties(max_pool_ties)

    @property
    def coverage(self) -> cov.Coverage:
        comp = C.deeplift(_ReferenceStore(), max_pool_ties=self.max_pool_ties)
        types = tuple(t for _, rule in comp.mapping for t in rule.models)
        return cov.Coverage(self.name, types, cov.LINEAR_KINDS)

    @property
    def claims(self) -> dict:
        return dict(self.base_claims) if self.unsupported == "refuse" else {"dummy": None}

    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        x0 = torch.zeros_like(x) if baseline is None else baseline.detach()
        store = _ReferenceStore()
        comp = C.deeplift(store, max_pool_ties=self.max_pool_ties)
        with torch.no_grad(), comp.context(model):
            model(x0)
        store.recording = False
        m, self.last_conventions = backward_through(comp, model, x, target, seed="gradient", coverage=self.coverage, unsupported=self.unsupported)
        return (x - x0) * m

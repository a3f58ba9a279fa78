"""Modified backprop: Guided Backprop, DeconvNet, RectGrad and LRP, all on the rule engine.

Each method is a composite (``workbench.rules``) plus a seed and a read-out:

- guided-backprop / deconvnet: the one-hot gradient seed at the target logit; the attribution is
  the modified input gradient (Springenberg et al. 2015; Zeiler & Fergus 2014). ``at_zero``
  names GBP's behaviour at z == 0 exactly (torch and Captum block it: default False).
- rectgrad: one-hot seed, RectGrad at every ReLU (percentile ``q`` per sample, default 98);
  attribution g * x (Kim et al. 2019).
- lrp: seed F_t(x) at the target (relevance starts as the logit, so conservative rules give
  input relevance summing to F_t(x)); the attribution is the relevance at the input. The
  ``composite`` option names the rule map (``workbench.rules.composites``).

Claims are honest and per configuration: every method here claims ``dummy`` (a zero weight
column gets zero signal) except LRP composites with ``flat`` at the input; LRP composites whose
rules all conserve relevance on bias-free ReLU networks claim ``conservation``. None claims
implementation invariance: the rules depend on the parametrization (checked in the tests).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from ..autograd import target_outputs
from ..rules import composites as C
from ..rules import rules as R
from ..rules.engine import Composite
from .base import Method
from .registry import register


class RuleMethod(Method):
    """A Method computed by one backward pass through a composite."""

    #: "gradient": the seed is 1 at the target logit; "relevance": it is F_t(x)
    seed: str = "gradient"
    #: multiply the input signal by x (RectGrad, input x modified gradient)
    times_input: bool = False

    def composite(self) -> Composite:
        raise NotImplementedError

    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        return backward_through(self.composite(), model, x, target, seed=self.seed, times_input=self.times_input)


def backward_through(
    composite: Composite,
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    seed: str = "gradient",
    times_input: bool = False,
    trace: bool = False,
) -> Any:
    """The input signal of one backward pass through `composite` (and the trace if asked)."""
    xs = x.detach().clone().requires_grad_(True)
    with torch.enable_grad(), composite.context(model, trace=trace) as att:
        f = target_outputs(model, xs, target)
        w = torch.ones_like(f) if seed == "gradient" else f.detach()
        if f.requires_grad:
            (g,) = torch.autograd.grad(f, xs, grad_outputs=w, allow_unused=True)
        else:
            g = None
    g = torch.zeros_like(x) if g is None else g.detach()
    out = g * x if times_input else g
    return (out, att.trace) if trace else out


_DUMMY = {"dummy": None}


@register
class GuidedBackpropMethod(RuleMethod):
    """Guided Backprop: 1[z > 0] 1[g > 0] g at every ReLU."""

    name = "guided-backprop"
    description = "Guided Backprop (ReLU backward passes positive signal of active units)"
    base_claims = _DUMMY

    def __init__(self, *, at_zero: bool = False) -> None:
        super().__init__(at_zero=at_zero)
        self.at_zero = at_zero

    def composite(self) -> Composite:
        return C.elementwise(R.GuidedBackprop(at_zero=self.at_zero), "guided-backprop")


@register
class DeconvNetMethod(RuleMethod):
    """DeconvNet: 1[g > 0] g at every ReLU."""

    name = "deconvnet"
    description = "DeconvNet (ReLU backward passes positive signal, ignoring the forward)"
    base_claims = _DUMMY

    def composite(self) -> Composite:
        return C.elementwise(R.DeconvNet(), "deconvnet")


@register
class RectGradMethod(RuleMethod):
    """RectGrad: at each ReLU pass g where a * g exceeds its q-th percentile in the sample; A = g * x."""

    name = "rectgrad"
    description = "RectGrad (Kim et al. 2019): percentile-thresholded ReLU backward, times input"
    base_claims = _DUMMY
    times_input = True

    def __init__(self, *, q: float = 98.0) -> None:
        super().__init__(q=q)
        from ..errors import InputError

        if not 0.0 <= float(q) <= 100.0:
            raise InputError(f"rectgrad percentile q must be in [0, 100], got {q}")
        self.q = float(q)

    def composite(self) -> Composite:
        return C.elementwise(R.RectGrad(q=self.q), "rectgrad")


@register
class LRP(RuleMethod):
    """Layer-wise relevance propagation with a named composite (default Zennit's EpsilonPlusFlat)."""

    name = "lrp"
    description = "layer-wise relevance propagation; composite = " + ", ".join(C.composite_names())
    seed = "relevance"

    def __init__(
        self,
        *,
        composite: str = "epsilon-plus-flat",
        epsilon: float = 1e-6,
        gamma: float = 0.25,
        alpha: float = 2.0,
        beta: float = 1.0,
        low: float = -3.0,
        high: float = 3.0,
        stabilizer: float = 0.0,
        bias: bool = True,
        zplus_bias: bool = False,
    ) -> None:
        super().__init__(
            composite=composite, epsilon=epsilon, gamma=gamma, alpha=alpha, beta=beta, low=low,
            high=high, stabilizer=stabilizer, bias=bias, zplus_bias=zplus_bias,
        )
        self.composite_name = composite
        self.composite_options = dict(epsilon=epsilon, gamma=gamma, alpha=alpha, beta=beta, low=low, high=high, stabilizer=stabilizer, bias=bias, zplus_bias=zplus_bias)
        self.composite()  # unknown names fail here, not at the first call

    @property
    def claims(self) -> dict[str, Optional[float]]:
        out: dict[str, Optional[float]] = {}
        first = C.TABLE[self.composite_name][2]
        if first != "flat" and self.composite_name != "flat":
            out["dummy"] = None
        if self.composite_name in C.CONSERVATIVE and not self.composite_options["stabilizer"]:
            out["conservation"] = None
        return out

    def composite(self) -> Composite:  # type: ignore[override]
        return C.composite(self.composite_name, **self.composite_options)

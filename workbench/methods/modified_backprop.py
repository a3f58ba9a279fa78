"""Modified backprop: Guided Backprop, DeconvNet, RectGrad and LRP, all on the rule engine.

Each method is a composite (``workbench.rules``) plus a seed and a read-out:

- guided-backprop / deconvnet: the one-hot gradient seed at the target logit; the attribution is
  the modified input gradient (Springenberg et al. 2015; Zeiler & Fergus 2014). ``at_zero``
  names GBP's behaviour at z == 0 exactly (torch and Captum block it: default False).
- rectgrad: one-hot seed, RectGrad at every ReLU (percentile ``q`` per sample, default 98);
  attribution g * x (Kim et al. 2019).
- lrp: seed F_t(x) at the target (relevance starts as the logit, so conservative rules give
  input relevance summing to F_t(x)); the attribution is the relevance at the input. The
  ``composite`` option names the rule map (``workbench.rules.composites``); composites with zB
  at the input take the box as ``low`` / ``high`` (numbers or one per channel, ``rules.box_bounds``;
  an input outside a given box is an error) or use the default box [-B, B], B = max(3, max |x|).

``RuleMethod.signal`` returns the gradient-like signal at the input (the map before any
multiplication by x; for LRP the first layer's weights combined with R_j / z_j): the quantity the
input-alignment theory is about (``workbench.alignment``).

Claims are honest and per configuration: every method here claims ``dummy`` (a zero weight
column gets zero signal) except LRP composites with ``flat`` at the input; LRP composites whose
rules all conserve relevance on bias-free ReLU networks claim ``conservation``. None claims
implementation invariance: the rules depend on the parametrization (checked in the tests).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from ..autograd import target_outputs
from ..modelguard import preserved
from ..validation import Target, check_input, check_model, resolve_target
from ..rules import composites as C
from ..rules import rules as R
from ..rules.engine import Composite
from ..errors import InputError
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

    def signal_composite(self) -> Composite:
        """The composite whose input signal is the gradient-like signal (see ``signal``)."""
        return self.composite()

    def signal(self, model: nn.Module, x: Tensor, *, target: Target) -> Tensor:
        """The gradient-like backward signal s at the input: the map itself for GBP / DeconvNet,
        the map before the multiplication by x for RectGrad, and for LRP the first layer's weights
        combined with the coefficients R_j / z_j the rules deliver (``rules.RelevanceSignal``)."""
        check_model(model)
        check_input(x, model)
        t = resolve_target(target, x.shape[0], outputs=2**62)
        with preserved(model, freeze_parameters=True):
            return backward_through(self.signal_composite(), model, x.detach(), t, seed=self.seed)


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
        low: Union[None, float, tuple] = None,
        high: Union[None, float, tuple] = None,
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
        self._box = "zb" in C.TABLE[composite] and (low is not None or high is not None)
        if self._box:
            if low is None or high is None:
                raise InputError(f"zB box bounds: give both low and high (or neither: the default box [-B, B], B = max(3, max |x|)); got low={low}, high={high}")
            lo, hi = torch.as_tensor(low, dtype=torch.float64), torch.as_tensor(high, dtype=torch.float64)
            if lo.shape != hi.shape or lo.dim() > 1 or not bool((lo < hi).all()):
                raise InputError(f"zB box bounds need low < high, as numbers or one number per channel; got low={low}, high={high}")

    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        if self._box:
            o = self.composite_options
            lo, hi = R.box_tensor(o["low"], x), R.box_tensor(o["high"], x, side="high")
            slack = 1e-6 * (1 + float(x.abs().max()))
            if bool((x < lo - slack).any() or (x > hi + slack).any()):
                raise InputError(
                    f"composite {self.composite_name!r} applies zB for inputs in the box [low, high], but the input lies outside it "
                    f"(input range {float(x.min()):.4g}..{float(x.max()):.4g}; low={o['low']}, high={o['high']}); pass the valid input range as low= / high="
                )
        return super()._attribute(model, x, target, baseline)

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

    def signal_composite(self) -> Composite:
        comp = self.composite()
        comp.first = R.RelevanceSignal()
        return comp

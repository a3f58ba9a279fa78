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
input-alignment theory is about (``workbench.studies.alignment``).

Coverage (``workbench.core.coverage``): each method models the layers its composite puts a rule on
(``Rule.models``: ReLU for GBP / DeconvNet / RectGrad; every max pool, under the tie convention
``max_pool_ties``; for LRP also Linear, Conv, average pools, BatchNorm, the residual Sum) and
keeps the plain gradient elsewhere, which is exact on affine and structural operations (for LRP
only on structural ones: copies, views, selections). The forward pass of the attribution is
traced: any other operation -- a GELU, a custom autograd Function, an LSTM, an attention, a
functional ``F.relu`` in a ``forward`` -- raises ``UnsupportedModelError`` naming the layer,
unless the caller names a convention: ``unsupported="gradient"`` (the plain gradient there), or
for LRP ``unsupported="pass"`` (relevance passes through every monotone elementwise activation,
``rules.MONOTONE``). The conventions applied in the last call are in ``last_conventions``.

Claims are honest and per configuration: every method here claims ``dummy`` (a zero weight
column gets zero signal) except LRP composites with ``flat`` at the input; LRP composites whose
rules all conserve relevance on bias-free ReLU networks claim ``conservation``. None claims
implementation invariance: the rules depend on the parametrization (checked in the tests).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from workbench.core import coverage as cov
from workbench.core.autograd import target_outputs
from workbench.core.modelguard import preserved
from workbench.core.validation import Target, check_input, check_model, resolve_target
from workbench.rules import composites as C
from workbench.rules import rules as R
from workbench.rules.engine import Composite
from workbench.rules.pooling import check_ties
from workbench.core.errors import InputError
from workbench.methods.base import Method
from workbench.methods.registry import register


class RuleMethod(Method):
    """A Method computed by one backward pass through a composite."""

    #: "gradient": the seed is 1 at the target logit; "relevance": it is F_t(x)
    seed: str = "gradient"
    #: multiply the input signal by x (RectGrad, input x modified gradient)
    times_input: bool = False
    #: operation kinds the method handles exactly by their plain gradient (``workbench.core.coverage``)
    gradient_kinds: frozenset = cov.LINEAR_KINDS
    #: the conventions ``unsupported=`` may name
    conventions: tuple = cov.UNSUPPORTED
    unsupported: str = "refuse"
    max_pool_ties: str = "first"
    #: conventions applied in the last call (one line per layer); empty when all was modelled
    last_conventions: tuple = ()

    def _set_conventions(self, unsupported: str, max_pool_ties: str) -> None:
        self.unsupported = cov.check_unsupported(unsupported, self.conventions)
        self.max_pool_ties = check_ties(max_pool_ties)

    def composite(self) -> Composite:
        raise NotImplementedError

    @property
    def coverage(self) -> cov.Coverage:
        """What the method models: the module types its composite maps to rules that model them."""
        types: list = []
        for matcher, rule in self.composite().mapping:
            ts = matcher if isinstance(matcher, tuple) else (matcher,) if isinstance(matcher, type) else ()
            types += [t for t in ts if isinstance(t, type) and issubclass(t, getattr(rule, "models", ()) or ())]
        advice = "replace the layer by a modelled one, or pass " + " / ".join(f"unsupported={c!r}" for c in self.conventions[1:]) + " to name a convention for it"
        return cov.Coverage(self.name, tuple(dict.fromkeys(types)), self.gradient_kinds, advice)

    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        out, self.last_conventions = backward_through(
            self.composite(), model, x, target, seed=self.seed, times_input=self.times_input,
            coverage=self.coverage, unsupported=self.unsupported,
        )
        return out

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
            out, self.last_conventions = backward_through(
                self.signal_composite(), model, x.detach(), t, seed=self.seed, coverage=self.coverage, unsupported=self.unsupported
            )
            return out


def backward_through(
    composite: Composite,
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    seed: str = "gradient",
    times_input: bool = False,
    trace: bool = False,
    coverage: Optional[cov.Coverage] = None,
    unsupported: str = "refuse",
) -> Any:
    """The input signal of one backward pass through `composite` (and the trace if asked).

    With a ``coverage``, the forward pass is traced and every operation neither under a rule nor
    of a kind the coverage allows is refused (``unsupported="refuse"``) or recorded: the return
    value is then ``(signal, conventions)`` (``(signal, trace, conventions)`` with ``trace``). A
    rule put on a module outside its ``models`` (LRP's ``monotone_pass``) is recorded too."""
    xs = x.detach().clone().requires_grad_(True)
    applied: tuple = ()
    with torch.enable_grad(), composite.context(model, trace=trace) as att, cov.traced(model, att.modules) as tracer:
        f = target_outputs(model, xs, target)
        if coverage is not None:
            applied = _placed_outside(att) + cov.enforce(f, tracer, coverage, unsupported)
        w = torch.ones_like(f) if seed == "gradient" else f.detach()
        if f.requires_grad:
            (g,) = torch.autograd.grad(f, xs, grad_outputs=w, allow_unused=True)
        else:
            g = None
    g = torch.zeros_like(x) if g is None else g.detach()
    out = g * x if times_input else g
    result = (out, att.trace) if trace else (out,)
    if coverage is not None:
        result = result + (applied,)
    return result if len(result) > 1 else result[0]


def _placed_outside(att: Any) -> tuple:
    """Record of rules put on modules outside the rule's ``models`` (a named convention)."""
    out = []
    for name, rule in att.rules.items():
        module = att.modules_by_name.get(name)
        models = getattr(rule, "models", ())
        if module is not None and models and not isinstance(module, models):
            out.append(f"layer {name!r} ({type(module).__name__}): {type(rule).__name__} rule by convention")
    return tuple(out)


_DUMMY = {"dummy": None}


@register
class GuidedBackpropMethod(RuleMethod):
    """Guided Backprop: 1[z > 0] 1[g > 0] g at every ReLU."""

    name = "guided-backprop"
    description = "Guided Backprop (ReLU backward passes positive signal of active units)"
    base_claims = _DUMMY

    def __init__(self, *, at_zero: bool = False, unsupported: str = "refuse", max_pool_ties: str = "first") -> None:
        super().__init__(at_zero=at_zero, unsupported=unsupported, max_pool_ties=max_pool_ties)
        self.at_zero = at_zero
        self._set_conventions(unsupported, max_pool_ties)

    def composite(self) -> Composite:
        return C.elementwise(R.GuidedBackprop(at_zero=self.at_zero), "guided-backprop", max_pool_ties=self.max_pool_ties)


@register
class DeconvNetMethod(RuleMethod):
    """DeconvNet: 1[g > 0] g at every ReLU."""

    name = "deconvnet"
    description = "DeconvNet (ReLU backward passes positive signal, ignoring the forward)"
    base_claims = _DUMMY

    @classmethod
    def matrix_variants(cls) -> tuple[dict[str, Any], ...]:
        """Not in the ``check --all`` matrix: GBP's verdicts with the sign rule moved: the matrix keeps Guided Backprop."""
        return ()

    def __init__(self, *, unsupported: str = "refuse", max_pool_ties: str = "first") -> None:
        super().__init__(unsupported=unsupported, max_pool_ties=max_pool_ties)
        self._set_conventions(unsupported, max_pool_ties)

    def composite(self) -> Composite:
        return C.elementwise(R.DeconvNet(), "deconvnet", max_pool_ties=self.max_pool_ties)


@register
class RectGradMethod(RuleMethod):
    """RectGrad: at each ReLU pass g where a * g exceeds its q-th percentile in the sample; A = g * x."""

    name = "rectgrad"
    description = "RectGrad (Kim et al. 2019): percentile-thresholded ReLU backward, times input"
    base_claims = _DUMMY
    times_input = True

    def __init__(self, *, q: float = 98.0, unsupported: str = "refuse", max_pool_ties: str = "first") -> None:
        super().__init__(q=q, unsupported=unsupported, max_pool_ties=max_pool_ties)
        if not 0.0 <= float(q) <= 100.0:
            raise InputError(f"rectgrad percentile q must be in [0, 100], got {q}")
        self.q = float(q)
        self._set_conventions(unsupported, max_pool_ties)

    def composite(self) -> Composite:
        return C.elementwise(R.RectGrad(q=self.q), "rectgrad", max_pool_ties=self.max_pool_ties)


@register
class LRP(RuleMethod):
    """Layer-wise relevance propagation with a named composite (default Zennit's EpsilonPlusFlat)."""

    name = "lrp"
    description = "layer-wise relevance propagation; composite = " + ", ".join(C.composite_names())
    seed = "relevance"
    #: outside its rules LRP is exact only on copies, views and selections (a gradient through an
    #: affine map or a sum is not a relevance rule: it does not conserve)
    gradient_kinds = frozenset({cov.STRUCTURAL})
    conventions = ("refuse", "gradient", "pass")

    @classmethod
    def variants(cls) -> tuple[dict[str, Any], ...]:
        """Every composite of ``composites.TABLE`` (its claims depend on the composite)."""
        return tuple({"composite": name} for name in C.composite_names())

    @classmethod
    def matrix_variants(cls) -> tuple[dict[str, Any], ...]:
        """The default composite and LRP-0 (the one equal to input x gradient)."""
        return ({}, {"composite": "zero"})

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
        generalized_gamma: bool = False,
        unsupported: str = "refuse",
        max_pool_ties: str = "first",
    ) -> None:
        super().__init__(
            composite=composite, epsilon=epsilon, gamma=gamma, alpha=alpha, beta=beta, low=low,
            high=high, stabilizer=stabilizer, bias=bias, zplus_bias=zplus_bias, generalized_gamma=generalized_gamma,
            unsupported=unsupported, max_pool_ties=max_pool_ties,
        )
        self._set_conventions(unsupported, max_pool_ties)
        self.composite_name = composite
        self.composite_options = dict(
            epsilon=epsilon, gamma=gamma, alpha=alpha, beta=beta, low=low, high=high, stabilizer=stabilizer, bias=bias,
            zplus_bias=zplus_bias, generalized_gamma=generalized_gamma, max_pool_ties=max_pool_ties,
            monotone_pass=unsupported == "pass",
        )
        self.composite()  # unknown names fail here, not at the first call
        self._box = "zb" in C.TABLE[composite][:3] and (low is not None or high is not None)
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
        first = C.TABLE[self.composite_name].first
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

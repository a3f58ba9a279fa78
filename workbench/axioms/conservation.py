"""Conservation (LRP) and the LRP identities, as checkable axioms.

Conservation: the input relevance sums to the output relevance, sum_i A_i = F_t(x).

Cases are bias-free ReLU networks (every Linear/Conv bias, BatchNorm shift and running mean
zeroed: "bias excluded", the setting in which LRP-0, z+, w-square, flat and zB conserve) with a
positive target output (if F_t(x) < 0 the output layer's weights are negated, which makes it
positive; F_t(x) = 0 is not applicable: relevance is defined for a positive output, as in DTD's
R = max(0, f)). The residual is |sum A - F_t(x)| relative to 1 + max(|F_t(x)|, sum |A|).

Absorbing rules (epsilon) fail it by design; the note of each outcome reports the measured
absorption 1 - sum A / F_t(x).

Identities (verdicts in the check matrix, claimed by no method):

* ``input-x-gradient-identity``: on bias-free ReLU networks A = x * grad F_t(x) (Ancona et al.,
  ICLR 2018: LRP-0 and DeepLift-Rescale with a zero reference reduce to it);
* ``alpha1-beta0-identity``: on bias-free ReLU networks and inputs x >= 0, A equals LRP with
  alpha = 1, beta = 0 everywhere -- which on such inputs is z+ and DTD's z+ (the three derivations
  are compared in tests/properties/test_rules_reference.py).
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from workbench.testing import strategies as wst
from workbench.nets import spec as S
from workbench.axioms.base import Axiom, Case, Outcome, attribute, not_applicable, output, register_axiom, relative


def bias_free(net: S.SpecNet) -> S.SpecNet:
    """A copy of `net` with every bias, BatchNorm shift and running mean set to zero."""
    state = {k: v.detach().clone() for k, v in net.state_dict().items() if v.is_floating_point()}
    for k in state:
        if k.endswith(".bias") or k.endswith(".running_mean"):
            state[k] = torch.zeros_like(state[k])
    dtype = next(iter(state.values())).dtype
    return S.build(net.spec, dtype=dtype, state=state)


def flip_output(net: S.SpecNet) -> S.SpecNet:
    """A copy of `net` whose output is negated (last top-level Linear's weight and bias)."""
    state = {k: v.detach().clone() for k, v in net.state_dict().items() if v.is_floating_point()}
    last = len(net.spec.layers) - 1
    for k in (f"{last}.weight", f"{last}.bias"):
        if k in state:
            state[k] = -state[k]
    dtype = next(iter(state.values())).dtype
    return S.build(net.spec, dtype=dtype, state=state)


def _conservation_case(c: wst.NetworkCase) -> Case:
    net = bias_free(c.net)
    if output(net, c.x, c.target) < 0 and isinstance(net.spec.layers[-1], S.Linear):
        net = flip_output(net)
    return Case({"f": net}, c.x, c.baseline, c.target)


@register_axiom
class Conservation(Axiom):
    name = "conservation"
    abbreviation = "cons"
    description = "sum of input relevance = output relevance F_t(x) (bias-free ReLU nets, F_t(x) > 0)"

    def cases(self, family: wst.Family, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        relu_only = wst.Family(family.kind, ("relu",))
        return relu_only.cases(dtype).map(_conservation_case)

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        f = case.nets["f"]
        fx = output(f, case.x, case.target)
        if not fx > 0:
            return not_applicable("relevance is defined for a positive output; F_t(x) = 0 here")
        a = attribute(method, f, case.x, case.target, case.baseline)
        total = float(a.sum())
        scale = max(abs(fx), float(a.abs().sum()))
        note = f"sum(A) = {total:.6g}, F_t(x) = {fx:.6g}, absorbed 1 - sum/F = {1 - total / fx:.3g}"
        return Outcome(relative(total - fx, scale), rtol, True, note)


def _identity_case(c: wst.NetworkCase, non_negative: bool) -> Case:
    x = c.x.abs() if non_negative else c.x
    return Case({"f": bias_free(c.net)}, x, torch.zeros_like(x), c.target)


def _identity_outcome(a: torch.Tensor, b: torch.Tensor, rtol: float, what: str) -> Outcome:
    diff = float((a - b).abs().max())
    scale = float(torch.maximum(a.abs(), b.abs()).max())
    return Outcome(relative(diff, scale), rtol, True, f"max |A - {what}| = {diff:.6g}")


@register_axiom
class InputTimesGradientIdentity(Axiom):
    name = "input-x-gradient-identity"
    abbreviation = "ixgId"
    description = "A = x * grad F_t(x) on bias-free ReLU nets (LRP-0, DeepLift with zero reference)"

    def cases(self, family: wst.Family, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        relu_only = wst.Family(family.kind, ("relu",))
        return relu_only.cases(dtype).map(lambda c: _identity_case(c, False))

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        from workbench.methods.registry import method as build

        f = case.nets["f"]
        a = attribute(method, f, case.x, case.target, case.baseline)
        ixg = attribute(build("input-x-gradient"), f, case.x, case.target, case.baseline)
        return _identity_outcome(a, ixg, rtol, "x * grad")


@register_axiom
class AlphaOneBetaZeroIdentity(Axiom):
    name = "alpha1-beta0-identity"
    abbreviation = "a1b0Id"
    description = "A = LRP alpha=1, beta=0 (= z+ = DTD z+) on bias-free ReLU nets with x >= 0"

    def cases(self, family: wst.Family, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        relu_only = wst.Family(family.kind, ("relu",))
        return relu_only.cases(dtype).map(lambda c: _identity_case(c, True))

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        from workbench.methods.registry import method as build

        f = case.nets["f"]
        a = attribute(method, f, case.x, case.target, case.baseline)
        ab = attribute(build("lrp", composite="alpha-beta", alpha=1.0, beta=0.0), f, case.x, case.target, case.baseline)
        return _identity_outcome(a, ab, rtol, "LRP alpha1-beta0")

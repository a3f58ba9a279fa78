"""Linearity: A(a f1 + b f2) = a A(f1) + b A(f2), with a f1 + b f2 built as ONE network
(hidden units concatenated, output layer [a W1, b W2]) so a method cannot see the sum.

Before the drawn cases, one named case: f - f for the saturating network of Sundararajan, Taly &
Yan (2017, Sec. 2.1), f(x) = 1 - ReLU(1 - x), at x = 0.5 against baseline 0. h is the zero
function, so a linear method gives it the zero map.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from workbench.testing import strategies as wst
from workbench.nets import paper, transforms
from workbench.axioms.base import Axiom, Case, Outcome, attribute, register_axiom, relative

_COEFFICIENTS = st.sampled_from([1.0, 2.0, -1.0, 0.5, -0.5, 3.0])


@st.composite
def _sum_cases(draw: st.DrawFn, family: wst.Family, dtype: torch.dtype) -> Case:
    spec = draw(family.specs())
    f1 = draw(wst.weights_for(spec, dtype=dtype))
    f2 = draw(wst.weights_for(spec, dtype=dtype))
    a, b = draw(_COEFFICIENTS), draw(_COEFFICIENTS)
    h = transforms.weighted_sum(f1, f2, a, b)
    x, base, t = draw(wst.inputs(spec, dtype=dtype)), draw(wst.baselines(spec, dtype=dtype)), draw(wst.targets(spec))
    return Case({"f1": f1, "f2": f2, "h": h}, x, base, t, {"a": a, "b": b})


@register_axiom
class Linearity(Axiom):
    name = "linearity"
    abbreviation = "lin"
    description = "A(a f1 + b f2) = a A(f1) + b A(f2)"
    core = True

    def cases(self, family: wst.Family, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        return _sum_cases(family, dtype)

    def named_cases(self, dtype: torch.dtype) -> list[Case]:
        f, _, base, target = paper.paper_case("ig-saturating", dtype=dtype)
        h = transforms.weighted_sum(f, f, 1.0, -1.0)
        x = torch.full_like(base, 0.5)
        return [Case({"f1": f, "f2": f, "h": h}, x, base, target, {"a": 1.0, "b": -1.0}, label="ig-saturating minus itself")]

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        a, b = case.params["a"], case.params["b"]
        args = (case.x, case.target, case.baseline)
        a1 = attribute(method, case.nets["f1"], *args)
        a2 = attribute(method, case.nets["f2"], *args)
        ah = attribute(method, case.nets["h"], *args)
        combo = a * a1 + b * a2
        diff = float((ah - combo).abs().max())
        scale = float(torch.maximum(ah.abs(), combo.abs()).max())
        return Outcome(relative(diff, scale), rtol, True, f"max |A(h) - (a A(f1) + b A(f2))| = {diff:.6g}")

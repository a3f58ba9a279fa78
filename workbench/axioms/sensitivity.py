"""Sensitivity (a) (Sundararajan et al. 2017): if x and x' differ in one feature only and
F(x) != F(x'), that feature gets a non-zero attribution.

Residual: the output change |F(x) - F(x')| (relative) left unattributed when A_k = 0; zero when
A_k != 0. Half the drawn cases change the feature by ±2**-e (e <= 24), so output changes
across scales are drawn (a method that zeroes small attributions is found). Plain gradients fail on the IG paper's f(x) = 1 - ReLU(1 - x), x = 2, x' = 0.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from workbench.testing import strategies as wst
from workbench.nets import paper
from workbench.axioms.base import Axiom, Case, Outcome, attribute, not_applicable, output, register_axiom, relative


@st.composite
def _one_feature_cases(draw: st.DrawFn, family: wst.Family, dtype: torch.dtype) -> Case:
    net = draw(family.networks(dtype))
    x = draw(wst.inputs(net.spec, dtype=dtype))
    k = draw(st.integers(0, x[0].numel() - 1))
    b = x.clone()
    if draw(st.booleans()):  # a change across scales: |F(x) - F(x')| from O(1) down to ~1e-7
        b.view(-1)[k] = float(x.view(-1)[k]) + draw(wst.scaled_offsets())
    else:
        b.view(-1)[k] = draw(wst.grid_values())
    return Case({"f": net}, x, b, draw(wst.targets(net.spec)), {"feature": k})


@register_axiom
class SensitivityA(Axiom):
    name = "sensitivity-a"
    abbreviation = "sensA"
    description = "input and baseline differ in one feature and in output -> that feature's attribution != 0"
    core = True

    def cases(self, family: wst.Family, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        return _one_feature_cases(family, dtype)

    def named_cases(self, dtype: torch.dtype) -> list[Case]:
        net, x, b, t = paper.paper_case("ig-saturating", dtype=dtype)
        return [Case({"f": net}, x, b, t, {"feature": 0}, label="ig-saturating")]

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        f, k = case.nets["f"], int(case.params["feature"])
        fx, fb = output(f, case.x, case.target), output(f, case.baseline, case.target)
        scale = max(abs(fx), abs(fb))
        if relative(fx - fb, scale) <= 2 * rtol:
            return not_applicable("input and baseline give the same output")
        a = attribute(method, f, case.x, case.target, case.baseline)
        ak = float(a.reshape(-1)[k])
        note = f"A_{k} = {ak:.6g}, F(x) - F(x') = {fx - fb:.6g}"
        unattributed = 0.0 if relative(ak, scale) > rtol else relative(fx - fb, scale)
        return Outcome(unattributed, rtol, True, note)

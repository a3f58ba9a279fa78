"""Completeness (IG's axiom; DeepLift's summation-to-delta): sum_i A_i = F(x) - F(x').

For a method without a baseline the reference is x' = 0 (input x gradient sums to F(x) - F(0)
exactly on bias-free ReLU networks, and not otherwise). On an affine network (no kink, no
curvature) the case is checked at round-off tolerance (``AFFINE_RTOL``, or the dtype's if
coarser) whatever the claimed one: a quadrature rule's honest error vanishes there, a wrong
weight or node does not.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from workbench.testing import strategies as wst
from workbench.nets import paper
from workbench.nets import spec as S
from workbench.core.tolerance import rtol_for
from workbench.axioms.base import Axiom, Case, Outcome, attribute, output, register_axiom, relative


#: completeness on an affine network: the round-off of quadrature weights held in single
#: precision (Captum builds its step sizes as float32 tensors: ~1e-9 relative at 256 nodes),
#: far below the 1/n of a weight that is off by one node
AFFINE_RTOL = 1e-6


def is_affine(spec: S.NetSpec) -> bool:
    """Whether the network is affine in its input (no activation, no max pooling)."""
    return not any(isinstance(l, S.ACTIVATIONS + (S.MaxPool2d,)) for l in S.iter_layers(spec.layers))


@register_axiom
class Completeness(Axiom):
    name = "completeness"
    abbreviation = "compl"
    description = "sum of attributions = F(x) - F(baseline)"
    core = True

    def cases(self, family: wst.Family, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        return family.cases(dtype).map(lambda c: Case({"f": c.net}, c.x, c.baseline, c.target))

    def named_cases(self, dtype: torch.dtype) -> list[Case]:
        out = []
        for name in paper.PAPER_NETS:
            net, x, b, t = paper.paper_case(name, dtype=dtype)
            out.append(Case({"f": net}, x, b, t, label=name))
        return out

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        f = case.nets["f"]
        ref = case.baseline if method.uses_baseline else torch.zeros_like(case.x)
        a = attribute(method, f, case.x, case.target, ref)
        fx, fr = output(f, case.x, case.target), output(f, ref, case.target)
        total = float(a.sum())
        scale = max(abs(fx), abs(fr), float(a.abs().sum()))
        note = f"sum(A) = {total:.6g}, F(x) - F(x') = {fx - fr:.6g}"
        spec = getattr(f, "spec", None)  # None: a given network (workbench.check.network), not a drawn one
        if spec is not None and is_affine(spec):  # no kink, no curvature: any sound rule is exact up to round-off
            rtol = min(rtol, max(rtol_for(case.x.dtype), AFFINE_RTOL))
            note += " (affine network: checked at round-off tolerance)"
        return Outcome(relative(total - (fx - fr), scale), rtol, True, note)

"""Symmetry preservation: F symmetric in features i, j and x_i = x_j, x'_i = x'_j -> A_i = A_j.

Symmetric networks by construction: h(x) = (f(x) + f(swap_ij x)) / 2 as one network
(flat inputs: features; images: input channels).
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from workbench.testing import strategies as wst
from workbench.nets import transforms
from workbench.axioms.base import Axiom, Case, Outcome, attribute, register_axiom, relative
from workbench.axioms.dummy import feature_values


def _tie(t: torch.Tensor, i: int, j: int) -> torch.Tensor:
    t = t.clone()
    t[:, j] = t[:, i]
    return t


@st.composite
def _symmetric_cases(draw: st.DrawFn, family: wst.Family, dtype: torch.dtype) -> Case:
    c = draw(family.cases(dtype, min_inputs=2, min_channels=2))
    d = c.net.spec.input_shape[0]
    i = draw(st.integers(0, d - 2))
    j = draw(st.integers(i + 1, d - 1))
    h = transforms.symmetrize(c.net, i, j)
    return Case({"f": h}, _tie(c.x, i, j), _tie(c.baseline, i, j), c.target, {"i": i, "j": j})


@register_axiom
class Symmetry(Axiom):
    name = "symmetry"
    abbreviation = "symm"
    description = "F symmetric in i, j and x_i = x_j, x'_i = x'_j -> A_i = A_j"
    core = True

    def cases(self, family: wst.Family, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        return _symmetric_cases(family, dtype)

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        f, i, j = case.nets["f"], int(case.params["i"]), int(case.params["j"])
        a = attribute(method, f, case.x, case.target, case.baseline)
        ai, aj = feature_values(a, f.spec.input_shape, i), feature_values(a, f.spec.input_shape, j)
        diff = float((ai - aj).abs().max())
        return Outcome(relative(diff, float(a.abs().max())), rtol, True, f"max |A_{i} - A_{j}| = {diff:.6g}")

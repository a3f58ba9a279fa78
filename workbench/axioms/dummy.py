"""Dummy / sensitivity (b): if F does not depend on feature k, A_k = 0 at every input.

Networks ignore a feature by construction: the first layer's weights for it are zeroed
(flat inputs: one feature; images: one input channel).
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from workbench.testing import strategies as wst
from workbench.nets import transforms
from workbench.axioms.base import Axiom, Case, Outcome, attribute, register_axiom, relative


def feature_values(a: torch.Tensor, spec_shape: tuple, k: int) -> torch.Tensor:
    """Attributions of feature k: an element of a flat input, a channel of an image."""
    return a[:, k] if len(spec_shape) == 1 else a[:, k].reshape(a.shape[0], -1)


@st.composite
def _dummy_cases(draw: st.DrawFn, family: wst.Family, dtype: torch.dtype) -> Case:
    c = draw(family.cases(dtype))
    k = draw(st.integers(0, c.net.spec.input_shape[0] - 1))
    return Case({"f": transforms.zero_input_feature(c.net, k)}, c.x, c.baseline, c.target, {"feature": k})


@register_axiom
class Dummy(Axiom):
    name = "dummy"
    abbreviation = "dummy"
    description = "F independent of a feature -> its attribution is 0"
    core = True

    def cases(self, family: wst.Family, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        return _dummy_cases(family, dtype)

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        f, k = case.nets["f"], int(case.params["feature"])
        a = attribute(method, f, case.x, case.target, case.baseline)
        dummy = feature_values(a, f.spec.input_shape, k)
        worst = float(dummy.abs().max())
        return Outcome(relative(worst, float(a.abs().max())), rtol, True, f"max |A| on the dummy feature {k}: {worst:.6g}")

"""Implementation invariance: functionally equal networks get identical attributions.

Pairs (f, g) are made equal by construction: hidden units permuted, positively rescaled
between layers (ReLU/pooling only: g(cz) = c g(z)), or one unit split in two. Before the drawn
pairs, three named ones on the two-input network of Sundararajan, Taly & Yan (2017, Sec. 2.2):
the paper's own rewrite (the bias moved inside the first ReLU), a unit split with fractions -1
and 2, and a positive rescaling.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from workbench.testing import strategies as wst
from workbench.nets import paper, transforms
from workbench.axioms.base import Axiom, Case, Outcome, attribute, register_axiom, relative


@st.composite
def _equivalent_pairs(draw: st.DrawFn, family: wst.Family, dtype: torch.dtype) -> Case:
    c = draw(family.cases(dtype, min_hidden_layers=1))  # every drawn network then has a hidden site
    sites = transforms.hidden_sites(c.net)
    i = draw(st.integers(0, len(sites) - 1))
    site = sites[i]
    kinds = ["permute", "split"] + (["rescale"] if site.homogeneous else [])
    how = draw(st.sampled_from(kinds))
    if how == "permute":
        perm = draw(st.permutations(list(range(site.width))))
        g = transforms.permute_hidden(c.net, site, perm)
        params = {"transform": how, "site": i, "perm": list(perm)}
    elif how == "rescale":
        scales = draw(st.lists(st.sampled_from([2.0, 0.5, 4.0, 0.25, 3.0]), min_size=site.width, max_size=site.width))
        g = transforms.rescale_hidden(c.net, site, scales)
        params = {"transform": how, "site": i, "scales": scales}
    else:
        unit = draw(st.integers(0, site.width - 1))
        t = draw(st.sampled_from([0.5, 0.25, 2.0, -1.0]))
        g = transforms.split_hidden(c.net, site, unit, t)
        params = {"transform": how, "site": i, "unit": unit, "fraction": t}
    return Case({"f": c.net, "g": g}, c.x, c.baseline, c.target, params)


@register_axiom
class ImplementationInvariance(Axiom):
    name = "implementation-invariance"
    abbreviation = "implI"
    description = "functionally equal networks -> equal attributions"
    core = True

    def cases(self, family: wst.Family, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        return _equivalent_pairs(family, dtype)

    def named_cases(self, dtype: torch.dtype) -> list[Case]:
        f, x, base, target = paper.paper_case("ig-two-input", dtype=dtype)
        site = transforms.hidden_sites(f)[0]
        pairs = [
            ("ig-two-input rewrite", paper.ig_two_input_equivalent(dtype=dtype), {"transform": "paper rewrite"}),
            ("ig-two-input split", transforms.split_hidden(f, site, 0, -1.0), {"transform": "split", "site": 0, "unit": 0, "fraction": -1.0}),
            ("ig-two-input rescale", transforms.rescale_hidden(f, site, [4.0, 0.25]), {"transform": "rescale", "site": 0, "scales": [4.0, 0.25]}),
        ]
        return [Case({"f": f, "g": g}, x, base, target, params, label=label) for label, g, params in pairs]

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        f, g = case.nets["f"], case.nets["g"]
        af = attribute(method, f, case.x, case.target, case.baseline)
        ag = attribute(method, g, case.x, case.target, case.baseline)
        diff = float((af - ag).abs().max())
        scale = float(torch.maximum(af.abs(), ag.abs()).max())
        return Outcome(relative(diff, scale), rtol, True, f"max |A_f - A_g| = {diff:.6g} ({case.params['transform']})")

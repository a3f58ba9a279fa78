"""Implementation invariance: functionally equal networks get identical attributions.

Pairs (f, g) are made equal by construction: hidden units permuted, positively rescaled
between layers (ReLU/pooling only: g(cz) = c g(z)), or one unit split in two. Before the drawn
pairs, three named ones: the two-input network of Sundararajan, Taly & Yan (2017;
arXiv:1703.01365, p. 10) with the paper's own rewrite of it (the bias moved inside the first
ReLU), and a split with fractions -1 and 2 of one unit of a small MLP and of one channel of a
small CNN.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from workbench.testing import strategies as wst
from workbench.nets import paper, transforms
from workbench.nets import spec as S
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


def _two_unit_net(dtype: torch.dtype) -> S.SpecNet:
    """f(x1, x2) = ReLU(x1) - ReLU(x2) - 1: the IG paper's inner function, with a linear output."""
    spec = S.NetSpec((2,), (S.Linear(2, bias=False), S.ReLU(), S.Linear(1)))
    return S.build(spec, dtype=dtype, state={"0.weight": [[1.0, 0.0], [0.0, 1.0]], "2.weight": [[1.0, -1.0]], "2.bias": [-1.0]})


def _two_channel_conv_net(dtype: torch.dtype) -> S.SpecNet:
    """Conv2d(1 -> 2, 2x2, bias) -> ReLU -> Flatten -> Linear(1) on a 3x3 input: conv biases count (FullGrad)."""
    spec = S.NetSpec((1, 3, 3), (S.Conv2d(2, kernel_size=2), S.ReLU(), S.Flatten(), S.Linear(1)))
    state = {
        "0.weight": [[[[1.0, 0.0], [0.0, -1.0]]], [[[0.0, 1.0], [1.0, 0.0]]]],
        "0.bias": [0.5, -0.5],
        "3.weight": [[1.0, 2.0, -1.0, 1.0, 1.0, -2.0, 1.0, 1.0]],
        "3.bias": [0.0],
    }
    return S.build(spec, dtype=dtype, state=state)


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
        mlp, mlp_x = _two_unit_net(dtype), torch.tensor([[3.0, 1.0]], dtype=dtype)
        conv, conv_x = _two_channel_conv_net(dtype), torch.tensor([[[[1.0, 2.0, 0.0], [0.0, 1.0, 2.0], [2.0, 0.0, 1.0]]]], dtype=dtype)
        split = {"transform": "split", "site": 0, "unit": 0, "fraction": -1.0}
        return [
            Case({"f": f, "g": paper.ig_two_input_equivalent(dtype=dtype)}, x, base, target, {"transform": "paper rewrite"}, label="ig-two-input rewrite"),
            Case({"f": mlp, "g": transforms.split_hidden(mlp, transforms.hidden_sites(mlp)[0], 0, -1.0)}, mlp_x, torch.zeros_like(mlp_x), 0, split, label="two-unit split"),
            Case({"f": conv, "g": transforms.split_hidden(conv, transforms.hidden_sites(conv)[0], 0, -1.0)}, conv_x, torch.zeros_like(conv_x), 0, split, label="two-channel conv split"),
        ]

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        f, g = case.nets["f"], case.nets["g"]
        af = attribute(method, f, case.x, case.target, case.baseline)
        ag = attribute(method, g, case.x, case.target, case.baseline)
        diff = float((af - ag).abs().max())
        scale = float(torch.maximum(af.abs(), ag.abs()).max())
        return Outcome(relative(diff, scale), rtol, True, f"max |A_f - A_g| = {diff:.6g} ({case.params['transform']})")

"""Numeric twins of the symbolic proofs in proofs/: each test checks, on networks and inputs drawn by
Hypothesis, the same statement as its proof -- on the library's implementation (the methods, the
quadrature module, the rule engine, full_gradients), not on a re-derivation. The registry
(proofs/registry.py) names each claim's twins; tests/proofs checks that the names collect.

Every statement is written once, as a function returning its violation (relative, 0 when it
holds) for a given implementation; the twin requires round-off for the library's implementation,
and ``test_twin_catches_a_known_bad_implementation`` shows the same function finds a violation
for a known-bad one (Hypothesis ``find``), so no twin is a check that cannot fail.

Tolerances are round-off bounds in float64 (drawn values are small dyadic numbers or
float32-width floats), never fitted to observed values.
"""

from __future__ import annotations

import random
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

import workbench
from workbench.core.degenerate import degenerate_reason
from workbench.proofs import quadrature_exactness as QE
from workbench.testing import strategies as wst
from workbench.axioms.conservation import bias_free
from workbench.axioms.weak_dependence import same_region, same_region_pair
from workbench.methods.base import CallableMethod
from workbench.nets import impossibility
from workbench.nets import spec as S
from workbench.paths.quadrature import MIN_STEPS, RULES, Quadrature, quadrature
from workbench.rules import rules as R
from workbench.proofs import deeplift_rescale_summation, false_ixg_completeness, fullgrad_decomposition, gbp_gated_weights, gradient_weak_dependence, ig_completeness_smooth, lrp0_equals_input_x_gradient, lrp_epsilon_limit, lrp_wsquare_conservation, lrp_zplus_conservation, proposition_1, quadrature_exactness
from workbench.proofs.base import twin_of

ROUND_OFF = 1e-10  # relative, float64, small networks


def _out(net: nn.Module, x: torch.Tensor, t: int) -> torch.Tensor:
    with torch.no_grad():
        return net(x)[:, t]


def _gap(a: torch.Tensor, b: torch.Tensor, scale: float = 0.0) -> float:
    """max |a - b| relative to 1 + scale + the larger magnitude (0 for empty tensors)."""
    if a.numel() == 0:
        return 0.0
    s = 1.0 + scale + max(a.abs().max().item(), b.abs().max().item())
    return (a - b).abs().max().item() / s


def _array(shape: tuple, elements: st.SearchStrategy[float]) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float64, shape, elements=elements)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64)


# -- ig-completeness-smooth --------------------------------------------------------------------

SMOOTH_MLPS = wst.network_cases("mlp", activations=("softplus", "gelu"), min_hidden_layers=1)
#: the fixed-step mode (the error-controlled one refines until the sum matches: circular); 64
#: Gauss-Legendre nodes reach round-off on these analytic integrands
IG_FIXED = workbench.method("integrated-gradients", rule="gauss-legendre", steps=64, tolerance=None)


def completeness_gap(ig: workbench.Method, case: wst.NetworkCase) -> float:
    """|sum IG - (F(x) - F(x'))| relative to 1 + |F(x)| + |F(x')| + sum |IG|."""
    a = ig.attribute(case.net, case.x, target=case.target, baseline=case.baseline)
    fx, fb = _out(case.net, case.x, case.target), _out(case.net, case.baseline, case.target)
    gap = (a.flatten(1).sum(1) - (fx - fb)).abs().item()
    return gap / (1 + fx.abs().item() + fb.abs().item() + a.abs().sum().item())


@twin_of(ig_completeness_smooth)
@given(SMOOTH_MLPS)
def test_ig_on_smooth_networks_is_complete(case):
    """Twin of ig-completeness-smooth: sum IG = F(x) - F(x') on smooth (softplus, GELU) networks."""
    assert completeness_gap(IG_FIXED, case) <= ROUND_OFF, case.net.spec.describe()


# -- quadrature-exactness -----------------------------------------------------------------------

RULE_STEPS = st.sampled_from(RULES).flatmap(lambda r: st.tuples(st.just(r), st.integers(MIN_STEPS[r], 64)))


def rule_gap(q: Quadrature, name: str, n: int) -> float:
    """How far `q` is from the rule the proof is about: stated degree, then exact nodes and weights."""
    if q.degree != QE.PROVED_DEGREE[name](n):
        return float("inf")
    if name == "gauss-legendre" and n > QE.GAUSS_LEGENDRE_PROVED_UP_TO:
        return 0.0  # no exact nodes in the proof (radicals exist for n <= 4); test_quadrature checks exactness
    nodes, weights = QE.rule_nodes(name, n)
    exact_t = torch.tensor([float(v) for v in nodes], dtype=torch.float64)
    exact_w = torch.tensor([float(v) for v in weights], dtype=torch.float64)
    return max((q.nodes - exact_t).abs().max().item(), (q.weights - exact_w).abs().max().item())


@twin_of(quadrature_exactness)
@given(RULE_STEPS)
def test_library_rules_state_the_proved_degree(case):
    """Twin of quadrature-exactness: each rule of workbench.paths.quadrature states the degree the proof
    establishes and uses the proof's nodes and weights (tests/properties/test_quadrature.py checks
    numerically that it is exact up to that degree and not beyond)."""
    name, n = case
    assert rule_gap(quadrature(name, n), name, n) <= 1e-15


def broken_trapezoid(n: int) -> Quadrature:
    """The peer defect (false-trapezoid-weights): weights h (1/2, 1, ..., 1/2) with h = 1/n."""
    w = torch.full((n,), 1.0 / n, dtype=torch.float64)
    w[0] = w[-1] = 0.5 / n
    return Quadrature("trapezoid", torch.linspace(0.0, 1.0, n, dtype=torch.float64), w, 1)


# -- fullgrad-decomposition ---------------------------------------------------------------------

@st.composite
def two_hidden_layers_with_batchnorm(draw):
    """Linear -> BatchNorm (eval) -> ReLU -> Linear -> ReLU -> Linear, biases everywhere (the proof's net)."""
    d, h1, h2, out = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    spec = S.NetSpec((d,), (S.Linear(h1), S.BatchNorm(), S.ReLU(), S.Linear(h2), S.ReLU(), S.Linear(out)))
    net = draw(wst.weights_for(spec))
    return net, draw(wst.inputs(spec, batch=2)), draw(wst.targets(spec))


def implicit_bias(bn: nn.BatchNorm1d) -> torch.Tensor:
    """BatchNorm's implicit bias beta - gamma mu / sqrt(var + eps) (the proof's b_BN)."""
    return bn.bias - bn.weight * bn.running_mean / torch.sqrt(bn.running_var + bn.eps)


def beta_only(bn: nn.BatchNorm1d) -> torch.Tensor:
    """A wrong bias for BatchNorm (beta alone, forgetting the running mean): the known-bad variant."""
    return bn.bias


def decomposition_gap(bn_bias: Callable[[nn.BatchNorm1d], torch.Tensor], case) -> float:
    """F - x . dF/dx - sum_l dF/db_l . b_l, every gradient by autograd on the parameters themselves,
    BatchNorm's term with `bn_bias`; and the gap to workbench.full_gradients's terms. Worst relative."""
    net, x, t = case
    lin0, bn, lin1, lin2 = net[0], net[1], net[3], net[5]
    fg = workbench.full_gradients(net, x, t, strict=False)
    worst = fg.relative_residual.max().item()
    for i in range(x.shape[0]):  # per sample: parameter gradients do not separate a batch
        xi = x[i : i + 1].clone().requires_grad_(True)
        f = net(xi)[0, t]
        gx, g0, gbeta, g1, g2 = torch.autograd.grad(f, [xi, lin0.bias, bn.bias, lin1.bias, lin2.bias])
        terms = {"0": (g0 * lin0.bias).sum(), "1": (gbeta * bn_bias(bn)).sum(), "3": (g1 * lin1.bias).sum(), "5": (g2 * lin2.bias).sum()}
        input_term = (gx * xi).sum()
        scale = 1 + f.abs().item() + input_term.abs().item() + sum(v.abs().item() for v in terms.values())
        worst = max(worst, abs((f - input_term - sum(terms.values())).item()) / scale)
        worst = max(worst, _gap(fg.input_term[i], (gx * xi)[0].detach()))
        library = {term.layer: term.term[i].sum() for term in fg.bias_terms}
        if set(library) != set(terms):
            return float("inf")
        worst = max(worst, *(abs((library[k] - v).item()) / scale for k, v in terms.items()))
    return worst


@twin_of(fullgrad_decomposition)
@given(two_hidden_layers_with_batchnorm())
def test_full_gradient_decomposition_with_batchnorm_implicit_bias(case):
    """Twin of fullgrad-decomposition: F = x . dF/dx + sum_l dF/db_l . b_l with BatchNorm's implicit
    bias, and workbench.full_gradients returns exactly those terms."""
    assert decomposition_gap(implicit_bias, case) <= ROUND_OFF


# -- proposition-1 ------------------------------------------------------------------------------

def with_output_bias_shift(net: S.SpecNet, shift: float) -> S.SpecNet:
    """The same network with `shift` added to the output layer's bias (a bias added if it had none)."""
    layers = list(net.spec.layers)
    last = layers[-1]
    spec = S.NetSpec(net.spec.input_shape, tuple(layers[:-1]) + (S.Linear(last.out_features, bias=True),), shared_relu=net.spec.shared_relu)
    state = {k: v.detach().clone() for k, v in net.state_dict().items() if v.is_floating_point()}
    key = f"{len(layers) - 1}.bias"
    state[key] = state.get(key, torch.zeros(last.out_features, dtype=torch.float64)) + shift
    return S.build(spec, state=state)


WEAKLY_DEPENDENT = [m.name for m in workbench.methods() if "weak-dependence" in m.claims]
SHIFTED = st.tuples(wst.network_cases("any"), st.sampled_from([v for v in wst.GRID if abs(v) >= 0.25]))


def bias_shift_visible(method: workbench.Method, case) -> float:
    """How much `method`'s map changes when only the output bias moves (0 for a map of the region's
    weights; the outputs then differ by the shift, so no phi(S(x), x) can return both)."""
    c, shift = case
    g = with_output_bias_shift(c.net, shift)
    assert (_out(g, c.x, c.target) - _out(c.net, c.x, c.target)).item() == pytest.approx(shift, abs=1e-12)
    return _gap(method.attribute(c.net, c.x, target=c.target), method.attribute(g, c.x, target=c.target))


@twin_of(proposition_1)
@given(SHIFTED)
def test_weakly_dependent_maps_cannot_see_a_bias_shift(case):
    """Twin of proposition-1 (Part A): every built-in input-sized map claiming weak dependence is the
    same for f and f + shift at the same x, while the outputs differ by the shift; the full-gradient
    representation (one more number) separates them."""
    assert WEAKLY_DEPENDENT, "no built-in claims weak dependence: the twin would test nothing"
    for name in WEAKLY_DEPENDENT:
        assert bias_shift_visible(workbench.method(name), case) == 0.0, name
    (c, shift) = case
    rep = workbench.method("full-gradients")
    back = rep.reconstruct(with_output_bias_shift(c.net, shift), c.x, target=c.target) - rep.reconstruct(c.net, c.x, target=c.target)
    assert back.item() == pytest.approx(shift, abs=1e-9)


def gradient_times_output(model, x, target, baseline):
    """dF/dx * F(x): reads the output, so it sees the bias (the known-bad map for the twin)."""
    g = workbench.method("gradient").attribute(model, x, target=target)
    return g * _out(model, x, int(target[0])).view(-1, *([1] * (x.dim() - 1)))


def _read_region(net: S.SpecNet, w: torch.Tensor, b: float) -> tuple[torch.Tensor, float]:
    """(w, b) of the affine piece as the library reads it: the gradient and the full-gradient bias
    total, at a point off the piece's zero set (w . x + b = 1 there)."""
    x = (w * (1 - b) / (w @ w)).reshape(1, -1) if (w @ w) > 0 else torch.zeros(1, w.numel(), dtype=torch.float64)
    fg = workbench.full_gradients(net, x, 0)
    return fg.input_gradient[0], fg.bias_total.item()


@twin_of(proposition_1)
@given(_array((2, 3), wst.grid_values()), _array((2,), wst.grid_values()), wst.grid_values())
def test_linear_sigma_has_a_colliding_pair_of_pieces(M, w, b):
    """Twin of proposition-1 (Part B): for any sigma(w, b) = A w + b c (D = 2), a kernel vector k of
    [A | c] (numerically, by SVD) gives two library networks whose region parameters, read by the
    library, have the same sigma, and whose outputs differ at 0, e1 or e2 by at least |k| / 3."""
    Mt = _t(M)
    k = torch.linalg.svd(Mt, full_matrices=True).Vh[-1]  # unit vector with M k = 0 (rank <= 2 < 3)
    w0 = _t(w)
    f = impossibility.affine_net(w0, float(b))
    g = impossibility.affine_net(w0 + k[:2], float(b) + k[2].item())
    (wf, bf), (wg, bg) = _read_region(f, w0, float(b)), _read_region(g, w0 + k[:2], float(b) + k[2].item())
    sigma_f = Mt[:, :2] @ wf + bf * Mt[:, 2]
    sigma_g = Mt[:, :2] @ wg + bg * Mt[:, 2]
    assert _gap(sigma_f, sigma_g, scale=float(Mt.abs().sum()) * (1 + float(w0.abs().sum()) + abs(b))) <= ROUND_OFF
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    gaps = (_out(g, points, 0) - _out(f, points, 0)).abs()
    assert gaps.max().item() >= 1 / 3 - 1e-12, gaps


# -- gradient-weak-dependence -------------------------------------------------------------------

REGION_PAIRS = st.tuples(wst.network_cases("any"), st.integers(0, 2**16))


def region_pair(case) -> tuple[torch.Tensor, torch.Tensor]:
    """Two points x + s d / 3, x + 2 s d / 3 of one linear region (s from the library's
    same_region_pair), checked: equal activation patterns bound a convex polyhedron."""
    c, seed = case
    d = torch.randn(c.x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x1, x2, _ = same_region_pair(c.net, c.x, d)
    assert same_region(c.net, x1, x2), f"same_region_pair left the region along d from x = {c.x.flatten().tolist()}"
    return x1, x2


def region_variation(method: workbench.Method, case) -> float:
    """How much `method`'s map differs between two points of one linear region."""
    c, _ = case
    x1, x2 = region_pair(case)
    return _gap(method.attribute(c.net, x1, target=c.target, baseline=torch.zeros_like(x1)),
                method.attribute(c.net, x2, target=c.target, baseline=torch.zeros_like(x2)))


@twin_of(gradient_weak_dependence)
@given(REGION_PAIRS)
def test_gradient_is_constant_on_a_linear_region(case):
    """Twin of gradient-weak-dependence (Part 1): two points of one linear region get the same map
    (the region's w) from every built-in claiming weak dependence."""
    for name in WEAKLY_DEPENDENT:
        assert region_variation(workbench.method(name), case) <= ROUND_OFF, name


@twin_of(gradient_weak_dependence)
@given(st.floats(1e-3, 8.0, allow_nan=False), st.floats(1e-3, 8.0, allow_nan=False))
def test_ig_varies_inside_one_region(s1, s2):
    """Twin of gradient-weak-dependence (Part 2): on f = relu(x - 1), baseline 0, every x = 1 + s in
    the region (1, inf) has the same gradient but IG(x) = s (the library's exact and default IG)."""
    f = impossibility.relu_shift(-1.0)
    x1, x2 = torch.tensor([[1.0 + s1]], dtype=torch.float64), torch.tensor([[1.0 + s2]], dtype=torch.float64)
    assert same_region(f, x1, x2)
    grad = workbench.method("gradient")
    assert grad.attribute(f, x1, target=0).item() == grad.attribute(f, x2, target=0).item() == 1.0
    exact, default = workbench.method("integrated-gradients", rule="exact"), workbench.method("integrated-gradients")
    tol = default.claims["completeness"]  # the error-controlled mode's claimed relative tolerance
    for x, s in ((x1, s1), (x2, s2)):
        zero = torch.zeros_like(x)
        assert exact.attribute(f, x, target=0, baseline=zero).item() == pytest.approx(s, rel=1e-12, abs=1e-12)
        assert default.attribute(f, x, target=0, baseline=zero).item() == pytest.approx(s, abs=2 * tol * max(1.0, s))


# -- lrp0-equals-input-x-gradient ---------------------------------------------------------------

NETWORKS = wst.network_cases("any")


def lrp_vs_input_x_gradient(lrp: workbench.Method, case: wst.NetworkCase) -> float:
    """On the bias-free copy of the network: |LRP - x * dF/dx| and |sum LRP - F(x)|, relative. At
    F(x) = 0 the output sends no relevance (0/0 := 0, the proof's assumption): LRP must be 0."""
    net = bias_free(case.net)
    if degenerate_reason({"f": net}, case.x, None):
        # x on a ReLU kink or max-pool tie of this network: LRP (on the BatchNorm-folded network)
        # and x * grad (on the network as given) may take different sides by round-off; the proof
        # assumes no unit exactly at 0, so such an input is no evidence either way
        return 0.0
    fx = _out(net, case.x, case.target).item()
    a = lrp.attribute(net, case.x, target=case.target)
    if fx == 0.0:
        return a.abs().max().item()
    ixg = workbench.method("input-x-gradient").attribute(net, case.x, target=case.target)
    return max(_gap(a, ixg), abs(a.sum().item() - fx) / (1 + a.abs().sum().item()))


@twin_of(lrp0_equals_input_x_gradient)
@given(NETWORKS)
def test_lrp0_is_input_times_gradient_on_bias_free_relu_networks(case):
    """Twin of lrp0-equals-input-x-gradient: the lrp[composite=zero] method equals input-x-gradient on
    bias-free ReLU networks (MLPs and CNNs with BatchNorm, pools, residuals) and sums to F(x)."""
    assert lrp_vs_input_x_gradient(workbench.method("lrp", composite="zero"), case) <= ROUND_OFF


# -- LRP rules on one layer (z+, w-square, epsilon) ---------------------------------------------

@st.composite
def linear_layers(draw, *, non_negative_inputs: bool):
    """A Linear layer (float64, dyadic weights and biases), a batch of inputs and output relevances."""
    i, j, n = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    layer = nn.Linear(i, j).double()
    with torch.no_grad():
        layer.weight.copy_(_t(draw(_array((j, i), wst.grid_values()))))
        layer.bias.copy_(_t(draw(_array((j,), wst.grid_values()))))
    values = wst.grid_values().map(abs) if non_negative_inputs else wst.grid_values()
    a = _t(draw(_array((n, i), values)))
    relevance = _t(draw(_array((n, j), wst.grid_values().map(abs))))
    return layer, a, relevance


NON_NEGATIVE_LAYERS = linear_layers(non_negative_inputs=True)
SIGNED_LAYERS = linear_layers(non_negative_inputs=False)


def _rule(rule: R.Rule, layer: nn.Linear, a: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        y = layer(a)
    return rule.backward(layer, a, y, relevance, None)


def zplus_violation(rule: R.Rule, case) -> float:
    """Relevance passed on minus that of the outputs with z+_j > 0 (relative); inf if some R_i < 0."""
    layer, a, relevance = case
    r_in = _rule(rule, layer, a, relevance)
    if (r_in < 0).any():
        return float("inf")
    carried = (relevance * ((a @ layer.weight.clamp(min=0).T) > 0)).sum(1)
    return _gap(r_in.sum(1), carried, scale=relevance.sum().item())


@twin_of(lrp_zplus_conservation)
@given(NON_NEGATIVE_LAYERS)
def test_zplus_rule_conserves_on_non_negative_inputs(case):
    """Twin of lrp-zplus-conservation: the library's ZPlus rule on a >= 0 passes on all the relevance
    of every output with z+_j > 0 (the proof's assumption; an output with z+_j = 0 passes nothing),
    and keeps it non-negative."""
    assert zplus_violation(R.ZPlus(), case) <= ROUND_OFF


def wsquare_violation(rule: R.Rule, case) -> float:
    """Relevance passed on minus that of the outputs with sum_i w_ij^2 > 0 (relative)."""
    layer, a, relevance = case
    r_in = _rule(rule, layer, a, relevance)
    has_weights = (layer.weight**2).sum(1) > 0
    return _gap(r_in.sum(1), (relevance * has_weights).sum(1), scale=relevance.sum().item())


@twin_of(lrp_wsquare_conservation)
@given(SIGNED_LAYERS)
def test_wsquare_rule_conserves(case):
    """Twin of lrp-wsquare-conservation: the library's WSquare rule passes on all the relevance of
    every output with sum_i w_ij^2 > 0, whatever the inputs' signs."""
    assert wsquare_violation(R.WSquare(), case) <= ROUND_OFF


EPSILONS = st.sampled_from([1e-1, 1e-3, 1e-6, 1e-9, 1e-12])


def epsilon_limit_violation(make: Callable[[float], R.Rule], case) -> float:
    """The rule make(eps) against the library's LRPZero: the difference must be exactly
    -sum_j a_i w_ij R_j eps s_j / (z_j (z_j + eps s_j)), bounded by eps sum_j |a_i w_ij R_j| / z_j^2
    (outputs with z_j != 0, the proof's assumption: R_j := 0 where z_j = 0). Relative violation."""
    (layer, a, relevance), eps = case
    with torch.no_grad():
        z = layer(a)
    relevance = relevance * (z != 0)
    diff = _rule(make(eps), layer, a, relevance) - _rule(R.LRPZero(), layer, a, relevance)
    s = torch.where(z >= 0, 1.0, -1.0).double()
    zs = torch.where(z == 0, torch.ones_like(z), z)
    contrib = a.unsqueeze(1) * layer.weight.unsqueeze(0) * relevance.unsqueeze(2)  # (n, j, i): a_i w_ij R_j
    expected = -(contrib * (eps * s / (zs * (zs + eps * s))).unsqueeze(2)).sum(1)
    bound = eps * (contrib.abs() / (zs**2).unsqueeze(2)).sum(1)
    scale = contrib.abs().sum().item() / max(zs.abs().min().item(), 1e-300)
    over = (diff.abs() - bound * (1 + 1e-9)).clamp(min=0).max().item() / (1 + scale)
    return max(_gap(diff, expected, scale=scale), over)


@twin_of(lrp_epsilon_limit)
@given(st.tuples(SIGNED_LAYERS, EPSILONS))
def test_epsilon_rule_tends_to_lrp0(case):
    """Twin of lrp-epsilon-limit: the library's Epsilon rule differs from LRPZero by the exact
    O(eps) term above, so it tends to LRP-0 as eps -> 0."""
    assert epsilon_limit_violation(lambda eps: R.Epsilon(epsilon=eps), case) <= ROUND_OFF


# -- deeplift-rescale-summation -----------------------------------------------------------------

@st.composite
def two_layer_relu_networks(draw, batch: int = 2):
    """f = v^T relu(W x + b) + c (the proofs' network), dyadic weights; input and reference share the
    grid, so z = z0 (the 0/0 case of Rescale) and z = 0 are drawn often."""
    d, h, out = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 2))
    spec = S.NetSpec((d,), (S.Linear(h), S.ReLU(), S.Linear(out)))
    net = draw(wst.weights_for(spec))
    return net, draw(wst.inputs(spec, batch=batch)), draw(wst.inputs(spec, batch=batch)), draw(wst.targets(spec))


TWO_LAYER = two_layer_relu_networks()


def deeplift_violation(method: workbench.Method, case) -> float:
    """Contributions against C_i = (x_i - x0_i) sum_j W_ji m_j v_j (Rescale multipliers m_j, the
    gradient where z_j = z0_j) and their sum against f(x) - f(x0). Relative."""
    net, x, x0, t = case
    W, b, v = net[0].weight.detach(), net[0].bias.detach(), net[2].weight.detach()[t]
    c = method.attribute(net, x, target=t, baseline=x0)
    z, z0 = x @ W.T + b, x0 @ W.T + b
    same = z == z0
    m = torch.where(same, (z > 0).double(), (z.clamp(min=0) - z0.clamp(min=0)) / torch.where(same, torch.ones_like(z), z - z0))
    delta = _out(net, x, t) - _out(net, x0, t)
    return max(_gap(c, (x - x0) * ((m * v) @ W)), _gap(c.sum(1), delta, scale=c.abs().sum().item()))


@twin_of(deeplift_rescale_summation)
@given(TWO_LAYER)
def test_deeplift_sums_to_delta_on_two_layer_networks(case):
    """Twin of deeplift-rescale-summation: the deeplift method's contributions are the chain-ruled
    Rescale multipliers times x - x0, and sum to f(x) - f(x0), biases included."""
    assert deeplift_violation(workbench.method("deeplift"), case) <= ROUND_OFF


def gradient_times_delta(model, x, target, baseline):
    """(x - x0) * dF/dx(x): the known-bad DeepLift (no Rescale multipliers)."""
    return (x - baseline) * workbench.method("gradient").attribute(model, x, target=target)


# -- gbp-gated-weights --------------------------------------------------------------------------

def gbp_violation(method: workbench.Method, case, at_zero: bool = False) -> float:
    """The map on f = v^T relu(W x + b) against sum_j 1[z_j > 0] 1[v_j > 0] v_j W_j (1[z_j >= 0] with
    at_zero); and, with input k's weight column zeroed, against 0 at k (the dummy corollary)."""
    (net, x, _, t), k = case
    worst = 0.0
    for zero_column in (False, True):
        if zero_column:
            state = {n: p.detach().clone() for n, p in net.state_dict().items()}
            state["0.weight"][:, k % x.shape[1]] = 0.0
            net = S.build(net.spec, state=state)
        W, b, v = net[0].weight.detach(), net[0].bias.detach(), net[2].weight.detach()[t]
        gbp = method.attribute(net, x, target=t)
        z = x @ W.T + b
        gate = ((z >= 0) if at_zero else (z > 0)).double() * (v > 0).double()
        worst = max(worst, _gap(gbp, (gate * v) @ W))
        if zero_column:
            worst = max(worst, gbp[:, k % x.shape[1]].abs().max().item())
    return worst


GBP_CASES = st.tuples(TWO_LAYER, st.integers(0, 2))
GBP_AT_ZERO_BUG = (
    "workbench/rules/rules.py _active(y, at_zero) reads the gate off the ReLU *output* y: with at_zero=True "
    "(y >= 0) is always true, so inactive units (z < 0) pass the signal too (GBP becomes DeconvNet). "
    "Example: W = [[0, 1]], b = [-2], v = [1], x = (1, 1): z = -1, GBP(at_zero=True) = (0, 1), expected (0, 0)"
)


def gbp_at_zero_bug_present() -> bool:
    """Whether GBP(at_zero=True) still passes the signal through an inactive unit (GBP_AT_ZERO_BUG)."""
    net = S.build(S.NetSpec((2,), (S.Linear(1), S.ReLU(), S.Linear(1))),
                  state={"0.weight": [[0.0, 1.0]], "0.bias": [-2.0], "2.weight": [[1.0]], "2.bias": [0.0]})
    x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    return bool(workbench.method("guided-backprop", at_zero=True).attribute(net, x, target=0).abs().sum() > 0)


@twin_of(gbp_gated_weights)
@pytest.mark.parametrize("at_zero", [False, pytest.param(True, marks=pytest.mark.xfail(gbp_at_zero_bug_present(), strict=True, reason=GBP_AT_ZERO_BUG))])
@given(case=GBP_CASES)
def test_guided_backprop_is_the_sum_of_positively_gated_weight_vectors(at_zero, case):
    """Twin of gbp-gated-weights: guided-backprop on f = v^T relu(W x + b) is the sum of the positively
    gated weight vectors, and an input whose weight column is zero gets nothing."""
    assert gbp_violation(workbench.method("guided-backprop", at_zero=at_zero), case, at_zero) <= ROUND_OFF


# -- false-ixg-completeness (refuted claim) -----------------------------------------------------

def ixg_residual_vs_bias_contribution(case: wst.NetworkCase, *, biases: bool = True) -> tuple[float, float]:
    """(|residual - (bias terms at x - bias terms at 0)|, |residual|), relative, where the residual is
    F(x) - F(0) - sum x dF/dx of the library's input-x-gradient (on the bias-free copy if not biases)."""
    net = case.net if biases else bias_free(case.net)
    zero = torch.zeros_like(case.x)
    a = workbench.method("input-x-gradient").attribute(net, case.x, target=case.target)
    residual = _out(net, case.x, case.target) - _out(net, zero, case.target) - a.flatten(1).sum(1)
    fx, f0 = workbench.full_gradients(net, case.x, case.target), workbench.full_gradients(net, zero, case.target)
    scale = 1 + float(fx.scale.max() + f0.scale.max())
    return _gap(residual, fx.bias_total - f0.bias_total, scale=scale), residual.abs().max().item() / scale


@twin_of(false_ixg_completeness)
@given(NETWORKS)
def test_input_x_gradient_completeness_residual_is_the_bias_contribution(case):
    """Twin of false-ixg-completeness: the residual of input x gradient's completeness is the
    full-gradient bias contribution at x minus the one at 0 (the proof's sum_j v_j b_j (d_j - e_j)
    in general form), and it is zero once every bias is removed."""
    assert ixg_residual_vs_bias_contribution(case)[0] <= ROUND_OFF
    assert max(ixg_residual_vs_bias_contribution(case, biases=False)) <= ROUND_OFF


@twin_of(false_ixg_completeness)
def test_input_x_gradient_completeness_fails_on_the_proof_witness():
    """The proof's exact counterexample on the library: W = I, b = (-1, -1), v = (1, 1), c = 0,
    x = (2, 0): F(x) - F(0) = 1 but input x gradient sums to 2 (residual -1 = v_1 b_1 (d_1 - e_1))."""
    spec = S.NetSpec((2,), (S.Linear(2), S.ReLU(), S.Linear(1)))
    net = S.build(spec, state={"0.weight": [[1.0, 0.0], [0.0, 1.0]], "0.bias": [-1.0, -1.0], "2.weight": [[1.0, 1.0]], "2.bias": [0.0]})
    x = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    a = workbench.method("input-x-gradient").attribute(net, x, target=0)
    residual = _out(net, x, 0) - _out(net, torch.zeros_like(x), 0) - a.sum()
    assert residual.item() == -1.0


# -- both ways: every twin's statement catches a known-bad implementation -----------------------

#: twin (its claim) -> (known-bad implementation, strategy, its violation, threshold it must exceed on some draw)
KNOWN_BAD: dict[str, tuple[str, st.SearchStrategy, Callable[[Any], float], float]] = {
    "ig-completeness-smooth": (
        "left Riemann sum, 8 steps",
        SMOOTH_MLPS, lambda c: completeness_gap(workbench.method("integrated-gradients", rule="left", steps=8, tolerance=None), c), 1e-3),
    "quadrature-exactness": (
        "the trapezoid with weights summing to (n-1)/n",
        st.integers(2, 64), lambda n: rule_gap(broken_trapezoid(n), "trapezoid", n), 1e-3),
    "fullgrad-decomposition": (
        "BatchNorm's beta instead of its implicit bias",
        two_hidden_layers_with_batchnorm(), lambda c: decomposition_gap(beta_only, c), 1e-3),
    "proposition-1": (
        "a map that reads the output (gradient * F(x))",
        SHIFTED, lambda c: bias_shift_visible(CallableMethod(gradient_times_output), c), 1e-6),
    "gradient-weak-dependence": (
        "integrated gradients (varies inside a region)",
        REGION_PAIRS, lambda c: region_variation(workbench.method("integrated-gradients", rule="exact"), c), 1e-3),
    "lrp0-equals-input-x-gradient": (
        "lrp[composite=epsilon, epsilon=0.5]",
        NETWORKS, lambda c: lrp_vs_input_x_gradient(workbench.method("lrp", composite="epsilon", epsilon=0.5), c), 1e-3),
    "lrp-zplus-conservation": (
        "z+ with the bias b+ in the denominator",
        NON_NEGATIVE_LAYERS, lambda c: zplus_violation(R.ZPlus(bias=True), c), 1e-3),
    "lrp-wsquare-conservation": (
        "LRP-0 with bias (not conservative)",
        SIGNED_LAYERS, lambda c: wsquare_violation(R.LRPZero(), c), 1e-3),
    "lrp-epsilon-limit": (
        "the gamma rule in place of epsilon",
        st.tuples(SIGNED_LAYERS, EPSILONS), lambda c: epsilon_limit_violation(lambda eps: R.Gamma(gamma=0.25), c), 1e-3),
    "deeplift-rescale-summation": (
        "(x - x0) * gradient at x",
        TWO_LAYER, lambda c: deeplift_violation(CallableMethod(gradient_times_delta), c), 1e-3),
    "gbp-gated-weights": (
        "deconvnet (ignores the forward pattern)",
        GBP_CASES, lambda c: gbp_violation(workbench.method("deconvnet"), c), 1e-3),
    "false-ixg-completeness": (
        "the refuted claim is violated on drawn networks with biases",
        NETWORKS, lambda c: ixg_residual_vs_bias_contribution(c)[1], 1e-3),
}


@pytest.mark.parametrize("name", list(KNOWN_BAD))
def test_twin_catches_a_known_bad_implementation(name):
    """The twin's statement, applied to a known-bad implementation, finds a violation (no shrinking:
    the first violating draw is enough)."""
    _, strategy, violation, threshold = KNOWN_BAD[name]
    found = find(strategy, lambda c: violation(c) > threshold, random=random.Random(0),
                 settings=settings(max_examples=200, database=None, deadline=None, phases=[Phase.generate]))
    assert violation(found) > threshold


def test_every_twin_in_this_file_has_a_known_bad_demonstration():
    from workbench.proofs import registry

    here = {name for name, e in registry.CLAIMS.items() if any(t.startswith("tests/properties/test_proof_twins.py::") for t in e.twins)}
    assert here and here <= set(KNOWN_BAD), here - set(KNOWN_BAD)

"""Integrated Gradients: the exact rule is the oracle for the quadratures; chunking never
changes an answer; the error-controlled mode meets its tolerance; numeric twins of the
proofs ig-completeness-smooth and ig-linear."""

import copy
import warnings

import numpy as np

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import workbench
from workbench.testing import strategies as wst
from workbench.check.search import check_axiom
from workbench.methods.integrated_gradients import IntegratedGradients
from workbench.nets import spec as S
from workbench.paths.quadrature import LOBATTO_PANEL, RULES
from workbench.testing.strategies import Family
from workbench.proofs import ig_completeness_smooth, ig_linear
from workbench.proofs.base import twin_of


def _ig(**options) -> IntegratedGradients:
    return workbench.method("integrated-gradients", **options)


@given(wst.network_cases("mlp"), st.sampled_from(RULES))
def test_quadrature_error_shrinks_towards_the_exact_integral(case, rule):
    args = dict(target=case.target, baseline=case.baseline)
    exact = _ig(rule="exact").attribute(case.net, case.x, **args)
    coarse = _ig(rule=rule, steps=8, tolerance=None).attribute(case.net, case.x, **args)
    fine = _ig(rule=rule, steps=512, tolerance=None).attribute(case.net, case.x, **args)
    e_coarse = (coarse - exact).abs().max().item()
    e_fine = (fine - exact).abs().max().item()
    scale = 1 + exact.abs().max().item() + (case.x - case.baseline).abs().max().item() * 8
    # a piecewise-constant integrand makes every rule O(1/n): 64x more steps, far smaller error
    assert e_fine <= max(e_coarse / 4, 1e-12 * scale) or e_fine <= 0.05 * scale / 64


@given(wst.network_cases(), st.integers(1, 7))
def test_chunk_size_does_not_change_the_answer(case, chunk):
    for options in (dict(tolerance=None, steps=12), dict()):
        whole = _ig(**options).attribute(case.net, case.x, target=case.target, baseline=case.baseline)
        parts = _ig(chunk_size=chunk, **options).attribute(case.net, case.x, target=case.target, baseline=case.baseline)
        # rows are independent; only the BLAS blocking of the batch may move the last bits
        assert torch.allclose(whole, parts, rtol=0, atol=1e-12 * (1 + whole.abs().max().item()))


@given(wst.network_cases(activations=("relu", "softplus", "gelu")), st.sampled_from([1e-3, 1e-6]))
def test_error_controlled_mode_meets_its_tolerance(case, tol):
    r = _ig(tolerance=tol).integrate(case.net, case.x, target=case.target, baseline=case.baseline)
    scale = max(r.output.abs().item(), r.baseline_output.abs().item(), (r.output - r.baseline_output).abs().item())
    assert abs(r.residual.item()) <= tol * scale + 1e-9
    assert int(r.gradient_evaluations[0]) <= 4096


class _Power(torch.nn.Module):
    """F(x) = (w . x)^6: along the path phi'(s) is a polynomial of degree 5."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.flatten(1) @ self.w) ** 6).unsqueeze(1)


def test_a_wide_panel_is_raised_to_gauss_lobatto_before_it_is_split():
    """Simpson (degree 3) misses a degree-5 integrand; the 5-point Lobatto panel on the same three
    nodes plus two (degree 7) integrates it, so the answer is exact after 5 passes, where bisecting
    Simpson panels alone would still be refining."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, dtype=torch.float64, generator=g)
    x, b = torch.randn(1, 6, dtype=torch.float64, generator=g), torch.randn(1, 6, dtype=torch.float64, generator=g)
    net = _Power(w)
    r = _ig(tolerance=1e-8, strict=True).integrate(net, x, target=0, baseline=b)
    d = x - b
    closed = d * w / (d @ w) * (float(x @ w) ** 6 - float(b @ w) ** 6)  # the gradient is parallel to w
    assert r.gradient_evaluations.item() == 5 and bool(r.converged.all())
    assert torch.allclose(r.attribution, closed, rtol=1e-12, atol=1e-12 * float(closed.abs().max()))
    # Simpson on the same first three nodes leaves a residual far above the tolerance
    c0, c1 = float(b @ w), float(d @ w)
    slope = [6 * c1 * (c0 + c1 * s) ** 5 for s in (0.0, 0.5, 1.0)]
    simpson = (slope[0] + 4 * slope[1] + slope[2]) / 6 - ((c0 + c1) ** 6 - c0**6)
    assert abs(simpson) > 1e-3 * abs((c0 + c1) ** 6 - c0**6)


@given(st.integers(1, 4), st.lists(st.lists(st.integers(0, 10**6), min_size=1, max_size=6), max_size=8))
def test_the_panel_ladder_keeps_a_composite_rule(panels, rounds):
    """After any sequence of refinements the panels tile [0, 1] in order, each node sits where its
    rule puts it, the composite weights integrate cubics exactly (the rules' common degree) and
    the panel residuals add up to the composite rule's error on any phi."""
    from workbench.methods.integrated_gradients import LOBATTO_MIN_WIDTH, _Ladder

    def phi(s):  # a kinked phi: the residuals are not all zero
        return np.abs(s - 0.3) + s**3, np.sign(s - 0.3) + 3 * s**2

    s = np.linspace(0.0, 1.0, 2 * panels + 1)
    lad = _Ladder(s, *phi(s), torch.zeros(s.size, 1))
    for draws in rounds:
        pick = np.unique(np.array(draws) % lad.lobatto.size)
        width, was_lobatto = lad.width()[pick], lad.lobatto[pick].copy()
        plan = lad.refine(pick)
        before = lad.lobatto.size
        lad.add(plan, *phi(plan[2]), torch.zeros(plan[2].size, 1))
        raised = ~was_lobatto & (width >= LOBATTO_MIN_WIDTH)
        assert lad.lobatto.size == before + int((~raised).sum())  # each split adds one panel
    a, left, m, right, b = (lad.s[lad.nodes[:, j]] for j in range(5))
    assert a[0] == 0 and b[-1] == 1 and (lad.nodes[1:, 0] == lad.nodes[:-1, 4]).all() and (b > a).all()
    assert np.array_equal(m, (a + b) / 2)
    c = LOBATTO_PANEL.nodes[2].item() - LOBATTO_PANEL.nodes[1].item()
    lob = lad.lobatto
    assert np.allclose(left[lob], m[lob] - c * (b - a)[lob], atol=1e-15) and np.allclose(right[lob], m[lob] + c * (b - a)[lob], atol=1e-15)
    assert (lad.nodes[~lob][:, [1, 3]] == -1).all()
    w = lad.node_weights()
    for k in range(4):
        assert abs((w * lad.s**k).sum() - 1 / (k + 1)) < 1e-13
    f, d = phi(lad.s)
    assert lad.residuals().sum() == pytest.approx((w * d).sum() - (f[lad.rows_at_one] - f[0]), abs=1e-13)


def test_a_non_finite_gradient_on_the_path_is_named():
    """F = sum sqrt(|x|) from a zero baseline: the slope at s = 0 is infinite. The mode stops and
    says why, instead of reading NaN residuals as panels at the dtype's resolution."""
    class _Sqrt(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.abs().sqrt().sum(1, keepdim=True)

    net = _Sqrt()
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    with pytest.warns(workbench.ConvergenceWarning, match="non-finite output or gradient on the path"):
        _ig(tolerance=1e-6, panels=2).integrate(net, x, target=0, baseline=torch.zeros_like(x))


def test_error_controlled_mode_reports_non_convergence():
    net, x, b, t = __import__("workbench.nets.paper", fromlist=["paper_case"]).paper_case("ig-saturating")
    x = torch.full_like(x, 2.2)  # the kink at s = 1/2.2 is no bisection point
    # on a budget: the best answer and its measured residual, with a warning ...
    with pytest.warns(workbench.ConvergenceWarning, match="max_steps=8") as w:
        r = _ig(tolerance=1e-8, max_steps=8).integrate(net, x, target=t, baseline=b)
    assert "relative residual" in str(w[0].message) and not bool(r.converged.all())
    assert r.gradient_evaluations.item() <= 8 and abs(r.residual.item()) > 1e-8
    assert r.residual.item() == pytest.approx(r.attribution.sum().item() - (r.output - r.baseline_output).item(), abs=1e-15)
    # ... or, under strict, an exception
    with pytest.raises(workbench.ConvergenceError, match="max_steps"):
        _ig(tolerance=1e-8, max_steps=8, strict=True).integrate(net, x, target=t, baseline=b)
    r = _ig(tolerance=1e-8, strict=True).integrate(net, x, target=t, baseline=b)  # splitting panels isolates the kink
    assert r.tolerance == 1e-8 and bool(r.converged.all())
    assert abs(r.residual.item()) <= 1e-8 and r.gradient_evaluations.item() < 200


def test_a_tolerance_below_the_dtype_floor_is_never_loosened_silently():
    net, x, b, t = __import__("workbench.nets.paper", fromlist=["paper_case"]).paper_case("ig-saturating")
    with pytest.warns(workbench.ToleranceWarning, match="float64 round-off floor 1e-08"):
        assert _ig(tolerance=1e-12).integrate(net, x, target=t, baseline=b).tolerance == 1e-8
    with pytest.raises(workbench.InputError, match="floor 1e-08"):
        _ig(tolerance=1e-12, strict=True).integrate(net, x, target=t, baseline=b)
    net32, x32, b32 = copy.deepcopy(net).float(), x.float(), b.float()
    with pytest.warns(workbench.ToleranceWarning, match="float32 round-off floor 0.001.*float64"):
        assert _ig(tolerance=1e-6).integrate(net32, x32, target=t, baseline=b32).tolerance == pytest.approx(1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default ('auto') and a tolerance at the floor do not warn
        assert _ig().integrate(net32, x32, target=t, baseline=b32).tolerance == pytest.approx(1e-3)
        assert _ig().integrate(net, x, target=t, baseline=b).tolerance == 1e-6
        _ig(tolerance=1e-3).integrate(net32, x32, target=t, baseline=b32)


def test_residual_returned_on_request():
    net, x, b, t = __import__("workbench.nets.paper", fromlist=["paper_case"]).paper_case("ig-saturating")
    a, residual = _ig(rule="exact").attribute(net, x, target=t, baseline=b, return_residual=True)
    assert a.item() == pytest.approx(1.0) and abs(residual.item()) < 1e-12
    a, residual = _ig(rule="right", steps=1, tolerance=None).attribute(net, x, target=t, baseline=b, return_residual=True)
    assert a.item() == 0.0 and residual.item() == pytest.approx(-1.0)


@twin_of(ig_completeness_smooth)
def test_ig_completeness_on_smooth_networks(tmp_path):
    """Twin of proofs/ig_completeness_smooth: completeness holds on softplus/GELU networks."""
    v = check_axiom(_ig(), "completeness", examples=20, seed=3, family=Family("any", ("softplus", "gelu")), save_dir=tmp_path)
    assert v.holds is True and v.cases >= 20


@twin_of(ig_linear)
@given(st.integers(1, 4), st.integers(1, 3), st.data())
def test_ig_of_a_linear_model_is_weight_times_delta(d, outputs, data):
    """Twin of proofs/ig_linear: IG = w_t * (x - x') for F(x) = W x + b, for every rule."""
    net = data.draw(wst.weights_for(S.NetSpec((d,), (S.Linear(outputs),))))
    x = data.draw(wst.inputs(net.spec))
    b = data.draw(wst.baselines(net.spec))
    t = data.draw(wst.targets(net.spec))
    expected = net[0].weight[t] * (x - b)
    for options in (dict(rule="exact"), dict(), *[dict(rule=r, steps=3, tolerance=None) for r in RULES]):
        got = _ig(**options).attribute(net, x, target=t, baseline=b)
        assert torch.allclose(got, expected, atol=1e-12, rtol=1e-12), options


def test_default_baseline_option_is_used():
    net = S.build(S.NetSpec((3,), (S.Linear(4), S.ReLU(), S.Linear(2))), generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 3, dtype=torch.float64)
    ones = _ig(baseline="zero").attribute(net, x, target=0, baseline=torch.ones_like(x))
    named = _ig(baseline=1.0).attribute(net, x, target=0)
    assert torch.allclose(ones, named, atol=1e-10)

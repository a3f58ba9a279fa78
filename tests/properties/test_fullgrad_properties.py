"""Properties of the full-gradient decomposition, weak dependence both ways, and Proposition 1."""

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench
from workbench.testing import strategies as wst
from workbench.axioms.weak_dependence import activation_pattern, distance_to_kink, same_region, same_region_pair
from workbench.check import check_axiom, replay
from workbench.methods.fullgrad import check_completeness, full_gradients
from workbench.methods.base import CallableMethod
from workbench.nets import impossibility
from workbench.nets import spec as S
from workbench.testing.strategies import Family
from workbench.proofs import fullgrad_decomposition, gradient_weak_dependence
from workbench.proofs.base import twin_of


# -- completeness of the decomposition -------------------------------------------------------
@twin_of(fullgrad_decomposition)
@given(wst.network_cases("any"))
def test_relu_decomposition_is_exact(case):
    """BatchNorm, pooling and residual blocks included (the strategies draw them), float64."""
    fg = full_gradients(case.net, case.x, case.target)
    assert float(fg.relative_residual.max()) < 1e-10, case.net.spec.describe()


@given(wst.network_cases("cnn", min_hidden_layers=1))
def test_relu_cnn_decomposition_is_exact(case):
    fg = full_gradients(case.net, case.x, case.target)
    assert float(fg.relative_residual.max()) < 1e-10, case.net.spec.describe()


@given(wst.network_cases("any", activations=("softplus", "gelu"), min_hidden_layers=1))
def test_smooth_networks_report_residual_and_why(case):
    c = check_completeness(case.net, case.x, case.target)
    assert "positively homogeneous" in c.note  # the verdict always says why it cannot be exact
    with pytest.raises(workbench.UnsupportedModelError, match="implicit biases"):
        full_gradients(case.net, case.x, case.target)


# -- the same-region construction ------------------------------------------------------------
@given(wst.network_cases("any"), st.integers(0, 1000))
def test_same_region_pair_is_in_one_region(case, seed):
    d = torch.randn(case.x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x1, x2, s = same_region_pair(case.net, case.x, d)
    assert s > 0
    assert same_region(case.net, x1, x2)
    # and the whole open segment too: a point past the kink (when there is one) may differ,
    # points before it may not
    for frac in (0.1, 0.5, 0.9):
        assert same_region(case.net, x1, case.x + frac * s * d)


def test_kink_distance_on_a_known_network():
    net, _, _, _ = impossibility.prop1_pair()  # ReLU(x + 1): kink at x = -1
    x = torch.tensor([[1.0]], dtype=torch.float64)
    assert float(distance_to_kink(net, x, torch.tensor([[-1.0]], dtype=torch.float64))) == pytest.approx(2.0)
    assert math.isinf(float(distance_to_kink(net, x, torch.tensor([[1.0]], dtype=torch.float64))))


# -- weak dependence, both ways --------------------------------------------------------------
def x_squared_gradient(model, x, target, baseline):
    """Depends on x inside a region: breaks weak dependence."""
    g = workbench.method("gradient").attribute(model, x, target=target)
    return g * x * x


WEAK = [
    ("gradient", "input-x-gradient"),
    ("full-gradients", "integrated-gradients"),
    ("gradient", x_squared_gradient),
]


@twin_of(gradient_weak_dependence)
@pytest.mark.parametrize("good,bad", WEAK, ids=["grad-vs-ixg", "fullgrads-vs-ig", "grad-vs-callable"])
def test_weak_dependence_passes_good_and_catches_bad(good, bad, tmp_path):
    ok = check_axiom(workbench.method(good), "weak-dependence", examples=20, seed=1, save_dir=tmp_path, shrink_seconds=5)
    assert ok.holds is True and ok.cases > 0, ok
    bad_m = workbench.method(bad) if isinstance(bad, str) else CallableMethod(bad)
    v = check_axiom(bad_m, "weak-dependence", examples=20, seed=1, save_dir=tmp_path, shrink_seconds=5)
    assert v.holds is False and v.residual > v.tolerance, v
    outcome, case, _ = replay(v.counterexample, method=bad_m)
    assert outcome.violated
    assert same_region(case.nets["f"], case.x, torch.tensor(case.params["x2"], dtype=torch.float64))
    assert json.loads(open(v.counterexample).read())["axiom"] == "weak-dependence"


def test_weak_dependence_not_applicable_on_smooth_networks():
    from workbench.axioms import get_axiom
    from workbench.axioms.base import Case
    from workbench.nets import spec as S

    net = S.build(S.NetSpec((2,), (S.Linear(3), S.Softplus(), S.Linear(1))), generator=torch.Generator().manual_seed(0))
    x = torch.ones(1, 2, dtype=torch.float64)
    case = Case({"f": net}, x, torch.zeros_like(x), 0, {"x2": (x + 0.1).tolist()})
    outcome = get_axiom("weak-dependence").run(workbench.method("gradient"), case, 1e-9)
    assert not outcome.applicable and "linear regions" in outcome.note


def test_full_gradient_completeness_verdicts(tmp_path):
    ok = check_axiom(workbench.method("full-gradients"), "full-gradient-completeness", examples=20, seed=1, save_dir=tmp_path)
    assert ok.holds is True and ok.claimed
    # smooth activations are refused by default; the named convention (implicit biases left out) shows the violation
    net = S.build(S.NetSpec((2,), (S.Linear(3), S.Softplus(), S.Linear(1))), generator=torch.Generator().manual_seed(0))
    with pytest.raises(workbench.UnsupportedModelError, match=r"layer '.*' \(Softplus\)"):
        workbench.method("full-gradients").attribute(net, torch.ones(1, 2, dtype=torch.float64), target=0)
    smooth = check_axiom(workbench.method("full-gradients", unsupported="gradient"), "full-gradient-completeness", examples=20, seed=1,
                         family=Family("any", ("softplus", "gelu")), save_dir=tmp_path, shrink_seconds=3)
    assert smooth.holds is False and "positive homogeneity" in smooth.note
    na = check_axiom(workbench.method("gradient"), "full-gradient-completeness", examples=3, seed=1, save_dir=tmp_path)
    assert na.holds is None


# -- Proposition 1 ---------------------------------------------------------------------------
WEAKLY_DEPENDENT_MAPS = ["gradient", "input-x-gradient", "full-gradients"]


@pytest.mark.parametrize("name", WEAKLY_DEPENDENT_MAPS)
def test_prop1_pair_equal_maps_different_outputs(name):
    """f = ReLU(x + 1), g = ReLU(x) at x = 1: input-sized maps built from the region's w agree
    (input x gradient too, at the same x), the outputs 2 and 1 do not: no phi(S(x), x) recovers both."""
    f, g, x, t = impossibility.prop1_pair()
    m = workbench.method(name)
    assert same_region(f, x, x + 0.5) and same_region(g, x, x + 0.5)
    assert torch.equal(m.attribute(f, x, target=t), m.attribute(g, x, target=t))
    with torch.no_grad():
        assert float(f(x)) == 2.0 and float(g(x)) == 1.0


def test_prop1_full_gradient_representation_separates_the_pair():
    """With one more number (the bias term) the representation is complete: the way out of Prop. 1."""
    f, g, x, t = impossibility.prop1_pair()
    m = workbench.method("full-gradients")
    assert float(m.reconstruct(f, x, target=t)) == 2.0 and float(m.reconstruct(g, x, target=t)) == 1.0


SIGMAS = {
    "gradient": lambda w, b: w,
    "gradient-plus-bias": lambda w, b: w + b,
    "weighted": lambda w, b: 3 * w - 2 * b + 0.5 * w * b,
    "smooth-nonlinear": lambda w, b: math.tanh(w) + b ** 3,
}


@pytest.mark.parametrize("name", list(SIGMAS))
def test_prop1_any_continuous_1d_map_collides(name):
    c = impossibility.collision(SIGMAS[name])
    assert c.sigma_gap < 1e-9
    assert abs(c.outputs[0] - c.outputs[1]) > 0.5
    # both networks realize their region parameters at x: gradient w, output w x + b
    for net, (w, b) in ((c.f, c.params_f), (c.g, c.params_g)):
        grad = workbench.method("gradient").attribute(net, c.x, target=0)
        assert float(grad) == pytest.approx(w, abs=1e-12)
        with torch.no_grad():
            assert float(net(c.x)) == pytest.approx(w * float(c.x) + b, abs=1e-12)


def test_same_region_pair_from_an_input_on_a_kink_sees_the_pool_switch_ahead():
    # x = ones puts a ReLU input exactly at 0; torch's slope there is 0, so the tangents seen from x
    # miss a max-pool switch at s ~ 0.25 and distance_to_kink overshoots (0.459)
    net = S.build(S.NetSpec((1, 3, 3), (S.Conv2d(1, 2, padding=1, bias=False), S.ReLU(), S.MaxPool2d(2), S.Flatten(), S.Linear(1))), dtype=torch.float64)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[[[-1.0, -1.0], [1.0, -1.0]]]]))
        net[4].weight.fill_(1.0)
        net[4].bias.fill_(1.0)
    x = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    d = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert float(distance_to_kink(net, x, d)[0]) > 0.45
    x1, x2, s = same_region_pair(net, x, d)
    assert 0 < s < 0.3 and same_region(net, x1, x2)
    assert all(same_region(net, x1, x + f * s * d) for f in (0.01, 0.5, 0.99))
    assert not same_region(net, x1, x + 0.3 * d)  # past the switch: another region

"""Engine vs slow matrix-form reference, for every rule, on random networks drawn by Hypothesis.

The references (workbench.testing.references) are written straight from the formulas with explicit
dense matrices and contribution matrices; the engine runs the same rules as autograd hooks on the
torch model (in-place and reused ReLUs, BatchNorm folded by the canonizer, residual sums split by
a Sum module, convolutions with padding, max and average pooling). They must agree to round-off.
"""

import contextlib

import numpy as np
import pytest
import torch
from hypothesis import assume, event, given, strategies as st

import workbench
from workbench.core.degenerate import degenerate_samples
from workbench.testing import strategies as wst
from workbench.methods.modified_backprop import backward_through
from workbench.nets import spec as S
from workbench.rules import composites as C
from workbench.testing import references as ref
from workbench.rules import rules as R


@st.composite
def cases(draw, batch=2):
    """MLPs (with BatchNorm) and CNNs (conv with padding, BatchNorm, residual, max/avg pool)."""
    spec = draw(st.one_of(
        wst.mlp_specs(max_inputs=4, max_hidden_layers=3, max_width=4, max_outputs=3),
        wst.cnn_specs(max_channels=2, max_size=5, max_outputs=3),
    ))
    net = draw(wst.weights_for(spec))
    x = draw(wst.inputs(spec, batch=batch))
    x0 = draw(wst.inputs(spec, batch=batch))
    t = draw(wst.targets(spec))
    return net, x, x0, t


def _close(a, r, rtol=1e-9):
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else a
    scale = max(np.abs(r).max(), np.abs(a).max(), 1.0)
    assert np.abs(a - r).max() <= rtol * scale, (a, r)


def _close_per_sample(a, r, rtol, evidence):
    """_close on each sample i with its own rtol[i], over the samples where evidence[i]; the others
    are counted in Hypothesis' statistics (pytest --hypothesis-show-statistics), never hidden."""
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else a
    for i in range(a.shape[0]):
        if evidence[i]:
            _close(a[i], r[i], rtol=rtol[i])
        else:
            event("a sample without evidence (round-off kink, tie or cancelling denominator)")


def _pointwise_evidence(net, x, kinds=("ReLU", "max pool")):
    """False for a sample on a ReLU kink or in a max-pool tie at round-off: there the forward is
    decided by the last bits (torch evaluates BatchNorm as fma(x, a, b - mean a): 2.2e-16 where the
    reference's s x + (b - mean s) gives the exact 0), any subgradient is valid, and two correct
    implementations may take different sides (workbench.core.degenerate). Judged per sample.

    Without BatchNorm the fixtures' dyadic weights and inputs make every forward value exact: a kink
    is exactly 0 and a tie exact in any implementation, and the conventions there (relu'(0) = 0,
    ``at_zero``, ``max_pool_ties``) are what the test checks, so every sample is evidence."""
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        return [True] * x.shape[0]
    return [reason is None for reason in degenerate_samples({"f": net}, x, None, kinds)]


ELEMENTWISE = {
    "gradient": (lambda: None, ref.gradient_rule, False),
    "guided-backprop": (lambda: workbench.method("guided-backprop"), ref.gbp_rule, False),
    "guided-backprop[at_zero=True]": (lambda: workbench.method("guided-backprop", at_zero=True), ref.gbp_at_zero_rule, False),
    "deconvnet": (lambda: workbench.method("deconvnet"), ref.deconvnet_rule, False),
    "rectgrad": (lambda: workbench.method("rectgrad"), ref.rectgrad_rule(98.0), True),
    "rectgrad[q=50]": (lambda: workbench.method("rectgrad", q=50.0), ref.rectgrad_rule(50.0), True),
    "guided-backprop[max_pool_ties='split']": (lambda: workbench.method("guided-backprop", max_pool_ties="split"), ref.gbp_rule, False),
    "deconvnet[max_pool_ties='split']": (lambda: workbench.method("deconvnet", max_pool_ties="split"), ref.deconvnet_rule, False),
}


@pytest.mark.parametrize("name", list(ELEMENTWISE))
@given(case=cases())
def test_elementwise_rules_match_reference(name, case):
    net, x, _, t = case
    make, rule, times_x = ELEMENTWISE[name]
    m = make()
    if m is None:  # the Gradient rule through the engine: an identity check against autograd too
        a = backward_through(C.elementwise(R.Gradient()), net, x, torch.full((x.shape[0],), t))
        g = workbench.method("gradient").attribute(net, x, target=t)
        _close(a, g.numpy())  # the same torch forward twice: identical even on a kink
    else:
        a = m.attribute(net, x, target=t)
    try:
        r = ref.modified_gradient(net, x, t, rule, max_pool_ties=getattr(m, "max_pool_ties", "first"))
    except ref.AmbiguousThreshold:  # RectGrad at a round-off tie: no implementation-independent answer
        assume(False)
    if times_x:
        r = r * x.numpy()
    kinds = ("max pool",) if name.startswith("deconvnet") else ("ReLU", "max pool")  # DeconvNet ignores z
    _close_per_sample(a, r, [1e-9] * x.shape[0], _pointwise_evidence(net, x, kinds))


LRP_OPTIONS = {"epsilon": 0.125, "gamma": 0.5, "alpha": 3.0, "beta": 2.0, "low": -2.0, "high": 2.0}


@pytest.mark.parametrize("composite", C.composite_names())
@given(case=cases())
def test_lrp_composites_match_reference(composite, case):
    net, x, _, t = case
    # a large epsilon makes the stabilizer visible; box bounds that fit the drawn inputs
    a = workbench.method("lrp", composite=composite, **LRP_OPTIONS).attribute(net, x, target=t)
    _close_lrp(a, net, x, t, composite, LRP_OPTIONS)


#: relative round-off of one LRP computation per unit of condition number: n u with n up to ~50
#: terms per sum and a few layers (Higham 2002, ch. 3), with a margin
ROUNDOFF_PER_CONDITION = 1e3 * np.finfo(np.float64).eps


def _close_lrp(a, net, x, t, composite, options):
    """Engine vs reference, each sample to rtol = max(1e-9, n u kappa), kappa the condition number
    of its LRP computation (``ref.lrp_condition``). A denominator that cancels to round-off (a ReLU
    input at 0 behind a folded BatchNorm, a z+ sum of signed inputs) gives kappa ~ 1/u: R_j / z_j
    then amplifies last bits in which the engine (BatchNorm folded by its canonizer, torch's sum
    order) and the reference (numpy) differ, and no rule is tested there; kappa = inf (a zero of
    unknown sign) is no evidence. Everything well-conditioned is compared to 1e-9."""
    r = ref.lrp(net, x, t, composite, **options)
    kappa = ref.lrp_condition(net, x, t, composite, **options)
    _close_per_sample(a, r, [max(1e-9, ROUNDOFF_PER_CONDITION * k) for k in kappa], [bool(np.isfinite(k)) for k in kappa])


def test_the_condition_number_flags_exactly_the_sample_whose_denominator_cancels_to_round_off():
    """Both ways: behind a folded BatchNorm (var 2) the LRP-0 denominator 0.75 s + 0.25 s - s of
    x = (1, 1, 1) is round-off, and engine and reference differ by O(1) there: kappa = inf; the
    sample x = (1, 1/2, 1) has kappa = 15 and agrees to round-off; without BatchNorm the exact
    zero of x = (1, 1, 1) is an answer (0/0 := 0) that both give: kappa finite, compared."""
    state = {"0.weight": [[0.75, 0.25, -1.0]], "0.bias": [0.0], "3.weight": [[1.0]], "3.bias": [0.0]}
    bn = {"1.weight": [1.0], "1.bias": [0.0], "1.running_mean": [0.0], "1.running_var": [2.0]}
    net = S.build(S.NetSpec((3,), (S.Linear(1), S.BatchNorm(), S.ReLU(), S.Linear(1))), state={**state, **bn})
    x = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.5, 1.0]], dtype=torch.float64)
    a = workbench.method("lrp", composite="zero").attribute(net, x, target=0).numpy()
    r = ref.lrp(net, x, 0, "zero")
    kappa = ref.lrp_condition(net, x, 0, "zero")
    assert np.isinf(kappa[0]) and np.abs(a[0] - r[0]).max() > 0.1
    assert kappa[1] == pytest.approx(15.0) and np.abs(a[1] - r[1]).max() <= 1e-12
    plain = S.build(S.NetSpec((3,), (S.Linear(1), S.ReLU(), S.Linear(1))), state={"0.weight": [[0.75, 0.25, -1.0]], "0.bias": [0.0], "2.weight": [[1.0]], "2.bias": [0.0]})
    assert np.isfinite(ref.lrp_condition(plain, x, 0, "zero")).all()
    _close(workbench.method("lrp", composite="zero").attribute(plain, x, target=0), ref.lrp(plain, x, 0, "zero"))


def test_an_input_on_the_zb_box_bound_counts_as_a_cancelled_denominator():
    """Found by the dev profile: zB on every layer, x2 = low. The hidden zB layer hands relevance
    to a switched-off unit, whose first-layer zB shares (x - low) w+ and (x - high) w- are exactly 0
    per element in the reference, but a sum of three products behind a folded BatchNorm (not
    dyadic) in the engine: engine 8 vs reference 9.82. That sample must read kappa = inf (it read
    1); a sample just off the bound is well-conditioned and agrees."""
    ones = lambda *shape: np.ones(shape).tolist()
    bn = lambda i, n: {f"{i}.weight": ones(n), f"{i}.bias": ones(n), f"{i}.running_mean": ones(n), f"{i}.running_var": ones(n)}
    state = {"0.weight": [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [-0.5, 1.0]], "0.bias": ones(4), **bn(1, 4),
             "3.weight": ones(3, 4), "3.bias": ones(3), **bn(4, 3), "6.weight": ones(1, 3)}
    spec = S.NetSpec((2,), (S.Linear(4), S.BatchNorm(), S.ReLU(), S.Linear(3), S.BatchNorm(), S.ReLU(), S.Linear(1, bias=False)))
    net = S.build(spec, state=state)
    options = {"low": -2.0, "high": 2.0}
    x = torch.tensor([[2.0, -2.0], [2.0, -1.999], [1.0, 1.0]], dtype=torch.float64)
    kappa = ref.lrp_condition(net, x, 0, ("zb", "zb", None), **options)
    assert np.isinf(kappa[0]) and np.isfinite(kappa[1:]).all()
    with composite_of("zb") as name:
        a = workbench.method("lrp", composite=name, **options).attribute(net, x, target=0)
    r = ref.lrp(net, x, 0, ("zb", "zb", None), **options)
    for i in (1, 2):
        _close(a[i], r[i], rtol=max(1e-9, ROUNDOFF_PER_CONDITION * kappa[i]))


@contextlib.contextmanager
def composite_of(kind: str):
    """A composite with `kind` on every dense and conv layer, registered for the duration."""
    name = f"only-{kind}"
    C.TABLE[name] = C.CompositeSpec(kind, kind)
    try:
        yield name
    finally:
        del C.TABLE[name]


def test_a_sample_on_a_round_off_kink_is_judged_on_its_own():
    """degenerate_samples judges each sample: a batch whose second sample sits on a kink (behind
    the same folded-BatchNorm cancellation) flags that sample only, and the batch as a whole."""
    state = {"0.weight": [[0.75, 0.25, -1.0]], "0.bias": [0.0], "1.weight": [1.0], "1.bias": [0.0],
             "1.running_mean": [0.0], "1.running_var": [2.0], "3.weight": [[1.0]], "3.bias": [0.0]}
    net = S.build(S.NetSpec((3,), (S.Linear(1), S.BatchNorm(), S.ReLU(), S.Linear(1))), state=state)
    x = torch.tensor([[1.0, 0.5, 1.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    flags = degenerate_samples({"f": net}, x, None)
    assert flags[0] is None and "ReLU kink" in flags[1]
    assert "ReLU kink" in workbench.core.degenerate.degenerate_reason({"f": net}, x, None)
    assert degenerate_samples({"f": net}, x, None, kinds=("max pool",)) == [None, None]  # DeconvNet's view
    # the gradient there: torch's BatchNorm (fused multiply-add) leaves the kink at round-off, so
    # autograd and the reference may take different sides; the first sample agrees to round-off
    g = workbench.method("gradient").attribute(net, x, target=0).numpy()
    r = ref.modified_gradient(net, x, 0, ref.gradient_rule)
    _close(g[0], r[0])


@given(case=cases(), options=st.sampled_from([
    ("zero", {"bias": False}), ("epsilon", {"bias": False}), ("zplus", {"zplus_bias": True}),
    ("epsilon-plus", {"zplus_bias": True}), ("gamma", {"bias": False, "stabilizer": 0.25}),
    ("alpha-beta", {"stabilizer": 0.25}), ("dtd-zb", {"stabilizer": 1e-3, "low": -2.0, "high": 2.0}),
    ("flat", {"stabilizer": 0.5}), ("epsilon-gamma-box", {"low": (-2.0, -2.5), "high": (2.0, 3.0)}),
    ("gamma", {"generalized_gamma": True}), ("gamma", {"generalized_gamma": True, "bias": False, "stabilizer": 0.25}),
    ("zero", {"max_pool_ties": "split"}), ("epsilon-plus-flat", {"max_pool_ties": "split"}),
]))
def test_lrp_conventions_match_reference(case, options):
    """Bias in or out of the denominators, a stabilizer on every rule, per-channel zB bounds."""
    net, x, _, t = case
    comp, opts = options
    if isinstance(opts.get("low"), tuple) and (x.dim() != 4 or x.shape[1] != 2):
        opts = {**opts, "low": -2.0, "high": 2.0}  # per-channel bounds need a 2-channel image
    a = workbench.method("lrp", composite=comp, **opts).attribute(net, x, target=t)
    _close_lrp(a, net, x, t, comp, opts)


@given(case=cases(), ties=st.sampled_from(["first", "split"]))
def test_deeplift_matches_reference(case, ties):
    net, x, x0, t = case
    a = workbench.method("deeplift", max_pool_ties=ties).attribute(net, x, target=t, baseline=x0)
    _close(a, ref.deeplift(net, x, x0, t, max_pool_ties=ties))


# -- DTD: the rules from root points ------------------------------------------------------------
@st.composite
def dtd_cases(draw):
    """ReLU networks with non-positive biases (DTD's assumption), inputs in the box [-2, 2]."""
    if draw(st.booleans()):
        spec = draw(wst.mlp_specs(max_inputs=4, max_hidden_layers=3, max_width=4, max_outputs=3, batchnorm=False))
    else:  # conv (padding) -> ReLU -> [pool] -> Flatten -> Linear -> ReLU -> Linear
        c, size = draw(st.integers(1, 2)), draw(st.integers(3, 5))
        layers = [S.Conv2d(draw(st.integers(1, 2)), 3, padding=1), S.ReLU(inplace=draw(st.booleans()))]
        pool = draw(st.sampled_from([None, S.MaxPool2d(2), S.AvgPool2d(2)]))
        layers += [pool] if pool is not None else []
        layers += [S.Flatten(), S.Linear(draw(st.integers(1, 3))), S.ReLU(), S.Linear(draw(st.integers(1, 3)))]
        spec = S.NetSpec((c, size, size), tuple(layers))
    net = draw(wst.weights_for(spec))
    with torch.no_grad():
        for m in net.modules():
            if getattr(m, "bias", None) is not None:
                m.bias.copy_(-m.bias.abs())
    x = draw(wst.inputs(spec))
    return net, x, draw(wst.targets(spec))


@given(case=dtd_cases())
def test_dtd_presets_are_the_taylor_expansions_at_root_points(case):
    """z+ (hidden layers) and zB / w-square (input layer) derived from root points equal the
    engine's DTD presets, and the root points lie in their domains (b <= 0)."""
    net, x, t = case
    positive = float(net(x)[0, t]) > 0  # DTD's derivation explains a positive output
    for composite, first in [("dtd-zb", "zB"), ("dtd-w2", "w2")]:
        expected, in_domain = ref.dtd(net, x, t, first=first, low=-2.0, high=2.0)
        a = workbench.method("lrp", composite=composite, low=-2.0, high=2.0).attribute(net, x, target=t)
        _close(a, expected)
        assert in_domain or not positive or first == "w2"  # w-square's root point is unconstrained


@given(case=dtd_cases())
def test_zplus_is_alpha1_beta0_and_dtd_zplus_on_non_negative_activations(case):
    """On layers whose inputs are >= 0 (every layer above the first) and biases <= 0, three
    derivations agree: z+ (W+ shares), alpha=1/beta=0 with its bias term b+ = 0, and DTD's root-point
    expansion along v_i = a_i 1[w_ij > 0]. The first layer gets zB in all three."""
    net, x, t = case
    zplus = C.composite("zplus")
    ab = C.composite("alpha-beta", alpha=1.0, beta=0.0)
    for comp in (zplus, ab):
        comp.first = R.ZBox(low=-2.0, high=2.0)
    tt = torch.tensor([t])
    a = backward_through(zplus, net, x, tt, seed="relevance")
    b = backward_through(ab, net, x, tt, seed="relevance")
    ab_bias = C.composite("alpha-beta", alpha=1.0, beta=0.0)
    ab_bias.mapping = [(m, R.AlphaBeta(1.0, 0.0, bias=True) if isinstance(r, R.AlphaBeta) else r) for m, r in ab_bias.mapping]
    ab_bias.first = R.ZBox(low=-2.0, high=2.0)
    c = backward_through(ab_bias, net, x, tt, seed="relevance")
    d, _ = ref.dtd(net, x, t, first="zB", low=-2.0, high=2.0)
    for other in (b.numpy(), c.numpy(), d):
        _close(a, other)


def test_zplus_and_alpha1_beta0_differ_on_signed_inputs_and_with_positive_biases():
    """The identity needs its hypotheses: signed inputs (z+ pairs x- with W+) or b > 0 (b+ enters
    alpha-beta's denominator) break it."""
    net = S.build(S.NetSpec((2,), (S.Linear(1), S.ReLU(), S.Linear(1, bias=False))), state={"0.weight": [[1.0, -1.0]], "0.bias": [0.0], "2.weight": [[1.0]]})
    x = torch.tensor([[1.0, -0.5]], dtype=torch.float64)  # signed input at the first layer
    zp = workbench.method("lrp", composite="zplus").attribute(net, x, target=0)
    ab = workbench.method("lrp", composite="alpha-beta", alpha=1.0, beta=0.0).attribute(net, x, target=0)
    assert not torch.allclose(zp, ab)
    net2 = S.build(S.NetSpec((2,), (S.Linear(1), S.ReLU(), S.Linear(1, bias=False))), state={"0.weight": [[1.0, 1.0]], "0.bias": [1.0], "2.weight": [[1.0]]})
    x2 = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    plain = workbench.method("lrp", composite="zplus").attribute(net2, x2, target=0)
    with_bias = workbench.method("lrp", composite="zplus", zplus_bias=True).attribute(net2, x2, target=0)
    assert not torch.allclose(plain, with_bias)
    # and DTD's root point leaves the box when the bias makes the unit active on the whole box
    net3 = S.build(S.NetSpec((2,), (S.Linear(1), S.ReLU(), S.Linear(1, bias=False))), state={"0.weight": [[1.0, 1.0]], "0.bias": [10.0], "2.weight": [[1.0]]})
    assert ref.dtd(net3, x2, 0, first="zB", low=-3.0, high=3.0)[1] is False
    assert ref.dtd(net2, x2, 0, first="zB", low=-3.0, high=3.0)[1] is True

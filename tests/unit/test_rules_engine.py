"""The rule engine: attach/restore (also on error), in-place and reused ReLUs, canonizers,
identities between rules, and the claims the checker sees."""


import pytest
import torch
from torch import nn

import workbench
from workbench.check import check_axiom, replay
from workbench.methods.modified_backprop import backward_through
from workbench.nets import spec as S
from workbench.rules import Composite, MergeBatchNorm, ResidualSum, composite
from workbench.rules import rules as R
from workbench.rules.composites import elementwise
from workbench.testing.strategies import Family
from workbench.proofs import deeplift_rescale_summation
from workbench.proofs.base import twin_of
from workbench.nets.randomize import randomize

CNN = S.NetSpec(
    (2, 6, 6),
    (
        S.Conv2d(3, 3, padding=1), S.BatchNorm(), S.ReLU(inplace=True),
        S.Residual((S.Conv2d(3, 3, padding=1), S.ReLU())),
        S.MaxPool2d(2), S.Conv2d(2, 1), S.ReLU(), S.AvgPool2d(2), S.Flatten(), S.Linear(4), S.BatchNorm(), S.ReLU(), S.Linear(3),
    ),
)


def _net(spec=CNN, seed=1):
    return S.build(spec, generator=torch.Generator().manual_seed(seed))


def _state(model):
    return (
        {k: (v.clone(), v.data_ptr()) for k, v in model.state_dict().items()},
        {n: (dict(m._forward_hooks), dict(m._forward_pre_hooks), dict(m._backward_hooks), type(m)) for n, m in model.named_modules()},
        {n: "forward" in m.__dict__ for n, m in model.named_modules()},
    )


def _same(a, b):
    assert a[0].keys() == b[0].keys()
    for k in a[0]:
        assert torch.equal(a[0][k][0], b[0][k][0]) and a[0][k][1] == b[0][k][1], k
    assert a[1:] == b[1:]


def _bias_free(net):
    from workbench.axioms.conservation import bias_free

    return bias_free(net)


def test_context_restores_model_also_when_backward_raises():
    class Boom(R.ElementwiseRule):
        def map(self, x, y, grad):
            raise RuntimeError("rule exploded")

    net = _net()
    before = _state(net)
    comp = Composite([(nn.ReLU, Boom())], canonizers=[MergeBatchNorm(), ResidualSum()])
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="rule exploded"):
        with comp.context(net):
            net(x)[:, 0].sum().backward()
    _same(before, _state(net))
    with pytest.raises(RuntimeError, match="forward exploded"):
        with comp.context(net):
            raise RuntimeError("forward exploded")
    _same(before, _state(net))


def test_canonizers_keep_outputs_before_during_after():
    net = _net()
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64)
    before_state = _state(net)
    with torch.no_grad():
        y0 = net(x)
        with Composite(canonizers=[MergeBatchNorm(), ResidualSum()]).context(net):
            assert not any(isinstance(m, nn.BatchNorm2d) or isinstance(m, nn.BatchNorm1d) for m in net.modules())
            y1 = net(x)
        y2 = net(x)
    assert torch.allclose(y0, y1, rtol=1e-12, atol=1e-12) and torch.equal(y0, y2)
    _same(before_state, _state(net))



def test_inplace_and_reused_relu_give_the_same_as_fresh_modules():
    shared = S.NetSpec((3,), (S.Linear(4), S.ReLU(inplace=True), S.Linear(4), S.ReLU(inplace=True), S.Linear(2)), shared_relu=True)
    fresh = S.NetSpec((3,), (S.Linear(4), S.ReLU(), S.Linear(4), S.ReLU(), S.Linear(2)))
    a, b = _net(shared), _net(fresh)
    b.load_state_dict(a.state_dict())
    assert a[1] is a[3]
    x = torch.randn(4, 3, dtype=torch.float64)
    for m in ["guided-backprop", "deconvnet", "rectgrad", "lrp", "lrp[composite='alpha-beta']", "deeplift"]:
        meth = workbench.method(m)
        assert torch.allclose(meth.attribute(a, x, target=1), meth.attribute(b, x, target=1), atol=1e-12), m


def test_gradient_rule_is_the_gradient_on_the_cnn():
    net = _net()
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64)
    t = torch.tensor([0, 1, 2])
    g = backward_through(elementwise(R.Gradient()), net, x, t)
    assert torch.allclose(g, workbench.method("gradient").attribute(net, x, target=t), atol=1e-13)


def test_gbp_at_zero_is_a_named_parameter():
    spec = S.NetSpec((1,), (S.Linear(1), S.ReLU(), S.Linear(1)))
    net = S.build(spec, state={"0.weight": [[1.0]], "0.bias": [-1.0], "2.weight": [[1.0]], "2.bias": [0.0]})
    x = torch.ones(1, 1, dtype=torch.float64)  # pre-activation exactly 0
    assert workbench.method("guided-backprop").attribute(net, x, target=0).item() == 0.0
    assert workbench.method("guided-backprop", at_zero=True).attribute(net, x, target=0).item() == 1.0
    below = torch.full((1, 1), 0.5, dtype=torch.float64)  # pre-activation -0.5: blocked either way
    assert workbench.method("guided-backprop", at_zero=True).attribute(net, below, target=0).item() == 0.0
    assert backward_through(elementwise(R.Gradient(at_zero=True)), net, below, torch.tensor([0])).item() == 0.0


def test_rectgrad_q0_keeps_positive_products_and_q100_blocks_everything():
    net = _net()
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    assert workbench.method("rectgrad", q=100.0).attribute(net, x, target=0).abs().max() == 0
    with pytest.raises(workbench.InputError, match="percentile"):
        workbench.method("rectgrad", q=101.0)


@pytest.mark.parametrize("seed", range(4))
def test_lrp_zero_equals_input_times_gradient_on_bias_free_relu_nets(seed):
    net = _bias_free(_net(seed=seed))
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    a = workbench.method("lrp", composite="zero").attribute(net, x, target=1)
    ixg = workbench.method("input-x-gradient").attribute(net, x, target=1)
    assert torch.allclose(a, ixg, atol=1e-10 * (1 + ixg.abs().max().item()))


def test_layerwise_conservation_of_lrp_zero_on_a_bias_free_cnn():
    net = _bias_free(_net(seed=3))
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    f = net(x)[0, 0].item()  # LRP-0 conserves whatever the sign
    a, trace = backward_through(composite("zero"), net, x, torch.tensor([0]), seed="relevance", trace=True)
    lin = [e for e in trace if isinstance(e.module, (nn.Linear, nn.Conv2d))]
    assert len(lin) == 5  # conv, residual conv, conv, two linears: every affine layer seen once
    for e in lin:  # each affine layer passes on what it receives
        assert abs(e.grad_in.sum().item() - e.grad_out.sum().item()) <= 1e-10 * (1 + abs(f))
    assert abs(a.sum().item() - f) <= 1e-10 * (1 + abs(f))


def test_epsilon_absorbs_a_measured_amount_that_vanishes_with_epsilon():
    net = _bias_free(_net(seed=0))
    x = torch.randn(8, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    f = net(x)[:, 0].detach()
    x, f = x[f.abs() > 1e-3], f[f.abs() > 1e-3]

    def absorbed(eps):
        a = workbench.method("lrp", composite="epsilon", epsilon=eps).attribute(net, x, target=0)
        return (1 - a.flatten(1).sum(1) / f).abs().median().item()

    small, mid, big = absorbed(1e-12), absorbed(1e-3), absorbed(1.0)
    assert small < 1e-7 < mid < big, (small, mid, big)


def test_deeplift_handles_x_equal_reference_and_is_exact_with_biases():
    net = _net(seed=2)
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64)
    dl = workbench.method("deeplift")
    assert dl.attribute(net, x, target=0, baseline=x).abs().max() == 0
    x0 = torch.randn_like(x)
    x0[:, 0] = x[:, 0]  # some coordinates equal to the reference
    a = dl.attribute(net, x, target=2, baseline=x0)
    with torch.no_grad():
        d = net(x)[:, 2] - net(x0)[:, 2]
    assert torch.allclose(a.flatten(1).sum(1), d, atol=1e-12)


def test_claims_are_per_configuration():
    assert "conservation" in workbench.method("lrp", composite="zero").claims
    assert "conservation" not in workbench.method("lrp", composite="epsilon").claims
    assert "dummy" not in workbench.method("lrp").claims  # flat at the input layer ignores weights
    assert workbench.method("deeplift").claims.keys() >= {"completeness", "dummy"}
    with pytest.raises(workbench.InputError, match="unknown composite"):
        workbench.method("lrp", composite="no-such")


def test_implementation_invariance_fails_for_lrp_on_a_known_pair():
    """The shrunk counterexample the checker found: one hidden unit split with fraction 2."""
    from workbench.axioms import get_axiom
    from workbench.axioms.base import Case
    from workbench.nets import transforms

    spec = S.NetSpec((1,), (S.Linear(2), S.ReLU(), S.Linear(2, bias=False)))
    f = S.build(spec, state={"0.weight": [[2.0], [1.0]], "0.bias": [1.0, 1.0], "2.weight": [[1.0, -1.0], [1.0, 1.0]]})
    g = transforms.split_hidden(f, transforms.hidden_sites(f)[0], 1, 2.0)
    x = torch.tensor([[-0.625]], dtype=torch.float64)
    case = Case({"f": f, "g": g}, x, torch.zeros_like(x), 0, {"transform": "split"})
    ax = get_axiom("implementation-invariance")
    assert ax.run(workbench.method("lrp", composite="zplus"), case, 1e-9).violated
    assert not ax.run(workbench.method("gradient"), case, 1e-9).violated


def test_implementation_invariance_search_finds_a_small_lrp_counterexample_and_none_for_gradient(tmp_path):
    bad = workbench.method("lrp", composite="zplus")
    # a violation is rare among the drawn pairs: try seeds until one is found (seed 3 here;
    # 100 shrink evaluations reach 8 parameters)
    for seed in range(12):
        v = check_axiom(bad, "implementation-invariance", examples=60, seed=seed, family=Family("mlp"), save_dir=tmp_path, shrink_seconds=30, shrink_evaluations=100)
        if v.holds is False:
            break
    assert v.holds is False and not v.claimed, v
    outcome, case, _ = replay(v.counterexample)
    assert outcome.violated
    assert sum(p.numel() for p in case.nets["f"].parameters()) <= 40, case.describe()
    ok = check_axiom(workbench.method("gradient"), "implementation-invariance", examples=10, seed=1, family=Family("mlp"), save_dir=tmp_path)
    assert ok.holds is True


@pytest.mark.parametrize("method,holds", [("lrp[composite='zero']", True), ("lrp[composite='dtd-zb']", True), ("lrp[composite='epsilon']", False), ("gradient", False)])
def test_conservation_axiom_both_ways(method, holds, tmp_path):
    v = check_axiom(workbench.method(method), "conservation", examples=15, seed=0, save_dir=tmp_path, shrink_seconds=3)
    assert v.holds is holds, v
    if not holds:
        assert replay(v.counterexample)[0].violated


@twin_of(deeplift_rescale_summation)
def test_deeplift_completeness_through_the_checker(tmp_path):
    v = check_axiom(workbench.method("deeplift"), "completeness", examples=20, seed=0, save_dir=tmp_path)
    assert v.holds is True and v.claimed and v.cases > 0


def test_zb_box_bounds_per_channel_and_inputs_outside_the_box():
    spec = S.NetSpec((2, 4, 4), (S.Conv2d(3, 3, padding=1), S.ReLU(), S.Flatten(), S.Linear(2)))
    net = _net(spec, seed=4)
    x = torch.rand(2, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))  # in [0, 1]
    low, high = R.box_bounds((0.5, 0.25), (0.5, 0.25))
    assert low == (-1.0, -1.0) and high == (1.0, 3.0)
    xn = (x - torch.tensor([0.5, 0.25], dtype=torch.float64).view(1, 2, 1, 1)) / torch.tensor([0.5, 0.25], dtype=torch.float64).view(1, 2, 1, 1)
    per_channel = workbench.method("lrp", composite="dtd-zb", low=low, high=high).attribute(net, xn, target=0)
    f = float(net(xn)[0, 0])
    # per-channel bounds differ from one scalar box; DTD on a bias-free net conserves either way
    scalar = workbench.method("lrp", composite="dtd-zb", low=-1.0, high=3.0).attribute(net, xn, target=0)
    assert not torch.allclose(per_channel, scalar)
    with pytest.raises(workbench.InputError, match="outside"):
        workbench.method("lrp", composite="dtd-zb", low=-0.5, high=0.5).attribute(net, xn, target=0)
    with pytest.raises(workbench.InputError, match="low < high"):
        workbench.method("lrp", composite="epsilon-gamma-box", low=1.0, high=-1.0)
    assert f == f  # the forward itself is untouched by the checks


# -- torchvision models: in-place and reused ReLUs, BatchNorm folding, residual sums -------------
TORCHVISION = ["resnet18", "resnet50", "vgg16"]


def _torchvision(name, *, bias_free=False, bn_eps=None):
    import torchvision

    model = getattr(torchvision.models, name)(weights=None)
    if not bias_free:
        randomize(model, generator=torch.Generator().manual_seed(0))  # biases and BatchNorm statistics too
    elif hasattr(model, "fc"):
        torch.nn.init.zeros_(model.fc.bias)  # fresh convs have no bias, BN is (0, 1), VGG's linears 0
    for m in model.modules():
        if bn_eps is not None and isinstance(m, torch.nn.BatchNorm2d):
            m.eps = bn_eps
    return model.double().eval()


def _x(seed=1):
    return torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_gradient_rule_and_guided_backprop_match_autograd_and_captum(name):
    from captum.attr import GuidedBackprop

    model, x = _torchvision(name), _x()
    before = _state(model)
    t = model(x).argmax(1)
    g = backward_through(elementwise(R.Gradient()), model, x, t)
    assert torch.allclose(g, workbench.method("gradient").attribute(model, x, target=t), rtol=0, atol=1e-12 * float(g.abs().max()))
    ours = workbench.method("guided-backprop").attribute(model, x, target=t)
    peer = GuidedBackprop(model).attribute(x.clone().requires_grad_(True), target=t).detach()
    assert torch.allclose(ours, peer, rtol=0, atol=1e-12 * float(peer.abs().max()))
    _same(before, _state(model))


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_lrp_matches_zennit(name):
    """EpsilonPlusFlat with Zennit's conventions. BatchNorm eps = 0: Zennit's canonizer keeps eps in
    the BatchNorm it resets to the identity, so its canonized model is off by (1 + eps)^(-1/2) per
    BatchNorm (see the benchmark); with eps = 0 both canonizers are exact."""
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer

    model, x = _torchvision(name, bn_eps=0.0), _x(2)
    before = _state(model)
    t = model(x).argmax(1)
    ours = backward_through(composite("epsilon-plus-flat", stabilizer=1e-6, zplus_bias=True), model, x, t, seed="relevance")
    _same(before, _state(model))
    one_hot = torch.zeros(2, 1000, dtype=torch.float64)
    one_hot[torch.arange(2), t] = 1.0
    canonizer = ResNetCanonizer() if name.startswith("resnet") else VGGCanonizer()
    with Gradient(model=model, composite=EpsilonPlusFlat(canonizers=[canonizer])) as attributor:
        _, peer = attributor(x, lambda out: one_hot * out)
    assert float((ours - peer).abs().max() / peer.abs().max()) < 1e-9


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_lrp_zero_conserves_and_is_input_times_gradient_without_biases(name):
    model, x = _torchvision(name, bias_free=True), _x(3)
    t = model(x).argmax(1)
    f = model(x).gather(1, t.view(-1, 1)).squeeze(1).detach()
    a = workbench.method("lrp", composite="zero").attribute(model, x, target=t)
    ixg = workbench.method("input-x-gradient").attribute(model, x, target=t)
    assert torch.allclose(a, ixg, rtol=0, atol=1e-10 * float(ixg.abs().max()))
    assert torch.allclose(a.flatten(1).sum(1), f, rtol=1e-10)


def test_torchvision_deeplift_sums_to_delta_with_biases_and_batchnorm():
    model, x = _torchvision("resnet18"), _x(4)
    x0 = 0.1 * _x(5)
    a = workbench.method("deeplift").attribute(model, x, target=7, baseline=x0)
    with torch.no_grad():
        delta = model(x)[:, 7] - model(x0)[:, 7]
    assert torch.allclose(a.flatten(1).sum(1), delta, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method,axiom,holds", [
    ("lrp[composite='zero']", "input-x-gradient-identity", True),
    ("deeplift", "input-x-gradient-identity", True),
    ("guided-backprop", "input-x-gradient-identity", False),
    ("lrp[composite='zplus']", "alpha1-beta0-identity", True),
    ("lrp[composite='zero']", "alpha1-beta0-identity", False),
    ("lrp[composite='dtd-zb']", "alpha1-beta0-identity", False),  # zB at the input layer
])
def test_identity_axioms_both_ways(method, axiom, holds, tmp_path):
    v = check_axiom(workbench.method(method), axiom, examples=15, seed=0, save_dir=tmp_path, shrink_seconds=3)
    assert v.holds is holds and not v.claimed, v
    if not holds:
        assert replay(v.counterexample)[0].violated


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_generalized_gamma_matches_zennit(name):
    """``generalized_gamma=True`` is Zennit's Gamma rule (on every Linear / Conv, Zennit's base map elsewhere)."""
    from zennit.attribution import Gradient
    from zennit.composites import LayerMapComposite, layer_map_base
    from zennit.rules import Gamma
    from zennit.torchvision import ResNetCanonizer
    from zennit.types import Convolution, Linear

    model, x = _torchvision(name, bn_eps=0.0), _x(2)
    t = model(x).argmax(1)
    ours = workbench.method("lrp", composite="gamma", gamma=0.25, stabilizer=1e-6, generalized_gamma=True).attribute(model, x, target=t)
    one_hot = torch.zeros(2, 1000, dtype=torch.float64)
    one_hot[torch.arange(2), t] = 1.0
    zc = LayerMapComposite(layer_map_base() + [(Convolution, Gamma(0.25)), (Linear, Gamma(0.25))], canonizers=[ResNetCanonizer()])
    with Gradient(model=model, composite=zc) as attributor:
        _, peer = attributor(x, lambda out: one_hot * out)
    assert float((ours - peer).abs().max() / peer.abs().max()) < 1e-9


def test_gamma_stabiliser_diagnostic_on_randomized_resnet50():
    """Classic gamma on a randomized resnet50: units with z < 0 get z + gamma z+, which can cross 0;
    the diagnostic warns and the input relevance is far from F(x). The generalized gamma keeps
    |z_mod| >= |z|: no warning, and a relevance sum of the order of F(x)."""
    import warnings

    from workbench.nets.randomize import randomize_affine
    from workbench.rules import StabilizerWarning
    import torchvision

    g = torch.Generator().manual_seed(0)
    model = randomize_affine(torchvision.models.resnet50(weights=None).double().eval(), g)
    x = torch.randn(1, 3, 64, 64, generator=g, dtype=torch.float64)
    f = float(model(x)[0, 7])
    with pytest.warns(StabilizerWarning, match=r"fell below 0.01 x \|z\|"):
        classic = workbench.method("lrp", composite="gamma").attribute(model, x, target=7)
    assert abs(float(classic.sum()) / f) > 100
    with warnings.catch_warnings():
        warnings.simplefilter("error", StabilizerWarning)
        generalized = workbench.method("lrp", composite="gamma", generalized_gamma=True).attribute(model, x, target=7)
    assert 0.1 < float(generalized.sum()) / f < 10

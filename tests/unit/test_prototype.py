"""Prototyping a rule in a few lines: it agrees with the built-ins and the checker judges it."""

import pytest
import torch
from hypothesis import given
from torch import nn

import workbench
from workbench.testing import strategies as wst
from workbench.core.errors import InputError
from workbench.prototype import relu_rule, rule_method
from workbench.rules import Epsilon


@relu_rule
def gradient_rule(z, a, g):
    return g * (a > 0)


@relu_rule
def guided_rule(z, a, g):
    return g * (a > 0) * (g > 0)


@given(wst.network_cases())
def test_a_function_rule_reproduces_guided_backprop_and_the_gradient(case):
    net, x, target = case.net, case.x, case.target
    gbp = rule_method("proto-gbp", relu=guided_rule).attribute(net, x, target=target)
    grad = rule_method("proto-grad", relu=gradient_rule).attribute(net, x, target=target)
    assert torch.equal(gbp, workbench.method("guided-backprop").attribute(net, x, target=target))
    assert torch.allclose(grad, workbench.method("gradient").attribute(net, x, target=target), rtol=1e-12, atol=1e-12)
    assert all(not m._forward_hooks and not m._backward_hooks for m in net.modules())


def test_the_checker_passes_a_sound_prototype_and_catches_an_unsound_claim(tmp_path):
    sound = rule_method("proto-grad", relu=gradient_rule, claims={"dummy": None, "implementation-invariance": None, "linearity": None})
    report = workbench.check(sound, axioms=["dummy", "implementation-invariance", "linearity"], examples=8, seed=0, save_dir=tmp_path, shrink_seconds=2)
    assert report.ok and all(v.holds for v in report.verdicts), report.table()
    unsound = rule_method("proto-gbp", relu=guided_rule, claims={"linearity": None})
    report = workbench.check(unsound, axioms=["linearity"], examples=20, seed=0, save_dir=tmp_path, shrink_seconds=2)
    v = report.verdict("linearity")
    assert v.claimed and v.holds is False and v.counterexample, report.table()


def test_lrp_style_prototype_with_a_relevance_seed_conserves_on_bias_free_nets():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6, bias=False), nn.ReLU(), nn.Linear(6, 3, bias=False)).double().eval()
    x = torch.rand(2, 4, dtype=torch.float64)
    m = rule_method("proto-lrp", {nn.Linear: Epsilon(epsilon=1e-9)}, seed="relevance")
    r = m.attribute(net, x, target=1)
    with torch.no_grad():
        f = net(x)[:, 1]
    assert torch.allclose(r.sum(1), f, rtol=1e-6)


def test_bad_prototypes_are_named():
    with pytest.raises(InputError, match="not a workbench Rule"):
        rule_method("bad", {nn.ReLU: lambda z, a, g: g})
    with pytest.raises(InputError, match="at least one rule"):
        rule_method("empty")
    with pytest.raises(InputError, match="seed"):
        rule_method("bad-seed", relu=gradient_rule, seed="logit")

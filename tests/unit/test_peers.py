"""The checker judges peer libraries' methods: declared claims, expected failures, real defects."""

import json

import torch

import workbench
from workbench import peers
from workbench.nets import spec as S


def test_captum_trapezoid_rule_fails_the_ig_papers_5_percent_and_gauss_legendre_holds_it(tmp_path):
    bad = workbench.check(peers.captum_ig_trapezoid, axioms=["completeness"], examples=10, seed=0, save_dir=tmp_path, shrink_seconds=2)
    good = workbench.check(peers.captum_integrated_gradients, axioms=["completeness"], examples=10, seed=0, save_dir=tmp_path, shrink_seconds=2)
    v = bad.verdict("completeness")
    assert v.claimed and v.holds is False and v.tolerance == peers.IG_PAPER_RTOL and v.residual > peers.IG_PAPER_RTOL
    assert good.verdict("completeness").holds is True and good.ok


def test_trapezoid_weights_miss_completeness_by_one_over_n_on_a_linear_network():
    # F(x) = w . x + b: every rule whose weights sum to 1 is exact at any step count
    net = S.build(S.NetSpec((3,), (S.Linear(1),)), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x, b = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64)
    t = torch.tensor([0])
    with torch.no_grad():
        delta = float(net(x)[0, 0] - net(b)[0, 0])
    captum = float(peers.captum_ig_trapezoid(net, x, t, b).sum())
    ours = float(workbench.method("integrated-gradients", rule="trapezoid", steps=8, tolerance=None).attribute(net, x, target=0, baseline=b).sum())
    assert abs(ours - delta) < 1e-12 * abs(delta)
    assert abs(captum / delta - 7 / 8) < 1e-12  # weights sum to (n - 1) / n


def test_captum_deeplift_summation_to_delta_is_reported_broken(tmp_path):
    # Captum's DeepLift documents summation-to-delta. On a reused ReLU module it raises (an
    # `error` verdict with its message); on GELU networks its Rescale rule falls back to the
    # plain gradient and misses completeness (a FAILS verdict whose counterexample replays)
    relu = workbench.check(peers.captum_deeplift, axioms=["completeness"], examples=20, seed=0, activations=("relu",), save_dir=tmp_path)
    v = relu.verdict("completeness")
    assert v.cell() == "error" and "more than once" in v.note and v.counterexample is None and not relu.ok
    smooth = workbench.check(peers.captum_deeplift, axioms=["completeness"], examples=20, seed=0, activations=("gelu",), save_dir=tmp_path)
    v = smooth.verdict("completeness")
    assert v.cell() == "FAILS"
    outcome, case, _ = workbench.replay(v.counterexample)
    assert outcome.violated and "GELU" in case.nets["f"].spec.describe()
    ours = workbench.check("deeplift", axioms=["completeness"], examples=20, seed=0, save_dir=tmp_path)
    assert ours.verdict("completeness").holds is True  # our Rescale rule handles reuse and GELU


def test_claims_attribute_of_a_user_function_decides_what_counts_against_it(tmp_path):
    def gradient(model, x, target, baseline):
        return workbench.method("gradient").attribute(model, x, target=target)

    undeclared = workbench.check(gradient, axioms=["completeness", "dummy"], examples=5, seed=0, save_dir=tmp_path, shrink_seconds=1)
    assert not undeclared.ok and undeclared.verdict("completeness").claimed  # held to the core axioms asked
    gradient.claims = {"dummy": None}
    declared = workbench.check(gradient, axioms=["completeness", "dummy"], examples=5, seed=0, save_dir=tmp_path, shrink_seconds=1)
    assert declared.ok and not declared.verdict("completeness").claimed and declared.verdict("completeness").holds is False
    assert declared.verdict("dummy").holds is True


def test_zennit_composite_runs_through_the_contract_and_leaves_no_hooks():
    net = S.build(S.NetSpec((4,), (S.Linear(5), S.ReLU(), S.Linear(3))), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 4, dtype=torch.float64)
    m = workbench.methods  # noqa: F841 - the registry is not involved: a plain callable
    from workbench.methods.base import as_method

    a = as_method(peers.zennit_epsilon_plus_flat).attribute(net, x, target=torch.tensor([0, 2]))
    assert a.shape == x.shape and torch.isfinite(a).all()
    assert all(not mod._forward_hooks and not mod._backward_hooks for mod in net.modules())

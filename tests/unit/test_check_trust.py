"""Trustworthy verdicts: a zoo of subtly broken attribution callables (each caught on default
settings, each with the claims its author would make), sound methods without alarms, and the
checker's own decision logic (verdict classes, confirmation, shrink policy, determinism)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import workbench
from workbench import peers
from workbench.axioms import Case, axioms, get_axiom
from workbench.check.search import Report, Verdict, check, check_axiom
from workbench.cli import main
from workbench.methods.contract import check_contract
from workbench.core.degenerate import degenerate_reason
from workbench.methods.base import as_method
from workbench.core.modelguard import preserved, reporting
from workbench.nets import spec as S
from workbench.testing.strategies import Family


# -- the zoo: plausible foreign methods, each wrong in one way ------------------------------
def _grad(model, x, target):
    x = x.detach().clone().requires_grad_(True)
    out = model(x).gather(1, target.view(-1, 1)).sum()
    (g,) = torch.autograd.grad(out, x)
    return g


def sound_gradient(model, x, target, baseline):
    return _grad(model, x, target)


sound_gradient.claims = {"dummy": None, "linearity": None, "symmetry": None, "implementation-invariance": None}


def first_sample_target(model, x, target, baseline):
    """Uses target[0] for every row."""
    return _grad(model, x, target[:1].expand_as(target))


first_sample_target.claims = dict(sound_gradient.claims)


def _has_smooth(model):
    return any(isinstance(m, (nn.Softplus, nn.GELU)) for m in model.modules())


def completeness_shortcut(model, x, target, baseline):
    """Exact IG on ReLU networks; on smooth ones a one-step midpoint 'shortcut'."""
    if not _has_smooth(model):
        return workbench.method("integrated-gradients", rule="exact").attribute(model, x, target=target, baseline=baseline)
    return (x - baseline) * _grad(model, (x + baseline) / 2, target)


completeness_shortcut.claims = {"completeness": None}


def zero_small(model, x, target, baseline):
    """IG with |A| < 1e-3 set to 0 ('denoising')."""
    a = workbench.method("integrated-gradients").attribute(model, x, target=target, baseline=baseline)
    return torch.where(a.abs() < 1e-3, torch.zeros_like(a), a)


zero_small.claims = {"sensitivity-a": 1e-6}


def trapezoid_64(model, x, target, baseline):
    """Captum's trapezoid rule at 64 steps: weights sum to 63/64, 1.6% inside the claimed 5%."""
    return peers._quiet(peers._captum_ig("riemann_trapezoid", 64))(model, x, target, baseline)


trapezoid_64.claims = {"completeness": peers.IG_PAPER_RTOL}


def hook_left(model, x, target, baseline):
    list(model.modules())[-1].register_forward_hook(lambda m, i, o: None)
    return _grad(model, x, target)


def kwargs_hook_left(model, x, target, baseline):
    list(model.modules())[1].register_forward_pre_hook(lambda m, args, kwargs: None, with_kwargs=True)
    return _grad(model, x, target)


def global_hook_left(model, x, target, baseline):
    nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    return _grad(model, x, target)


def data_write(model, x, target, baseline):
    next(model.parameters()).data.mul_(1.0 + 2**-20)
    return _grad(model, x, target)


def graph_attached(model, x, target, baseline):
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x).gather(1, target.view(-1, 1)).sum(), x, create_graph=True)
    return g * x


def train_mode_forward(model, x, target, baseline):
    model.train()
    a = _grad(model, torch.cat([x, x]), torch.cat([target, target]))[: x.shape[0]]
    model.eval()
    return a


def float32_output(model, x, target, baseline):
    return _grad(model, x, target).float()


def unseeded_monte_carlo(model, x, target, baseline):
    """SmoothGrad with torch's global generator, never seeded."""
    return torch.stack([_grad(model, x + 0.2 * torch.randn_like(x), target) for _ in range(4)]).mean(0)


def raising(model, x, target, baseline):
    return undefined_name  # noqa: F821


for _f in (hook_left, kwargs_hook_left, global_hook_left, data_write, graph_attached, train_mode_forward, float32_output, unseeded_monte_carlo, raising):
    _f.claims = dict(sound_gradient.claims)

#: violator -> (expected cell, words the note must contain)
CONTRACT_ZOO = {
    first_sample_target: ("contract", "batch inconsistent"),
    hook_left: ("contract", "forward_hooks left"),
    kwargs_hook_left: ("contract", "forward_pre_hooks left"),
    global_hook_left: ("contract", "global module hook"),
    data_write: ("contract", "values written"),
    graph_attached: ("contract", "autograd graph"),
    train_mode_forward: ("contract", "running_mean"),
    float32_output: ("contract", "dtype float32"),
    unseeded_monte_carlo: ("contract", "nondeterministic"),
    raising: ("error", "NameError"),
}


@pytest.mark.parametrize("violator", list(CONTRACT_ZOO), ids=lambda f: f.__name__)
def test_contract_violators_are_caught_and_named(violator, tmp_path):
    cell, words = CONTRACT_ZOO[violator]
    before = {k: dict(v) for k, v in vars(nn.modules.module).items() if k.startswith("_global_") and isinstance(v, dict)}
    r = check(violator, axioms=["dummy", "linearity"], examples=3, seed=0, save_dir=tmp_path)
    assert [v.cell() for v in r.verdicts] == [cell, cell], r.table()
    assert all(words in v.note for v in r.verdicts), r.verdicts[0].note
    assert not r.ok and not list(tmp_path.iterdir())  # no counterexample file
    after = {k: dict(v) for k, v in vars(nn.modules.module).items() if k.startswith("_global_") and isinstance(v, dict)}
    assert after == before  # the bench removed the global hook it reported


def test_reach_completeness_shortcut_on_smooth_networks(tmp_path):
    r = check(completeness_shortcut, axioms=["completeness"], examples=30, seed=0, save_dir=tmp_path)
    v = r.verdict("completeness")
    assert v.cell() == "FAILS", r.table()
    _, case, _ = workbench.replay(v.counterexample, method=completeness_shortcut)
    assert not case.nets["f"].spec.piecewise_linear

    def declared_piecewise_linear(model, x, target, baseline):
        return completeness_shortcut(model, x, target, baseline)

    declared_piecewise_linear.claims = dict(completeness_shortcut.claims)
    declared_piecewise_linear.domain = "piecewise-linear"
    relu_only = check(declared_piecewise_linear, axioms=["completeness"], examples=30, seed=0, save_dir=tmp_path)
    assert relu_only.verdict("completeness").cell() == "holds"  # what the old ReLU-only default saw
    assert relu_only.settings["not_searched"] == ["softplus", "gelu"] and "not searched: softplus, gelu" in relu_only.table()


def test_reach_weight_bug_on_affine_networks_at_round_off(tmp_path):
    r = check(trapezoid_64, axioms=["completeness"], examples=20, seed=0, save_dir=tmp_path)
    v = r.verdict("completeness")
    assert v.cell() == "FAILS" and "affine network" in v.note and v.tolerance == 1e-6 and v.residual < 0.05, r.table()


def test_reach_sensitivity_a_small_output_changes(tmp_path):
    r = check(zero_small, axioms=["sensitivity-a"], examples=40, seed=0, save_dir=tmp_path)
    v = r.verdict("sensitivity-a")
    assert v.cell() == "FAILS", r.table()
    assert v.residual < 1e-3  # found through a small output change


def captum_ig_256(model, x, target, baseline):
    """Captum's IG at 256 Gauss-Legendre nodes (sound: the false alarms of issue 11 were on it)."""
    return peers._quiet(peers._captum_ig("gausslegendre", 256))(model, x, target, baseline)


captum_ig_256.claims = dict(peers.captum_integrated_gradients.claims)

#: sound methods and the claimed axioms a short test searches (seeds 0-4 at 60 examples: README)
SOUND = {
    "gradient": ["implementation-invariance", "linearity", "symmetry"],
    "integrated-gradients": ["completeness", "implementation-invariance", "symmetry"],
    captum_ig_256: ["symmetry", "linearity"],
}


@pytest.mark.parametrize("method", list(SOUND), ids=lambda m: getattr(m, "__name__", m))
def test_sound_methods_raise_no_alarm(method, tmp_path):
    # Captum rebuilds its 256 Gauss-Legendre nodes on every call (0.3 s): fewer cases for it
    r = check(method, axioms=SOUND[method], examples=3 if method is captum_ig_256 else 8, seed=1, save_dir=tmp_path)
    assert r.ok and all(v.cell() in ("holds", "n/a") for v in r.verdicts), r.table()
    assert r.contract["breaches"] == [] and r.contract["error"] == ""


# -- decision logic ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "holds,status,claimed,cell",
    [(True, "", True, "holds"), (True, "", False, "holds*"), (False, "", True, "FAILS"), (False, "", False, "fails"),
     (None, "", True, "n/a"), (None, "contract", False, "contract"), (None, "error", True, "error")],
)
def test_verdict_cells(holds, status, claimed, cell):
    v = Verdict("dummy", "m", holds, claimed, 0.0, 1e-9, 1, None, "a\nnote", status)
    assert v.cell() == cell and v.note == "a note"
    assert v.unexpected == (cell in ("FAILS", "contract"))
    r = Report("m", [v])
    assert r.ok == (cell not in ("FAILS", "contract", "error"))
    with pytest.raises(ValueError):
        Verdict("dummy", "m", None, True, 0.0, 0.0, 0, status="bogus")


def test_core_axioms_are_data_and_bind_undeclared_callables(tmp_path):
    core = {n for n, a in axioms().items() if a.core}
    assert "completeness" in core and "alpha1-beta0-identity" not in core and "input-x-gradient-identity" not in core

    def plain(model, x, target, baseline):
        return _grad(model, x, target)

    r = check(plain, axioms=["dummy", "alpha1-beta0-identity"], examples=5, seed=0, save_dir=tmp_path, contract=False)
    assert r.verdict("dummy").claimed and not r.verdict("alpha1-beta0-identity").claimed
    assert r.verdict("alpha1-beta0-identity").cell() == "fails" and r.ok
    assert all(v.note for v in r.verdicts if v.cell() != "holds")  # every other cell says why


def test_a_violation_that_does_not_repeat_is_named_nondeterministic(tmp_path):
    calls = [0]

    def flaky(model, x, target, baseline):  # every third call is wrong
        calls[0] += 1
        g = _grad(model, x, target)
        return g + 1.0 if calls[0] % 3 == 0 else g

    flaky.claims = {"dummy": None}
    v = check_axiom(as_method(flaky), "dummy", examples=20, seed=0, save_dir=tmp_path)
    assert v.cell() == "contract" and "did not repeat" in v.note and v.counterexample is None


def test_an_error_on_some_networks_is_an_error_verdict(tmp_path):
    def no_images(model, x, target, baseline):
        if x.dim() > 2:
            raise RuntimeError("images are not supported here")
        return _grad(model, x, target)

    v = check_axiom(as_method(no_images), "dummy", examples=40, seed=0, save_dir=tmp_path)
    assert v.cell() == "error" and "RuntimeError: images are not supported here" in v.note
    assert v.counterexample is None and not list(tmp_path.iterdir())


def test_expected_failures_are_confirmed_not_shrunk_unless_asked(tmp_path):
    quick = check("input-x-gradient", axioms=["weak-dependence"], examples=20, seed=0, save_dir=tmp_path)
    v = quick.verdict("weak-dependence")
    assert v.cell() == "fails" and v.counterexample is None and "confirmed" in v.note
    assert not list(tmp_path.iterdir())
    full = check("input-x-gradient", axioms=["weak-dependence"], examples=20, seed=0, save_dir=tmp_path, shrink="all")
    w = full.verdict("weak-dependence")
    assert w.counterexample and "confirmed" not in w.note and w.evaluations > v.evaluations


def _on_small_grid(values, bits=1):
    return all(math.isfinite(v) and v * 2**bits == int(v * 2**bits) and (v == 0 or abs(v) >= 2**-bits) for v in values)


def test_shrunk_counterexamples_are_small_dyadic_and_replay(tmp_path):
    def zero_map(model, x, target, baseline):
        return torch.zeros_like(x)

    zero_map.claims = {"completeness": None}
    r = check(zero_map, axioms=["completeness"], examples=20, seed=0, save_dir=tmp_path)
    v = r.verdict("completeness")
    data = json.loads(open(v.counterexample).read())
    case = Case.from_dict(data["case"])
    values = case.x.flatten().tolist() + case.baseline.flatten().tolist()
    for net in case.nets.values():
        values += [float(t) for p in net.parameters() for t in p.detach().flatten()]
    assert _on_small_grid(values), values  # integers and halves, no denormals
    outcome, _, _ = workbench.replay(v.counterexample, method=zero_map)
    assert outcome.violated


def test_same_seed_same_report_bytes(tmp_path):
    def zero_map(model, x, target, baseline):
        return torch.zeros_like(x)

    zero_map.claims = {"completeness": None, "dummy": None}
    texts, files = [], []
    for _ in range(2):
        r = check(zero_map, axioms=["completeness", "dummy", "sensitivity-a"], examples=10, seed=3, save_dir=tmp_path)
        texts.append(r.to_json())
        files.append(open(r.verdict("completeness").counterexample).read())
    assert texts[0] == texts[1] and files[0] == files[1]


def _tie_net():
    net = S.build(S.NetSpec((1, 4, 4), (S.Conv2d(1, 1), S.MaxPool2d(2), S.Flatten(), S.Linear(1))), generator=torch.Generator().manual_seed(0))
    return net


def test_degenerate_paths_are_detected():
    net = _tie_net()
    ones, zero = torch.ones(1, 1, 4, 4, dtype=torch.float64), torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    reason = degenerate_reason({"f": net}, ones, zero)  # the whole path inside a max-pool tie
    assert reason and "max-pool tie" in reason
    generic = torch.arange(16, dtype=torch.float64).reshape(1, 1, 4, 4) / 7
    assert degenerate_reason({"f": net}, generic, zero) is None
    with torch.no_grad():
        net[0].weight.zero_()  # every window ties at every input: structural, every subgradient agrees
    assert degenerate_reason({"f": net}, ones, zero) is None
    relu = S.build(S.NetSpec((2,), (S.Linear(1, bias=False), S.ReLU(), S.Linear(1))), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        relu[0].weight.copy_(torch.tensor([[1.0, -1.0]]))
    on_kink = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    assert "ReLU kink" in degenerate_reason({"f": relu}, on_kink, torch.zeros_like(on_kink))
    assert degenerate_reason({"f": relu}, on_kink, None)  # a pointwise method: the input itself
    case = Case({"f": net}, ones, zero, 0)
    assert get_axiom("completeness").run(as_method(sound_gradient), case, 1e-9).applicable  # structural tie: evidence


def test_contract_tolerates_round_off_and_finds_real_spread():
    def jitter(scale):
        def f(model, x, target, baseline):
            return _grad(model, x, target) * (1 + scale * torch.rand(()))

        f.claims = {}
        return f

    assert check_contract(as_method(jitter(1e-13))).ok
    assert "nondeterministic" in " ".join(check_contract(as_method(jitter(1e-3))).breaches)


def test_guard_restores_data_writes_and_hooks_after_a_raise():
    net = _tie_net()
    weights = [p.detach().clone() for p in net.parameters()]

    def bad(model, x, target, baseline):
        next(model.parameters()).data.add_(1.0)
        model[0].register_forward_hook(lambda m, i, o: None)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        as_method(bad).attribute(net, torch.ones(1, 1, 4, 4, dtype=torch.float64), target=0)
    assert all(torch.equal(p, w) for p, w in zip(net.parameters(), weights)) and not net[0]._forward_hooks
    with pytest.raises(workbench.ModelModifiedError, match="restored"):
        as_method(data_write).attribute(net, torch.ones(1, 1, 4, 4, dtype=torch.float64), target=0)
    assert all(torch.equal(p, w) for p, w in zip(net.parameters(), weights))
    with reporting() as found, preserved(net, by_value=True):
        net.train()
    assert len(found) == 1 and found[0].startswith("training flag changed on (model), 0") and not net.training


def test_cli_exit_2_on_error(capsys, tmp_path):
    code = main(["check", "tests.unit.test_check_trust:raising", "--axioms", "dummy", "--examples", "3", "--out", str(tmp_path), "--quiet"])
    out = capsys.readouterr()
    assert code == 2 and "error" in out.out and "NameError" in out.err

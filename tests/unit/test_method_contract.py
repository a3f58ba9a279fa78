"""The method contract, driven by one matrix: every built-in method on every fixture network.

Shape, dtype, batching, device, and the model left exactly as it was — also when a call raises.
"""

import copy

import pytest
import torch
from torch import nn

import workbench
from workbench.methods import registry as method_registry
from workbench.nets import spec as S

#: speed options for the slow methods (fewer samples / iterations); everything else is the registry's
FAST = {
    "smoothgrad": {"samples": 4}, "expected-gradients": {"samples": 2}, "smooth-fullgrad": {"samples": 3},
    "igos": {"resolution": "full", "iterations": 3, "steps": 4},
}
#: convention options worth a contract row of their own
CONVENTIONS = [{"name": "guided-backprop", "at_zero": True}, {"name": "rectgrad", "q": 50.0}]


def configurations() -> list[str]:
    """Every built-in in its default configuration, its audited variants and its matrix rows
    (generated from the registry), plus the convention rows; labels, which ``workbench.method`` parses."""
    out: dict[str, None] = {}
    for info in workbench.methods():
        cls = method_registry.lookup(info.name)
        for options in ({}, *cls.variants(), *cls.matrix_variants()):
            out[workbench.method(info.name, **{**options, **FAST.get(info.name, {})}).label] = None
    for options in CONVENTIONS:
        options = dict(options)
        out[workbench.method(options.pop("name"), **options).label] = None
    return list(out)


METHODS = configurations()
#: methods that need image inputs (N, C, H, W): not applicable to the MLPs
IMAGE_ONLY = ("gradcam", "igos")

SPECS = {
    "mlp": S.NetSpec((3,), (S.Linear(4), S.BatchNorm(), S.ReLU(inplace=True), S.Linear(4), S.ReLU(), S.Linear(2))),
    "mlp-shared-relu": S.NetSpec((3,), (S.Linear(4), S.ReLU(), S.Linear(4), S.ReLU(), S.Linear(2)), shared_relu=True),
    "cnn": S.NetSpec(
        (2, 6, 6),
        (
            S.Conv2d(3, 3, padding=1), S.BatchNorm(), S.ReLU(inplace=True),
            S.Residual((S.Conv2d(3, 3, padding=1), S.ReLU())),
            S.MaxPool2d(2), S.Conv2d(2, 1), S.ReLU(), S.AvgPool2d(3), S.Flatten(), S.Linear(3),
        ),
    ),
}


def _net(name, dtype=torch.float64):
    return S.build(SPECS[name], dtype=dtype, generator=torch.Generator().manual_seed(1))


def _fingerprint(model):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        {n: m.training for n, m in model.named_modules()},
        {n: (dict(m._forward_hooks), dict(m._forward_pre_hooks), dict(m._backward_hooks)) for n, m in model.named_modules()},
        {n: p.requires_grad for n, p in model.named_parameters()},
    )


def _assert_unchanged(model, before):
    after = _fingerprint(model)
    for k in before[0]:
        assert torch.equal(before[0][k], after[0][k]), k
    assert before[1:] == after[1:]


@pytest.mark.parametrize("method_name", METHODS)
@pytest.mark.parametrize("net_name", list(SPECS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_batch_and_model_unchanged(method_name, net_name, dtype):
    if method_name.startswith(IMAGE_ONLY) and net_name != "cnn":
        pytest.skip(f"{method_name} needs image inputs")
    net = _net(net_name, dtype)
    m = workbench.method(method_name)
    x = torch.randn(3, *net.spec.input_shape, dtype=dtype, generator=torch.Generator().manual_seed(2))
    before = _fingerprint(net)
    a = m.attribute(net, x, target=[0, 1, 0], baseline=torch.zeros_like(x) if m.uses_baseline else None)
    assert a.shape == x.shape and a.dtype == dtype
    assert torch.isfinite(a).all()
    _assert_unchanged(net, before)
    # batched == one by one
    single = torch.cat([m.attribute(net, x[i : i + 1], target=[0, 1, 0][i]) for i in range(3)])
    batched = m.attribute(net, x, target=[0, 1, 0])
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert torch.allclose(single, batched, atol=tol * (1 + batched.abs().max().item()), rtol=0)


BAD_CALLS = {
    "nan input": (lambda x: x.clone().fill_(float("nan")), {}, "NaN"),
    "inf input": (lambda x: x.clone().fill_(float("inf")), {}, "NaN or inf"),
    "unbatched": (lambda x: x[0], {}, "batched"),
    "integer dtype": (lambda x: x.long(), {}, "dtype"),
    "float16": (lambda x: x.half(), {}, "dtype"),
    "dtype mismatch": (lambda x: x.float(), {}, "does not match"),
    "target too large": (lambda x: x, {"target": 7}, "out of range"),
    "negative target": (lambda x: x, {"target": -1}, "out of range"),
    "target count": (lambda x: x, {"target": [0, 1, 0, 1, 0]}, "entries"),
    "float target": (lambda x: x, {"target": torch.tensor([0.5, 1.0])}, "integer"),
    "baseline shape": (lambda x: x, {"baseline": torch.zeros(5, 5, dtype=torch.float64)}, "broadcast"),
    "nan baseline": (lambda x: x, {"baseline": torch.full((1, 3), float("nan"), dtype=torch.float64)}, "baseline"),
}


@pytest.mark.parametrize("method_name", METHODS)
@pytest.mark.parametrize("bad", list(BAD_CALLS))
def test_bad_input_is_named_and_model_unchanged(method_name, bad):
    net = _net("cnn" if method_name.startswith(IMAGE_ONLY) else "mlp")
    make, kwargs, words = BAD_CALLS[bad]
    x = make(torch.randn(2, *net.spec.input_shape, dtype=torch.float64))
    m = workbench.method(method_name)
    before = _fingerprint(net)
    call = {"target": 0, **kwargs}
    with pytest.raises(workbench.WorkbenchError, match=words):
        m.attribute(net, x, **call)
    _assert_unchanged(net, before)


@pytest.mark.parametrize("method_name", METHODS)
def test_training_mode_is_refused(method_name):
    net = _net("mlp").train()
    before = _fingerprint(net)
    with pytest.raises(workbench.ModelError, match="training mode"):
        workbench.method(method_name).attribute(net, torch.randn(2, 3, dtype=torch.float64), target=0)
    _assert_unchanged(net, before)


def test_output_shape_is_checked():
    class Flat(nn.Module):
        def forward(self, x):
            return x.sum(1)

    with pytest.raises(workbench.ModelError, match=r"\(N, classes\)"):
        workbench.method("gradient").attribute(Flat().eval(), torch.randn(2, 3), target=0)


def test_model_unchanged_when_the_model_itself_raises_midway():
    class Exploding(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2).double()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("boom")
            return self.lin(x)

    net = Exploding().eval()
    before = _fingerprint(net)
    with pytest.raises(RuntimeError, match="boom"):
        workbench.method("integrated-gradients").attribute(net, torch.randn(1, 3, dtype=torch.float64), target=0)
    _assert_unchanged(net, before)


def test_method_writing_to_the_model_is_caught():
    def vandal(model, x, target, baseline):
        with torch.no_grad():
            next(model.parameters()).add_(1.0)
        return torch.zeros_like(x)

    from workbench.methods.base import CallableMethod

    net = _net("mlp")
    with pytest.raises(workbench.ModelModifiedError, match="wrote"):
        CallableMethod(vandal).attribute(net, torch.randn(1, 3, dtype=torch.float64), target=0)


def test_hooks_left_by_a_callable_are_removed():
    def hooker(model, x, target, baseline):
        model[0].register_forward_hook(lambda *a: None)
        return torch.zeros_like(x)

    from workbench.methods.base import CallableMethod

    net = _net("mlp")
    before = _fingerprint(net)
    CallableMethod(hooker).attribute(net, torch.randn(1, 3, dtype=torch.float64), target=0)
    _assert_unchanged(net, before)


def test_registry_lists_claims_and_rebuilds_from_label():
    infos = {i.name: i for i in workbench.methods()}
    assert {"gradient", "input-x-gradient", "integrated-gradients", "smoothgrad", "expected-gradients"} <= set(infos)
    assert "completeness" in infos["integrated-gradients"].claims
    assert "completeness" not in infos["gradient"].claims
    m = workbench.method("integrated-gradients[rule='exact']")
    assert workbench.method(m.label).options == m.options == {"rule": "exact"}
    with pytest.raises(workbench.InputError, match="unknown method"):
        workbench.method("no-such-method")
    with pytest.raises(workbench.InputError, match="rule"):
        workbench.method("integrated-gradients", rule="simpson")

"""workbench.core.coverage: the autograd-graph tracer, node classification, refusals and conventions."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import workbench
from workbench.core import coverage as cov


def _node(fn):
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    return fn(x).grad_fn


@pytest.mark.parametrize("fn, kind", [
    (lambda x: x.view(3, 2), cov.STRUCTURAL),
    (lambda x: x * 2.0, cov.AFFINE),
    (lambda x: x * x, cov.NONLINEAR),
    (lambda x: x / 3.0, cov.AFFINE),
    (lambda x: x / (x + 5), cov.NONLINEAR),
    (lambda x: x + 1.0, cov.AFFINE),
    (lambda x: x + x.flip(1), cov.SUM),
    (lambda x: x @ x.T, cov.NONLINEAR),
    (lambda x: F.linear(x, torch.ones(4, 3, dtype=torch.float64), torch.ones(4, dtype=torch.float64)), cov.AFFINE),
    (lambda x: torch.tanh(x), cov.NONLINEAR),
    (lambda x: x.abs(), cov.NONLINEAR),
])
def test_classify(fn, kind):
    assert cov.classify(_node(fn)) == kind


class Residual(nn.Module):
    """A residual block no canonizer knows: its ``+`` is a sum of two x-dependent tensors."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 3), nn.ReLU())

    def forward(self, x):
        return x + self.body(x)


class Hidden(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        return F.gelu(self.lin(x))


def _net(*layers):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 3), *layers, nn.Linear(3, 2)).double().eval()


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


X = torch.randn(2, 3, dtype=torch.float64)


def test_a_hidden_nonlinearity_is_named_by_its_module_path_and_hooks_come_off():
    net = _net(nn.Sequential(nn.ReLU(), Hidden()))
    with pytest.raises(workbench.UnsupportedModelError) as e:
        workbench.method("guided-backprop").attribute(net, X, target=0)
    msg = str(e.value)
    assert "layer '1.1' (Hidden), which runs Gelu inside a forward" in msg and "unsupported='gradient'" in msg
    assert _hooks(net) == 0


def test_lrp_refuses_an_uncanonized_residual_sum_but_gradient_methods_take_it():
    net = _net(nn.ReLU(), Residual())
    with pytest.raises(workbench.UnsupportedModelError, match=r"layer '2' \(Residual\), which runs Add"):
        workbench.method("lrp").attribute(net, X, target=0)
    a = workbench.method("deeplift").attribute(net, X, target=0, baseline=0.5 * X)
    delta = net(X)[:, 0] - net(0.5 * X)[:, 0]
    assert torch.allclose(a.sum(1), delta.detach(), rtol=1e-12, atol=1e-12)


def test_lrp_pass_convention_only_for_monotone_activations():
    m = workbench.method("lrp", unsupported="pass")
    m.attribute(_net(nn.Tanh()), X, target=0)
    assert m.last_conventions == ("layer '1' (Tanh): Pass rule by convention",)
    with pytest.raises(workbench.UnsupportedModelError, match="GELU"):
        m.attribute(_net(nn.GELU()), X, target=0)
    with pytest.raises(workbench.WorkbenchError, match="unsupported must be one of"):
        workbench.method("deeplift", unsupported="pass")


def test_exact_ig_refuses_a_traced_smooth_op_quadrature_does_not():
    net = _net(Hidden())
    with pytest.raises(workbench.UnsupportedModelError, match="integrated-gradients.*Gelu"):
        workbench.method("integrated-gradients", rule="exact").attribute(net, X, target=0, baseline=0 * X)
    a = workbench.method("integrated-gradients").attribute(net, X, target=0, baseline=0 * X)
    assert a.shape == X.shape


def test_in_place_and_reused_relu_modules_are_modelled():
    relu = nn.ReLU(inplace=True)
    net = _net(relu, nn.Linear(3, 3), relu)
    for name in ("guided-backprop", "deconvnet", "rectgrad", "lrp"):
        m = workbench.method(name)
        m.attribute(net.double(), X, target=1)
        assert m.last_conventions == ()


# -- data-dependent gates: a value of x reaching a node by a path autograd does not record ----------
class MaskReLU(nn.Module):
    """A nonlinearity written in ``forward`` from an affine-looking node and a gate computed from x."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, h):
        return self.fn(h)


def _assign(h):
    h[h < 0] = 0.0
    return h


def _no_grad_scale(h):
    with torch.no_grad():
        s = h.abs().amax(1, keepdim=True) + 1.0
    return h / s


GATES = {
    "h * (h > 0)": (lambda h: h * (h > 0), "Mul gated by gt"),
    "h * (h > 0).float()": (lambda h: h * (h > 0).float().to(h.dtype), "Mul gated by gt"),
    "torch.where(h > 0, h, 0)": (lambda h: torch.where(h > 0, h, 0.0), "Where gated by gt"),
    "in-place h.mul_(h > 0)": (lambda h: h.clone().mul_(h > 0), "Mul gated by gt"),
    "gather at argmax": (lambda h: h.gather(1, h.argmax(1, keepdim=True)).expand(-1, 3), "Gather gated by argmax"),
    "index at argmax": (lambda h: h[torch.arange(h.shape[0]), h.argmax(1)][:, None].expand(-1, 3), "Index gated by argmax"),
    "h * h.detach()": (lambda h: h * h.detach(), "Mul gated by detach"),
    "masked assignment h[h < 0] = 0": (lambda h: _assign(h.clone()), "IndexPut gated by lt"),
    "a no_grad normaliser": (_no_grad_scale, "Div gated by"),
}
AFFINE_FORMS = {
    "x * 2": lambda h: h * 2,
    "x + bias": lambda h: h + torch.tensor([0.5, -1.0, 2.0], dtype=h.dtype),
    "reshape / cat": lambda h: torch.cat([h, 2 * h], 1).reshape(h.shape[0], 2, 3).sum(1),
    "x + zeros_like(x)": lambda h: h + torch.zeros_like(h),
    "gather at constant indices": lambda h: h.gather(1, torch.tensor([[2, 0, 1]]).expand(h.shape[0], -1)),
    "a constant mask": lambda h: h * torch.tensor([1.0, 0.0, 1.0], dtype=h.dtype),
}


@pytest.mark.parametrize("method", ["guided-backprop", "deeplift", "integrated-gradients[rule='exact']", "full-gradients"])
@pytest.mark.parametrize("gate", list(GATES))
def test_a_data_dependent_gate_written_in_forward_is_refused_by_path_and_op(gate, method):
    fn, op = GATES[gate]
    net = _net(nn.ReLU(), MaskReLU(fn))
    m = workbench.method("integrated-gradients", rule="exact") if "exact" in method else workbench.method(method)
    kw = {"baseline": 0.5 * X} if m.uses_baseline else {}
    with pytest.raises(workbench.UnsupportedModelError) as e:
        m.attribute(net, X, target=0, **kw)
    assert f"layer '2' (MaskReLU, which runs {op}" in str(e.value)
    assert _hooks(net) == 0


@pytest.mark.parametrize("gate", list(GATES))
def test_a_gate_is_kept_as_plain_gradient_only_by_the_named_convention(gate):
    net = _net(nn.ReLU(), MaskReLU(GATES[gate][0]))
    m = workbench.method("guided-backprop", unsupported="gradient")
    m.attribute(net, X, target=0)
    assert len(m.last_conventions) == 1 and "gated by" in m.last_conventions[0] and "plain gradient" in m.last_conventions[0]


def test_the_gate_refusal_prevents_a_real_violation():
    """Under the plain-gradient convention DeepLift on h * (h > 0) misses summation-to-delta (the
    gate's switch is invisible to it); the same network with nn.ReLU in its place meets it."""
    torch.manual_seed(3)
    x, x0 = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    gated = _net(nn.ReLU(), nn.Linear(3, 3), MaskReLU(GATES["h * (h > 0)"][0]))
    plain = _net(nn.ReLU(), nn.Linear(3, 3), nn.ReLU())
    for net, holds in ((gated, False), (plain, True)):
        a = workbench.method("deeplift", unsupported="gradient").attribute(net, x, target=0, baseline=x0)
        delta = (net(x)[:, 0] - net(x0)[:, 0]).detach()
        assert torch.allclose(a.sum(1), delta, rtol=1e-12, atol=1e-12) == holds


@pytest.mark.parametrize("method", ["guided-backprop", "deeplift", "full-gradients"])
@pytest.mark.parametrize("form", list(AFFINE_FORMS))
def test_genuinely_affine_and_structural_ops_in_forward_are_still_accepted(form, method):
    net = _net(nn.ReLU(), MaskReLU(AFFINE_FORMS[form]))
    m = workbench.method(method)
    kw = {"baseline": 0.5 * X} if m.uses_baseline else {}
    m.attribute(net, X, target=0, **kw)
    assert getattr(m, "last_conventions", ()) == ()

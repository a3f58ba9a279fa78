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

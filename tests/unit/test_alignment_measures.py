"""Input-alignment measures (workbench.studies.alignment): cosine, the input signal of each method, the
layer-wise trace."""

import pytest
import torch

import workbench
from workbench.studies import alignment as A
from workbench.methods.modified_backprop import backward_through
from workbench.nets import spec as S
from workbench.rules import composite
from workbench.rules import rules as R
from workbench.nets import randomize as NR

CNN = S.NetSpec((2, 6, 6), (S.Conv2d(3, 3, padding=1), S.BatchNorm(), S.ReLU(inplace=True), S.MaxPool2d(2), S.Flatten(), S.Linear(5), S.ReLU(), S.Linear(3)))


def _case(seed=0):
    net = NR.isotropic_network(CNN, seed, bias=0.1)
    with torch.no_grad():  # a BatchNorm that matters: LRP folds it into the conv, the gradient does not
        g = torch.Generator().manual_seed(seed)
        net[1].weight.copy_(0.5 + torch.rand(3, generator=g, dtype=torch.float64))
        net[1].running_var.copy_(0.5 + torch.rand(3, generator=g, dtype=torch.float64))
        net[1].running_mean.copy_(0.3 * torch.randn(3, generator=g, dtype=torch.float64))
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return net, x, net(x).argmax(1)


def test_cosine_basics():
    x = torch.randn(3, 5, dtype=torch.float64)
    assert torch.allclose(A.cosine(2 * x, x), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(A.cosine(-x, x), -torch.ones(3, dtype=torch.float64))
    assert A.cosine(torch.zeros_like(x), x).abs().max() == 0
    assert (A.cosine(-x, x, absolute=True) > 0.999).all()
    assert torch.allclose(A.map_measure_bias(x), A.cosine(x * x, x))


def test_input_signal_of_each_method_family():
    net, x, t = _case()
    for name in ["gradient", "guided-backprop", "deconvnet"]:  # the map is the signal
        m = workbench.method(name)
        assert torch.equal(A.input_signal(m, net, x, target=t), m.attribute(net, x, target=t))
    rect = workbench.method("rectgrad")  # the map is signal * x
    assert torch.allclose(A.input_signal(rect, net, x, target=t) * x, rect.attribute(net, x, target=t), atol=1e-14)
    # LRP: x * signal is the relevance the composite gives with LRP-0 on the first layer
    for name in ["zplus", "dtd-zb", "epsilon-plus-flat"]:
        comp = composite(name)
        comp.first = R.LRPZero()
        r0 = backward_through(comp, net, x, t, seed="relevance")
        s = A.input_signal(workbench.method("lrp", composite=name), net, x, target=t)
        assert torch.allclose(s * x, r0, atol=1e-12 * (1 + r0.abs().max().item())), name
    with pytest.raises(workbench.InputError, match="rule engine"):
        A.input_signal(workbench.method("integrated-gradients"), net, x, target=t)


def test_layerwise_alignment_traces_every_linear_layer_and_ends_at_the_input_signal():
    net, x, t = _case(1)
    for name in ["gradient", "guided-backprop", "lrp[composite='zplus']"]:
        m = workbench.method(name)
        layers = A.layerwise_alignment(m, net, x, target=t)
        assert [l.name for l in layers] == ["7", "5", "0"]  # output layer first
        first = layers[-1]
        assert torch.allclose(torch.from_numpy(first.input_cosine), A.cosine(A.input_signal(m, net, x, target=t), x), atol=1e-12), name
        assert all(l.input_cosine.shape == (2,) for l in layers)
        assert torch.isnan(torch.from_numpy(first.prediction)).all()  # a convolution: no isotropic rows
        assert not torch.isnan(torch.from_numpy(layers[1].prediction)).any()


def test_study_arguments_are_checked():
    net, x, _ = _case()
    with pytest.raises(workbench.InputError, match="measure"):
        A.alignment_study([workbench.method("gradient")], lambda i: net, x, measure="both")
    with pytest.raises(workbench.InputError, match="networks"):
        A.alignment_study([workbench.method("gradient")], lambda i: net, x, networks=0)

"""Exact IG along max-pool ties: one linear piece per tie, the gradient by the named convention.

Independent computations: on a path where every window is tied, max_pool_ties="first" is IG of the same
network with the pool replaced by picking each window's first entry (a 1x1 pool of stride 2), and
max_pool_ties="split" is IG with the pool replaced by the window mean (an average pool); neither twin has a
tie, so its exact IG does not depend on the convention.
"""

import pytest
import torch
from torch import nn

import workbench
from workbench.core.errors import ConvergenceError, InputError
from workbench.paths.exact import exact_path_integral

F64 = torch.float64


def _net(pool: nn.Module) -> nn.Sequential:
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 1), pool, nn.ReLU(), nn.Flatten(), nn.Linear(3 * 2 * 2, 2)).to(F64)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64))
    return net.eval()


def _tied_path():
    """Per channel constant images: every 1x1-conv output is equal (bit for bit) across each window."""
    x = torch.tensor([1.5, -0.5], dtype=F64).view(1, 2, 1, 1).expand(1, 2, 4, 4).contiguous()
    b = torch.tensor([-0.25, 0.75], dtype=F64).view(1, 2, 1, 1).expand(1, 2, 4, 4).contiguous()
    return x, b


def _twin(net: nn.Sequential, replacement: nn.Module) -> nn.Sequential:
    twin = _net(replacement)
    twin.load_state_dict(net.state_dict())
    return twin


@pytest.mark.parametrize("tie, replacement", [("first", nn.MaxPool2d(1, stride=2)), ("split", nn.AvgPool2d(2))])
def test_a_tied_path_integrates_by_the_convention(tie, replacement):
    net = _net(nn.MaxPool2d(2))
    x, b = _tied_path()
    for t in (0, 1):
        exact = workbench.method("integrated-gradients", rule="exact", max_pool_ties=tie).integrate(net, x, target=t, baseline=b)
        twin = _twin(net, replacement)
        reference = workbench.method("integrated-gradients", rule="exact").attribute(twin, x, target=t, baseline=b)
        assert torch.allclose(exact.attribution, reference, atol=1e-12, rtol=1e-12), tie
        assert abs(exact.residual.item()) < 1e-12
        assert int(exact.gradient_evaluations[0]) <= 3  # tied windows add no region


def test_the_tie_convention_matters_and_first_is_pytorchs():
    net = _net(nn.MaxPool2d(2))
    x, b = _tied_path()
    first = workbench.method("integrated-gradients", rule="exact").attribute(net, x, target=0, baseline=b)
    split = workbench.method("integrated-gradients", rule="exact", max_pool_ties="split").attribute(net, x, target=0, baseline=b)
    assert (first - split).abs().max() > 1e-3  # the convention decides the map
    assert torch.allclose(first.sum(), split.sum(), atol=1e-12)  # not its sum
    gl = workbench.method("integrated-gradients", tolerance=None, steps=64).attribute(net, x, target=0, baseline=b)
    # bit-equal ties: PyTorch's max pool routes the gradient to the first maximum
    off = first == 0  # the window entries after the first
    assert bool((gl[off] == 0).all()) and bool((split[off] != 0).any())


def test_round_off_ties_are_one_piece():
    """Window entries 1 + c_j s with c_j ~ 1e-33 round to the same value but have different slopes:
    before the fix every probe sat 'on a kink' and the walk gave up at max_regions."""
    net = nn.Sequential(nn.Conv2d(1, 1, 2, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 1)).to(F64).eval()
    with torch.no_grad():
        net[0].weight.fill_(3.0765618550056627e-33)
        net[0].bias.fill_(1.0)
        net[4].weight.fill_(1.0)
        net[4].bias.fill_(1.0)
    x, b = torch.ones(1, 1, 3, 3, dtype=F64), torch.zeros(1, 1, 3, 3, dtype=F64)
    r = exact_path_integral(net, x, b, torch.tensor([0]), max_regions=50)
    assert int(r.regions[0]) == 1
    assert (r.mean_gradient - 3.0765618550056627e-33).abs().max() < 1e-40


def test_a_real_crossing_is_still_a_kink():
    """Both ways: two window entries that cross at s = 1/2 (not a tie) give two regions, integrated exactly."""
    net = nn.Sequential(nn.MaxPool1d(2), nn.Flatten(), nn.Linear(1, 1)).to(F64).eval()
    with torch.no_grad():
        net[2].weight.fill_(1.0)
        net[2].bias.fill_(0.0)
    x = torch.tensor([[[1.0, 0.0]]], dtype=F64)
    b = torch.tensor([[[0.0, 1.0]]], dtype=F64)
    r = exact_path_integral(net, x, b, torch.tensor([0]))
    assert int(r.regions[0]) == 2
    assert torch.allclose(r.mean_gradient, torch.tensor([[[0.5, 0.5]]], dtype=F64), atol=1e-15)
    assert torch.allclose(r.breakpoints[0], torch.tensor([0.5], dtype=F64))


def test_tie_and_max_regions_are_checked_and_explained():
    with pytest.raises(InputError, match="max_pool_ties convention"):
        workbench.method("integrated-gradients", rule="exact", max_pool_ties="last")
    with pytest.raises(InputError, match="rule='exact' only"):
        workbench.method("integrated-gradients", max_pool_ties="split")
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 1)).to(F64).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64))
    x, b = torch.randn(1, 4, generator=g, dtype=F64) * 3, torch.zeros(1, 4, dtype=F64)
    with pytest.raises(ConvergenceError, match=r"max_regions=3 .*integrated in .* s.*max_regions=30.*quadrature"):
        workbench.method("integrated-gradients", rule="exact", max_regions=3).integrate(net, x, target=0, baseline=b)

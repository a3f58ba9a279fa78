"""DeepLift summation-to-delta on every pool torch ships, with ties, under both tie conventions.

Values are drawn on a coarse dyadic grid so that windows tie at x, at the baseline, or both; every
max pool's parameters (kernel, stride, padding, dilation, ceil_mode; adaptive output sizes) are
drawn valid by construction. sum_i A_i = F(x) - F(x0) must hold to round-off.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, strategies as st
from torch import nn

import workbench
from workbench.rules import pooling as P

POOLS = [t.__name__ for t in P.MAX_POOLS] + ["AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d"]


@st.composite
def pool_cases(draw, name: str):
    d = int(name[-2])
    size = draw(st.integers(2, 5 if d < 3 else 3))
    if "Adaptive" in name:
        out = tuple(draw(st.integers(1, size)) for _ in range(d))
        pool = getattr(nn, name)(out if d > 1 else out[0])
    else:
        k = draw(st.integers(1, size))
        stride = draw(st.integers(1, k))
        pad = draw(st.integers(0, k // 2))
        kw: dict = dict(kernel_size=k, stride=stride, padding=pad, ceil_mode=draw(st.booleans()))
        if "Max" in name:
            dil = draw(st.integers(1, 2))
            if dil * (k - 1) + 1 > size + 2 * pad:
                dil = 1
            kw["dilation"] = dil
        pool = getattr(nn, name)(**kw)
    c = draw(st.integers(1, 2))
    shape = (c,) + (size,) * d
    units = c * size ** d
    grid = st.integers(-4, 4).map(lambda v: v / 2)
    x = torch.tensor([draw(st.lists(grid, min_size=units, max_size=units)) for _ in range(2)], dtype=torch.float64)
    x0 = torch.tensor([draw(st.lists(grid, min_size=units, max_size=units)) for _ in range(2)], dtype=torch.float64)
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    body = nn.Sequential(nn.Unflatten(1, shape), pool, nn.Flatten()).double()
    with torch.no_grad():
        width = body(x[:1]).shape[1]
    head = nn.Linear(width, 2).double()
    with torch.no_grad():
        head.weight.copy_(torch.randint(-4, 5, head.weight.shape, generator=g).double() / 2)
        head.bias.copy_(torch.randint(-4, 5, head.bias.shape, generator=g).double() / 2)
    return nn.Sequential(body, nn.ReLU(), head).eval(), x, x0


def _delta_residual(net, x, x0, ties="first") -> float:
    a = workbench.method("deeplift", max_pool_ties=ties).attribute(net, x, target=1, baseline=x0)
    with torch.no_grad():
        delta = net(x)[:, 1] - net(x0)[:, 1]
    return float(((a.sum(1) - delta).abs() / (1 + delta.abs() + (a.abs().sum(1)))).max())


@pytest.mark.parametrize("name", POOLS)
@given(data=st.data())
def test_summation_to_delta_on_every_pool(name, data):
    net, x, x0 = data.draw(pool_cases(name))
    ties = data.draw(st.sampled_from(P.MAX_POOL_TIES))
    assert _delta_residual(net, x, x0, ties) <= 1e-12


def test_the_issue_example_sums_to_delta():
    """MaxPool1d(4) over x = (1, 1, 1, 1) against (1, 2, 3, 9): F(x) - F(x0) = -8 (the plain
    gradient gave 0)."""
    net = nn.Sequential(nn.Unflatten(1, (1, 4)), nn.MaxPool1d(4), nn.Flatten()).double().eval()
    x = torch.ones(1, 4, dtype=torch.float64)
    x0 = torch.tensor([[1.0, 2.0, 3.0, 9.0]], dtype=torch.float64)
    a = workbench.method("deeplift").attribute(net, x, target=0, baseline=x0)
    assert float(a.sum()) == -8.0
    # the plain gradient as multiplier (the old behaviour) gives 0: the winner at x did not move
    grad = workbench.method("gradient").attribute(net, x, target=0)
    assert float(((x - x0) * grad).sum()) == 0.0


def test_tie_conventions_differ_and_both_sum_to_delta():
    net = nn.Sequential(nn.Unflatten(1, (1, 4)), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(2, 1)).double().eval()
    with torch.no_grad():
        net[3].weight.fill_(1.0)
        net[3].bias.fill_(0.5)
    x = torch.tensor([[2.0, 2.0, 1.0, 1.0]], dtype=torch.float64)
    first = workbench.method("guided-backprop").attribute(net, x, target=0)
    split = workbench.method("guided-backprop", max_pool_ties="split").attribute(net, x, target=0)
    assert first.tolist() == [[1.0, 0.0, 1.0, 0.0]] and split.tolist() == [[0.5, 0.5, 0.5, 0.5]]
    x0 = torch.zeros_like(x)
    assert _delta_residual(nn.Sequential(net, nn.Linear(1, 2).double()).eval(), x, x0, "split") <= 1e-12
    with pytest.raises(workbench.WorkbenchError, match="max_pool_ties"):
        workbench.method("deeplift", max_pool_ties="last")

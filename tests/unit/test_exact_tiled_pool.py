"""Exact IG's max-pool kink finder on tiling windows (kernel = stride: a view of the input) equals the
general window path (unfolded copies), breakpoints and map, under both tie conventions, also where
ReLU-dead windows and dyadic inputs make exact and round-off ties."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st

import workbench.paths.exact as ep
from workbench.paths.exact import exact_path_integral
from workbench.nets import spec as S

F64 = torch.float64


@st.composite
def pooled_cases(draw):
    c = draw(st.integers(1, 3))
    k = draw(st.sampled_from([2, 3]))
    size = draw(st.integers(4, 9))
    layers = [S.Conv2d(c, 3, padding=1), S.ReLU(), S.MaxPool2d(k)]
    if size // k >= 2 and draw(st.booleans()):
        layers += [S.Conv2d(c, 1), S.ReLU(), S.MaxPool2d(2)]
    layers += [S.Flatten(), S.Linear(draw(st.integers(1, 3)))]
    spec = S.NetSpec((draw(st.integers(1, 2)), size, size), tuple(layers))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    net = S.build(spec, dtype=F64, generator=g)
    n = draw(st.integers(1, 2))
    if draw(st.booleans()):  # dyadic: exact kinks and ties
        x = torch.randint(-4, 5, (n,) + spec.input_shape, generator=g).to(F64) / 4
        b = torch.randint(-4, 5, x.shape, generator=g).to(F64) / 4
    else:
        x, b = 3 * torch.randn((n,) + spec.input_shape, generator=g, dtype=F64), torch.randn((n,) + spec.input_shape, generator=g, dtype=F64)
    return net, x, b, torch.randint(spec.outputs, (n,), generator=g)


def _general(monkeypatch):
    monkeypatch.setattr(ep, "_tiling", lambda module, z: None)


@settings(max_examples=40)
@given(pooled_cases(), st.sampled_from(ep.TIES))
def test_tiled_windows_give_the_general_result(case, tie):
    net, x, b, t = case
    fast = exact_path_integral(net, x, b, t, max_pool_ties=tie)
    with pytest.MonkeyPatch.context() as mp:
        _general(mp)
        slow = exact_path_integral(net, x, b, t, max_pool_ties=tie)
    torch.testing.assert_close(fast.mean_gradient, slow.mean_gradient, rtol=1e-9, atol=1e-12)
    for f, s in zip(fast.breakpoints, slow.breakpoints):
        torch.testing.assert_close(f, s, rtol=0, atol=1e-9)


def test_a_wrong_tile_crossing_is_caught(monkeypatch):
    """The comparison has power: a tiled finder that misses the pool's crossings fails the self-check
    or the comparison."""
    g = torch.Generator().manual_seed(3)
    net = S.build(S.NetSpec((1, 6, 6), (S.Conv2d(2, 3, padding=1), S.ReLU(), S.MaxPool2d(2), S.Flatten(), S.Linear(1))), dtype=F64, generator=g)
    x, b = 3 * torch.randn(1, 1, 6, 6, generator=g, dtype=F64), torch.randn(1, 1, 6, 6, generator=g, dtype=F64)
    t = torch.zeros(1, dtype=torch.long)
    good = exact_path_integral(net, x, b, t)
    monkeypatch.setattr(ep.RegionTracker, "_tiled_pool", lambda self, module, z, dz: None)
    try:
        bad = exact_path_integral(net, x, b, t)
    except ep.UnsupportedModelError:
        return
    assert not torch.allclose(bad.mean_gradient, good.mean_gradient, rtol=1e-9, atol=1e-12)

"""Properties of deletion / insertion and pixel perturbation on drawn patch fixtures.

On a ``PatchFixture`` the class-0 logit is a sum of per-pixel terms, so replacing pixel p by the
canvas changes it by exactly delta_p (``fixture.oracle``). Then, for every map A:

* the oracle's deletion curve (delta, most salient first) is pointwise the lowest, the anti-oracle's
  (-delta) pointwise the highest, A's in between -- and the reverse for insertion;
* where every delta_p >= 0 (the patch is brighter than the canvas), every deletion curve is
  non-increasing and every insertion curve non-decreasing;
* removing the k% least salient pixels changes the output least for the oracle, most for the
  anti-oracle;
* the curves start and end at the image's and the canvas's scores.
"""

import torch
from hypothesis import given
from hypothesis import strategies as st

from workbench.metrics import BLURRED_CANVAS, Patch, PatchFixture, deletion_insertion, pixel_perturbation
from workbench.metrics.scores import class_scores

TOL = 1e-12




@st.composite
def fixtures(draw):
    """A patch fixture (patch side <= a quarter of the image side) and one image for it."""
    size = draw(st.integers(12, 20))
    h, w = draw(st.integers(1, size // 4)), draw(st.integers(1, size // 4))
    patch = Patch(draw(st.integers(0, size - h)), draw(st.integers(0, size - w)), h, w)
    cap = draw(st.one_of(st.none(), st.floats(0.3, 0.7)))
    fx = PatchFixture((size, size), patch, channels=draw(st.sampled_from([1, 3])), cap=cap,
                      gain=draw(st.floats(2.0, 10.0)), offset=draw(st.floats(-6.0, 0.0)))
    x = fx.image(torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1))))
    return fx, x


maps = st.integers(0, 2**31 - 1).map(lambda s: torch.Generator().manual_seed(s))


def _between(low, mid, high):
    return bool(torch.all(low <= mid + TOL) and torch.all(mid <= high + TOL))


@given(fixtures(), maps, st.sampled_from([None, 1, 3, 17]))
def test_oracle_bounds_every_map_and_curves_are_monotone(case, gen, step):
    fx, x = case
    net = fx.model()
    canvas = BLURRED_CANVAS(x)
    delta = fx.oracle(x, canvas)
    assert torch.all(delta >= 0), "strategy must draw patches brighter than their canvas"
    other = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    (d_o, i_o), (d_a, i_a), (d, i) = (deletion_insertion(net, x, m, target=0, step=step) for m in (delta, -delta, other))
    assert _between(d_o.scores, d.scores, d_a.scores)
    assert _between(-i_o.scores, -i.scores, -i_a.scores)
    assert d_o.area <= d.area + TOL and d.area <= d_a.area + TOL
    for curve in (d_o, d_a, d):
        assert torch.all(curve.scores[:, 1:] <= curve.scores[:, :-1] + TOL)
    for curve in (i_o, i_a, i):
        assert torch.all(curve.scores[:, 1:] >= curve.scores[:, :-1] - TOL)
    f_x = class_scores(net, x, torch.zeros(1, dtype=torch.long))
    f_c = class_scores(net, canvas, torch.zeros(1, dtype=torch.long))
    assert torch.allclose(d.scores[:, 0], f_x) and torch.allclose(d.scores[:, -1], f_c)
    assert torch.allclose(i.scores[:, 0], f_c) and torch.allclose(i.scores[:, -1], f_x)


@given(fixtures(), maps, st.lists(st.floats(0.0, 100.0), min_size=1, max_size=4), st.sampled_from([0.0, 0.05]))
def test_pixel_perturbation_is_least_for_the_oracle(case, gen, percentages, value):
    fx, x = case
    net = fx.model()
    delta = fx.oracle(x, torch.full_like(x, value))
    other = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    low, mid, high = (pixel_perturbation(net, x, m, target=0, percentages=percentages, replacement=value).change for m in (delta, other, -delta))
    assert _between(low, mid, high)
    assert torch.all(low[:, [p == 0 for p in percentages]] == 0)

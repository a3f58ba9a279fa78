"""Deletion / insertion curves and pixel perturbation: definitions, conventions, bad input, and use on methods.

The patch fixture (``workbench.metrics.PatchFixture``) has a known perfect map, so the metrics are
checked against exact answers; each ordering check is also run on a deliberately broken metric
(least salient first) to show that it catches one.
"""

import copy

import pytest
import torch
from torch import nn

import workbench
from workbench.metrics import (
    BLURRED_CANVAS,
    PatchFixture,
    deletion_curve,
    deletion_insertion,
    insertion_curve,
    pixel_perturbation,
)
from workbench.metrics import ranking
from workbench.metrics.scores import class_scores




FX = PatchFixture()


def _images(n=3, seed=0, fx=FX):
    g = torch.Generator().manual_seed(seed)
    return torch.cat([fx.image(g) for _ in range(n)])


def _fingerprint(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, [m.training for m in model.modules()], [dict(m._forward_hooks) for m in model.modules()]


# -- definitions ------------------------------------------------------------------------------
def test_curve_endpoints_fractions_and_trapezoid_area():
    net, x = FX.model(), _images()
    sal = torch.rand(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    d, i = deletion_insertion(net, x, sal, target=0, step=7)
    canvas = BLURRED_CANVAS(x)
    f_x = class_scores(net, x, torch.zeros(3, dtype=torch.long)).detach()
    f_c = class_scores(net, canvas, torch.zeros(3, dtype=torch.long)).detach()
    assert torch.allclose(d.scores[:, 0], f_x) and torch.allclose(d.scores[:, -1], f_c)
    assert torch.allclose(i.scores[:, 0], f_c) and torch.allclose(i.scores[:, -1], f_x)
    p = 16 * 16
    assert d.fractions[0] == 0 and d.fractions[-1] == 1 and len(d.fractions) == -(-p // 7) + 1
    # the area is the trapezoid rule over the whole curve (not the score at one fraction)
    fr, sc = d.fractions.numpy(), d.scores.numpy()
    manual = [sum((fr[j + 1] - fr[j]) * (sc[k, j] + sc[k, j + 1]) / 2 for j in range(len(fr) - 1)) for k in range(3)]
    assert torch.allclose(d.area, torch.tensor(manual, dtype=d.area.dtype))
    # default step: the reference's 200 points (ceil(256 / 200) = 2 pixels per step)
    assert len(deletion_curve(net, x, sal, target=0).fractions) == 129


def test_deletion_removes_exactly_the_most_salient_pixels():
    # logit score of a model that sums its input: each deleted pixel moves the logit by canvas - x
    class Sum(nn.Module):
        def forward(self, z):
            s = z.flatten(1).sum(1, keepdim=True)
            return torch.cat([s, -s], 1)

    x = torch.rand(2, 3, 5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sal = torch.randn(2, 1, 5, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    d = deletion_curve(Sum().eval(), x, sal, target=0, canvas=0.0, step=1, score="logit")
    per_pixel = x.sum(1).flatten(1)  # (2, 20)
    order = sal.flatten(1).argsort(1, descending=True)
    expected = per_pixel.sum(1, keepdim=True) - torch.cat([torch.zeros(2, 1, dtype=x.dtype), per_pixel.gather(1, order).cumsum(1)], 1)
    assert torch.allclose(d.scores, expected)
    i = insertion_curve(Sum().eval(), x, sal, target=0, canvas=0.0, step=1, score="logit")
    assert torch.allclose(i.scores, per_pixel.sum(1, keepdim=True) - expected)


def test_pixel_perturbation_removes_the_least_salient_pixels():
    class Sum(nn.Module):
        def forward(self, z):
            s = z.flatten(1).sum(1, keepdim=True)
            return torch.cat([s, -s], 1)

    x = 0.5 + torch.rand(2, 1, 10, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sal = torch.randn(2, 1, 10, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    r = pixel_perturbation(Sum().eval(), x, sal, target=0, percentages=(0, 10, 35, 100), replacement=0.25, score="logit")
    per_pixel = x.flatten(1)
    ascending = per_pixel.gather(1, sal.flatten(1).argsort(1))
    for j, k in enumerate((0, 10, 35, 100)):
        removed = ascending[:, :k].sum(1) - 0.25 * k  # replaced by 0.25
        assert torch.allclose(r.perturbed[:, j], per_pixel.sum(1) - removed)
    assert torch.equal(r.removed, torch.tensor([0, 10, 35, 100]))
    assert torch.all(r.change[:, 0] == 0)
    assert torch.allclose(r.change, (r.perturbed - r.original[:, None]).abs() / r.original.abs()[:, None])


def test_batched_equals_one_by_one_and_ties_are_broken_at_random_not_in_raster_order():
    net, x = FX.model(), _images(3)
    sal = FX.oracle(x, BLURRED_CANVAS(x))
    d = deletion_curve(net, x, sal, target=[0, 0, 0])
    single = torch.cat([deletion_curve(net, x[i : i + 1], sal[i : i + 1], target=0).scores for i in range(3)])
    assert torch.allclose(d.scores, single, atol=1e-12)
    # chunking the images bounds memory and changes no value
    assert torch.allclose(deletion_curve(net, x, sal, target=0, chunk_size=5).scores, d.scores, atol=1e-12)
    pct = (1, 5, 10, 20, 50, 70, 90)
    assert torch.allclose(pixel_perturbation(net, x, sal, target=0, percentages=pct, chunk_size=4).perturbed,
                          pixel_perturbation(net, x, sal, target=0, percentages=pct).perturbed, atol=1e-12)
    flat = torch.zeros(1, 64)
    ranks = ranking.salience_ranks(flat, seed=0)
    assert not torch.equal(ranks[0], torch.arange(64))  # not raster order
    assert torch.equal(ranks, ranking.salience_ranks(flat, seed=0))  # reproducible
    assert not torch.equal(ranks, ranking.salience_ranks(flat, seed=1))


def test_channel_reduction_conventions():
    x = torch.zeros(1, 2, 1, 2)
    sal = torch.tensor([[[[3.0, 1.0]], [[-3.0, 1.0]]]])  # pixel 0: +3 and -3; pixel 1: +1 and +1
    assert ranking.pixel_saliency(sal, x, "sum").tolist() == [[0.0, 2.0]]
    assert ranking.pixel_saliency(sal, x, "abs-sum").tolist() == [[6.0, 2.0]]
    assert ranking.pixel_saliency(sal, x, "max-abs").tolist() == [[3.0, 1.0]]


# -- the orderings, and a broken metric they catch -----------------------------------------------
def _ordered(oracle, other, anti, tol=1e-12):
    """Pointwise oracle <= other <= anti (deletion scores; insertion scores reversed by the caller)."""
    return bool(torch.all(oracle <= other + tol) and torch.all(other <= anti + tol))


def _areas_for(net, x, maps, **kw):
    return {k: deletion_insertion(net, x, m, target=0, **kw) for k, m in maps.items()}


def test_oracle_random_anti_oracle_order_on_the_patch_fixture(monkeypatch):
    net, x = FX.model(), _images(4)
    oracle = FX.oracle(x, BLURRED_CANVAS(x))
    rnd = torch.rand(oracle.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    maps = {"oracle": oracle, "random": rnd, "anti": -oracle}
    c = _areas_for(net, x, maps)
    assert _ordered(c["oracle"][0].scores, c["random"][0].scores, c["anti"][0].scores)
    assert _ordered(-c["oracle"][1].scores, -c["random"][1].scores, -c["anti"][1].scores)
    area = {k: (v[0].area, v[1].area) for k, v in c.items()}
    assert torch.all(area["oracle"][0] < area["random"][0]) and torch.all(area["random"][0] < area["anti"][0])
    assert torch.all(area["oracle"][1] > area["random"][1]) and torch.all(area["random"][1] > area["anti"][1])
    pp = {k: pixel_perturbation(net, x, m, target=0, percentages=(5, 20, 50, 80)).change for k, m in
          {**maps, "oracle": FX.oracle(x, torch.zeros_like(x)), "anti": -FX.oracle(x, torch.zeros_like(x))}.items()}
    assert _ordered(pp["oracle"], pp["random"], pp["anti"]) and torch.all(pp["oracle"] == 0)
    # a broken metric that deletes the least salient pixels first breaks the ordering
    real = ranking.salience_ranks
    monkeypatch.setattr("workbench.metrics.deletion.salience_ranks", lambda s, seed=0: real(-s, seed=seed))
    broken = _areas_for(net, x, maps)
    assert not _ordered(broken["oracle"][0].scores, broken["random"][0].scores, broken["anti"][0].scores)


def test_curves_are_monotone_where_every_pixel_only_lowers_the_score():
    net, x = FX.model(), _images(3, seed=5)
    canvas = BLURRED_CANVAS(x)
    assert torch.all(FX.oracle(x, canvas) >= 0)  # the construction's precondition
    for seed in range(3):
        sal = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
        d, i = deletion_insertion(net, x, sal, target=0)
        assert torch.all(d.scores[:, 1:] <= d.scores[:, :-1] + 1e-15)
        assert torch.all(i.scores[:, 1:] >= i.scores[:, :-1] - 1e-15)
    # an image whose patch is darker than the canvas in places is not monotone: the check can fail
    dark = x.clone()
    dark[:, :, FX.patch.top, FX.patch.left] = 0.0
    d = deletion_curve(net, dark, torch.randn(dark.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype), target=0, step=1)
    assert not torch.all(d.scores[:, 1:] <= d.scores[:, :-1] + 1e-15)


# -- the metrics on maps of several methods ------------------------------------------------------
METHODS = {
    "igos": "igos[resolution='full',iterations=8,steps=10,tv=2.0]",
    "gradient": "gradient",
    "integrated-gradients": "integrated-gradients[baseline='blurred',tolerance=None,steps=32]",
    "fullgrad": "fullgrad",
    "gradcam": "gradcam",
}


def test_metrics_on_the_maps_of_several_methods():
    net, x = FX.model(), _images(3)
    canvas = BLURRED_CANVAS(x)
    oracle = FX.oracle(x, canvas)
    bounds = deletion_insertion(net, x, oracle, target=0), deletion_insertion(net, x, -oracle, target=0)
    zero_oracle = FX.oracle(x, torch.zeros_like(x))
    pp_bounds = [pixel_perturbation(net, x, m, target=0).change for m in (zero_oracle, -zero_oracle)]
    areas = {}
    for name, spec in METHODS.items():
        before = _fingerprint(net)
        a = workbench.method(spec).attribute(net, x, target=0)
        reduction = "abs-sum" if name == "gradient" else "sum"
        d, i = deletion_insertion(net, x, a, target=0, channel_reduction=reduction)
        pp = pixel_perturbation(net, x, a, target=0, channel_reduction=reduction)
        assert d.scores.shape == i.scores.shape == (3, 129) and pp.change.shape == (3, 5)
        # every map lies between the perfect map and its reverse, whichever method made it
        assert _ordered(bounds[0][0].scores, d.scores, bounds[1][0].scores)
        assert _ordered(-bounds[0][1].scores, -i.scores, -bounds[1][1].scores)
        assert _ordered(pp_bounds[0], pp.change, pp_bounds[1])
        areas[name] = d.area
        after = _fingerprint(net)
        assert all(torch.equal(before[0][k], after[0][k]) for k in before[0]) and before[1:] == after[1:]
    # the patch saturates: the gradient is zero on it, I-GOS and blurred-baseline IG find it
    assert torch.all(areas["igos"] < areas["gradient"])
    assert torch.all(areas["integrated-gradients"] < areas["gradient"])


# -- bad input ------------------------------------------------------------------------------------
BAD = {
    "non-image input": (lambda x, s: (x.flatten(1), s), {}, "image batch"),
    "map of the wrong size": (lambda x, s: (x, s[..., :8]), {}, "does not fit"),
    "map of the wrong batch": (lambda x, s: (x, s[:1]), {}, "does not fit"),
    "NaN map": (lambda x, s: (x, s * float("nan")), {}, "NaN"),
    "NaN image": (lambda x, s: (x * float("nan"), s), {}, "NaN"),
    "target out of range": (lambda x, s: (x, s), {"target": 2}, "out of range"),
    "negative target": (lambda x, s: (x, s), {"target": -1}, "out of range"),
    "step zero": (lambda x, s: (x, s), {"step": 0}, "step"),
    "step too large": (lambda x, s: (x, s), {"step": 10_000}, "larger than"),
    "unknown score": (lambda x, s: (x, s), {"score": "entropy"}, "unknown score"),
    "unknown reduction": (lambda x, s: (x, s), {"channel_reduction": "median"}, "channel_reduction"),
    "canvas of the wrong shape": (lambda x, s: (x, s), {"canvas": torch.zeros(1, 1, 3, 3, dtype=torch.float64)}, "broadcast"),
}


@pytest.mark.parametrize("bad", list(BAD))
def test_bad_input_is_named_and_the_model_is_unchanged(bad):
    net, x = FX.model(), _images(2)
    make, kwargs, words = BAD[bad]
    xi, si = make(x, torch.rand(x.shape, dtype=x.dtype))
    before = _fingerprint(net)
    with pytest.raises(workbench.WorkbenchError, match=words):
        deletion_insertion(net, xi, si, **{"target": 0, **kwargs})
    after = _fingerprint(net)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0]) and before[1:] == after[1:]


def test_pixel_perturbation_bad_percentages_and_training_mode():
    net, x = FX.model(), _images(1)
    for pct in ([], [-1.0], [150.0], [float("nan")]):
        with pytest.raises(workbench.InputError, match="percentages"):
            pixel_perturbation(net, x, x, target=0, percentages=pct)
    train = copy.deepcopy(net).train()
    train.noise = torch.nn.Dropout()  # a module that behaves differently in training
    with pytest.raises(workbench.ModelError, match="training mode.*noise \\(Dropout\\)"):
        deletion_curve(train, x, x, target=0)


def test_removing_no_pixel_is_no_change_whatever_the_batch_round_off():
    """A model whose round-off depends on the batch size (here: it adds 1e-12 per extra sample, a
    stand-in for BLAS kernels chosen by batch size) still shows exactly 0 change at 0% removed,
    also with the percentage given twice (found by the dev profile: percentages=[0.0, 0.0])."""
    from workbench.metrics import pixel_perturbation

    class BatchDependent(torch.nn.Module):
        def forward(self, x):
            s = x.flatten(1).sum(1, keepdim=True)
            return torch.cat([s, -s], 1) + 1e-12 * (x.shape[0] - 1)

    x = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.5
    r = pixel_perturbation(BatchDependent().eval(), x, x, target=0, percentages=[0.0, 0.0, 50.0], score="logit")
    assert torch.equal(r.change[:, :2], torch.zeros(1, 2, dtype=r.change.dtype)) and bool(r.change[0, 2] > 0)

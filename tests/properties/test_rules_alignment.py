"""Input alignment (Zheng, Sang & Xu 2025) and randomization sanity checks, at small scale."""

import torch

import workbench
from workbench import alignment as A
from workbench.nets import spec as S
from workbench.rules import rules as R
from workbench.rules.composites import elementwise

SPEC = S.NetSpec(
    (3, 16, 16),
    (S.Conv2d(8, 3, padding=1), S.ReLU(), S.Conv2d(8, 3, padding=1), S.ReLU(), S.MaxPool2d(2),
     S.Conv2d(16, 3, padding=1), S.ReLU(), S.MaxPool2d(2), S.Flatten(), S.Linear(32), S.ReLU(), S.Linear(10)),
)


def test_cosine_basics():
    x = torch.randn(3, 5, dtype=torch.float64)
    assert torch.allclose(A.cosine(2 * x, x), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(A.cosine(-x, x), -torch.ones(3, dtype=torch.float64))
    assert A.cosine(torch.zeros_like(x), x).abs().max() == 0
    assert (A.cosine(-x, x, absolute=True) > 0.999).all()


def test_guided_backprop_is_far_more_aligned_with_the_input_than_the_gradient():
    x = A.natural_image(16)
    methods = [workbench.method("gradient"), workbench.method("guided-backprop")]
    r = A.alignment_study(methods, lambda i: A.isotropic_network(SPEC, i), x, networks=12)
    assert r.medians["guided-backprop"] > r.medians["gradient"] + 0.2, r.table()
    assert r.wilcoxon_p["guided-backprop"] < 1e-2 and r.sign_p["guided-backprop"] < 1e-2, r.table()


def test_layerwise_alignment_of_gbp_exceeds_the_gradient_at_every_relu():
    x = A.natural_image(16)
    net = A.isotropic_network(SPEC, 0)
    gbp = dict(A.layerwise_cosine(elementwise(R.GuidedBackprop()), net, x, 0))
    grad = dict(A.layerwise_cosine(elementwise(R.Gradient()), net, x, 0))
    assert gbp.keys() == grad.keys() and len(gbp) == 4
    assert all(gbp[k] > grad[k] for k in gbp), (gbp, grad)


def test_cascading_randomization_leaves_gbp_close_and_changes_the_gradient():
    x = A.natural_image(16)
    net = A.isotropic_network(SPEC, 1)
    gbp = A.cascading_randomization(workbench.method("guided-backprop"), net, x, 0)
    grad = A.cascading_randomization(workbench.method("gradient"), net, x, 0)
    assert [n for n, _ in gbp] == ["11", "9", "5", "2", "0"]  # top layer first
    assert gbp[0][1]["spearman"] > 0.5 > grad[0][1]["spearman"], (gbp[0], grad[0])
    ind = A.independent_randomization(workbench.method("gradient"), net, x, 0)
    assert len(ind) == 5 and all({"spearman", "spearman_abs", "ssim"} <= s.keys() for _, s in ind)

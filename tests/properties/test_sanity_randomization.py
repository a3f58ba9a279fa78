"""Model-randomization sanity checks (Adebayo et al. 2018) and the alignment theory's prediction:
under cascading randomization the negative-filtering methods' maps stay close to the trained
model's maps while the gradient's do not."""


import numpy as np
import pytest
import torch
from torch import nn

import workbench
from workbench.studies import alignment as A
from workbench.studies import sanity as SN
from workbench.nets import spec as S
from workbench.nets import randomize as NR

NFR = ["guided-backprop", "rectgrad", "lrp[composite='zplus']"]


def _pooled(results):
    """Concatenate per-image scores of several RandomizationResults (same methods and layers)."""
    first = results[0]
    scores = {lab: {m: np.concatenate([r.scores[lab][m] for r in results]) for m in first.measures} for lab in first.methods}
    return SN.RandomizationResult(first.mode, first.layers, scores, first.layer_types)


def test_cascading_randomization_leaves_negative_filtering_maps_close_and_changes_the_gradient(trained_digits, tmp_path):
    nets, x = trained_digits
    methods = [workbench.method(n) for n in ["gradient", *NFR]]
    r = _pooled([SN.randomization_test(methods, net, x, mode="cascading", seed=i) for i, net in enumerate(nets)])
    assert r.layers == ["8", "3", "0"] and r.layer_types == ("Linear", "Conv2d", "Conv2d")  # top layer first
    assert set(r.measures) == {"spearman_abs", "spearman", "ssim", "hog"}
    top = 0  # the output layer randomized
    assert r.medians("gradient", "spearman_abs")[top] < 0.4, r.table("spearman_abs")
    for label in ["guided-backprop", "rectgrad", "lrp[composite=zplus]"]:
        diff, p, n = r.contrast(label, "gradient", "spearman_abs", top)
        assert n == 40 and diff > 0.3 and p < 1e-6, (label, diff, p, r.table("spearman_abs"))
        assert r.contrast(label, "gradient", "ssim", top)[1] < 1e-4, r.table("ssim")
    png = SN.plot_randomization(r, tmp_path / "cascading.png", title="digits CNNs")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_independent_randomization_changes_the_gradient_at_every_layer(trained_digits):
    nets, x = trained_digits
    r = SN.randomization_test([workbench.method("gradient"), workbench.method("guided-backprop")], nets[0], x, mode="independent", seed=3)
    assert len(r.layers) == 3
    assert (r.medians("gradient", "spearman_abs") < 0.5).all(), r.table("spearman_abs")
    assert r.contrast("guided-backprop", "gradient", "spearman_abs", 0)[1] < 1e-3, r.table("spearman_abs")


def test_a_method_that_ignores_the_model_passes_nothing_and_one_that_reads_it_fails():
    """The check itself: a map that is the input (edge detector) never changes; the gradient does."""
    from workbench.methods.base import CallableMethod

    spec = S.NetSpec((1, 8, 8), (S.Conv2d(4, 3, padding=1), S.ReLU(), S.Flatten(), S.Linear(3)))
    net = NR.isotropic_network(spec, 0)
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    edge = CallableMethod(lambda model, x, target, baseline: x.clone(), name="input")
    r = SN.randomization_test([edge, workbench.method("gradient")], net, x, mode="cascading")
    for m in r.measures:
        assert np.allclose(r.scores["input"][m], 1.0), m
    assert r.medians("gradient", "spearman_abs")[-1] < 0.6


def test_randomized_models_change_exactly_the_scheduled_layers_and_never_the_model():
    spec = S.NetSpec((2, 6, 6), (S.Conv2d(3, 3), S.ReLU(), S.Conv2d(3, 3), S.ReLU(), S.Flatten(), S.Linear(4), S.ReLU(), S.Linear(2)))
    net = NR.isotropic_network(spec, 0, bias=0.1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    names = NR.weight_layers(net)
    assert names == ["0", "2", "5", "7"]
    for mode in NR.MODES:
        steps = NR.randomized_models(net, mode, seed=1)
        assert [n for n, _ in steps] == names[::-1]
        for k, (name, copy_) in enumerate(steps):
            changed = {n for n in names if not torch.equal(dict(copy_.named_modules())[n].weight, dict(net.named_modules())[n].weight)}
            expected = set(names[::-1][: k + 1]) if mode == "cascading" else {name}
            assert changed == expected, (mode, k, changed)
            for n in names:  # biases kept
                assert torch.equal(dict(copy_.named_modules())[n].bias, dict(net.named_modules())[n].bias)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    layer = dict(net.named_modules())["7"]
    w = layer.weight.detach().clone()
    NR.randomize_layer(layer, torch.Generator().manual_seed(0))
    assert abs(float(layer.weight.std()) - float(w.std())) < 0.5 * float(w.std())  # "matched": same scale


def test_randomization_rejects_bad_requests():
    net = NR.isotropic_network(S.NetSpec((3,), (S.Linear(2), S.ReLU(), S.Linear(2))), 0)
    with pytest.raises(workbench.InputError, match="mode"):
        NR.randomized_models(net, "sideways")
    with pytest.raises(workbench.InputError, match="not Linear/Conv"):
        NR.randomized_models(net, "cascading", layers=["1"])
    with pytest.raises(workbench.InputError, match="scale"):
        NR.randomize_layer(net[0], torch.Generator(), scale="huge")
    with pytest.raises(workbench.InputError, match="no Linear/Conv"):
        NR.randomized_models(nn.Sequential(nn.ReLU()), "cascading")

"""Every rewrite of a given network keeps its function to 1e-12 (float64) on randomized resnet18
and VGG-with-BatchNorm-like models, leaves the model untouched, and is refused by name where it
is not valid."""

import functools

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.core.errors import InputError, UnsupportedModelError
from workbench.nets.randomize import randomize_affine
from workbench.check.network import rewrites as R
from workbench.check.network import sites as S


class SmallVGG(nn.Module):
    """vgg11_bn's structure (features, adaptive pool, flatten, classifier with dropout), small."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(nn.Linear(32, 12), nn.ReLU(True), nn.Dropout(), nn.Linear(12, 5))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@functools.lru_cache(maxsize=None)
def model(name: str) -> nn.Module:
    m = torchvision.models.resnet18(num_classes=7) if name == "resnet18" else SmallVGG()
    return randomize_affine(m, torch.Generator().manual_seed(1), scale=0.5).double().eval()


@functools.lru_cache(maxsize=None)
def graph(name: str) -> S.Graph:
    return S.trace(model(name))


def _x(name: str, extra: int = 0) -> torch.Tensor:
    return torch.randn(2, 3 + extra, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


def _same(f, g, x, xg=None) -> None:
    with torch.no_grad():
        y, z = f(x), g(x if xg is None else xg)
    assert y.shape == z.shape
    assert float((y - z).abs().max()) <= 1e-12 * (1 + float(y.abs().max()))


def _untouched(name: str, before: dict) -> None:
    after = model(name).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m.training for m in model(name).modules())


def test_sites_found_where_valid():
    r = [s.describe() for s in S.sites(graph("resnet18"))]
    assert r[0] == "layer1.0.conv1 -> layer1.0.bn1 -> layer1.0.relu -> layer1.0.conv2" and len(r) == 8
    assert not any("conv2 ->" in d for d in r)  # a block's last conv feeds the residual addition
    v = {s.a: s for s in S.sites(graph("vgg"))}
    assert set(v) == {"features.0", "features.4", "features.8", "classifier.0"}
    assert v["features.8"].b == "classifier.0" and v["features.8"].rescale_at == "features.8"
    assert S.first_conv(graph("resnet18")) == "conv1" and S.head(graph("vgg")) == "classifier.3"
    assert ("conv1", "bn1") in S.batchnorm_folds(graph("resnet18"))


@settings(max_examples=12)
@given(name=st.sampled_from(["resnet18", "vgg"]), how=st.sampled_from(["permute", "rescale", "split", "fold"]), pick=st.integers(0, 100), seed=st.integers(0, 2**16), fraction=st.sampled_from([0.5, 0.25, 2.0, -1.0]))
def test_function_preserving_rewrites(name, how, pick, seed, fraction):
    g, before = graph(name), {k: v.clone() for k, v in model(name).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    if how == "fold":
        conv, bn = S.batchnorm_folds(g)[pick % len(S.batchnorm_folds(g))]
        h = R.fold_batchnorm(g, conv, bn)
        assert isinstance(h.get_submodule(bn), nn.Identity) and h.get_submodule(conv).bias is not None
    else:
        site = S.sites(g)[pick % len(S.sites(g))]
        if how == "permute":
            h = R.permute(g, site, torch.randperm(site.width, generator=gen).tolist())
        elif how == "rescale":
            h = R.rescale(g, site, (0.25 + 4 * torch.rand(site.width, generator=gen, dtype=torch.float64)).tolist())
        else:
            h = R.split(g, site, pick % site.width, fraction)
    assert not any(m.training for m in h.modules())
    _same(model(name), h, _x(name))
    _untouched(name, before)


@pytest.mark.parametrize("name", ["resnet18", "vgg"])
def test_property_constructing_rewrites(name):
    g, x = graph(name), _x(name)
    first = S.first_conv(g)
    extra = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    _same(model(name), R.dummy_channel(g, first), x, torch.cat([x, extra], 1))
    twin = R.twin_channel(g, first, 1)
    _same(model(name), twin, x, torch.cat([x, x[:, 1:2]], 1))
    swapped = torch.cat([x, extra], 1)[:, [0, 3, 2, 1]]  # g symmetric in channels 1 and 3
    _same(twin, twin, torch.cat([x, extra], 1), swapped)
    f2, h = R.sum_of_heads(g, S.head(g), 2.0, -0.5, 2)
    with torch.no_grad():
        y, y2, yh = model(name)(x), f2(x), h(x)
    assert torch.allclose(y2[:, 0], y[:, 2], atol=0, rtol=0)
    assert float((yh - (2.0 * y - 0.5 * y2)).abs().max()) <= 1e-12 * (1 + float(y.abs().max()))


def test_refusals_name_the_layer():
    g = graph("resnet18")
    site = S.sites(g)[0]
    with pytest.raises(InputError, match="permutation"):
        R.permute(g, site, [0] * site.width)
    gelu = nn.Sequential(nn.Conv2d(3, 4, 1), nn.GELU(), nn.Conv2d(4, 2, 1), nn.Flatten(), nn.Linear(2 * 16 * 16, 3)).double().eval()
    gs = S.trace(gelu)
    s0 = S.sites(gs)[0]
    assert s0.rescale_at is None
    with pytest.raises(UnsupportedModelError, match="0 -> 1 -> 2"):
        R.rescale(gs, s0, [2.0] * 4)
    _same(gelu, R.permute(gs, s0, [3, 2, 1, 0]), torch.randn(1, 3, 16, 16, dtype=torch.float64))
    two_inputs = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double().eval()
    with pytest.raises(UnsupportedModelError, match="Flatten"):
        S.first_conv(S.trace(two_inputs))
    no_head = nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    with pytest.raises(UnsupportedModelError, match="not from a Linear head"):
        S.head(S.trace(no_head))

"""Network rewrites: function-preserving ones keep the outputs, combining ones compute what they
claim, and every result is a valid, serializable network. Plus the paper networks' formulas."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from workbench.nets import paper
from workbench.nets import spec as S
from workbench.nets import transforms as T

DT = torch.float64
RTOL = 1e-10


# -- drawing specs: structure first, then widths (so two nets can share a structure) -----
@st.composite
def mlp_structures(draw: st.DrawFn, min_hidden: int = 1) -> dict:
    n = draw(st.integers(min_hidden, 3))
    return {
        "kind": "mlp",
        "d": draw(st.integers(2, 4)),
        "hidden": [
            {"bias": draw(st.booleans()), "bn": draw(st.booleans()), "act": draw(st.sampled_from(["relu", "softplus", "relu_inplace"]))}
            for _ in range(n)
        ],
        "out": draw(st.integers(1, 3)),
        "out_bias": draw(st.booleans()),
        "shared": draw(st.booleans()),
    }


@st.composite
def cnn_structures(draw: st.DrawFn) -> dict:
    k = draw(st.integers(1, 3))
    return {
        "kind": "cnn",
        "c": draw(st.integers(2, 3)),
        "size": draw(st.integers(4, 6)),
        "k": k,
        "pad": draw(st.integers(0, 1)) if k > 1 else 0,
        "bias": draw(st.booleans()),
        "bn": draw(st.booleans()),
        "inplace": draw(st.booleans()),
        "residual": draw(st.sampled_from(["none", "plain", "bn"])),
        "pool": draw(st.sampled_from(["none", "max", "avg"])),
        "head_bn": draw(st.booleans()),
        "head_hidden": draw(st.booleans()),
        "out": draw(st.integers(1, 3)),
        "shared": draw(st.booleans()),
    }


def structures(min_hidden: int = 1) -> st.SearchStrategy[dict]:
    return st.one_of(mlp_structures(min_hidden), cnn_structures())


def n_widths(s: dict) -> int:
    return len(s["hidden"]) if s["kind"] == "mlp" else 2


def _act(name: str) -> object:
    return {"relu": S.ReLU(), "relu_inplace": S.ReLU(inplace=True), "softplus": S.Softplus()}[name]


def make_spec(s: dict, widths: list) -> S.NetSpec:
    if s["kind"] == "mlp":
        layers: list = []
        for h, w in zip(s["hidden"], widths):
            layers.append(S.Linear(w, bias=h["bias"]))
            if h["bn"]:
                layers.append(S.BatchNorm())
            layers.append(_act(h["act"]))
        layers.append(S.Linear(s["out"], bias=s["out_bias"]))
        relu_only = all(h["act"] != "softplus" for h in s["hidden"])
        return S.NetSpec((s["d"],), tuple(layers), shared_relu=s["shared"] and relu_only)
    w, hw = widths
    layers = [S.Conv2d(w, s["k"], padding=s["pad"], bias=s["bias"])]
    if s["bn"]:
        layers.append(S.BatchNorm())
    layers.append(S.ReLU(inplace=s["inplace"]))
    if s["residual"] != "none":
        body = [S.Conv2d(w, 3, padding=1)] + ([S.BatchNorm()] if s["residual"] == "bn" else [])
        body += [S.ReLU(), S.Conv2d(w, 3, padding=1)]
        layers.append(S.Residual(tuple(body)))
    side = s["size"] + 2 * s["pad"] - s["k"] + 1
    if side >= 2 and s["pool"] != "none":
        layers.append(S.MaxPool2d(2) if s["pool"] == "max" else S.AvgPool2d(2))
    layers.append(S.Flatten())
    if s["head_bn"]:
        layers.append(S.BatchNorm())
    if s["head_hidden"]:
        layers += [S.Linear(hw), S.ReLU(inplace=s["inplace"])]
    layers.append(S.Linear(s["out"]))
    return S.NetSpec((s["c"], s["size"], s["size"]), tuple(layers), shared_relu=s["shared"])


widths_for = lambda s: st.lists(st.integers(1, 4), min_size=n_widths(s), max_size=n_widths(s))  # noqa: E731
seeds = st.integers(0, 2**31 - 1)


@st.composite
def nets(draw: st.DrawFn, min_hidden: int = 1) -> S.SpecNet:
    s = draw(structures(min_hidden))
    return S.build(make_spec(s, draw(widths_for(s))), dtype=DT, generator=torch.Generator().manual_seed(draw(seeds)))


def batch(net: S.SpecNet, seed: int, n: int = 6) -> torch.Tensor:
    return torch.randn((n, *net.spec.input_shape), generator=torch.Generator().manual_seed(seed), dtype=DT)


def rel_diff(u: torch.Tensor, v: torch.Tensor) -> float:
    return float((u - v).abs().max()) / max(1.0, float(u.abs().max()), float(v.abs().max()))


@torch.no_grad()
def assert_same(f, g, x: torch.Tensor) -> None:
    d = rel_diff(f(x.clone()), g(x.clone()))
    assert d < RTOL, f"outputs differ by {d:.3g}"


def assert_valid(net: S.SpecNet, x: torch.Tensor) -> None:
    """The result is a SpecNet in float64 whose spec matches its modules and round-trips JSON."""
    assert isinstance(net, S.SpecNet) and not net.training
    assert all(p.dtype == DT for p in net.parameters())
    d = json.loads(json.dumps(S.to_dict(net)))
    assert_same(net, S.from_dict(d, dtype=DT), x)


def snapshot(net: S.SpecNet) -> dict:
    return {k: v.clone() for k, v in net.state_dict().items()}


def unchanged(net: S.SpecNet, before: dict) -> bool:
    return all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


# -- hidden sites ------------------------------------------------------------------------
def test_hidden_sites_of_a_known_spec() -> None:
    spec = S.NetSpec(
        (2, 6, 6),
        (
            S.Conv2d(3, padding=1), S.BatchNorm(), S.ReLU(),
            S.Residual((S.Conv2d(3, padding=1), S.ReLU(), S.Conv2d(3, padding=1))),
            S.Conv2d(4), S.ReLU(), S.MaxPool2d(2), S.Flatten(), S.Linear(5), S.Softplus(), S.Linear(2),
        ),
    )
    sites = T.hidden_sites(S.build(spec))
    assert sites == [
        T.Site((), 4, 8, True, 4),
        T.Site((), 8, 10, False, 5),
        T.Site((3,), 0, 2, True, 3),
    ]


@given(nets(), seeds, st.data())
def test_permute_hidden_keeps_the_function(net: S.SpecNet, seed: int, data: st.DataObject) -> None:
    before = snapshot(net)
    site = data.draw(st.sampled_from(T.hidden_sites(net)))
    perm = data.draw(st.permutations(range(site.width)))
    g = T.permute_hidden(net, site, perm)
    x = batch(net, seed)
    assert_same(net, g, x)
    assert g.spec == net.spec
    assert unchanged(net, before)
    assert_valid(g, x)


@given(nets(), seeds, st.data())
def test_rescale_hidden_keeps_the_function_or_refuses(net: S.SpecNet, seed: int, data: st.DataObject) -> None:
    site = data.draw(st.sampled_from(T.hidden_sites(net)))
    scales = data.draw(st.lists(st.sampled_from([0.25, 0.5, 2.0, 3.0, 10.0]), min_size=site.width, max_size=site.width))
    if not site.homogeneous:
        with pytest.raises(ValueError, match="non-homogeneous"):
            T.rescale_hidden(net, site, scales)
        return
    g = T.rescale_hidden(net, site, scales)
    x = batch(net, seed)
    assert_same(net, g, x)
    assert_valid(g, x)
    if any(c != 1.0 for c in scales):  # the weights did change
        assert not unchanged(g, snapshot(net))


@given(nets(), seeds, st.data())
def test_split_hidden_keeps_the_function_and_grows_the_width(net: S.SpecNet, seed: int, data: st.DataObject) -> None:
    before = snapshot(net)
    sites = T.hidden_sites(net)
    i = data.draw(st.integers(0, len(sites) - 1))
    site = sites[i]
    unit = data.draw(st.integers(0, site.width - 1))
    t = data.draw(st.sampled_from([0.0, 0.25, 0.5, 2.0, -1.0, 0.3]))
    g = T.split_hidden(net, site, unit, t)
    x = batch(net, seed)
    assert_same(net, g, x)
    assert unchanged(net, before)
    new_site = T.hidden_sites(g)[i]
    assert (new_site.path, new_site.a, new_site.b, new_site.width) == (site.path, site.a, site.b, site.width + 1)
    assert_valid(g, x)


def _wrong_permute(net: S.SpecNet, site: T.Site, perm: list) -> S.SpecNet:
    """A deliberately broken rewrite: permutes A's rows but not B's columns."""
    state = {k: v.clone() for k, v in net.state_dict().items() if v.is_floating_point()}
    pre = "".join(f"{p}.body." for p in site.path)
    state[f"{pre}{site.a}.weight"] = state[f"{pre}{site.a}.weight"][perm]
    return S.build(net.spec, dtype=DT, state=state)


@pytest.mark.parametrize("seed", range(5))
def test_a_wrong_permutation_is_caught(seed: int) -> None:
    spec = S.NetSpec((3,), (S.Linear(4), S.ReLU(), S.Linear(3), S.Softplus(), S.Linear(2)))
    net = S.build(spec, dtype=DT, generator=torch.Generator().manual_seed(seed))
    x = batch(net, seed, n=16)
    for site in T.hidden_sites(net):
        perm = list(range(site.width))[::-1]
        assert_same(net, T.permute_hidden(net, site, perm), x)
        with pytest.raises(AssertionError, match="outputs differ"):
            assert_same(net, _wrong_permute(net, site, perm), x)


def test_bad_arguments_raise() -> None:
    net = S.build(S.NetSpec((2,), (S.Linear(3), S.ReLU(), S.Linear(1))), dtype=DT)
    site = T.hidden_sites(net)[0]
    with pytest.raises(ValueError):
        T.rescale_hidden(net, site, [1.0, 0.0, 2.0])
    with pytest.raises(ValueError):
        T.rescale_hidden(net, site, [1.0, -1.0, 2.0])
    with pytest.raises(ValueError):
        T.permute_hidden(net, site, [0, 0, 1])
    with pytest.raises(ValueError):
        T.split_hidden(net, site, 3, 0.5)
    with pytest.raises(ValueError):
        T.permute_hidden(net, T.Site((), 0, 1, True, 3), [0, 1, 2])  # not a site
    pooled_first = S.build(S.NetSpec((1, 4, 4), (S.MaxPool2d(2), S.Flatten(), S.Linear(1))), dtype=DT)
    with pytest.raises(ValueError, match="first layer"):
        T.permute_inputs(pooled_first, [0])
    with pytest.raises(ValueError, match="first layer"):
        T.zero_input_feature(pooled_first, 0)


# -- input rewrites ----------------------------------------------------------------------
def _features(x: torch.Tensor, perm: list) -> torch.Tensor:
    return x[:, perm]  # flat: features; image: channels


@given(nets(min_hidden=0), seeds, st.data())
def test_permute_inputs_convention(net: S.SpecNet, seed: int, data: st.DataObject) -> None:
    """g(x) = f(x[:, perm]): input k of f is feature (channel) perm[k] of x."""
    perm = data.draw(st.permutations(range(net.spec.input_shape[0])))
    g = T.permute_inputs(net, perm)
    x = batch(net, seed)
    assert_same(g, lambda z: net(_features(z, perm)), x)
    assert_valid(g, x)


@given(nets(min_hidden=0), seeds, st.data())
def test_zero_input_feature_ignores_it(net: S.SpecNet, seed: int, data: st.DataObject) -> None:
    before = snapshot(net)
    k = data.draw(st.integers(0, net.spec.input_shape[0] - 1))
    g = T.zero_input_feature(net, k)
    x = batch(net, seed)
    y = x.clone()
    y[:, k] = torch.randn(y[:, k].shape, generator=torch.Generator().manual_seed(seed + 1), dtype=DT) * 5
    assert_same(g, lambda z: g(y), x)
    x0 = x.clone()
    x0[:, k] = 0
    assert_same(g, lambda z: net(x0), x)  # g(x) = f(x with feature k zeroed)
    assert unchanged(net, before)
    assert_valid(g, x)


# -- combining ---------------------------------------------------------------------------
coefficients = st.sampled_from([1.0, 2.0, -1.0, 0.5, -0.5, 3.0, 0.0])


@given(structures(min_hidden=0), st.data(), seeds, seeds, seeds, coefficients, coefficients)
def test_weighted_sum_is_the_weighted_sum(s: dict, data: st.DataObject, s1: int, s2: int, sx: int, a: float, b: float) -> None:
    spec1, spec2 = make_spec(s, data.draw(widths_for(s))), make_spec(s, data.draw(widths_for(s)))
    f1 = S.build(spec1, dtype=DT, generator=torch.Generator().manual_seed(s1))
    f2 = S.build(spec2, dtype=DT, generator=torch.Generator().manual_seed(s2))
    b1, b2 = snapshot(f1), snapshot(f2)
    h = T.weighted_sum(f1, f2, a, b)
    x = batch(f1, sx)
    assert_same(h, lambda z: a * f1(z) + b * f2(z), x)
    assert unchanged(f1, b1) and unchanged(f2, b2)
    assert h.spec.shared_relu == (spec1.shared_relu or spec2.shared_relu)
    # hidden widths add up; the output layer keeps its width
    aff = lambda sp: [l for l in S.iter_layers(sp.layers) if isinstance(l, S.AFFINE)]  # noqa: E731
    w = lambda l: l.out_features if isinstance(l, S.Linear) else l.out_channels  # noqa: E731
    lh, l1, l2 = aff(h.spec), aff(spec1), aff(spec2)
    assert len(lh) == len(l1)
    assert [w(l) for l in lh[:-1]] == [w(p) + w(q) for p, q in zip(l1[:-1], l2[:-1])]
    assert w(lh[-1]) == w(l1[-1]) and h.spec.outputs == spec1.outputs
    assert_valid(h, x)


@given(nets(), seeds, st.data())
def test_symmetrize_is_symmetric_and_the_average(net: S.SpecNet, seed: int, data: st.DataObject) -> None:
    d = net.spec.input_shape[0]
    i = data.draw(st.integers(0, d - 2))
    j = data.draw(st.integers(i + 1, d - 1))
    swap = list(range(d))
    swap[i], swap[j] = j, i
    h = T.symmetrize(net, i, j)
    x = batch(net, seed)
    assert_same(h, lambda z: h(_features(z, swap)), x)
    assert_same(h, lambda z: 0.5 * net(z) + 0.5 * net(_features(z, swap)), x)
    assert_valid(h, x)


@pytest.mark.parametrize(
    "layers",
    [
        (S.Linear(2), S.ReLU()),  # nonlinear tail after the only affine layer
        (S.Linear(3), S.ReLU(), S.Linear(1), S.ReLU()),  # nonlinear tail (the IG paper's shape)
        (S.Linear(3), S.Residual((S.Linear(2), S.ReLU(), S.Linear(3)))),  # output from a residual
    ],
)
def test_weighted_sum_with_a_nonlinear_tail(layers: tuple) -> None:
    spec = S.NetSpec((3,), layers)
    f1 = S.build(spec, dtype=DT, generator=torch.Generator().manual_seed(1))
    f2 = S.build(spec, dtype=DT, generator=torch.Generator().manual_seed(2))
    h = T.weighted_sum(f1, f2, 2.0, -0.5)
    x = batch(f1, 3, n=20)
    assert_same(h, lambda z: 2.0 * f1(z) - 0.5 * f2(z), x)
    assert_valid(h, x)


def test_weighted_sum_single_conv_layer() -> None:
    spec = S.NetSpec((2, 3, 3), (S.Conv2d(2, 3), S.Flatten()))
    f1 = S.build(spec, dtype=DT, generator=torch.Generator().manual_seed(1))
    f2 = S.build(S.NetSpec((2, 3, 3), (S.Conv2d(2, 3, bias=False), S.Flatten())), dtype=DT, generator=torch.Generator().manual_seed(2))
    h = T.weighted_sum(f1, f2, 1.5, -2.0)
    assert h.spec.layers == spec.layers
    assert_same(h, lambda z: 1.5 * f1(z) - 2.0 * f2(z), batch(f1, 0))


def test_weighted_sum_refuses_mismatched_specs() -> None:
    def net(shape, *layers):
        return S.build(S.NetSpec(shape, layers), dtype=DT)

    base = net((3,), S.Linear(4), S.ReLU(), S.Linear(2))
    cases = {
        "input shape": net((2,), S.Linear(4), S.ReLU(), S.Linear(2)),
        "number of outputs": net((3,), S.Linear(4), S.ReLU(), S.Linear(1)),
        "same layers": net((3,), S.Linear(4), S.Softplus(), S.Linear(2)),
        "bias in one network": net((3,), S.Linear(4, bias=False), S.ReLU(), S.Linear(2)),
    }
    for what, other in cases.items():
        with pytest.raises(ValueError, match=what):
            T.weighted_sum(base, other, 1.0, 1.0)
    with pytest.raises(ValueError, match="same layers"):
        T.weighted_sum(base, net((3,), S.Linear(4), S.ReLU(), S.Linear(3), S.ReLU(), S.Linear(2)), 1.0, 1.0)
    with pytest.raises(ValueError, match="BatchNorm before"):
        bn_first = net((3,), S.BatchNorm(), S.Linear(2))
        T.weighted_sum(bn_first, bn_first, 1.0, 1.0)


# -- paper networks ----------------------------------------------------------------------
GRID = [v / 4 for v in range(-12, 13)]


def test_ig_saturating_formula() -> None:
    net = paper.ig_saturating()
    x = torch.tensor([[v] for v in GRID], dtype=DT)
    expected = 1 - torch.relu(1 - x)
    with torch.no_grad():
        assert torch.equal(net(x), expected)


def test_ig_two_input_formula_and_its_equivalent() -> None:
    x = torch.tensor(list(itertools.product(GRID, GRID)), dtype=DT)
    expected = torch.relu(torch.relu(x[:, :1]) - 1 - torch.relu(x[:, 1:]))
    with torch.no_grad():
        assert torch.equal(paper.ig_two_input()(x), expected)
        assert torch.equal(paper.ig_two_input_equivalent()(x), expected)


@pytest.mark.parametrize("name", list(paper.PAPER_NETS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_paper_cases(name: str, dtype: torch.dtype) -> None:
    net, x, b, t = paper.paper_case(name, dtype=dtype)
    d = net.spec.input_shape[0]
    assert x.shape == b.shape == (1, d) and x.dtype == b.dtype == dtype
    assert all(p.dtype == dtype for p in net.parameters())
    assert 0 <= t < net.spec.outputs
    with torch.no_grad():
        assert float(net(x)[0, t] - net(b)[0, t]) == 1.0  # both cases: f(x) - f(x') = 1


def test_ig_saturating_gradient_vanishes_at_the_input() -> None:
    net, x, _, t = paper.paper_case("ig-saturating")
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(x)[0, t], x)
    assert float(g) == 0.0


def test_unknown_paper_case() -> None:
    with pytest.raises(ValueError, match="ig-saturating"):
        paper.paper_case("nope")

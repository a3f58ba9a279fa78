"""Exact path integral of the gradient on piecewise-linear networks, checked against the mathematics.

mean_gradient = int_0^1 grad F(x' + s (x - x')) ds. Checked: completeness; a composite midpoint
rule converging to it within its error bound (K kinks, each spoils one cell: |err| <= 2 G K / n);
a 1-D network integrated by hand; every breakpoint a real kink and no kink between breakpoints;
the IG paper's example; refusals (smooth layers, hidden torch.relu) leaving the model untouched.
"""

from __future__ import annotations

import copy
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st
from torch import Tensor, nn

from workbench.core.autograd import target_gradients
from workbench.core.errors import ConvergenceError, UnsupportedModelError
from workbench.paths.exact import ExactPathIntegral, exact_path_integral
from workbench.nets import spec as S
from workbench.nets.randomize import randomize

F64 = torch.float64
KINKED = (nn.ReLU, nn.LeakyReLU, nn.Hardtanh, nn.MaxPool1d, nn.MaxPool2d)


# -- strategies: structure first, then seeded weights and inputs ----------------------------
@st.composite
def mlp_specs(draw: st.DrawFn) -> S.NetSpec:
    inplace = draw(st.booleans())
    layers: list = []
    for _ in range(draw(st.integers(1, 3))):
        layers.append(S.Linear(draw(st.integers(1, 6))))
        if draw(st.booleans()):
            layers.append(S.BatchNorm())
        layers.append(S.ReLU(inplace=inplace and draw(st.booleans())))
    layers.append(S.Linear(draw(st.integers(1, 3))))
    return S.NetSpec((draw(st.integers(1, 4)),), tuple(layers), shared_relu=draw(st.booleans()))


@st.composite
def cnn_specs(draw: st.DrawFn) -> S.NetSpec:
    c = draw(st.integers(1, 3))
    layers: list = [S.Conv2d(c, kernel_size=3, padding=1)]
    if draw(st.booleans()):
        layers.append(S.BatchNorm())
    layers.append(S.ReLU(inplace=draw(st.booleans())))
    if draw(st.booleans()):
        body = [S.Conv2d(c, kernel_size=3, padding=1)] + ([S.BatchNorm()] if draw(st.booleans()) else [])
        layers += [S.Residual(tuple(body + [S.ReLU()])), S.ReLU()]
    layers.append(draw(st.sampled_from([S.MaxPool2d(2), S.AvgPool2d(2), S.MaxPool2d(2, 1)])))
    layers += [S.Flatten(), S.Linear(draw(st.integers(1, 4))), S.ReLU(), S.Linear(draw(st.integers(1, 3)))]
    size = draw(st.integers(4, 6))
    return S.NetSpec((draw(st.integers(1, 2)), size, size), tuple(layers), shared_relu=draw(st.booleans()))


@st.composite
def cases(draw: st.DrawFn, specs: st.SearchStrategy = st.one_of(mlp_specs(), cnn_specs())) -> tuple:
    """(net, x, baseline, target) in float64; inputs scaled so the path crosses many kinks."""
    spec = draw(specs)
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    net = S.build(spec, dtype=F64, generator=g)
    n = draw(st.integers(1, 3))
    x = 3 * torch.randn((n,) + spec.input_shape, generator=g, dtype=F64)
    baseline = draw(st.sampled_from(["zero", "random"]))
    b = torch.zeros_like(x) if baseline == "zero" else torch.randn(x.shape, generator=g, dtype=F64)
    target = torch.randint(spec.outputs, (n,), generator=g)
    return net, x, b, target


# -- helpers ----------------------------------------------------------------------------------
def path_gradients(net: nn.Module, x: Tensor, b: Tensor, t: int, s: Tensor) -> Tensor:
    """grad F_t at x' + s (x - x') for every s (x, x' of batch 1): shape (len(s), ...)."""
    view = (-1,) + (1,) * (x.dim() - 1)
    pts = b + s.to(x.dtype).view(view) * (x - b)
    _, g = target_gradients(net, pts, torch.full((len(s),), t), chunk_size=8192)
    return g


def activation_pattern(net: nn.Module, points: Tensor) -> list[Tensor]:
    """Per kinked module call: which side of each kink every point is on (signs, argmaxes)."""
    out: list[Tensor] = []

    def record(m: nn.Module, args: tuple) -> None:
        z = args[0].detach()
        if isinstance(m, (nn.ReLU, nn.LeakyReLU)):
            out.append(torch.sign(z).flatten(1))
        elif isinstance(m, nn.Hardtanh):
            out.append(torch.cat([torch.sign(z - m.min_val), torch.sign(z - m.max_val)], 1).flatten(1))
        else:
            pool = F.max_pool1d if isinstance(m, nn.MaxPool1d) else F.max_pool2d
            _, idx = pool(z, m.kernel_size, m.stride, m.padding, m.dilation, return_indices=True)
            out.append(idx.flatten(1).to(z.dtype))

    handles = [m.register_forward_pre_hook(record) for m in {id(m): m for m in net.modules()}.values() if isinstance(m, KINKED)]
    try:
        with torch.no_grad():
            net(points.clone())
    finally:
        for h in handles:
            h.remove()
    return out


def assert_complete(net: nn.Module, x: Tensor, b: Tensor, t: Tensor, r: ExactPathIntegral, rtol: float) -> None:
    with torch.no_grad():
        fx = net(x).gather(1, t.view(-1, 1)).squeeze(1)
        fb = net(b).gather(1, t.view(-1, 1)).squeeze(1)
    ig = ((x - b) * r.mean_gradient).flatten(1).sum(1)
    scale = torch.maximum(torch.ones_like(fx), torch.maximum(fx.abs(), fb.abs()))
    assert ((ig - (fx - fb)).abs() <= rtol * scale).all(), (ig, fx - fb)


def assert_breakpoints_real(
    net: nn.Module, x: Tensor, b: Tensor, t: int, bps: Tensor, *, full_gradient: bool = True
) -> None:
    """Each breakpoint: gradient or activation pattern differs across it; between them, constant gradient.

    With ``full_gradient=False`` only the path derivative grad F . (x - x') must be constant: on
    degenerate paths (a unit exactly 0, or two max-pool candidates exactly equal, along a whole
    segment) F is not differentiable across the path and round-off picks the gradient's side.
    """
    s_all = torch.cat([torch.zeros(1, dtype=F64), bps, torch.ones(1, dtype=F64)])
    assert (s_all.diff() > 0).all(), "breakpoints must be sorted, distinct, inside (0, 1)"
    gaps = s_all.diff()
    if len(bps):
        delta = torch.clamp(torch.minimum(gaps[:-1], gaps[1:]) / 4, max=1e-7)
        left, right = bps - delta, bps + delta
        gl, gr = path_gradients(net, x, b, t, left), path_gradients(net, x, b, t, right)
        grad_differs = (gl - gr).flatten(1).abs().amax(1) > 1e-9 * (1 + gl.abs().amax())
        view = (-1,) + (1,) * (x.dim() - 1)
        pl = activation_pattern(net, b + left.view(view) * (x - b))
        pr = activation_pattern(net, b + right.view(view) * (x - b))
        unit_changes = torch.stack([(a != c).any(1) for a, c in zip(pl, pr)]).any(0)
        assert (grad_differs | unit_changes).all(), f"breakpoints {bps[~(grad_differs | unit_changes)]} are not kinks"
    # no unfound kink: the gradient is the same at several points of each region
    fractions = torch.tensor([0.13, 0.5, 0.87], dtype=F64)
    s = (s_all[:-1, None] + gaps[:, None] * fractions).flatten()
    g = path_gradients(net, x, b, t, s)
    if not full_gradient:
        g = (g * (x - b)).flatten(1).sum(1, keepdim=True)
    g = g.reshape(len(gaps), len(fractions), -1)
    spread = (g - g[:, :1]).abs().amax()
    assert spread <= 1e-9 * (1 + g.abs().amax()), f"gradient varies inside a region by {spread}"


# -- (a) completeness, (c) breakpoints, batch independence -------------------------------------
@given(cases())
def test_completeness_float64(case: tuple) -> None:
    net, x, b, t = case
    r = exact_path_integral(net, x, b, t)
    assert r.mean_gradient.shape == x.shape and r.mean_gradient.dtype == F64
    assert len(r.breakpoints) == x.shape[0] and r.regions.shape == (x.shape[0],)
    assert (r.regions >= 1).all() and r.passes >= 1
    assert_complete(net, x, b, t, r, 1e-9)


@given(cases())
def test_breakpoints_are_exactly_the_kinks(case: tuple) -> None:
    net, x, b, t = case
    r = exact_path_integral(net, x, b, t)
    for i in range(x.shape[0]):
        assert_breakpoints_real(net, x[i : i + 1], b[i : i + 1], int(t[i]), r.breakpoints[i])
        assert int(r.regions[i]) >= len(r.breakpoints[i]) + 1


@given(cases(), st.data())
def test_each_sample_is_its_own_path(case: tuple, data: st.DataObject) -> None:
    net, x, b, t = case
    r = exact_path_integral(net, x, b, t)
    i = data.draw(st.integers(0, x.shape[0] - 1))
    alone = exact_path_integral(net, x[i : i + 1], b[i : i + 1], t[i : i + 1])
    torch.testing.assert_close(alone.mean_gradient[0], r.mean_gradient[i], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(alone.breakpoints[0], r.breakpoints[i], rtol=0, atol=1e-9)


# -- (b) brute force: the midpoint rule converges to it within its error bound -----------------
@given(cases())
def test_midpoint_rule_converges_to_exact(case: tuple) -> None:
    net, x, b, t = case
    r = exact_path_integral(net, x[:1], b[:1], t[:1])
    kinks = len(r.breakpoints[0])
    errors = []
    for n in (200, 20000):
        g = path_gradients(net, x[:1], b[:1], int(t[0]), (torch.arange(n, dtype=F64) + 0.5) / n)
        err = (g.mean(0) - r.mean_gradient).abs().amax()
        # the integrand is piecewise constant: only the cells holding a kink are wrong, each by <= 2G / n
        bound = 2 * g.abs().amax() * kinks / n + 1e-12 * (1 + g.abs().amax())
        assert err <= bound, (n, float(err), float(bound))
        errors.append(float(err))
    assert errors[1] <= errors[0] + 1e-12 or errors[1] <= 1e-12


@given(st.integers(0, 2**31 - 1), st.integers(1, 8))
def test_one_dimensional_network_by_hand(seed: int, width: int) -> None:
    """F(u) = sum_j v_j relu(w_j u + c_j): kinks at u_j = -c_j / w_j, slope sum_j v_j w_j [active]."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(1, width), nn.ReLU(), nn.Linear(width, 1)).to(F64).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64))
    x0, x1 = (3 * torch.randn(2, generator=g, dtype=F64)).tolist()
    if abs(x1 - x0) < 1e-3:
        x1 = x0 + 1.0
    w, c, v = net[0].weight[:, 0].detach(), net[0].bias.detach(), net[2].weight[0].detach()
    s_kink = ((-c / w) - x0) / (x1 - x0)
    expected_bps = s_kink[(s_kink > 1e-9) & (s_kink < 1 - 1e-9)].sort().values
    edges = torch.cat([torch.zeros(1, dtype=F64), expected_bps, torch.ones(1, dtype=F64)])
    total = 0.0
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
        u = x0 + (lo + hi) / 2 * (x1 - x0)
        total += (hi - lo) * float((v * w * ((w * u + c) > 0)).sum())
    r = exact_path_integral(net, torch.tensor([[x1]], dtype=F64), torch.tensor([[x0]], dtype=F64), torch.tensor([0]))
    assert abs(float(r.mean_gradient) - total) <= 1e-10 * (1 + abs(total))
    torch.testing.assert_close(r.breakpoints[0], expected_bps, rtol=0, atol=1e-9)


# -- (d) the IG paper's example ------------------------------------------------------------------
def ig_paper_net() -> nn.Module:
    """f(x) = 1 - ReLU(1 - x)."""
    net = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1)).to(F64).eval()
    with torch.no_grad():
        for lin in (net[0], net[2]):
            lin.weight.fill_(-1.0)
            lin.bias.fill_(1.0)
    return net


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ig_paper_example(dtype: torch.dtype) -> None:
    net = ig_paper_net().to(dtype)
    x, b = torch.tensor([[2.0]], dtype=dtype), torch.zeros(1, 1, dtype=dtype)
    r = exact_path_integral(net, x, b, torch.tensor([0]))
    assert float((x - b) * r.mean_gradient) == 1.0
    assert r.breakpoints[0].tolist() == [0.5]
    assert r.regions.tolist() == [2]


# -- (g) inputs, baselines and probes exactly on kinks --------------------------------------------
@given(st.integers(0, 2**31 - 1), st.integers(1, 3), st.booleans())
def test_integer_networks_on_kinks(seed: int, depth: int, conv: bool) -> None:
    """Integer weights and inputs: pre-activations are exactly 0 at s = 0, 1/2, 1 ... ."""
    g = torch.Generator().manual_seed(seed)
    if conv:
        spec = S.NetSpec((1, 4, 4), (S.Conv2d(2, 3, padding=1), S.ReLU(), S.MaxPool2d(2), S.Flatten(), S.Linear(2)))
    else:
        layers = [l for _ in range(depth) for l in (S.Linear(3), S.ReLU())]
        spec = S.NetSpec((2,), tuple(layers) + (S.Linear(2),))
    net = S.build(spec, dtype=F64, generator=g)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randint(-2, 3, p.shape, generator=g).to(F64))
    x = torch.randint(-2, 3, (3,) + spec.input_shape, generator=g).to(F64)
    b = torch.randint(-1, 2, x.shape, generator=g).to(F64)
    t = torch.randint(2, (3,), generator=g)
    r = exact_path_integral(net, x, b, t)
    assert_complete(net, x, b, t, r, 1e-9)
    for i in range(3):
        assert_breakpoints_real(net, x[i : i + 1], b[i : i + 1], int(t[i]), r.breakpoints[i], full_gradient=False)


def test_input_equal_to_baseline_gives_gradient_at_the_point() -> None:
    net = ig_paper_net()
    x = torch.tensor([[0.5]], dtype=F64)
    r = exact_path_integral(net, x, x.clone(), torch.tensor([0]))
    assert r.breakpoints[0].numel() == 0 and r.regions.tolist() == [1]
    assert float(r.mean_gradient) == 1.0


# -- more layer types ------------------------------------------------------------------------------
def _other_layers_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv1d(2, 3, 3, padding=1),
        nn.LeakyReLU(0.1),
        nn.MaxPool1d(3, stride=1, padding=1, dilation=1),
        nn.Conv1d(3, 3, 3),
        nn.ReLU6(),
        nn.MaxPool1d(2, stride=1, dilation=2),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(6, 4),
        nn.Hardtanh(-0.3, 0.4),
        nn.Identity(),
        nn.Linear(4, 2),
    ).to(F64).eval()


def _pool2d_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1, dilation=1), nn.MaxPool2d(2, stride=1, dilation=2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2),
    ).to(F64).eval()


def _torchvision_block_net(seed: int) -> nn.Module:
    from torchvision.models.resnet import BasicBlock

    torch.manual_seed(seed)
    return nn.Sequential(BasicBlock(2, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2)).to(F64).eval()


@pytest.mark.parametrize(
    "make,shape",
    [(_other_layers_net, (2, 6)), (_pool2d_net, (1, 5, 5)), (_torchvision_block_net, (2, 4, 4))],
)
@given(seed=st.integers(0, 10_000))
def test_other_piecewise_linear_layers(make: Callable[[int], nn.Module], shape: tuple, seed: int) -> None:
    net = randomize(make(seed), generator=torch.Generator().manual_seed(seed))
    x = 3 * torch.randn((2,) + shape, dtype=F64, generator=torch.Generator().manual_seed(seed + 1))
    b = torch.zeros_like(x)
    t = torch.tensor([0, 1])
    r = exact_path_integral(net, x, b, t)
    assert_complete(net, x, b, t, r, 1e-9)
    for i in range(2):
        assert_breakpoints_real(net, x[i : i + 1], b[i : i + 1], int(t[i]), r.breakpoints[i])


# -- float32 ---------------------------------------------------------------------------------------
@given(cases())
def test_float32_agrees_with_float64(case: tuple) -> None:
    net, x, b, t = case
    r64 = exact_path_integral(net, x, b, t)
    net32 = copy.deepcopy(net).float()
    r32 = exact_path_integral(net32, x.float(), b.float(), t)
    assert r32.mean_gradient.dtype == torch.float32
    assert_complete(net32, x.float(), b.float(), t, r32, 1e-3)
    # kinks within float32 round-off of each other may be resolved differently: compare the IG sums
    ig64 = ((x - b) * r64.mean_gradient).flatten(1).sum(1)
    ig32 = ((x - b).float() * r32.mean_gradient).flatten(1).sum(1).double()
    assert ((ig64 - ig32).abs() <= 1e-3 * (1 + ig64.abs())).all()


# -- (e) refusals, (f) the model is left as it was ------------------------------------------------
class FunctionalReLU(nn.Module):
    """relu called in forward, invisible to module hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.inner(x))


def functional_relu_net() -> nn.Module:
    net = FunctionalReLU().to(F64).eval()
    with torch.no_grad():
        net.inner.weight.fill_(1.0)
        net.inner.bias.fill_(0.0)
    return net


def snapshot(net: nn.Module) -> tuple:
    state = {k: v.clone() for k, v in net.state_dict().items()}
    flags = [(p.requires_grad, m.training) for m in net.modules() for p in m.parameters(recurse=False)]
    return state, flags


def assert_untouched(net: nn.Module, before: tuple) -> None:
    state, flags = snapshot(net)
    assert state.keys() == before[0].keys()
    assert all(torch.equal(state[k], before[0][k]) for k in state)
    assert flags == before[1]
    for m in net.modules():
        assert not m._forward_pre_hooks and not m._forward_hooks and not m._backward_hooks


@pytest.mark.parametrize("layer", [S.GELU(), S.Softplus()])
def test_smooth_layers_are_refused(layer: object) -> None:
    net = S.build(S.NetSpec((3,), (S.Linear(4), layer, S.Linear(2))), generator=torch.Generator().manual_seed(0))
    before = snapshot(net)
    with pytest.raises(UnsupportedModelError, match=f"layer '1' is {type(layer).__name__}"):
        exact_path_integral(net, torch.ones(1, 3, dtype=F64), torch.zeros(1, 3, dtype=F64), torch.tensor([0]))
    assert_untouched(net, before)


def test_hidden_functional_relu_is_caught_by_the_self_check() -> None:
    net = functional_relu_net()
    before = snapshot(net)
    with pytest.raises(UnsupportedModelError, match="not visible as modules"):
        exact_path_integral(net, torch.tensor([[2.0]], dtype=F64), torch.tensor([[-1.0]], dtype=F64), torch.tensor([0]))
    assert_untouched(net, before)


def test_hidden_kinks_that_cancel_globally_are_caught_locally() -> None:
    """F(u) = relu(u) + relu(-u) - |u|/2 ... with u from -1 to 1 completeness holds by symmetry, the answer would not."""

    class Abs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Identity()

        def forward(self, x: Tensor) -> Tensor:
            return self.inner(x).abs()

    net = Abs().eval()
    with pytest.raises(UnsupportedModelError, match="not visible as modules"):
        exact_path_integral(net, torch.tensor([[1.0]], dtype=F64), torch.tensor([[-1.0]], dtype=F64), torch.tensor([0]))


@given(cases())
def test_model_untouched_after_success(case: tuple) -> None:
    net, x, b, t = case
    before = snapshot(net)
    exact_path_integral(net, x, b, t)
    assert_untouched(net, before)


def test_too_many_regions_raise_convergence_error() -> None:
    net = S.build(S.NetSpec((2,), (S.Linear(16), S.ReLU(), S.Linear(1))), generator=torch.Generator().manual_seed(3))
    x = 10 * torch.randn(1, 2, dtype=F64, generator=torch.Generator().manual_seed(4))
    full = exact_path_integral(net, x, -x, torch.tensor([0]))
    assert int(full.regions[0]) > 2
    before = snapshot(net)
    with pytest.raises(ConvergenceError) as info:
        exact_path_integral(net, x, -x, torch.tensor([0]), max_regions=2)
    assert info.value.residual > 0
    assert_untouched(net, before)

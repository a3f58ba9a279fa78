"""Baselines (Sturmfels et al., Distill 2020): contract (shape/dtype/device), randomness, geometry, blur."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from workbench.paths import baselines as B
from workbench.core.errors import InputError

DTYPES = [torch.float32, torch.float64]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

ALL = {
    "zero": B.zero(),
    "constant": B.constant(0.5),
    "uniform": B.uniform(),
    "uniform-bounded": B.uniform(-1.0, 2.0),
    "gaussian": B.gaussian(0.2),
    "gaussian-clipped": B.gaussian(0.5, 0.0, 1.0),
    "blurred": B.blurred(1.0),
    "maximum-distance": B.maximum_distance(),
    "maximum-distance-bounded": B.maximum_distance(0.0, 1.0),
}
RANDOM = ["uniform", "uniform-bounded", "gaussian", "gaussian-clipped"]


def image(dtype: torch.dtype = torch.float64, device: str = "cpu", shape: tuple[int, ...] = (2, 3, 9, 7), seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)


# -- contract ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_shape_dtype_device_kept(name: str, dtype: torch.dtype, device: str) -> None:
    x = image(dtype, device)
    b = ALL[name](x)
    assert b.shape == x.shape and b.dtype == dtype and b.device == x.device
    assert torch.isfinite(b).all()


@pytest.mark.parametrize("name", RANDOM)
@pytest.mark.parametrize("dtype", DTYPES)
def test_seeded_generator_is_deterministic(name: str, dtype: torch.dtype) -> None:
    x = image(dtype)
    f = ALL[name]
    b1 = f(x, generator=torch.Generator().manual_seed(7))
    b2 = f(x, generator=torch.Generator().manual_seed(7))
    b3 = f(x, generator=torch.Generator().manual_seed(8))
    assert torch.equal(b1, b2)
    assert not torch.equal(b1, b3)


@pytest.mark.parametrize("name", ["zero", "constant", "blurred", "maximum-distance"])
def test_deterministic_baselines_ignore_generator(name: str) -> None:
    x = image()
    assert torch.equal(ALL[name](x), ALL[name](x, generator=torch.Generator().manual_seed(1)))


def test_zero_and_constant_values() -> None:
    x = image()
    assert (B.zero()(x) == 0).all()
    assert (B.constant(-1.25)(x) == -1.25).all()


# -- ranges --------------------------------------------------------------------------------

def test_uniform_within_given_range() -> None:
    x = image(shape=(4, 1000))
    b = B.uniform(-1.0, 2.0)(x, generator=torch.Generator().manual_seed(0))
    assert (b >= -1.0).all() and (b <= 2.0).all()
    assert b.min() < -0.9 and b.max() > 1.9  # covers the range, not just x's
    assert b.mean().item() == pytest.approx(0.5, abs=0.05)


def test_uniform_default_range_is_per_sample_min_max() -> None:
    x = torch.stack([torch.linspace(0, 1, 500), torch.linspace(10, 30, 500)]).double()
    b = B.uniform()(x, generator=torch.Generator().manual_seed(0))
    assert (b[0] >= 0).all() and (b[0] <= 1).all()
    assert (b[1] >= 10).all() and (b[1] <= 30).all()
    assert b[1].min() < 11 and b[1].max() > 29


def test_gaussian_noise_around_input_and_clipped() -> None:
    x = torch.full((2, 20000), 0.5, dtype=torch.float64)
    free = B.gaussian(0.3)(x, generator=torch.Generator().manual_seed(0))
    assert (free - x).std().item() == pytest.approx(0.3, rel=0.03)
    assert (free - x).mean().item() == pytest.approx(0.0, abs=0.01)
    clipped = B.gaussian(0.3, 0.2, 0.8)(x, generator=torch.Generator().manual_seed(0))
    assert (clipped >= 0.2).all() and (clipped <= 0.8).all()
    assert ((clipped == 0.2).any() and (clipped == 0.8).any())
    inside = (free > 0.2) & (free < 0.8)
    assert torch.equal(clipped[inside], free[inside])  # clipping only touches values out of range


@given(
    st.floats(-5, 5, allow_nan=False),
    st.floats(0.01, 5, allow_nan=False),
    hnp.arrays("float64", st.integers(1, 20), elements=st.floats(0, 1, allow_nan=False)),
)
def test_maximum_distance_is_farthest_valid_value(low: float, width: float, u) -> None:
    """|x - b| >= |x - v| for v in {low, high}, and b is one of them."""
    high = low + width
    x = torch.as_tensor(low + width * u).reshape(1, -1).clamp(low, high)
    b = B.maximum_distance(low, high)(x)
    assert ((b == low) | (b == high)).all()
    d = (x - b).abs()
    assert (d >= (x - low).abs()).all() and (d >= (x - high).abs()).all()
    assert (d >= (high - low) / 2 - 1e-12).all()  # at least half the range, up to round-off


def test_maximum_distance_default_range_per_sample() -> None:
    x = torch.tensor([[0.0, 0.2, 1.0], [5.0, 9.0, 6.0]], dtype=torch.float64)
    assert torch.equal(B.maximum_distance()(x), torch.tensor([[1.0, 1.0, 0.0], [9.0, 5.0, 9.0]], dtype=torch.float64))


@pytest.mark.parametrize("factory", [B.uniform, B.maximum_distance])
def test_bad_bounds_raise(factory) -> None:
    with pytest.raises(InputError, match="low must be <= high"):
        factory(1.0, 0.0)
    with pytest.raises(InputError, match="finite"):
        factory(float("nan"), 1.0)


# -- blur ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sigma", [0.5, 2.0, 5.0, 50.0])
def test_blur_of_constant_image_is_the_constant(dtype: torch.dtype, sigma: float) -> None:
    x = torch.full((2, 3, 12, 17), 0.75, dtype=dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert torch.allclose(B.gaussian_blur(x, sigma), x, atol=tol, rtol=0)


def test_blur_keeps_channels_independent() -> None:
    x = image(shape=(1, 3, 16, 16))
    x[:, 1] = 0.0
    out = B.gaussian_blur(x, 2.0)
    assert (out[:, 1] == 0).all()
    assert torch.allclose(out[:, 0], B.gaussian_blur(x[:, :1], 2.0)[:, 0])


@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_blur_approximately_preserves_image_mean(sigma: float) -> None:
    x = image(shape=(2, 3, 64, 64))
    mx, mb = x.mean(dim=(2, 3)), B.gaussian_blur(x, sigma).mean(dim=(2, 3))
    assert torch.allclose(mx, mb, atol=5e-3, rtol=0)
    assert B.gaussian_blur(x, sigma).std() < x.std()  # and it smooths


@pytest.mark.parametrize("sigma", [1.5, 3.0, 5.0])
def test_blur_of_delta_has_second_moment_sigma_squared(sigma: float) -> None:
    size = 101
    x = torch.zeros(1, 1, size, size, dtype=torch.float64)
    x[0, 0, size // 2, size // 2] = 1.0
    r = torch.arange(size, dtype=torch.float64) - size // 2
    wide = B.gaussian_blur(x, sigma, kernel_size=2 * math.ceil(6 * sigma) + 1)[0, 0]
    default = B.gaussian_blur(x, sigma)[0, 0]
    for out, rel in ((wide, 1e-3), (default, 0.05)):  # the default kernel truncates at 3 sigma (~3% less variance)
        assert out.sum().item() == pytest.approx(1.0, abs=1e-12)
        var_row = (out.sum(1) * r**2).sum().item()
        var_col = (out.sum(0) * r**2).sum().item()
        assert var_row == pytest.approx(sigma**2, rel=rel) and var_col == pytest.approx(sigma**2, rel=rel)
        assert (out * r[:, None] * r[None, :]).sum().item() == pytest.approx(0.0, abs=1e-12)  # isotropic, separable


def test_blur_keeps_shape_when_kernel_exceeds_image() -> None:
    x = image(shape=(1, 2, 3, 1))
    out = B.gaussian_blur(x, 50.0, kernel_size=51)
    assert out.shape == x.shape
    assert torch.allclose(out.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.2)


def test_blur_sigma_zero_is_identity() -> None:
    x = image()
    assert torch.equal(B.gaussian_blur(x, 0.0), x)


@pytest.mark.parametrize("shape", [(4, 10), (2, 3, 8), (1, 1, 2, 4, 4)])
def test_blurred_rejects_non_image_input(shape: tuple[int, ...]) -> None:
    with pytest.raises(InputError, match=r"\(N, C, H, W\)"):
        B.blurred(1.0)(torch.zeros(shape))
    with pytest.raises(InputError):
        B.gaussian_blur(torch.zeros(shape), 1.0)


@pytest.mark.parametrize("bad", [dict(sigma=-1.0), dict(sigma=float("inf")), dict(kernel_size=4), dict(kernel_size=0)])
def test_blurred_bad_options_raise(bad: dict) -> None:
    with pytest.raises(InputError):
        B.blurred(**bad)


# -- registry and resolve ------------------------------------------------------------------

def test_registry_builds_every_baseline() -> None:
    x = image()
    for name in B.BASELINES:
        f = B.baseline(name, value=1.0) if name == "constant" else B.baseline(name)
        assert f(x).shape == x.shape
    assert B.baseline("blurred", sigma=2.0) == B.blurred(2.0)


def test_unknown_name_raises_and_lists_valid() -> None:
    with pytest.raises(InputError) as info:
        B.baseline("black-and-white")
    assert all(name in str(info.value) for name in B.BASELINES)
    with pytest.raises(InputError):
        B.resolve("nope", image())
    with pytest.raises(InputError, match="bad options"):
        B.baseline("zero", sigma=1.0)


def test_resolve_accepts_every_spec() -> None:
    x = image()
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert (B.resolve(None, x) == 0).all()
    assert (B.resolve(2, x) == 2).all() and (B.resolve(0.5, x) == 0.5).all()
    row = torch.arange(7, dtype=x.dtype)
    assert torch.equal(B.resolve(row, x), row.expand_as(x))
    assert torch.equal(B.resolve("uniform", x, g()), B.uniform()(x, g()))
    assert torch.equal(B.resolve(B.gaussian(0.1), x, g()), B.gaussian(0.1)(x, g()))


def test_resolve_rejects_bad_specs() -> None:
    x = image()
    with pytest.raises(InputError, match="broadcast"):
        B.resolve(torch.zeros(5, dtype=x.dtype), x)
    with pytest.raises(InputError, match="shape"):
        B.resolve(lambda x, generator=None: torch.zeros(3, dtype=x.dtype), x)
    with pytest.raises(InputError):
        B.resolve(lambda x, generator=None: x.float(), x)  # dtype changed
    with pytest.raises(InputError):
        B.resolve(True, x)
    with pytest.raises(InputError):
        B.resolve([0.0], x)

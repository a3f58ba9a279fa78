"""Integrated-Gradients baselines (Sturmfels, Lundberg & Lee, Distill 2020).

A baseline is a callable ``(x, generator=None) -> Tensor`` returning a tensor of x's shape, dtype
and device; x is batched, (N, ...). Random baselines draw from `generator` (on its device, then
moved to x's), so a seeded generator gives the same baseline every time.

Valid range: where ``low`` / ``high`` are None, each defaults to the per-sample minimum / maximum
of x (over all features of that sample), i.e. low_n = min_j x[n, j], high_n = max_j x[n, j].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Callable, Optional, Protocol, Union

import torch
import torchvision.transforms.functional as TF
from torch import Tensor

from workbench.core.errors import InputError
from workbench.core.validation import check_image_batch, resolve_baseline

__all__ = [
    "Baseline", "zero", "constant", "uniform", "gaussian", "blurred", "maximum_distance",
    "gaussian_blur", "BASELINES", "baseline", "resolve",
]


class Baseline(Protocol):
    def __call__(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor: ...


# -- helpers -------------------------------------------------------------------------------

def _per_sample(x: Tensor, reduce: Callable[[Tensor], Tensor]) -> Tensor:
    """reduce over all features of each sample, shaped (N, 1, ..., 1) to broadcast against x."""
    return reduce(x.reshape(x.shape[0], -1)).reshape(x.shape[0], *([1] * (x.dim() - 1)))


def _valid_range(x: Tensor, low: Optional[float], high: Optional[float]) -> tuple[Tensor, Tensor]:
    """(low, high) broadcastable to x; None -> per-sample min / max of x."""
    lo = _per_sample(x, lambda v: v.amin(1)) if low is None else torch.full((), float(low), dtype=x.dtype, device=x.device)
    hi = _per_sample(x, lambda v: v.amax(1)) if high is None else torch.full((), float(high), dtype=x.dtype, device=x.device)
    return lo, hi


def _check_bounds(low: Optional[float], high: Optional[float]) -> None:
    for name, v in (("low", low), ("high", high)):
        if v is not None and not math.isfinite(v):
            raise InputError(f"{name} must be finite, got {v}")
    if low is not None and high is not None and not low <= high:
        raise InputError(f"low must be <= high, got low={low}, high={high}")


def _draw(kind: str, x: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    """Standard uniform ('rand') or normal ('randn') noise of x's shape and dtype, on x's device."""
    device = generator.device if generator is not None else x.device
    draw = torch.rand if kind == "rand" else torch.randn
    return draw(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)


# -- Gaussian blur (shared with I-GOS) -------------------------------------------------------

def gaussian_blur(x: Tensor, sigma: float, kernel_size: Optional[int] = None) -> Tensor:
    """Gaussian blur of (N, C, H, W) over H and W, each channel on its own, reflect padding:
    ``torchvision.transforms.functional.gaussian_blur`` with kernel
    g_i = exp(-i^2 / (2 sigma^2)) / sum_j exp(-j^2 / (2 sigma^2)), i = -(k//2)..k//2.

    Kernel size k = kernel_size or 2 ceil(3 sigma) + 1 (odd), capped per axis at 2 L - 1 for an axis
    of length L (reflect padding needs k // 2 < L), so the output shape equals the input shape.
    sigma = 0 returns a copy of x.
    """
    check_image_batch(x, "gaussian_blur")
    if not (isinstance(sigma, Real) and math.isfinite(sigma) and sigma >= 0):
        raise InputError(f"sigma must be a finite number >= 0, got {sigma!r}")
    if kernel_size is None:
        kernel_size = 2 * math.ceil(3 * sigma) + 1
    elif isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise InputError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
    if sigma == 0:
        return x.clone()
    h, w = x.shape[2:]
    sizes = [min(kernel_size, 2 * w - 1), min(kernel_size, 2 * h - 1)]  # torchvision: [width, height]
    return TF.gaussian_blur(x, sizes, [float(sigma), float(sigma)])


# -- baselines -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Zero:
    """b = 0 (the black image)."""

    def __call__(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        return torch.zeros_like(x)


@dataclass(frozen=True)
class Constant:
    """b = value everywhere."""

    value: float

    def __call__(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        return torch.full_like(x, self.value)


@dataclass(frozen=True)
class Uniform:
    """b ~ U(low, high) per feature: b = low + (high - low) u, u ~ U(0, 1)."""

    low: Optional[float] = None
    high: Optional[float] = None

    def __call__(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        lo, hi = _valid_range(x, self.low, self.high)
        return lo + (hi - lo) * _draw("rand", x, generator)


@dataclass(frozen=True)
class Gaussian:
    """b = clip(x + sigma e, low, high), e ~ N(0, I); clipped only on the sides given (not None)."""

    sigma: float = 0.1
    low: Optional[float] = None
    high: Optional[float] = None

    def __call__(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        b = x + self.sigma * _draw("randn", x, generator)
        return b if self.low is None and self.high is None else b.clamp(self.low, self.high)


@dataclass(frozen=True)
class Blurred:
    """b = G_sigma * x, a Gaussian blur over the spatial dims of (N, C, H, W); see gaussian_blur."""

    sigma: float = 5.0
    kernel_size: Optional[int] = None

    def __call__(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        check_image_batch(x, "the blurred baseline")
        return gaussian_blur(x, self.sigma, self.kernel_size)


@dataclass(frozen=True)
class MaximumDistance:
    """Per feature the farthest valid value: b = high where x < (low + high) / 2, else low.

    Computed as b = low where |x - low| >= |x - high|, else high: the same rule in exact arithmetic,
    and in floating point it never picks the nearer end for x within round-off of the midpoint.
    """

    low: Optional[float] = None
    high: Optional[float] = None

    def __call__(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        lo, hi = _valid_range(x, self.low, self.high)
        return torch.where((x - lo).abs() >= (x - hi).abs(), lo, hi).expand_as(x).clone()


def zero() -> Baseline:
    """The all-zero (black) baseline."""
    return Zero()


def constant(value: float) -> Baseline:
    """A constant baseline b = value."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise InputError(f"constant baseline value must be a finite number, got {value!r}")
    return Constant(float(value))


def uniform(low: Optional[float] = None, high: Optional[float] = None) -> Baseline:
    """Uniform noise over the valid range [low, high] (None -> per-sample min / max of x)."""
    _check_bounds(low, high)
    return Uniform(low, high)


def gaussian(sigma: float = 0.1, low: Optional[float] = None, high: Optional[float] = None) -> Baseline:
    """Gaussian noise around the input, x + N(0, sigma^2), clipped to [low, high] where given."""
    if not (isinstance(sigma, Real) and math.isfinite(sigma) and sigma >= 0):
        raise InputError(f"sigma must be a finite number >= 0, got {sigma!r}")
    _check_bounds(low, high)
    return Gaussian(float(sigma), low, high)


def blurred(sigma: float = 5.0, kernel_size: Optional[int] = None) -> Baseline:
    """A Gaussian-blurred copy of the input image (N, C, H, W)."""
    if not (isinstance(sigma, Real) and math.isfinite(sigma) and sigma >= 0):
        raise InputError(f"sigma must be a finite number >= 0, got {sigma!r}")
    if kernel_size is not None and (isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0):
        raise InputError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
    return Blurred(float(sigma), kernel_size)


def maximum_distance(low: Optional[float] = None, high: Optional[float] = None) -> Baseline:
    """The farthest valid value per feature (None bounds -> per-sample min / max of x)."""
    _check_bounds(low, high)
    return MaximumDistance(low, high)


# -- registry ------------------------------------------------------------------------------

BASELINES: dict[str, Callable[..., Baseline]] = {
    "zero": zero,
    "constant": constant,
    "uniform": uniform,
    "gaussian": gaussian,
    "blurred": blurred,
    "maximum-distance": maximum_distance,
}


def baseline(name: str, **options: object) -> Baseline:
    """The baseline registered as `name`, built with `options` (e.g. baseline("blurred", sigma=2))."""
    if name not in BASELINES:
        raise InputError(f"unknown baseline {name!r}; valid baselines: {', '.join(BASELINES)}")
    try:
        return BASELINES[name](**options)
    except TypeError as e:
        raise InputError(f"bad options for baseline {name!r}: {e}") from None


BaselineSpec = Union[None, float, int, Tensor, str, Baseline]


def resolve(spec: BaselineSpec, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """The baseline tensor for x: None -> zeros, number -> constant, tensor -> broadcast to x,
    name -> baseline(name)(x), callable -> spec(x, generator=generator) (checked: shape, dtype, device)."""
    if spec is None or isinstance(spec, (Real, Tensor)) and not isinstance(spec, bool):
        return resolve_baseline(spec if not isinstance(spec, Real) else float(spec), x)
    if isinstance(spec, str):
        b = baseline(spec)(x, generator=generator)
    elif callable(spec):
        b = spec(x, generator=generator)
        if not isinstance(b, Tensor):
            raise InputError(f"baseline callable returned {type(b).__name__}, not a tensor")
    else:
        raise InputError(f"baseline must be None, a number, a tensor, a name or a callable, got {type(spec).__name__}")
    if b.shape != x.shape:
        raise InputError(f"baseline shape {tuple(b.shape)} does not match the input shape {tuple(x.shape)}")
    return resolve_baseline(b, x)

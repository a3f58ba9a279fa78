"""Known-answer fixtures for faithfulness metrics and mask optimizers: a CNN that looks at one patch.

``PatchFixture`` builds a constructed (not trained) CNN whose class-0 logit depends only on the
pixels of a known rectangular patch, additively:

    F_0(x) = offset + sum_{p in patch} a * g(xbar_p),   F_1(x) = 0,
    xbar_p = mean over channels of x at pixel p,   a = gain / (|patch| * cap),

with g(v) = min(max(v, 0), cap) (``cap`` given: the contribution saturates, as in the IG paper's
1 - ReLU(1 - x) example, so the plain gradient is exactly zero inside a bright patch) or
g(v) = max(v, 0) / 1 (``cap=None``, a = gain / |patch|). Layers: 1x1 conv (channel mean, and the
mean minus cap), ReLU, 1x1 conv (difference: the clamp), flatten, linear (weights a on the patch,
zero elsewhere).

Because F_0 is a sum of per-pixel terms, replacing pixel p by a canvas value c_p changes the logit
by exactly delta_p = a (g(xbar_p) - g(cbar_p)); ``oracle(x, canvas)`` returns that map. It is the
perfect map: for every k, removing the k pixels of largest delta lowers the logit at least as much as
removing any other k pixels, and the class probability is increasing in the logit. So on this
fixture the oracle's deletion curve is pointwise lowest, the anti-oracle's (-delta) highest, and any
other map's curve lies between them; where every delta_p >= 0 every deletion curve is non-increasing
and every insertion curve non-decreasing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import torch
from torch import Tensor, nn

from workbench.core.errors import InputError


@dataclass(frozen=True)
class Patch:
    """Rows top..top+height-1, columns left..left+width-1."""

    top: int
    left: int
    height: int
    width: int

    def indicator(self, size: tuple[int, int], *, dtype: torch.dtype = torch.float64) -> Tensor:
        """(H, W) tensor, 1 on the patch and 0 elsewhere."""
        m = torch.zeros(size, dtype=dtype)
        m[self.top : self.top + self.height, self.left : self.left + self.width] = 1
        return m

    @property
    def area(self) -> int:
        return self.height * self.width


@dataclass(frozen=True)
class PatchFixture:
    """A patch CNN and images for it; see the module docstring for the formula."""

    size: tuple[int, int] = (16, 16)
    patch: Patch = Patch(5, 6, 4, 4)
    channels: int = 1
    cap: Optional[float] = 0.5
    gain: float = 8.0
    offset: float = -4.0

    def __post_init__(self) -> None:
        h, w = self.size
        p = self.patch
        if not (0 <= p.top and p.top + p.height <= h and 0 <= p.left and p.left + p.width <= w and p.area > 0):
            raise InputError(f"patch {p} does not fit an image of size {self.size}")
        if self.cap is not None and not self.cap > 0:
            raise InputError(f"cap must be positive or None, got {self.cap}")

    @property
    def weight(self) -> float:
        """a, the logit weight of one patch pixel's g(xbar)."""
        return self.gain / (self.patch.area * (self.cap if self.cap is not None else 1.0))

    def model(self, *, dtype: torch.dtype = torch.float64) -> nn.Sequential:
        """The constructed CNN, in eval mode, parameters not requiring grad."""
        h, w = self.size
        c = self.channels
        mean = nn.Conv2d(c, 2, 1)
        clamp = nn.Conv2d(2, 1, 1)
        head = nn.Linear(h * w, 2)
        with torch.no_grad():
            mean.weight.fill_(1.0 / c)
            mean.bias.copy_(torch.tensor([0.0, self.cap if self.cap is not None else 1e30]).neg())
            clamp.weight.copy_(torch.tensor([1.0, -1.0]).view(1, 2, 1, 1))
            clamp.bias.zero_()
            head.weight.zero_()
            head.weight[0] = self.weight * self.patch.indicator(self.size).flatten()
            head.bias.copy_(torch.tensor([self.offset, 0.0]))
        net = nn.Sequential(mean, nn.ReLU(), clamp, nn.Flatten(), head).to(dtype).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        return net

    def image(
        self,
        generator: Optional[torch.Generator] = None,
        *,
        inside: tuple[float, float] = (0.8, 1.0),
        outside: tuple[float, float] = (0.0, 0.1),
        dtype: torch.dtype = torch.float64,
    ) -> Tensor:
        """One image (1, C, H, W): uniform in `inside` on the patch, in `outside` elsewhere."""
        h, w = self.size
        u = torch.rand((1, self.channels, h, w), generator=generator, dtype=torch.float64)
        on = self.patch.indicator(self.size).bool()
        lo = torch.where(on, inside[0], outside[0])
        hi = torch.where(on, inside[1], outside[1])
        return (lo + (hi - lo) * u).to(dtype)

    def contribution(self, x: Tensor) -> Tensor:
        """Per-pixel logit terms a * g(xbar_p) on the patch (0 elsewhere), shape (N, H, W)."""
        v = x.mean(1)
        g = v.clamp(0.0, self.cap) if self.cap is not None else v.clamp(min=0.0)
        return self.weight * g * self.patch.indicator(self.size, dtype=x.dtype).to(x.device)

    def oracle(self, x: Tensor, canvas: Tensor) -> Tensor:
        """delta_p: the exact logit drop when pixel p of x is replaced by the canvas's, shape (N, H, W)."""
        return self.contribution(x) - self.contribution(canvas)

    def calibrated(self, x: Tensor, canvas: Tensor, *, p_image: float, p_canvas: float) -> "PatchFixture":
        """The same patch and saturation with gain and offset set so that the class-0 probability is
        `p_image` at x and `p_canvas` at the canvas (x and canvas: one image each, (1, C, H, W))."""
        for name, p in (("p_image", p_image), ("p_canvas", p_canvas)):
            if not 0.0 < p < 1.0:
                raise InputError(f"{name} must be in (0, 1), got {p}")
        unit = replace(self, gain=1.0, offset=0.0)
        s_image, s_canvas = float(unit.contribution(x).sum()), float(unit.contribution(canvas).sum())
        if not s_image > s_canvas:
            raise InputError("the patch of x must contribute more than the canvas's to calibrate the fixture")
        logit = lambda p: math.log(p / (1.0 - p))  # noqa: E731
        gain = (logit(p_image) - logit(p_canvas)) / (s_image - s_canvas)
        return replace(self, gain=gain, offset=logit(p_image) - gain * s_image)

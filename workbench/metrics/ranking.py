"""From a saliency map to an order of the image's pixels (spatial positions), most salient first.

A map may have x's shape (N, C, H, W), one channel (N, 1, H, W), or no channel axis (N, H, W).
Channels are reduced to one score per pixel by ``channel_reduction``, a convention the
literature disagrees on:

* ``"sum"`` (default): s_p = sum_c A_{c,p} -- signed, so evidence against the class ranks last;
* ``"abs-sum"``: s_p = sum_c |A_{c,p}| -- magnitude only (common for gradient maps);
* ``"max-abs"``: s_p = max_c |A_{c,p}|.

Ties (a flat map, a piecewise-constant upsampled mask) are broken by a random permutation of the
pixels drawn from ``seed``, shared by every sample, so a sample's order does not depend on the batch
it is in and a flat map deletes pixels in random order, not in raster order.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from workbench.core.errors import InputError

ChannelReduction = Literal["sum", "abs-sum", "max-abs"]
CHANNEL_REDUCTIONS: tuple[str, ...] = ("sum", "abs-sum", "max-abs")


def pixel_saliency(saliency: Tensor, x: Tensor, channel_reduction: str = "sum") -> Tensor:
    """One score per pixel, shape (N, H * W), from a map of shape (N, C, H, W), (N, 1, H, W) or (N, H, W)."""
    if channel_reduction not in CHANNEL_REDUCTIONS:
        raise InputError(f"unknown channel_reduction {channel_reduction!r}; valid: {', '.join(CHANNEL_REDUCTIONS)}")
    if not isinstance(saliency, Tensor):
        raise InputError(f"saliency map must be a torch.Tensor, got {type(saliency).__name__}")
    n, c, h, w = x.shape
    s = saliency.detach()
    if s.dim() == 3:
        s = s.unsqueeze(1)
    if s.dim() != 4 or s.shape[0] != n or s.shape[2:] != (h, w) or s.shape[1] not in (1, c):
        raise InputError(
            f"saliency map of shape {tuple(saliency.shape)} does not fit the images {tuple(x.shape)}; "
            f"expected ({n}, {c}, {h}, {w}), ({n}, 1, {h}, {w}) or ({n}, {h}, {w})"
        )
    if not s.is_floating_point():
        s = s.to(torch.float64)
    if not torch.isfinite(s).all():
        raise InputError("saliency map contains NaN or inf")
    if channel_reduction == "sum":
        r = s.sum(1)
    elif channel_reduction == "abs-sum":
        r = s.abs().sum(1)
    else:
        r = s.abs().amax(1)
    return r.reshape(n, h * w)


def tie_break_permutation(pixels: int, seed: int, device: torch.device) -> Tensor:
    """The random pixel permutation that decides ties, from `seed` only."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(pixels, generator=g).to(device)


def salience_ranks(scores: Tensor, *, seed: int = 0) -> Tensor:
    """rank[i, p]: the position of pixel p when sample i's pixels are sorted most salient first (0-based).

    Ties are broken by a seeded permutation shared across samples (see the module docstring).
    """
    n, p = scores.shape
    perm = tie_break_permutation(p, seed, scores.device)
    order_in_perm = torch.sort(scores[:, perm], dim=1, descending=True, stable=True).indices
    order = perm[order_in_perm]
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(p, device=scores.device).expand(n, p).contiguous())
    return ranks


def pixel_counts(pixels: int, step: int | None, default_points: int) -> Tensor:
    """0, step, 2 step, ..., pixels (the last point is always all pixels); step None -> ceil(pixels / default_points)."""
    if step is None:
        step = max(1, math.ceil(pixels / default_points))
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise InputError(f"step must be a positive number of pixels, got {step!r}")
    if step > pixels:
        raise InputError(f"step {step} is larger than the image's {pixels} pixels")
    counts = list(range(0, pixels, step)) + [pixels]
    return torch.tensor(counts, dtype=torch.long)

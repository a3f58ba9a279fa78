"""Pixel perturbation (Srinivas & Fleuret, FullGrad, NeurIPS 2019, Section 5.1).

Remove the k% *least* salient pixels (spatial positions, all channels), replace them by a chosen
value, and report the absolute fractional change of the output,

    change_k = |f_t(x_k) - f_t(x)| / |f_t(x)|,

lower is better: a faithful map puts the pixels the output does not need at the bottom. k pixels
= round(k / 100 * P). The paper's axis is k in {0.1, 1, 3, 5, 10} % (*reconstructed* from its
Figure 3; pass ``percentages`` to change it). The replacement is any baseline spec (number, tensor,
``workbench.paths.baselines`` name, callable); default 0.0, which for mean-normalized inputs is the
data mean. f_t is the class probability by default (``score="logit"`` for the logit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from workbench.paths import baselines
from workbench.core.errors import InputError
from workbench.core.modelguard import preserved
from workbench.core.validation import Target, check_input, check_model, resolve_target
from workbench.core.validation import check_image_batch
from workbench.metrics.ranking import pixel_saliency, salience_ranks
from workbench.metrics.scores import check_score_kind, scores_no_grad

#: the percentages of the FullGrad paper's pixel-perturbation figure
FULLGRAD_PERCENTAGES: tuple[float, ...] = (0.1, 1.0, 3.0, 5.0, 10.0)


@dataclass(frozen=True)
class PixelPerturbation:
    """Scores before and after removing ``percentages[j]`` % of the least salient pixels."""

    percentages: Tensor  # (K,)
    removed: Tensor  # (K,) pixels removed
    original: Tensor  # (N,) f_t(x)
    perturbed: Tensor  # (N, K) f_t(x_k)

    @property
    def change(self) -> Tensor:
        """Absolute fractional output change |f(x_k) - f(x)| / |f(x)|, shape (N, K) (inf where f(x) = 0)."""
        return (self.perturbed - self.original.unsqueeze(1)).abs() / self.original.abs().unsqueeze(1)


def pixel_perturbation(
    model: nn.Module,
    x: Tensor,
    saliency: Tensor,
    *,
    target: Target,
    percentages: Sequence[float] = FULLGRAD_PERCENTAGES,
    replacement: baselines.BaselineSpec = 0.0,
    score: str = "probability",
    channel_reduction: str = "sum",
    seed: int = 0,
    chunk_size: int = 256,
) -> PixelPerturbation:
    """Remove the k% least salient pixels of each image (k in `percentages`) and score the result."""
    check_model(model)
    check_image_batch(x, "pixel perturbation", why="it removes and inserts pixels, which a non-image input does not have")
    check_input(x, model)
    check_score_kind(score)
    pct = [float(p) for p in percentages]
    if not pct or any(not (math.isfinite(p) and 0.0 <= p <= 100.0) for p in pct):
        raise InputError(f"percentages must be a non-empty list of numbers in [0, 100], got {list(percentages)!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    n, ch, h, w = x.shape
    pixels = h * w
    t = resolve_target(target, n, outputs=2**62)
    ranks = salience_ranks(pixel_saliency(saliency, x, channel_reduction), seed=seed).view(n, 1, 1, h, w)
    removed = torch.tensor([int(round(p / 100.0 * pixels)) for p in pct], dtype=torch.long)
    x = x.detach()
    r = baselines.resolve(replacement, x).detach()
    with preserved(model, freeze_parameters=True):
        original = scores_no_grad(model, x, t, score, chunk_size=chunk_size)
        out = []
        per_chunk = max(1, chunk_size // n)
        for start in range(0, len(pct), per_chunk):
            k = removed[start : start + per_chunk].to(x.device)
            # the k least salient pixels are the last k of the most-salient-first order
            drop = ranks >= (pixels - k).view(1, -1, 1, 1, 1)
            images = torch.where(drop, r.unsqueeze(1), x.unsqueeze(1)).reshape(-1, ch, h, w)
            out.append(scores_no_grad(model, images, t.repeat_interleave(len(k)), score, chunk_size=chunk_size).view(n, len(k)))
    perturbed = torch.cat(out, dim=1)
    # removing no pixel leaves the image itself: its score is the original one, exactly (a model's
    # round-off depends on the batch size, and a batch of copies must not read as a change)
    perturbed[:, removed.to(perturbed.device) == 0] = original.unsqueeze(1).to(perturbed.dtype)
    return PixelPerturbation(torch.tensor(pct, dtype=torch.float64), removed, original, perturbed)

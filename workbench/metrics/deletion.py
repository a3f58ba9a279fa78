"""Deletion and insertion curves and their areas (Petsiuk, Das & Saenko, RISE, BMVC 2018).

Pixels (spatial positions, all channels together) are ordered most salient first (see
``ranking``). With p_k = the first k pixels of that order and c a canvas image:

* deletion:  D(k) = f_t(x with the pixels p_k replaced by c), k = 0, step, 2 step, ..., P;
  D starts at f_t(x) and ends at f_t(c); a faithful map makes it fall fast (lower area is better);
* insertion: I(k) = f_t(c with the pixels p_k taken from x); starts at f_t(c), ends at f_t(x);
  a faithful map makes it rise fast (higher area is better).

The curve's x-axis is the fraction k / P in [0, 1], and the area is the trapezoid rule over the
whole curve (the I-GOS reference's own evaluation returns the score at a single fraction instead).
f_t is the class probability by default (``score="logit"`` for the logit).

Canvas: RISE deletes to black and inserts onto a blurred image; I-GOS uses its blurred baseline
for both. Both curves here default to the I-GOS blur (Gaussian, kernel 51, sigma 50); pass
``canvas=0.0`` for RISE's black deletion. Any baseline spec works: a number, a tensor of x's
shape, a name from ``workbench.paths.baselines`` or a callable.

Step: ``step`` pixels per point; the default ceil(P / 200) gives the reference's 200 points.
All points of all samples are evaluated as batches of at most ``chunk_size`` images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch import Tensor, nn

from workbench.paths import baselines
from workbench.core.errors import InputError
from workbench.core.modelguard import preserved
from workbench.core.validation import Target, check_input, check_model, resolve_target
from workbench.core.validation import check_image_batch
from workbench.metrics.ranking import pixel_counts, pixel_saliency, salience_ranks
from workbench.metrics.scores import check_score_kind, scores_no_grad

#: the I-GOS reference's blurred image: Gaussian kernel 51, sigma 50
IGOS_BLUR_SIGMA = 50.0
IGOS_BLUR_KERNEL = 51
#: the blurred canvas both curves use by default
BLURRED_CANVAS = baselines.blurred(sigma=IGOS_BLUR_SIGMA, kernel_size=IGOS_BLUR_KERNEL)
#: points on a curve when ``step`` is not given (the I-GOS reference evaluates 200)
DEFAULT_POINTS = 200
#: images per forward pass
DEFAULT_CHUNK = 256

CurveKind = Literal["deletion", "insertion"]


@dataclass(frozen=True)
class Curve:
    """A deletion or insertion curve: ``scores[i, j]`` after ``fractions[j]`` of the pixels."""

    kind: str
    fractions: Tensor  # (T,), 0 ... 1
    scores: Tensor  # (N, T)

    @property
    def area(self) -> Tensor:
        """Trapezoid area under each sample's curve over fractions 0..1, shape (N,)."""
        return torch.trapezoid(self.scores, self.fractions.to(self.scores), dim=1)


def deletion_curve(
    model: nn.Module,
    x: Tensor,
    saliency: Tensor,
    *,
    target: Target,
    canvas: baselines.BaselineSpec = BLURRED_CANVAS,
    step: Optional[int] = None,
    score: str = "probability",
    channel_reduction: str = "sum",
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
) -> Curve:
    """The deletion curve of `saliency` (most salient pixels replaced by the canvas first)."""
    return deletion_insertion(
        model, x, saliency, target=target, canvas=canvas, step=step, score=score,
        channel_reduction=channel_reduction, seed=seed, chunk_size=chunk_size, kinds=("deletion",),
    )[0]


def insertion_curve(
    model: nn.Module,
    x: Tensor,
    saliency: Tensor,
    *,
    target: Target,
    canvas: baselines.BaselineSpec = BLURRED_CANVAS,
    step: Optional[int] = None,
    score: str = "probability",
    channel_reduction: str = "sum",
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
) -> Curve:
    """The insertion curve of `saliency` (most salient pixels put onto the canvas first)."""
    return deletion_insertion(
        model, x, saliency, target=target, canvas=canvas, step=step, score=score,
        channel_reduction=channel_reduction, seed=seed, chunk_size=chunk_size, kinds=("insertion",),
    )[0]


def deletion_insertion(
    model: nn.Module,
    x: Tensor,
    saliency: Tensor,
    *,
    target: Target,
    canvas: baselines.BaselineSpec = BLURRED_CANVAS,
    step: Optional[int] = None,
    score: str = "probability",
    channel_reduction: str = "sum",
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
    kinds: tuple[str, ...] = ("deletion", "insertion"),
) -> tuple[Curve, ...]:
    """The curves named in `kinds` (default deletion and insertion), sharing one pixel order and canvas."""
    check_model(model)
    check_image_batch(x, "deletion/insertion", why="it removes and inserts pixels, which a non-image input does not have")
    check_input(x, model)
    check_score_kind(score)
    for k in kinds:
        if k not in ("deletion", "insertion"):
            raise InputError(f"unknown curve {k!r}; valid: deletion, insertion")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    n, _, h, w = x.shape
    t = resolve_target(target, n, outputs=2**62)
    ranks = salience_ranks(pixel_saliency(saliency, x, channel_reduction), seed=seed)
    counts = pixel_counts(h * w, step, DEFAULT_POINTS)
    x = x.detach()
    c = baselines.resolve(canvas, x).detach()
    fractions = counts.to(torch.float64) / (h * w)
    with preserved(model, freeze_parameters=True):
        return tuple(
            Curve(k, fractions.to(x.device), _curve_scores(k, model, x, c, ranks, counts, t, score, chunk_size))
            for k in kinds
        )


def _curve_scores(
    kind: str, model: nn.Module, x: Tensor, canvas: Tensor, ranks: Tensor, counts: Tensor,
    target: Tensor, score: str, chunk_size: int,
) -> Tensor:
    n, ch, h, w = x.shape
    r = ranks.view(n, 1, 1, h, w)
    first, second = (canvas, x) if kind == "deletion" else (x, canvas)
    per_chunk = max(1, chunk_size // n)
    out = []
    for start in range(0, len(counts), per_chunk):
        k = counts[start : start + per_chunk].to(x.device)
        chosen = r < k.view(1, -1, 1, 1, 1)  # (N, T, 1, H, W): the k most salient pixels
        images = torch.where(chosen, first.unsqueeze(1), second.unsqueeze(1)).reshape(-1, ch, h, w)
        s = scores_no_grad(model, images, target.repeat_interleave(len(k)), score)
        out.append(s.view(n, len(k)))
    return torch.cat(out, dim=1)

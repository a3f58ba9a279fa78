"""The class score a faithfulness metric (or a mask objective) tracks: probability or logit.

``class_scores(model, x, target, kind)`` returns one number per row of x:

* ``"probability"``: softmax(F(x))_t, computed as exp(log_softmax) -- the score RISE's deletion /
  insertion curves and I-GOS's objective use (the I-GOS reference code's ``softmax=True``);
* ``"logit"``: F_t(x), the pre-softmax output.

Targets are checked against the model's output width, with the same message as every method.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import Tensor, nn

from workbench.core.errors import InputError
from workbench.core.validation import check_output, resolve_target

ScoreKind = Literal["probability", "logit"]
SCORE_KINDS: tuple[str, ...] = ("probability", "logit")


def check_score_kind(kind: str) -> str:
    """`kind` if it names a score, else an InputError listing the valid ones."""
    if kind not in SCORE_KINDS:
        raise InputError(f"unknown score {kind!r}; valid scores: {', '.join(SCORE_KINDS)}")
    return kind


def class_scores(model: nn.Module, x: Tensor, target: Tensor, kind: str = "probability") -> Tensor:
    """Score of class target[i] for row i of x, shape (N,); differentiable (no no_grad here)."""
    out = model(x)
    classes = check_output(out, x.shape[0])
    t = resolve_target(target, x.shape[0], classes).to(out.device)
    if kind == "logit":
        return out.gather(1, t.view(-1, 1)).squeeze(1)
    if kind == "probability":
        return torch.log_softmax(out, dim=1).gather(1, t.view(-1, 1)).squeeze(1).exp()
    raise InputError(f"unknown score {kind!r}; valid scores: {', '.join(SCORE_KINDS)}")


def scores_no_grad(
    model: nn.Module, x: Tensor, target: Tensor, kind: str = "probability", *, chunk_size: Optional[int] = None
) -> Tensor:
    """class_scores without gradients, in chunks of `chunk_size` rows (None: one batch)."""
    n = x.shape[0]
    step = n if chunk_size is None or chunk_size <= 0 else chunk_size
    with torch.no_grad():
        return torch.cat([class_scores(model, x[s : s + step], target[s : s + step], kind) for s in range(0, n, step)])

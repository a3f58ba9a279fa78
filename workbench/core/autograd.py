"""The one gradient routine every method uses: batched, chunked, target-selected."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from workbench.core.errors import InputError
from workbench.core.validation import check_output


def target_outputs(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """F_target(x) for each row of x: the selected logits, shape (N,)."""
    out = model(x)
    classes = check_output(out, x.shape[0])
    if target.numel() and int(target.max()) >= classes:
        raise InputError(
            f"target {int(target.max())} is out of range for a model with {classes} outputs "
            f"(valid: 0..{classes - 1})"
        )
    return out.gather(1, target.to(out.device).view(-1, 1)).squeeze(1)


def target_gradients(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    chunk_size: Optional[int] = None,
) -> tuple[Tensor, Tensor]:
    """Return (F_target(x), dF_target/dx) for every row of x, in chunks of `chunk_size` rows.

    Rows are independent, so chunking bounds memory without changing any value.
    """
    n = x.shape[0]
    step = n if chunk_size is None or chunk_size <= 0 else chunk_size
    values, grads = [], []
    for start in range(0, n, step):
        xs = x[start : start + step].detach().requires_grad_(True)
        with torch.enable_grad():
            f = target_outputs(model, xs, target[start : start + step])
            (g,) = torch.autograd.grad(f.sum(), xs)
        values.append(f.detach())
        grads.append(g)
    return torch.cat(values), torch.cat(grads)


def forward_targets(
    model: nn.Module, x: Tensor, target: Tensor, *, chunk_size: Optional[int] = None
) -> Tensor:
    """F_target(x) without gradients, chunked like target_gradients."""
    n = x.shape[0]
    step = n if chunk_size is None or chunk_size <= 0 else chunk_size
    with torch.no_grad():
        return torch.cat(
            [target_outputs(model, x[s : s + step], target[s : s + step]) for s in range(0, n, step)]
        )


GradientFunction = Callable[[nn.Module, Tensor, Tensor], Tensor]

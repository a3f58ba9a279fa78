"""Named counterexample networks from the papers, with fixed weights.

Each builder returns a SpecNet (float64 by default); ``paper_case(name)`` adds the input,
baseline (batched ``(1, D)`` tensors) and target the paper discusses.

* ``ig-saturating`` — Sundararajan, Taly, Yan (2017), "Axiomatic Attribution for Deep
  Networks", section 2.1 (Sensitivity(a)): f(x) = 1 - ReLU(1 - x). At x = 2, baseline 0 the
  gradient is 0 although f(2) - f(0) = 1, so plain gradients violate Sensitivity(a).
* ``ig-two-input`` — same paper, its example of DeepLift / LRP breaking implementation
  invariance (arXiv:1703.01365, p. 10; also quoted so in Captum's forum): f(x1, x2) = ReLU(ReLU(x1) - 1 - ReLU(x2)), compared
  there with the functionally equal g(x1, x2) = ReLU(ReLU(x1 - 1) - ReLU(x2))
  (``ig_two_input_equivalent``); the paper's point is x = (3, 1), baseline (0, 0), where
  f(x) - f(0) = 1 but methods with discrete gradients split it differently for f and g.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from workbench.core.errors import InputError
from workbench.nets import spec as S

__all__ = ["ig_saturating", "ig_two_input", "ig_two_input_equivalent", "PAPER_NETS", "paper_case"]


def ig_saturating(dtype: torch.dtype = torch.float64) -> S.SpecNet:
    """f(x) = 1 - ReLU(1 - x): Linear(w=-1, b=1) -> ReLU -> Linear(w=-1, b=1)."""
    spec = S.NetSpec((1,), (S.Linear(1), S.ReLU(), S.Linear(1)))
    state = {"0.weight": [[-1.0]], "0.bias": [1.0], "2.weight": [[-1.0]], "2.bias": [1.0]}
    return S.build(spec, dtype=dtype, state=state)


def ig_two_input(dtype: torch.dtype = torch.float64) -> S.SpecNet:
    """f(x1, x2) = ReLU(ReLU(x1) - 1 - ReLU(x2)): Linear(I, no bias) -> ReLU -> Linear([1, -1], b=-1) -> ReLU."""
    spec = S.NetSpec((2,), (S.Linear(2, bias=False), S.ReLU(), S.Linear(1), S.ReLU()))
    state = {"0.weight": [[1.0, 0.0], [0.0, 1.0]], "2.weight": [[1.0, -1.0]], "2.bias": [-1.0]}
    return S.build(spec, dtype=dtype, state=state)


def ig_two_input_equivalent(dtype: torch.dtype = torch.float64) -> S.SpecNet:
    """g(x1, x2) = ReLU(ReLU(x1 - 1) - ReLU(x2)), equal to ``ig_two_input`` as a function."""
    spec = S.NetSpec((2,), (S.Linear(2), S.ReLU(), S.Linear(1, bias=False), S.ReLU()))
    state = {"0.weight": [[1.0, 0.0], [0.0, 1.0]], "0.bias": [-1.0, 0.0], "2.weight": [[1.0, -1.0]]}
    return S.build(spec, dtype=dtype, state=state)


PAPER_NETS: dict[str, Callable[..., S.SpecNet]] = {
    "ig-saturating": ig_saturating,
    "ig-two-input": ig_two_input,
}

_CASES: dict[str, tuple[list, list, int]] = {
    "ig-saturating": ([2.0], [0.0], 0),
    "ig-two-input": ([3.0, 1.0], [0.0, 0.0], 0),
}


def paper_case(name: str, dtype: torch.dtype = torch.float64) -> tuple[S.SpecNet, Tensor, Tensor, int]:
    """(net, x, baseline, target) for a named paper network; x and baseline have shape (1, D)."""
    if name not in PAPER_NETS:
        raise InputError(f"unknown paper network {name!r}; known: {', '.join(PAPER_NETS)}")
    x, base, target = _CASES[name]
    return (
        PAPER_NETS[name](dtype=dtype),
        torch.tensor([x], dtype=dtype),
        torch.tensor([base], dtype=dtype),
        target,
    )

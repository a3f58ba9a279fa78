"""Degenerate cases: inputs (or whole baseline-to-input paths) that stay on a ReLU kink or
inside a max-pool tie, where any subgradient is a valid derivative.

There round-off in the last bit decides which argmax a max pool passes the gradient to, so two
sound implementations (or one on two functionally equal networks) may disagree by O(1): such a
case is no evidence about a method (Sundararajan et al. 2017 define IG for functions
differentiable almost everywhere along the path; a path that lies in the non-differentiable set
has measure zero only in general position).

``degenerate_reason`` evaluates each network of a case at points of the segment
x(a) = x' + a (x - x') (a in (0, 1], or only a = 1 for a method without a baseline) and at the
same points slightly perturbed. A ReLU input that is 0 at every point, or a max-pool window
whose two largest entries tie at every point, while the perturbed points move it off the tie,
makes the case degenerate. A tie that the perturbation keeps (a unit with all-zero weights) is
structural: every subgradient gives the same attribution there, and the case stays evidence.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: points of the path (fractions of the way from the baseline to x); x itself is the last
PATH_POINTS = (0.1234, 0.3817, 0.6142, 0.8539, 1.0)
#: size of the perturbation that moves a point off a non-structural tie
PERTURBATION = 1e-3


def _tie_tolerance(dtype: torch.dtype) -> float:
    return 256 * torch.finfo(dtype).eps


def _window_gaps(z: Tensor, pool: nn.MaxPool2d) -> Tensor:
    """Per max-pool window: (largest - second largest) / (1 + |largest|)."""
    k = pool.kernel_size if isinstance(pool.kernel_size, tuple) else (pool.kernel_size, pool.kernel_size)
    s = pool.stride if pool.stride else k
    s = s if isinstance(s, tuple) else (s, s)
    pad = pool.padding if isinstance(pool.padding, tuple) else (pool.padding, pool.padding)
    if any(pad):
        z = F.pad(z, (pad[1], pad[1], pad[0], pad[0]), value=float("-inf"))
    n, c = z.shape[:2]
    cols = F.unfold(z.reshape(n * c, 1, *z.shape[2:]), k, stride=s)  # (n*c, k*k, windows)
    if cols.shape[1] < 2:
        return torch.full((n, 1), float("inf"), dtype=z.dtype)
    top = cols.topk(2, dim=1).values
    gap = (top[:, 0] - top[:, 1]) / (1 + top[:, 0].abs())
    return gap.reshape(n, -1)


def _ties(net: nn.Module, points: Tensor) -> list:
    """Per ReLU call and max-pool call: a (P, units) bool tensor, True where the point sits on the tie."""
    tol = _tie_tolerance(points.dtype)
    found: list = []

    def relu(mod: nn.Module, args: tuple) -> None:
        z = args[0].detach()
        scale = 1 + z.flatten(1).abs().amax(dim=1, keepdim=True)
        found.append(("ReLU", (z.flatten(1).abs() <= tol * scale)))

    def pool(mod: nn.Module, args: tuple) -> None:
        found.append(("max pool", _window_gaps(args[0].detach(), mod) <= tol))

    handles = []
    try:
        for m in set(net.modules()):
            if isinstance(m, nn.ReLU):
                handles.append(m.register_forward_pre_hook(relu))
            elif isinstance(m, nn.MaxPool2d):
                handles.append(m.register_forward_pre_hook(pool))
        if not handles:
            return []
        with torch.no_grad():
            net(points.clone())
    finally:
        for h in handles:
            h.remove()
    return found


#: the kinds of tie ``degenerate_reason`` looks for
KINDS = ("ReLU", "max pool")


def degenerate_samples(nets: dict, x: Tensor, baseline: Optional[Tensor], kinds: Sequence[str] = KINDS) -> list[Optional[str]]:
    """Per sample of the batch x (and baseline): why it is no evidence, or None (see the module
    docstring). Each sample is judged on its own path: a tie of one sample is not hidden by the
    others (the points of several samples are never pooled into one path)."""
    return [degenerate_reason(nets, x[i:i + 1], None if baseline is None else baseline[i:i + 1], kinds) for i in range(x.shape[0])]


def degenerate_reason(nets: dict, x: Tensor, baseline: Optional[Tensor], kinds: Sequence[str] = KINDS) -> Optional[str]:
    """Why the case (networks, x, baseline or None for a pointwise method) is no evidence, or None.

    ``kinds``: the ties that matter to the method ("ReLU" kinks, "max pool" ties; DeconvNet's
    backward ignores the ReLU's input, so only max-pool ties matter to it). A batch of several
    samples is degenerate when one of its samples is (``degenerate_samples``)."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown tie kinds {sorted(unknown)}; use {KINDS}")
    if x.shape[0] != 1:
        if baseline is not None and baseline.shape[0] != x.shape[0]:
            baseline = baseline.expand_as(x)
        return next((r for r in degenerate_samples(nets, x, baseline, kinds) if r), None)
    if baseline is None:
        alphas = torch.tensor([1.0], dtype=x.dtype)
        base = x
    else:
        alphas = torch.tensor(PATH_POINTS, dtype=x.dtype)
        base = baseline
    pts = base + alphas.reshape(-1, *([1] * (x.dim() - 1))) * (x - base)  # (P, ...) for a batch of 1
    g = torch.Generator().manual_seed(0)
    moved = pts + PERTURBATION * torch.randn(pts.shape, generator=g, dtype=torch.float64).to(pts.dtype)
    p = pts.shape[0]
    where = "the input" if baseline is None else "the whole path from the baseline to the input"
    for name, net in nets.items():
        for kind, tie in _ties(net, torch.cat([pts, moved])):
            if kind not in kinds:
                continue
            on_path = tie[:p].all(dim=0)
            off_nearby = ~tie[p:].all(dim=0)
            if bool((on_path & off_nearby).any()):
                what = "on a ReLU kink" if kind == "ReLU" else "inside a max-pool tie"
                return f"degenerate case: {where} lies {what} in network {name} (any subgradient is valid there; no evidence)"
    return None

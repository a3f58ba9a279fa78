"""Path-integral rules on [0, 1]: integral_0^1 f(t) dt ~= sum_i w_i f(t_i).

Every rule states its exactness ``degree``: it integrates t^k exactly for k <= degree. Its
weights sum to 1 (the k = 0 case), so a constant gradient gives exact completeness.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from workbench.core.errors import InputError

__all__ = ["Quadrature", "RULES", "MIN_STEPS", "quadrature", "SIMPSON_PANEL", "LOBATTO_PANEL"]


@dataclass(frozen=True)
class Quadrature:
    """Nodes t_i and weights w_i (float64, shape (n,)) with sum_i w_i f(t_i) ~= int_0^1 f."""

    name: str
    nodes: Tensor
    weights: Tensor
    degree: int  # the highest k with sum_i w_i t_i^k == 1 / (k + 1)

    def on(self, a: float, b: float) -> Quadrature:
        """The same rule on [a, b]: nodes a + (b - a) t_i, weights (b - a) w_i."""
        return Quadrature(self.name, a + (b - a) * self.nodes, (b - a) * self.weights, self.degree)

    def __len__(self) -> int:
        return int(self.nodes.numel())


def _f64(values: np.ndarray | Tensor) -> Tensor:
    return torch.as_tensor(values, dtype=torch.float64).clone()


def _left(n: int) -> Quadrature:
    """Left Riemann sum: t_i = i / n, w_i = 1 / n, i = 0..n-1; degree 0."""
    return Quadrature("left", torch.arange(n, dtype=torch.float64) / n, torch.full((n,), 1.0 / n, dtype=torch.float64), 0)


def _right(n: int) -> Quadrature:
    """Right Riemann sum: t_i = (i + 1) / n, w_i = 1 / n; degree 0."""
    return Quadrature("right", torch.arange(1, n + 1, dtype=torch.float64) / n, torch.full((n,), 1.0 / n, dtype=torch.float64), 0)


def _midpoint(n: int) -> Quadrature:
    """Midpoint rule: t_i = (i + 1/2) / n, w_i = 1 / n; degree 1."""
    return Quadrature("midpoint", (torch.arange(n, dtype=torch.float64) + 0.5) / n, torch.full((n,), 1.0 / n, dtype=torch.float64), 1)


def _trapezoid(n: int) -> Quadrature:
    """Trapezoid rule on n >= 2 nodes t_i = i h, h = 1 / (n - 1): w = h (1/2, 1, ..., 1, 1/2); degree 1.

    The weights sum to (n - 1) h = 1 (not (n - 1) / n).
    """
    h = 1.0 / (n - 1)
    w = torch.full((n,), h, dtype=torch.float64)
    w[0] = w[-1] = h / 2
    return Quadrature("trapezoid", torch.linspace(0.0, 1.0, n, dtype=torch.float64), w, 1)


def _gauss_legendre(n: int) -> Quadrature:
    """Gauss-Legendre: Legendre roots x_i with weights v_i on [-1, 1], mapped by t = (x + 1) / 2, w = v / 2; degree 2n - 1."""
    x, v = np.polynomial.legendre.leggauss(n)
    return Quadrature("gauss-legendre", _f64((x + 1.0) / 2.0), _f64(v / 2.0), 2 * n - 1)


_BUILDERS: dict[str, Callable[[int], Quadrature]] = {
    "left": _left,
    "right": _right,
    "midpoint": _midpoint,
    "trapezoid": _trapezoid,
    "gauss-legendre": _gauss_legendre,
}

RULES: tuple[str, ...] = ("left", "right", "midpoint", "trapezoid", "gauss-legendre")

#: the fewest nodes each rule accepts (the trapezoid needs both ends)
MIN_STEPS: dict[str, int] = {"left": 1, "right": 1, "midpoint": 1, "trapezoid": 2, "gauss-legendre": 1}


#: the panel rules of the error-controlled IG ladder; both contain the ends and the midpoint, so a
#: panel goes from Simpson to Lobatto with two new nodes, and a Lobatto panel splits into two
#: Simpson panels with two new nodes (the quarter points).
#: Simpson on (0, 1/2, 1): weights (1, 4, 1) / 6, degree 3.
SIMPSON_PANEL = Quadrature("simpson", _f64([0.0, 0.5, 1.0]), _f64([1 / 6, 4 / 6, 1 / 6]), 3)
#: 5-point Gauss-Lobatto on (0, 1/2 - c, 1/2, 1/2 + c, 1), c = sqrt(3/7) / 2: weights
#: (9, 49, 64, 49, 9) / 180, degree 7, the highest of any 5-node rule with both ends as nodes
#: (Abramowitz & Stegun 25.4.32, mapped from [-1, 1]).
_C = math.sqrt(3 / 7) / 2
LOBATTO_PANEL = Quadrature("gauss-lobatto-5", _f64([0.0, 0.5 - _C, 0.5, 0.5 + _C, 1.0]), _f64([9 / 180, 49 / 180, 64 / 180, 49 / 180, 9 / 180]), 7)


def quadrature(name: str, steps: int) -> Quadrature:
    """The rule `name` (one of RULES) with `steps` nodes on [0, 1]."""
    if name not in _BUILDERS:
        raise InputError(f"unknown quadrature rule {name!r}; valid rules: {', '.join(RULES)}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise InputError(f"steps must be an integer, got {type(steps).__name__}")
    if steps < MIN_STEPS[name]:
        raise InputError(
            f"rule {name!r} needs steps >= {MIN_STEPS[name]}, got {steps}; "
            f"minimum steps per rule: {', '.join(f'{r}: {MIN_STEPS[r]}' for r in RULES)}"
        )
    q = _cached(name, int(steps))
    return Quadrature(q.name, q.nodes.clone(), q.weights.clone(), q.degree)


@functools.lru_cache(maxsize=256)
def _cached(name: str, steps: int) -> Quadrature:
    """Gauss-Legendre nodes cost O(n^2)-O(n^3) in numpy; a call site asks for the same few rules
    again and again (callers get clones, so the cached tensors are never changed)."""
    return _BUILDERS[name](steps)

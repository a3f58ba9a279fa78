"""FullGrad's Proposition 1 (Srinivas & Fleuret 2019) as fixtures: no saliency map with as many
entries as the input is both complete and weakly dependent, for piecewise-linear F in general.

Completeness asks for one phi with F(x) = phi(S(x), x) for every network F and input x. Weak
dependence makes S, on a linear region with parameters (w, b), a function sigma(w, b) of them.
On a region, F = w . x + b, so phi(sigma(w, b), .) must return b as well as w: sigma must be
one-to-one on the D + 1 numbers (w, b), which D numbers cannot do (continuously).

Two demonstrations:

* ``prop1_pair`` — the named pair ("fullgrad-prop1"): f(x) = ReLU(x + 1) and g(x) = ReLU(x), 1-D,
  at x = 1. Both are in a region with w = 1; the biases are 1 and 0. Every map that depends on
  the region only through w (the gradient, and any function of it: input x gradient at the same
  x too) is the same for f and g at x, while f(x) = 2 != 1 = g(x): phi(S(x), x) cannot be both.
  The full-gradient representation separates them through its bias term.
* ``collision(sigma)`` — for ANY continuous input-sized weakly dependent map in 1-D,
  sigma: (w, b) -> R: on the circle (w, b) = (cos t, sin t), h(t) = sigma(p(t)) - sigma(-p(t))
  changes sign between t = 0 and t = pi (h(pi) = -h(0)), so bisection finds t with
  sigma(p) = sigma(-p) (Borsuk-Ulam in one dimension). The networks ``affine_net(w, b)`` and
  ``affine_net(-w, -b)`` then have equal maps at every x but outputs w x + b and -(w x + b);
  x = 1 separates them unless w + b is near 0, and then x = -1 does (|b - w| is near sqrt 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from workbench.core.errors import InputError
from workbench.nets import spec as S

__all__ = ["prop1_pair", "affine_net", "collision", "Collision", "relu_shift"]


def relu_shift(b: float, dtype: torch.dtype = torch.float64) -> S.SpecNet:
    """f(x) = ReLU(x + b), 1-D input: Linear(w=1, b) -> ReLU -> Linear(w=1, no bias)."""
    spec = S.NetSpec((1,), (S.Linear(1), S.ReLU(), S.Linear(1, bias=False)))
    return S.build(spec, dtype=dtype, state={"0.weight": [[1.0]], "0.bias": [float(b)], "2.weight": [[1.0]]})


def prop1_pair(dtype: torch.dtype = torch.float64) -> tuple[S.SpecNet, S.SpecNet, Tensor, int]:
    """(f, g, x, target): f = ReLU(x + 1), g = ReLU(x), x = 1; same region gradient, outputs 2 and 1."""
    return relu_shift(1.0, dtype), relu_shift(0.0, dtype), torch.tensor([[1.0]], dtype=dtype), 0


def affine_net(w: Tensor, b: float, dtype: torch.dtype = torch.float64) -> S.SpecNet:
    """A ReLU network equal to x -> w . x + b everywhere, with region parameters (w, b) at every x
    off the hyperplane w . x + b = 0: Linear([w; -w], [b; -b]) -> ReLU -> Linear([1, -1], no bias)."""
    w = torch.as_tensor(w, dtype=torch.float64).reshape(-1)
    d = w.numel()
    spec = S.NetSpec((d,), (S.Linear(2), S.ReLU(), S.Linear(1, bias=False)))
    state = {"0.weight": torch.stack([w, -w]), "0.bias": torch.tensor([b, -b], dtype=torch.float64), "2.weight": [[1.0, -1.0]]}
    return S.build(spec, dtype=dtype, state=state)


@dataclass(frozen=True)
class Collision:
    """Two networks, one input: sigma agrees, the outputs do not. No phi(S(x), x) fits both."""

    f: S.SpecNet
    g: S.SpecNet
    x: Tensor
    params_f: tuple  # (w, b)
    params_g: tuple
    sigma_value: float
    sigma_gap: float  # |sigma(f) - sigma(g)| after bisection
    outputs: tuple  # (f(x), g(x))


def collision(sigma: Callable[[float, float], float], *, iterations: int = 80, dtype: torch.dtype = torch.float64) -> Collision:
    """Networks f, g and an input x where the 1-D weakly dependent map sigma(w, b) agrees but F differs.

    `sigma` must be continuous on the unit circle of (w, b) (the premise of the proposition).
    """
    def p(t: float) -> tuple[float, float]:
        return math.cos(t), math.sin(t)

    def h(t: float) -> float:
        (w, b) = p(t)
        return float(sigma(w, b)) - float(sigma(-w, -b))

    lo, hi = 0.0, math.pi
    h_lo = h(lo)
    if not math.isfinite(h_lo):
        raise InputError("sigma must return finite values")
    if h_lo != 0.0:
        for _ in range(iterations):
            mid = (lo + hi) / 2
            h_mid = h(mid)
            if h_mid == 0.0:
                lo = hi = mid
                break
            if (h_mid > 0) == (h_lo > 0):
                lo, h_lo = mid, h_mid
            else:
                hi = mid
        t = (lo + hi) / 2
    else:
        t = 0.0
    w, b = p(t)
    # choose x off both hyperplanes where w x + b != -(w x + b), i.e. w x + b != 0
    x_val = 1.0 if abs(w + b) > 0.25 else -1.0
    f, g = affine_net(torch.tensor([w], dtype=torch.float64), b, dtype), affine_net(torch.tensor([-w], dtype=torch.float64), -b, dtype)
    x = torch.tensor([[x_val]], dtype=dtype)
    with torch.no_grad():
        outs = (float(f(x)[0, 0]), float(g(x)[0, 0]))
    return Collision(f, g, x, (w, b), (-w, -b), float(sigma(w, b)), abs(h(t)), outs)

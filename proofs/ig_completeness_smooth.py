"""IG completeness for a smooth function (fundamental theorem of calculus along the path).

F(x1, x2) = a sin(x1) x2 + b exp(x2) + sum_{i+j<=2} c_ij x1^i x2^j with symbolic coefficients.
Write x = x' + d (d the displacement). Each IG_i = d_i int_0^1 dF/dx_i(x' + t d) dt is integrated
symbolically by sympy; the sum is compared with F(x) - F(x').

Case split: sympy's antiderivative in t divides by d_i (e.g. int cos(x'_1 + t d_1) dt), so the
cases "coordinate i moves (d_i a non-zero symbol)" / "stays (d_i = 0)" are enumerated: 4 cases.
"""

from __future__ import annotations

import itertools

import sympy

from .base import Claim, Proof, ProofResult

CLAIM = Claim(
    name="ig-completeness-smooth",
    statement=(
        "For a smooth F (here a sin(x1) x2 + b exp(x2) + a generic quadratic polynomial with symbolic "
        "coefficients), sum_i IG_i(x, x') = F(x) - F(x') along the straight path."
    ),
    assumptions=(
        "a, b, c_ij, x', d real symbols; x = x' + d",
        "each displacement d_i is either a non-zero symbol or exactly 0 (both cases enumerated)",
    ),
)


def _model(x1: sympy.Expr, x2: sympy.Expr) -> sympy.Expr:
    a, b = sympy.symbols("a b", real=True)
    poly = sum(
        sympy.Symbol(f"c{i}{j}", real=True) * x1**i * x2**j for i in range(3) for j in range(3) if i + j <= 2
    )
    return a * sympy.sin(x1) * x2 + b * sympy.exp(x2) + poly


def prove() -> ProofResult:
    p = Proof(CLAIM)
    t = sympy.Symbol("t", real=True)
    x1, x2 = sympy.symbols("x1 x2", real=True)
    xp = sympy.symbols("xp1 xp2", real=True)
    F = _model(x1, x2)
    p.step("F(x1, x2)", F)
    grads = [sympy.diff(F, x1), sympy.diff(F, x2)]
    p.step("dF/dx1", grads[0])
    p.step("dF/dx2", grads[1])
    for moving in itertools.product((True, False), repeat=2):
        d = [sympy.Symbol(f"d{i + 1}", real=True, nonzero=True) if m else sympy.S.Zero for i, m in enumerate(moving)]
        path = {x1: xp[0] + t * d[0], x2: xp[1] + t * d[1]}
        ig = [d[i] * sympy.integrate(grads[i].subs(path, simultaneous=True), (t, 0, 1)) for i in range(2)]
        label = "moving: " + ", ".join(f"d{i + 1}" + (" != 0" if m else " = 0") for i, m in enumerate(moving))
        if all(moving):
            p.step(f"IG_1 ({label})", ig[0])
            p.step(f"IG_2 ({label})", ig[1])
        delta = F.subs({x1: xp[0] + d[0], x2: xp[1] + d[1]}, simultaneous=True) - F.subs({x1: xp[0], x2: xp[1]})
        p.check(f"IG_1 + IG_2 - (F(x) - F(x')) [{label}]", ig[0] + ig[1] - delta)
        p.cases += 1
    return p.result()

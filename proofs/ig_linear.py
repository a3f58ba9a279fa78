"""IG of a linear model is w * (x - x'), for any baseline.

F(x) = w . x + b has the constant gradient w, so along the straight path
IG_i = (x_i - x'_i) * int_0^1 w_i da = w_i (x_i - x'_i); summing gives F(x) - F(x') (b cancels).
"""

from __future__ import annotations

import sympy

from workbench.proofs.base import Claim, Proof, ProofResult, gradient, symbols_vec

CLAIM = Claim(
    name="ig-linear",
    statement="For F(x) = w . x + b, integrated gradients along the straight path are IG_i = w_i (x_i - x'_i).",
    assumptions=("w, b, x, x' real symbols; D = 3 inputs", "straight path x' + a (x - x'), a in [0, 1]"),
    formula=r"F(x) = w^\top x + b \;\Longrightarrow\; \mathrm{IG}_i(x, x') = w_i (x_i - x'_i), \quad \sum_i \mathrm{IG}_i = F(x) - F(x')",
)

D = 3


def prove() -> ProofResult:
    p = Proof(CLAIM)
    a = sympy.Symbol("alpha")
    w, x, xp = symbols_vec("w", D), symbols_vec("x", D), symbols_vec("xp", D)
    b = sympy.Symbol("b")
    F = (w.T * x)[0] + b
    p.step("model $F(x)$", F)
    grad = gradient(F, list(x))
    path = {x[i]: xp[i] + a * (x[i] - xp[i]) for i in range(D)}
    ig = sympy.Matrix([(x[i] - xp[i]) * sympy.integrate(grad[i].subs(path, simultaneous=True), (a, 0, 1)) for i in range(D)])
    p.step(r"$\mathrm{IG}_i = (x_i - x'_i) \int_0^1 \partial_i F(x' + \alpha (x - x'))\, d\alpha$", ig)
    p.cases = 1
    target = sympy.Matrix([w[i] * (x[i] - xp[i]) for i in range(D)])
    p.check(r"$\mathrm{IG} - w \odot (x - x')$", ig - target)
    p.check(r"$\sum_i \mathrm{IG}_i - (F(x) - F(x'))$", sum(ig) - (F - F.subs(dict(zip(x, xp)), simultaneous=True)))
    return p.result()

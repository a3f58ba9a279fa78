"""The input gradient is weakly dependent on the input; integrated gradients is not.

Part 1 (holds): for a ReLU network with biases (2 inputs, 2 hidden units, 1 output, symbolic
weights), inside the linear region of activation pattern d the gradient is W^T diag(d) v, i.e. the
region's weight vector w_i: it equals grad_x of the region's affine piece and its derivative with
respect to every input is zero. All 4 patterns are enumerated.

Part 2 (IG's failure, proved as a negation -- our choice, so that the registry's ``expected`` stays
True and the statement proved is the positive fact "IG varies inside a region"): f(x) = relu(x - 1)
in 1-D, baseline x' = 0, region U = (1, inf) with (w, b) = (1, -1). For x = 1 + s, s > 0, the path
x' + a x crosses the kink at a* = 1/x; splitting the integral there (the two cases of the ReLU's
pattern along the path) gives IG(x) = x * int_{1/x}^1 1 da = x - 1 = s. Its derivative in x
inside the region is 1 != 0: two inputs of the same region (x = 2 and x = 3, same (w, b)) get
different IG values (1 and 2), so IG is not a function of (w, b) alone on U.
"""

from __future__ import annotations

import sympy

from .base import Claim, Proof, ProofResult, gradient, pattern_text, patterns, symbols_mat, symbols_vec

CLAIM = Claim(
    name="gradient-weak-dependence",
    statement=(
        "Inside a linear region of a ReLU network the input gradient is the region's weight vector w_i "
        "(constant in x: weakly dependent); integrated gradients is not weakly dependent (a 1-D "
        "counterexample, proved as the negation)."
    ),
    assumptions=(
        "Part 1: 2-2-1 ReLU network with biases, symbolic weights; ReLU = diag(d) in pattern d (4 patterns)",
        "Part 2: f(x) = relu(x - 1), baseline 0, x = 1 + s with s > 0 (the region (1, inf))",
    ),
)


def _part1(p: Proof) -> None:
    x = symbols_vec("x", 2, real=True)
    W, b = symbols_mat("W", 2, 2, real=True), symbols_vec("b", 2, real=True)
    v, c = symbols_vec("v", 2, real=True), sympy.Symbol("c", real=True)
    for d in patterns(2):
        D = sympy.diag(*d)
        f = (v.T * D * (W * x + b))[0] + c
        g = gradient(f, x)
        w_region = W.T * D * v  # the region's weight vector
        label = f"pattern {pattern_text(d)}"
        if d == (1, 1):
            p.step(f"Part 1: f ({label})", f)
            p.step(f"Part 1: grad_x f ({label})", g)
        p.check(f"Part 1: grad_x f - W^T diag(d) v [{label}]", g - w_region, record=False)
        jac = sympy.Matrix([[sympy.diff(gi, xj) for xj in x] for gi in g])
        p.check(f"Part 1: d(grad_x f)/dx [{label}]", jac, record=False)
        p.cases += 1
    p.step("Part 1: grad_x f = W^T diag(d) v and d(grad_x f)/dx = 0 in all 4 patterns", "zero residuals" if not p.failures else "NOT zero")


def _part2(p: Proof) -> None:
    a = sympy.Symbol("alpha", real=True)
    s = sympy.Symbol("s", positive=True)
    xs = sympy.Symbol("x", real=True)
    x = 1 + s
    p.step("Part 2: f(x) = relu(x - 1), baseline 0; region U = (1, inf): w = 1, b = -1; x = 1 + s, s > 0", sympy.Max(xs - 1, 0))
    kink = 1 / x
    # along the path a x: inactive for a < 1/x (gradient 0), active for a > 1/x (gradient 1)
    inactive = sympy.integrate(sympy.S.Zero, (a, 0, kink))
    active = sympy.integrate(sympy.S.One, (a, kink, 1))
    ig = sympy.simplify(x * (inactive + active))
    p.cases += 2
    p.step("Part 2: IG(x) = x (int_0^{1/x} 0 da + int_{1/x}^1 1 da)", ig)
    p.check("Part 2: IG(x) - (x - 1) (completeness in 1-D)", ig - s)
    slope = sympy.diff(ig.subs(s, xs - 1), xs)
    p.step("Part 2: d IG / dx inside U", slope)
    p.require("Part 2: d IG / dx != 0 inside one region, so IG is not a function of (w, b) on U", slope != 0 and slope.is_nonzero is True, slope)
    v2, v3 = ig.subs(s, 1), ig.subs(s, 2)
    p.step("Part 2: IG at x = 2 and x = 3 (same region, same (w, b))", sympy.ImmutableMatrix([[v2, v3]]))
    p.require("Part 2: the two values differ", v2 != v3, sympy.ImmutableMatrix([[v2, v3]]))


def prove() -> ProofResult:
    p = Proof(CLAIM)
    _part1(p)
    _part2(p)
    return p.result()

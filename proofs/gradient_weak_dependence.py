"""The input gradient is weakly dependent on the input; integrated gradients is not.

Part 1 (holds): for a ReLU network with biases (2 inputs, 2 hidden units, 1 output, symbolic
weights), inside the linear region of activation pattern d the gradient is W^T diag(d) v, i.e. the
region's weight vector w_i: it equals grad_x of the region's affine piece and its derivative with
respect to every input is zero. All 4 patterns are enumerated.

Part 2 (IG's failure, proved as a negation -- our choice, so that the registry's ``expected`` stays
True and the statement proved is the positive fact "IG varies inside a region"): f(x) = relu(x - 1)
in 1-D, baseline x' = 0, region U = (1, inf) with (w, b) = (1, -1). For x = 1 + s, s > 0, the path
x' + a x crosses the kink at a* = 1/x; splitting the integral there (the two cases of the ReLU's
pattern along the path, each piece's pattern decided from the sign of the pre-activation there)
gives IG(x) = x * int_{1/x}^1 1 da = x - 1 = s. Its derivative in x
inside the region is 1 != 0: two inputs of the same region (x = 2 and x = 3, same (w, b)) get
different IG values (1 and 2), so IG is not a function of (w, b) alone on U.
"""

from __future__ import annotations

import sympy

from workbench.proofs.base import Claim, Proof, ProofResult, gradient, pattern_text, patterns, symbols_mat, symbols_vec

CLAIM = Claim(
    name="gradient-weak-dependence",
    statement=(
        "Inside a linear region of a ReLU network the input gradient is the region's weight vector w_i "
        "(constant in x: weakly dependent); integrated gradients is not weakly dependent (a 1-D "
        "counterexample, proved as the negation)."
    ),
    assumptions=(
        "Part 1: 2-2-1 ReLU network with biases, symbolic weights; ReLU = diag(d) in pattern d (4 patterns)",
        "Part 2: f(x) = relu(x - 1), baseline 0, x = 1 + s with s > 0 (the region (1, inf)); the pattern on "
        "each piece of the path is decided from the sign of the pre-activation",
    ),
    formula=(
        r"\nabla_x f = W^\top \mathrm{diag}(d)\, v = w_i, \quad \frac{\partial (\nabla_x f)}{\partial x} = 0 \text{ on } U_i; "
        r"\qquad \mathrm{IG}_{\mathrm{relu}(x - 1)}(x; 0) = x - 1 \text{ varies on } U = (1, \infty)"
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
        label = f"pattern $d = {pattern_text(d)}$"
        if d == (1, 1):
            p.step(f"Part 1: $f$ ({label})", f)
            p.step(f"Part 1: $\\nabla_x f$ ({label})", g)
        p.check(f"Part 1: $\\nabla_x f - W^\\top \\mathrm{{diag}}(d)\\, v$ [{label}]", g - w_region, record=False)
        jac = sympy.Matrix([[sympy.diff(gi, xj) for xj in x] for gi in g])
        p.check(f"Part 1: $\\partial (\\nabla_x f) / \\partial x$ [{label}]", jac, record=False)
        p.cases += 1
    p.step(r"Part 1: $\nabla_x f = W^\top \mathrm{diag}(d)\, v$ and $\partial (\nabla_x f) / \partial x = 0$ in all 4 patterns", "zero residuals" if not p.failures else "NOT zero")


def _part2(p: Proof) -> None:
    a = sympy.Symbol("alpha", real=True)
    s = sympy.Symbol("s", positive=True)
    u = sympy.Symbol("u", positive=True)  # position inside a piece of the path
    xs = sympy.Symbol("x", real=True)
    x = 1 + s
    p.step(
        r"Part 2: $f(x) = \mathrm{relu}(x - 1)$, baseline $0$; region $U = (1, \infty)$ with $w = 1$, $b = -1$; "
        r"$x = 1 + s$, $s > 0$",
        sympy.Max(xs - 1, 0),
    )
    kink = 1 / x
    # the path alpha x meets the kink at alpha* = 1/x; each piece's pattern is decided from the sign of
    # the pre-activation alpha x - 1 there (sympy's sign inference on positive symbols, no sampling):
    # (0, alpha*): alpha = alpha* / (1 + u), u > 0;  (alpha*, 1): alpha = alpha* + (1 - alpha*) / (1 + u)
    pieces = (
        ("(0, \\alpha^*)", 0, kink, kink / (1 + u)),
        ("(\\alpha^*, 1)", kink, 1, kink + (1 - kink) / (1 + u)),
    )
    ig = sympy.S.Zero
    for label, lo, hi, inside in pieces:
        pre = sympy.simplify(inside * x - 1)
        if pre.is_positive is True:
            d = 1
        elif pre.is_negative is True:
            d = 0
        else:  # pragma: no cover - the assumptions decide it
            raise ValueError(f"sign of {pre} undecided")
        slope = sympy.diff(d * (xs - 1), xs)  # gradient of the piece's affine function
        p.step(f"Part 2: pre-activation $\\alpha x - 1$ on ${label}$ (pattern $d = {d}$), gradient ${sympy.latex(slope)}$", pre)
        ig += sympy.integrate(slope, (a, lo, hi))
        p.cases += 1
    ig = sympy.simplify(x * ig)
    p.step(r"Part 2: $\mathrm{IG}(x) = x \int_0^1 f'(\alpha x)\, d\alpha$, split at $\alpha^* = 1/x$", ig)
    p.check(r"Part 2: $\mathrm{IG}(x) - (x - 1)$ (completeness in 1-D)", ig - s)
    slope = sympy.diff(ig.subs(s, xs - 1), xs)
    p.step(r"Part 2: $d\,\mathrm{IG} / dx$ inside $U$", slope)
    p.require(r"Part 2: $d\,\mathrm{IG} / dx \neq 0$ inside one region, so IG is not a function of $(w, b)$ on $U$", slope.is_nonzero is True, slope)
    v2, v3 = ig.subs(s, 1), ig.subs(s, 2)
    p.step(r"Part 2: IG at $x = 2$ and $x = 3$ (same region, same $(w, b)$)", sympy.ImmutableMatrix([[v2, v3]]))
    p.require("Part 2: the two values differ", v2 != v3, sympy.ImmutableMatrix([[v2, v3]]))


def prove() -> ProofResult:
    p = Proof(CLAIM)
    _part1(p)
    _part2(p)
    return p.result()

"""A deliberately FALSE claim: input x gradient is complete on a ReLU network WITH biases.

The bench's completeness axiom for a baseline-free method uses the reference 0:
sum_i x_i df/dx_i = f(x) - f(0). Network: z = W x + b (2 inputs, 2 hidden units), a = relu(z),
f = v . a + c. Enumerated: the pattern d at x and the pattern e at 0 (e_j = 1[b_j > 0], since
z(0) = b): 16 pattern pairs. With d, e kept as 0/1 symbols the residual is
    f(x) - f(0) - x . grad f = sum_j v_j b_j (d_j - e_j),
the FullGrad bias contribution at x minus the one at 0 (f(0) is all bias). It vanishes only in
pattern pairs with d = e (x and 0 in the same linear region); in the others it is non-zero, so the
claim is reported NOT proved with that residual. Without biases (b = 0) it is zero.
"""

from __future__ import annotations

import sympy

from workbench.proofs.base import Claim, Proof, ProofResult, gradient, pattern_text, patterns, symbols_mat, symbols_vec

CLAIM = Claim(
    name="false-ixg-completeness",
    statement=(
        "(deliberately false) Input x gradient is complete on a ReLU network with biases: "
        "sum_i x_i df/dx_i = f(x) - f(0)."
    ),
    assumptions=(
        "2 inputs, 2 hidden ReLU units with biases b, linear output with bias c; symbolic parameters",
        "pattern d at x and e at 0 (e_j = 1[b_j > 0]); all 16 pairs enumerated",
    ),
    formula=r"\sum_i x_i \frac{\partial f}{\partial x_i} \overset{?}{=} f(x) - f(0)",
)


def _residual(d, e, x, W, b, v, c) -> sympy.Expr:
    f = (v.T * sympy.diag(*d) * (W * x + b))[0] + c
    f0 = (v.T * sympy.diag(*e) * b)[0] + c
    ixg = (gradient(f, x).T * x)[0]
    return f - f0 - ixg


def _witness(p: Proof, x, W, b, v, c) -> None:
    """An exact counterexample (rational numbers, patterns read off the exact signs): not proved is false."""
    values = {W[0, 0]: 1, W[0, 1]: 0, W[1, 0]: 0, W[1, 1]: 1, b[0]: -1, b[1]: -1, v[0]: 1, v[1]: 1, c: 0, x[0]: 2, x[1]: 0}
    z_x = (W * x + b).subs(values)
    z_0 = b.subs(values)
    d = tuple(int(bool(zj > 0)) for zj in z_x)
    e = tuple(int(bool(zj > 0)) for zj in z_0)
    r = _residual(d, e, x, W, b, v, c).subs(values)
    p.step(
        f"exact counterexample: $W = I$, $b = (-1, -1)$, $v = (1, 1)$, $c = 0$, $x = (2, 0)$: "
        f"$z(x) = ({z_x[0]}, {z_x[1]})$, $z(0) = ({z_0[0]}, {z_0[1]})$, patterns $d = {pattern_text(d)}$, $e = {pattern_text(e)}$; residual",
        r,
    )
    p.require("the counterexample's residual is non-zero (the claim is false, not merely unproved)", r != 0, r)


def prove() -> ProofResult:
    p = Proof(CLAIM)
    x = symbols_vec("x", 2, real=True)
    W, b = symbols_mat("W", 2, 2, real=True), symbols_vec("b", 2, real=True)
    v, c = symbols_vec("v", 2, real=True), sympy.Symbol("c", real=True)
    d_sym, e_sym = symbols_vec("d", 2, integer=True), symbols_vec("e", 2, integer=True)
    general = sympy.collect(sympy.expand(_residual(list(d_sym), list(e_sym), x, W, b, v, c)), list(b), func=sympy.factor)
    p.step(r"residual $f(x) - f(0) - x \cdot \nabla_x f$ with the patterns $d$ (at $x$), $e$ (at $0$) as 0/1 symbols", general)
    failing = []
    for pat in patterns(4):
        d, e = pat[:2], pat[2:]
        r = _residual(d, e, x, W, b, v, c)
        ok = p.check(f"$f(x) - f(0) - x \\cdot \\nabla_x f$ [$d = {pattern_text(d)}$, $e = {pattern_text(e)}$]", r, record=False)
        if not ok:
            failing.append(f"$d = {pattern_text(d)}, e = {pattern_text(e)}$")
        p.check(
            f"same residual without biases (b = 0, e = 00) [d={pattern_text(d)}]",
            _residual(d, (0, 0), x, W, sympy.zeros(2, 1), v, c),
            record=False,
        )
        p.cases += 1
    p.step(f"pattern pairs $(d, e)$ with a non-zero residual: {len(failing)} of {p.cases}", "; ".join(failing))
    _witness(p, x, W, b, v, c)
    p.residual_override = general
    return p.result()

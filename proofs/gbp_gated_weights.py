"""Guided Backprop on a one-hidden-layer ReLU network is a sum of positively gated weight vectors.

f = v^T relu(W x + b) with 2 inputs and 3 hidden units, all symbolic. Guided Backprop runs the
backward pass with the rule g_z = 1[z > 0] 1[g_a > 0] g_a at each ReLU (Springenberg et al. 2015): the
incoming signal at hidden unit j is g_a_j = v_j, so GBP(x) = W^T g_z
= sum_j 1[z_j > 0] 1[v_j > 0] v_j W_j (Zheng et al. 2025's starting observation: only weights of
activated units with positive outgoing weight survive). Corollary (the dummy axiom GBP claims): an
input whose weight column W_{:,i} is zero gets GBP_i = 0, checked in every case.

Cases: for each hidden unit, the forward pattern d_j = 1[z_j > 0] in {0, 1} and the sign of v_j in
{+, -, 0} (v_j = +p_j or -p_j with p_j a positive symbol, or 0): 6^3 = 216 sign patterns. The
backward rule decides 1[g > 0] by sympy's sign inference on the symbolic signal (it raises if the
sign is undecidable), and the result is compared with the closed form. The gradient, for
contrast, is sum_j d_j v_j W_j; their difference is recorded in one case.
"""

from __future__ import annotations

import itertools

import sympy

from workbench.proofs.base import Claim, Proof, ProofResult, gradient, symbols_mat, symbols_vec

CLAIM = Claim(
    name="gbp-gated-weights",
    statement=(
        "For f = v^T relu(W x + b), Guided Backprop equals sum_j 1[z_j > 0] 1[v_j > 0] v_j W_j "
        "(the sum of the positively gated weight vectors), in every forward/sign pattern."
    ),
    assumptions=(
        "2 inputs, 3 hidden units; W, b, x real symbols; v_j = +p_j, -p_j or 0 with p_j > 0",
        "forward pattern d_j = 1[z_j > 0] enumerated with the signs of v (6^3 cases)",
        "GBP backward rule at a ReLU: g_z = 1[z > 0] 1[g > 0] g",
    ),
    formula=(
        r"\mathrm{GBP}(x) = \sum_j \mathbb{1}[z_j > 0]\, \mathbb{1}[v_j > 0]\, v_j W_{j,:}^\top; "
        r"\quad W_{:,i} = 0 \Rightarrow \mathrm{GBP}_i = 0"
    ),
)

H = 3


def _indicator_positive(g: sympy.Expr) -> int:
    """1[g > 0] decided symbolically (no sampling)."""
    if g.is_positive is True:
        return 1
    if g.is_nonpositive is True:
        return 0
    raise ValueError(f"sign of {g} is not decided by the assumptions")


def gbp_backward(W: sympy.Matrix, v: sympy.Matrix, d: tuple[int, ...]) -> sympy.Matrix:
    """The GBP backward pass of f = v^T relu(W x + b) in forward pattern d."""
    g_a = v  # d f / d a
    g_z = sympy.Matrix([d[j] * _indicator_positive(g_a[j]) * g_a[j] for j in range(W.rows)])
    return W.T * g_z


def prove() -> ProofResult:
    p = Proof(CLAIM)
    x = symbols_vec("x", 2, real=True)
    W, b = symbols_mat("W", H, 2, real=True), symbols_vec("b", H, real=True)
    pos = symbols_vec("p", H, positive=True)
    for d in itertools.product((0, 1), repeat=H):
        for signs in itertools.product((1, -1, 0), repeat=H):
            v = sympy.Matrix([signs[j] * pos[j] for j in range(H)])
            gbp = gbp_backward(W, v, d)
            gated = sympy.zeros(2, 1)
            for j in range(H):
                if d[j] == 1 and signs[j] > 0:
                    gated += v[j] * W.row(j).T
            p.check(f"GBP minus the sum of gated weight vectors [$d = {d}$, $\\mathrm{{sign}}(v) = {signs}$]", gbp - gated, record=False)
            # corollary (dummy): an input whose weight column is zero gets nothing
            p.check(f"GBP of input 1 with $W_{{:,1}} = 0$ [$d = {d}$, $\\mathrm{{sign}}(v) = {signs}$]", gbp[0].subs({W[j, 0]: 0 for j in range(H)}), record=False)
            if d == (1, 1, 1) and signs == (1, -1, 1):
                f = (v.T * sympy.diag(*d) * (W * x + b))[0]
                grad = gradient(f, x)
                p.step("$f$ (all units active, $v = (p_1, -p_2, p_3)$)", f)
                p.step("GBP", gbp)
                p.step(r"gradient $\nabla_x f$", grad)
                p.step(r"$\nabla_x f - \mathrm{GBP}$ (the negatively weighted active unit GBP drops)", sympy.expand(grad - gbp))
            p.cases += 1
    p.step(f"GBP minus $\\sum_j \\mathbb{{1}}[z_j > 0] \\mathbb{{1}}[v_j > 0] v_j W_{{j,:}}$, and GBP of a zero-weight input, in all {p.cases} cases", "zero" if not p.failures else "NOT zero")
    return p.result()

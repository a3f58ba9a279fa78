"""LRP-0 on a bias-free ReLU network equals input x gradient (Ancona et al., ICLR 2018).

Network: x in R^2, z1 = W1 x, a1 = relu(z1), z2 = W2 a1, a2 = relu(z2), f = v . a2 (two hidden
layers of 2 units, no biases), all weights symbolic. LRP-0 starts from R_f = f and redistributes
through each linear layer z_j = sum_i a_i w_ij with R_i = sum_j a_i w_ij R_j / z_j; relevance
passes a ReLU unchanged. In each of the 2^4 activation patterns (ReLU = diag(d)) the relevance
of every input is compared with x_i df/dx_i as rational functions of the symbols.

Assumption: every pre-activation z_j carrying relevance is non-zero (LRP-0 divides by it). A unit
with identically zero relevance sends none (0/0 := 0, as stabilised implementations do): an
inactive unit (d_j = 0) has a_j = 0 and therefore zero relevance, and in the patterns where a
whole layer is off f is identically 0 and so is every relevance.
"""

from __future__ import annotations

import sympy

from workbench.proofs.base import (
    Claim,
    Proof,
    ProofResult,
    gradient,
    is_zero,
    pattern_text,
    patterns,
    symbols_mat,
    symbols_vec,
)

CLAIM = Claim(
    name="lrp0-equals-input-x-gradient",
    statement="On a bias-free ReLU network, LRP-0 relevance of each input equals x_i * df/dx_i, in every activation pattern.",
    assumptions=(
        "2-2-2-1 ReLU network without biases; symbolic weights and inputs",
        "ReLU = diag(d) in activation pattern d (all 2^4 patterns); relevance passes ReLUs unchanged",
        "every pre-activation z_j that carries relevance is non-zero; 0/0 := 0 for units with zero relevance",
    ),
    formula=r"R_i = \sum_j \frac{a_i w_{ij}}{z_j} R_j \;\Longrightarrow\; R_{x_i} = x_i \frac{\partial f}{\partial x_i}, \quad \sum_i R_{x_i} = f(x)",
)


def lrp0_linear(a: sympy.Matrix, W: sympy.Matrix, R_out: sympy.Matrix) -> sympy.Matrix:
    """R_i = sum_j a_i W_ji R_j / z_j for z = W a (no bias); W has shape (out, in).

    A unit whose relevance R_j is identically zero sends none (the 0/0 := 0 convention, which is
    what a stabilised implementation returns); otherwise z_j must not vanish identically.
    """
    z = W * a
    msgs = []
    for j in range(W.rows):
        if is_zero(R_out[j]):
            msgs.append(sympy.S.Zero)
        elif is_zero(z[j]):
            raise ZeroDivisionError(f"relevance {R_out[j]} reaches a unit with z identically 0")
        else:
            msgs.append(R_out[j] / z[j])
    return sympy.Matrix([sympy.cancel(sum(a[i] * W[j, i] * msgs[j] for j in range(W.rows))) for i in range(W.cols)])


def prove() -> ProofResult:
    p = Proof(CLAIM)
    x = symbols_vec("x", 2, real=True)
    W1, W2 = symbols_mat("W1_", 2, 2, real=True), symbols_mat("W2_", 2, 2, real=True)
    v = symbols_vec("v", 2, real=True)
    for pat in patterns(4):
        D1, D2 = sympy.diag(*pat[:2]), sympy.diag(*pat[2:])
        a1 = D1 * (W1 * x)
        a2 = D2 * (W2 * a1)
        f = (v.T * a2)[0]
        R_a2 = lrp0_linear(a2, v.T, sympy.Matrix([f]))  # output layer f = v . a2
        R_a1 = lrp0_linear(a1, W2, R_a2)  # relevance of z2 = relevance of a2 (ReLU passes it)
        R_x = lrp0_linear(x, W1, R_a1)
        ixg = sympy.Matrix([x[i] * g for i, g in enumerate(gradient(f, x))])
        label = f"pattern $d_1 = {pattern_text(pat[:2])}$, $d_2 = {pattern_text(pat[2:])}$"
        if pat == (1, 1, 1, 1):
            p.step(f"$f$ ({label})", f)
            p.step(f"LRP-0 relevance of the first hidden layer $R_{{a_1}}$ ({label})", R_a1)
            p.step(f"LRP-0 input relevance $R_x$ ({label})", R_x)
            p.step(f"$x \\odot \\nabla_x f$ ({label})", ixg)
        p.check(f"$R_x - x \\odot \\nabla_x f$ [{label}]", R_x - ixg, record=False)
        p.check(f"$\\sum_i R_{{x_i}} - f$ (conservation) [{label}]", sum(R_x) - f, record=False)
        p.cases += 1
    p.step(f"$R_x - x \\odot \\nabla_x f$ and $\\sum_i R_{{x_i}} - f$ in all {p.cases} patterns", "zero" if not p.failures else "NOT zero")
    return p.result()

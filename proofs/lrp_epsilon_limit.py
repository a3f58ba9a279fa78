"""epsilon-LRP tends to LRP-0 as epsilon -> 0.

One layer, z_j = sum_i a_i w_ij + b_j (2 inputs, 2 outputs, with biases), the epsilon rule
R_i = sum_j a_i w_ij R_j / (z_j + eps sign(z_j)). The sign of each z_j is enumerated (+1 / -1:
4 cases; z_j != 0 is LRP-0's own assumption). In each case sympy's ``limit`` (eps -> 0+) of
every R_i equals the LRP-0 relevance. To keep the limits cheap each z_j is first written as an
opaque non-zero symbol Z_j, then substituted back. The step "absorbed relevance" records
sum_j R_j - sum_i R_i for eps > 0 on a bias-free layer: eps R_j / (z_j + eps sign z_j), which
also vanishes in the limit.
"""

from __future__ import annotations

import itertools

import sympy

from workbench.proofs.base import Claim, Proof, ProofResult, symbols_mat, symbols_vec

CLAIM = Claim(
    name="lrp-epsilon-limit",
    statement="epsilon-LRP relevances converge to LRP-0 relevances as epsilon -> 0+, for each sign pattern of the pre-activations.",
    assumptions=(
        "one layer, 2 inputs, 2 outputs, with biases; symbolic weights, activations, relevances",
        "z_j != 0; sign(z_j) in {+1, -1} enumerated (4 cases)",
        "epsilon -> 0 from above",
    ),
    formula=r"\lim_{\epsilon \to 0^+} \sum_j \frac{a_i w_{ij}}{z_j + \epsilon\, \mathrm{sign}(z_j)} R_j = \sum_j \frac{a_i w_{ij}}{z_j} R_j \quad (z_j \neq 0)",
)


def prove() -> ProofResult:
    p = Proof(CLAIM)
    eps = sympy.Symbol("epsilon", positive=True)
    a = symbols_vec("a", 2, real=True)
    W = symbols_mat("w", 2, 2, real=True)  # w[i, j]
    b = symbols_vec("b", 2, real=True)
    R = symbols_vec("R", 2, real=True)
    z = [sum(a[i] * W[i, j] for i in range(2)) + b[j] for j in range(2)]
    Z = [sympy.Symbol(f"Z{j + 1}", real=True, nonzero=True) for j in range(2)]
    back = dict(zip(Z, z))
    lrp0 = sympy.Matrix([sum(a[i] * W[i, j] * R[j] / z[j] for j in range(2)) for i in range(2)])
    p.step("LRP-0: $R_i = \\sum_j a_i w_{ij} R_j / z_j$", lrp0)
    for sgn in itertools.product((1, -1), repeat=2):
        R_eps = [sum(a[i] * W[i, j] * R[j] / (Z[j] + eps * sgn[j]) for j in range(2)) for i in range(2)]
        lim = sympy.Matrix([sympy.limit(r, eps, 0, "+") for r in R_eps]).subs(back)
        if sgn == (1, 1):
            p.step("epsilon rule, $\\mathrm{sign}(z) = (+, +)$", sympy.ImmutableMatrix(R_eps).subs(back))
            p.step("limit $\\epsilon \\to 0^+$", lim)
        p.check(f"$\\lim R_\\epsilon - R_{{\\mathrm{{LRP\\text{{-}}0}}}}$ [$\\mathrm{{sign}}(z) = {sgn}$]", lim - lrp0, record=False)
        # absorbed relevance on a bias-free layer: sum_j R_j - sum_i R_i = sum_j eps s_j R_j / (z_j + eps s_j)
        z0 = [zj.subs({b[0]: 0, b[1]: 0}) for zj in z]
        R_eps0 = [sum(a[i] * W[i, j] * R[j] / (z0[j] + eps * sgn[j]) for j in range(2)) for i in range(2)]
        absorbed = sum(sympy.cancel(R[j] - sum(a[i] * W[i, j] * R[j] / (z0[j] + eps * sgn[j]) for i in range(2))) for j in range(2))
        if sgn == (1, 1):
            p.step("absorbed relevance $\\sum_j R_j - \\sum_i R_i$ on a bias-free layer, $\\mathrm{sign}(z) = (+, +)$", absorbed)
        p.check(f"$\\sum_j R_j - \\sum_i R_i$ minus the absorbed term [$\\mathrm{{sign}}(z) = {sgn}$]", sum(R) - sum(R_eps0) - absorbed, record=False)
        p.check(f"$\\lim_{{\\epsilon \\to 0^+}}$ of the absorbed relevance [$\\mathrm{{sign}}(z) = {sgn}$]", sympy.limit(absorbed.subs(dict(zip(z0, Z))), eps, 0, "+"), record=False)
        p.cases += 1
    p.step(f"$\\lim R_\\epsilon - R_{{\\mathrm{{LRP\\text{{-}}0}}}}$ in all {p.cases} sign cases", "zero" if not p.failures else "NOT zero")
    return p.result()

"""The w^2 rule conserves relevance: R_i = sum_j w_ij^2 / sum_i' w_i'j^2 R_j sums to sum_j R_j.

One layer, 3 inputs, 2 outputs, symbolic real weights; the only assumption is that no output's
weight column is zero (sum_i w_ij^2 > 0). The rule does not read the activations or biases.
"""

from __future__ import annotations

import sympy

from workbench.proofs.base import Claim, Proof, ProofResult, symbols_mat, symbols_vec

CLAIM = Claim(
    name="lrp-wsquare-conservation",
    statement="The LRP w^2 rule conserves relevance: sum_i R_i = sum_j R_j.",
    assumptions=("3 inputs, 2 outputs, real symbolic weights", "sum_i w_ij^2 > 0 for every output j"),
    formula=r"R_i = \sum_j \frac{w_{ij}^2}{\sum_{i'} w_{i'j}^2} R_j \;\Longrightarrow\; \sum_i R_i = \sum_j R_j",
)


def prove() -> ProofResult:
    p = Proof(CLAIM)
    W = symbols_mat("w", 3, 2, real=True)  # w[i, j]: input i -> output j
    R = symbols_vec("R", 2, real=True)
    col = [sum(W[i, j] ** 2 for i in range(3)) for j in range(2)]
    Ri = sympy.Matrix([sum(W[i, j] ** 2 / col[j] * R[j] for j in range(2)) for i in range(3)])
    p.step("$R_i = \\sum_j w_{ij}^2 R_j / \\sum_{i'} w_{i'j}^2$", Ri)
    p.cases = 1
    p.check("$\\sum_i R_i - \\sum_j R_j$", sum(Ri) - sum(R))
    return p.result()

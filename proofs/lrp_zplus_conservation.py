"""The z+ rule conserves relevance on non-negative activations.

One layer with inputs a_i >= 0 (i = 1..3) and outputs j = 1..2. Each weight is written
w_ij = wp_ij - wn_ij with wp_ij, wn_ij >= 0 symbols; its sign case is enumerated: w_ij >= 0
(wp_ij free, wn_ij = 0, so w+_ij = wp_ij) or w_ij < 0 (wp_ij = 0, so w+_ij = 0). The z+ rule is
R_i = sum_j a_i w+_ij / z+_j R_j with z+_j = sum_i a_i w+_ij. Sign patterns in which some
output has no positive weight make z+_j identically 0 (the rule's 0/0): they violate the
assumption z+_j > 0 and are counted as excluded. In every admissible pattern
sum_i R_i = sum_j R_j as a rational identity, and with R_j >= 0 every R_i is non-negative
(sympy's sign inference on the non-negative symbols).
"""

from __future__ import annotations

import itertools

import sympy

from workbench.proofs.base import Claim, Proof, ProofResult, symbols_vec

CLAIM = Claim(
    name="lrp-zplus-conservation",
    statement="The LRP z+ rule conserves relevance, sum_i R_i = sum_j R_j, for non-negative activations (and keeps relevance non-negative).",
    assumptions=(
        "a_i >= 0 (3 inputs), 2 outputs, R_j >= 0",
        "w = wp - wn with wp, wn >= 0; each weight's sign case enumerated (2^6 patterns)",
        "z+_j = sum_i a_i w+_ij > 0 for every output j (patterns where a column has no positive weight are excluded)",
    ),
    formula=r"R_i = \sum_j \frac{a_i w^+_{ij}}{\sum_{i'} a_{i'} w^+_{i'j}} R_j \;\Longrightarrow\; \sum_i R_i = \sum_j R_j, \quad R_i \ge 0",
)

I, J = 3, 2


def prove() -> ProofResult:
    p = Proof(CLAIM)
    a = symbols_vec("a", I, nonnegative=True)
    R = symbols_vec("R", J, nonnegative=True)
    wp = sympy.Matrix(I, J, lambda i, j: sympy.Symbol(f"wp{i + 1}{j + 1}", positive=True))
    wn = sympy.Matrix(I, J, lambda i, j: sympy.Symbol(f"wn{i + 1}{j + 1}", positive=True))
    excluded = 0
    nonneg = True
    for signs in itertools.product((1, -1), repeat=I * J):
        S = sympy.Matrix(I, J, list(signs))
        if any(all(S[i, j] < 0 for i in range(I)) for j in range(J)):
            excluded += 1
            continue
        w = sympy.Matrix(I, J, lambda i, j: wp[i, j] if S[i, j] > 0 else -wn[i, j])
        wplus = sympy.Matrix(I, J, lambda i, j: wp[i, j] if S[i, j] > 0 else sympy.S.Zero)
        zp = [sum(a[i] * wplus[i, j] for i in range(I)) for j in range(J)]
        Ri = [sum(a[i] * wplus[i, j] / zp[j] * R[j] for j in range(J)) for i in range(I)]
        if all(s > 0 for s in signs):
            p.step("weights $w_{ij}$ (all-positive sign pattern)", w)
            p.step("$z^+_j = \\sum_i a_i w^+_{ij}$", sympy.ImmutableMatrix([zp]))
            p.step("$R_i = \\sum_j a_i w^+_{ij} R_j / z^+_j$", sympy.ImmutableMatrix(Ri))
        p.check(f"$\\sum_i R_i - \\sum_j R_j$ [signs {signs}]", sum(Ri) - sum(R), record=False)
        # each term a_i w+_ij R_j / z+_j: non-negative numerator over z+_j > 0 (assumed)
        nonneg &= all(
            (a[i] * wplus[i, j] * R[j]).is_nonnegative is True and zp[j].is_nonnegative is True
            for i in range(I) for j in range(J)
        )
        p.cases += 1
    p.step("sign patterns excluded by $z^+_j > 0$ (a column with no positive weight)", sympy.Integer(excluded))
    p.step(f"$\\sum_i R_i - \\sum_j R_j$ in all {p.cases} admissible sign patterns", "zero" if not p.failures else "NOT zero")
    p.require("every term $a_i w^+_{ij} R_j / z^+_j$ of every $R_i$ is non-negative (sign inference on $a, w^+, R \\ge 0$)", nonneg)
    return p.result()

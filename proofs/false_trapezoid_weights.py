"""A deliberately FALSE claim: the peer trapezoid variant with weights summing to (n-1)/n is exact
for constants.

Nodes t_i = i/(n-1), i = 0..n-1, weights (1/n)(1/2, 1, ..., 1, 1/2). Exactness for constants is
Q(1) = 1; the residual is Q(1) - 1 = -1/n, non-zero for every n: the rule loses a fraction 1/n of
every integral (the 1/n relative completeness error that ``workbench check workbench.peers:captum_ig_trapezoid`` measures). Reported as not
proved with that residual.
"""

from __future__ import annotations

import sympy

from workbench.proofs.base import Claim, Proof, ProofResult
from workbench.proofs.quadrature_exactness import broken_trapezoid, nonzero_for_all

CLAIM = Claim(
    name="false-trapezoid-weights",
    statement=(
        "(deliberately false) The trapezoid variant with weights (1/n)(1/2, 1, ..., 1, 1/2) on the nodes "
        "i/(n-1) integrates constants exactly."
    ),
    assumptions=("n a symbolic integer, n >= 2",),
    formula=r"Q_n(1) = \frac{1}{n}\Big(\tfrac12 + \underbrace{1 + \dots + 1}_{n-2} + \tfrac12\Big) \overset{?}{=} \int_0^1 1\, dt = 1",
)


def prove() -> ProofResult:
    p = Proof(CLAIM)
    total = sympy.factor(broken_trapezoid(0))
    p.step("sum of weights $Q_n(1)$", total)
    p.cases = 1
    ok = p.check("$Q_n(1) - 1$ (exactness for constants)", broken_trapezoid(0) - 1)
    if not ok:
        p.require(r"the residual is non-zero for every integer $n \ge 2$", nonzero_for_all(broken_trapezoid(0) - 1, 2), p.failures[0][1])
    return p.result()

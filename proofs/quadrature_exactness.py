"""Degree of exactness (error order) of the path-integral rules on [0, 1].

A rule Q(f) = sum_i w_i f(t_i) has degree D when Q(t^k) = 1/(k+1) for k = 0..D and
Q(t^(D+1)) != 1/(D+2); the rule is linear in f, so exactness on monomials up to D is exactness
on every polynomial of degree <= D, and E(t^(D+1)) = Q(t^(D+1)) - 1/(D+2) is the leading error term.

* left / right / midpoint Riemann sums and the trapezoid rule: n is a *symbolic* integer; the
  node sums are evaluated in closed form (Faulhaber) by ``sympy.summation``, so the statement
  holds for every n (n >= 1; n >= 2 for the trapezoid). The error term is a rational function of
  n and its numerator has no integer root in the admissible range (checked exactly).
* Gauss-Legendre with n = 1..4 nodes: nodes are the exact (radical) roots of P_n mapped to
  [0, 1], t = (1 + r) / 2, weights w = 1 / ((1 - r^2) P_n'(r)^2); degree 2n - 1. Identities
  between algebraic numbers are decided by their minimal polynomials.
"""

from __future__ import annotations

from typing import Callable

import sympy

from workbench.proofs.base import Claim, Proof, ProofResult, is_zero

CLAIM = Claim(
    name="quadrature-exactness",
    statement=(
        "Left and right Riemann sums have degree of exactness 0, midpoint and trapezoid 1, and "
        "n-point Gauss-Legendre 2n - 1 (n = 1..4): exact on t^k for k <= degree, with a non-zero "
        "error term at degree + 1."
    ),
    assumptions=(
        "integrand t^k on [0, 1]",
        "Riemann and trapezoid rules: n a symbolic positive integer (n >= 2 for the trapezoid)",
        "Gauss-Legendre: n = 1, 2, 3, 4 with exact algebraic nodes and weights",
    ),
    formula=(
        r"Q_n(t^k) = \sum_i w_i t_i^k = \tfrac{1}{k+1} \text{ for } k \le D, \qquad Q_n(t^{D+1}) \ne \tfrac{1}{D+2}; "
        r"\quad D_{\text{left}} = D_{\text{right}} = 0,\; D_{\text{midpoint}} = D_{\text{trapezoid}} = 1,\; D_{\text{GL}_n} = 2n - 1"
    ),
)

#: the exactness degree proved here for each rule of ``workbench.paths.quadrature``, as a function of the
#: number of nodes n; Gauss-Legendre is proved for n <= GAUSS_LEGENDRE_PROVED_UP_TO only
PROVED_DEGREE = {
    "left": lambda m: 0,
    "right": lambda m: 0,
    "midpoint": lambda m: 1,
    "trapezoid": lambda m: 1,
    "gauss-legendre": lambda m: 2 * m - 1,
}
GAUSS_LEGENDRE_PROVED_UP_TO = 4

n = sympy.Symbol("n", integer=True, positive=True)
_i = sympy.Symbol("i", integer=True, nonnegative=True)
Rule = Callable[[int], sympy.Expr]  # k -> Q(t^k)


def left(k: int) -> sympy.Expr:
    """Left Riemann: t_i = i/n, w_i = 1/n, i = 0..n-1."""
    return sympy.summation((_i / n) ** k, (_i, 0, n - 1)) / n


def right(k: int) -> sympy.Expr:
    """Right Riemann: t_i = i/n, w_i = 1/n, i = 1..n."""
    return sympy.summation((_i / n) ** k, (_i, 1, n)) / n


def midpoint(k: int) -> sympy.Expr:
    """Midpoint: t_i = (i + 1/2)/n, w_i = 1/n, i = 0..n-1."""
    return sympy.summation(((_i + sympy.Rational(1, 2)) / n) ** k, (_i, 0, n - 1)) / n


def _trapezoid_sum(k: int) -> sympy.Expr:
    """sum_{i=0}^{n-1} f(t_i) - (f(0) + f(1))/2 at the nodes t_i = i/(n-1)."""
    h = 1 / (n - 1)
    f0 = sympy.S.One if k == 0 else sympy.S.Zero
    return sympy.summation((_i * h) ** k, (_i, 0, n - 1)) - (f0 + 1) / 2


def trapezoid(k: int) -> sympy.Expr:
    """Trapezoid on n nodes t_i = i h, h = 1/(n-1): weights h (1/2, 1, ..., 1, 1/2) (sum 1)."""
    return _trapezoid_sum(k) / (n - 1)


def broken_trapezoid(k: int) -> sympy.Expr:
    """The defective peer variant: same nodes, weights (1/n)(1/2, 1, ..., 1, 1/2) (sum (n-1)/n)."""
    return _trapezoid_sum(k) / n


def gauss_legendre_rule(m: int) -> tuple[list[sympy.Expr], list[sympy.Expr]]:
    """Exact nodes and weights of the m-point Gauss-Legendre rule on [0, 1]."""
    r = sympy.Symbol("r")
    P = sympy.legendre(m, r)
    roots = sympy.roots(sympy.Poly(P, r))
    if sum(roots.values()) != m:  # pragma: no cover - radicals exist for m <= 4
        raise ValueError(f"no radical roots for P_{m}")
    dP = sympy.diff(P, r)
    nodes, weights = [], []
    for root in sorted(roots, key=lambda e: float(e)):
        nodes.append(sympy.radsimp((1 + root) / 2))
        weights.append(sympy.simplify(sympy.expand(sympy.radsimp(1 / ((1 - root**2) * dP.subs(r, root) ** 2)))))
    return nodes, weights


def rule_nodes(name: str, m: int) -> tuple[list[sympy.Expr], list[sympy.Expr]]:
    """Exact nodes and weights of the rule `name` (as named in ``workbench.paths.quadrature``) with m
    nodes, as this proof defines them (for the property-test twin to compare with the library)."""
    k = range(m)
    if name == "left":
        return [sympy.Rational(i, m) for i in k], [sympy.Rational(1, m)] * m
    if name == "right":
        return [sympy.Rational(i + 1, m) for i in k], [sympy.Rational(1, m)] * m
    if name == "midpoint":
        return [sympy.Rational(2 * i + 1, 2 * m) for i in k], [sympy.Rational(1, m)] * m
    if name == "trapezoid":
        h = sympy.Rational(1, m - 1)
        return [i * h for i in k], [h / 2 if i in (0, m - 1) else h for i in k]
    if name == "gauss-legendre":
        return gauss_legendre_rule(m)
    raise ValueError(f"unknown rule {name!r}")


def gauss_legendre(m: int) -> Rule:
    nodes, weights = gauss_legendre_rule(m)

    def q(k: int) -> sympy.Expr:
        return sum(w * t**k for t, w in zip(nodes, weights))

    q.__doc__ = f"{m}-point Gauss-Legendre"
    return q


def nonzero_for_all(expr: sympy.Expr, start: int) -> bool:
    """Whether the rational function expr(n) is non-zero for every integer n >= start (exact)."""
    num, den = sympy.fraction(sympy.cancel(sympy.together(expr)))
    if num.is_zero:
        return False
    if not num.has(n):
        return True
    poly = sympy.Poly(num, n)
    for root in poly.real_roots():
        if root.is_integer and root >= start:
            return False
    return True


def check_rule(p: Proof, label: str, rule: Rule, degree: int, start: int | None) -> None:
    """Exact for k <= degree, error term at degree + 1 non-zero (for every n >= start if symbolic)."""
    exact = True
    for k in range(degree + 1):
        exact &= p.check(f"{label}: $Q(t^{{{k}}}) - 1/{k + 1}$", rule(k) - sympy.Rational(1, k + 1), record=False)
        p.cases += 1
    err = sympy.factor(sympy.cancel(rule(degree + 1) - sympy.Rational(1, degree + 2)))
    ok = (not is_zero(err)) if start is None else nonzero_for_all(err, start)
    p.cases += 1
    p.step(f"{label}: $Q(t^k) - 1/(k+1)$ for $k = 0, \\dots, {degree}$", "all zero" if exact else "NOT all zero (see above)")
    where = "" if start is None else f" for every integer $n \\ge {start}$"
    p.require(f"{label}: error term $E(t^{{{degree + 1}}}) = Q(t^{{{degree + 1}}}) - 1/{degree + 2}$ is non-zero{where}", ok, err)


def prove() -> ProofResult:
    p = Proof(CLAIM)
    for label, rule, degree, start in (
        ("left Riemann (n nodes)", left, PROVED_DEGREE["left"](n), 1),
        ("right Riemann (n nodes)", right, PROVED_DEGREE["right"](n), 1),
        ("midpoint (n nodes)", midpoint, PROVED_DEGREE["midpoint"](n), 1),
        ("trapezoid (n nodes)", trapezoid, PROVED_DEGREE["trapezoid"](n), 2),
    ):
        p.step(f"{label}: $Q(t)$ in closed form", sympy.factor(rule(1)))
        check_rule(p, label, rule, degree, start)
    for m in range(1, GAUSS_LEGENDRE_PROVED_UP_TO + 1):
        nodes, weights = gauss_legendre_rule(m)
        p.step(f"Gauss-Legendre n = {m}: nodes on [0, 1]", sympy.ImmutableMatrix([nodes]))
        p.step(f"Gauss-Legendre n = {m}: weights", sympy.ImmutableMatrix([weights]))
        check_rule(p, f"Gauss-Legendre n = {m}", gauss_legendre(m), PROVED_DEGREE["gauss-legendre"](m), None)
    return p.result()

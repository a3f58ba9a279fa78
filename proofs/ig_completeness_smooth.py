"""IG completeness for a smooth function (fundamental theorem of calculus along the straight path).

Part A (any C^1 function): F is an undefined sympy function of 3 variables. With x = x' + d and
the path gamma(t) = x' + t d, the integrand of sum_i IG_i is sum_i d_i dF/dx_i(gamma(t)); the
chain rule (derived by sympy) says it equals d/dt F(gamma(t)), and the fundamental theorem of
calculus (sympy's integral of a derivative) gives F(x) - F(x'). Nothing about F is used beyond
differentiability along the path, so this is the general statement.

Part B (an explicit instance, every integral computed in closed form):
F(x1, x2) = a sin(x1) x2 + b exp(x2) + sum_{i+j<=2} c_ij x1^i x2^j with symbolic coefficients.
Each IG_i = d_i int_0^1 dF/dx_i(x' + t d) dt is integrated by sympy and the sum compared with
F(x) - F(x'). Case split: the antiderivative in t divides by d_i (int cos(x'_1 + t d_1) dt), so
"coordinate i moves (d_i a non-zero symbol)" / "stays (d_i = 0)" are enumerated: 4 cases.
"""

from __future__ import annotations

import itertools

import sympy

from workbench.proofs.base import Claim, Proof, ProofResult

CLAIM = Claim(
    name="ig-completeness-smooth",
    statement=(
        "For every continuously differentiable F, integrated gradients along the straight path are complete: "
        "the attributions sum to F(x) - F(x') (fundamental theorem of calculus); also checked on an explicit "
        "smooth F with every integral in closed form."
    ),
    assumptions=(
        "Part A: F an arbitrary (undefined) C^1 function of 3 real variables; x = x' + d with x', d real symbols",
        "Part B: F = a sin(x1) x2 + b exp(x2) + generic quadratic with real symbolic coefficients",
        "Part B: each displacement d_i is a non-zero symbol or exactly 0 (both cases enumerated)",
    ),
    formula=(
        r"\sum_i \mathrm{IG}_i(x, x') = \sum_i (x_i - x'_i) \int_0^1 \frac{\partial F}{\partial x_i}"
        r"\big(x' + \alpha (x - x')\big)\, d\alpha = F(x) - F(x')"
    ),
)


def _part_a(p: Proof) -> None:
    F = sympy.Function("F")
    t = sympy.Symbol("t", real=True)
    xp = sympy.symbols("xp1:4", real=True)
    d = sympy.symbols("d1:4", real=True)
    y = sympy.symbols("y1:4", real=True)
    path = [xp[i] + t * d[i] for i in range(3)]
    on_path = dict(zip(y, path))
    grad_on_path = [sympy.Derivative(F(*y), yi).subs(on_path, simultaneous=True) for yi in y]
    integrand = sum(d[i] * grad_on_path[i] for i in range(3))
    p.step(r"Part A: integrand of $\sum_i \mathrm{IG}_i$, $\sum_i d_i\, \partial_i F(x' + t d)$", integrand)
    G = F(*path)
    p.check(r"Part A: chain rule $\frac{d}{dt} F(x' + t d) - \sum_i d_i\, \partial_i F(x' + t d)$", sympy.diff(G, t) - integrand)
    ftc = sympy.integrate(sympy.Derivative(G, t), (t, 0, 1), manual=True)  # manual: skips a slow heuristic
    p.step(r"Part A: fundamental theorem of calculus, $\int_0^1 \frac{d}{dt} F(x' + t d)\, dt$", ftc)
    delta = F(*[xp[i] + d[i] for i in range(3)]) - F(*xp)
    p.check(r"Part A: $\sum_i \mathrm{IG}_i - (F(x) - F(x'))$ for an arbitrary $C^1$ function $F$", ftc - delta)
    p.cases += 1


def _model(x1: sympy.Expr, x2: sympy.Expr) -> sympy.Expr:
    a, b = sympy.symbols("a b", real=True)
    poly = sum(
        sympy.Symbol(f"c{i}{j}", real=True) * x1**i * x2**j for i in range(3) for j in range(3) if i + j <= 2
    )
    return a * sympy.sin(x1) * x2 + b * sympy.exp(x2) + poly


def _part_b(p: Proof) -> None:
    t = sympy.Symbol("t", real=True)
    x1, x2 = sympy.symbols("x1 x2", real=True)
    xp = sympy.symbols("xp1 xp2", real=True)
    F = _model(x1, x2)
    p.step("Part B: $F(x_1, x_2)$", F)
    grads = [sympy.diff(F, x1), sympy.diff(F, x2)]
    p.step(r"Part B: $\partial F / \partial x_1$", grads[0])
    p.step(r"Part B: $\partial F / \partial x_2$", grads[1])
    for moving in itertools.product((True, False), repeat=2):
        d = [sympy.Symbol(f"d{i + 1}", real=True, nonzero=True) if m else sympy.S.Zero for i, m in enumerate(moving)]
        path = {x1: xp[0] + t * d[0], x2: xp[1] + t * d[1]}
        ig = [d[i] * sympy.integrate(grads[i].subs(path, simultaneous=True), (t, 0, 1)) for i in range(2)]
        label = ", ".join(f"$d_{i + 1}" + (r" \neq 0$" if m else " = 0$") for i, m in enumerate(moving))
        if all(moving):
            p.step(f"Part B: $\\mathrm{{IG}}_1$ ({label})", ig[0])
            p.step(f"Part B: $\\mathrm{{IG}}_2$ ({label})", ig[1])
        delta = F.subs({x1: xp[0] + d[0], x2: xp[1] + d[1]}, simultaneous=True) - F.subs({x1: xp[0], x2: xp[1]})
        p.check(f"Part B: $\\mathrm{{IG}}_1 + \\mathrm{{IG}}_2 - (F(x) - F(x'))$ [{label}]", ig[0] + ig[1] - delta)
        p.cases += 1


def prove() -> ProofResult:
    p = Proof(CLAIM)
    _part_a(p)
    _part_b(p)
    return p.result()

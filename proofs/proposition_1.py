"""FullGrad's Proposition 1, by a symbolic construction (our reconstruction; see below).

Setting (Srinivas & Fleuret, NeurIPS 2019, Section 3): f is piecewise linear,
f(x) = w_i . x + b_i on open regions U_i, x in R^D; a saliency map S(x) has D entries.
* weak dependence: on a region U_i, S depends on x only through that region's (w_i, b_i):
  S(x) = sigma(w_i, b_i) for x in U_i;
* completeness: some phi recovers f(x) = phi(S(x), x) for every f and x.
Proposition 1: no input-sized map satisfies both, in general.

Reconstruction. Together the two properties give phi(sigma(w, b), x) = w . x + b for every
(w, b) and every x in an open region, so sigma: R^(D+1) -> R^D would have to be injective (two
parameter vectors with the same sigma give the same phi(., x), hence the same f on the region).
The paper's argument is a count ("D numbers cannot carry w and b"). A discontinuous injection
R^(D+1) -> R^D exists set-theoretically, so the statement needs a regularity class for sigma; we
prove it symbolically for two classes, exhibiting for each two affine pieces that S cannot tell
apart but whose outputs differ at the same x:

Part A (the construction of the paper's argument; any sigma that reads only the weights, as the
input gradient and every gradient-based map weakly dependent in this sense do): two ReLU units
f_k(x) = relu(w . x + b_k), k = 1, 2, with the same w and b_1 != b_2, on their common active
region: S equal at every common x, but f_1(x) - f_2(x) = b_1 - b_2 != 0.

Part B (any sigma linear in (w, b), D = 2: sigma(w, b) = A w + b c with A, c symbolic): the 2 x 3
matrix M = [A | c] always has a non-zero kernel vector k = (k_w, k_b), built in closed form in 6
enumerated cases (rank 2: cross product of the rows; rank 1: cross product of the non-zero row
with a unit vector, sub-cases by which entry is non-zero; M = 0). Each case also proves k != 0: |k|^2 equals a quantity
its case condition makes positive (the Gram determinant of the rows in rank 2). The pieces (w, b) and
(w + k_w, b + k_b) have identical saliency, yet differ by the affine function k_w . x + k_b, which
is non-zero at x = 0 (if k_b != 0) or at x = e_j (if k_wj != 0, k_b = 0).
"""

from __future__ import annotations

import sympy

from workbench.proofs.base import Claim, Proof, ProofResult, symbols_vec

CLAIM = Claim(
    name="proposition-1",
    statement=(
        "FullGrad Proposition 1: an input-sized saliency map cannot be both weakly dependent on the "
        "input and complete for piecewise-linear f (shown for maps reading only the weights, and for "
        "every map linear in (w, b) with D = 2)."
    ),
    assumptions=(
        "weak dependence: S(x) = sigma(w_i, b_i) on region U_i; completeness: f(x) = phi(S(x), x)",
        "Part A: sigma depends on the region's weights w only (e.g. the input gradient)",
        "Part B: sigma(w, b) = A w + b c with A (2x2) and c (2) arbitrary real symbols",
        "reconstructed from the paper's summary: an arbitrary (discontinuous) sigma is out of scope",
    ),
    formula=(
        r"S(x) = \sigma(w_i, b_i) \text{ on } U_i \;\wedge\; f(x) = \phi(S(x), x) \;\Longrightarrow\; "
        r"\sigma \text{ injective on } \mathbb{R}^{D+1} \to \mathbb{R}^{D}: \text{ contradicted by } "
        r"\sigma(w, b) = \sigma(w + k_w, b + k_b),\; k \ne 0"
    ),
)


def _part_a(p: Proof) -> None:
    x = symbols_vec("x", 2, real=True)
    w = symbols_vec("w", 2, real=True)
    b1, b2 = sympy.symbols("b_1 b_2", real=True)
    z1, z2 = (w.T * x)[0] + b1, (w.T * x)[0] + b2
    # on the common active region relu is the identity for both units
    f1, f2 = z1, z2
    p.step(r"Part A: $f_1 = \mathrm{relu}(w \cdot x + b_1)$, $f_2 = \mathrm{relu}(w \cdot x + b_2)$ on their common active region", sympy.ImmutableMatrix([f1, f2]))
    grads = sympy.Matrix([[sympy.diff(f1, xi) for xi in x], [sympy.diff(f2, xi) for xi in x]])
    p.step(r"Part A: region weights $(\nabla_x f_1, \nabla_x f_2)$", grads)
    p.check(r"Part A: weights of $f_1$ minus weights of $f_2$ (so $\sigma(w_1) = \sigma(w_2)$)", grads.row(0) - grads.row(1))
    diff = sympy.expand(f1 - f2)
    p.step("Part A: $f_1(x) - f_2(x)$ at the same $x$", diff)
    p.require(r"Part A: $f_1(x) \neq f_2(x)$ whenever $b_1 \neq b_2$, so no $\phi(S(x), x)$ returns both", diff == b1 - b2, diff)
    p.cases += 1


def _cross(u: sympy.Matrix, v: sympy.Matrix) -> sympy.Matrix:
    return sympy.Matrix([u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]])


def _part_b(p: Proof) -> None:
    A11, A12, A21, A22, c1, c2, lam = sympy.symbols("A11 A12 A21 A22 c1 c2 lambda", real=True)
    P, Q, R = sympy.symbols("p q r", real=True)  # entries of the non-zero row in the rank-1 cases
    nz = sympy.Symbol("s", real=True, nonzero=True)
    general = sympy.Matrix([[A11, A12, c1], [A21, A22, c2]])
    p.step(r"Part B: $\sigma(w, b) = M (w_1, w_2, b)^\top$, $M = [A \mid c]$", general)
    r1, r2 = general.row(0).T, general.row(1).T
    # each case: (label, M, kernel vector k, |k|^2 written as the quantity the case condition makes positive, why)
    cases = [(
        "rank 2: $k = r_1 \\times r_2$",
        general,
        _cross(r1, r2),
        (r1.T * r1)[0] * (r2.T * r2)[0] - ((r1.T * r2)[0]) ** 2,
        "Gram determinant $|r_1|^2 |r_2|^2 - (r_1 \\cdot r_2)^2 > 0$ for independent rows (Cauchy-Schwarz)",
    )]
    # rank 1 with r1 != 0 and r2 = lambda r1, sub-cases by which entries of r1 vanish; and r1 = 0, r2 != 0
    for which in ("r_1", "r_2"):
        for shape, row, e, norm, why in (
            ("(p, q, r)$ with $(q, r) \\neq 0$", sympy.Matrix([P, Q, R]), sympy.Matrix([1, 0, 0]), Q**2 + R**2, "$q^2 + r^2 > 0$"),
            ("(s, 0, 0)$ with $s \\neq 0$", sympy.Matrix([nz, 0, 0]), sympy.Matrix([0, 1, 0]), nz**2, "$s^2 > 0$"),
        ):
            if which == "r_1":
                M = sympy.Matrix([list(row), list(lam * row)])
                label = f"rank 1, $r_1 = {shape}, $r_2 = \\lambda r_1$"
            else:
                M = sympy.Matrix([[0, 0, 0], list(row)])
                label = f"rank 1, $r_1 = 0$, $r_2 = {shape}"
            cases.append((label + f": $k = {which} \\times e_{{{1 if e[0] else 2}}}$", M, _cross(row, e), norm, why))
    cases.append(("$M = 0$: $k = (0, 0, 1)$ (pure bias change)", sympy.zeros(2, 3), sympy.Matrix([0, 0, 1]), sympy.S.One, "$1 > 0$"))

    w1, w2, b, x1, x2 = sympy.symbols("w1 w2 b x1 x2", real=True)
    for label, M, k, norm, why in cases:
        p.step(f"Part B [{label}]: kernel vector $k$", k.T)
        p.check(f"Part B [{label}]: $M k$ (saliency of $(w, b) + k$ minus saliency of $(w, b)$)", M * k, record=False)
        p.check(f"Part B [{label}]: $|k|^2$ minus the case's positive quantity ({why})", (k.T * k)[0] - norm, record=False)
        f_a = w1 * x1 + w2 * x2 + b
        f_b = (w1 + k[0]) * x1 + (w2 + k[1]) * x2 + (b + k[2])
        gap = sympy.expand(f_b - f_a)
        # witness points: x = 0 exposes k_b, x = e_j exposes k_wj + k_b; the three values determine k != 0
        at = [gap.subs({x1: 0, x2: 0}), gap.subs({x1: 1, x2: 0}), gap.subs({x1: 0, x2: 1})]
        recover = sympy.Matrix([at[1] - at[0], at[2] - at[0], at[0]]) - k
        p.check(f"Part B [{label}]: $(f_b - f_a)$ at $e_1, e_2, 0$ determines $k$", recover, record=False)
        p.step(f"Part B [{label}]: $f_b(x) - f_a(x)$", gap)
        p.cases += 1


def prove() -> ProofResult:
    p = Proof(CLAIM)
    _part_a(p)
    _part_b(p)
    p.step(
        "conclusion",
        "in every case two affine pieces share $S$ at the same $x$ but differ in $f$ there ($k \\neq 0$ by the case "
        "condition, and $f_b - f_a$ at $0, e_1, e_2$ recovers $k$), so no $\\phi(S(x), x)$ can equal $f(x)$ for both",
    )
    return p.result()

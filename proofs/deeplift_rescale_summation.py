"""DeepLift Rescale: summation-to-delta on a two-layer ReLU network with biases.

Network: z = W x + b (2 inputs, 2 hidden units), a = relu(z), f = v . a + c; input x,
reference x0 (z0, a0, f0 its values). DeepLift's linear rule gives multiplier W (the bias
contributes nothing), the Rescale rule at a ReLU the multiplier m_j = (a_j - a0_j)/(z_j - z0_j),
and multipliers compose by the chain rule: contributions C_i = (x_i - x0_i) sum_j W_ji m_j v_j.

The proof has three parts:
1. unit lemma, per ReLU unit with free symbols z, z0 and every case: the pattern pair
   (d, d0) in {0,1}^2 with z != z0 (m = (d z - d0 z0)/(z - z0)), and z = z0 (then d = d0 and
   Rescale falls back to the gradient m = d): in all 6 cases m (z - z0) = a - a0.
2. chain rule with the multipliers left as symbols m_j: sum_i C_i = sum_j v_j m_j (z_j - z0_j)
   (a polynomial identity), hence by the lemma sum_i C_i = sum_j v_j (a_j - a0_j) = f - f0
   (the output bias c cancels): this covers z_j = z0_j, where the Rescale quotient is 0/0.
3. direct check on the network, for each of the 16 pattern pairs of (input, reference):
   m_j written out as the rational function of x, x0, W, b; sum_i C_i - (f(x) - f(x0)) cancels.
"""

from __future__ import annotations

import sympy

from workbench.proofs.base import Claim, Proof, ProofResult, pattern_text, patterns, symbols_mat, symbols_vec

CLAIM = Claim(
    name="deeplift-rescale-summation",
    statement=(
        "DeepLift with the Rescale rule satisfies summation-to-delta on a two-layer ReLU network with "
        "biases: sum_i C_i = f(x) - f(x0), for every pattern pair of input and reference."
    ),
    assumptions=(
        "2 inputs, 2 hidden ReLU units with biases, linear output with bias; symbolic parameters",
        "ReLU = diag(d) at x and diag(d0) at x0; all 16 pattern pairs enumerated",
        "at a unit with z = z0 the multiplier is the gradient d (the 0/0 case; any value works, see the lemma)",
    ),
    formula=(
        r"m_j = \frac{a_j - a^0_j}{z_j - z^0_j}, \quad C_i = (x_i - x^0_i) \sum_j W_{ji} m_j v_j "
        r"\;\Longrightarrow\; \sum_i C_i = f(x) - f(x^0)"
    ),
)


def _lemma(p: Proof) -> None:
    z, z0 = sympy.symbols("z z0", real=True)
    for d, d0 in patterns(2):
        m = (d * z - d0 * z0) / (z - z0)
        p.check(f"lemma: $m (z - z^0) - (a - a^0)$, $z \\neq z^0$, $(d, d^0) = ({d}, {d0})$", m * (z - z0) - (d * z - d0 * z0), record=False)
        p.cases += 1
    for d in (0, 1):
        m = sympy.Integer(d)  # gradient of relu in the common pattern
        p.check(f"lemma: $m (z - z^0) - (a - a^0)$, $z = z^0$, $d = d^0 = {d}$", (m * (z - z0) - (d * z - d * z0)).subs(z0, z), record=False)
        p.cases += 1
    p.step(r"unit lemma: $m (z - z^0) = \mathrm{relu}(z) - \mathrm{relu}(z^0)$ in all 6 unit cases", "zero residuals" if not p.failures else "NOT zero")


def prove() -> ProofResult:
    p = Proof(CLAIM)
    _lemma(p)
    x, x0 = symbols_vec("x", 2, real=True), symbols_vec("x0_", 2, real=True)
    W, b = symbols_mat("W", 2, 2, real=True), symbols_vec("b", 2, real=True)
    v, c = symbols_vec("v", 2, real=True), sympy.Symbol("c", real=True)
    z, z0 = W * x + b, W * x0 + b
    dx = x - x0
    # part 2: symbolic multipliers
    m = symbols_vec("m", 2, real=True)
    C = sympy.Matrix([dx[i] * sum(W[j, i] * m[j] * v[j] for j in range(2)) for i in range(2)])
    p.step(r"contributions $C_i = (x_i - x^0_i) \sum_j W_{ji} m_j v_j$", C)
    chain = sum(C) - sum(v[j] * m[j] * (z[j] - z0[j]) for j in range(2))
    p.check(r"chain rule: $\sum_i C_i - \sum_j v_j m_j (z_j - z^0_j)$", chain)
    a_sym, a0_sym = symbols_vec("a", 2, real=True), symbols_vec("a0_", 2, real=True)
    f_sym = (v.T * a_sym)[0] + c
    f0_sym = (v.T * a0_sym)[0] + c
    p.check(r"with the lemma: $\sum_j v_j (a_j - a^0_j) - (f(x) - f(x^0))$", sum(v[j] * (a_sym[j] - a0_sym[j]) for j in range(2)) - (f_sym - f0_sym))
    # part 3: explicit multipliers per pattern pair
    for pat in patterns(4):
        d, d0 = pat[:2], pat[2:]
        a, a0 = sympy.diag(*d) * z, sympy.diag(*d0) * z0
        f, f0 = (v.T * a)[0] + c, (v.T * a0)[0] + c
        mj = [(a[j] - a0[j]) / (z[j] - z0[j]) for j in range(2)]
        Cj = [dx[i] * sum(W[j, i] * mj[j] * v[j] for j in range(2)) for i in range(2)]
        label = f"$d(x) = {pattern_text(d)}$, $d(x^0) = {pattern_text(d0)}$"
        if pat == (1, 0, 0, 1):
            p.step(f"Rescale multipliers $m_j$ ({label})", sympy.ImmutableMatrix(mj))
        p.check(f"$\\sum_i C_i - (f(x) - f(x^0))$ [{label}]", sum(Cj) - (f - f0), record=False)
        p.cases += 1
    p.step(r"$\sum_i C_i - (f(x) - f(x^0))$ in all 16 pattern pairs", "zero" if not p.failures else "NOT zero")
    return p.result()

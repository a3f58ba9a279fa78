"""The full-gradient decomposition f(x) = grad_x f . x + sum_l grad_{b_l} f . b_l (FullGrad, eq. 2).

Network (2 inputs, two hidden layers of 2 units, 1 output), all parameters symbolic:
    z1 = W1 x + b1,  h = gamma * (z1 - mu) / sqrt(var + eps) + beta   (BatchNorm, eval mode),
    a1 = relu(h),    z2 = W2 a1 + b2,   a2 = relu(z2),   f = v . a2 + c.
BatchNorm is the affine map h = s * z1 + beta_bn with scale s = gamma / sqrt(var + eps) and the
implicit bias beta_bn = beta - gamma * mu / sqrt(var + eps); the gradient with respect to that
bias equals grad_beta f (d beta_bn / d beta = 1).

Every activation pattern (d1, d2) in {0,1}^2 x {0,1}^2 is enumerated: inside a pattern the ReLU is
the 0/1 diagonal matrix diag(d) (also at a kink z = 0, where relu(z) = d z for either d), and the
identity is checked as a rational-function identity in all the symbols. It holds in every pattern
without using the region's sign conditions, so it holds on every region. As a control, the same
check without the BatchNorm implicit bias leaves a non-zero residual (recorded as a step).
"""

from __future__ import annotations

import sympy

from workbench.proofs.base import Claim, Proof, ProofResult, gradient, pattern_text, patterns, symbols_mat, symbols_vec

CLAIM = Claim(
    name="fullgrad-decomposition",
    statement=(
        "For a two-hidden-layer ReLU network with biases and an eval-mode BatchNorm layer, "
        "f(x) = grad_x f . x + sum over layers of grad_b f . b, where BatchNorm contributes the implicit "
        "bias beta - gamma * mu / sqrt(var + eps); in every activation pattern."
    ),
    assumptions=(
        "all weights, biases, inputs and BatchNorm parameters are real symbols; var + eps > 0",
        "ReLU inside an activation pattern d is diag(d), d in {0,1}^units (all 2^4 patterns enumerated)",
        "gradients are taken inside the pattern's region (the network is linear there)",
    ),
    formula=(
        r"f(x) = \nabla_x f \cdot x + \sum_{l} \nabla_{b_l} f \cdot b_l, \qquad "
        r"b_{\mathrm{BN}} = \beta - \frac{\gamma \mu}{\sqrt{\sigma^2 + \epsilon}}"
    ),
)


def network(d1, d2):
    """Symbols and the pattern's output f (BatchNorm written explicitly)."""
    x = symbols_vec("x", 2, real=True)
    W1, b1 = symbols_mat("W1_", 2, 2, real=True), symbols_vec("b1_", 2, real=True)
    W2, b2 = symbols_mat("W2_", 2, 2, real=True), symbols_vec("b2_", 2, real=True)
    v, c = symbols_vec("v", 2, real=True), sympy.Symbol("c", real=True)
    gamma, beta, mu = symbols_vec("gamma", 2, real=True), symbols_vec("beta", 2, real=True), symbols_vec("mu", 2, real=True)
    var, eps = symbols_vec("var", 2, positive=True), sympy.Symbol("epsilon", positive=True)
    z1 = W1 * x + b1
    h = sympy.Matrix([gamma[i] * (z1[i] - mu[i]) / sympy.sqrt(var[i] + eps) + beta[i] for i in range(2)])
    a1 = sympy.diag(*d1) * h
    z2 = W2 * a1 + b2
    a2 = sympy.diag(*d2) * z2
    f = (v.T * a2)[0] + c
    bn_bias = sympy.Matrix([beta[i] - gamma[i] * mu[i] / sympy.sqrt(var[i] + eps) for i in range(2)])
    return dict(x=x, b1=b1, b2=b2, c=c, beta=beta, bn_bias=bn_bias, f=f)


def decomposition_terms(net: dict, *, bn_implicit_bias: bool = True) -> tuple[sympy.Expr, sympy.Expr]:
    """(grad_x f . x, sum of the bias terms) of one pattern's network; the BatchNorm term uses its
    implicit bias (or, with ``bn_implicit_bias=False``, is left out: the control that must fail)."""
    f = net["f"]
    input_term = (gradient(f, net["x"]).T * net["x"])[0]
    bias_terms = (
        (gradient(f, net["b1"]).T * net["b1"])[0]
        + (gradient(f, net["b2"]).T * net["b2"])[0]
        + sympy.diff(f, net["c"]) * net["c"]
    )
    if bn_implicit_bias:
        bias_terms += (gradient(f, net["beta"]).T * net["bn_bias"])[0]
    return input_term, bias_terms


def prove() -> ProofResult:
    p = Proof(CLAIM)
    for pat in patterns(4):
        d1, d2 = pat[:2], pat[2:]
        net = network(d1, d2)
        f = net["f"]
        input_term, bias_terms = decomposition_terms(net)
        label = f"pattern $d_1 = {pattern_text(d1)}$, $d_2 = {pattern_text(d2)}$"
        if pat == (0, 0, 0, 0):
            p.step(r"BatchNorm's implicit bias $\beta - \gamma \mu / \sqrt{\sigma^2 + \epsilon}$", net["bn_bias"])
        if pat == (1, 1, 1, 1):
            p.step(f"$f$ ({label})", f)
            p.step(f"$\\nabla_x f \\cdot x$ ({label})", input_term)
            p.step(f"$\\sum_l \\nabla_{{b_l}} f \\cdot b_l$ ({label})", bias_terms)
        p.check(f"$f - \\nabla_x f \\cdot x - \\sum_l \\nabla_{{b_l}} f \\cdot b_l$ [{label}]", f - input_term - bias_terms, record=False)
        p.cases += 1
        if pat == (1, 1, 1, 1):
            _, without_bn = decomposition_terms(net, bn_implicit_bias=False)
            p.step(f"control: residual when BatchNorm's implicit bias is left out ({label})", sympy.expand(f - input_term - without_bn))
    p.step(f"$f - \\nabla_x f \\cdot x - \\sum_l \\nabla_{{b_l}} f \\cdot b_l$ in all {p.cases} patterns", "zero" if not p.failures else "NOT zero")
    return p.result()

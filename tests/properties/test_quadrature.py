"""Quadrature rules: weights sum to 1 and t^k is integrated exactly up to the stated degree.

The properties are written as helpers that *return* the error, so the same helper that the real
rules pass is shown to catch a broken rule (a trapezoid whose weights sum to (n - 1) / n).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from workbench.core.errors import InputError
from workbench.paths.quadrature import LOBATTO_PANEL, MIN_STEPS, RULES, SIMPSON_PANEL, Quadrature, quadrature
from workbench.proofs import false_trapezoid_weights, quadrature_exactness
from workbench.proofs.base import twin_of

TOL = 1e-10
MAX_K = 40  # highest monomial checked: keeps t^k well inside float64 for Gauss-Legendre


def rule_and_steps(max_steps: int = 64) -> st.SearchStrategy[tuple[str, int]]:
    return st.sampled_from(RULES).flatmap(lambda r: st.tuples(st.just(r), st.integers(MIN_STEPS[r], max_steps)))


# -- property helpers (return the error; the tests decide) ---------------------------------

def weight_sum_error(q: Quadrature) -> float:
    """|sum_i w_i - 1|."""
    return abs(q.weights.sum().item() - 1.0)


def monomial_error(q: Quadrature, k: int, a: float = 0.0, b: float = 1.0) -> float:
    """|sum_i w_i t_i^k - (b^{k+1} - a^{k+1}) / (k + 1)|, relative to (b - a) max(|a|, |b|)^k."""
    exact = (b ** (k + 1) - a ** (k + 1)) / (k + 1)
    scale = (b - a) * max(abs(a), abs(b)) ** k
    return abs((q.weights * q.nodes**k).sum().item() - exact) / scale


def exactness_error(q: Quadrature, a: float = 0.0, b: float = 1.0) -> float:
    """The largest monomial error over k = 0..min(degree, MAX_K): 0 up to round-off for a correct rule."""
    return max(monomial_error(q, k, a, b) for k in range(min(q.degree, MAX_K) + 1))


def broken_trapezoid(n: int) -> Quadrature:
    """The defect the design notes warn about: trapezoid shape, but h = 1 / n, so weights sum to (n - 1) / n."""
    h = 1.0 / n
    w = torch.full((n,), h, dtype=torch.float64)
    w[0] = w[-1] = h / 2
    return Quadrature("broken-trapezoid", torch.linspace(0.0, 1.0, n, dtype=torch.float64), w, 1)


# -- properties ----------------------------------------------------------------------------

@given(rule_and_steps())
def test_shapes_and_nodes_in_unit_interval(case: tuple[str, int]) -> None:
    name, n = case
    q = quadrature(name, n)
    assert q.name == name and len(q) == n
    assert q.nodes.dtype == q.weights.dtype == torch.float64
    assert q.nodes.shape == q.weights.shape == (n,)
    assert (q.nodes >= 0).all() and (q.nodes <= 1).all()
    assert (q.weights > 0).all()


@given(rule_and_steps())
def test_weights_sum_to_one(case: tuple[str, int]) -> None:
    assert weight_sum_error(quadrature(*case)) < 1e-12


@twin_of(quadrature_exactness)
@given(rule_and_steps())
def test_exact_up_to_stated_degree(case: tuple[str, int]) -> None:
    q = quadrature(*case)
    assert exactness_error(q) < TOL


def _leading_error(name: str, n: int) -> tuple[int, float]:
    """(k, exact - rule) for t^k with k = degree + 1: the first monomial a rule misses, in closed form."""
    if name == "left":
        return 1, 1 / (2 * n)  # sum_i i / n^2 = (n - 1) / (2n)
    if name == "right":
        return 1, -1 / (2 * n)
    if name == "midpoint":
        return 2, 1 / (12 * n**2)
    if name == "trapezoid":
        return 2, -1 / (6 * (n - 1) ** 2)
    # Gauss-Legendre on [0, 1]: E(t^{2n}) = (n!)^4 / ((2n + 1) ((2n)!)^2)
    return 2 * n, math.factorial(n) ** 4 / ((2 * n + 1) * math.factorial(2 * n) ** 2)


@twin_of(quadrature_exactness)
@given(rule_and_steps(max_steps=8))
def test_not_exact_beyond_degree(case: tuple[str, int]) -> None:
    """At degree + 1 the rule fails, by exactly its textbook error term (so the exactness test can fail)."""
    name, n = case
    q = quadrature(name, n)
    k, expected = _leading_error(name, n)
    assert k == q.degree + 1
    got = 1 / (k + 1) - (q.weights * q.nodes**k).sum().item()
    assert monomial_error(q, k) > TOL
    assert got == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("q, missed", [(SIMPSON_PANEL, -1 / 120), (LOBATTO_PANEL, -(5 * 64 * 512 * 6**4) * math.factorial(8) / (9 * math.factorial(8) ** 3 * 2**9))])
def test_the_error_controlled_panel_rules(q: Quadrature, missed: float) -> None:
    """Simpson (degree 3) and 5-point Gauss-Lobatto (degree 7): exact up to the stated degree, off by
    the textbook error term at degree + 1 (Lobatto: -n (n-1)^3 2^(2n-1) ((n-2)!)^4 / ((2n-1) ((2n-2)!)^3)
    f^(2n-2), n = 5, mapped to [0, 1] by 2^-(2n-1)); both hold the ends and the midpoint, so a panel
    is raised from one to the other with two new nodes."""
    assert weight_sum_error(q) < 1e-15 and exactness_error(q) < TOL and (q.weights > 0).all()
    k = q.degree + 1
    assert 1 / (k + 1) - (q.weights * q.nodes**k).sum().item() == pytest.approx(missed, rel=1e-9)
    assert set(SIMPSON_PANEL.nodes.tolist()) <= set(LOBATTO_PANEL.nodes.tolist())


@given(
    rule_and_steps(),
    st.floats(-2, 2, allow_nan=False),
    st.floats(0.01, 3, allow_nan=False),
    st.lists(st.floats(-1, 1, allow_nan=False), min_size=12, max_size=12),
)
def test_on_subinterval_integrates_polynomials(case: tuple[str, int], a: float, length: float, coef: list[float]) -> None:
    """sum_i w'_i p(t'_i) = int_a^b p for every polynomial p of degree <= min(degree, 11)."""
    q = quadrature(*case)
    b = a + length
    sub = q.on(a, b)
    assert (sub.name, sub.degree) == (q.name, q.degree)
    d = min(q.degree, len(coef) - 1)
    got = sum(c * (sub.weights * sub.nodes**k).sum().item() for k, c in enumerate(coef[: d + 1]))
    exact = sum(c * (b ** (k + 1) - a ** (k + 1)) / (k + 1) for k, c in enumerate(coef[: d + 1]))
    scale = sum(abs(c) * length * max(abs(a), abs(b)) ** k for k, c in enumerate(coef[: d + 1]))
    assert abs(got - exact) <= TOL * max(scale, 1e-300)
    assert exactness_error(sub, a, b) < TOL


@twin_of(false_trapezoid_weights)
@given(st.integers(2, 64))
def test_broken_trapezoid_is_caught_by_the_same_properties(n: int) -> None:
    assert exactness_error(quadrature("trapezoid", n)) < TOL
    assert weight_sum_error(broken_trapezoid(n)) == pytest.approx(1 / n)
    assert exactness_error(broken_trapezoid(n)) > TOL


# -- bad arguments -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["simpson", "Gauss-Legendre", "", "riemann"])
def test_unknown_rule_raises_and_lists_valid_rules(name: str) -> None:
    with pytest.raises(InputError) as info:
        quadrature(name, 8)
    assert repr(name) in str(info.value)
    assert all(r in str(info.value) for r in RULES)


@pytest.mark.parametrize("name", RULES)
def test_too_few_steps_raises(name: str) -> None:
    with pytest.raises(InputError, match="steps >= "):
        quadrature(name, MIN_STEPS[name] - 1)
    with pytest.raises(InputError):
        quadrature(name, -3)
    quadrature(name, MIN_STEPS[name])  # the minimum itself is accepted


@pytest.mark.parametrize("steps", [2.5, "8", True])
def test_non_integer_steps_raise(steps: object) -> None:
    with pytest.raises(InputError, match="integer"):
        quadrature("midpoint", steps)  # type: ignore[arg-type]

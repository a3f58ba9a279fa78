"""The proof contract: a claim, its assumptions, readable derivation steps and a verdict.

A proof module builds symbolic objects (weights, biases, inputs, activation patterns) with
sympy, derives an identity and returns a ``ProofResult``. Proofs never pass by numeric
sampling: an identity holds when its residual is zero as a rational function of the symbols,
and statements that need a case split (activation patterns, signs) enumerate the cases, each
case becoming a fixed 0/1 or +/-1 value substituted into the algebra.

``Proof`` is a small builder: ``step`` records a caption and an expression, ``check`` records
an identity ``lhs - rhs == 0`` and remembers the first residual that is not zero.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from types import ModuleType
from typing import Callable, Iterable, Iterator, Optional, Sequence, TypeVar, Union

import sympy

Step = tuple[str, Union[sympy.Expr, str]]


@dataclass(frozen=True)
class Claim:
    """What a proof module states: registry name, statement (text), assumptions, and the
    central identity as a LaTeX ``formula`` (shown as a display equation in the report).

    Text fields may hold inline LaTeX between ``$...$``; the report keeps it as math.
    """

    name: str
    statement: str
    assumptions: tuple[str, ...] = ()
    formula: str = ""


_Test = TypeVar("_Test", bound=Callable)


def twin_of(*proofs: ModuleType) -> Callable[[_Test], _Test]:
    """Mark a property test as a numeric twin of the proofs (modules of ``workbench.proofs``) whose
    statement it checks on the library's implementation::

        from workbench.proofs import ig_linear
        @twin_of(ig_linear)
        def test_ig_of_a_linear_model_is_weight_times_delta(...): ...

    The link lives on the test, so renaming or parametrizing it keeps it; ``registry.twins()``
    finds the marks by reading the test files (no test code runs)."""
    for proof in proofs:
        if not isinstance(getattr(proof, "CLAIM", None), Claim):
            raise TypeError(f"twin_of takes proof modules (each with a CLAIM), got {proof!r}")

    def mark(test: _Test) -> _Test:
        test.twin_of = tuple(proof.CLAIM.name for proof in proofs)  # type: ignore[attr-defined]
        return test

    return mark


@dataclass(frozen=True)
class ProofResult:
    """The outcome of one proof.

    ``steps`` are (caption, expression-or-text) pairs in derivation order; ``residual`` is the
    simplified residual of the identity that failed (None when proved); ``cases`` is the number
    of enumerated cases (activation patterns, sign patterns, rules x monomials, ...);
    ``failed`` the captions of the checks whose residual is not zero.
    """

    name: str
    claim: str
    assumptions: tuple[str, ...]
    steps: tuple[Step, ...]
    verdict: bool
    residual: Optional[sympy.Expr]
    cases: int
    formula: str = ""
    failed: tuple[str, ...] = ()


def simplify_residual(expr: sympy.Expr) -> sympy.Expr:
    """A canonical, readable form of a residual: expand, then cancel, then simplify if needed."""
    expr = sympy.sympify(expr)
    if expr.has(sympy.Piecewise):
        expr = sympy.piecewise_fold(expr)
        if isinstance(expr, sympy.Piecewise):
            return sympy.Piecewise(*[(simplify_residual(e), c) for e, c in expr.args])
    e = sympy.expand(expr)
    if e == 0:
        return sympy.S.Zero
    c = sympy.cancel(sympy.together(e))
    if c == 0:
        return sympy.S.Zero
    if c.free_symbols:
        s = sympy.simplify(c)
        return s if sympy.count_ops(s) <= sympy.count_ops(c) else c
    return sympy.radsimp(c)


def is_zero(expr: sympy.Expr) -> bool:
    """Whether `expr` is identically zero, decided symbolically (never by sampling).

    Tries, cheapest first: ``expand``; ``cancel`` of the rational function; for constants
    (algebraic numbers such as Gauss-Legendre nodes) the minimal polynomial; ``simplify``.
    A ``Piecewise`` is decided case by case: zero when every branch is zero (callers that
    need the conditions enumerate the cases themselves instead of relying on this).
    """
    expr = sympy.sympify(expr)
    if expr.has(sympy.Piecewise):
        folded = sympy.piecewise_fold(expr)
        if isinstance(folded, sympy.Piecewise):
            return all(is_zero(e) for e, _ in folded.args)
        expr = folded
    e = sympy.expand(expr)
    if e == 0:
        return True
    if e.is_Number:
        return False
    c = sympy.cancel(sympy.together(e))
    if c == 0:
        return True
    if c.is_rational_function():
        return False  # cancel puts a rational function in canonical p/q form: p != 0 decides
    if not c.free_symbols:
        x = sympy.Dummy("x")
        try:
            return sympy.minimal_polynomial(c, x) == x
        except (NotImplementedError, ValueError):
            pass
    return sympy.simplify(c) == 0


def patterns(n: int, values: Sequence[int] = (0, 1)) -> Iterator[tuple[int, ...]]:
    """Every assignment of `values` to n units (activation patterns: 0/1 diagonals)."""
    return itertools.product(tuple(values), repeat=n)


def symbols_vec(prefix: str, n: int, **assumptions: bool) -> sympy.Matrix:
    """Column vector of symbols prefix1 .. prefixn."""
    return sympy.Matrix([sympy.Symbol(f"{prefix}{i + 1}", **assumptions) for i in range(n)])


def symbols_mat(prefix: str, rows: int, cols: int, **assumptions: bool) -> sympy.Matrix:
    """Matrix of symbols prefix_{ij} (1-based)."""
    return sympy.Matrix(rows, cols, lambda i, j: sympy.Symbol(f"{prefix}{i + 1}{j + 1}", **assumptions))


def gradient(f: sympy.Expr, xs: Iterable[sympy.Symbol]) -> sympy.Matrix:
    """Column vector of partial derivatives of f."""
    return sympy.Matrix([sympy.diff(f, x) for x in xs])


def pattern_text(d: Sequence[int]) -> str:
    return "".join(str(int(v)) for v in d)


@dataclass
class Proof:
    """Builder for a ``ProofResult``: records steps, enumerated cases and failed checks."""

    claim: Claim
    steps: list[Step] = field(default_factory=list)
    cases: int = 0
    failures: list[tuple[str, sympy.Expr]] = field(default_factory=list)
    residual_override: Optional[sympy.Expr] = None

    def step(self, caption: str, expr: Union[sympy.Expr, str, sympy.Matrix]) -> None:
        if isinstance(expr, sympy.MatrixBase):
            expr = sympy.ImmutableMatrix(expr)
        self.steps.append((caption, expr))

    def check(self, caption: str, residual: sympy.Expr, *, record: bool = True) -> bool:
        """Record that `residual` (lhs - rhs) must vanish; returns whether it does."""
        if isinstance(residual, sympy.MatrixBase):
            entries = list(residual)
            ok = all(is_zero(e) for e in entries)
            shown = sympy.ImmutableMatrix(residual.applyfunc(lambda e: sympy.S.Zero if is_zero(e) else simplify_residual(e)))
        else:
            ok = is_zero(residual)
            shown = sympy.S.Zero if ok else simplify_residual(residual)
        if not ok:
            self.failures.append((caption, shown))
        if record or not ok:
            self.steps.append((f"{caption} — residual" + ("" if ok else " (NOT zero)"), shown))
        return ok

    def require(self, caption: str, holds: bool, detail: Union[sympy.Expr, str] = "") -> bool:
        """Record a non-identity fact (e.g. an error term is non-zero) that must hold."""
        text = detail if detail != "" else ("holds" if holds else "fails")
        if not holds:
            self.failures.append((caption, sympy.sympify(detail) if isinstance(detail, sympy.Basic) else sympy.S.NaN))
        self.steps.append((caption + ("" if holds else " (FAILS)"), text))
        return holds

    def result(self) -> ProofResult:
        verdict = not self.failures
        residual = None
        if not verdict:
            residual = self.residual_override if self.residual_override is not None else self.failures[0][1]
        return ProofResult(
            name=self.claim.name,
            claim=self.claim.statement,
            assumptions=tuple(self.claim.assumptions),
            steps=tuple(self.steps),
            verdict=verdict,
            residual=residual,
            cases=self.cases,
            formula=self.claim.formula,
            failed=tuple(caption for caption, _ in self.failures),
        )

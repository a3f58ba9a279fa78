"""The registry of claims: each links its proof, its property-test twins and the built-in method
claims that rest on it; and the ledger that says what backs every axiom a built-in method claims.

* ``CLAIMS``: one ``ClaimEntry`` per proof module. ``expected`` is True for claims that must be
  proved and False for the deliberately false ones (which must come out NOT proved, with their
  residual). ``twins`` are the property tests that check the same statement numerically on the
  library's implementation: each is marked ``@twin_of(proof module)`` (``base.twin_of``), and
  ``twins()`` finds the marks in the test files. ``backs`` lists the (method label,
  axiom) claims of built-in methods that the proof supports; ``refutes`` the (method label,
  axiom) claims that a false claim shows no built-in may make; ``not_jointly`` axioms that no
  single built-in may claim together (Proposition 1).
* Every (label, axiom) that an audited configuration claims (``workbench.methods.audited_methods``:
  the method registry is the one source of truth) has a generated property test,
  ``claim_test(label, axiom)`` (the checker's Hypothesis search on drawn networks).
* ``KNOWN_VIOLATIONS``: claimed (method label, axiom) pairs that the property tests show to be
  false (library defects reported, not yet fixed); their property tests are strict xfails while
  the defect reproduces, and the report flags them.

``unbacked(methods)`` returns the claimed (label, axiom) pairs with neither a proof nor a
property test (a configuration outside the audit); ``contradicted(methods)`` the claims that a
registered proof refutes.
Method labels are ``Method.label``: the name plus the non-default options, e.g.
``lrp[composite=zero]``.
"""

from __future__ import annotations

import ast
import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from workbench.methods.registry import audited_methods
from workbench.proofs.base import ProofResult

Pair = tuple[str, str]  # (method label, axiom)



@dataclass(frozen=True)
class ClaimEntry:
    """One registered claim (see the module docstring for the fields)."""

    name: str
    module: str
    statement: str
    backs: tuple[Pair, ...] = ()
    refutes: tuple[Pair, ...] = ()
    not_jointly: tuple[str, ...] = ()
    expected: bool = True

    @property
    def twins(self) -> tuple[str, ...]:
        """The property tests marked ``@twin_of`` this claim's proof (``twins()``)."""
        return twins().get(self.name, ())

    @property
    def axioms(self) -> tuple[str, ...]:
        """The axioms of the bench the claim bears on (backed, refuted or not jointly claimable)."""
        return tuple(dict.fromkeys([a for _, a in self.backs + self.refutes] + list(self.not_jointly)))

    def load(self):
        return importlib.import_module(self.module)

    def prove(self) -> ProofResult:
        return self.load().prove()


def _entry(module: str, *, backs: tuple[Pair, ...] = (), refutes: tuple[Pair, ...] = (),
           not_jointly: tuple[str, ...] = (), expected: bool = True) -> ClaimEntry:
    claim = importlib.import_module(f"workbench.proofs.{module}").CLAIM
    return ClaimEntry(claim.name, f"workbench.proofs.{module}", claim.statement, backs, refutes, not_jointly, expected)


_ENTRIES = (
    _entry(
        "ig_completeness_smooth",
        backs=(("integrated-gradients", "completeness"), ("expected-gradients", "completeness")),
    ),
    _entry(
        "ig_linear",
    ),
    _entry(
        "quadrature_exactness",
        backs=(("integrated-gradients", "completeness"), ("expected-gradients", "completeness")),
    ),
    _entry(
        "false_trapezoid_weights",
        expected=False,
    ),
    _entry(
        "fullgrad_decomposition",
        backs=(("full-gradients", "full-gradient-completeness"),),
    ),
    _entry(
        "proposition_1",
        not_jointly=("completeness", "weak-dependence"),
    ),
    _entry(
        "gradient_weak_dependence",
        backs=(("gradient", "weak-dependence"), ("full-gradients", "weak-dependence")),
        refutes=(
            ("integrated-gradients", "weak-dependence"),
            ("integrated-gradients[rule=exact]", "weak-dependence"),
            ("integrated-gradients[tolerance=None]", "weak-dependence"),
            ("expected-gradients", "weak-dependence"),
        ),
    ),
    _entry(
        "lrp0_equals_input_x_gradient",
        backs=(("lrp[composite=zero]", "conservation"),),
    ),
    _entry(
        "lrp_zplus_conservation",
        # in dtd-w2 every z+ layer meets z+_j > 0 wherever relevance arrives (bias-free, F > 0)
        backs=(("lrp[composite=dtd-w2]", "conservation"),),
    ),
    _entry(
        "lrp_wsquare_conservation",
        # at dtd-w2's input layer a unit with an all-zero weight row has z = 0 and gets no relevance
        # from the z+ layer above (w-square at every layer does not conserve: it claims nothing)
        backs=(("lrp[composite=dtd-w2]", "conservation"),),
    ),
    _entry(
        "lrp_epsilon_limit",
    ),
    _entry(
        "deeplift_rescale_summation",
        backs=(("deeplift", "completeness"),),
    ),
    _entry(
        "gbp_gated_weights",
        backs=(("guided-backprop", "dummy"),),
    ),
    _entry(
        "false_ixg_completeness",
        refutes=(("input-x-gradient", "completeness"),),
        expected=False,
    ),
)

CLAIMS: dict[str, ClaimEntry] = {e.name: e for e in _ENTRIES}


#: the property test generated for every claimed (label, axiom) of the audited configurations
#: (``workbench.methods.audited_methods``): the checker's search on drawn networks
CLAIM_TEST = "tests/properties/test_proof_twins_claims.py::test_claimed_axiom_holds"


def claim_test(label: str, axiom: str) -> str:
    """The node id of the generated property test of `label`'s claim of `axiom`."""
    return f"{CLAIM_TEST}[{label}-{axiom}]"


#: claimed pairs the property tests show to be false: library defects, reported (see the note)
KNOWN_VIOLATIONS: dict[Pair, str] = {}  # none: claims found false are withdrawn (flat and w-square conservation were)


@dataclass(frozen=True)
class Backing:
    """What backs one claimed (method label, axiom): proofs (claim names) and property tests."""

    label: str
    axiom: str
    proofs: tuple[str, ...]
    tests: tuple[str, ...]
    known_violation: Optional[str] = None

    @property
    def backed(self) -> bool:
        """Whether a proof or a property test backs the claim (a test that shows a known violation
        counts: the claim is then checked, and found false, which the report says)."""
        return bool(self.proofs or self.tests)


def backing(label: str, axiom: str) -> Backing:
    """The proofs and property tests that back `label`'s claim of `axiom`."""
    pair = (label, axiom)
    proofs = tuple(e.name for e in CLAIMS.values() if e.expected and pair in e.backs)
    tests = (claim_test(label, axiom),) if pair in set(claimed_pairs(audited_methods())) else ()
    return Backing(label, axiom, proofs, tests, KNOWN_VIOLATIONS.get(pair))


def claimed_pairs(methods: Iterable) -> list[Pair]:
    """(label, axiom) for every axiom each method (a ``workbench.Method``) claims."""
    return [(m.label, a) for m in methods for a in m.claims]


def unbacked(methods: Iterable) -> list[Pair]:
    """Claimed (label, axiom) pairs with neither a proof nor a property test."""
    return [pair for pair in claimed_pairs(methods) if not backing(*pair).backed]


def contradicted(methods: Iterable) -> list[tuple[str, str, str]]:
    """(label, axiom(s), claim name) where a method claims what a registered claim refutes, or
    claims every axiom of a ``not_jointly`` set (Proposition 1)."""
    out = []
    for m in methods:
        claims = set(m.claims)
        for e in CLAIMS.values():
            for label, axiom in e.refutes:
                if m.label == label and axiom in claims:
                    out.append((m.label, axiom, e.name))
            if e.not_jointly and set(e.not_jointly) <= claims:
                out.append((m.label, " + ".join(e.not_jointly), e.name))
    return out


@functools.lru_cache(maxsize=None)
def twins(tests: Optional[Path] = None) -> dict[str, tuple[str, ...]]:
    """Claim name -> node ids (``file::function``) of the tests marked ``@twin_of`` its proof,
    found by reading the test files of a source checkout (`tests`: the repository's ``tests``
    folder by default; none in an installed copy). No test code runs."""
    root = tests if tests is not None else _checkout_tests()
    if root is None:
        return {}
    out: dict[str, list[str]] = {}
    for path in sorted(root.rglob("test_*.py")):
        text = path.read_text()
        if "twin_of(" not in text:
            continue
        tree = ast.parse(text)
        modules = _proof_imports(tree)
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "id", getattr(dec.func, "attr", None)) == "twin_of":
                    for arg in dec.args:
                        module = modules.get(getattr(arg, "id", None))
                        if module is None:
                            raise ValueError(f"{path}: twin_of({ast.unparse(arg)}) names no imported proof module")
                        node_id = f"{path.relative_to(root.parent).as_posix()}::{node.name}"
                        out.setdefault(importlib.import_module(module).CLAIM.name, []).append(node_id)
    return {k: tuple(v) for k, v in out.items()}


def _checkout_tests() -> Optional[Path]:
    root = Path(__file__).resolve().parent.parent
    return root / "tests" if (root / "pyproject.toml").is_file() and (root / "tests" / "proofs").is_dir() else None


def _proof_imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> proof module for ``from workbench.proofs import a as b`` statements."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "workbench.proofs":
            for alias in node.names:
                out[alias.asname or alias.name] = f"workbench.proofs.{alias.name}"
    return out


def claims_for_axiom(axiom: str) -> list[ClaimEntry]:
    """Registered claims that bear on the axiom `axiom`."""
    return [e for e in CLAIMS.values() if axiom in e.axioms]


def run(names: Optional[Iterable[str]] = None) -> list[ProofResult]:
    """Run the proofs of `names` (all registered claims when None), in registry order."""
    if names is None:
        selected = list(CLAIMS)
    else:
        selected = list(names)
        unknown = [n for n in selected if n not in CLAIMS]
        if unknown:
            raise KeyError(f"unknown claim(s) {', '.join(unknown)}; known: {', '.join(CLAIMS)}")
    return [CLAIMS[n].prove() for n in selected]

"""The registry of claims: each links its proof, its property-test twins and the built-in method
claims that rest on it; and the ledger that says what backs every axiom a built-in method claims.

* ``CLAIMS``: one ``ClaimEntry`` per proof module. ``expected`` is True for claims that must be
  proved and False for the deliberately false ones (which must come out NOT proved, with their
  residual). ``twins`` are the pytest node ids of the property tests that check the same
  statement numerically on the library's implementation. ``backs`` lists the (method label,
  axiom) claims of built-in methods that the proof supports; ``refutes`` the (method label,
  axiom) claims that a false claim shows no built-in may make; ``not_jointly`` axioms that no
  single built-in may claim together (Proposition 1).
* ``METHOD_CLAIM_TESTS``: (method label, axiom) -> node ids of property tests that check a
  built-in method's claimed axiom numerically (the checker's Hypothesis search).
* ``KNOWN_VIOLATIONS``: claimed (method label, axiom) pairs that the property tests show to be
  false (library defects reported, not yet fixed); their property tests are strict xfails while
  the defect reproduces, and the report flags them.

``unbacked(methods)`` returns the claimed (label, axiom) pairs with neither a proof nor a
property test; the meta-test in ``tests/proofs`` requires it to be empty for the built-ins.
Method labels are ``Method.label``: the name plus the non-default options, e.g.
``lrp[composite=zero]``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Iterable, Optional

from .base import ProofResult

Pair = tuple[str, str]  # (method label, axiom)

_TWINS = "tests/properties/test_proof_twins.py"
_CLAIM_TESTS = "tests/properties/test_proof_twins_claims.py::test_claimed_axiom_holds"


@dataclass(frozen=True)
class ClaimEntry:
    """One registered claim (see the module docstring for the fields)."""

    name: str
    module: str
    statement: str
    twins: tuple[str, ...]
    backs: tuple[Pair, ...] = ()
    refutes: tuple[Pair, ...] = ()
    not_jointly: tuple[str, ...] = ()
    expected: bool = True

    @property
    def axioms(self) -> tuple[str, ...]:
        """The axioms of the bench the claim bears on (backed, refuted or not jointly claimable)."""
        return tuple(dict.fromkeys([a for _, a in self.backs + self.refutes] + list(self.not_jointly)))

    def load(self):
        return importlib.import_module(self.module)

    def prove(self) -> ProofResult:
        return self.load().prove()


def _entry(module: str, *, twins: tuple[str, ...], backs: tuple[Pair, ...] = (), refutes: tuple[Pair, ...] = (),
           not_jointly: tuple[str, ...] = (), expected: bool = True) -> ClaimEntry:
    claim = importlib.import_module(f"proofs.{module}").CLAIM
    return ClaimEntry(claim.name, f"proofs.{module}", claim.statement, twins, backs, refutes, not_jointly, expected)


_ENTRIES = (
    _entry(
        "ig_completeness_smooth",
        twins=(
            f"{_TWINS}::test_ig_on_smooth_networks_is_complete",
            "tests/properties/test_integrated_gradients.py::test_ig_completeness_on_smooth_networks",
        ),
        backs=(("integrated-gradients", "completeness"), ("expected-gradients", "completeness")),
    ),
    _entry(
        "ig_linear",
        twins=("tests/properties/test_integrated_gradients.py::test_ig_of_a_linear_model_is_weight_times_delta",),
    ),
    _entry(
        "quadrature_exactness",
        twins=(
            f"{_TWINS}::test_library_rules_state_the_proved_degree",
            "tests/properties/test_quadrature.py::test_exact_up_to_stated_degree",
            "tests/properties/test_quadrature.py::test_not_exact_beyond_degree",
        ),
        backs=(("integrated-gradients", "completeness"), ("expected-gradients", "completeness")),
    ),
    _entry(
        "false_trapezoid_weights",
        twins=("tests/properties/test_quadrature.py::test_broken_trapezoid_is_caught_by_the_same_properties",),
        expected=False,
    ),
    _entry(
        "fullgrad_decomposition",
        twins=(
            f"{_TWINS}::test_full_gradient_decomposition_with_batchnorm_implicit_bias",
            "tests/properties/test_fullgrad_properties.py::test_relu_decomposition_is_exact",
        ),
        backs=(("full-gradients", "full-gradient-completeness"),),
    ),
    _entry(
        "proposition_1",
        twins=(
            f"{_TWINS}::test_weakly_dependent_maps_cannot_see_a_bias_shift",
            f"{_TWINS}::test_linear_sigma_has_a_colliding_pair_of_pieces",
        ),
        not_jointly=("completeness", "weak-dependence"),
    ),
    _entry(
        "gradient_weak_dependence",
        twins=(
            f"{_TWINS}::test_gradient_is_constant_on_a_linear_region",
            f"{_TWINS}::test_ig_varies_inside_one_region",
            "tests/properties/test_fullgrad_properties.py::test_weak_dependence_passes_good_and_catches_bad[grad-vs-ixg]",
            "tests/properties/test_fullgrad_properties.py::test_weak_dependence_passes_good_and_catches_bad[fullgrads-vs-ig]",
        ),
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
        twins=(f"{_TWINS}::test_lrp0_is_input_times_gradient_on_bias_free_relu_networks",),
        backs=(("lrp[composite=zero]", "conservation"),),
    ),
    _entry(
        "lrp_zplus_conservation",
        twins=(f"{_TWINS}::test_zplus_rule_conserves_on_non_negative_inputs",),
        # in dtd-w2 every z+ layer meets z+_j > 0 wherever relevance arrives (bias-free, F > 0)
        backs=(("lrp[composite=dtd-w2]", "conservation"),),
    ),
    _entry(
        "lrp_wsquare_conservation",
        twins=(f"{_TWINS}::test_wsquare_rule_conserves",),
        # at dtd-w2's input layer a unit with an all-zero weight row has z = 0 and gets no relevance
        # from the z+ layer above (w-square at every layer does not conserve: it claims nothing)
        backs=(("lrp[composite=dtd-w2]", "conservation"),),
    ),
    _entry(
        "lrp_epsilon_limit",
        twins=(f"{_TWINS}::test_epsilon_rule_tends_to_lrp0",),
    ),
    _entry(
        "deeplift_rescale_summation",
        twins=(
            f"{_TWINS}::test_deeplift_sums_to_delta_on_two_layer_networks",
            "tests/unit/test_rules_engine.py::test_deeplift_completeness_through_the_checker",
        ),
        backs=(("deeplift", "completeness"),),
    ),
    _entry(
        "gbp_gated_weights",
        twins=(f"{_TWINS}::test_guided_backprop_is_the_sum_of_positively_gated_weight_vectors[False]",),
        backs=(("guided-backprop", "dummy"),),
    ),
    _entry(
        "false_ixg_completeness",
        twins=(
            f"{_TWINS}::test_input_x_gradient_completeness_residual_is_the_bias_contribution",
            f"{_TWINS}::test_input_x_gradient_completeness_fails_on_the_proof_witness",
            "tests/properties/test_axioms_both_ways.py::test_input_x_gradient_completeness_holds_without_biases_only",
        ),
        refutes=(("input-x-gradient", "completeness"),),
        expected=False,
    ),
)

CLAIMS: dict[str, ClaimEntry] = {e.name: e for e in _ENTRIES}


def _claim_tests(label: str, axioms: Iterable[str]) -> dict[Pair, tuple[str, ...]]:
    return {(label, a): (f"{_CLAIM_TESTS}[{label}-{a}]",) for a in axioms}


#: property tests of built-in method claims (the checker's search on drawn networks), by (label, axiom)
METHOD_CLAIM_TESTS: dict[Pair, tuple[str, ...]] = {
    **_claim_tests("deconvnet", ["dummy"]),
    **_claim_tests("deeplift", ["completeness", "dummy"]),
    **_claim_tests("expected-gradients", ["completeness", "dummy", "implementation-invariance", "sensitivity-a", "symmetry"]),
    **_claim_tests("full-gradients", ["full-gradient-completeness", "weak-dependence"]),
    **_claim_tests("gradient", ["dummy", "implementation-invariance", "linearity", "symmetry", "weak-dependence"]),
    **_claim_tests("guided-backprop", ["dummy"]),
    **_claim_tests("input-x-gradient", ["dummy", "implementation-invariance", "linearity", "symmetry"]),
    **_claim_tests("integrated-gradients", ["completeness", "dummy", "implementation-invariance", "sensitivity-a", "symmetry"]),
    **_claim_tests("integrated-gradients[rule=exact]", ["completeness", "dummy", "implementation-invariance", "linearity", "sensitivity-a", "symmetry"]),
    **_claim_tests("integrated-gradients[tolerance=None]", ["dummy", "implementation-invariance", "linearity", "symmetry"]),
    **_claim_tests("rectgrad", ["dummy"]),
    **_claim_tests("smoothgrad", ["dummy", "implementation-invariance", "linearity"]),
    **{
        pair: ids
        for c in ("alpha-beta", "dtd-w2", "dtd-zb", "epsilon", "epsilon-alpha2-beta1", "epsilon-gamma-box", "epsilon-plus", "gamma", "w-square", "zero", "zplus")
        for pair, ids in _claim_tests(f"lrp[composite={c}]", ["dummy"]).items()
    },
    **{
        pair: ids
        for c in ("dtd-w2", "dtd-zb", "zero")
        for pair, ids in _claim_tests(f"lrp[composite={c}]", ["conservation"]).items()
    },
}

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
    return Backing(label, axiom, proofs, METHOD_CLAIM_TESTS.get(pair, ()), KNOWN_VIOLATIONS.get(pair))


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


def audited_methods() -> list:
    """The built-in configurations whose claims the meta-test audits: every method in its default
    configuration (``workbench.methods()``), the other integrated-gradients modes, every LRP composite."""
    import workbench
    from workbench.rules.composites import composite_names

    out = {m.name: workbench.method(m.name) for m in workbench.methods()}
    for extra in [workbench.method("integrated-gradients", rule="exact"), workbench.method("integrated-gradients", tolerance=None)]:
        out[extra.label] = extra
    for c in composite_names():
        m = workbench.method("lrp", composite=c)
        out[m.label] = m
    return list(out.values())


def all_test_ids() -> list[str]:
    """Every node id the registry names (twins and method-claim tests), without duplicates."""
    ids = [t for e in CLAIMS.values() for t in e.twins]
    ids += [t for tests in METHOD_CLAIM_TESTS.values() for t in tests]
    return list(dict.fromkeys(ids))


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

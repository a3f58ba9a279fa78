"""The registry of claims: each links its proof module, its property-test twin and the axioms
of the bench that rest on it.

``expected`` is True for claims that must be proved and False for the deliberately false ones
(which must come out NOT proved, with their residual): ``run`` returns the results, and
``proofs.report.main`` exits 0 exactly when every verdict equals its ``expected``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Iterable, Optional

from .base import ProofResult


@dataclass(frozen=True)
class ClaimEntry:
    """One registered claim.

    ``module`` is the proof module's import path; ``property_test`` the pytest node id of the
    numeric twin (None until it exists); ``axioms`` the bench's axiom names resting on it.
    """

    name: str
    module: str
    statement: str
    property_test: Optional[str]
    axioms: tuple[str, ...]
    expected: bool = True

    def load(self):
        return importlib.import_module(self.module)

    def prove(self) -> ProofResult:
        return self.load().prove()


def _entry(module: str, *, property_test: Optional[str] = None, axioms: tuple[str, ...] = (), expected: bool = True) -> ClaimEntry:
    claim = importlib.import_module(f"proofs.{module}").CLAIM
    return ClaimEntry(claim.name, f"proofs.{module}", claim.statement, property_test, axioms, expected)


_ENTRIES = (
    _entry("ig_completeness_smooth", property_test="tests/properties/test_integrated_gradients.py::test_ig_completeness_on_smooth_networks", axioms=("completeness",)),
    _entry("ig_linear", property_test="tests/properties/test_integrated_gradients.py::test_ig_of_a_linear_model_is_weight_times_delta", axioms=("completeness", "linearity")),
    _entry("quadrature_exactness", property_test="tests/properties/test_quadrature.py::test_exact_up_to_stated_degree", axioms=("completeness",)),
    _entry("false_trapezoid_weights", property_test="tests/properties/test_quadrature.py::test_broken_trapezoid_is_caught_by_the_same_properties", axioms=("completeness",), expected=False),
    _entry("fullgrad_decomposition", axioms=("completeness",)),
    _entry("proposition_1", axioms=("completeness", "weak-dependence")),
    _entry("gradient_weak_dependence", axioms=("weak-dependence",)),
    _entry("lrp0_equals_input_x_gradient", axioms=("conservation",)),
    _entry("lrp_zplus_conservation", axioms=("conservation",)),
    _entry("lrp_wsquare_conservation", axioms=("conservation",)),
    _entry("lrp_epsilon_limit", axioms=("conservation",)),
    _entry("deeplift_rescale_summation", axioms=("completeness",)),
    _entry("gbp_gated_weights", axioms=("input-alignment",)),
    _entry(
        "false_ixg_completeness",
        property_test="tests/properties/test_axioms_both_ways.py::test_input_x_gradient_completeness_holds_without_biases_only",
        axioms=("completeness",),
        expected=False,
    ),
)

CLAIMS: dict[str, ClaimEntry] = {e.name: e for e in _ENTRIES}


def claims_for_axiom(axiom: str) -> list[ClaimEntry]:
    """Registered claims the axiom `axiom` rests on (for the meta-test over method claims)."""
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

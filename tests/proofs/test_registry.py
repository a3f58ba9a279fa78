"""The registry of claims and the meta-test over the built-in methods' claims.

* Every axiom a built-in method configuration claims gets a generated property test (the method
  registry is the source of truth); a known violation is backed by the property test that shows it.
* No built-in claims what a registered claim refutes (e.g. input x gradient's completeness), nor
  both completeness and weak dependence (Proposition 1).
* Every proof has a numeric twin: a test marked ``@twin_of(proof)``, found by reading the test
  files; a mark naming no imported proof is an error.
* Both ways: a fake built-in registered in the test gets its claim tests generated, and its
  contradictory claims are caught.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

import workbench
from workbench.proofs import registry
from workbench.methods import registry as method_registry
from workbench.methods.base import Method
from workbench.proofs.base import twin_of

REPO = Path(__file__).resolve().parents[2]


def _claims_tests():
    """The claim property-test module, imported as pytest imports it (its folder on sys.path)."""
    folder = str(REPO / "tests" / "properties")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("test_proof_twins_claims")
AUDITED = registry.audited_methods()
PAIRS = registry.claimed_pairs(AUDITED)


def test_every_claimed_axiom_has_its_generated_property_test():
    """The property tests are parametrized by the same generator the audit uses, so every claimed
    pair of every audited configuration is tested (and backed)."""
    assert _claims_tests().CLAIMED == PAIRS
    assert all(registry.backing(label, axiom).tests == (registry.claim_test(label, axiom),) for label, axiom in PAIRS)
    assert registry.unbacked(AUDITED) == []


def test_known_violations_are_still_claimed():
    """A fixed defect (the claim dropped, or the library repaired and the entry kept) must not linger."""
    assert set(registry.KNOWN_VIOLATIONS) <= set(PAIRS)


def test_no_builtin_claims_what_a_proof_refutes():
    assert registry.contradicted(AUDITED) == []


def test_registry_entries_match_their_modules():
    for name, entry in registry.CLAIMS.items():
        mod = entry.load()
        assert mod.CLAIM.name == name and callable(mod.prove)
        assert entry.statement == mod.CLAIM.statement
        assert entry.twins, f"{name} has no property-test twin"


def test_backed_and_refuted_pairs_name_real_configurations():
    """Every (label, axiom) a claim backs is claimed by that audited configuration; every refuted
    or tested label is an audited configuration."""
    labels = {m.label: m for m in AUDITED}
    for entry in registry.CLAIMS.values():
        for label, axiom in entry.backs:
            assert label in labels and axiom in labels[label].claims, (entry.name, label, axiom)
        for label, _ in entry.refutes:
            assert label in labels, (entry.name, label)


# -- twins: marked on the test, found by reading the test files -------------------------------------

def test_twins_are_found_by_their_marks(tmp_path):
    """A test file marking a function ``@twin_of(proof)`` names that function as the proof's twin;
    a mark whose argument is not an imported proof module is refused, and so is a non-proof."""
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_a.py").write_text(
        "from workbench.proofs import ig_linear as L\nfrom workbench.proofs.base import twin_of\n\n"
        "@twin_of(L)\ndef test_linear():\n    pass\n\ndef test_unmarked():\n    pass\n"
    )
    assert registry.twins(tests) == {"ig-linear": ("tests/test_a.py::test_linear",)}
    (tests / "test_b.py").write_text("@twin_of(ig_linear)\ndef test_x():\n    pass\n")
    with pytest.raises(ValueError, match="names no imported proof module"):
        registry.twins.__wrapped__(tests)
    with pytest.raises(TypeError, match="proof modules"):
        twin_of(workbench)


def test_every_twin_mark_is_on_a_collected_test():
    """Each marked function is a test function of its file (module-level, collected by pytest)."""
    for name, ids in registry.twins().items():
        for node_id in ids:
            path, func = node_id.split("::")
            assert func.startswith("test_") and (REPO / path).is_file(), (name, node_id)


# -- both ways: a fake built-in with unbacked or contradictory claims is caught ---------------------

class _FakeComplete(Method):
    """A fake built-in that claims completeness and weak dependence and backs neither."""

    name = "fake-complete-and-weak"
    description = "test double"
    base_claims = {"completeness": None, "weak-dependence": None}

    def _attribute(self, model, x, target, baseline):
        return torch.zeros_like(x)


def test_a_new_builtin_gets_its_claim_tests_and_its_contradictions_caught(monkeypatch):
    expected = [(_FakeComplete.name, "completeness"), (_FakeComplete.name, "weak-dependence")]
    # outside the registry (a user's method) its claims have no generated test: unbacked
    assert registry.unbacked([_FakeComplete()]) == expected
    monkeypatch.setitem(method_registry._REGISTRY, _FakeComplete.name, _FakeComplete)
    assert [p for p in _claims_tests().claimed_pairs() if p[0] == _FakeComplete.name] == expected
    assert registry.unbacked([_FakeComplete()]) == []
    # ... and Proposition 1 forbids the combination outright
    audited = registry.audited_methods()
    assert (_FakeComplete.name, "completeness + weak-dependence", "proposition-1") in registry.contradicted(audited)


def test_meta_test_catches_a_refuted_claim(monkeypatch):
    """A built-in that claimed input x gradient's completeness would contradict false-ixg-completeness."""
    cls = method_registry.lookup("input-x-gradient")
    monkeypatch.setattr(cls, "base_claims", {**cls.base_claims, "completeness": None})
    assert ("input-x-gradient", "completeness", "false-ixg-completeness") in registry.contradicted(registry.audited_methods())
    assert workbench.method("input-x-gradient").claims["completeness"] is None

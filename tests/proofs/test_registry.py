"""The registry of claims and the meta-test over the built-in methods' claims.

* Every axiom a built-in method configuration claims has a proof or a property test (the
  ``proofs.registry`` ledger); a known violation is backed by the property test that shows it.
* No built-in claims what a registered claim refutes (e.g. input x gradient's completeness), nor
  both completeness and weak dependence (Proposition 1).
* Every test the registry names exists: the node ids are collected by pytest in a subprocess,
  so a renamed or deleted twin cannot silently leave a dangling link.
* Both ways: a fake method registered in the test with unbacked or contradictory claims is caught.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import workbench
from proofs import registry
from workbench.methods import registry as method_registry
from workbench.methods.base import Method

REPO = Path(__file__).resolve().parents[2]
AUDITED = registry.audited_methods()
PAIRS = registry.claimed_pairs(AUDITED)


@pytest.mark.parametrize("label,axiom", [pytest.param(*p, id=f"{p[0]}-{p[1]}") for p in PAIRS])
def test_every_claimed_axiom_is_backed(label, axiom):
    """The meta-test: a claimed axiom needs a proof (a registered claim that backs it) or a
    property test (``METHOD_CLAIM_TESTS``)."""
    b = registry.backing(label, axiom)
    assert b.backed, (
        f"{label} claims {axiom!r} but neither a proof nor a property test backs it: add a test to "
        f"tests/properties/test_proof_twins_claims.py and name it in proofs.registry.METHOD_CLAIM_TESTS"
    )


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
    for label, axiom in registry.METHOD_CLAIM_TESTS:
        assert label in labels and axiom in labels[label].claims, (label, axiom)


# -- the named tests exist ------------------------------------------------------------------------

def collected_ids(files: list[str]) -> tuple[set[str], str]:
    """Every node id pytest collects from `files` (in a subprocess), and its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return {line.strip() for line in proc.stdout.splitlines() if "::" in line}, proc.stdout


def missing(ids: list[str], collected: set[str]) -> list[str]:
    return [i for i in ids if i not in collected]


def test_every_named_test_is_collected():
    """Every twin and method-claim test the registry names is collected by pytest (exact node ids,
    parameters included); a dangling name (a deliberately bogus one) is reported as missing."""
    ids = registry.all_test_ids()
    files = sorted({i.split("::")[0] for i in ids})
    collected, output = collected_ids(files)
    assert not missing(ids, collected), f"named in proofs.registry but not collected: {missing(ids, collected)}"
    bogus = ["tests/properties/test_proof_twins.py::test_no_such_twin",
             "tests/properties/test_proof_twins_claims.py::test_claimed_axiom_holds[gradient-completeness]"]
    assert missing(bogus, collected) == bogus  # the check can fail


# -- both ways: a fake built-in with unbacked or contradictory claims is caught ---------------------

class _FakeComplete(Method):
    """A fake built-in that claims completeness and weak dependence and backs neither."""

    name = "fake-complete-and-weak"
    description = "test double"
    base_claims = {"completeness": None, "weak-dependence": None}

    def _attribute(self, model, x, target, baseline):
        return torch.zeros_like(x)


def test_meta_test_catches_an_unbacked_claim_of_a_new_builtin(monkeypatch):
    monkeypatch.setitem(method_registry._REGISTRY, _FakeComplete.name, _FakeComplete)
    audited = registry.audited_methods()
    assert _FakeComplete.name in [m.label for m in audited]  # the audit sees every registered built-in
    pairs = [p for p in registry.unbacked(audited) if p[0] == _FakeComplete.name]
    assert pairs == [(_FakeComplete.name, "completeness"), (_FakeComplete.name, "weak-dependence")]
    # ... and Proposition 1 forbids the combination outright
    assert (_FakeComplete.name, "completeness + weak-dependence", "proposition-1") in registry.contradicted(audited)
    # naming a property test for one claim backs it (the collection test then requires it to exist)
    monkeypatch.setitem(registry.METHOD_CLAIM_TESTS, (_FakeComplete.name, "weak-dependence"), ("tests/x.py::test_y",))
    assert [p for p in registry.unbacked(audited) if p[0] == _FakeComplete.name] == [(_FakeComplete.name, "completeness")]
    # the built-ins themselves are all backed
    assert registry.unbacked([m for m in audited if m.label != _FakeComplete.name]) == []


def test_meta_test_catches_a_refuted_claim(monkeypatch):
    """A built-in that claimed input x gradient's completeness would contradict false-ixg-completeness."""
    cls = method_registry.lookup("input-x-gradient")
    monkeypatch.setattr(cls, "base_claims", {**cls.base_claims, "completeness": None})
    assert ("input-x-gradient", "completeness", "false-ixg-completeness") in registry.contradicted(registry.audited_methods())
    assert ("input-x-gradient", "completeness") in registry.unbacked(registry.audited_methods())
    assert workbench.method("input-x-gradient").claims["completeness"] is None

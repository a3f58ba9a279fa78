"""Property tests of the axioms the built-in methods claim, one test per (method configuration,
axiom): the checker's Hypothesis search over drawn networks must find no violation, and the
regression cases (shrunk counterexamples found once, against any method) must hold too.

The (configuration, axiom) pairs are generated from the method registry (``claimed_pairs``), so a
new built-in or claim adds its test here by itself. Pairs the library is known to violate
(``workbench.proofs.registry.KNOWN_VIOLATIONS``) are strict xfails carrying the defect report for as long as
their regression case reproduces the defect; once the library is fixed they run as ordinary tests
(and a warning asks for the registry entry to go).
"""

from __future__ import annotations

import warnings

import pytest
import torch

import workbench
from workbench.proofs import registry
from workbench.proofs.registry import KNOWN_VIOLATIONS
from workbench.axioms import get_axiom
from workbench.axioms.base import Case
from workbench.check.search import check_axiom
from workbench.nets import spec as S
from workbench.core.tolerance import rtol_for

EXAMPLES = 10

#: composites that do not conserve in general; the regression cases below show why
_LRP_NOT_CONSERVATIVE = ["flat", "w-square"]


def claimed_pairs() -> list[tuple[str, str]]:
    """(label, axiom) for every axiom every audited configuration claims, generated from the method
    registry (``workbench.methods.audited_methods``): a new built-in, variant or claim gets its test."""
    return registry.claimed_pairs(workbench.methods.audited_methods())


CLAIMED = claimed_pairs()


def _net(spec: S.NetSpec, state: dict) -> S.SpecNet:
    return S.build(spec, state=state)


def regression_cases() -> dict[str, list[Case]]:
    """Shrunk counterexamples found by the checker, replayed for every method claiming the axiom."""
    flat_residual = _net(
        S.NetSpec((1, 3, 3), (S.Conv2d(1, 1, bias=False), S.ReLU(), S.Residual((S.Conv2d(1, 3, padding=1), S.ReLU())), S.Flatten(), S.Linear(1))),
        {"0.weight": [[[[1.0]]]], "2.body.0.weight": [[[[1.0] * 3] * 3]], "2.body.0.bias": [0.0], "4.weight": [[1.0] * 9], "4.bias": [0.0]},
    )
    x_flat = torch.tensor([1.0] + [-1.0] * 8, dtype=torch.float64).reshape(1, 1, 3, 3)
    zero_row = _net(
        S.NetSpec((1,), (S.Linear(2), S.ReLU(), S.Linear(1), S.ReLU(), S.Linear(1, bias=False))),
        {"0.weight": [[1.0], [0.0]], "0.bias": [0.0, 0.0], "2.weight": [[1.0, 1.0]], "2.bias": [0.0], "4.weight": [[1.0]]},
    )
    x_row = torch.tensor([[1.0]], dtype=torch.float64)
    return {
        "conservation": [
            Case({"f": flat_residual}, x_flat, torch.zeros_like(x_flat), 0, label="flat relevance into a residual sum of zeros"),
            Case({"f": zero_row}, x_row, torch.zeros_like(x_row), 0, label="w-square relevance into a unit with no weights"),
        ],
    }


def _rtol(m: workbench.Method, axiom: str) -> float:
    return max(rtol_for(torch.float64), m.claims[axiom] or 0.0)


def reproduces(label: str, axiom: str) -> bool:
    """Whether a regression case still shows `label` violating `axiom`."""
    m, ax = workbench.method(label), get_axiom(axiom)
    return any(ax.run(m, case, _rtol(m, axiom)).violated for case in regression_cases().get(axiom, []))


def _param(label: str, axiom: str):
    known = KNOWN_VIOLATIONS.get((label, axiom))
    marks = []
    if known and reproduces(label, axiom):
        marks = [pytest.mark.xfail(strict=True, reason=known)]
    elif known:
        warnings.warn(f"known violation {label} {axiom} no longer reproduces: remove it from workbench.proofs.registry.KNOWN_VIOLATIONS")
    return pytest.param(label, axiom, id=f"{label}-{axiom}", marks=marks)


@pytest.mark.parametrize("label,axiom", [_param(label, axiom) for label, axiom in CLAIMED])
def test_claimed_axiom_holds(label, axiom, tmp_path):
    m = workbench.method(label)
    assert m.label == label and axiom in m.claims, f"{label} does not claim {axiom}"
    rtol = _rtol(m, axiom)
    ax = get_axiom(axiom)
    for case in regression_cases().get(axiom, []):
        outcome = ax.run(m, case, rtol)
        assert not outcome.violated, f"{case.label}: {outcome.note}\n{case.describe()}"
    v = check_axiom(m, axiom, examples=EXAMPLES, seed=0, save_dir=tmp_path, shrink_seconds=2)
    assert v.holds is True and v.cases > 0, v


def test_regression_cases_violate_only_known_defects():
    """Each regression case violates conservation only where a known violation is registered (for
    the configuration it was found for, while that defect is unfixed) and holds for LRP-0."""
    ax = get_axiom("conservation")
    rtol = rtol_for(torch.float64)
    for case in regression_cases()["conservation"]:
        for label in sorted({label for label, axiom in CLAIMED if label.startswith("lrp") and axiom == "conservation"}):
            violated = ax.run(workbench.method(label), case, rtol).violated
            assert not violated or (label, "conservation") in KNOWN_VIOLATIONS, (label, case.label)
        assert not ax.run(workbench.method("lrp", composite="zero"), case, rtol).violated


def test_flat_and_w_square_do_not_conserve_and_do_not_claim_it():
    """The checker's shrunk counterexamples: relevance sent to an inactive unit is dropped by a
    residual sum of zeros (flat) or by a unit without incoming weights (w-square)."""
    ax = get_axiom("conservation")
    for c in _LRP_NOT_CONSERVATIVE:
        m = workbench.method("lrp", composite=c)
        assert "conservation" not in m.claims
        assert any(ax.run(m, case, rtol_for(torch.float64)).violated for case in regression_cases()["conservation"]), c


def test_every_known_violation_has_a_regression_case():
    for label, axiom in KNOWN_VIOLATIONS:
        assert (label, axiom) in CLAIMED and regression_cases().get(axiom), (label, axiom)

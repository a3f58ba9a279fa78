"""One table of LRP rules, each paired with its reference: generated from ``rules.KINDS`` and
``composites.TABLE``, so a new rule or composite adds its tests here by itself.

* every rule kind and every composite has an independent reference (``testing.references``); a
  kind registered without one fails (shown with a kind registered by the test);
* each rule kind alone on every dense and conv layer equals its reference on drawn networks;
* the engine's composite table equals the reference's, entry by entry, and the conservation claims
  are generated from it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, strategies as st

import workbench
from workbench.rules import composites as C
from workbench.rules import rules as R
from workbench.testing import references as ref
from workbench.testing import strategies as wst
from test_rules_reference import _close_lrp, composite_of  # the engine-vs-reference comparison, per sample

OPTIONS = {"epsilon": 0.125, "gamma": 0.5, "alpha": 3.0, "beta": 2.0, "low": -2.0, "high": 2.0}


@st.composite
def cases(draw):
    spec = draw(st.one_of(
        wst.mlp_specs(max_inputs=4, max_hidden_layers=2, max_width=4, max_outputs=3),
        wst.cnn_specs(max_channels=2, max_size=5, max_outputs=3),
    ))
    return draw(wst.weights_for(spec)), draw(wst.inputs(spec, batch=2)), draw(wst.targets(spec))


def test_every_rule_kind_and_composite_has_a_reference():
    assert ref.unpaired(sorted(R.KINDS), C.composite_names()) == []


def test_a_rule_registered_without_a_reference_fails(monkeypatch):
    monkeypatch.setitem(R.KINDS, "my-rule", lambda o: R.LRPZero())
    monkeypatch.setitem(C.TABLE, "my-composite", C.CompositeSpec("my-rule", "my-rule"))
    assert ref.unpaired(sorted(R.KINDS), C.composite_names()) == ["rule my-rule", "composite my-composite"]


@pytest.mark.parametrize("name", C.composite_names())
def test_engine_composites_are_the_reference_composites(name):
    assert tuple(C.TABLE[name][:3]) == ref.COMPOSITES[name]


def test_conservation_claims_come_from_the_table():
    claimed = {c for c in C.composite_names() if "conservation" in workbench.method("lrp", composite=c).claims}
    assert claimed == set(C.CONSERVATIVE) == {"zero", "dtd-zb", "dtd-w2"}


@pytest.mark.parametrize("kind", sorted(R.KINDS))
@given(case=cases())
def test_each_rule_kind_matches_its_reference(kind, case):
    """Each sample to the tolerance its condition number allows (``_close_lrp``: a denominator that
    cancels to round-off is no evidence either way)."""
    net, x, t = case
    with composite_of(kind) as name:
        a = workbench.method("lrp", composite=name, **OPTIONS).attribute(net, x, target=t)
    _close_lrp(a, net, x, t, (kind, kind, None), OPTIONS)


def _readme_rule_example() -> tuple[str, str]:
    """The README's new-rule example: (the rules.py part, the references.py part)."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = text.split("A new LRP rule, end to end")[1].split("```python\n")[1].split("```")[0]
    rules_part, reference_part = block.split("# workbench/testing/references.py")
    return rules_part, reference_part


@given(case=cases())
def test_the_readme_new_rule_example_is_paired_and_exact(case):
    rules_part, reference_part = _readme_rule_example()
    try:
        exec(rules_part, dict(vars(R)))  # registers KINDS["w-abs"] in the real table
        assert ref.unpaired(sorted(R.KINDS)) == ["rule w-abs"]  # not yet paired: the suite fails
        exec(reference_part, dict(vars(ref)))
        assert ref.unpaired(sorted(R.KINDS)) == []
        test_each_rule_kind_matches_its_reference.hypothesis.inner_test("w-abs", case)
    finally:
        R.KINDS.pop("w-abs", None)
        ref.RULES.pop("w-abs", None)

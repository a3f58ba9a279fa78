"""The symbolic proofs: every registered claim comes out as expected, and the report says so."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import sympy

from proofs import base, registry, report

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results() -> dict:
    start = time.perf_counter()
    out = {r.name: r for r in registry.run()}
    out["__elapsed__"] = time.perf_counter() - start
    return out


@pytest.mark.parametrize("name", sorted(registry.CLAIMS))
def test_verdict_equals_expected(results, name):
    r = results[name]
    entry = registry.CLAIMS[name]
    assert r.verdict is entry.expected, (name, r.residual)
    assert r.name == name
    assert r.cases >= 1
    assert r.steps, "a proof shows its derivation"
    if r.verdict:
        assert r.residual is None
    else:
        assert r.residual is not None and not base.is_zero(r.residual)


def test_there_are_false_claims_and_true_claims():
    expected = [e.expected for e in registry.CLAIMS.values()]
    assert True in expected and False in expected


def test_false_ixg_residual_is_the_bias_contribution(results):
    r = results["false-ixg-completeness"]
    assert r.verdict is False
    names = {s.name for s in r.residual.free_symbols}
    assert {"b1", "b2"} <= names
    assert not base.is_zero(r.residual)
    # with the biases set to zero the residual vanishes
    assert base.is_zero(r.residual.subs({s: 0 for s in r.residual.free_symbols if s.name.startswith("b")}))


def test_false_trapezoid_residual_is_minus_one_over_n(results):
    r = results["false-trapezoid-weights"]
    n = next(iter(r.residual.free_symbols))
    assert base.is_zero(r.residual + 1 / n)


def test_registry_entries_match_their_modules():
    for name, entry in registry.CLAIMS.items():
        mod = entry.load()
        assert mod.CLAIM.name == name
        assert callable(mod.prove)
        assert entry.statement == mod.CLAIM.statement


def test_property_test_twins_exist_when_named():
    for entry in registry.CLAIMS.values():
        if entry.property_test is None:
            continue
        path, _, func = entry.property_test.partition("::")
        text = (REPO / path).read_text()
        assert f"def {func.split('[')[0]}(" in text, entry.property_test


def test_markdown_report_contains_every_claim(results):
    rs = [results[n] for n in registry.CLAIMS]
    md = report.to_markdown(rs)
    for name in registry.CLAIMS:
        assert f"## {name}" in md
        assert f"| {name} |" in md
    assert "NOT proved" in md and "$" in md


def test_json_report_round_trips(results):
    rs = [results[n] for n in registry.CLAIMS]
    data = json.loads(report.to_json(rs))
    assert [c["name"] for c in data["claims"]] == list(registry.CLAIMS)
    false = {c["name"]: c for c in data["claims"]}["false-ixg-completeness"]
    assert false["verdict"] is False and "b1" in false["residual"]["text"]


def test_main_writes_report_and_exit_code(tmp_path, capsys):
    out = tmp_path / "p.md"
    assert report.main(["ig-linear", "false-ixg-completeness", "--out", str(out)]) == 0
    assert "## false-ixg-completeness" in out.read_text()
    printed = capsys.readouterr().out
    assert "ig-linear" in printed and "2/2" in printed
    js = tmp_path / "p.json"
    assert report.main(["prove", "ig-linear", "--json", "--out", str(js)]) == 0
    assert json.loads(js.read_text())["claims"][0]["name"] == "ig-linear"
    assert report.main(["no-such-claim", "--out", str(out)]) == 2


def test_main_fails_when_a_verdict_differs_from_expected(tmp_path, monkeypatch):
    flipped = dataclasses.replace(registry.CLAIMS["ig-linear"], expected=False)
    monkeypatch.setitem(registry.CLAIMS, "ig-linear", flipped)
    assert report.main(["ig-linear", "--out", str(tmp_path / "p.md")]) == 1


def test_is_zero_is_symbolic():
    x, y = sympy.symbols("x y", real=True)
    assert base.is_zero((x + y) ** 2 - x**2 - 2 * x * y - y**2)
    assert not base.is_zero(x * y)
    assert base.is_zero(sympy.sin(x) ** 2 + sympy.cos(x) ** 2 - 1)
    assert base.is_zero(sympy.sqrt(2) * sympy.sqrt(3) - sympy.sqrt(6))
    assert not base.is_zero(sympy.Rational(1, 10**12))
    assert base.is_zero(sympy.Piecewise((x - x, x > 0), (0, True)))
    assert not base.is_zero(sympy.Piecewise((x, x > 0), (0, True)))


def test_all_proofs_run_quickly(results):
    assert results["__elapsed__"] < 60

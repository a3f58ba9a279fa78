"""The symbolic proofs: every registered claim comes out as expected, a wrong ingredient makes a
proof fail with a residual, proofs decide symbolically (no sampling), and the report says so."""

from __future__ import annotations

import ast
import dataclasses
import json
import time
from pathlib import Path

import pytest
import sympy

from workbench.proofs import base, registry, report

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results() -> dict:
    start = time.perf_counter()
    out = {r.name: r for r in registry.run()}
    out["__elapsed__"] = time.perf_counter() - start
    return out


@pytest.mark.parametrize("name", list(registry.CLAIMS))
def test_verdict_equals_expected(results, name):
    r = results[name]
    entry = registry.CLAIMS[name]
    assert r.verdict is entry.expected, (name, r.residual, r.failed)
    assert r.name == name and r.cases >= 1
    assert r.claim and r.assumptions and r.formula, "a proof states its claim, assumptions and identity"
    assert any(isinstance(e, sympy.Basic) for _, e in r.steps), "a proof shows symbolic derivation steps"
    if r.verdict:
        assert r.residual is None and not r.failed
    else:
        assert r.residual is not None and not base.is_zero(r.residual) and r.failed


def test_there_are_false_claims_and_true_claims():
    expected = [e.expected for e in registry.CLAIMS.values()]
    assert True in expected and False in expected


def test_false_ixg_residual_is_the_bias_contribution(results):
    """The deliberately false claim is NOT proved and its residual is sum_j v_j b_j (d_j - e_j)."""
    r = results["false-ixg-completeness"]
    assert r.verdict is False
    s = {x.name: x for x in r.residual.free_symbols}
    expected = sum(s[f"v{j}"] * s[f"b{j}"] * (s[f"d{j}"] - s[f"e{j}"]) for j in (1, 2))
    assert base.is_zero(r.residual - expected)
    # zero without biases, and zero when x and 0 share the activation pattern
    assert base.is_zero(r.residual.subs({s["b1"]: 0, s["b2"]: 0}))
    assert base.is_zero(r.residual.subs({s["e1"]: s["d1"], s["e2"]: s["d2"]}))
    assert len(r.failed) == 12  # the 16 pattern pairs minus the 4 with d = e


def test_false_trapezoid_residual_is_minus_one_over_n(results):
    r = results["false-trapezoid-weights"]
    (n,) = r.residual.free_symbols
    assert base.is_zero(r.residual + 1 / n)


# -- a wrong ingredient makes a proof fail (the proofs can fail) ----------------------------------

def _mutate_fullgrad(monkeypatch):
    from workbench.proofs import fullgrad_decomposition as m

    original = m.decomposition_terms
    monkeypatch.setattr(m, "decomposition_terms", lambda net, bn_implicit_bias=True: original(net, bn_implicit_bias=False))
    return m


def _mutate_lrp0(monkeypatch):
    from workbench.proofs import lrp0_equals_input_x_gradient as m

    original = m.lrp0_linear
    monkeypatch.setattr(m, "lrp0_linear", lambda a, W, R: original(a, W, R) / 2)  # loses half the relevance per layer
    return m


def _mutate_gbp(monkeypatch):
    from workbench.proofs import gbp_gated_weights as m

    monkeypatch.setattr(m, "_indicator_positive", lambda g: 1)  # the plain gradient: no sign gate
    return m


def _mutate_quadrature_too_high(monkeypatch):
    from workbench.proofs import quadrature_exactness as m

    monkeypatch.setitem(m.PROVED_DEGREE, "midpoint", lambda n: 2)  # midpoint is not exact on t^2
    return m


def _mutate_quadrature_too_low(monkeypatch):
    from workbench.proofs import quadrature_exactness as m

    monkeypatch.setitem(m.PROVED_DEGREE, "trapezoid", lambda n: 0)  # then E(t^1) = 0: not the degree
    return m


MUTATIONS = {
    "fullgrad without BatchNorm's implicit bias": _mutate_fullgrad,
    "LRP-0 that leaks relevance": _mutate_lrp0,
    "GBP without the sign gate": _mutate_gbp,
    "midpoint claimed exact to degree 2": _mutate_quadrature_too_high,
    "trapezoid claimed exact to degree 0 only": _mutate_quadrature_too_low,
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_wrong_ingredient_is_not_proved(mutation, monkeypatch):
    module = MUTATIONS[mutation](monkeypatch)
    r = module.prove()
    assert r.verdict is False and r.failed, mutation
    assert r.residual is not None


def test_proofs_decide_symbolically_without_sampling():
    """No proof module imports a numeric or random package or evaluates numerically (evalf,
    lambdify, N): verdicts come from exact identities and enumerated cases only."""
    banned_modules = {"random", "numpy", "torch", "scipy", "math"}
    banned_calls = {"evalf", "lambdify", "N", "nsolve", "nsimplify"}
    for path in sorted((REPO / "proofs").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.split(".")[0] in banned_modules for n in names), (path.name, names)
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                assert name not in banned_calls, (path.name, name, node.lineno)


def test_is_zero_is_symbolic():
    x, y = sympy.symbols("x y", real=True)
    assert base.is_zero((x + y) ** 2 - x**2 - 2 * x * y - y**2)
    assert not base.is_zero(x * y)
    assert base.is_zero(sympy.sin(x) ** 2 + sympy.cos(x) ** 2 - 1)
    assert base.is_zero(sympy.sqrt(2) * sympy.sqrt(3) - sympy.sqrt(6))
    assert not base.is_zero(sympy.Rational(1, 10**12))  # tiny is not zero
    assert base.is_zero(sympy.Piecewise((x - x, x > 0), (0, True)))
    assert not base.is_zero(sympy.Piecewise((x, x > 0), (0, True)))


# -- the report and the command ------------------------------------------------------------------

def test_markdown_report_contains_every_claim(results):
    rs = [results[n] for n in registry.CLAIMS]
    md = report.to_markdown(rs)
    assert md.splitlines()[2] == report.md_text(report.summary_line(rs))
    for name, entry in registry.CLAIMS.items():
        assert f"## {name}" in md and f"| {name} |" in md
        assert f"$${results[name].formula}$$" in md
        for twin in entry.twins:
            assert f"`{twin}`" in md
    assert "**Verdict.** NOT proved" in md and "Residual: $" in md


def test_markdown_escapes_text_but_keeps_math():
    assert report.md_text("x_i * w_ij") == r"x\_i \* w\_ij"
    assert report.md_text(r"$x_i \cdot w$ and x_i") == r"$x_i \cdot w$ and x\_i"
    assert report.md_text("a | b") == r"a \| b"


def test_summary_line_says_what_happened(results):
    rs = [results[n] for n in registry.CLAIMS]
    n_false = sum(1 for e in registry.CLAIMS.values() if not e.expected)
    line = report.summary_line(rs)
    assert line == (f"{len(rs)} claims: {len(rs) - n_false} proved, {n_false} NOT proved "
                    f"({n_false} deliberately false claims, as expected) -- all {len(rs)} verdicts as expected")
    wrong = dataclasses.replace(results["ig-linear"], verdict=False)
    bad = report.summary_line([wrong, results["false-ixg-completeness"]])
    assert bad.endswith("1 UNEXPECTED: ig-linear (NOT proved, expected proved)")


def test_json_report_round_trips(results):
    rs = [results[n] for n in registry.CLAIMS]
    data = json.loads(report.to_json(rs))
    assert data["ok"] is True and data["summary"] == report.summary_line(rs)
    assert [c["name"] for c in data["claims"]] == list(registry.CLAIMS)
    false = {c["name"]: c for c in data["claims"]}["false-ixg-completeness"]
    assert false["verdict"] is False and false["status"] == "ok" and "b1" in false["residual"]["text"]
    assert false["refutes"] == [["input-x-gradient", "completeness"]]


def test_main_writes_report_and_exit_code(tmp_path, capsys):
    out = tmp_path / "p.md"
    assert report.main(["ig-linear", "false-ixg-completeness", "--out", str(out)]) == 0
    assert "## false-ixg-completeness" in out.read_text()
    printed = capsys.readouterr().out
    assert "ig-linear" in printed and "all 2 verdicts as expected" in printed
    js = tmp_path / "p.json"
    assert report.main(["prove", "--json", "ig-linear", "--out", str(js)]) == 0
    assert json.loads(js.read_text())["claims"][0]["name"] == "ig-linear"
    assert report.main(["no-such-claim", "--out", str(out)]) == 2
    assert report.main(["--no-such-option"]) == 2


def test_main_fails_only_when_a_verdict_differs_from_expected(tmp_path, monkeypatch, capsys):
    flipped = dataclasses.replace(registry.CLAIMS["ig-linear"], expected=False)
    monkeypatch.setitem(registry.CLAIMS, "ig-linear", flipped)
    assert report.main(["ig-linear", "--out", str(tmp_path / "p.md")]) == 1
    assert "1 UNEXPECTED: ig-linear (proved, expected NOT proved)" in capsys.readouterr().out
    # a false claim that is NOT proved is what is expected: exit 0
    assert report.main(["false-trapezoid-weights", "--out", str(tmp_path / "q.md")]) == 0


def test_full_report_lists_the_backing_of_every_builtin_claim(results):
    md = report.to_markdown([results[n] for n in registry.CLAIMS], with_backing=True)
    assert "## Built-in method claims and their backing" in md
    for label, axiom in registry.claimed_pairs(registry.audited_methods()):
        assert f"| `{label}` | {axiom} |" in md
    assert "UNBACKED" not in md
    assert ("backed, KNOWN VIOLATION" in md) == bool(registry.KNOWN_VIOLATIONS)


def test_all_proofs_run_quickly(results):
    assert results["__elapsed__"] < 60


def test_workbench_prove_accepts_an_option_first(tmp_path, capsys):
    """``workbench prove --json --out FILE NAME``: options before the claim names (cli.py hands every
    word after ``prove`` to the proofs' parser)."""
    from workbench.cli import main

    assert main(["prove", "--json", "--out", str(tmp_path / "p.json"), "ig-linear"]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["ok"] is True
    assert "all 1 verdict as expected" in capsys.readouterr().out


def test_workbench_prove_through_the_cli(tmp_path, capsys):
    from workbench.cli import main

    out = tmp_path / "p.md"
    assert main(["prove", "false-ixg-completeness", "--out", str(out)]) == 0
    assert "all 1 verdict as expected" in capsys.readouterr().out and out.exists()


def _math_spans(md: str) -> list[str]:
    """The LaTeX of every $$...$$ and $...$ span of a Markdown text (escaped \\$ are not delimiters)."""
    spans, rest = [], md
    import re

    for m in re.finditer(r"\$\$(.+?)\$\$", rest, flags=re.S):
        spans.append(m.group(1))
    rest = re.sub(r"\$\$(.+?)\$\$", "", rest, flags=re.S)
    for line in rest.splitlines():
        parts = re.split(r"(?<!\\)\$", line)
        assert len(parts) % 2 == 1, f"unbalanced $ in: {line[:200]}"
        spans += parts[1::2]
    return spans


def test_report_latex_is_well_formed(results):
    """Every math span of the full report has balanced braces and \\left/\\right pairs and no stray
    Markdown escapes (a malformed caption would break the rendering of the whole step)."""
    md = report.to_markdown([results[n] for n in registry.CLAIMS], with_backing=True)
    spans = _math_spans(md)
    assert len(spans) > 100
    for tex in spans:
        depth = 0
        for i, ch in enumerate(tex):
            if ch == "{" and (i == 0 or tex[i - 1] != "\\"):
                depth += 1
            elif ch == "}" and (i == 0 or tex[i - 1] != "\\"):
                depth -= 1
            assert depth >= 0, tex
        assert depth == 0, tex
        assert tex.count("\\left") == tex.count("\\right"), tex
        assert "\\_" not in tex and "\\*" not in tex, tex

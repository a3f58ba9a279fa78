"""The command line as a user meets it: exit codes, tables, JSON, replay files."""

import json

import pytest

from workbench.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_methods_lists_claims(capsys):
    code, out, _ = run(capsys, "methods")
    assert code == 0 and "integrated-gradients" in out and "completeness" in out
    code, out, _ = run(capsys, "methods", "--json")
    assert {m["name"] for m in json.loads(out)} >= {"gradient", "integrated-gradients"}


def test_check_ig_holds_completeness(capsys, tmp_path):
    code, out, _ = run(capsys, "check", "integrated-gradients", "--axioms", "completeness,sensitivity-a", "--examples", "10", "--out", str(tmp_path), "--quiet")
    assert code == 0, out
    assert "completeness" in out and "holds" in out and "FAILS" not in out


def test_check_gradient_fails_completeness_with_replayable_file(capsys, tmp_path):
    code, out, err = run(capsys, "check", "gradient", "--axioms", "completeness", "--examples", "5", "--out", str(tmp_path), "--quiet", "--json", "--shrink", "all")
    assert code == 0  # gradient does not claim completeness: an expected failure (saved with --shrink all)
    verdict = json.loads(out)[0]["verdicts"][0]
    assert verdict["holds"] is False and verdict["counterexample"]
    code, out, _ = run(capsys, "replay", verdict["counterexample"])
    assert code == 1 and "VIOLATED" in out and "x = [2.0]" in out


def test_claimed_axiom_failure_exits_1(capsys, tmp_path):
    # a user's callable without claims is held to the core axioms
    code, out, err = run(capsys, "check", "tests.unit.test_cli:zero_map", "--axioms", "completeness", "--examples", "5", "--out", str(tmp_path), "--quiet")
    assert code == 1 and "FAILS" in out and "claimed axiom failed" in err and str(tmp_path) in err


def test_bad_method_and_axiom_names_are_errors(capsys):
    code, _, err = run(capsys, "check", "no-such-method", "--quiet")
    assert code == 2 and "unknown method" in err
    code, _, err = run(capsys, "check", "gradient", "--axioms", "beauty", "--quiet")
    assert code == 2 and "unknown axiom" in err


def test_prove_reports_every_claim(capsys, tmp_path):
    code, out, _ = run(capsys, "prove", "ig-linear", "false-ixg-completeness", "--out", str(tmp_path / "p.md"))
    assert code == 0 and "ig-linear" in out and "NOT proved" in out
    assert (tmp_path / "p.md").read_text().count("false-ixg-completeness") >= 1


def zero_map(model, x, target, baseline):
    """A user's method that attributes nothing."""
    return x * 0

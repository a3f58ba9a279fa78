"""Tables for people and machines: 100 columns, Markdown, JSON, HTML, heatmap, reasons in sight."""

import json
import math

import pytest

from workbench.core import render
from workbench.axioms import DEFAULT_AXIOMS, axioms
from workbench.check.search import Report, Verdict
from workbench.check.expected_failures import REASONS
from workbench.check.views import (
    abbreviate,
    matrix_tables,
    reason,
    render_reports,
    write_heatmap,
    write_html,
)
from workbench.cli import main
from workbench.core.render import Column, Table
from workbench.methods import methods as builtin_methods
from workbench.methods.registry import matrix_methods

MATRIX_METHODS = matrix_methods()

WIDE = "integrated-gradients[tolerance=None,steps=8,rule='right'] " * 3


def fake_reports(names=MATRIX_METHODS, axes=DEFAULT_AXIOMS):
    """Reports with every verdict kind, long labels and notes (no search: rendering only)."""
    kinds = [(True, True), (True, False), (False, False), (None, False), (False, True)]
    out = []
    for i, m in enumerate(names):
        r = Report(m, settings={"examples": 5})
        for j, a in enumerate(axes):
            holds, claimed = kinds[(i + j) % len(kinds)]
            cx = f"cx/{m}--{a}--0123abcd.json" if holds is False else None
            note = "" if holds else f"case note for {m} / {a}: sum(A) = 0, F(x) - F(x') = 1"
            r.verdicts.append(Verdict(a, m, holds, claimed, 0.5 if holds is False else math.nan, 1e-9, 3, cx, note))
        out.append(r)
    return out


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_wrap_respects_width_and_keeps_every_character():
    for width in (5, 12, 30):
        lines = render.wrap(WIDE, width)
        assert all(len(line) <= width for line in lines)
        assert "".join(lines).replace(" ", "") == WIDE.replace(" ", "")
    assert render.wrap("rtol 1e-06, x", 7) == ["rtol", "1e-06,", "x"]  # never split inside a number


def test_text_tables_fit_100_columns_or_transpose():
    t = Table([Column("a", "name", wrap=True), Column("b", "description", wrap=True)], [[WIDE, WIDE], ["x", "y"]], legend=[WIDE])
    out = render.text(t)
    assert render.fits(out) and widest(out) <= 100 and "description" in out
    # fixed columns too wide for any layout: one block per row
    many = Table([Column(str(i), f"column-{i}") for i in range(12)], [[f"value-{i:03d}" for i in range(12)]])
    out = render.text(many)
    assert render.fits(out) and "column-11  value-011" in out


def test_markdown_html_json_forms():
    t = Table([Column("m", "method"), Column("r", "reason")], [["a|b", "<x>\nfile: f.json"]], links={(0, 1): "f.json"}, classes={(0, 0): "FAILS"})
    md = render.markdown(t)
    assert "a\\|b" in md and "[file: f.json](f.json)" in md and md.splitlines()[1] == "|---|---|"
    page = render.html_page("t", [t])
    assert "&lt;x&gt;" in page and '<a href="f.json">file: f.json</a>' in page and 'class="FAILS"' in page
    assert json.loads(render.render(t, "json")) == [{"m": "a|b", "r": "<x>\nfile: f.json"}]
    with pytest.raises(Exception, match="unknown format"):
        render.render(t, "xml")


def test_check_tables_fit_and_give_every_non_pass_its_reason():
    reports = fake_reports()
    one = reports[0].table()
    assert render.fits(one) and one.startswith("method: gradient")
    matrix = render_reports(reports, "table")
    assert render.fits(matrix)
    for a in DEFAULT_AXIOMS:
        assert f"{abbreviate(a)} = {a}:" in matrix  # the legend names every abbreviated axiom
    _, why = matrix_tables(reports)
    expected_rows = sum(1 for r in reports for v in r.verdicts if v.cell() not in ("holds", "holds*"))
    assert len(why.rows) == expected_rows and all(row[3].strip() for row in why.rows)


def test_expected_failure_reasons_come_from_data():
    v = Verdict("linearity", "integrated-gradients", False, False, 1e-5, 1e-9, 3, None, "max |...| = 1e-5")
    assert reason(v).startswith(REASONS["integrated-gradients"]["linearity"]) and reason(v).endswith("max |...| = 1e-5")
    user = Verdict("linearity", "my_function", False, True, 1e-5, 1e-9, 3, None, "method raised KeyError: 'w'")
    assert reason(user) == "method raised KeyError: 'w'"


def test_reason_table_is_consistent_with_the_registries():
    claims = {m.name: m.claims for m in builtin_methods()}
    known = set(axioms())
    for name, table in REASONS.items():
        assert name in claims, name
        for axiom in table:
            assert axiom == "*" or axiom in known, (name, axiom)
            assert axiom not in claims[name], f"{name} claims {axiom}: its failure is a defect, not expected"
    assert all(axioms()[a].abbreviation for a in known)  # each axiom names its column header
    assert len({abbreviate(a) for a in known}) == len(known) and all(len(abbreviate(a)) <= 6 for a in known)


def test_html_report_and_heatmap(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the counterexample paths are relative to the current directory
    reports = fake_reports(names=MATRIX_METHODS[:3])
    page = write_html(reports, tmp_path / "report" / "check.html").read_text()
    assert '<a href="../cx/gradient--dummy--0123abcd.json">' in page
    assert "case note for gradient / dummy" in page and "not claimed, fails as expected" in page
    png = write_heatmap(reports, tmp_path / "heat.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("argv", [["methods"], ["experiment", "list"], ["prove", "ig-linear", "false-ixg-completeness"]])
def test_cli_listings_fit_100_columns_in_every_format(capsys, tmp_path, argv):
    extra = ["--out", str(tmp_path / "p.md")] if argv[0] == "prove" else []
    code, out, _ = _run(capsys, *argv, *extra)
    table = "\n".join(line for line in out.splitlines() if not line.startswith("report: "))  # prove's file path line
    assert code == 0 and render.fits(table), max(table.splitlines(), key=len)
    code, out, _ = _run(capsys, *argv, "--format", "md", *extra)
    assert code == 0 and "|---|" in out
    code, out, _ = _run(capsys, *argv, "--format", "html", *extra)
    assert code == 0 and out.startswith("<!DOCTYPE html>")
    code, out, _ = _run(capsys, *argv, "--format", "json", *extra)
    assert code == 0 and json.loads(out)


def test_experiment_params_fit(capsys):
    from workbench.runner.experiment import experiments

    for name in experiments():
        code, out, _ = _run(capsys, "experiment", name, "--params")
        assert code == 0 and render.fits(out) and "type" in out, name


def raises(model, x, target, baseline):
    """A user's method with a typo."""
    return {}["weights"]


def test_a_raising_method_shows_its_message(capsys, tmp_path):
    code, out, err = _run(capsys, "check", "tests.unit.test_render:raises", "--axioms", "completeness", "--examples", "3",
                          "--out", str(tmp_path), "--quiet", "--html", str(tmp_path / "r.html"), "--heatmap", str(tmp_path / "h.png"))
    assert code in (1, 2) and "KeyError" in out and "'weights'" in out and render.fits(out)
    assert "KeyError" in (tmp_path / "r.html").read_text() and (tmp_path / "h.png").exists()

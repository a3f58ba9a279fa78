"""Reports of proof results (Markdown with LaTeX, JSON) and the ``prove`` command.

``main(argv)`` implements ``prove [NAME ...] [--format table|md|json|html] [--out FILE]``: it runs
the named proofs (all when none are named), writes the report (Markdown to ``results/proofs.md`` by
default; with ``--format json``, or its alias ``--json``, the JSON report, default
``results/proofs.json``), prints on stdout the summary table ending in one summary line (or the
report in the chosen format), and returns 0 when every claim's verdict equals its registered ``expected`` value
(proved for true claims, NOT proved for the deliberately false ones), 1 otherwise, 2 for usage
errors such as an unknown claim name.

Markdown: text fields may carry inline LaTeX between ``$...$``; outside it, Markdown's special
characters are escaped so that ASCII formulas in plain text (``x_i``, ``a * b``) render literally.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import sympy

from workbench.proofs.base import ProofResult, Step
from workbench.proofs.registry import CLAIMS, KNOWN_VIOLATIONS, audited_methods, backing, claimed_pairs

DEFAULT_MD = Path("results/proofs.md")
DEFAULT_JSON = Path("results/proofs.json")

_MATH = re.compile(r"(\$[^$]+\$)")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|])")


def _expected(name: str) -> Optional[bool]:
    entry = CLAIMS.get(name)
    return None if entry is None else entry.expected


def _verdict_text(r: ProofResult) -> str:
    return "proved" if r.verdict else "NOT proved"


def _status(r: ProofResult) -> str:
    exp = _expected(r.name)
    if exp is None:
        return "?"
    return "ok" if r.verdict == exp else "UNEXPECTED"


def _rows(results: Sequence[ProofResult]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for r in results:
        exp = _expected(r.name)
        rows.append((r.name, _verdict_text(r), "proved" if exp else ("NOT proved" if exp is False else "?"), str(r.cases), _status(r)))
    return rows


def summary_line(results: Sequence[ProofResult]) -> str:
    """One line: how many claims, proved / not proved, and whether every verdict is the expected one."""
    proved = sum(1 for r in results if r.verdict)
    refuted_as_expected = sum(1 for r in results if not r.verdict and _expected(r.name) is False)
    unexpected = [r for r in results if _status(r) != "ok"]
    head = f"{len(results)} claim{'s' if len(results) != 1 else ''}: {proved} proved, {len(results) - proved} NOT proved"
    if refuted_as_expected:
        head += f" ({refuted_as_expected} deliberately false claim{'s' if refuted_as_expected != 1 else ''}, as expected)"
    if not unexpected:
        return f"{head} -- all {len(results)} verdict{'s' if len(results) != 1 else ''} as expected"
    detail = ", ".join(f"{r.name} ({_verdict_text(r)}, expected {'proved' if _expected(r.name) else 'NOT proved'})" for r in unexpected)
    return f"{head} -- {len(unexpected)} UNEXPECTED: {detail}"


def _table(results: Sequence[ProofResult]):
    from workbench.core.render import Column, Table

    cols = [Column("claim", "claim", wrap=True, min_width=20), Column("verdict", "verdict"), Column("expected", "expected"),
            Column("cases", "cases"), Column("status", "status")]
    return Table(cols, [list(r) for r in _rows(results)], legend=summary_line(results).split(" -- "))


def summary_table(results: Sequence[ProofResult]) -> str:
    """Text table (100 columns): claim, verdict, expected, cases, status; then the summary line."""
    from workbench.core.render import text

    return text(_table(results))


# -- Markdown --------------------------------------------------------------------------------

def md_text(text: str) -> str:
    """Markdown for a text field: ``$...$`` spans kept as LaTeX, everything else escaped."""
    return "".join(part if _MATH.fullmatch(part) else _MD_SPECIAL.sub(r"\\\1", part) for part in _MATH.split(text))


def _latex(expr: Union[sympy.Basic, str]) -> str:
    if isinstance(expr, str):
        return md_text(expr)
    return "$" + sympy.latex(expr) + "$"


def _display(expr: Union[sympy.Basic, str]) -> str:
    """Large expressions (matrices, long sums) as display math on their own lines."""
    if isinstance(expr, str):
        return md_text(expr)
    tex = sympy.latex(expr)
    if isinstance(expr, sympy.MatrixBase) or len(tex) > 120:
        return "\n\n  $$" + tex + "$$\n"
    return "$" + tex + "$"


def _step_md(step: Step) -> str:
    caption, expr = step
    return f"- {md_text(caption)}: {_display(expr)}"


def _code_list(items: Sequence[str]) -> str:
    return ", ".join(f"`{i}`" for i in items) if items else "none"


def _pairs(pairs: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"`{label}` {axiom}" for label, axiom in pairs) if pairs else "none"


def claim_md(r: ProofResult) -> list[str]:
    entry = CLAIMS.get(r.name)
    out = [f"## {r.name}", "", f"**Claim.** {md_text(r.claim)}", ""]
    if r.formula:
        out += ["$$" + r.formula + "$$", ""]
    out.append("**Assumptions.**")
    out += [f"- {md_text(a)}" for a in r.assumptions] or ["- none"]
    out += ["", "**Steps.**"]
    out += [_step_md(s) for s in r.steps]
    out += ["", f"**Verdict.** {_verdict_text(r)} ({r.cases} enumerated case{'s' if r.cases != 1 else ''})"]
    if r.residual is not None:
        out[-1] += f"; {len(r.failed)} check{'s' if len(r.failed) != 1 else ''} with a non-zero residual. Residual: {_latex(r.residual)}"
    out[-1] += "."
    if entry is not None:
        exp = "proved" if entry.expected else "NOT proved (a deliberately false claim)"
        out += [
            "",
            f"Expected: {exp}. Proof module: `{entry.module}`. Property-test twins: {_code_list(entry.twins)}.",
            f"Backs built-in claims: {_pairs(entry.backs)}."
            + (f" Refutes: {_pairs(entry.refutes)}." if entry.refutes else "")
            + (f" No built-in may claim together: {', '.join(entry.not_jointly)}." if entry.not_jointly else ""),
        ]
    out.append("")
    return out


def backing_md() -> list[str]:
    """Table of every claimed axiom of the audited built-in configurations and what backs it."""
    out = ["## Built-in method claims and their backing", "",
           "| method | axiom | proofs | property tests | status |", "|---|---|---|---|---|"]
    for label, axiom in claimed_pairs(audited_methods()):
        b = backing(label, axiom)
        status = ("backed" if b.backed else "UNBACKED") + (", KNOWN VIOLATION" if b.known_violation else "")
        tests = str(len(b.tests)) if b.tests else "none"
        out.append(f"| `{label}` | {axiom} | {', '.join(b.proofs) or '-'} | {tests} | {status} |")
    if KNOWN_VIOLATIONS:
        out += ["", "Known violations (library defects found by the property tests):", ""]
        out += [f"- `{label}` {axiom}: {md_text(note)}" for (label, axiom), note in KNOWN_VIOLATIONS.items()]
    out.append("")
    return out


def to_markdown(results: Sequence[ProofResult], *, with_backing: bool = False) -> str:
    """The report: summary table and line, each claim (assumptions, steps, verdict), and (with
    ``with_backing``) the table of built-in method claims and what backs each."""
    out = ["# Symbolic proofs", "", md_text(summary_line(results)), ""]
    out += ["| claim | verdict | expected | cases | status |", "|---|---|---|---|---|"]
    for row in _rows(results):
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    for r in results:
        out += claim_md(r)
    if with_backing:
        out += backing_md()
    return "\n".join(out)


# -- JSON ------------------------------------------------------------------------------------

def _jsonable(expr: Union[sympy.Basic, str, None]) -> Union[dict, str, None]:
    if expr is None or isinstance(expr, str):
        return expr
    return {"text": sympy.sstr(expr), "latex": sympy.latex(expr)}


def to_dict(r: ProofResult) -> dict:
    entry = CLAIMS.get(r.name)
    return {
        "name": r.name,
        "claim": r.claim,
        "formula": r.formula,
        "assumptions": list(r.assumptions),
        "steps": [{"caption": c, "expr": _jsonable(e)} for c, e in r.steps],
        "verdict": r.verdict,
        "expected": None if entry is None else entry.expected,
        "status": _status(r),
        "residual": _jsonable(r.residual),
        "failed_checks": list(r.failed),
        "cases": r.cases,
        "module": None if entry is None else entry.module,
        "twins": [] if entry is None else list(entry.twins),
        "backs": [] if entry is None else [list(p) for p in entry.backs],
        "refutes": [] if entry is None else [list(p) for p in entry.refutes],
        "axioms": [] if entry is None else list(entry.axioms),
    }


def to_json(results: Sequence[ProofResult]) -> str:
    """JSON report: the summary and a list of claims with steps as {text, latex}."""
    return json.dumps({"summary": summary_line(results), "ok": all(_status(r) == "ok" for r in results),
                       "claims": [to_dict(r) for r in results]}, indent=2)


# -- command ---------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="workbench prove", description="Run the symbolic proofs and write a report.")
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"claims to prove (default: all): {', '.join(CLAIMS)}")
    ap.add_argument("--format", choices=("table", "md", "json", "html"), default="table",
                    help="what stdout gets: the summary table (default), the Markdown or JSON report, or HTML")
    ap.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")
    ap.add_argument("--out", type=Path, default=None, help=f"report file (default {DEFAULT_MD}, or {DEFAULT_JSON} with --format json)")
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``prove [NAME ...] [--json] [--out FILE]``; a leading ``prove`` word is accepted and ignored."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["prove"]:
        args_in = args_in[1:]
    try:
        args = _parser().parse_args(args_in)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed by argparse
        return int(e.code or 0)
    unknown = [n for n in args.names if n not in CLAIMS]
    if unknown:
        print(f"unknown claim(s): {', '.join(unknown)}; known: {', '.join(CLAIMS)}", file=sys.stderr)
        return 2
    from workbench.proofs.registry import run

    start = time.perf_counter()
    results = run(args.names or None)
    elapsed = time.perf_counter() - start
    as_json = args.format == "json"
    out = args.out or (DEFAULT_JSON if as_json else DEFAULT_MD)
    out.parent.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(results, with_backing=not args.names)
    out.write_text(to_json(results) if as_json else markdown, encoding="utf-8")
    if args.format == "table":
        print(summary_table(results))
        print(f"report: {out} (proofs ran in {elapsed:.1f} s)")
    else:
        from workbench.core.render import render

        print(to_json(results) if as_json else markdown if args.format == "md" else render(_table(results), "html", title="workbench prove"))
        print(f"report: {out} (proofs ran in {elapsed:.1f} s)", file=sys.stderr)
    return 0 if all(_status(r) == "ok" for r in results) else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

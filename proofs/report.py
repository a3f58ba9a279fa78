"""Reports of proof results (Markdown with LaTeX, JSON) and the ``prove`` command.

``main(argv)`` implements ``prove [NAME ...] [--json] [--out FILE]``: it runs the named proofs
(all when none are named), writes the report (Markdown to ``results/proofs.md`` by default; with
``--json`` the JSON report, default ``results/proofs.json``), prints a summary table and returns 0
when every claim's verdict equals its registered ``expected`` value, 1 otherwise (2 for usage
errors such as an unknown claim name).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import sympy

from .base import ProofResult, Step
from .registry import CLAIMS

DEFAULT_MD = Path("results/proofs.md")
DEFAULT_JSON = Path("results/proofs.json")


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


def _latex(expr: Union[sympy.Basic, str]) -> str:
    if isinstance(expr, str):
        return expr
    return "$" + sympy.latex(expr) + "$"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _rows(results: Sequence[ProofResult]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for r in results:
        exp = _expected(r.name)
        rows.append((r.name, _verdict_text(r), "proved" if exp else ("NOT proved" if exp is False else "?"), str(r.cases), _status(r)))
    return rows


def summary_table(results: Sequence[ProofResult]) -> str:
    """Plain-text table: claim, verdict, expected, cases, status."""
    header = ("claim", "verdict", "expected", "cases", "status")
    rows = [header] + _rows(results)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    good = sum(1 for r in results if _status(r) == "ok")
    lines.append(f"{good}/{len(results)} claims as expected")
    return "\n".join(lines)


def _step_md(step: Step) -> str:
    caption, expr = step
    return f"- {_md_escape(caption)}: {_latex(expr)}"


def to_markdown(results: Sequence[ProofResult]) -> str:
    """The report: summary table, then each claim with assumptions, steps and verdict."""
    out = ["# Symbolic proofs", ""]
    out += ["| claim | verdict | expected | cases | status |", "|---|---|---|---|---|"]
    for row in _rows(results):
        out.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
    out.append("")
    for r in results:
        entry = CLAIMS.get(r.name)
        out += [f"## {r.name}", "", f"**Claim.** {r.claim}", ""]
        if entry is not None:
            out.append(f"Proof module: `{entry.module}`. Axioms resting on it: {', '.join(entry.axioms) or '-'}. "
                       f"Property test: {('`' + entry.property_test + '`') if entry.property_test else 'none yet'}.")
            out.append("")
        out.append("**Assumptions.**")
        out += [f"- {_md_escape(a)}" for a in r.assumptions] or ["- none"]
        out += ["", "**Steps.**"]
        out += [_step_md(s) for s in r.steps]
        out += ["", f"**Verdict.** {_verdict_text(r)} ({r.cases} enumerated case{'s' if r.cases != 1 else ''})."]
        if r.residual is not None:
            out.append(f"Residual: {_latex(r.residual)}")
        out.append("")
    return "\n".join(out)


def _jsonable(expr: Union[sympy.Basic, str, None]) -> Union[dict, str, None]:
    if expr is None or isinstance(expr, str):
        return expr
    return {"text": sympy.sstr(expr), "latex": sympy.latex(expr)}


def to_dict(r: ProofResult) -> dict:
    entry = CLAIMS.get(r.name)
    return {
        "name": r.name,
        "claim": r.claim,
        "assumptions": list(r.assumptions),
        "steps": [{"caption": c, "expr": _jsonable(e)} for c, e in r.steps],
        "verdict": r.verdict,
        "expected": None if entry is None else entry.expected,
        "residual": _jsonable(r.residual),
        "cases": r.cases,
        "module": None if entry is None else entry.module,
        "property_test": None if entry is None else entry.property_test,
        "axioms": [] if entry is None else list(entry.axioms),
    }


def to_json(results: Sequence[ProofResult]) -> str:
    """JSON report: a list of claims with steps as {text, latex}."""
    return json.dumps({"claims": [to_dict(r) for r in results]}, indent=2)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="workbench prove", description="Run the symbolic proofs and write a report.")
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"claims to prove (default: all): {', '.join(CLAIMS)}")
    ap.add_argument("--json", action="store_true", help="write the JSON report instead of Markdown")
    ap.add_argument("--out", type=Path, default=None, help=f"report file (default {DEFAULT_MD}, or {DEFAULT_JSON} with --json)")
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``prove [NAME ...] [--json] [--out FILE]``; a leading ``prove`` word is accepted and ignored."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["prove"]:
        args_in = args_in[1:]
    args = _parser().parse_args(args_in)
    unknown = [n for n in args.names if n not in CLAIMS]
    if unknown:
        print(f"unknown claim(s): {', '.join(unknown)}; known: {', '.join(CLAIMS)}", file=sys.stderr)
        return 2
    from .registry import run

    start = time.perf_counter()
    results = run(args.names or None)
    elapsed = time.perf_counter() - start
    out = args.out or (DEFAULT_JSON if args.json else DEFAULT_MD)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_json(results) if args.json else to_markdown(results), encoding="utf-8")
    print(summary_table(results))
    print(f"report: {out} ({elapsed:.1f} s)")
    return 0 if all(_status(r) == "ok" for r in results) else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

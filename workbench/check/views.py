"""Check reports as tables (text, Markdown, JSON, HTML), a heatmap PNG and an HTML report.

``report_table(report)``: one method's verdicts with a detail column that gives every cell that
is not a plain pass its one-line reason. ``matrix_tables(reports)``: the method x axiom matrix
with abbreviated axiom headers (legend below it) and the reasons table. ``write_heatmap`` and
``write_html`` save the matrix as a picture and as a page whose cells link to their
counterexample files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from workbench.axioms import axioms
from workbench.core import render
from workbench.core.render import Column, Table

#: what each matrix cell means (legend; HTML and heatmap colours follow the same classes)
VERDICTS = {
    "holds": "claimed and holds",
    "holds*": "holds, not claimed",
    "fails": "not claimed, fails as expected",
    "FAILS": "claimed, but a counterexample was found (a defect)",
    "n/a": "no applicable case (the reason says why)",
    "error": "the check itself could not run",
    "contract": "the method broke the attribution contract (raised, wrong shape, non-finite)",
    "-": "not run (interrupted)",
}
#: matrix forms of verdict texts longer than the abbreviated headers
SHORT_CELLS = {"contract": "contr"}
_PLAIN = ("holds", "holds*")


def abbreviate(axiom: str) -> str:
    """The matrix header of `axiom` (at most 6 characters)."""
    registered = axioms().get(axiom)
    if registered is not None and registered.abbreviation:
        return registered.abbreviation
    head, *rest = axiom.split("-")
    return (head[: 6 - len(rest)] + "".join(p[:1].upper() for p in rest))[:6]


def css_class(cell: str) -> str:
    return {"holds*": "holds-unclaimed", "n/a": "na"}.get(cell, cell)


def _one_line(text: str) -> str:
    return " ".join(str(text or "").split())


def reason(verdict: Any) -> str:
    """The one-line reason of a verdict that is not a plain pass (empty for a pass without note).

    Expected failures of built-ins get the method's documented reason
    (``workbench.check.expected_failures``) before the checker's note.
    """
    from workbench.check.expected_failures import reason as expected_reason

    cell = verdict.cell()
    note = _one_line(getattr(verdict, "note", ""))
    if cell in _PLAIN:
        return note
    parts = []
    if cell == "fails":
        why = expected_reason(verdict.method, verdict.axiom)
        if why:
            parts.append(why)
    if note:
        parts.append(note)
    return "; ".join(parts) or "no reason recorded"


def _axiom_legend(axioms: Sequence[str], abbreviated: bool) -> list[str]:
    from workbench.axioms import get_axiom

    out = []
    for a in axioms:
        try:
            desc = get_axiom(a).description
        except Exception:  # noqa: BLE001 - an unknown name still gets its line
            desc = ""
        head = f"{abbreviate(a)} = {a}" if abbreviated else a
        out.append(f"{head}: {desc}" if desc else head)
    return out


def _verdict_legend(cells: Sequence[str]) -> str:
    seen = [c for c in VERDICTS if c in cells] + [c for c in dict.fromkeys(cells) if c not in VERDICTS]
    return "   ".join(f"{SHORT_CELLS.get(c, c)}: {VERDICTS.get(c, c)}" for c in seen)


def report_table(report: Any) -> Table:
    """One method's verdicts; the detail column holds the reason and the counterexample file."""
    cols = [Column("axiom", "axiom", wrap=True, min_width=12, max_width=16), Column("claimed", "claim", title="claimed"),
            Column("verdict", "verdict"), Column("residual", "residual"), Column("tolerance", "tol", title="tolerance"),
            Column("cases", "cases"), Column("detail", "reason / counterexample", wrap=True, min_width=24)]
    rows, links, classes = [], {}, {}
    for r, v in enumerate(report.verdicts):
        detail = reason(v)
        if v.counterexample:
            detail = (detail + "\n" if detail else "") + f"file: {v.counterexample}"
            links[(r, 6)] = v.counterexample
        rows.append([v.axiom, "yes" if v.claimed else "no", v.cell(), render.num(v.residual), render.num(v.tolerance, 1), str(v.cases), detail])
        classes[(r, 2)] = css_class(v.cell())
    notes = []
    breaches = (getattr(report, "contract", None) or {}).get("breaches")
    if breaches:
        notes.append("contract breached: " + "; ".join(breaches))
    settings = getattr(report, "settings", {}) or {}
    if settings.get("not_searched"):
        notes.append(f"not searched: {', '.join(settings['not_searched'])} networks (domain: {settings.get('domain')})")
    legend = notes + [_verdict_legend([v.cell() for v in report.verdicts]),
              "claim: whether the method claims the axiom   residual: worst relative residual (of the counterexample "
              "when it fails)   tol: the relative tolerance it is compared with   cases: applicable cases evaluated"]
    return Table(cols, rows, title=f"method: {report.method}", legend=legend, links=links, classes=classes, records=[report.to_dict()])


def matrix_tables(reports: Sequence[Any], *, link_base: Optional[Path] = None) -> list[Table]:
    """The method x axiom matrix and the reasons of every cell that is not a plain pass."""
    axes = list(dict.fromkeys(v.axiom for rep in reports for v in rep.verdicts))
    cols = [Column("method", "method", wrap=True, min_width=20)] + [Column(a, abbreviate(a), title=a) for a in axes]
    rows, classes, links = [], {}, {}
    why_rows, why_links, why_classes = [], {}, {}
    why_methods: set = set()  # a method is named on its first reason row only
    for r, rep in enumerate(reports):
        row = [rep.method]
        by_axiom = {v.axiom: v for v in rep.verdicts}
        for k, a in enumerate(axes, 1):
            v = by_axiom.get(a)
            if v is None:  # not run (an interrupted check)
                row.append("-")
                continue
            cell = v.cell()
            row.append(SHORT_CELLS.get(cell, cell))
            classes[(r, k)] = css_class(cell)
            if v.counterexample:
                links[(r, k)] = _href(v.counterexample, link_base)
            if cell not in _PLAIN:
                text = reason(v)
                if v.counterexample:
                    why_links[(len(why_rows), 3)] = _href(v.counterexample, link_base)
                    text += f"\nfile: {v.counterexample}"
                why_classes[(len(why_rows), 2)] = css_class(cell)
                shown_method = "" if rep.method in why_methods else rep.method
                why_methods.add(rep.method)
                why_rows.append([shown_method, v.axiom, cell, text])
        rows.append(row)
    cells = [v.cell() for rep in reports for v in rep.verdicts]
    legend = _axiom_legend(axes, abbreviated=True) + [_verdict_legend(cells)]
    matrix = Table(cols, rows, title="method x axiom", legend=legend, classes=classes, links=links,
                   records=[rep.to_dict() for rep in reports])
    why = Table([Column("method", "method", wrap=True, min_width=16, max_width=22),
                 Column("axiom", "axiom", wrap=True, min_width=12, max_width=16),
                 Column("verdict", "verdict"), Column("reason", "reason (counterexample file)", wrap=True, min_width=30)],
                why_rows, title="reasons: every cell that is not a plain pass", links=why_links, classes=why_classes)
    return [matrix, why]


def _href(path: str, base: Optional[Path]) -> str:
    """A link to `path` from a page written in directory `base` (the current directory if None)."""
    start = base if base is not None else Path.cwd()
    try:
        return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return Path(path).resolve().as_uri()


def render_reports(reports: Sequence[Any], fmt: str, *, matrix: Optional[bool] = None, width: int = render.WIDTH) -> str:
    """`reports` in `fmt`: one method's table, or the matrix (``matrix`` or several reports)."""
    if fmt == "json":
        return render.render([], "json", data=[r.to_dict() for r in reports])
    use_matrix = len(reports) > 1 if matrix is None else matrix
    tables = matrix_tables(reports) if use_matrix else [report_table(r) for r in reports]
    return render.render(tables, fmt, title="workbench check", width=width)


def write_html(reports: Sequence[Any], path: Union[str, Path]) -> Path:
    """An HTML page: the matrix (cells coloured, linked to their counterexample files) and the
    reasons table, with links relative to the page's directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tables = matrix_tables(reports, link_base=path.parent)
    settings = reports[0].settings if reports else {}
    intro = "settings: " + ", ".join(f"{k}={v}" for k, v in settings.items())
    path.write_text(render.html_page("workbench check", tables, intro=intro), encoding="utf-8")
    return path


#: heatmap colours per verdict class
COLOURS = {"holds": "#4caf50", "holds*": "#a5d6a7", "fails": "#ffe082", "n/a": "#e0e0e0",
           "FAILS": "#e53935", "error": "#8e24aa", "contract": "#ff7043", "-": "#ffffff"}


def write_heatmap(reports: Sequence[Any], path: Union[str, Path]) -> Path:
    """The matrix as a PNG: one coloured, labelled cell per (method, axiom), a legend of verdicts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    path = Path(path)
    axes = list(dict.fromkeys(v.axiom for rep in reports for v in rep.verdicts))
    cells = [[next((v.cell() for v in r.verdicts if v.axiom == a), "-") for a in axes] for r in reports]
    kinds = list(dict.fromkeys([k for k in COLOURS] + [c for row in cells for c in row]))
    index = {k: i for i, k in enumerate(kinds)}
    grid = [[index[c] for c in row] for row in cells]
    cmap = ListedColormap([COLOURS.get(k, "#9e9e9e") for k in kinds])
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(axes) + 3.2, 1.6 + 0.38 * len(reports)))
    ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=len(kinds) - 0.5, aspect="auto")
    for i, row in enumerate(cells):
        for j, c in enumerate(row):
            ax.text(j, i, c, ha="center", va="center", fontsize=7, color="white" if c in ("FAILS", "error") else "black")
    ax.set_xticks(range(len(axes)), axes, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(reports)), [_short_label(r.method) for r in reports], fontsize=8)
    ax.set_xlabel("axiom")
    ax.set_ylabel("method")
    ax.set_title("workbench check: method x axiom")
    used = [k for k in kinds if any(k in row for row in cells)]
    ax.legend(handles=[Patch(color=COLOURS.get(k, "#9e9e9e"), label=f"{k}: {VERDICTS.get(k, k)}") for k in used],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _short_label(label: str, limit: int = 44) -> str:
    return label if len(label) <= limit else label[: limit - 3] + "..."

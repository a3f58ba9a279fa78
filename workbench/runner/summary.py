"""An experiment's summary: did the paper's claim reproduce (with the statistic), and its tables.

``Outcome(reproduced, statistic)`` states the verdict: True, False, or None when the run cannot
decide (too few items for the test). ``write(out_dir, ...)`` writes ``summary.md`` (a Markdown
heading, the claim, the verdict with its statistic, real Markdown tables, notes) and returns the
same content as text fitted to 100 columns, for the console and for ``summary["text"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from workbench.core import render
from workbench.core.render import Table

#: one-sided test level used by every experiment's verdict
ALPHA = 0.05


@dataclass(frozen=True)
class Outcome:
    """Whether the published claim reproduced in this run, and the statistic that says so."""

    reproduced: Optional[bool]
    statistic: str

    @property
    def word(self) -> str:
        return {True: "REPRODUCED", False: "NOT REPRODUCED", None: "UNDECIDED"}[self.reproduced]

    def line(self) -> str:
        return f"claim {self.word}: {self.statistic}"

    def to_dict(self) -> dict:
        return {"reproduced": self.reproduced, "statistic": self.statistic}


def worst_p(pvalues: dict, alpha: float = ALPHA, *, n: Optional[int] = None, what: str = "") -> Outcome:
    """Reproduced when every one-sided p-value is below `alpha`; the statistic names the largest."""
    clean = {k: v for k, v in pvalues.items() if v is not None}
    if not clean:
        return Outcome(None, f"no test could be run{f' ({what})' if what else ''}")
    name, p = max(clean.items(), key=lambda kv: kv[1])
    size = f", n = {n}" if n is not None else ""
    text = f"{what + ': ' if what else ''}largest one-sided p = {p:.2g} (vs {name}{size}; level {alpha:g}"
    text += f", all {len(clean)} comparisons)" if len(clean) > 1 else ")"
    return Outcome(bool(p < alpha), text)


def write(out_dir: Path, *, title: str, claim: str, outcome: Outcome, tables: Sequence[Table], notes: Sequence[str] = ()) -> str:
    """Write ``summary.md`` and return the text form (100 columns)."""
    md = [f"# {title}", "", f"**Claim.** {render.md_cell(claim)}", "",
          f"**Result: {outcome.word}.** {render.md_cell(outcome.statistic)}", ""]
    for t in tables:
        md += [render.markdown(t)]
    if notes:
        md += [f"- {render.md_cell(n)}" for n in notes] + [""]
    (Path(out_dir) / "summary.md").write_text("\n".join(md), encoding="utf-8")
    lines = render.wrap_with_indent(title, render.WIDTH) + render.wrap_with_indent(outcome.line(), render.WIDTH) + [""]
    for t in tables:
        lines += [render.text(t), ""]
    for n in notes:
        lines += render.wrap_with_indent(n, render.WIDTH)
    return "\n".join(lines).rstrip() + "\n"


def table(header: Sequence[str], rows: Sequence[Sequence[object]], *, title: str = "", first_wrap: bool = True,
          legend: Sequence[str] = ()) -> Table:
    """A Table from a header and rows of values (floats shown with 4 significant digits)."""
    from workbench.core.render import Column

    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    cols = [Column(f"c{i}", h, wrap=(i == 0 and first_wrap), min_width=16) for i, h in enumerate(header)]
    records = [{h: v for h, v in zip(header, r)} for r in rows]
    return Table(cols, [[cell(v) for v in r] for r in rows], title=title, legend=list(legend), records=records)

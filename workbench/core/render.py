"""Tables for people and machines: one ``Table``, four formats (``table`` text, ``md``, ``json``, ``html``).

The text form fits a width (100 columns by default): columns marked ``wrap`` are narrowed by
water-filling and their cells wrapped (at spaces, hyphens, commas and brackets, so that method
labels such as ``integrated-gradients[tolerance=None,steps=8]`` break where they read well); if
the fixed columns alone do not fit, the separator shrinks to one space, and as a last resort the
table is printed transposed, one ``column: value`` block per row. Abbreviated headers come with
a legend line each. Markdown is a GitHub pipe table, HTML a standalone page, JSON the rows as
objects keyed by the columns' ``key``.
"""

from __future__ import annotations

import html as _html
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

#: the output formats every listing command takes (``--format``)
FORMATS = ("table", "md", "json", "html")
#: the width every text table is fitted to
WIDTH = 100


@dataclass(frozen=True)
class Column:
    """One column: ``key`` names it in JSON, ``header`` is shown, ``title`` (if the header is an
    abbreviation) goes to the legend; ``wrap`` columns may be narrowed down to ``min_width``."""

    key: str
    header: str
    title: str = ""
    wrap: bool = False
    min_width: int = 8
    max_width: Optional[int] = None  # a wrap column never wider than this


@dataclass
class Table:
    """Rows of cell texts under columns, with a title, legend lines and optional per-cell links,
    CSS classes (HTML) and JSON records (default: each row keyed by the columns' keys)."""

    columns: list[Column]
    rows: list[list[str]]
    title: str = ""
    legend: list[str] = field(default_factory=list)
    links: dict = field(default_factory=dict)  # (row, col) -> href
    classes: dict = field(default_factory=dict)  # (row, col) -> CSS class
    records: Optional[list] = None

    def json_records(self) -> list:
        if self.records is not None:
            return self.records
        return [{c.key: cell for c, cell in zip(self.columns, row)} for row in self.rows]


# -- text ------------------------------------------------------------------------------------
# a piece ends after a space, comma, slash, "=", "[" or a hyphen before a letter (not "1e-06")
_BREAK = re.compile(r"(?:[^\s,\[/=-]|-(?![A-Za-z]))*(?:[,\[/=]|-(?=[A-Za-z])|\s+|$)")


def wrap(text: str, width: int) -> list[str]:
    """Greedy wrap at spaces, hyphens, commas, slashes, ``=`` and ``[``; over-long pieces are cut."""
    text = str(text)
    if width <= 0:
        return [text]
    lines: list[str] = []
    for paragraph in text.split("\n"):
        cur = ""
        for tok in (t for t in _BREAK.findall(paragraph) if t):
            if len(cur) + len(tok.rstrip()) <= width:
                cur += tok
                continue
            if cur.strip():
                lines.append(cur.rstrip())
            cur = tok.lstrip()
            while len(cur.rstrip()) > width:
                lines.append(cur[:width])
                cur = cur[width:]
        lines.append(cur.rstrip())
    return lines or [""]


def wrap_with_indent(text: str, width: int, indent: int = 4) -> list[str]:
    """Wrap a legend or note line: continuation lines indented."""
    first, *rest = wrap(text, width)
    more = wrap(" ".join(rest), width - indent) if rest else []
    return [first] + [" " * indent + line for line in more]


def _widths(table: Table, width: int, sep: int) -> Optional[list[int]]:
    cells = [[c.header] + [row[i] for row in table.rows] for i, c in enumerate(table.columns)]
    natural = [max(max(len(line) for line in str(v).split("\n")) for v in col) for col in cells]
    natural = [min(n, c.max_width) if c.wrap and c.max_width else n for n, c in zip(natural, table.columns)]
    total = sum(natural) + sep * (len(natural) - 1)
    if total <= width:
        return natural
    fixed = [i for i, c in enumerate(table.columns) if not c.wrap]
    flexible = [i for i, c in enumerate(table.columns) if c.wrap]
    room = width - sep * (len(natural) - 1) - sum(natural[i] for i in fixed)
    minimum = {i: min(natural[i], max(table.columns[i].min_width, len(table.columns[i].header))) for i in flexible}
    if not flexible or room < sum(minimum.values()):
        return None
    out = list(natural)
    # water-filling: every flexible column gets an equal share, narrow ones give back what they do not need
    pending = sorted(flexible, key=lambda i: natural[i])
    while pending:
        share = room // len(pending)
        i = pending[0]
        if natural[i] <= share:
            out[i] = natural[i]
        else:
            for j in pending:
                out[j] = max(minimum[j], share)
            break
        room -= out[i]
        pending.pop(0)
    return out


def text(table: Table, width: int = WIDTH) -> str:
    """The table as aligned text no wider than `width` (see the module docstring for how)."""
    head = wrap_with_indent(table.title, width) if table.title else []
    legend = [line for item in table.legend for line in wrap_with_indent(item, width)]
    if not table.rows:
        return "\n".join(head + ["(none)"] + legend)
    for sep in (2, 1):
        widths = _widths(table, width, sep)
        if widths is not None:
            break
    if widths is None:
        return "\n".join(head + _transposed(table, width) + legend)
    gap = " " * sep
    lines = []

    def emit(row: Sequence[str]) -> None:
        parts = [wrap(cell, w) if c.wrap else str(cell).split("\n") for cell, w, c in zip(row, widths, table.columns)]
        for k in range(max(len(p) for p in parts)):
            lines.append(gap.join((p[k] if k < len(p) else "").ljust(w) for p, w in zip(parts, widths)).rstrip())

    emit([c.header for c in table.columns])
    lines.append(gap.join("-" * w for w in widths))
    for row in table.rows:
        emit(row)
    return "\n".join(head + lines + ([""] if legend else []) + legend)


def _transposed(table: Table, width: int) -> list[str]:
    key_w = max(len(c.header) for c in table.columns)
    out: list[str] = []
    for row in table.rows:
        for c, cell in zip(table.columns, row):
            body = wrap(cell, width - key_w - 2)
            out.append(f"{c.header.ljust(key_w)}  {body[0]}".rstrip())
            out += [" " * (key_w + 2) + line for line in body[1:]]
        out.append("")
    return out[:-1]


def fits(rendered: str, width: int = WIDTH) -> bool:
    """Every line of `rendered` is at most `width` characters."""
    return all(len(line) <= width for line in rendered.splitlines())


def _link_part(cell: str) -> tuple[str, str]:
    """(text, linked text): the last line of a multi-line cell is the link, a one-line cell entirely."""
    head, sep, tail = cell.rpartition("\n")
    return (head + sep, tail) if sep else ("", cell)


# -- Markdown ----------------------------------------------------------------------------------
def md_cell(value: Any) -> str:
    """A Markdown table cell: pipes escaped, line breaks as <br>."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")


def markdown(table: Table) -> str:
    """A GitHub pipe table with the full column titles, then the legend as a list."""
    out = [f"**{md_cell(table.title)}**", ""] if table.title else []
    out.append("| " + " | ".join(md_cell(c.header) for c in table.columns) + " |")
    out.append("|" + "|".join("---" for _ in table.columns) + "|")
    for r, row in enumerate(table.rows):
        cells = []
        for k, cell in enumerate(row):
            href = table.links.get((r, k))
            head, tail = _link_part(str(cell))
            cells.append(f"{md_cell(head)}[{md_cell(tail)}]({href})" if href else md_cell(cell))
        out.append("| " + " | ".join(cells) + " |")
    if table.legend:
        out += [""] + [f"- {md_cell(item)}" for item in table.legend]
    return "\n".join(out) + "\n"


# -- HTML --------------------------------------------------------------------------------------
_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.holds{background:#d9f2d9}td.holds-unclaimed{background:#eef8ee}
td.fails{background:#fdf0d5}td.FAILS,td.error,td.contract{background:#f8c9c9;font-weight:bold}td.na{background:#eee;color:#666}
caption{font-weight:bold;text-align:left;padding:4px 0}"""


def html_table(table: Table) -> str:
    """The table as an HTML ``<table>`` (cells escaped; links and CSS classes where given)."""
    esc = _html.escape
    out = ["<table>"]
    if table.title:
        out.append(f"<caption>{esc(table.title)}</caption>")
    out.append("<tr>" + "".join(f'<th title="{esc(c.title or c.header)}">{esc(c.header)}</th>' for c in table.columns) + "</tr>")
    for r, row in enumerate(table.rows):
        cells = []
        for k, cell in enumerate(row):
            href = table.links.get((r, k))
            if href:
                head, tail = _link_part(str(cell))
                body = esc(head).replace("\n", "<br>") + f'<a href="{esc(href)}">{esc(tail)}</a>'
            else:
                body = esc(str(cell)).replace("\n", "<br>")
            cls = table.classes.get((r, k))
            cells.append(f'<td class="{esc(cls)}">{body}</td>' if cls else f"<td>{body}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    if table.legend:
        out.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in table.legend) + "</ul>")
    return "\n".join(out)


def html_page(title: str, tables: Sequence[Table], intro: str = "") -> str:
    """A standalone HTML page holding `tables`."""
    esc = _html.escape
    body = "\n".join(html_table(t) for t in tables)
    para = f"<p>{esc(intro)}</p>\n" if intro else ""
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{_CSS}</style></head>\n<body>\n<h1>{esc(title)}</h1>\n{para}{body}\n</body></html>\n")


# -- JSON and dispatch -------------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become strings ("inf", "nan")."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def render(tables: Sequence[Table] | Table, fmt: str = "table", *, title: str = "workbench", width: int = WIDTH, data: Any = None) -> str:
    """`tables` in format `fmt` (one of ``FORMATS``); ``data`` replaces the JSON form if given."""
    if isinstance(tables, Table):
        tables = [tables]
    if fmt not in FORMATS:
        from workbench.core.errors import InputError

        raise InputError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    if fmt == "table":
        return "\n\n".join(text(t, width) for t in tables)
    if fmt == "md":
        return "\n".join(markdown(t) for t in tables)
    if fmt == "html":
        return html_page(title, tables)
    if data is None:
        data = tables[0].json_records() if len(tables) == 1 else [t.json_records() for t in tables]
    return json.dumps(jsonable(data), indent=2)


def num(x: Optional[float], digits: int = 2) -> str:
    """A residual or tolerance for a table: `digits` significant digits, ``inf``, or ``-`` for none."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return "inf" if math.isinf(x) else f"{x:.{digits - 1}e}"

"""The checker: method x axioms -> Report.

For each axiom: the named paper cases first, then a Hypothesis search over drawn networks;
a violation is shrunk to a minimal network + input and saved as a JSON file that
``workbench replay FILE`` re-runs. A method's claims decide which failures are defects.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import torch
from hypothesis import HealthCheck, find, settings
from hypothesis.errors import NoSuchExample, Unsatisfiable

from .axioms import DEFAULT_AXIOMS, Case, Outcome, get_axiom
from .counterexample import load_counterexample, method_record, replay, save_counterexample  # noqa: F401  (replay files: their own module)
from .methods.base import CallableMethod, Claims, Method, as_method
from .strategies import Family
from .tolerance import rtol_for


@dataclass(frozen=True)
class Verdict:
    """One axiom's result for one method.

    holds: True, False, or None (not applicable, ``note`` says why). residual is the worst
    relative residual seen (of the counterexample, when it fails), tolerance the relative
    tolerance it was compared with.
    """

    axiom: str
    method: str
    holds: Optional[bool]
    claimed: bool
    residual: float
    tolerance: float
    cases: int
    counterexample: Optional[str] = None
    note: str = ""

    @property
    def unexpected(self) -> bool:
        """A claimed axiom that fails: a defect of the method (or of its claims)."""
        return self.claimed and self.holds is False

    def cell(self) -> str:
        """Matrix cell: holds / FAILS (claimed) / fails (not claimed) / n/a."""
        if self.holds is None:
            return "n/a"
        if self.holds:
            return "holds" if self.claimed else "holds*"
        return "FAILS" if self.claimed else "fails"


@dataclass
class Report:
    """Verdicts of one method; ``str(report)`` is a table, ``to_json`` the machine form."""

    method: str
    verdicts: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No claimed axiom failed."""
        return not any(v.unexpected for v in self.verdicts)

    def verdict(self, axiom: str) -> Verdict:
        return next(v for v in self.verdicts if v.axiom == axiom)

    def to_dict(self) -> dict:
        return {"method": self.method, "ok": self.ok, "settings": self.settings, "verdicts": [_jsonable(asdict(v)) for v in self.verdicts]}

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        return __import__("workbench.report_views", fromlist=["render_reports"]).render_reports([self], "table", matrix=False)

    __str__ = table


def _num(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return "inf" if math.isinf(x) else f"{x:.2e}"


def _jsonable(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items()}
    if isinstance(d, float) and not math.isfinite(d):
        return str(d)
    return d


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Plain aligned text table; the first row is the header."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(rows[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in rows[1:]])


class _ShrinkBudget:
    """Keeps the last (so smallest: Hypothesis only moves to smaller ones) violating case, and
    ends shrinking once `seconds` have passed or `evaluations` cases were evaluated since the
    first violation (the count makes the result the same on a fast and on a loaded machine)."""

    def __init__(self, seconds: float, evaluations: int) -> None:
        self.seconds = seconds
        self.evaluations = evaluations
        self.best: Optional[Case] = None
        self.started: Optional[float] = None
        self.spent = 0

    def record(self, case: Case) -> None:
        self.best = case
        if self.started is None:
            self.started = time.monotonic()

    def tick(self) -> None:
        if self.started is not None:
            self.spent += 1

    def exhausted(self) -> bool:
        if self.started is None:
            return False
        return self.spent >= self.evaluations or time.monotonic() - self.started > self.seconds


@dataclass
class _Search:
    worst: float = 0.0
    applicable: int = 0
    reasons: list = field(default_factory=list)
    notes: str = ""

    def see(self, outcome: Outcome) -> None:
        if outcome.applicable:
            self.applicable += 1
            if not outcome.violated and outcome.residual > self.worst:
                self.worst, self.notes = outcome.residual, outcome.note
        elif len(self.reasons) < 3:
            self.reasons.append(outcome.note)


def check_axiom(
    method: Method,
    axiom_name: str,
    *,
    examples: int = 100,
    seed: Optional[int] = None,
    family: Family = Family(),
    dtype: torch.dtype = torch.float64,
    save_dir: Optional[Union[str, Path]] = "counterexamples",
    claimed: Optional[bool] = None,
    shrink_seconds: float = 20.0,
    shrink_evaluations: int = 2000,
) -> Verdict:
    """Search for a violation of one axiom; a found one is shrunk and saved.

    Shrinking stops after ``shrink_seconds`` or ``shrink_evaluations`` evaluated cases, whichever
    comes first: the smallest violating case seen by then is kept. ``seed`` fixes the search
    whatever Hypothesis profile is loaded (None: a fresh random search).
    """
    axiom = get_axiom(axiom_name)
    claims = method.claims
    is_claimed = axiom_name in claims if claimed is None else claimed
    claim_tol = claims.get(axiom_name)
    rtol = max(rtol_for(dtype), claim_tol or 0.0)
    search = _Search()
    shrink = _ShrinkBudget(shrink_seconds, shrink_evaluations)

    def violated(case: Case) -> bool:
        if shrink.exhausted():
            return False  # ends the shrink; shrink.best holds the smallest violation seen
        shrink.tick()
        outcome = axiom.run(method, case, rtol)
        search.see(outcome)
        if outcome.violated:
            shrink.record(case)
        return outcome.violated

    found: Optional[Case] = None
    for case in axiom.named_cases(dtype):
        if violated(case):
            found = case
            break
    if found is None and examples > 0:
        try:
            found = find(
                axiom.cases(family, dtype),
                violated,
                settings=settings(
                    max_examples=examples,
                    database=None,
                    deadline=None,
                    derandomize=False,  # a loaded test profile must not override `seed`
                    suppress_health_check=list(HealthCheck),
                ),
                random=random.Random(seed) if seed is not None else random.Random(),
            )
        except (NoSuchExample, Unsatisfiable):
            found = None
        except Exception:  # noqa: BLE001 - the shrink budget ends shrinking as a "flaky" failure
            if shrink.best is None:
                raise
        found = shrink.best if shrink.best is not None else found
    label = method.label
    if found is None:
        if search.applicable == 0:
            reason = search.reasons[0] if search.reasons else "no applicable case was drawn"
            return Verdict(axiom_name, label, None, is_claimed, math.nan, rtol, 0, None, reason)
        return Verdict(axiom_name, label, True, is_claimed, search.worst, rtol, search.applicable, None, search.notes)
    outcome = axiom.run(method, found, rtol)
    path = None
    if save_dir is not None:
        path = str(save_counterexample(save_dir, method, axiom_name, found, outcome, dtype))
    note = f"{found.label + ': ' if found.label else ''}{outcome.note}"
    return Verdict(axiom_name, label, False, is_claimed, outcome.residual, rtol, search.applicable, path, note)


def check(
    method_or_callable: Any,
    *,
    axioms: Optional[Iterable[str]] = None,
    examples: int = 100,
    seed: Optional[int] = None,
    kind: str = "any",
    activations: Sequence[str] = ("relu",),
    dtype: torch.dtype = torch.float64,
    claims: Optional[Claims] = None,
    save_dir: Optional[Union[str, Path]] = "counterexamples",
    progress: Optional[Callable[[str], None]] = None,
    shrink_seconds: float = 20.0,
    shrink_evaluations: int = 2000,
) -> Report:
    """Check a method (built-in, Method instance, or ``f(model, x, target, baseline)``) on axioms.

    A plain callable with no ``claims`` (argument or attribute of the function) is checked as if it
    claimed every axiom asked for, so a failure counts against it. ``examples`` drawn cases per axiom; ``seed`` makes the search
    repeatable; ``kind`` ("mlp", "cnn", "any") and ``activations`` choose the networks drawn.
    """
    method = method_or_callable
    if isinstance(method, str):
        from .methods import parse_method

        method = parse_method(method)
    method = as_method(method, claims=claims)
    names = list(axioms) if axioms is not None else list(DEFAULT_AXIOMS)
    for n in names:
        get_axiom(n)  # unknown names fail before any work
    treat_all_claimed = isinstance(method, CallableMethod) and not method.declared
    family = Family(kind, tuple(activations))
    report = Report(method.label, settings={"examples": examples, "seed": seed, "kind": kind, "activations": list(activations), "dtype": str(dtype)})
    for n in names:
        if progress:
            progress(f"{method.label}: {n} ...")
        report.verdicts.append(
            check_axiom(method, n, examples=examples, seed=seed, family=family, dtype=dtype, save_dir=save_dir, claimed=True if treat_all_claimed else None, shrink_seconds=shrink_seconds, shrink_evaluations=shrink_evaluations)
        )
    return report

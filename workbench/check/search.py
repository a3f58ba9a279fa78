"""The checker: method x axioms -> Report.

First the method contract (``workbench.methods.contract``); then for each axiom the named paper cases,
then a Hypothesis search over drawn networks. A violation is re-run from its JSON form to
confirm it; a claimed one is shrunk to a minimal network + input and saved as a JSON file that
``workbench replay FILE`` re-runs. A method's claims decide which failures are defects. Every
budget counts evaluations, so one seed gives one report (byte-identical JSON) on any machine.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import torch
from hypothesis import Phase
from hypothesis.errors import NoSuchExample, Unsatisfiable
from hypothesis.internal.conjecture import engine as _hypothesis_engine

from workbench.axioms import DEFAULT_AXIOMS, Case, Outcome, get_axiom
from workbench.axioms.base import CALLS
from workbench.methods.contract import check_contract
from workbench.check.seeded_find import seeded_find
from workbench.check.counterexample import save_counterexample
from workbench.core.errors import InputError
from workbench.methods.base import CallableMethod, Claims, Method, as_method
from workbench.testing.strategies import ACTIVATION_NAMES, Family
from workbench.core.tolerance import rtol_for


#: what a verdict can be: the axiom holds, fails (a counterexample), is not applicable (a
#: reason), was not checked because the method breaches its contract, or the method raised
STATUSES = ("holds", "fails", "n/a", "contract", "error")
#: which failures are shrunk to a small counterexample and saved: claimed ones, all, none
SHRINK_POLICIES = ("unexpected", "all", "none")


@dataclass(frozen=True)
class Verdict:
    """One axiom's result for one method.

    status: "holds", "fails", "n/a" (``note`` says why), "contract" (the method breaches the
    method contract; ``note`` says how, the axioms were not searched) or "error" (the method
    raised; ``note`` is its message). holds is True / False / None (every other status).
    residual is the worst relative residual seen (of the counterexample, when it fails),
    tolerance the relative tolerance it was compared with, evaluations the method calls spent.
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
    status: str = ""
    evaluations: int = 0

    def __post_init__(self) -> None:
        if not self.status:
            object.__setattr__(self, "status", "n/a" if self.holds is None else ("holds" if self.holds else "fails"))
        if self.status not in STATUSES:
            raise ValueError(f"unknown verdict status {self.status!r}; one of {STATUSES}")
        object.__setattr__(self, "note", " ".join(str(self.note).split()))

    @property
    def unexpected(self) -> bool:
        """A claimed axiom that fails, or a contract breach: a defect of the method (or of its claims)."""
        return (self.claimed and self.status == "fails") or self.status == "contract"

    def cell(self) -> str:
        """Matrix cell: holds / holds* (not claimed) / FAILS (claimed) / fails (not claimed) / n/a / contract / error."""
        if self.status in ("n/a", "contract", "error"):
            return self.status
        if self.status == "holds":
            return "holds" if self.claimed else "holds*"
        return "FAILS" if self.claimed else "fails"


@dataclass
class Report:
    """Verdicts of one method; ``str(report)`` is a table, ``to_json`` the machine form.

    ``contract`` is the contract check's result (``workbench.methods.contract``): breaches, an error,
    the networks and evaluations it used.
    """

    method: str
    verdicts: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    contract: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No claimed axiom failed, no contract breach, no error."""
        return not any(v.unexpected or v.status == "error" for v in self.verdicts)

    @property
    def errors(self) -> list:
        """Verdicts whose method raised."""
        return [v for v in self.verdicts if v.status == "error"]

    def verdict(self, axiom: str) -> Verdict:
        return next(v for v in self.verdicts if v.axiom == axiom)

    def to_dict(self) -> dict:
        return {"method": self.method, "ok": self.ok, "settings": self.settings, "contract": self.contract, "verdicts": [_jsonable(asdict(v)) for v in self.verdicts]}

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        return __import__("workbench.check.views", fromlist=["render_reports"]).render_reports([self], "table", matrix=False)

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
    ends shrinking once `evaluations` cases were evaluated since the first violation (a count:
    the result is the same on a fast and on a loaded machine). ``seconds`` (None: no cap) is a
    wall-clock cap; when it ends a shrink, ``capped`` says so and the verdict states it."""

    def __init__(self, seconds: Optional[float], evaluations: int) -> None:
        self.seconds = seconds
        self.evaluations = evaluations
        self.best: Optional[Case] = None
        self.started: Optional[float] = None
        self.spent = 0
        self.capped = False

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
        if self.spent >= self.evaluations:
            return True
        if self.seconds is not None and time.monotonic() - self.started > self.seconds:
            self.capped = True
            return True
        return False


@dataclass
class _Search:
    worst: float = 0.0
    applicable: int = 0
    reasons: list = field(default_factory=list)
    notes: str = ""
    error: str = ""

    def see(self, outcome: Outcome) -> None:
        if outcome.applicable:
            self.applicable += 1
            if not outcome.violated and outcome.residual > self.worst:
                self.worst, self.notes = outcome.residual, outcome.note
        elif len(self.reasons) < 3:
            self.reasons.append(outcome.note)


def _replayed(case: Case, dtype: torch.dtype) -> Case:
    """The case as its counterexample file gives it back (JSON round trip)."""
    return Case.from_dict(json.loads(json.dumps(case.to_dict())), dtype=dtype)


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
    shrink_seconds: Optional[float] = None,
    shrink_evaluations: int = 400,
    shrink: str = "all",
) -> Verdict:
    """Search for a violation of one axiom; a found one is confirmed, then shrunk and saved.

    ``shrink``: "all" (default here; ``check`` defaults to "unexpected") shrinks and saves every
    failure; "unexpected" only failures of claimed axioms (an expected failure is confirmed by
    re-running it and reported without a file); "none" none. Shrinking stops after
    ``shrink_evaluations`` evaluated cases (the smallest violating case seen by then is kept), or
    at the optional wall-clock cap ``shrink_seconds`` (or Hypothesis's own five minutes), which
    the verdict then states. A violation is re-run from its JSON form
    before it is reported: one that does not repeat makes the verdict ``contract``
    (nondeterministic). A method that raises gets ``error`` with its message, no file. ``seed``
    fixes the search and torch's RNG whatever Hypothesis profile is loaded (None: seed 0 for
    torch, a fresh random search).
    """
    if shrink not in SHRINK_POLICIES:
        raise InputError(f"shrink must be one of {SHRINK_POLICIES}, got {shrink!r}")
    axiom = get_axiom(axiom_name)
    claims = method.claims
    is_claimed = axiom_name in claims if claimed is None else claimed
    claim_tol = claims.get(axiom_name)
    rtol = max(rtol_for(dtype), claim_tol or 0.0)
    do_shrink = shrink == "all" or (shrink == "unexpected" and is_claimed)
    search = _Search()
    budget = _ShrinkBudget(shrink_seconds, shrink_evaluations if do_shrink else 0)
    calls = CALLS[0]
    label = method.label

    def violated(case: Case) -> bool:
        if search.error or budget.exhausted():
            return False  # ends the search / shrink; budget.best holds the smallest violation seen
        budget.tick()
        outcome = axiom.run(method, case, rtol)
        if outcome.error:
            search.error = outcome.error
            return False
        search.see(outcome)
        if outcome.violated:
            budget.record(case)
        return outcome.violated

    def verdict(holds: Optional[bool], residual: float, cases: int, path: Optional[str] = None, note: str = "", status: str = "", tol: float = rtol) -> Verdict:
        return Verdict(axiom_name, label, holds, is_claimed, residual, tol, cases, path, note, status, CALLS[0] - calls)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed if seed is not None else 0)
        for case in axiom.named_cases(dtype):
            if violated(case) or search.error:
                break
        if budget.best is None and not search.error and examples > 0:
            phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if do_shrink else [])
            try:
                seeded_find(axiom.cases(family, dtype), violated, examples=examples, seed=seed, phases=phases)
            except (NoSuchExample, Unsatisfiable):
                pass
            except Exception:  # noqa: BLE001 - the budget ends shrinking as a "flaky" failure
                if budget.best is None and not search.error:
                    raise
        if search.error:
            return verdict(None, math.nan, search.applicable, None, f"method raised {search.error}", "error")
        if budget.started is not None and do_shrink and budget.spent < budget.evaluations and not budget.capped:
            # Hypothesis ends a shrink after MAX_SHRINKING_SECONDS of wall time on its own
            budget.capped = time.monotonic() - budget.started >= _hypothesis_engine.MAX_SHRINKING_SECONDS
        found = budget.best
        if found is None:
            if search.applicable == 0:
                reason = search.reasons[0] if search.reasons else "no applicable case was drawn"
                return verdict(None, math.nan, 0, None, reason)
            note = search.notes or ("" if is_claimed else f"held on all {search.applicable} cases; the method does not claim it")
            return verdict(True, search.worst, search.applicable, None, note)
        first = axiom.run(method, found, rtol)
        replay_case = _replayed(found, dtype)
        outcome = axiom.run(method, replay_case, rtol)
    if outcome.error or first.error:
        return verdict(None, math.nan, search.applicable, None, f"method raised {outcome.error or first.error}", "error")
    if not (first.violated and outcome.violated):
        return verdict(
            None, math.nan, search.applicable, None,
            f"nondeterministic: a violation (residual {first.residual:.3g}) did not repeat when re-run (residual {outcome.residual:.3g})", "contract",
        )
    path = None
    if save_dir is not None and do_shrink:
        path = str(save_counterexample(save_dir, method, axiom_name, replay_case, outcome, dtype))
    note = f"{found.label + ': ' if found.label else ''}{outcome.note}"
    if budget.capped:
        cap = shrink_seconds if shrink_seconds is not None and time.monotonic() - budget.started >= shrink_seconds else _hypothesis_engine.MAX_SHRINKING_SECONDS
        note += f" [wall-clock cap of {cap:g} s hit while shrinking after {budget.spent} evaluations: the counterexample may not be the smallest and may differ on a rerun; the verdict stands]"
    elif not do_shrink:
        note += " [confirmed, not shrunk; shrink='all' saves a counterexample]"
    return verdict(False, outcome.residual, search.applicable, path, note, tol=outcome.tolerance)


def contract_summary(breaches: Sequence[str], limit: int = 2) -> str:
    """One line: the first breach of each kind (network names dropped), at most ``limit`` kinds."""
    kinds: dict = {}  # kind (text before the first colon) -> its first full text
    for b in breaches:
        text = re.sub(r"^\w+ network: ", "", b)
        kinds.setdefault(text.split(":")[0], text)
    distinct = list(kinds.values())
    more = f" (+{len(distinct) - limit} more: see the report's contract)" if len(distinct) > limit else ""
    return "; ".join(distinct[:limit]) + more


def check(
    method_or_callable: Any,
    *,
    axioms: Optional[Iterable[str]] = None,
    examples: int = 100,
    seed: Optional[int] = None,
    kind: str = "any",
    activations: Optional[Sequence[str]] = None,
    dtype: torch.dtype = torch.float64,
    claims: Optional[Claims] = None,
    save_dir: Optional[Union[str, Path]] = "counterexamples",
    progress: Optional[Callable[[str], None]] = None,
    shrink_seconds: Optional[float] = None,
    shrink_evaluations: int = 400,
    shrink: str = "unexpected",
    contract: bool = True,
) -> Report:
    """Check a method (built-in, Method instance, or ``f(model, x, target, baseline)``) on axioms.

    First the method contract (``workbench.methods.contract``): a breach makes every verdict
    ``contract``, an exception every verdict ``error``; the axioms are then not searched. A plain
    callable with no ``claims`` (argument or attribute of the function) is held to the core
    axioms (``Axiom.core``) asked for. ``examples`` drawn cases per axiom; ``seed`` makes the
    whole report repeatable (byte-identical JSON); ``kind`` ("mlp", "cnn", "any") and
    ``activations`` choose the networks drawn (default: ReLU, softplus and GELU, or ReLU only
    for a method whose ``domain`` is "piecewise-linear"; the report names what was not
    searched). ``shrink``, ``shrink_evaluations``, ``shrink_seconds``: see ``check_axiom``.
    """
    method = method_or_callable
    if isinstance(method, str):
        from workbench.methods import parse_method

        method = parse_method(method)
    method = as_method(method, claims=claims)
    names = list(axioms) if axioms is not None else list(DEFAULT_AXIOMS)
    for n in names:
        get_axiom(n)  # unknown names fail before any work
    if shrink not in SHRINK_POLICIES:
        raise InputError(f"shrink must be one of {SHRINK_POLICIES}, got {shrink!r}")
    core_only = isinstance(method, CallableMethod) and not method.declared
    domain = getattr(method, "domain", "any")
    if activations is None:
        activations = ("relu",) if domain == "piecewise-linear" else ACTIVATION_NAMES
    not_searched = [a for a in ACTIVATION_NAMES if a not in activations]
    family = Family(kind, tuple(activations))
    report = Report(
        method.label,
        settings={
            "examples": examples, "seed": seed, "kind": kind, "activations": list(activations), "not_searched": not_searched,
            "domain": domain, "dtype": str(dtype), "shrink": shrink, "shrink_evaluations": shrink_evaluations, "shrink_seconds": shrink_seconds,
        },
    )
    try:
        with one_thread():
            _run_checks(report, method, names, core_only, contract, progress, dtype, seed, dict(
                examples=examples, seed=seed, family=family, dtype=dtype, save_dir=save_dir,
                shrink_seconds=shrink_seconds, shrink_evaluations=shrink_evaluations, shrink=shrink,
            ))
    except KeyboardInterrupt as stop:
        raise CheckInterrupted(report) from stop
    return report


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch's intra-op threads set to 1 for the search, restored after: drawn networks have a few
    hundred units at most, so more threads only add synchronisation (on a loaded 2-core machine two
    threads made the README's exact-IG check 3.5x slower: 8 min against 2.3 min)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class CheckInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``check``: ``report`` holds the verdicts finished before it."""

    def __init__(self, report: Report) -> None:
        super().__init__(f"interrupted after {len(report.verdicts)} verdicts of {report.method}")
        self.report = report


def _run_checks(report: Report, method: Method, names: list, core_only: bool, contract: bool, progress: Optional[Callable[[str], None]], dtype: torch.dtype, seed: Optional[int], options: dict) -> None:
    """The contract, then each axiom in turn; verdicts are appended to ``report`` as they finish."""
    result = None
    if contract:
        if progress:
            progress(f"{method.label}: contract ...")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed if seed is not None else 0)
            result = check_contract(method, dtype=dtype, seed=seed)
        report.contract = result.to_dict()
    for n in names:
        claimed = get_axiom(n).core if core_only else (n in method.claims)
        if result is not None and result.error:
            report.verdicts.append(Verdict(n, method.label, None, claimed, math.nan, math.nan, 0, None, f"method raised {result.error}", "error"))
            continue
        if result is not None and result.breaches:
            note = "not searched: the method breaches its contract: " + contract_summary(result.breaches)
            report.verdicts.append(Verdict(n, method.label, None, claimed, math.nan, math.nan, 0, None, note, "contract"))
            continue
        if progress:
            progress(f"{method.label}: {n} ...")
        report.verdicts.append(check_axiom(method, n, claimed=claimed, **options))

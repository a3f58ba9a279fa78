"""Axiom checks inside your own pytest suite, and a pytest plugin with the bench's fixtures.

``assert_axioms(method, axioms, examples=30, seed=0)`` runs ``workbench.check`` and raises an
``AssertionError`` whose message is the report table (each failing axiom with its reason) unless
every named axiom holds. ``axioms`` is a list of names, or a dict of name -> claimed relative
tolerance (None: round-off) for a function that has no ``claims`` of its own. A built-in method
uses its own claimed tolerances. ``seed`` makes the search repeatable, as CI needs.

As a pytest plugin (``pytest -p workbench.testing``, or ``pytest_plugins = ["workbench.testing"]``
in your top-level ``conftest.py``) it adds the options ``--workbench-examples`` and
``--workbench-seed`` and the fixtures

* ``assert_axioms``: the function above with those options as defaults;
* ``workbench_strategies``: the module ``workbench.testing.strategies`` (``networks()``, ``specs()``,
  ``inputs(spec)``, ``baselines(spec)``, ``targets(spec)``, ``network_cases()``) for your own
  Hypothesis properties (``@given`` needs them at import time: import the module there).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch

__all__ = ["assert_axioms", "AxiomsFailed"]

Axioms = Union[Sequence[str], Mapping[str, Optional[float]]]


class AxiomsFailed(AssertionError):
    """An axiom asked for did not hold; ``report`` holds every verdict."""

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report


def assert_axioms(
    method: Any,
    axioms: Axioms,
    *,
    examples: int = 30,
    seed: Optional[int] = 0,
    kind: str = "any",
    activations: Sequence[str] = ("relu",),
    dtype: torch.dtype = torch.float64,
    save_dir: Optional[Union[str, Path]] = None,
    allow_not_applicable: bool = False,
) -> Any:
    """Check `method` on `axioms`; return the report, or raise ``AxiomsFailed`` with its table.

    An axiom without an applicable case (``n/a``) fails too unless ``allow_not_applicable``.
    ``save_dir`` keeps the shrunk counterexample files (for ``workbench replay``).
    """
    from workbench.check import check
    from workbench.core.errors import InputError

    if isinstance(axioms, str):
        raise InputError(f"axioms must be a list of names (or a dict of name -> tolerance), got the string {axioms!r}")
    names = list(axioms)
    if not names:
        raise InputError("name at least one axiom to assert")
    claims = dict(axioms) if isinstance(axioms, Mapping) else None
    report = check(method, axioms=names, examples=examples, seed=seed, kind=kind, activations=activations, dtype=dtype,
                   claims=claims, save_dir=save_dir)
    bad = [v for v in report.verdicts if not (v.holds is True or (v.holds is None and allow_not_applicable))]
    if bad:
        failed = ", ".join(f"{v.axiom} ({v.cell()})" for v in bad)
        hint = "" if save_dir is not None else "\n(pass save_dir=... to keep the counterexample files for `workbench replay`)"
        raise AxiomsFailed(f"{report.method}: {failed} did not hold (seed {seed}, {examples} examples per axiom)\n\n{report.table()}{hint}", report)
    return report


# -- pytest plugin -----------------------------------------------------------------------------
def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("workbench", "workbench axiom checks")
    group.addoption("--workbench-examples", type=int, default=30, help="drawn cases per axiom in assert_axioms (default 30)")
    group.addoption("--workbench-seed", type=int, default=0, help="search seed of assert_axioms (default 0)")


try:  # the fixtures exist only where pytest does (the helpers above do not need it)
    import pytest as _pytest

    @_pytest.fixture(name="assert_axioms")
    def _assert_axioms_fixture(request: Any) -> Callable[..., Any]:
        """``assert_axioms`` with --workbench-examples and --workbench-seed as defaults."""
        return functools.partial(assert_axioms, examples=request.config.getoption("workbench_examples"),
                                 seed=request.config.getoption("workbench_seed"))

    @_pytest.fixture(name="workbench_strategies")
    def _strategies_fixture() -> Any:
        """The module ``workbench.testing.strategies``: the bench's Hypothesis strategies."""
        from workbench.testing import strategies

        return strategies
except ImportError:  # pragma: no cover - pytest is not a runtime dependency
    pass

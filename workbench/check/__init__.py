"""The checker: a method x axioms -> a ``Report`` of verdicts, each with its reason or counterexample.

The package is callable: ``workbench.check(method, examples=50, seed=0)`` is ``search.check``.

Modules: ``search`` (the contract, the paper cases, the Hypothesis search, Verdict and Report),
``pool`` (methods checked side by side, one process each), ``counterexample`` and
``replay_schema`` (replay files: validated, never code), ``prototype_record`` (a prototype rule
method as data in a replay file), ``expected_failures`` and ``views`` (how reports read),
``network`` (the axioms on a given trained network: function-preserving rewrites of it).
"""

from workbench.check.counterexample import replay
from workbench.check.search import Report, Verdict, check, check_axiom
from workbench.core.callable_module import make_callable

make_callable(__name__, check)

__all__ = ["Report", "Verdict", "check", "check_axiom", "replay"]

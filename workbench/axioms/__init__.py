"""Axioms: one module per property; each returns an Outcome per case and never raises.

Importing a module registers its axioms (``@register_axiom``); the import order below is the
column order of a report.
"""

from workbench.axioms.base import Axiom, Case, Outcome, axioms, get_axiom, register_axiom
from workbench.axioms import completeness, sensitivity, dummy, implementation_invariance, linearity, symmetry  # noqa: F401
from workbench.axioms import weak_dependence, conservation  # noqa: F401  (registers)

#: the axioms of a default report, in their order: every registered axiom
DEFAULT_AXIOMS = tuple(axioms())

__all__ = ["Axiom", "Case", "Outcome", "axioms", "get_axiom", "register_axiom", "DEFAULT_AXIOMS"]

"""Axioms: one module per property; each returns an Outcome per case and never raises.

Importing a module registers its axioms (``@register_axiom``), in the import order below.
``DEFAULT_AXIOMS`` orders the report's columns; every registered axiom must be in it
(tests/unit/test_layout.py).
"""

from workbench.axioms.base import Axiom, Case, Outcome, axioms, get_axiom, register_axiom
from workbench.axioms import completeness, sensitivity, dummy, implementation_invariance, linearity, symmetry  # noqa: F401
from workbench.axioms import conservation, weak_dependence  # noqa: F401  (registers)

#: the axioms of a default report, in their column order
DEFAULT_AXIOMS = (
    "completeness", "sensitivity-a", "dummy", "implementation-invariance", "linearity", "symmetry",
    "weak-dependence", "full-gradient-completeness", "conservation", "input-x-gradient-identity",
    "alpha1-beta0-identity",
)

__all__ = ["Axiom", "Case", "Outcome", "axioms", "get_axiom", "register_axiom", "DEFAULT_AXIOMS"]
